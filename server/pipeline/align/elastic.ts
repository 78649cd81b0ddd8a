/**
 * Dense displacement between two mapped sections: phase correlation of patches centred on the mesh
 * nodes, then outlier removal by peak ratio and by agreement with the neighbouring nodes. Patches are
 * sampled through the sections' current maps on demand, so memory is a few patches, not whole images.
 */
import { PhaseCorrelator, type Overlap, type PatchShift, type Spectrum } from "./correlate.js";
import { sectionView, type Section } from "./image.js";
import { nodeX, nodeY, samplePatch, type Grid, type SectionMap } from "./map.js";
import { fadeMissing, fillMissing } from "./patch-fill.js";
import { polyFitShifts, rejectInconsistent, smoothShifts, type PairShifts } from "./shift-field.js";

export type { PairShifts };

export interface ElasticOptions {
  patch: number;
  /** Peak ratio below which a match is dropped. */
  minRatio: number;
  /** Largest residual shift looked for, px. */
  maxShift: number;
  /** A node disagreeing with the median of its neighbours by more than this (px) is dropped. */
  maxDeviation: number;
  /** Width of the correlation peak (px): larger weighs the low frequencies, where neighbouring sections agree. */
  peakSigma: number;
  /**
   * Largest fraction of a patch allowed to fall outside its section. The missing part is filled with the
   * mean and the valid part fades into it over `fadePx`, so the border of the data adds no edge to
   * correlate; nodes near a section's border keep their data springs instead of being extrapolated.
   */
  maxOutside: number;
  fadePx: number;
  /**
   * A node's data spring is weighted by (valid fraction of the poorer patch)^partialPower: a patch that is
   * partly missing measures the motion of a different part of the tissue than the full patch would, and its
   * neighbours with full patches should speak for it. 0 (default) weighs all patches alike: 2 made the
   * 32-section evaluation worse, so partial patches carry more signal than bias.
   */
  partialPower: number;
  /** Catmull-Rom instead of bilinear sampling of the patches (off: ~4x the sampling cost; only tried together with partialPower 2, which was worse). */
  cubic: boolean;
  /**
   * Re-measure a pair whose patches are partly missing with both patches cut to their common valid region,
   * instead of each filling its own gap (content only one patch has adds noise). Off by default: on Lucchi it
   * cut the per-pair error at nodes with 15-50% missing (0.11-0.26 -> 0.10-0.18 px median) and improved warp
   * recovery for align-eval seed 1 (0.150 / 0.576 -> 0.125 / 0.451 px), but made seed 2 worse (exact 0.195 /
   * 1.08 -> 0.276 / 1.70 px): the envelope common to both patches pulls towards zero residual, and that small
   * bias adds up along z instead of averaging out (README, "Alignment").
   */
  jointMask: boolean;
  /**
   * For pairs with a partly missing patch, divide the correlation values used by the sub-pixel fit by the
   * overlap of the two patches' window x validity envelopes at each trial shift (see `Overlap`): the peak
   * otherwise leans towards the shift that best overlaps the valid regions (zero, with `jointMask`). Off by
   * default: it halves the partial-pair error of the synthetic test pair, but on Lucchi the drag is not the
   * main error: align-eval p95 0.576 -> 0.608 px for seed 1, 0.655 -> 0.565 for seed 2; with `jointMask`,
   * seed 2 still drifts (1.20 -> 1.14 px), README "Alignment".
   */
  overlapNorm: boolean;
  /**
   * Gaussian low-pass of each pair's measured node shifts (sigma in px; 0 = off) around their affine fit,
   * weighted by the valid nodes (normalised convolution): keeps the long-wavelength part (section
   * deformation) and drops local natural motion of the tissue between sections. Off by default: on
   * align-eval (12 sections) 64 px raised the warp-recovery median (0.084 -> 0.148 px seed 1, 0.153 -> 0.178
   * seed 2) and left adjacent consistency at its floor (README, "Alignment").
   */
  smoothPx?: number;
  /**
   * Replace each pair's measured node shifts by a least-squares 2D polynomial of this total degree over the
   * valid nodes (0 = off): a smooth model of the pair's relative deformation. Off by default: degree 3 over
   * 32 sections lowers the warp-recovery p95 (0.576 -> 0.449 px seed 1, 0.655 -> 0.620 seed 2) but raises
   * the median (0.150 -> 0.157, 0.137 -> 0.145), so it is not better on both seeds (README, "Alignment").
   */
  polyDegree?: number;
}

