/**
 * align-eval (EVALUATION.md): warps an aligned real stack with seeded affine + elastic deformations
 * (slice 0 untouched) and scores the aligner by two measures that do not add up along z:
 * (a) warp recovery, align(warped) vs align(unwarped) per 96-px patch; (b) adjacent-section
 * consistency, shift(aligned[k-1] -> aligned[k]) minus the same shift in the original; plus the NCC
 * between neighbours. Scoring against the original itself is avoided on purpose: real sections move
 * ~0.25 px per step and any chained registration follows that motion.
 */
import { createRng } from "../random.js";
import { silentProgress, type Progress } from "../progress.js";
import { alignStack, type AlignOptions, type AlignReport, type Stack } from "./align.js";
import { PhaseCorrelator } from "./correlate.js";
import { sectionView } from "./image.js";
import { mapRow, type SectionMap } from "./map.js";
import { DEFAULT_LIMITS, cropWarp, elasticAt, randomWarp, warpSection, type Warp, type WarpLimits } from "./synth.js";
import type { AlignModel } from "./align.js";

export interface EvalOptions {
  sections?: number;
  seed?: number;
  limits?: WarpLimits;
  align?: AlignOptions;
  progress?: Progress;
  /** Evaluation patch size and stride (px). */
  patch?: number;
  stride?: number;
}

export interface Scores {
  warpRecovery: { medianPx: number; p95Px: number; patches: number; perSectionMedianPx: number[] };
  /**
   * The same comparison without correlation noise: align(warped)'s map composed with the known synthetic
   * warp against align(unwarped)'s map, at every 8th pixel of the central 70%, in source pixels.
   */
  exactRecovery: { medianPx: number; p95Px: number; perSectionMedianPx: number[] };
  adjacentConsistency: { medianPx: number; p95Px: number; patches: number; perSectionMedianPx: number[] };
  /** Same, against align(unwarped) instead of the original: the real section-to-section motion cancels. */
  adjacentVsUnwarped: { medianPx: number; p95Px: number; patches: number };
  /**
   * align(unwarped)'s own adjacent consistency against the original: the floor for (b) of any aligner that,
   * like this one, registers neighbours and so removes their real motion. Per section to show a z trend.
   */
  unwarpedVsOriginal: { medianPx: number; p95Px: number; patches: number; perSectionMedianPx: number[] };
  ncc: { mean: number; perSection: number[] };
  /** |shift(original[k-1] -> original[k])|: the real motion between neighbours that (b) is measured against. */
  originalNeighbourShift: { medianPx: number; p95Px: number };
  megapixelsPerSecond: number;
  seconds: number;
  flagged: number[];
}

export interface EvalResult {
  crop: [number, number];
  sections: number;
  seed: number;
  nccOriginal: { mean: number; perSection: number[] };
  nccWarped: { mean: number; perSection: number[] };
  elastic: Scores;
  affineOnly: Scores;
  maxRssMiB: number;
}

/** The crop (centred) and the warps; slice 0 keeps the identity so both stacks share its frame. */
export function makeEvalStacks(source: Stack, sections: number, seed: number, limits: WarpLimits = DEFAULT_LIMITS): { original: Stack; warped: Stack; warps: Warp[]; offset: [number, number] } {
  const [w, h, d] = source.shape;
  const n = Math.min(sections, d);
  // Worst case reach of rotation + scale + shear + translation + elastic must stay inside the source.
  const side = Math.floor(Math.min(w, h) / (1 + 2 * limits.maxTranslation + 0.55) / 16) * 16;
  const cw = side;
  const ch = side;
  const x0 = Math.floor((w - cw) / 2);
  const y0 = Math.floor((h - ch) / 2);
  const rng = createRng(seed);
  const original = new (source.data instanceof Uint16Array ? Uint16Array : Uint8Array)(cw * ch * n);
  const warped = new (source.data instanceof Uint16Array ? Uint16Array : Uint8Array)(cw * ch * n);
  const warps: Warp[] = [];
  for (let z = 0; z < n; z++) {
    const src = sectionView(source.data, w, h, z);
    const id = cropWarp(x0, y0);
    original.set(warpSection(src, w, h, id, cw, ch).data, z * cw * ch);
    let warp = id;
    if (z > 0) {
      for (let attempt = 0; attempt < 50; attempt++) {
        warp = randomWarp(rng.fork(`section ${z} try ${attempt}`), [cw, ch], [w / 2 - 0.5, h / 2 - 0.5], limits);
        const r = warpSection(src, w, h, warp, cw, ch);
        if (r.outside === 0) {
          warped.set(r.data, z * cw * ch);
          break;
        }
        if (attempt === 49) throw new Error(`could not draw a warp keeping section ${z} inside the source`);
      }
    } else warped.set(original.subarray(0, cw * ch), 0);
    warps.push(warp);
  }
  return { original: { data: original, shape: [cw, ch, n] }, warped: { data: warped, shape: [cw, ch, n] }, warps, offset: [x0, y0] };
}

