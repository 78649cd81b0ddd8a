import { describe, expect, it } from "vitest";
import type { Vec3 } from "../../precomputed/array.js";
import {
  contactSurfaceVoxels,
  cropVolume,
  edtBlock,
  edtSquared,
  edtToFeature,
  exactBelowNm,
  haloBox,
  minDistanceToFeature,
  type BlockRequest,
  type DistanceMetric,
  type EdtArray,
  type Shape3,
} from "./edt.js";
import { createRng, type Rng } from "./random.js";

// ---- oracles: the definitions themselves, over all voxel pairs ----

function coords(i: number, [nx, ny]: Shape3): Vec3 {
  return [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
}

/** Squared distance between voxels a and b: centre-to-centre, or face-to-face (DESIGN.md). */
function pair2(a: number, b: number, shape: Shape3, s: Vec3, metric: DistanceMetric): number {
  const ca = coords(a, shape);
  const cb = coords(b, shape);
  let sum = 0;
  for (let k = 0; k < 3; k++) {
    let d = Math.abs(ca[k] - cb[k]);
    if (metric === "face") d = Math.max(0, d - 1);
    sum += s[k] * s[k] * d * d;
  }
  return sum;
}

function bruteField(mask: Uint8Array, shape: Shape3, s: Vec3, targetNonZero: boolean, metric: DistanceMetric): Float64Array {
  const targets: number[] = [];
  for (let i = 0; i < mask.length; i++) if ((mask[i] !== 0) === targetNonZero) targets.push(i);
  const out = new Float64Array(mask.length).fill(Infinity);
  for (let i = 0; i < mask.length; i++) for (const t of targets) out[i] = Math.min(out[i], pair2(i, t, shape, s, metric));
  return out;
}

function expectFieldsEqual(got: EdtArray, want: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const g = got[i];
    const ok = w === Infinity ? g === Infinity : Math.abs(g - w) <= 1e-9 * Math.max(1, w);
    if (!ok) throw new Error(`${what}: voxel ${i}: got ${g}, want ${w}`);
  }
}

function randomMask(rng: Rng, n: number, p: number): Uint8Array {
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = rng.next() < p ? 1 + rng.int(0, 3) : 0;
  return m;
}

const SPACINGS: Vec3[] = [
  [5, 5, 45],
  [1, 1, 1],
  [45, 5, 5],
  [3.7, 2.2, 11.3],
];

