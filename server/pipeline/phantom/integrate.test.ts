import { describe, expect, it } from "vitest";
import { admissibleRadii, ballError, tubeCrossSectionError } from "./config.js";
import type { Centreline, Vec3 } from "./geometry.js";
import { distSqPointCentreline } from "./geometry.js";
import { capsuleUnionSurface, integrateCapsuleUnion } from "./integrate.js";
import { measureOrganelle, type Organelle } from "./shapes.js";

const capsuleVolume = (L: number, r: number) => Math.PI * r * r * L + (4 / 3) * Math.PI * r ** 3;
const capsuleArea = (L: number, r: number) => 2 * Math.PI * r * L + 4 * Math.PI * r * r;

/** Independent check: count points of a fine isotropic grid inside the solid. */
function fineGrid(prims: Centreline[], r: number, step: number, clip?: { axis: number; min: number }): { volume: number; centroid: Vec3 } {
  const lo: Vec3 = [Infinity, Infinity, Infinity];
  const hi: Vec3 = [-Infinity, -Infinity, -Infinity];
  for (const p of prims) {
    const pts = p.kind === "point" ? [p.c] : p.kind === "segment" ? [p.a, p.b] : [p.c];
    const pad = p.kind === "arc" ? p.R + r : r;
    for (const q of pts) for (let i = 0; i < 3; i++) {
      lo[i] = Math.min(lo[i] as number, (q[i] as number) - pad);
      hi[i] = Math.max(hi[i] as number, (q[i] as number) + pad);
    }
  }
  if (clip) lo[clip.axis] = Math.max(lo[clip.axis] as number, clip.min);
  let n = 0;
  const c: Vec3 = [0, 0, 0];
  for (let z = lo[2] + step / 2; z < hi[2]; z += step)
    for (let y = lo[1] + step / 2; y < hi[1]; y += step)
      for (let x = lo[0] + step / 2; x < hi[0]; x += step) {
        if (!prims.some((p) => distSqPointCentreline(x, y, z, p) <= r * r)) continue;
        n++;
        c[0] += x;
        c[1] += y;
        c[2] += z;
      }
  return { volume: n * step ** 3, centroid: [c[0] / n, c[1] / n, c[2] / n] };
}

describe("union integration against closed forms", () => {
  it("a single capsule, axis-parallel and tilted", () => {
    const r = 150;
    const flat = integrateCapsuleUnion([{ a: [0, 0, 0], b: [700, 0, 0] }], r);
    expect(Math.abs(flat.volume / capsuleVolume(700, r) - 1)).toBeLessThan(2e-4);
    const b: Vec3 = [300, 200, 400];
    const L = Math.hypot(...b);
    const tilted = integrateCapsuleUnion([{ a: [0, 0, 0], b }], r);
    expect(Math.abs(tilted.volume / capsuleVolume(L, r) - 1)).toBeLessThan(2e-4);
    for (let i = 0; i < 3; i++) expect(Math.abs((tilted.centroid[i] as number) - (b[i] as number) / 2)).toBeLessThan(0.5);
    expect(Math.abs(capsuleUnionSurface([{ a: [0, 0, 0], b }], r) / capsuleArea(L, r) - 1)).toBeLessThan(2e-4);
  });

  it("two identical capsules integrate as one; two collinear halves as their union", () => {
    const r = 120;
    const one = { a: [0, 0, 0] as Vec3, b: [500, 100, 45] as Vec3 };
    const L = Math.hypot(500, 100, 45);
    expect(Math.abs(integrateCapsuleUnion([one, one], r).volume / capsuleVolume(L, r) - 1)).toBeLessThan(2e-4);
    const halves = [
      { a: [250, 0, 0] as Vec3, b: [0, 0, 0] as Vec3 },
      { a: [250, 0, 0] as Vec3, b: [600, 0, 0] as Vec3 },
    ];
    expect(Math.abs(capsuleUnionSurface(halves, r) / capsuleArea(600, r) - 1)).toBeLessThan(5e-4);
    expect(Math.abs(integrateCapsuleUnion(halves, r).volume / capsuleVolume(600, r) - 1)).toBeLessThan(2e-4);
  });

  it("a Y union agrees with a fine-grid count", () => {
    const r = 100;
    const j: Vec3 = [0, 0, 0];
    const prims: Centreline[] = [0, 125, 235].map((deg) => ({ kind: "segment", a: j, b: [300 * Math.cos((deg * Math.PI) / 180), 300 * Math.sin((deg * Math.PI) / 180), deg === 125 ? 45 : 0] }));
    const segs = prims.map((p) => (p.kind === "segment" ? { a: p.a, b: p.b } : { a: j, b: j }));
    const numeric = integrateCapsuleUnion(segs, r);
    const grid = fineGrid(prims, r, 2.5);
    expect(Math.abs(numeric.volume / grid.volume - 1)).toBeLessThan(3e-3);
    for (let i = 0; i < 3; i++) expect(Math.abs((numeric.centroid[i] as number) - (grid.centroid[i] as number))).toBeLessThan(1);
  });
});

