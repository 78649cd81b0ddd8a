/**
 * Dense displacement between two mapped sections: phase correlation of patches centred on the mesh
 * nodes, then outlier removal by peak ratio and by agreement with the neighbouring nodes. Patches are
 * sampled through the sections' current maps on demand, so memory is a few patches, not whole images.
 */
import { PhaseCorrelator, type Overlap, type PatchShift, type Spectrum } from "./correlate.js";
import { sectionView, type Section } from "./image.js";
import { nodeX, nodeY, samplePatch, type Grid, type SectionMap } from "./map.js";

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

export interface PairShifts {
  /** Residual shift per node: content of a at node p sits at p + (dx, dy) in b. */
  dx: Float32Array;
  dy: Float32Array;
  ok: Uint8Array;
  /** Valid (inside-the-section) fraction of the poorer of the two patches (of their common part after a joint-mask re-measure); set for failed nodes too. */
  support: Float32Array;
  valid: number;
}

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

/** Normalised Gaussian convolution of the valid nodes' shifts (separable); nodes keep their validity. */
export function smoothShifts(grid: Grid, r: PairShifts, sigmaNodes: number): void {
  const { nx, ny } = grid;
  // The pair's affine part is taken out first and put back after, so that the border nodes, whose
  // neighbourhood is one-sided, are not pulled towards the interior's mean (a zeroth-order smoother's bias).
  const lin = { dx: Float32Array.from(r.dx), dy: Float32Array.from(r.dy), ok: r.ok, support: r.support, valid: r.valid };
  polyFitShifts(grid, lin, 1);
  for (let p = 0; p < nx * ny; p++) {
    if (!r.ok[p]) continue;
    r.dx[p] = (r.dx[p] as number) - (lin.dx[p] as number);
    r.dy[p] = (r.dy[p] as number) - (lin.dy[p] as number);
  }
  const rad = Math.ceil(3 * sigmaNodes);
  const g = new Float64Array(2 * rad + 1);
  for (let t = -rad; t <= rad; t++) g[t + rad] = Math.exp(-(t * t) / (2 * sigmaNodes * sigmaNodes));
  const n = nx * ny;
  const planes = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  for (let p = 0; p < n; p++) {
    const w = r.ok[p] ? 1 : 0;
    (planes[0] as Float64Array)[p] = w;
    (planes[1] as Float64Array)[p] = w * (r.dx[p] as number);
    (planes[2] as Float64Array)[p] = w * (r.dy[p] as number);
  }
  const tmp = new Float64Array(n);
  for (const pl of planes) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        let s = 0;
        for (let t = Math.max(-rad, -i); t <= Math.min(rad, nx - 1 - i); t++) s += (g[t + rad] as number) * (pl[j * nx + i + t] as number);
        tmp[j * nx + i] = s;
      }
    }
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        let s = 0;
        for (let t = Math.max(-rad, -j); t <= Math.min(rad, ny - 1 - j); t++) s += (g[t + rad] as number) * (tmp[(j + t) * nx + i] as number);
        pl[j * nx + i] = s;
      }
    }
  }
  for (let p = 0; p < n; p++) {
    if (!r.ok[p]) continue;
    const w = planes[0]?.[p] as number;
    r.dx[p] = (planes[1]?.[p] as number) / w + (lin.dx[p] as number);
    r.dy[p] = (planes[2]?.[p] as number) / w + (lin.dy[p] as number);
  }
}

/** Least-squares polynomial (total degree `degree`, scaled coordinates) through the valid nodes' shifts. */
export function polyFitShifts(grid: Grid, r: PairShifts, degree: number): void {
  const { nx, ny } = grid;
  const terms: [number, number][] = [];
  for (let t = 0; t <= degree; t++) for (let a = 0; a <= t; a++) terms.push([a, t - a]);
  const m = terms.length;
  const valid: number[] = [];
  for (let p = 0; p < nx * ny; p++) if (r.ok[p]) valid.push(p);
  if (valid.length < 2 * m) return;
  const basis = (p: number, out: Float64Array): void => {
    const x = nx > 1 ? (2 * (p % nx)) / (nx - 1) - 1 : 0;
    const y = ny > 1 ? (2 * Math.floor(p / nx)) / (ny - 1) - 1 : 0;
    terms.forEach(([a, b], k) => (out[k] = x ** a * y ** b));
  };
  const A = new Float64Array(m * m);
  const bx = new Float64Array(m);
  const by = new Float64Array(m);
  const v = new Float64Array(m);
  for (const p of valid) {
    basis(p, v);
    for (let i = 0; i < m; i++) {
      bx[i] = (bx[i] as number) + (v[i] as number) * (r.dx[p] as number);
      by[i] = (by[i] as number) + (v[i] as number) * (r.dy[p] as number);
      for (let j = 0; j < m; j++) A[i * m + j] = (A[i * m + j] as number) + (v[i] as number) * (v[j] as number);
    }
  }
  // A tiny ridge keeps the system solvable where the valid nodes do not span every term.
  for (let i = 0; i < m; i++) A[i * m + i] = (A[i * m + i] as number) * (1 + 1e-9) + 1e-9;
  const cx = solveSpd(A, bx, m);
  const cy = solveSpd(A, by, m);
  if (!cx || !cy) return;
  for (const p of valid) {
    basis(p, v);
    let sx = 0;
    let sy = 0;
    for (let i = 0; i < m; i++) {
      sx += (v[i] as number) * (cx[i] as number);
      sy += (v[i] as number) * (cy[i] as number);
    }
    r.dx[p] = sx;
    r.dy[p] = sy;
  }
}