describe("edtSquared / edtToFeature against brute force", () => {
  it("matches the oracle on random anisotropic volumes, all metrics and targets", () => {
    const rng = createRng("edt-oracle");
    for (let trial = 0; trial < 60; trial++) {
      const shape: Shape3 = [rng.int(1, 9), rng.int(1, 8), rng.int(1, 6)];
      const n = shape[0] * shape[1] * shape[2];
      const s = SPACINGS[trial % SPACINGS.length];
      const mask = randomMask(rng, n, rng.uniform(0.03, 0.9));
      const tag = `trial ${trial} shape [${shape}] spacing [${s}]`;
      expectFieldsEqual(edtSquared(mask, shape, s), bruteField(mask, shape, s, false, "centre"), `${tag} edtSquared`);
      expectFieldsEqual(edtToFeature(mask, shape, s), bruteField(mask, shape, s, true, "centre"), `${tag} centre`);
      expectFieldsEqual(edtToFeature(mask, shape, s, { metric: "face" }), bruteField(mask, shape, s, true, "face"), `${tag} face`);
    }
  });

  it("gives Infinity without targets and 0 on targets", () => {
    const shape: Shape3 = [4, 3, 2];
    expect([...edtSquared(new Uint8Array(24).fill(1), shape, [5, 5, 45])].every((v) => v === Infinity)).toBe(true);
    expect([...edtSquared(new Uint8Array(24), shape, [5, 5, 45])].every((v) => v === 0)).toBe(true);
    expect([...edtToFeature(new Uint8Array(24), shape, [5, 5, 45], { metric: "face" })].every((v) => v === Infinity)).toBe(true);
  });

  it("maxDistanceNm keeps distances up to the cap and reports the rest as Infinity", () => {
    const rng = createRng("edt-cap");
    const shape: Shape3 = [14, 11, 7];
    const mask = randomMask(rng, 14 * 11 * 7, 0.01);
    for (const metric of ["centre", "face"] as const) {
      const full = edtToFeature(mask, shape, [5, 5, 45], { metric });
      const capped = edtToFeature(mask, shape, [5, 5, 45], { metric, maxDistanceNm: 20 });
      let kept = 0;
      for (let i = 0; i < full.length; i++) {
        if (full[i] <= 400) {
          expect(capped[i]).toBe(full[i]);
          kept++;
        } else expect(capped[i]).toBe(Infinity);
      }
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(full.length);
    }
  });

  it("float32 output equals float64 for integer spacings", () => {
    const rng = createRng("edt-f32");
    const shape: Shape3 = [20, 17, 9];
    const mask = randomMask(rng, 20 * 17 * 9, 0.5);
    const a = edtSquared(mask, shape, [5, 5, 45], { output: "float32" });
    expect(a).toBeInstanceOf(Float32Array);
    expectFieldsEqual(a, edtSquared(mask, shape, [5, 5, 45]), "float32");
  });

  it("rejects mismatched shapes and bad spacings", () => {
    expect(() => edtSquared(new Uint8Array(10), [3, 3, 1], [5, 5, 45])).toThrow(RangeError);
    expect(() => edtSquared(new Uint8Array(9), [3, 3, 1], [5, 0, 45])).toThrow(RangeError);
    expect(() => minDistanceToFeature(new Uint32Array(8), new Uint8Array(9), [3, 3, 1], [5, 5, 45])).toThrow(RangeError);
  });
});

describe("analytic fields", () => {
  const shape: Shape3 = [21, 17, 9];
  const s: Vec3 = [5, 5, 45];
  const n = 21 * 17 * 9;
  const at = (x: number, y: number, z: number): number => x + 21 * (y + 17 * z);

  it("single feature point: sum of (s_i d_i)^2, and the face gap subtracts one step per axis", () => {
    const m = new Uint8Array(n);
    m[at(10, 8, 4)] = 1;
    const c = edtToFeature(m, shape, s);
    const f = edtToFeature(m, shape, s, { metric: "face" });
    for (let z = 0; z < 9; z++)
      for (let y = 0; y < 17; y++)
        for (let x = 0; x < 21; x++) {
          const d = [Math.abs(x - 10), Math.abs(y - 8), Math.abs(z - 4)];
          expect(c[at(x, y, z)]).toBe(25 * d[0] ** 2 + 25 * d[1] ** 2 + 2025 * d[2] ** 2);
          const e = d.map((v) => Math.max(0, v - 1));
          expect(f[at(x, y, z)]).toBe(25 * e[0] ** 2 + 25 * e[1] ** 2 + 2025 * e[2] ** 2);
        }
  });

  it("plane features at known offsets (z = 3 and x = 6)", () => {
    const mz = new Uint8Array(n);
    const mx = new Uint8Array(n);
    for (let z = 0; z < 9; z++)
      for (let y = 0; y < 17; y++)
        for (let x = 0; x < 21; x++) {
          if (z === 3) mz[at(x, y, z)] = 1;
          if (x === 6) mx[at(x, y, z)] = 1;
        }
    const cz = edtToFeature(mz, shape, s);
    const fz = edtToFeature(mz, shape, s, { metric: "face" });
    const cx = edtToFeature(mx, shape, s);
    const fx = edtToFeature(mx, shape, s, { metric: "face" });
    for (let z = 0; z < 9; z++)
      for (let y = 0; y < 17; y++)
        for (let x = 0; x < 21; x++) {
          const i = at(x, y, z);
          expect(Math.sqrt(cz[i])).toBe(45 * Math.abs(z - 3));
          expect(Math.sqrt(fz[i])).toBe(45 * Math.max(0, Math.abs(z - 3) - 1));
          expect(Math.sqrt(cx[i])).toBe(5 * Math.abs(x - 6));
          expect(Math.sqrt(fx[i])).toBe(5 * Math.max(0, Math.abs(x - 6) - 1));
        }
  });
});

