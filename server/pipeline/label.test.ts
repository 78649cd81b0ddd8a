import { describe, expect, it } from "vitest";
import { connectedComponents } from "./label.js";

/** Oracle: breadth-first flood fill over the 26 neighbours, the definition itself. */
function floodFill(classes: Uint8Array, [nx, ny, nz]: [number, number, number]): Uint32Array {
  const out = new Uint32Array(classes.length);
  let id = 0;
  const queue = new Int32Array(classes.length);
  for (let s = 0; s < classes.length; s++) {
    if (classes[s] === 0 || out[s] !== 0) continue;
    out[s] = ++id;
    let head = 0;
    let tail = 0;
    queue[tail++] = s;
    while (head < tail) {
      const i = queue[head++];
      const x = i % nx;
      const y = Math.floor(i / nx) % ny;
      const z = Math.floor(i / (nx * ny));
      for (let dz = -1; dz <= 1; dz++)
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const X = x + dx, Y = y + dy, Z = z + dz;
            if (X < 0 || Y < 0 || Z < 0 || X >= nx || Y >= ny || Z >= nz) continue;
            const j = X + nx * (Y + ny * Z);
            if (out[j] === 0 && classes[j] === classes[i]) {
              out[j] = id;
              queue[tail++] = j;
            }
          }
    }
  }
  return out;
}

function mulberry32(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("connectedComponents", () => {
  it("matches the flood-fill oracle exactly (ids in raster order) on random volumes", () => {
    const rand = mulberry32(7);
    for (let trial = 0; trial < 20; trial++) {
      const shape: [number, number, number] = [1 + Math.floor(rand() * 23), 1 + Math.floor(rand() * 17), 1 + Math.floor(rand() * 9)];
      const n = shape[0] * shape[1] * shape[2];
      const density = 0.1 + rand() * 0.5;
      const classes = Uint8Array.from({ length: n }, () => (rand() < density ? 1 + Math.floor(rand() * 3) : 0));
      const got = connectedComponents(classes, shape);
      const want = floodFill(classes, shape);
      expect(got.labels).toEqual(want);
      expect(got.count).toBe(Math.max(0, ...want));
      for (let i = 0; i < n; i++) if (want[i]) expect(got.classOf[want[i]]).toBe(classes[i]);
    }
  });

  it("joins diagonal (corner) neighbours but never different classes", () => {
    const classes = new Uint8Array(8);
    classes[0] = 2; // (0,0,0)
    classes[7] = 2; // (1,1,1): corner neighbour
    const a = connectedComponents(classes, [2, 2, 2]);
    expect(a.count).toBe(1);
    classes[7] = 3;
    const b = connectedComponents(classes, [2, 2, 2]);
    expect(b.count).toBe(2);
    expect([...b.classOf]).toEqual([0, 2, 3]);
  });

  it("a U shape merges through its base (label equivalence across rows)", () => {
    const [nx, ny] = [5, 4];
    const classes = new Uint8Array(nx * ny);
    for (let y = 0; y < ny; y++) {
      classes[y * nx] = 1;
      classes[y * nx + 4] = 1;
    }
    for (let x = 0; x < nx; x++) classes[(ny - 1) * nx + x] = 1;
    const r = connectedComponents(classes, [nx, ny, 1]);
    expect(r.count).toBe(1);
    expect(r.voxels[1]).toBe(4 + 4 + 3);
  });

  it("rejects a shape that does not match the data", () => {
    expect(() => connectedComponents(new Uint8Array(10), [3, 3, 1])).toThrow(/shape/);
  });
});