/**
 * peakSigma 2 (vs 1) weighs the coarser structure that neighbouring sections share, and maxOutside 0.7 (vs
 * 0.45) gives nodes near a shifted section's edge data of their own: each roughly halved the warp-recovery
 * error over 32 real sections; a 4-px fade (vs 12) keeps more of a partial patch's content (README, "Alignment").
 */
export const DEFAULT_ELASTIC: ElasticOptions = { patch: 128, minRatio: 1.3, maxShift: 24, maxDeviation: 1.5, peakSigma: 2, maxOutside: 0.7, fadePx: 4, partialPower: 0, cubic: false, jointMask: false, overlapNorm: false };


/** One section's patch at the current node: spectrum, valid fraction, and content weights (fade, 0 where missing). */
interface Slot {
  spectrum: Spectrum;
  support: number;
  weights: Float32Array;
}

/**
 * The correlations of measure() over a whole chain of `length` sections, in the order they are paired for the
 * inverse FFTs: [g, b] (chain[b - g] -> chain[b]) for b = 0, 1, ..., g = 1 .. min(gaps, b). Returns those with
 * b in [t0, t1), plus the partner of the first and of the last where that lies outside.
 */
function measureItems(length: number, gaps: number, t0: number, t1: number): [number, number][] {
  let before = 0;
  for (let b = 0; b < t0; b++) before += Math.min(gaps, b);
  let upto = before;
  for (let b = Math.max(0, t0); b < t1; b++) upto += Math.min(gaps, b);
  if (upto === before) return [];
  let total = upto;
  for (let b = Math.max(0, t1); b < length; b++) total += Math.min(gaps, b);
  const q0 = before - (before % 2);
  const q1 = Math.min(total, upto + (upto % 2));
  const items: [number, number][] = [];
  let index = 0;
  for (let b = 0; b < length && index < q1; b++) {
    for (let g = 1; g <= Math.min(gaps, b); g++, index++) if (index >= q0 && index < q1) items.push([g, b]);
  }
  return items;
}

export class StackMeasurer {
  private readonly corr: PhaseCorrelator;
  private readonly pa: Float64Array;
  private readonly pb: Float64Array;
  private readonly xs: Float64Array;
  private readonly ys: Float64Array;
  /** Free spectrum buffers (kept between calls). */
  private readonly slots: Slot[] = [];

  constructor(readonly options: ElasticOptions = DEFAULT_ELASTIC) {
    const p = options.patch;
    this.corr = new PhaseCorrelator(p, options.peakSigma);
    this.pa = new Float64Array(p * p);
    this.pb = new Float64Array(p * p);
    this.xs = new Float64Array(p);
    this.ys = new Float64Array(p);
  }

  /**
   * Residual shifts between every section of `chain` (section indices) and the `gaps` sections before it:
   * result[g - 1][c] is chain[c] -> chain[c + g]. Nodes are the outer loop: each section's patch at a node is
   * sampled and transformed once and serves all of its pairs, and memory stays at gaps + 4 spectra whatever
   * the section size or count.
   */
  measure(data: Section, w: number, h: number, maps: SectionMap[], chain: number[], grid: Grid, onRow?: (row: number) => void, gaps = 1): PairShifts[][] {
    return this.measureRange((z) => sectionView(data, w, h, z), w, h, maps, chain, grid, gaps, 0, chain.length, onRow);
  }