describe("face-to-face gap between an organelle and the ER (min_dist_er_nm)", () => {
  const shape: Shape3 = [12, 12, 8];
  const at = (x: number, y: number, z: number): number => x + 12 * (y + 12 * z);
  const gapCase = (er: Vec3): ReturnType<typeof minDistanceToFeature> => {
    const labels = new Uint32Array(12 * 12 * 8);
    const mask = new Uint8Array(12 * 12 * 8);
    labels[at(3, 3, 2)] = 1;
    labels[at(4, 3, 2)] = 1; // a two-voxel organelle along x
    mask[at(...er)] = 1;
    return minDistanceToFeature(labels, mask, shape, [5, 5, 45]);
  };
  const cases: Array<[string, Vec3, number, boolean]> = [
    ["touching in x", [5, 3, 2], 0, true],
    ["diagonal corner touch", [5, 4, 3], 0, false],
    ["edge touch in-plane", [5, 4, 2], 0, true],
    ["1 empty voxel in x", [6, 3, 2], 5, true],
    ["1 empty voxel in z", [4, 3, 4], 45, false],
    ["3 empty voxels in y", [3, 7, 2], 15, true],
    ["2 empty in x and 1 empty in z", [7, 3, 4], Math.hypot(10, 45), false],
    ["touching the next section only", [3, 3, 3], 0, false],
  ];
  for (const [name, er, want, inPlane] of cases) {
    it(`${name} -> ${want.toFixed(2)} nm`, () => {
      const r = gapCase(er);
      expect([...r.ids]).toEqual([1]);
      expect(r.minGapNm[0]).toBeCloseTo(want, 9);
      expect(r.inPlane[0]).toBe(inPlane ? 1 : 0);
      expect(r.featureVoxel[0]).toBe(at(...er));
      // Centre-to-centre overstates (by one voxel along a single axis), never understates.
      const c = edtToFeature(Uint8Array.from({ length: 12 * 12 * 8 }, (_, i) => (i === at(...er) ? 1 : 0)), shape, [5, 5, 45]);
      expect(Math.sqrt(Math.min(c[at(3, 3, 2)], c[at(4, 3, 2)]))).toBeGreaterThan(want);
    });
  }

  it("reports a boundary voxel even when an interior voxel ties for the minimum first in raster order", () => {
    const labels = new Uint32Array(12 * 12 * 8);
    const mask = new Uint8Array(12 * 12 * 8);
    for (let z = 1; z <= 3; z++) for (let y = 3; y <= 5; y++) for (let x = 3; x <= 5; x++) labels[at(x, y, z)] = 1;
    labels[at(5, 5, 2)] = 0;
    mask[at(5, 5, 2)] = 1; // a notch in-plane diagonal to the interior voxel (4, 4, 2): gap 0 there and at its neighbours
    const r = minDistanceToFeature(labels, mask, shape, [5, 5, 45]);
    expect(r.minGapNm[0]).toBe(0);
    expect(r.inPlane[0]).toBe(1);
    expect(r.organelleVoxel[0]).toBe(at(5, 4, 2));
  });

  it("reports the in-plane minimum separately when the overall one is across sections", () => {
    const labels = new Uint32Array(12 * 12 * 8);
    const mask = new Uint8Array(12 * 12 * 8);
    labels[at(3, 3, 2)] = 1;
    mask[at(3, 3, 3)] = 1; // directly above: gap 0 across sections
    mask[at(3, 6, 2)] = 1; // two empty voxels in y, same section: 10 nm
    const r = minDistanceToFeature(labels, mask, shape, [5, 5, 45]);
    expect(r.minGapNm[0]).toBe(0);
    expect(r.minGapInPlaneNm[0]).toBe(10);
    expect(r.inPlane[0]).toBe(0);
    expect(r.featureVoxel[0]).toBe(at(3, 3, 3));
  });
});

// ---- blocks ----

