import { describe, expect, it } from "vitest";
import { connectedComponents } from "./label.js";
import {
  blockFaceEquivalences,
  blockGrid,
  connectedComponentsBlockwise,
  labelBlock,
  type FacePlane,
  type Shape3,
} from "./label-blocks.js";
import { createRng, type Rng } from "./random.js";

type Vol = { classes: Uint8Array; shape: Shape3 };

function copyOut(v: Vol, origin: Shape3, shape: Shape3): Uint8Array {
  const [nx, ny] = v.shape;
  const [ox, oy, oz] = origin;
  const [sx, sy, sz] = shape;
  const out = new Uint8Array(sx * sy * sz);
  for (let z = 0; z < sz; z++)
    for (let y = 0; y < sy; y++) {
      const src = ox + nx * (oy + y + ny * (oz + z));
      out.set(v.classes.subarray(src, src + sx), sx * (y + sy * z));
    }
  return out;
}

/** Runs the blockwise path against an in-memory volume and assembles its output. */
async function blockwise(v: Vol, blockShape: Shape3, asyncIo = false) {
  const [nx, ny] = v.shape;
  const labels = new Uint32Array(v.classes.length);
  const written = new Uint8Array(v.classes.length);
  let reads = 0;
  let writes = 0;
  const result = await connectedComponentsBlockwise(
    (origin, shape) => {
      reads++;
      const data = copyOut(v, origin, shape);
      return asyncIo ? Promise.resolve(data) : data;
    },
    v.shape,
    blockShape,
    async (origin, shape, block) => {
      writes++;
      const [ox, oy, oz] = origin;
      const [sx, sy, sz] = shape;
      for (let z = 0; z < sz; z++)
        for (let y = 0; y < sy; y++) {
          const dst = ox + nx * (oy + y + ny * (oz + z));
          labels.set(block.subarray(sx * (y + sy * z), sx * (y + sy * z) + sx), dst);
          written.fill(written[dst] + 1, dst, dst + sx);
        }
      if (asyncIo) await Promise.resolve();
    },
  );
  return { ...result, labels, written, reads, writes };
}

function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function expectSameAsWhole(v: Vol, blockShape: Shape3, asyncIo = false): Promise<number> {
  const whole = connectedComponents(v.classes, v.shape);
  const got = await blockwise(v, blockShape, asyncIo);
  const where = `volume [${v.shape}] blocks [${blockShape}]`;
  expect(firstMismatch(got.labels, whole.labels), where).toBe(-1);
  expect(got.count, where).toBe(whole.count);
  expect(firstMismatch(got.classOf, whole.classOf), where).toBe(-1);
  expect(firstMismatch(got.voxels, whole.voxels), where).toBe(-1);
  // Every voxel written exactly once; every block read once per pass.
  expect(got.written.every((w) => w === 1), where).toBe(true);
  const blocks = [...blockGrid(v.shape, blockShape)].length;
  expect(got.writes).toBe(blocks);
  expect(got.reads).toBe(2 * blocks);
  return whole.count;
}

function noise(rng: Rng, shape: Shape3, density: number, classes: number): Vol {
  const n = shape[0] * shape[1] * shape[2];
  const c = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (rng.next() < density) c[i] = rng.int(1, classes);
  return { classes: c, shape };
}

/** Overlapping random balls: large components that cross many block boundaries. */
function balls(rng: Rng, shape: Shape3, count: number, classes: number): Vol {
  const [nx, ny, nz] = shape;
  const c = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < count; k++) {
    const cx = rng.uniform(0, nx), cy = rng.uniform(0, ny), cz = rng.uniform(0, nz);
    const r = rng.uniform(1, 4);
    const cls = rng.int(1, classes);
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++)
          if ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r) c[x + nx * (y + ny * z)] = cls;
  }
  return { classes: c, shape };
}

const BLOCKS: Shape3[] = [
  [4, 4, 4],
  [5, 3, 2], // divides nothing
  [1, 1, 1],
  [1, 13, 11],
  [17, 1, 11],
  [17, 13, 1],
  [2, 1, 3],
  [17, 13, 11], // exactly the volume
  [64, 64, 64], // larger than the volume
  [100, 2, 5],
];