  /**
   * The pairs of `measure` whose later section sits at chain positions [t0, t1): result[g - 1][i] is
   * chain[b - g] -> chain[b], b = max(t0, g) + i. Every pair gets the bytes that `measure` over the whole chain
   * gives it, however the chain is split: two sections share one forward FFT (positions 2m and 2m + 1) and two
   * correlations share one inverse FFT (consecutive in the whole chain's order), and both partners change the
   * round-off, so a range computes the partners the whole chain would (StackMeasurer.window lists the
   * positions it reads). `section(z)` and `maps[z]` are only read for those positions.
   */
  measureRange(section: (z: number) => Section, w: number, h: number, maps: SectionMap[], chain: number[], grid: Grid, gaps: number, t0: number, t1: number, onRow?: (row: number) => void): PairShifts[][] {
    const { patch, minRatio, maxShift } = this.options;
    const n = grid.nx * grid.ny;
    const length = chain.length;
    const out: PairShifts[][] = [];
    for (let g = 1; g <= gaps; g++) {
      const count = Math.max(0, t1 - Math.max(t0, g));
      out.push(Array.from({ length: count }, () => ({ dx: new Float32Array(n), dy: new Float32Array(n), ok: new Uint8Array(n), support: new Float32Array(n), valid: 0 })));
    }
    const items = measureItems(length, gaps, t0, t1);
    const half = patch / 2;
    const maxOut = patch * patch * this.options.maxOutside;
    const fade = this.options.fadePx;
    const dist = new Float32Array(patch * patch);
    const norm = this.options.overlapNorm;
    const tA = new Float32Array(patch * patch);
    const tB = new Float32Array(patch * patch);
    // Spectra of the sections that waiting correlations still read (a cache: at most gaps + 4 live).
    const live = new Map<number, Slot>();
    const take = (): Slot => this.slots.pop() ?? { spectrum: this.corr.newSpectrum(), support: 0, weights: new Float32Array(patch * patch) };
    const release = (position: number): void => {
      const s = live.get(position);
      if (!s) return;
      live.delete(position);
      this.slots.push(s);
    };
    /** Samples section z's patch into buf; returns its valid fraction, or 0 when too much is missing. */
    const sample = (z: number, cx: number, cy: number, buf: Float64Array, t: Float32Array): number => {
      const outside = samplePatch(section(z), w, h, maps[z] as SectionMap, grid, cx, cy, patch, buf, this.xs, this.ys, this.options.cubic);
      if (outside > maxOut) return 0;
      if (outside > 0) {
        if (fade > 0) fadeMissing(buf, patch, fade, dist, t);
        else {
          for (let q = 0; q < buf.length; q++) t[q] = buf[q] === buf[q] ? 1 : 0;
          fillMissing(buf);
        }
      }
      return 1 - outside / (patch * patch);
    };
    /** The spectrum of chain position c, made together with its FFT partner (2m with 2m + 1). */
    const spectrumOf = (c: number, cx: number, cy: number): Slot => {
      const have = live.get(c);
      if (have) return have;
      const e = c - (c % 2);
      const hasB = e + 1 < length;
      const fa = sample(chain[e] as number, cx, cy, this.pa, tA);
      const fb = hasB ? sample(chain[e + 1] as number, cx, cy, this.pb, tB) : 0;
      const sa = take();
      const sb = take();
      if (norm) {
        // Only partial patches' weights are read (full ones weigh 1 everywhere).
        if (fa > 0 && fa < 1) sa.weights.set(tA);
        if (fb > 0 && fb < 1) sb.weights.set(tB);
      }
      const okA = fa > 0;
      const okB = fb > 0;
      sa.support = fa;
      sb.support = fb;
      this.corr.spectra(okA ? this.pa : this.pb, okB ? this.pb : this.pa, sa.spectrum, sb.spectrum);
      if (!okA) sa.spectrum.flat = true;
      if (!okB) sb.spectrum.flat = true;
      live.set(e, sa);
      if (hasB) live.set(e + 1, sb);
      else this.slots.push(sb);
      return live.get(c) as Slot;
    };
    const record = (g: number, t: number, k: number, a: Slot, b: Slot, s: PatchShift | undefined): void => {
      if (t < t0 || t >= t1) return;
      const r = (out[g - 1] as PairShifts[])[t - Math.max(t0, g)] as PairShifts;
      // Kept for failed pairs too, so that the joint-mask pass re-measures only partial ones.
      r.support[k] = Math.min(a.support, b.support);
      if (!s || s.ratio < minRatio) return;
      r.dx[k] = s.dx;
      r.dy[k] = s.dy;
      r.ok[k] = 1;
    };
    const ov = (a: Slot, b: Slot): Overlap | undefined => {
      if (!norm || (a.support >= 1 && b.support >= 1)) return undefined;
      return this.corr.overlap(a.support < 1 ? a.weights : undefined, b.support < 1 ? b.weights : undefined);
    };
    for (let j = 0; j < grid.ny; j++) {
      const cy = nodeY(grid, j);
      // A patch hanging over the output border would correlate the border itself; such nodes get their
      // displacement from their neighbours through the mesh instead.
      if (cy - half >= 0 && cy + half <= h && items.length > 0) {
        for (let i = 0; i < grid.nx; i++) {
          const cx = nodeX(grid, i);
          if (cx - half < 0 || cx + half > w) continue;
          const k = j * grid.nx + i;
          for (const p of [...live.keys()]) release(p);
          // Correlations go two per inverse FFT, in the whole chain's order.
          for (let q = 0; q < items.length; q += 2) {
            const [g1, b1] = items[q] as [number, number];
            for (const p of [...live.keys()]) if (p < b1 - gaps) release(p);
            const second = items[q + 1];
            const A = spectrumOf(b1 - g1, cx, cy);
            const B = spectrumOf(b1, cx, cy);
            const C = second ? spectrumOf(second[1] - second[0], cx, cy) : undefined;
            const D = second ? spectrumOf(second[1], cx, cy) : undefined;
            const [r1, r2] = this.corr.fromSpectraPair(A.spectrum, B.spectrum, C?.spectrum, D?.spectrum, maxShift, ov(A, B), C && D ? ov(C, D) : undefined);
            record(g1, b1, k, A, B, r1);
            if (second && C && D) record(second[0], second[1], k, C, D, r2);
          }
        }
      }
      onRow?.(j + 1);
    }
    for (const p of [...live.keys()]) release(p);
    if (this.options.jointMask) this.remeasurePartial(section, w, h, maps, chain, grid, out, dist, t0);
    for (const list of out) for (const r of list) r.valid = rejectInconsistent(grid, r.dx, r.dy, r.ok, this.options.maxDeviation);
    const sp = this.options.smoothPx ?? 0;
    if (sp > 0) for (const list of out) for (const r of list) smoothShifts(grid, r, sp / grid.stride);
    const deg = this.options.polyDegree ?? 0;
    if (deg > 0) for (const list of out) for (const r of list) polyFitShifts(grid, r, deg);
    return out;
  }