function assembleBlocks(
  mask: Uint8Array,
  shape: Shape3,
  s: Vec3,
  blockShape: Vec3,
  halo: number | Vec3,
  target: "background" | "feature",
  metric: DistanceMetric,
): { field: Float64Array; exact: Float64Array } {
  const n = mask.length;
  const field = new Float64Array(n);
  const exact = new Float64Array(n);
  for (let bz = 0; bz < shape[2]; bz += blockShape[2])
    for (let by = 0; by < shape[1]; by += blockShape[1])
      for (let bx = 0; bx < shape[0]; bx += blockShape[0]) {
        const req: BlockRequest = {
          volumeShape: shape,
          blockOrigin: [bx, by, bz],
          blockShape: [Math.min(blockShape[0], shape[0] - bx), Math.min(blockShape[1], shape[1] - by), Math.min(blockShape[2], shape[2] - bz)],
          haloVoxels: halo,
        };
        const box = haloBox(req);
        const r = edtBlock(cropVolume(mask, shape, box.origin, box.shape), req, s, { target, metric });
        const [cx, cy, cz] = r.shape;
        for (let z = 0; z < cz; z++)
          for (let y = 0; y < cy; y++)
            for (let x = 0; x < cx; x++) {
              const i = bx + x + shape[0] * (by + y + shape[1] * (bz + z));
              field[i] = r.data[x + cx * (y + cy * z)];
              exact[i] = r.exactBelowNm;
            }
      }
  return { field, exact };
}

describe("edtBlock: blockwise equals whole-volume below the halo's guarantee", () => {
  const shape: Shape3 = [40, 34, 13];
  const s: Vec3 = [5, 5, 45];
  const splits: Array<[Vec3, number | Vec3]> = [
    [[16, 16, 4], 3],
    [[7, 13, 5], [4, 4, 1]],
    [[40, 34, 3], 2],
    [[11, 9, 13], [6, 2, 0]],
    [[5, 5, 2], [9, 9, 1]],
  ];
  for (const [target, metric] of [
    ["background", "centre"],
    ["feature", "centre"],
    ["feature", "face"],
  ] as const) {
    it(`${target} / ${metric}`, () => {
      const rng = createRng(`edt-blocks-${target}-${metric}`);
      // Sparse targets so that many distances exceed small halos: the test can then see a wrong halo rule.
      const p = target === "background" ? 0.985 : 0.012;
      const mask = randomMask(rng, shape[0] * shape[1] * shape[2], p);
      const whole = target === "background" ? edtSquared(mask, shape, s) : edtToFeature(mask, shape, s, { metric });
      let checked = 0;
      let beyond = 0;
      for (const [block, halo] of splits) {
        const { field, exact } = assembleBlocks(mask, shape, s, block, halo, target, metric);
        for (let i = 0; i < whole.length; i++) {
          // A block sees a subset of the targets: never closer than the truth.
          if (!(field[i] >= whole[i])) throw new Error(`block [${block}] halo ${String(halo)}: voxel ${i} below truth`);
          if (Math.sqrt(whole[i]) < exact[i]) {
            if (field[i] !== whole[i]) throw new Error(`block [${block}] halo ${String(halo)}: voxel ${i} ${field[i]} != ${whole[i]}`);
            checked++;
          } else if (field[i] !== whole[i]) beyond++;
        }
      }
      expect(checked).toBeGreaterThan(1000);
      // Sanity: halos do matter beyond their guarantee here, so the equality above is not vacuous.
      expect(beyond).toBeGreaterThan(0);
    });
  }

  it("the guarantee is the halo width along the thinnest axis, unlimited where the box reaches the volume edge", () => {
    const req: BlockRequest = { volumeShape: [100, 100, 20], blockOrigin: [40, 40, 8], blockShape: [10, 10, 4], haloVoxels: [6, 6, 1] };
    expect(exactBelowNm(req, [5, 5, 45], "face")).toBe(30);
    expect(exactBelowNm(req, [5, 5, 45], "centre")).toBe(35);
    const whole: BlockRequest = { ...req, blockOrigin: [0, 0, 0], blockShape: [100, 100, 20] };
    expect(exactBelowNm(whole, [5, 5, 45], "face")).toBe(Infinity);
    expect(haloBox({ ...req, blockOrigin: [0, 95, 18], blockShape: [10, 5, 2] })).toEqual({
      origin: [0, 89, 17],
      shape: [16, 11, 3],
      interiorOffset: [0, 6, 1],
    });
  });
});

