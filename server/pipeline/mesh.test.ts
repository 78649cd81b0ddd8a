import { describe, expect, it } from "vitest";
import type { Vec3 } from "../../precomputed/array.js";
import { PipelineError } from "./errors.js";
import { meshSegments, type SegmentMesh } from "./mesh.js";
import { TRIANGLES } from "./mesh-tables.js";
import { triangleArea } from "../../precomputed/testing/mesh-geometry.js";

function volumeOf(shape: Vec3, fill: (x: number, y: number, z: number) => number): Uint32Array {
  const [nx, ny, nz] = shape;
  const labels = new Uint32Array(nx * ny * nz);
  let i = 0;
  for (let z = 0; z < nz; ++z) for (let y = 0; y < ny; ++y) for (let x = 0; x < nx; ++x) labels[i++] = fill(x, y, z);
  return labels;
}

function signedVolume({ positions: p, indices: t }: SegmentMesh): number {
  let v = 0;
  for (let i = 0; i < t.length; i += 3) {
    const a = 3 * t[i];
    const b = 3 * t[i + 1];
    const c = 3 * t[i + 2];
    v += p[a] * (p[b + 1] * p[c + 2] - p[b + 2] * p[c + 1]) - p[a + 1] * (p[b] * p[c + 2] - p[b + 2] * p[c]) + p[a + 2] * (p[b] * p[c + 1] - p[b + 1] * p[c]);
  }
  return v / 6;
}

/** Every directed edge appears once and its reverse once: closed, 2-manifold along edges, consistently wound. */
function expectClosedAndConsistent(m: SegmentMesh): void {
  const directed = new Map<string, number>();
  const t = m.indices;
  expect(t.length % 3).toBe(0);
  for (let i = 0; i < t.length; i += 3) {
    for (let k = 0; k < 3; ++k) {
      const a = t[i + k];
      const b = t[i + ((k + 1) % 3)];
      expect(a).not.toBe(b);
      const key = `${a},${b}`;
      directed.set(key, (directed.get(key) ?? 0) + 1);
    }
  }
  let bad = 0;
  for (const [key, n] of directed) {
    const [a, b] = key.split(",");
    if (n !== 1 || directed.get(`${b},${a}`) !== 1) ++bad;
  }
  expect(bad, "edges not shared by exactly one opposite-wound triangle").toBe(0);
}

function expectNoDuplicateVertices(m: SegmentMesh): void {
  const seen = new Set<string>();
  for (let i = 0; i < m.positions.length; i += 3) seen.add(`${m.positions[i]},${m.positions[i + 1]},${m.positions[i + 2]}`);
  expect(seen.size).toBe(m.positions.length / 3);
}

function sphere(r: number, centre: Vec3, shape: Vec3, id = 1): Uint32Array {
  return volumeOf(shape, (x, y, z) => ((x + 0.5 - centre[0]) ** 2 + (y + 0.5 - centre[1]) ** 2 + (z + 0.5 - centre[2]) ** 2 <= r * r ? id : 0));
}

describe("marching cubes tables", () => {
  it("give a closed, consistently wound surface for every one of the 256 cube cases", () => {
    for (let mask = 1; mask < 255; ++mask) {
      const labels = volumeOf([2, 2, 2], (x, y, z) => ((mask >> (x + 2 * y + 4 * z)) & 1 ? 7 : 0));
      for (const smooth of [false, true]) {
        const m = meshSegments(labels, [2, 2, 2], [1, 1, 1], { smooth }).get(7);
        if (!m) throw new Error("no mesh");
        expectClosedAndConsistent(m);
        expect(signedVolume(m)).toBeGreaterThan(0);
      }
      expect(TRIANGLES[mask].length).toBeGreaterThan(0);
    }
  });
});