  /** Chain positions [lo, hi) whose sections (and maps) measureRange(..., t0, t1) reads; undefined: none. */
  static window(length: number, gaps: number, t0: number, t1: number): [number, number] | undefined {
    const items = measureItems(length, gaps, t0, t1);
    if (items.length === 0) return undefined;
    let lo = length;
    let hi = 0;
    for (const [g, b] of items) {
      lo = Math.min(lo, b - g);
      hi = Math.max(hi, b);
    }
    return [lo - (lo % 2), Math.min(length, hi - (hi % 2) + 2)];
  }

  /**
   * Pairs whose main patches were partly missing (or that failed) measured again, one FFT per pair, with
   * both patches cut to the pixels valid in both and faded there. Pairs with two full patches keep the
   * shared-spectrum result; pairs beyond `maxOutside` stay without data.
   */
  private remeasurePartial(section: (z: number) => Section, w: number, h: number, maps: SectionMap[], chain: number[], grid: Grid, out: PairShifts[][], dist: Float32Array, t0: number): void {
    const { patch, maxOutside, fadePx, minRatio, maxShift, cubic } = this.options;
    const half = patch / 2;
    const limit = patch * patch * maxOutside;
    const { pa, pb, xs, ys } = this;
    const tj = new Float32Array(patch * patch);
    for (let j = 0; j < grid.ny; j++) {
      const cy = nodeY(grid, j);
      if (cy - half < 0 || cy + half > h) continue;
      for (let i = 0; i < grid.nx; i++) {
        const cx = nodeX(grid, i);
        if (cx - half < 0 || cx + half > w) continue;
        const k = j * grid.nx + i;
        out.forEach((list, g) => {
          list.forEach((r, c) => {
            if ((r.support[k] as number) >= 1) return;
            const bp = Math.max(t0, g + 1) + c;
            const a = chain[bp - g - 1] as number;
            const b = chain[bp] as number;
            const oa = samplePatch(section(a), w, h, maps[a] as SectionMap, grid, cx, cy, patch, pa, xs, ys, cubic);
            if (oa > limit) return;
            const ob = samplePatch(section(b), w, h, maps[b] as SectionMap, grid, cx, cy, patch, pb, xs, ys, cubic);
            if (ob > limit || (oa === 0 && ob === 0)) return;
            let missing = 0;
            for (let q = 0; q < pa.length; q++) {
              if (pa[q] !== pa[q] || pb[q] !== pb[q]) {
                pa[q] = NaN;
                pb[q] = NaN;
                missing++;
              }
            }
            if (missing > limit) return;
            fadeMissing(pa, patch, fadePx, dist, tj);
            fadeMissing(pb, patch, fadePx, dist);
            // Both patches now share one envelope, whose overlap peaks at zero shift.
            const s = this.corr.correlate(pa, pb, maxShift, this.options.overlapNorm ? this.corr.overlap(tj, tj) : undefined);
            if (!s || s.ratio < minRatio) return;
            r.dx[k] = s.dx;
            r.dy[k] = s.dy;
            r.ok[k] = 1;
            r.support[k] = 1 - missing / (patch * patch);
          });
        });
      }
    }
  }
}