describe("closed-form measures", () => {
  it("arc tube: Pappus volume and centroid agree with a fine grid; length = R phi + 2r", () => {
    const r = 100;
    const arc: Centreline = { kind: "arc", c: [0, 0, 0], R: 300, theta0: -0.9, theta1: 0.9 };
    const o: Organelle = { id: 1, cls: "mito", shape: "arc_tube", r, prims: [arc], seedPoint: [300, 0, 0] };
    const m = measureOrganelle(o, [1e4, 1e4, 1e4]);
    const grid = fineGrid([arc], r, 3);
    expect(Math.abs(m.volumeNm3 / grid.volume - 1)).toBeLessThan(3e-3);
    for (let i = 0; i < 3; i++) expect(Math.abs((m.centroidNm[i] as number) - (grid.centroid[i] as number))).toBeLessThan(1);
    expect(m.mito?.lengthNm).toBeCloseTo(300 * 1.8 + 2 * r, 9);
    expect(m.mito?.branched).toBe(false);
  });

  it("nucleus cap: volume and centroid agree with a fine grid", () => {
    const R = 600;
    const c: Vec3 = [-400, 1000, 1000];
    const o: Organelle = { id: 1, cls: "nucleus", shape: "sphere_cap", r: R, prims: [{ kind: "point", c }], seedPoint: [100, 1000, 1000] };
    const m = measureOrganelle(o, [3000, 2000, 2000]);
    const grid = fineGrid([{ kind: "point", c }], R, 4, { axis: 0, min: 0 });
    expect(Math.abs(m.volumeNm3 / grid.volume - 1)).toBeLessThan(3e-3);
    expect(Math.abs(m.centroidNm[0] - grid.centroid[0])).toBeLessThan(1);
    expect(m.cutFaceNm2).toBeCloseTo(Math.PI * (R * R - 400 * 400), 6);
  });

  it("sphere sphericity is 1 and capsules are less round", () => {
    const s = measureOrganelle({ id: 1, cls: "ld", shape: "sphere", r: 200, prims: [{ kind: "point", c: [0, 0, 0] }], seedPoint: [0, 0, 0] }, [1, 1, 1]);
    expect(s.sphericity).toBeCloseTo(1, 12);
    const c = measureOrganelle({ id: 2, cls: "mito", shape: "capsule", r: 150, prims: [{ kind: "segment", a: [0, 0, 0], b: [800, 0, 0] }], seedPoint: [0, 0, 0] }, [1, 1, 1]);
    expect(c.sphericity).toBeLessThan(0.9);
    expect(c.mito?.lengthNm).toBe(800 + 300);
  });
});

describe("representable radii", () => {
  it("keeps (m + 1/2)-voxel radii with small zero-phase error at 5 x 5 x 45 nm", () => {
    const radii = admissibleRadii([120, 220], [5, 5, 45], "tube", 0.02);
    expect(radii.length).toBeGreaterThan(5);
    for (const r of radii) {
      expect((r / 5) % 1).toBeCloseTo(0.5, 9);
      expect(Math.abs(tubeCrossSectionError(r, 5, 45))).toBeLessThanOrEqual(0.02);
    }
    expect(radii).not.toContain(132.5); // -6.6% at zero phase
    expect(Math.abs(ballError(102.5, [5, 5, 45]))).toBeLessThan(0.02);
  });
});