describe("connectedComponentsBlockwise", () => {
  it("matches whole-volume labels byte for byte on seeded random noise", async () => {
    const shape: Shape3 = [17, 13, 11];
    for (const density of [0.05, 0.3, 0.6, 0.95])
      for (const classes of [1, 2, 6]) {
        const v = noise(createRng(`noise-${density}-${classes}`), shape, density, classes);
        for (const b of BLOCKS) await expectSameAsWhole(v, b);
      }
  });

  it("matches on overlapping balls, with random block shapes and async I/O", async () => {
    const rng = createRng("balls");
    for (let trial = 0; trial < 12; trial++) {
      const shape: Shape3 = [rng.int(1, 24), rng.int(1, 24), rng.int(1, 16)];
      const v = balls(rng, shape, rng.int(3, 30), rng.int(1, 3));
      for (let k = 0; k < 4; k++) {
        const b: Shape3 = [rng.int(1, 12), rng.int(1, 12), rng.int(1, 8)];
        await expectSameAsWhole(v, b, k % 2 === 1);
      }
    }
  });

  it("gives a helix tube snaking through many blocks one id", async () => {
    const shape: Shape3 = [40, 40, 60];
    const [nx, ny, nz] = shape;
    const c = new Uint8Array(nx * ny * nz);
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) {
          const t = (z / nz) * 4 * Math.PI;
          const hx = 20 + 13 * Math.cos(t), hy = 20 + 13 * Math.sin(t);
          if ((x - hx) ** 2 + (y - hy) ** 2 <= 2.5 ** 2) c[x + nx * (y + ny * z)] = 2;
        }
    const v = { classes: c, shape };
    for (const b of [[8, 8, 8], [7, 9, 5], [3, 3, 1]] as Shape3[]) {
      const count = await expectSameAsWhole(v, b);
      expect(count).toBe(1);
    }
  });

  it("joins a U whose arms meet only inside the last block", async () => {
    const shape: Shape3 = [16, 16, 16];
    const [nx, ny, nz] = shape;
    const c = new Uint8Array(nx * ny * nz);
    const set = (x: number, y: number, z: number) => (c[x + nx * (y + ny * z)] = 3);
    for (let z = 0; z < nz; z++) {
      set(1, 1, z); // arm A starts in the first block
      set(nx - 2, ny - 2, z); // arm B lives in the last block column
    }
    for (let x = 1; x <= nx - 2; x++) set(x, 1, nz - 1);
    for (let y = 1; y <= ny - 2; y++) set(nx - 2, y, nz - 1);
    const v = { classes: c, shape };
    for (const b of [[4, 4, 4], [5, 5, 5], [8, 3, 2]] as Shape3[]) expect(await expectSameAsWhole(v, b)).toBe(1);
    // Without the last bridge voxel (inside the last block) the arms stay apart.
    c[nx - 2 + nx * (ny - 3 + ny * (nz - 1))] = 0;
    expect(await expectSameAsWhole(v, [4, 4, 4])).toBe(2);
  });

  it("joins voxels touching only diagonally across block edges and corners, in every direction", async () => {
    const shape: Shape3 = [8, 8, 8];
    const corner: Shape3[] = [];
    for (let z = 3; z <= 4; z++) for (let y = 3; y <= 4; y++) for (let x = 3; x <= 4; x++) corner.push([x, y, z]);
    // Each of the 8 voxels around the corner sits in a different 4^3 block; all 28 pairs touch.
    for (let a = 0; a < corner.length; a++)
      for (let b = a + 1; b < corner.length; b++) {
        const c = new Uint8Array(512);
        for (const [x, y, z] of [corner[a], corner[b]]) c[x + 8 * (y + 8 * z)] = 1;
        expect(await expectSameAsWhole({ classes: c, shape }, [4, 4, 4])).toBe(1);
      }
    // A chain of corner-only steps through a 2^3 block grid of 1-voxel blocks.
    const c = new Uint8Array(512);
    for (let k = 0; k < 8; k++) c[k + 8 * ((7 - k) + 8 * k)] = 4;
    expect(await expectSameAsWhole({ classes: c, shape }, [1, 1, 1])).toBe(1);
    expect(await expectSameAsWhole({ classes: c, shape }, [3, 2, 5])).toBe(1);
  });

  it("keeps different classes apart across a face, an edge and a corner", async () => {
    const shape: Shape3 = [8, 8, 8];
    const c = new Uint8Array(512);
    for (let z = 0; z < 8; z++) for (let y = 0; y < 8; y++) {
      c[3 + 8 * (y + 8 * z)] = 1;
      c[4 + 8 * (y + 8 * z)] = 2;
    }
    expect(await expectSameAsWhole({ classes: c, shape }, [4, 4, 4])).toBe(2);
    const d = new Uint8Array(512);
    d[3 + 8 * (3 + 8 * 3)] = 1;
    d[4 + 8 * (4 + 8 * 4)] = 2;
    d[4 + 8 * (4 + 8 * 3)] = 5;
    expect(await expectSameAsWhole({ classes: d, shape }, [4, 4, 4])).toBe(3);
  });

  it("handles empty and degenerate volumes", async () => {
    expect(await expectSameAsWhole({ classes: new Uint8Array(0), shape: [0, 5, 5] }, [2, 2, 2])).toBe(0);
    expect(await expectSameAsWhole({ classes: new Uint8Array(60), shape: [3, 4, 5] }, [2, 2, 2])).toBe(0);
    expect(await expectSameAsWhole({ classes: new Uint8Array(10).fill(1), shape: [10, 1, 1] }, [3, 1, 1])).toBe(1);
  });

  it("rejects bad shapes and short blocks", async () => {
    const noop = () => undefined;
    await expect(connectedComponentsBlockwise(() => new Uint8Array(8), [2, 2, 2], [0, 2, 2], noop)).rejects.toThrow(RangeError);
    await expect(connectedComponentsBlockwise(() => new Uint8Array(7), [2, 2, 2], [2, 2, 2], noop)).rejects.toThrow(/7 voxels/);
  });

  it("detects a block that changes between the passes", async () => {
    let calls = 0;
    const read = () => (calls++ === 0 ? new Uint8Array([1, 0, 1, 0, 0, 0, 0, 0]) : new Uint8Array(8));
    await expect(connectedComponentsBlockwise(read, [2, 2, 2], [2, 2, 2], () => undefined)).rejects.toThrow(/changed between passes/);
  });
});

