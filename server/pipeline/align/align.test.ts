import { beforeAll, describe, expect, it } from "vitest";
import { apply, compose, invert, type Affine } from "./affine.js";
import { alignStack, estimateAlignment, type Stack } from "./align.js";
import { DEFAULT_COARSE, coarseAlign } from "./coarse.js";
import { PhaseCorrelator } from "./correlate.js";
import { emSection512 } from "./fixtures.js";
import { mapRow, type SectionMap } from "./map.js";
import { silentProgress } from "../progress.js";
import { cropWarp, elasticAt, warpSection, type Warp } from "./synth.js";

const S = 320;
let full: { data: Uint8Array; width: number; height: number };
let centre: [number, number];
let crop: Warp;

beforeAll(async () => {
  full = await emSection512();
  centre = [(full.width - S) / 2, (full.height - S) / 2];
  crop = cropWarp(centre[0], centre[1]);
});

function stackOf(sections: (Uint8Array | Uint16Array)[]): Stack {
  const data = new Uint8Array(S * S * sections.length);
  sections.forEach((s, z) => data.set(s, z * S * S));
  return { data, shape: [S, S, sections.length] };
}

/** A warp about the crop centre: rotation (deg), scale, shear, translation (px), optional elastic modes. */
function warpOf(rotDeg: number, scale: number, shear: number, tx: number, ty: number, modes: Warp["modes"] = []): Warp {
  const th = (rotDeg * Math.PI) / 180;
  const lin: Affine = compose([Math.cos(th) * scale, -Math.sin(th) * scale, 0, Math.sin(th) * scale, Math.cos(th) * scale, 0], [1, shear, 0, 0, 1, 0]);
  const c = (S - 1) / 2;
  const affine = compose([1, 0, centre[0] + c + tx, 0, 1, centre[1] + c + ty], compose(lin, [1, 0, -c, 0, 1, -c]));
  return { affine, modes };
}

/** Largest distance over the interior between the aligned map's source point and the true one. */
function mapError(map: SectionMap, model: Parameters<typeof mapRow>[1], truth: (x: number, y: number) => [number, number], margin: number): { max: number; median: number } {
  const errs: number[] = [];
  const xs = new Float64Array(S);
  const ys = new Float64Array(S);
  for (let y = margin; y < S - margin; y += 8) {
    mapRow(map, model, y, 0, S, xs, ys);
    for (let x = margin; x < S - margin; x += 8) {
      const [tx, ty] = truth(x, y);
      errs.push(Math.hypot((xs[x] as number) - tx, (ys[x] as number) - ty));
    }
  }
  errs.sort((a, b) => a - b);
  return { max: errs[errs.length - 1] as number, median: errs[errs.length >> 1] as number };
}