function validMask(model: AlignModel, z: number, w: number, h: number): Uint8Array {
  const mask = new Uint8Array(w * h);
  const xs = new Float64Array(w);
  const ys = new Float64Array(w);
  for (let y = 0; y < h; y++) {
    mapRow(model.maps[z] as SectionMap, model.grid, y, 0, w, xs, ys);
    for (let x = 0; x < w; x++) {
      const sx = xs[x] as number;
      const sy = ys[x] as number;
      mask[y * w + x] = sx >= 0 && sy >= 0 && sx <= w - 1 && sy <= h - 1 ? 1 : 0;
    }
  }
  return mask;
}

class PatchScorer {
  private readonly corr: PhaseCorrelator;
  private readonly pa: Float64Array;
  private readonly pb: Float64Array;
  constructor(readonly w: number, readonly h: number, readonly patch: number, readonly stride: number) {
    this.corr = new PhaseCorrelator(patch);
    this.pa = new Float64Array(patch * patch);
    this.pb = new Float64Array(patch * patch);
  }

  /** Patch origins inside the central 70% of the image. */
  origins(): [number, number][] {
    const out: [number, number][] = [];
    const m = 0.15;
    for (let y = Math.ceil(m * this.h); y + this.patch <= Math.floor((1 - m) * this.h); y += this.stride) {
      for (let x = Math.ceil(m * this.w); x + this.patch <= Math.floor((1 - m) * this.w); x += this.stride) out.push([x, y]);
    }
    return out;
  }

  shift(a: ArrayLike<number>, b: ArrayLike<number>, x0: number, y0: number, masks: (Uint8Array | undefined)[]): [number, number] | undefined {
    const { w, patch } = this;
    for (let j = 0; j < patch; j++) {
      for (let i = 0; i < patch; i++) {
        const k = (y0 + j) * w + x0 + i;
        for (const m of masks) if (m && !m[k]) return undefined;
        this.pa[j * patch + i] = a[k] as number;
        this.pb[j * patch + i] = b[k] as number;
      }
    }
    const s = this.corr.correlate(this.pa, this.pb, patch / 4);
    return s && s.ratio >= 1.2 ? [s.dx, s.dy] : undefined;
  }
}

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((x, y) => x - y);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

function r3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

export function ncc(a: ArrayLike<number>, b: ArrayLike<number>, mask?: Uint8Array): number {
  let n = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    if (mask && !mask[i]) continue;
    n++;
    sa += a[i] as number;
    sb += b[i] as number;
  }
  const ma = sa / n;
  const mb = sb / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    if (mask && !mask[i]) continue;
    const x = (a[i] as number) - ma;
    const y = (b[i] as number) - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

function nccSeries(stack: Stack, masks?: Uint8Array[]): { mean: number; perSection: number[] } {
  const [w, h, d] = stack.shape;
  const per: number[] = [];
  for (let z = 1; z < d; z++) {
    let mask: Uint8Array | undefined;
    if (masks) {
      mask = new Uint8Array(w * h);
      const ma = masks[z - 1] as Uint8Array;
      const mb = masks[z] as Uint8Array;
      for (let i = 0; i < mask.length; i++) mask[i] = (ma[i] as number) & (mb[i] as number);
    }
    per.push(r3(ncc(sectionView(stack.data, w, h, z - 1), sectionView(stack.data, w, h, z), mask)));
  }
  return { mean: r3(per.reduce((s, v) => s + v, 0) / Math.max(1, per.length)), perSection: per };
}

/** Per section: |W_k(M^w_k(p)) - (M^u_k(p) + offset)| over the central 70%, every 8th pixel. */
function exactRecovery(u: AlignModel, t: AlignModel, warps: Warp[], offset: [number, number], w: number, h: number): Scores["exactRecovery"] {
  const all: number[] = [];
  const per: number[] = [];
  const xs = new Float64Array(w);
  const ys = new Float64Array(w);
  const ux = new Float64Array(w);
  const uy = new Float64Array(w);
  for (let z = 1; z < warps.length; z++) {
    const warp = warps[z] as Warp;
    const [a, b, c, d, e, f] = warp.affine;
    const errs: number[] = [];
    for (let y = Math.ceil(0.15 * h); y <= 0.85 * h; y += 8) {
      mapRow(t.maps[z] as SectionMap, t.grid, y, 0, w, xs, ys);
      mapRow(u.maps[z] as SectionMap, u.grid, y, 0, w, ux, uy);
      for (let x = Math.ceil(0.15 * w); x <= 0.85 * w; x += 8) {
        const qx = xs[x] as number;
        const qy = ys[x] as number;
        const [ex, ey] = elasticAt(warp, qx, qy);
        const sx = a * (qx + ex) + b * (qy + ey) + c;
        const sy = d * (qx + ex) + e * (qy + ey) + f;
        errs.push(Math.hypot(sx - (ux[x] as number) - offset[0], sy - (uy[x] as number) - offset[1]));
      }
    }
    all.push(...errs);
    per.push(r3(quantile(errs, 0.5)));
  }
  return { medianPx: r3(quantile(all, 0.5)), p95Px: r3(quantile(all, 0.95)), perSectionMedianPx: per };
}