// ---- per-instance distances and contact surfaces against pair-wise brute force ----

interface RandomScene {
  labels: Uint32Array;
  mask: Uint8Array;
  shape: Shape3;
}

function randomScene(rng: Rng, ids: number[]): RandomScene {
  const shape: Shape3 = [rng.int(4, 11), rng.int(4, 10), rng.int(2, 7)];
  const n = shape[0] * shape[1] * shape[2];
  const labels = new Uint32Array(n);
  const mask = new Uint8Array(n);
  // Instances as random boxes (may overlap each other; later boxes win), the feature as scattered voxels.
  for (const id of ids) {
    const x0 = rng.int(0, shape[0] - 1);
    const y0 = rng.int(0, shape[1] - 1);
    const z0 = rng.int(0, shape[2] - 1);
    const x1 = Math.min(shape[0], x0 + rng.int(1, 6));
    const y1 = Math.min(shape[1], y0 + rng.int(1, 6));
    const z1 = Math.min(shape[2], z0 + rng.int(1, 3));
    for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) labels[x + shape[0] * (y + shape[1] * z)] = id;
  }
  const p = rng.uniform(0.01, 0.15);
  for (let i = 0; i < n; i++) if (labels[i] === 0 && rng.next() < p) mask[i] = 1;
  return { labels, mask, shape };
}

function isBoundaryVoxel(labels: Uint32Array, shape: Shape3, i: number): boolean {
  const [x, y, z] = coords(i, shape);
  const lab = labels[i];
  const nb: Array<[number, number, number]> = [
    [x - 1, y, z],
    [x + 1, y, z],
    [x, y - 1, z],
    [x, y + 1, z],
    [x, y, z - 1],
    [x, y, z + 1],
  ];
  return nb.some(
    ([a, b, c]) => a >= 0 && b >= 0 && c >= 0 && a < shape[0] && b < shape[1] && c < shape[2] && labels[a + shape[0] * (b + shape[1] * c)] !== lab,
  );
}

/** Minimum gap from voxel i to the feature over all feature voxels, and over those in its section. */
function bruteGap(i: number, scene: RandomScene, s: Vec3): { all: number; plane: number } {
  let all = Infinity;
  let plane = Infinity;
  const zi = coords(i, scene.shape)[2];
  for (let j = 0; j < scene.mask.length; j++) {
    if (scene.mask[j] === 0) continue;
    const g = pair2(i, j, scene.shape, s, "face");
    all = Math.min(all, g);
    if (coords(j, scene.shape)[2] === zi) plane = Math.min(plane, g);
  }
  return { all, plane };
}