describe("alignment on real EM crops", () => {
  it("phase correlation recovers a sub-pixel shift of a real patch", () => {
    const corr = new PhaseCorrelator(128);
    const a = new Float64Array(128 * 128);
    const b = new Float64Array(128 * 128);
    const [dx, dy] = [3.3, -1.7];
    for (let y = 0; y < 128; y++) {
      for (let x = 0; x < 128; x++) {
        const sx = 192 + x;
        const sy = 192 + y;
        a[y * 128 + x] = full.data[sy * full.width + sx] as number;
        // b(p) = a(p - d), bilinear
        const qx = sx - dx;
        const qy = sy - dy;
        const x0 = Math.floor(qx);
        const y0 = Math.floor(qy);
        const fx = qx - x0;
        const fy = qy - y0;
        const g = (i: number, j: number): number => full.data[j * full.width + i] as number;
        b[y * 128 + x] = g(x0, y0) * (1 - fx) * (1 - fy) + g(x0 + 1, y0) * fx * (1 - fy) + g(x0, y0 + 1) * (1 - fx) * fy + g(x0 + 1, y0 + 1) * fx * fy;
      }
    }
    const s = corr.correlate(a, b);
    expect(s).toBeDefined();
    expect(Math.abs((s?.dx ?? 0) - dx)).toBeLessThan(0.1);
    expect(Math.abs((s?.dy ?? 0) - dy)).toBeLessThan(0.1);
    expect(s?.ratio ?? 0).toBeGreaterThan(2);
  });

  it("coarse alignment recovers rotation 8 deg, scale 1.04, shear and translation within 0.5 px", async () => {
    const s0 = warpSection(full.data, full.width, full.height, crop, S, S).data;
    const w1 = warpOf(8, 1.04, 0.02, 35, -28);
    const s1 = warpSection(full.data, full.width, full.height, w1, S, S).data;
    const stack = stackOf([s0, s1]);
    const coarse = await coarseAlign(stack.data, S, S, 2, DEFAULT_COARSE, silentProgress);
    expect(coarse[1]?.status).toBe("ok");
    // Aligned section 1 at p samples warped s1 at T(p); truth: W1^-1(C(p)).
    const truth = compose(invert(w1.affine), crop.affine);
    const t = coarse[1]?.affine as Affine;
    let worst = 0;
    for (let y = 40; y < S - 40; y += 20) {
      for (let x = 40; x < S - 40; x += 20) {
        const [a, b] = apply(t, x, y);
        const [c, d] = apply(truth, x, y);
        worst = Math.max(worst, Math.hypot(a - c, b - d));
      }
    }
    expect(worst).toBeLessThan(0.5);
    // Refinement by patch correlation tightens it further.
    const refined = await estimateAlignment(stack, { elastic: false });
    const e = mapError(refined.maps[1] as SectionMap, refined.grid, (x, y) => apply(truth, x, y), 40);
    expect(e.max).toBeLessThan(0.25);
  });

  it("elastic stage recovers a known smooth displacement field", async () => {
    const s0 = warpSection(full.data, full.width, full.height, crop, S, S).data;
    const modes: Warp["modes"] = [
      { kx: (2 * Math.PI) / 300, ky: (2 * Math.PI) / 700, phase: 0.3, ax: 1.8, ay: -0.9 },
      { kx: (-2 * Math.PI) / 500, ky: (2 * Math.PI) / 350, phase: 2.1, ax: -0.6, ay: 1.4 },
    ];
    const w1 = warpOf(0, 1, 0, 0, 0, modes);
    const s1 = warpSection(full.data, full.width, full.height, w1, S, S).data;
    const stack = stackOf([s0, s1]);
    const model = await estimateAlignment(stack, { stride: 24 });
    // The model's source point q for output p must satisfy q + e(q) = p (inverse of the synthetic warp).
    const map = model.maps[1] as SectionMap;
    const errs: number[] = [];
    const xs = new Float64Array(S);
    const ys = new Float64Array(S);
    for (let y = 64; y < S - 64; y += 6) {
      mapRow(map, model.grid, y, 0, S, xs, ys);
      for (let x = 64; x < S - 64; x += 6) {
        const qx = xs[x] as number;
        const qy = ys[x] as number;
        const [ex, ey] = elasticAt(w1, qx, qy);
        errs.push(Math.hypot(qx + ex - x, qy + ey - y));
      }
    }
    errs.sort((a, b) => a - b);
    expect(errs[errs.length >> 1]).toBeLessThan(0.15);
    expect(errs[Math.floor(errs.length * 0.95)]).toBeLessThan(0.4);
    // Affine-only cannot: the same stack scored with elastic off is visibly worse.
    const affine = await estimateAlignment(stack, { elastic: false, iterations: 1 });
    const e2 = mapError(affine.maps[1] as SectionMap, affine.grid, (x, y) => [x, y], 64);
    expect(e2.max).toBeGreaterThan(1);
  });

  it("spring mesh does not drift on a stack of identical sections", async () => {
    const s0 = warpSection(full.data, full.width, full.height, crop, S, S).data;
    const stack = stackOf(Array.from({ length: 4 }, () => s0));
    const { aligned, report, model } = await alignStack(stack, { stride: 40, iterations: 2 });
    expect(report.flagged).toEqual([]);
    for (let z = 1; z < 4; z++) {
      const e = mapError(model.maps[z] as SectionMap, model.grid, (x, y) => [x, y], 0);
      expect(e.max).toBeLessThan(0.05);
    }
    // Identity maps resample to the same bytes (up to rounding).
    let diff = 0;
    for (let i = 0; i < S * S; i++) diff = Math.max(diff, Math.abs((aligned.data[3 * S * S + i] as number) - (s0[i] as number)));
    expect(diff).toBeLessThanOrEqual(1);
  });
});