/** Cholesky solve of a small symmetric positive definite system; undefined if it is not. */
function solveSpd(A: Float64Array, b: Float64Array, m: number): Float64Array | undefined {
  const L = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * m + j] as number;
      for (let k = 0; k < j; k++) s -= (L[i * m + k] as number) * (L[j * m + k] as number);
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * m + i] = Math.sqrt(s);
      } else L[i * m + j] = s / (L[j * m + j] as number);
    }
  }
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (L[i * m + k] as number) * (y[k] as number);
    y[i] = s / (L[i * m + i] as number);
  }
  const x = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i] as number;
    for (let k = i + 1; k < m; k++) s -= (L[k * m + i] as number) * (x[k] as number);
    x[i] = s / (L[i * m + i] as number);
  }
  return x;
}

function fillMissing(p: Float64Array): void {
  let s = 0;
  let c = 0;
  for (const v of p) {
    if (v === v) {
      s += v;
      c++;
    }
  }
  const m = c > 0 ? s / c : 0;
  for (let k = 0; k < p.length; k++) if (p[k] !== p[k]) p[k] = m;
}

/** Fills NaN with the valid mean and fades valid pixels into it within `fade` px (chamfer distance) of a gap. */
function fadeMissing(p: Float64Array, size: number, fade: number, dist: Float32Array, weight?: Float32Array): void {
  let s = 0;
  let c = 0;
  for (let k = 0; k < p.length; k++) {
    const v = p[k] as number;
    if (v === v) {
      s += v;
      c++;
      dist[k] = 1e9;
    } else dist[k] = 0;
  }
  const m = c > 0 ? s / c : 0;
  const d2 = Math.SQRT2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const k = y * size + x;
      let v = dist[k] as number;
      if (x > 0) v = Math.min(v, (dist[k - 1] as number) + 1);
      if (y > 0) {
        v = Math.min(v, (dist[k - size] as number) + 1);
        if (x > 0) v = Math.min(v, (dist[k - size - 1] as number) + d2);
        if (x < size - 1) v = Math.min(v, (dist[k - size + 1] as number) + d2);
      }
      dist[k] = v;
    }
  }
  for (let y = size - 1; y >= 0; y--) {
    for (let x = size - 1; x >= 0; x--) {
      const k = y * size + x;
      let v = dist[k] as number;
      if (x < size - 1) v = Math.min(v, (dist[k + 1] as number) + 1);
      if (y < size - 1) {
        v = Math.min(v, (dist[k + size] as number) + 1);
        if (x < size - 1) v = Math.min(v, (dist[k + size + 1] as number) + d2);
        if (x > 0) v = Math.min(v, (dist[k + size - 1] as number) + d2);
      }
      dist[k] = v;
    }
  }
  for (let k = 0; k < p.length; k++) {
    const v = p[k] as number;
    const d = dist[k] as number;
    if (v !== v) {
      p[k] = m;
      if (weight) weight[k] = 0;
    } else if (d < fade) {
      const t = 0.5 - 0.5 * Math.cos((Math.PI * d) / fade);
      p[k] = m + t * (v - m);
      if (weight) weight[k] = t;
    } else if (weight) weight[k] = 1;
  }
}

function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const m = values.length >> 1;
  return values.length % 2 ? (values[m] as number) : ((values[m - 1] as number) + (values[m] as number)) / 2;
}

/**
 * Drops nodes that disagree with the median of their valid 8-neighbours; isolated nodes (fewer than two
 * valid neighbours) are kept only if the peak test passed, since a smooth field can have lone
 * textured spots. Returns the number of nodes kept.
 */
export function rejectInconsistent(grid: Grid, dx: Float32Array, dy: Float32Array, ok: Uint8Array, maxDeviation: number): number {
  const { nx, ny } = grid;
  const drop: number[] = [];
  const mx: number[] = [];
  const my: number[] = [];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      const k = j * nx + i;
      if (!ok[k]) continue;
      mx.length = 0;
      my.length = 0;
      for (let b = -1; b <= 1; b++) {
        for (let a = -1; a <= 1; a++) {
          if ((a === 0 && b === 0) || i + a < 0 || j + b < 0 || i + a >= nx || j + b >= ny) continue;
          const q = (j + b) * nx + i + a;
          if (ok[q]) {
            mx.push(dx[q] as number);
            my.push(dy[q] as number);
          }
        }
      }
      if (mx.length < 2) continue;
      if (Math.hypot((dx[k] as number) - median(mx), (dy[k] as number) - median(my)) > maxDeviation) drop.push(k);
    }
  }
  for (const k of drop) ok[k] = 0;
  let valid = 0;
  for (const v of ok) valid += v;
  return valid;
}