async function score(original: Stack, warped: Stack, warps: Warp[], offset: [number, number], options: AlignOptions, patch: number, stride: number): Promise<Scores> {
  const [w, h, d] = original.shape;
  const u = await alignStack(original, options);
  const t = await alignStack(warped, options);
  const scorer = new PatchScorer(w, h, patch, stride);
  const origins = scorer.origins();
  const masksW = Array.from({ length: d }, (_, z) => validMask(t.model, z, w, h));
  const masksU = Array.from({ length: d }, (_, z) => validMask(u.model, z, w, h));
  const rec: number[] = [];
  const adj: number[] = [];
  const adjU: number[] = [];
  const floor: number[] = [];
  const floorPer: number[] = [];
  const orig: number[] = [];
  const recPer: number[] = [];
  const adjPer: number[] = [];
  for (let z = 1; z < d; z++) {
    const au = sectionView(u.aligned.data, w, h, z);
    const aw = sectionView(t.aligned.data, w, h, z);
    const awPrev = sectionView(t.aligned.data, w, h, z - 1);
    const o = sectionView(original.data, w, h, z);
    const oPrev = sectionView(original.data, w, h, z - 1);
    const recZ: number[] = [];
    const adjZ: number[] = [];
    const floorZ: number[] = [];
    for (const [x0, y0] of origins) {
      const r = scorer.shift(au, aw, x0, y0, [masksU[z], masksW[z]]);
      if (r) recZ.push(Math.hypot(r[0], r[1]));
      const s1 = scorer.shift(awPrev, aw, x0, y0, [masksW[z - 1], masksW[z]]);
      const s0 = scorer.shift(oPrev, o, x0, y0, []);
      if (s1 && s0) adjZ.push(Math.hypot(s1[0] - s0[0], s1[1] - s0[1]));
      if (s0) orig.push(Math.hypot(s0[0], s0[1]));
      const su = scorer.shift(sectionView(u.aligned.data, w, h, z - 1), au, x0, y0, [masksU[z - 1], masksU[z]]);
      if (s1 && su) adjU.push(Math.hypot(s1[0] - su[0], s1[1] - su[1]));
      if (su && s0) floorZ.push(Math.hypot(su[0] - s0[0], su[1] - s0[1]));
    }
    floor.push(...floorZ);
    floorPer.push(r3(quantile(floorZ, 0.5)));
    rec.push(...recZ);
    adj.push(...adjZ);
    recPer.push(r3(quantile(recZ, 0.5)));
    adjPer.push(r3(quantile(adjZ, 0.5)));
  }
  const report: AlignReport = t.report;
  return {
    warpRecovery: { medianPx: r3(quantile(rec, 0.5)), p95Px: r3(quantile(rec, 0.95)), patches: rec.length, perSectionMedianPx: recPer },
    exactRecovery: exactRecovery(u.model, t.model, warps, offset, w, h),
    adjacentConsistency: { medianPx: r3(quantile(adj, 0.5)), p95Px: r3(quantile(adj, 0.95)), patches: adj.length, perSectionMedianPx: adjPer },
    adjacentVsUnwarped: { medianPx: r3(quantile(adjU, 0.5)), p95Px: r3(quantile(adjU, 0.95)), patches: adjU.length },
    unwarpedVsOriginal: { medianPx: r3(quantile(floor, 0.5)), p95Px: r3(quantile(floor, 0.95)), patches: floor.length, perSectionMedianPx: floorPer },
    originalNeighbourShift: { medianPx: r3(quantile(orig, 0.5)), p95Px: r3(quantile(orig, 0.95)) },
    ncc: nccSeries(t.aligned, masksW),
    megapixelsPerSecond: r3(report.megapixelsPerSecond),
    seconds: r3(report.seconds.total),
    flagged: report.flagged,
  };
}

export async function evaluateAlignment(source: Stack, options: EvalOptions = {}): Promise<EvalResult> {
  const sections = options.sections ?? 32;
  const seed = options.seed ?? 1;
  const { original, warped, warps, offset } = makeEvalStacks(source, sections, seed, options.limits ?? DEFAULT_LIMITS);
  const progress = options.progress ?? silentProgress;
  const patch = options.patch ?? 96;
  const stride = options.stride ?? 48;
  const elastic = await score(original, warped, warps, offset, { ...options.align, progress, elastic: true }, patch, stride);
  const affineOnly = await score(original, warped, warps, offset, { ...options.align, progress, elastic: false }, patch, stride);
  return {
    crop: [original.shape[0], original.shape[1]],
    sections: original.shape[2],
    seed,
    nccOriginal: nccSeries(original),
    nccWarped: nccSeries(warped),
    elastic,
    affineOnly,
    maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