describe("labelBlock", () => {
  it("records each local id's first voxel", () => {
    const c = new Uint8Array([0, 2, 2, 0, 1, 0, 0, 1]);
    const b = labelBlock(c, [4, 1, 2]);
    expect(b.count).toBe(3);
    expect([...b.labels]).toEqual([0, 1, 1, 0, 2, 0, 0, 3]);
    expect([...b.firstVoxel]).toEqual([0, 1, 4, 7]);
    expect([...b.classOf]).toEqual([0, 2, 1, 1]);
  });
});

describe("blockFaceEquivalences", () => {
  const plane = (width: number, height: number, labels: number[], classes?: number[]): FacePlane => ({
    width,
    height,
    labels: Uint32Array.from(labels),
    classes: Uint8Array.from(classes ?? labels.map((l) => (l === 0 ? 0 : 1))),
  });

  it("links each voxel to the 3 x 3 voxels across the face, same class only", () => {
    const near = plane(3, 1, [1, 0, 2]);
    const far = plane(3, 1, [0, 10, 0]);
    expect([...blockFaceEquivalences(near, far)]).toEqual([1, 10, 2, 10]);
    const farOtherClass = plane(3, 1, [0, 10, 0], [0, 2, 0]);
    expect([...blockFaceEquivalences(near, farOtherClass)]).toEqual([]);
    const farTooFar = plane(4, 1, [0, 0, 0, 10]);
    expect([...blockFaceEquivalences(plane(4, 1, [1, 0, 0, 0]), farTooFar)]).toEqual([]);
  });

  it("reaches edge and corner neighbours through a padded far plane", () => {
    // near is 1 x 1 at far's centre (farOrigin -1, -1): all 8 surrounding far voxels plus the one opposite.
    const near = plane(1, 1, [7]);
    const far = plane(3, 3, [1, 2, 3, 4, 5, 6, 8, 9, 10]);
    expect([...blockFaceEquivalences(near, far, [-1, -1])]).toEqual([7, 1, 7, 2, 7, 3, 7, 4, 7, 5, 7, 6, 7, 8, 7, 9, 7, 10]);
    // Shifted so that only far's corner voxel is diagonal to near's.
    expect([...blockFaceEquivalences(near, far, [1, 1])]).toEqual([7, 1]);
  });

  it("drops consecutive repeats", () => {
    const near = plane(4, 1, [5, 5, 5, 5]);
    const far = plane(4, 1, [9, 9, 9, 9]);
    expect([...blockFaceEquivalences(near, far)]).toEqual([5, 9]);
  });
});