describe("minDistanceToFeature against brute force over voxel pairs", () => {
  const idSets = [
    [1, 2, 3, 4, 5],
    [7, 3, 1000, 42],
    [5_000_000, 17, 4_000_000_000], // sparse huge ids take the Map path
  ];
  it("minimum gap, in-plane minimum, flag and location on random scenes", () => {
    const rng = createRng("edt-min-dist");
    let inPlaneSeen = 0;
    let acrossSeen = 0;
    for (let trial = 0; trial < 45; trial++) {
      const s = SPACINGS[trial % SPACINGS.length];
      const scene = randomScene(rng, idSets[trial % idSets.length]);
      const r = minDistanceToFeature(scene.labels, scene.mask, scene.shape, s);
      const present = [...new Set(scene.labels)].filter((v) => v !== 0).sort((a, b) => a - b);
      expect([...r.ids]).toEqual(present);
      r.ids.forEach((id, k) => {
        let all = Infinity;
        let plane = Infinity;
        for (let i = 0; i < scene.labels.length; i++) {
          if (scene.labels[i] !== id) continue;
          const g = bruteGap(i, scene, s);
          all = Math.min(all, g.all);
          plane = Math.min(plane, g.plane);
        }
        const tag = `trial ${trial} id ${id}`;
        expectFieldsEqual(Float64Array.of(r.minGapNm[k] ** 2), [all], `${tag} min`);
        expectFieldsEqual(Float64Array.of(r.minGapInPlaneNm[k] ** 2), [plane], `${tag} in-plane min`);
        if (all === Infinity) {
          expect(r.organelleVoxel[k]).toBe(-1);
          return;
        }
        const flat = Math.abs(plane - all) <= 1e-9 * Math.max(1, all);
        expect(r.inPlane[k], tag).toBe(flat ? 1 : 0);
        if (flat) inPlaneSeen++;
        else acrossSeen++;
        const o = r.organelleVoxel[k];
        const f = r.featureVoxel[k];
        expect(scene.labels[o], tag).toBe(id);
        expect(isBoundaryVoxel(scene.labels, scene.shape, o), tag).toBe(true);
        expect(scene.mask[f], tag).toBe(1);
        expectFieldsEqual(Float64Array.of(pair2(o, f, scene.shape, s, "face")), [all], `${tag} pair`);
        if (flat) expect(coords(o, scene.shape)[2]).toBe(coords(f, scene.shape)[2]);
      });
    }
    expect(inPlaneSeen).toBeGreaterThan(10);
    expect(acrossSeen).toBeGreaterThan(3);
  });

  it("maxDistanceNm reports farther instances as Infinity and keeps the rest", () => {
    const rng = createRng("edt-min-cap");
    for (let trial = 0; trial < 10; trial++) {
      const scene = randomScene(rng, [1, 2, 3, 4, 5, 6]);
      const full = minDistanceToFeature(scene.labels, scene.mask, scene.shape, [5, 5, 45]);
      const capped = minDistanceToFeature(scene.labels, scene.mask, scene.shape, [5, 5, 45], { maxDistanceNm: 20 });
      full.minGapNm.forEach((g, k) => expect(capped.minGapNm[k]).toBe(g <= 20 ? g : Infinity));
    }
  });
});

describe("contactSurfaceVoxels against brute force", () => {
  it("keeps exactly the boundary voxels within the threshold, with gap, in-plane flag and a witness", () => {
    const rng = createRng("edt-contacts");
    let total = 0;
    for (let trial = 0; trial < 30; trial++) {
      const s = SPACINGS[trial % 2];
      const scene = randomScene(rng, [1, 2, 3, 9, 12]);
      const threshold = [0, 5, 30, 50][trial % 4];
      const r = contactSurfaceVoxels(scene.labels, scene.mask, scene.shape, s, threshold);
      expect(r.offsets.length).toBe(r.ids.length + 1);
      r.ids.forEach((id, k) => {
        const want: number[] = [];
        for (let i = 0; i < scene.labels.length; i++) {
          if (scene.labels[i] === id && isBoundaryVoxel(scene.labels, scene.shape, i) && bruteGap(i, scene, s).all <= threshold * threshold) want.push(i);
        }
        const got = [...r.voxel.subarray(r.offsets[k], r.offsets[k + 1])];
        expect(got, `trial ${trial} id ${id}`).toEqual(want);
        for (let j = r.offsets[k]; j < r.offsets[k + 1]; j++) {
          const g = bruteGap(r.voxel[j], scene, s);
          expect(r.gapNm[j]).toBeCloseTo(Math.sqrt(g.all), 4);
          expect(r.inPlane[j]).toBe(g.plane === g.all ? 1 : 0);
          const f = r.featureVoxel[j];
          expect(scene.mask[f]).toBe(1);
          expect(pair2(r.voxel[j], f, scene.shape, s, "face")).toBe(g.all);
          if (r.inPlane[j]) expect(coords(f, scene.shape)[2]).toBe(coords(r.voxel[j], scene.shape)[2]);
        }
        total += got.length;
      });
    }
    expect(total).toBeGreaterThan(50);
  });
});