describe("meshSegments", () => {
  it("random noise (every ambiguous configuration, across cubes): meshes stay closed and consistently wound", () => {
    let seed = 12345;
    const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    const shape: Vec3 = [14, 13, 12];
    for (const density of [0.3, 0.5, 0.7]) {
      const labels = volumeOf(shape, () => (rand() < density ? 1 + Math.floor(rand() * 3) : 0));
      for (const smooth of [false, true]) {
        const meshes = meshSegments(labels, shape, [5, 5, 45], { smooth, downsample: [1, 1, 1] });
        expect(meshes.size).toBe(3);
        for (const m of meshes.values()) {
          expectClosedAndConsistent(m);
          expect(signedVolume(m)).toBeGreaterThan(0);
        }
      }
    }
  });

  it("sphere r = 40 voxels: volume within 3%, area within 8%, closed, outward, shared vertices", () => {
    const r = 40;
    const shape: Vec3 = [90, 90, 90];
    const v = 4; // nm, isotropic
    const labels = sphere(r, [45, 45, 45], shape, 3);
    const m = meshSegments(labels, shape, [v, v, v], { downsample: [1, 1, 1] }).get(3);
    if (!m) throw new Error("no mesh");
    const R = r * v;
    const vol = signedVolume(m);
    expect(vol).toBeGreaterThan(0);
    expect(Math.abs(vol / ((4 / 3) * Math.PI * R ** 3) - 1)).toBeLessThan(0.03);
    expect(Math.abs(triangleArea(m.positions, m.indices) / (4 * Math.PI * R ** 2) - 1)).toBeLessThan(0.08);
    expectClosedAndConsistent(m);
    expectNoDuplicateVertices(m);
    // physical placement: centred at (45 voxels) * 4 nm, reaching about r on each side
    for (let d = 0; d < 3; ++d) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = d; i < m.positions.length; i += 3) {
        lo = Math.min(lo, m.positions[i]);
        hi = Math.max(hi, m.positions[i]);
      }
      expect(Math.abs((lo + hi) / 2 - 45 * v)).toBeLessThan(0.5 * v);
      expect(Math.abs((hi - lo) / 2 - R)).toBeLessThan(1.5 * v);
    }
  });

  it("unsmoothed box: faces on voxel boundaries in nm, anisotropic voxels respected", () => {
    const shape: Vec3 = [30, 20, 10];
    const labels = volumeOf(shape, (x, y, z) => (x >= 10 && x < 20 && y >= 5 && y < 15 && z >= 2 && z < 6 ? 9 : 0));
    const voxel: Vec3 = [5, 5, 45];
    const m = meshSegments(labels, shape, voxel, { smooth: false, downsample: [1, 1, 1] }).get(9);
    if (!m) throw new Error("no mesh");
    const ext = [0, 1, 2].map((d) => {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = d; i < m.positions.length; i += 3) {
        lo = Math.min(lo, m.positions[i]);
        hi = Math.max(hi, m.positions[i]);
      }
      return [lo, hi];
    });
    expect(ext).toEqual([
      [50, 100],
      [25, 75],
      [90, 270],
    ]);
    // corners and edges are chamfered by half a voxel: slightly under the box volume, never over
    const box = 50 * 50 * 180;
    expect(signedVolume(m)).toBeLessThan(box);
    expect(signedVolume(m)).toBeGreaterThan(0.9 * box);
    expectClosedAndConsistent(m);
  });

  it("smoothing keeps one-section-thin sheets and single voxels at their raw thickness", () => {
    const shape: Vec3 = [30, 30, 5];
    const labels = volumeOf(shape, (x, y, z) => (z === 2 && x >= 5 && x < 25 && y >= 5 && y < 25 ? 4 : x === 1 && y === 1 && z === 0 ? 6 : 0));
    const meshes = meshSegments(labels, shape, [5, 5, 45], { downsample: [1, 1, 1] });
    const sheet = meshes.get(4);
    const speck = meshes.get(6);
    if (!sheet || !speck) throw new Error("lost a thin structure");
    let zmin = Infinity;
    let zmax = -Infinity;
    for (let i = 2; i < sheet.positions.length; i += 3) {
      zmin = Math.min(zmin, sheet.positions[i]);
      zmax = Math.max(zmax, sheet.positions[i]);
    }
    expect([zmin, zmax]).toEqual([90, 135]); // one 45 nm section, not thinned by the blur
    expect(signedVolume(sheet)).toBeGreaterThan(0.8 * 100 * 100 * 45);
    // a lone voxel at the volume corner: the raw octahedron, 1/6 of the voxel
    expect(signedVolume(speck)).toBeCloseTo((5 * 5 * 45) / 6, 3);
    expectClosedAndConsistent(sheet);
    expectClosedAndConsistent(speck);
  });

  it("meshes each segment separately, skips background, honours ids", () => {
    const shape: Vec3 = [40, 20, 20];
    // two touching half-spheres' worth of labels, plus a 1-voxel speck
    const labels = volumeOf(shape, (x, y, z) => {
      if (x === 39 && y === 19 && z === 19) return 5;
      const inBall = (x + 0.5 - 20) ** 2 + (y + 0.5 - 10) ** 2 + (z + 0.5 - 10) ** 2 <= 64;
      return inBall ? (x < 20 ? 1 : 2) : 0;
    });
    const all = meshSegments(labels, shape, [1, 1, 1]);
    expect([...all.keys()]).toEqual([1, 2, 5]);
    for (const m of all.values()) {
      expectClosedAndConsistent(m);
      expect(signedVolume(m)).toBeGreaterThan(0);
    }
    // a segment touching the volume edge is closed there too (outside the volume counts as background)
    expect(all.get(5)?.indices.length).toBeGreaterThan(0);
    const only = meshSegments(labels, shape, [1, 1, 1], { ids: [2] });
    expect([...only.keys()]).toEqual([2]);
    expect(only.get(2)?.positions).toEqual(all.get(2)?.positions);
    expect(meshSegments(labels, shape, [1, 1, 1], { ids: [77] }).size).toBe(0);
  });

  it("downsampling cuts triangles and keeps the shape; the default picks a factor to fit the budget", () => {
    const r = 30;
    const shape: Vec3 = [70, 70, 70];
    const labels = sphere(r, [35, 35, 35], shape);
    const full = meshSegments(labels, shape, [1, 1, 1], { downsample: [1, 1, 1] }).get(1);
    const coarse = meshSegments(labels, shape, [1, 1, 1], { downsample: [4, 4, 1] }).get(1);
    const auto = meshSegments(labels, shape, [1, 1, 1], { maxVoxels: 40_000 }).get(1);
    if (!full || !coarse || !auto) throw new Error("no mesh");
    expect(coarse.indices.length).toBeLessThan(full.indices.length / 3);
    const analytic = (4 / 3) * Math.PI * r ** 3;
    expect(Math.abs(signedVolume(coarse) / analytic - 1)).toBeLessThan(0.08);
    expectClosedAndConsistent(coarse);
    // 74 x 74 x 64 padded voxels > 40k, so in-plane factor 4 (19 x 19 x 64 blocks fits)
    expect(auto.indices).toEqual(coarse.indices);
    expect(meshSegments(labels, shape, [1, 1, 1]).get(1)?.indices).toEqual(full.indices);
  });

  it("rejects inconsistent input with PipelineError", () => {
    const bad: (() => unknown)[] = [
      () => meshSegments(new Uint32Array(7), [2, 2, 2], [1, 1, 1]),
      () => meshSegments(new Uint32Array(8), [2, 2, 2], [1, 0, 1]),
      () => meshSegments(new Uint32Array(8), [2, 2, 2], [1, 1, 1], { downsample: [0, 1, 1] }),
      () => meshSegments(new Uint8Array(8) as unknown as Uint32Array, [2, 2, 2], [1, 1, 1]),
      () => meshSegments(new Uint32Array(8), [2, 2, -2] as Vec3, [1, 1, 1]),
    ];
    for (const f of bad) expect(f).toThrow(PipelineError);
    expect(meshSegments(new Uint32Array(0), [0, 0, 0], [1, 1, 1]).size).toBe(0);
  });
});
