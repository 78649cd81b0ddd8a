/**
 * Skeleton morphometrics against analytic truth. Shapes are defined by formulas (capsules, a tube swept
 * along a circular arc, a tube with sinusoidal radius, unions of capsules, a sphere) and voxelised by
 * voxel centre at 5 x 5 x 45 nm with seeded sub-voxel offsets, then cropped to their bounding box as the
 * pipeline does. Tolerances are bounds on |relative error|, stated per test; measured errors sit well
 * inside them (about 2% for length and width, 1% for Feret, on these shapes).
 */
import { describe, expect, it } from "vitest";
import { createRng, type Rng } from "./random.js";
import { feretMax, measureTube, skeletonize, type Shape3 } from "./skeleton.js";

type V = [number, number, number];
const SPACING: Shape3 = [5, 5, 45];

interface Body {
  inside(p: V): boolean;
  lo: V;
  hi: V;
}

const sub = (a: V, b: V): V => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const norm = (a: V): number => Math.hypot(a[0], a[1], a[2]);

/** Distance from p to segment ab, and where along it (0..1) the nearest point lies. */
function toSegment(p: V, a: V, b: V): { d: number; t: number } {
  const ab = sub(b, a);
  const ap = sub(p, a);
  const L2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
  const t = L2 === 0 ? 0 : Math.max(0, Math.min(1, (ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / L2));
  return { d: norm(sub(ap, [t * ab[0], t * ab[1], t * ab[2]])), t };
}

/** Vector of length len at azimuth az (in-plane) and elevation el (out of plane), degrees. */
function dir(len: number, az: number, el = 0): V {
  const a = (az * Math.PI) / 180;
  const e = (el * Math.PI) / 180;
  return [len * Math.cos(e) * Math.cos(a), len * Math.cos(e) * Math.sin(a), len * Math.sin(e)];
}

/** Union of capsules of radius r around segments. */
function capsules(segs: [V, V][], r: number): Body {
  const lo: V = [Infinity, Infinity, Infinity];
  const hi: V = [-Infinity, -Infinity, -Infinity];
  for (const [a, b] of segs)
    for (let c = 0; c < 3; c++) {
      lo[c] = Math.min(lo[c], a[c] - r, b[c] - r);
      hi[c] = Math.max(hi[c], a[c] + r, b[c] + r);
    }
  return { lo, hi, inside: (p) => segs.some(([a, b]) => toSegment(p, a, b).d <= r) };
}

function capsule(L: number, r: number, az: number, el = 0): Body {
  const h = dir(L / 2, az, el);
  return capsules([[[-h[0], -h[1], -h[2]], h]], r);
}

/** Tube of radius r along an in-plane circular arc (radius R, from angle a0 over `sweep` rad), round caps. */
function arcTube(R: number, a0: number, sweep: number, r: number): Body {
  const e0: V = [R * Math.cos(a0), R * Math.sin(a0), 0];
  const e1: V = [R * Math.cos(a0 + sweep), R * Math.sin(a0 + sweep), 0];
  return {
    lo: [-R - r, -R - r, -r],
    hi: [R + r, R + r, r],
    inside: (p) => {
      const ang = (((Math.atan2(p[1], p[0]) - a0) % (2 * Math.PI)) + 2 * Math.PI) % (2 * Math.PI);
      if (ang <= sweep) return Math.hypot(Math.hypot(p[0], p[1]) - R, p[2]) <= r;
      return Math.min(norm(sub(p, e0)), norm(sub(p, e1))) <= r;
    },
  };
}

/** Straight tube of length L, radius r0 (1 + amp sin(2 pi s / lambda)), caps of radius r0 (L = k lambda). */
function bumpyTube(L: number, r0: number, amp: number, lambda: number, az: number): Body {
  const h = dir(L / 2, az);
  const a: V = [-h[0], -h[1], -h[2]];
  const rMax = r0 * (1 + amp);
  return {
    lo: [-Math.abs(h[0]) - rMax, -Math.abs(h[1]) - rMax, -rMax],
    hi: [Math.abs(h[0]) + rMax, Math.abs(h[1]) + rMax, rMax],
    inside: (p) => {
      const { d, t } = toSegment(p, a, h);
      if (t <= 0 || t >= 1) return d <= r0;
      return d <= r0 * (1 + amp * Math.sin((2 * Math.PI * t * L) / lambda));
    },
  };
}

function sphere(r: number): Body {
  return { lo: [-r, -r, -r], hi: [r, r, r], inside: (p) => norm(p) <= r };
}

interface Voxelised {
  mask: Uint8Array;
  shape: Shape3;
  voxels: number;
}

/** Voxel-centre voxelisation with a random sub-voxel grid offset, cropped to the object's bounding box. */
function voxelise(body: Body, rng: Rng): Voxelised {
  const off: V = [rng.uniform(0, SPACING[0]), rng.uniform(0, SPACING[1]), rng.uniform(0, SPACING[2])];
  const i0 = [0, 1, 2].map((c) => Math.floor((body.lo[c] - off[c]) / SPACING[c]) - 1);
  const n = [0, 1, 2].map((c) => Math.ceil((body.hi[c] - off[c]) / SPACING[c]) + 2 - i0[c]);
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  const hits: V[] = [];
  const at = (c: number, k: number): number => (i0[c] + k) * SPACING[c] + off[c];
  for (let z = 0; z < n[2]; z++)
    for (let y = 0; y < n[1]; y++)
      for (let x = 0; x < n[0]; x++) {
        if (!body.inside([at(0, x), at(1, y), at(2, z)])) continue;
        const q: V = [x, y, z];
        hits.push(q);
        for (let c = 0; c < 3; c++) {
          lo[c] = Math.min(lo[c], q[c]);
          hi[c] = Math.max(hi[c], q[c]);
        }
      }
  const shape: Shape3 = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
  const mask = new Uint8Array(shape[0] * shape[1] * shape[2]);
  for (const [x, y, z] of hits) mask[x - lo[0] + shape[0] * (y - lo[1] + shape[1] * (z - lo[2]))] = 1;
  return { mask, shape, voxels: hits.length };
}

const rel = (measured: number, truth: number): number => Math.abs(measured - truth) / truth;

describe("feretMax", () => {
  it("is the corner-to-corner diagonal of a box of voxels", () => {
    const shape: Shape3 = [7, 3, 2];
    const mask = new Uint8Array(42).fill(1);
    expect(feretMax(mask, shape, SPACING)).toBeCloseTo(Math.hypot(35, 15, 90), 9);
    expect(feretMax(Uint8Array.of(1), [1, 1, 1], SPACING)).toBeCloseTo(Math.hypot(5, 5, 45), 9);
  });

  it("takes the farthest pair across sections, not within one", () => {
    // Two voxels at opposite corners of a 10 x 10 x 4 box: the object is just those two boxes.
    const shape: Shape3 = [10, 10, 4];
    const mask = new Uint8Array(400);
    mask[0] = 1;
    mask[399] = 1;
    expect(feretMax(mask, shape, SPACING)).toBeCloseTo(Math.hypot(50, 50, 180), 9);
  });
});

describe("measureTube on analytic shapes at 5 x 5 x 45 nm", () => {
  it("the phantom voxelisation itself agrees with the capsule formula (volume within 3%)", () => {
    const rng = createRng("skeleton-volume");
    for (const [L, r] of [
      [1000, 150],
      [600, 120],
    ]) {
      const v = voxelise(capsule(L, r, rng.uniform(0, 180)), rng);
      const truth = Math.PI * r * r * L + (4 / 3) * Math.PI * r ** 3;
      expect(rel(v.voxels * 5 * 5 * 45, truth)).toBeLessThanOrEqual(0.03);
    }
  });

  it("straight in-plane capsules: length (L + 2r) within 10%, width (2r) 12%, Feret 5%, unbranched", () => {
    const rng = createRng("skeleton-capsules");
    const cases: [number, number, number][] = [
      [400, 120, 0],
      [1000, 150, 17],
      [2000, 150, 33],
      [3000, 220, 8],
      [2000, 200, 45],
      [1500, 135, 60],
      [800, 200, 90],
      [2500, 120, 112.5],
      [600, 180, 151],
    ];
    for (const [L, r, az] of cases) {
      const { mask, shape } = voxelise(capsule(L, r, az), rng);
      const m = measureTube(mask, shape, SPACING);
      const what = `capsule L=${L} r=${r} az=${az}`;
      expect(rel(m.length_nm, L + 2 * r), what).toBeLessThanOrEqual(0.1);
      expect(rel(m.width_nm, 2 * r), what).toBeLessThanOrEqual(0.12);
      expect(rel(m.feret_max_nm, L + 2 * r), what).toBeLessThanOrEqual(0.05);
      expect(m.branched, what).toBe(false);
      expect(m.branch_count, what).toBe(0);
      expect(m.endpoints, what).toBe(2);
    }
  });

  it("capsules tilted 20-30 degrees out of the section plane: same bounds", () => {
    const rng = createRng("skeleton-tilted");
    for (const [L, r, az, el] of [
      [1500, 150, 10, 20],
      [1200, 130, 40, 25],
      [2000, 180, 75, 30],
    ]) {
      const { mask, shape } = voxelise(capsule(L, r, az, el), rng);
      const m = measureTube(mask, shape, SPACING);
      const what = `tilted L=${L} r=${r} el=${el}`;
      expect(rel(m.length_nm, L + 2 * r), what).toBeLessThanOrEqual(0.1);
      expect(rel(m.width_nm, 2 * r), what).toBeLessThanOrEqual(0.12);
      expect(rel(m.feret_max_nm, L + 2 * r), what).toBeLessThanOrEqual(0.05);
      expect(m.branched, what).toBe(false);
    }
  });

  it("tubes along a circular arc: length (arc + 2r) within 10%, Feret (chord + 2r) 5% and below length", () => {
    const rng = createRng("skeleton-arcs");
    for (const [R, deg, r] of [
      [600, 90, 150],
      [800, 120, 130],
      [1000, 150, 180],
      [700, 140, 120],
    ]) {
      const sweep = (deg * Math.PI) / 180;
      const { mask, shape } = voxelise(arcTube(R, rng.uniform(0, 2 * Math.PI), sweep, r), rng);
      const m = measureTube(mask, shape, SPACING);
      const what = `arc R=${R} ${deg} deg r=${r}`;
      expect(rel(m.length_nm, R * sweep + 2 * r), what).toBeLessThanOrEqual(0.1);
      expect(rel(m.width_nm, 2 * r), what).toBeLessThanOrEqual(0.12);
      expect(rel(m.feret_max_nm, 2 * R * Math.sin(sweep / 2) + 2 * r), what).toBeLessThanOrEqual(0.05);
      expect(m.feret_max_nm, what).toBeLessThan(m.length_nm);
      expect(m.branched, what).toBe(false);
    }
  });

  it("a bumpy tube (radius +-15%, sinusoidal) is not branched; length within 10%, width within 12% of 2 r0", () => {
    const rng = createRng("skeleton-bumpy");
    for (const [k, r0, lambda] of [
      [4, 150, 500],
      [4, 130, 400],
      [4, 180, 600],
      [3, 200, 450],
    ]) {
      const L = k * lambda;
      const { mask, shape } = voxelise(bumpyTube(L, r0, 0.15, lambda, rng.uniform(0, 180)), rng);
      const m = measureTube(mask, shape, SPACING);
      const what = `bumpy L=${L} r0=${r0} lambda=${lambda}`;
      expect(m.branched, what).toBe(false);
      expect(rel(m.length_nm, L + 2 * r0), what).toBeLessThanOrEqual(0.1);
      expect(rel(m.width_nm, 2 * r0), what).toBeLessThanOrEqual(0.12);
    }
  });

  it("Y and T shapes: one branch point, length within 10% of the longest tip-to-tip centreline", () => {
    const rng = createRng("skeleton-branches");
    const shapes: { name: string; r: number; arms: [number, number][] }[] = [
      { name: "T", r: 140, arms: [[0, 900], [180, 900], [90, 600]] },
      { name: "T", r: 120, arms: [[30, 1000], [210, 700], [120, 400]] },
      { name: "Y", r: 140, arms: [[0, 800], [120, 700], [240, 600]] },
      { name: "Y", r: 180, arms: [[10, 700], [130, 700], [250, 450]] },
    ];
    for (const { name, r, arms } of shapes) {
      const turn = rng.uniform(0, 360);
      const segs: [V, V][] = arms.map(([az, len]) => [[0, 0, 0], dir(len, az + turn)]);
      const lens = arms.map((a) => a[1]).sort((a, b) => b - a);
      const { mask, shape } = voxelise(capsules(segs, r), rng);
      const m = measureTube(mask, shape, SPACING);
      const what = `${name} r=${r} arms ${lens.join("/")}`;
      expect(m.branched, what).toBe(true);
      expect(m.branch_count, what).toBe(1);
      expect(m.endpoints, what).toBe(3);
      expect(rel(m.length_nm, lens[0] + lens[1] + 2 * r), what).toBeLessThanOrEqual(0.1);
      expect(rel(m.width_nm, 2 * r), what).toBeLessThanOrEqual(0.12);
    }
  });

  it("prunes a stub of one radius but keeps an arm of 2.5 radii", () => {
    const rng = createRng("skeleton-stubs");
    const r = 150;
    for (const [arm, branched] of [
      [1 * r, false],
      [2.5 * r, true],
    ] as const) {
      const segs: [V, V][] = [
        [dir(-900, 20), dir(900, 20)],
        [[0, 0, 0], dir(arm, 110)],
      ];
      const { mask, shape } = voxelise(capsules(segs, r), rng);
      expect(measureTube(mask, shape, SPACING).branched, `arm ${arm / r} r`).toBe(branched);
    }
  });

  it("a sphere is not branched and its length is its diameter within 10%", () => {
    const rng = createRng("skeleton-sphere");
    for (const r of [200, 300, 400]) {
      const { mask, shape } = voxelise(sphere(r), rng);
      const m = measureTube(mask, shape, SPACING);
      expect(m.branched, `r=${r}`).toBe(false);
      expect(rel(m.length_nm, 2 * r), `r=${r}`).toBeLessThanOrEqual(0.1);
    }
  });
});

describe("skeletonize", () => {
  it("returns a tree inside the object with two endpoints for a capsule", () => {
    const rng = createRng("skeleton-graph");
    const { mask, shape } = voxelise(capsule(1200, 150, 30), rng);
    const sk = skeletonize(mask, shape, SPACING);
    const n = sk.vertices.length / 3;
    expect(sk.edges.length / 2).toBe(n - 1);
    expect(sk.endpoints).toHaveLength(2);
    expect(sk.branchCount).toBe(0);
    for (let i = 0; i < n; i++) {
      const [x, y, z] = [0, 1, 2].map((c) => Math.round(sk.vertices[3 * i + c] / SPACING[c]));
      expect(mask[x + shape[0] * (y + shape[1] * z)]).toBe(1);
      expect(sk.radius[i]).toBeGreaterThan(0);
    }
  });
});

describe("input checks", () => {
  it("rejects a mask that does not fit its shape, bad spacing and an empty mask", () => {
    expect(() => measureTube(new Uint8Array(5), [2, 2, 2], SPACING)).toThrow(RangeError);
    expect(() => measureTube(new Uint8Array(8).fill(1), [2, 2, 2], [5, 0, 45])).toThrow(RangeError);
    expect(() => measureTube(new Uint8Array(8), [2, 2, 2], SPACING)).toThrow(RangeError);
  });

  it("measures a single voxel without failing", () => {
    const m = measureTube(Uint8Array.of(1), [1, 1, 1], SPACING);
    expect(m.branched).toBe(false);
    expect(m.feret_max_nm).toBeCloseTo(Math.hypot(5, 5, 45), 9);
    expect(Number.isFinite(m.length_nm) && Number.isFinite(m.width_nm)).toBe(true);
  });
});
