/**
 * Patch registration by phase correlation: Hann-windowed, mean-free patches, whitened cross-power
 * spectrum tapered by a Gaussian so that the correlation peak becomes a Gaussian blob of ~1 px, whose
 * sub-pixel position a log-parabola fit recovers almost without bias. Two real patches travel through
 * one complex FFT (a + i b) and are separated by Hermitian symmetry.
 */
import { Fft } from "./fft.js";

export interface PatchShift {
  /** Content at p in patch a is found at p + (dx, dy) in patch b. */
  dx: number;
  dy: number;
  /** Main peak over the best peak outside its neighbourhood (>= 1; higher is more trustworthy). */
  ratio: number;
}

/**
 * Weight that both patches' content shares at a trial shift (sx, sy): the correlation of their
 * window x validity envelopes. A partly missing patch's correlation peak is the content peak times this,
 * whose slope drags the peak towards the shift that best overlaps the valid regions; dividing it out
 * near the peak removes that drag (the idea of Padfield's masked normalised correlation, at 5 points).
 */
export type Overlap = (sx: number, sy: number) => number;

export interface Spectrum {
  re: Float64Array;
  im: Float64Array;
  /** The patch had no texture: nothing to correlate. */
  flat: boolean;
}

export class PhaseCorrelator {
  readonly patch: number;
  readonly n: number;
  private readonly fft: Fft;
  private readonly window: Float64Array;
  private readonly taper: Float64Array;
  private readonly re: Float64Array;
  private readonly im: Float64Array;
  private readonly cre: Float64Array;
  private readonly cim: Float64Array;
  /** The forward transform's second pass, and the inverse's row pass (transposed: x major). */
  private readonly tre: Float64Array;
  private readonly tim: Float64Array;
  /** Row offsets for Fft.transposeRevFirst: all rows of tre (row stride n + 8), and the inverse's search window. */
  private readonly rowsPad: Int32Array;
  private readonly rowsWin: Int32Array;
  /** One windowed patch row (zero beyond the patch) on its way into tre / tim. */
  private readonly patchRe: Float64Array;
  private readonly patchIm: Float64Array;
  /** Two rows of the cross-power spectrum on their way into cre / cim. */
  private readonly rowRe: Float64Array;
  private readonly rowIm: Float64Array;
  private readonly rowRe2: Float64Array;
  private readonly rowIm2: Float64Array;
  private win = new Float64Array(0);
  private readonly sa: Spectrum;
  private readonly sb: Spectrum;

  /** `patch` px patches, zero-padded to the next power of two; `peakSigma` is the peak's width in px. */
  constructor(patch: number, peakSigma = 1) {
    warmUp();
    this.patch = patch;
    this.n = 2 ** Math.ceil(Math.log2(patch));
    this.fft = new Fft(this.n);
    const n = this.n;
    this.window = new Float64Array(patch * patch);
    for (let y = 0; y < patch; y++) {
      const wy = 0.5 - 0.5 * Math.cos((2 * Math.PI * (y + 0.5)) / patch);
      for (let x = 0; x < patch; x++) this.window[y * patch + x] = wy * (0.5 - 0.5 * Math.cos((2 * Math.PI * (x + 0.5)) / patch));
    }
    this.taper = new Float64Array(n * n);
    for (let v = 0; v < n; v++) {
      const fy = (v <= n / 2 ? v : v - n) / n;
      for (let u = 0; u < n; u++) {
        const fx = (u <= n / 2 ? u : u - n) / n;
        this.taper[v * n + u] = Math.exp(-2 * Math.PI * Math.PI * peakSigma * peakSigma * (fx * fx + fy * fy));
      }
    }
    this.re = new Float64Array(n * n);
    this.im = new Float64Array(n * n);
    this.cre = new Float64Array(n * n);
    this.cim = new Float64Array(n * n);
    this.tre = new Float64Array(n * (n + 8));
    this.tim = new Float64Array(n * (n + 8));
    this.rowsPad = Int32Array.from({ length: n }, (_, i) => i * (n + 8));
    this.rowsWin = new Int32Array(n);
    this.patchRe = new Float64Array(n);
    this.patchIm = new Float64Array(n);
    this.rowRe = new Float64Array(n);
    this.rowIm = new Float64Array(n);
    this.rowRe2 = new Float64Array(n);
    this.rowIm2 = new Float64Array(n);
    this.sa = this.newSpectrum();
    this.sb = this.newSpectrum();
  }

  /** A spectrum buffer of this correlator's size (to keep per section and node). */
  newSpectrum(): Spectrum {
    return { re: new Float64Array(this.n * this.n), im: new Float64Array(this.n * this.n), flat: true };
  }

  /**
   * Whitened spectra of two patch x patch row-major patches (no NaN), through one complex FFT. Each
   * spectrum is normalised to unit magnitude here, once, so that correlating a section's patch with
   * both of its neighbours does not redo it.
   */
  spectra(a: ArrayLike<number>, b: ArrayLike<number>, A: Spectrum, B: Spectrum): void {
    // Each long loop is its own method (see warmUp below).
    const { n, re, im, tre, tim, rowsPad } = this;
    const fft = this.fft;
    this.load(a, b, A, B);
    // A 2D transform's row transforms (as db17f24's row-by-row transform2d), then its column transforms, each as one vectorised pass along the row
    // index of a transposed copy (Fft.butterflies): the same arithmetic per element.
    fft.butterflies(tre, tim, n, false, n, n + 8, 4);
    fft.transposeRevFirst(tre, tim, rowsPad, n, re, im, false);
    fft.butterflies(re, im, n, false, n, n, 4);
    this.separate(re, im, A, B);
  }

  /**
   * Mean-free, windowed patches a (real part) and b (imaginary part) into tre / tim, transposed with x in
   * bit-reversed order (as Fft.transposeRevFirst would put them), rows of n + 8 values: with n, the column walks
   * would hit the same few cache sets. Sets A.flat and B.flat.
   */
  private load(a: ArrayLike<number>, b: ArrayLike<number>, A: Spectrum, B: Spectrum): void {
    const { n, patch: p, window, tre, tim } = this;
    const S = n + 8;
    const rev = this.fft.rev;
    if (p < n) {
      tre.fill(0);
      tim.fill(0);
    }
    let ma = 0;
    let mb = 0;
    let sw = 0;
    for (let k = 0; k < p * p; k++) {
      const w = window[k] as number;
      ma += w * (a[k] as number);
      mb += w * (b[k] as number);
      sw += w;
    }
    ma /= sw;
    mb /= sw;
    let va = 0;
    let vb = 0;
    // Each row goes through patchRe / patchIm (zero beyond p), then the first stage of the row transforms on the
    // way out: x and x + n / 2 land on rows rev[x] and rev[x] + 1 of tre (see Fft.transposeRevFirst).
    const { patchRe: rowRe, patchIm: rowIm } = this;
    const half = n / 2;
    const [wr, wi] = this.fft.firstTwiddle(false);
    for (let y = 0; y < p; y++) {
      for (let x = 0; x < p; x++) {
        const k = y * p + x;
        const w = window[k] as number;
        const ta = w * ((a[k] as number) - ma);
        const tb = w * ((b[k] as number) - mb);
        rowRe[x] = ta;
        rowIm[x] = tb;
        va += ta * ta;
        vb += tb * tb;
      }
      for (let x = 0; x < half; x++) {
        const ta = (rev[x] as number) * S + y;
        const tb = ta + S;
        const br = rowRe[x + half] as number;
        const bi = rowIm[x + half] as number;
        const pr = br * wr - bi * wi;
        const pi = br * wi + bi * wr;
        const ar = rowRe[x] as number;
        const ai = rowIm[x] as number;
        tre[tb] = ar - pr;
        tim[tb] = ai - pi;
        tre[ta] = ar + pr;
        tim[ta] = ai + pi;
      }
    }
    A.flat = va < 1e-9 * sw;
    B.flat = vb < 1e-9 * sw;
  }

  /** The unit spectra A of the real and B of the imaginary part of the 2D transform Z (zre, zim). */
  private separate(zre: Float64Array, zim: Float64Array, A: Spectrum, B: Spectrum): void {
    const n = this.n;
    const Are = A.re;
    const Aim = A.im;
    const Bre = B.re;
    const Bim = B.im;
    // Bins k and -k (k2) share their real parts and magnitudes exactly (a + b = b + a, |a - b| = |b - a| in
    // IEEE arithmetic), so each pair's square roots and divisions are done once; the values are those that
    // the expressions for each bin on its own give, bit for bit.
    for (let v = 0; v <= n / 2; v++) {
      const row2 = (v === 0 ? 0 : n - v) * n;
      const uEnd = v === 0 || v === n / 2 ? n / 2 : n - 1;
      for (let u = 0; u <= uEnd; u++) {
        const k = v * n + u;
        const k2 = row2 + (u === 0 ? 0 : n - u);
        const zr = zre[k] as number;
        const zi = zim[k] as number;
        const wr = zre[k2] as number;
        const wi = -(zim[k2] as number);
        // A = (Z + conj Z(-k)) / 2, B = (Z - conj Z(-k)) / (2i)
        const ar = (zr + wr) / 2;
        const ai = (zi + wi) / 2;
        const br = (zi - wi) / 2;
        const bi = -(zr - wr) / 2;
        const na = 1 / (Math.sqrt(ar * ar + ai * ai) + 1e-12);
        const nb = 1 / (Math.sqrt(br * br + bi * bi) + 1e-12);
        Are[k] = ar * na;
        Aim[k] = ai * na;
        Bre[k] = br * nb;
        Bim[k] = bi * nb;
        if (k2 !== k) {
          // The same expressions at k2: Z(k2) = (wr, -wi), conj Z(-k2) = (zr, -zi).
          const ai2 = (-wi + -zi) / 2;
          const bi2 = -(wr - zr) / 2;
          Are[k2] = ar * na;
          Aim[k2] = ai2 * na;
          Bre[k2] = br * nb;
          Bim[k2] = bi2 * nb;
        }
      }
    }
  }

  /** Shift between two patches; undefined when either patch is flat. */
  correlate(a: ArrayLike<number>, b: ArrayLike<number>, maxShift = this.patch / 4, overlap?: Overlap): PatchShift | undefined {
    this.spectra(a, b, this.sa, this.sb);
    return this.fromSpectraPair(this.sa, this.sb, undefined, undefined, maxShift, overlap)[0];
  }

  /**
   * The envelope overlap of two patches whose content carries weights ta, tb (0 where missing, 1 where
   * valid, the fade in between; undefined: whole patch), times the Hann window each is multiplied by.
   */
  overlap(ta: Float32Array | undefined, tb: Float32Array | undefined): Overlap {
    const { patch: p, window } = this;
    return (sx, sy) => {
      let s = 0;
      const y0 = Math.max(0, -sy);
      const y1 = Math.min(p, p - sy);
      const x0 = Math.max(0, -sx);
      const x1 = Math.min(p, p - sx);
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const k = y * p + x;
          const q = k + sy * p + sx;
          s += (window[k] as number) * (ta ? (ta[k] as number) : 1) * (window[q] as number) * (tb ? (tb[q] as number) : 1);
        }
      }
      return s;
    };
  }

  /** Shift from spectra made by `spectra`; `maxShift` bounds the search (the correlation wraps at n / 2). */
  fromSpectra(A: Spectrum, B: Spectrum, maxShift = this.patch / 4): PatchShift | undefined {
    return this.fromSpectraPair(A, B, undefined, undefined, maxShift)[0];
  }

  /**
   * Two correlations for the price of one inverse FFT: both correlation surfaces are real, so the first
   * travels in the real part and the second in the imaginary part.
   */
  fromSpectraPair(A: Spectrum, B: Spectrum, C: Spectrum | undefined, D: Spectrum | undefined, maxShift = this.patch / 4, overlapAB?: Overlap, overlapCD?: Overlap): [PatchShift | undefined, PatchShift | undefined] {
    const first = !A.flat && !B.flat;
    const second = C !== undefined && D !== undefined && !C.flat && !D.flat;
    if (!first && !second) return [undefined, undefined];
    const { n, cre, cim } = this;
    const fft = this.fft;
    this.crossPower(A, B, C, D, first, second);
    const r = Math.min(Math.floor(maxShift), n / 2 - 2);
    // Inverse 2D transform of which only rows and columns [-(r + 1), r + 1] are read: the column pass, then the
    // row transforms of just those rows, gathered transposed (x major, x bit-reversed) so that they too run as
    // one vectorised pass. Per element, the arithmetic of the full inverse 2D transform.
    const R = r + 1;
    fft.butterflies(cre, cim, n, true, R, n, 4);
    const m = 2 * R + 1;
    const { tre, tim, rowsWin } = this;
    for (let j = 0; j < m; j++) {
      const y = j - R;
      rowsWin[j] = (y < 0 ? y + n : y) * n;
    }
    fft.transposeRevFirst(cre, cim, rowsWin, m, tre, tim, true);
    fft.butterflies(tre, tim, m, true, R, m, 4);
    return [first ? this.peak(tre, m, r, overlapAB) : undefined, second ? this.peak(tim, m, r, overlapCD) : undefined];
  }

  /**
   * The cross-power spectrum of fromSpectraPair into cre / cim, its rows in bit-reversed order (the column
   * pass's permutation) and through the column pass's first stage: rows v and v + n / 2 land on rows rev[v]
   * and rev[v] + 1 and are butterflied on the way (see Fft.transposeRevFirst).
   */
  private crossPower(A: Spectrum, B: Spectrum, C: Spectrum | undefined, D: Spectrum | undefined, first: boolean, second: boolean): void {
    const { n, cre, cim, rowRe, rowIm, rowRe2, rowIm2 } = this;
    const rev = this.fft.rev;
    const half = n / 2;
    const [wr, wi] = this.fft.firstTwiddle(true);
    for (let v = 0; v < half; v++) {
      this.crossRow(v, A, B, C, D, first, second, rowRe, rowIm);
      this.crossRow(v + half, A, B, C, D, first, second, rowRe2, rowIm2);
      const ra = (rev[v] as number) * n;
      const rb = ra + n;
      for (let u = 0; u < n; u++) {
        const br = rowRe2[u] as number;
        const bi = rowIm2[u] as number;
        const pr = br * wr - bi * wi;
        const pi = br * wi + bi * wr;
        const ar = rowRe[u] as number;
        const ai = rowIm[u] as number;
        cre[rb + u] = ar - pr;
        cim[rb + u] = ai - pi;
        cre[ra + u] = ar + pr;
        cim[ra + u] = ai + pi;
      }
    }
  }

  /**
   * Row v of the cross-power spectrum: conj(A) * B of unit spectra (a pure translation leaves only its phase
   * ramp), the second correlation travelling as + i * (conj(C) * D). The three cases compute what one loop
   * with both tests would.
   */
  private crossRow(v: number, A: Spectrum, B: Spectrum, C: Spectrum | undefined, D: Spectrum | undefined, first: boolean, second: boolean, outRe: Float64Array, outIm: Float64Array): void {
    const { n, taper } = this;
    const k0 = v * n;
    if (first && second) {
      const Ar = A.re, Ai = A.im, Br = B.re, Bi = B.im;
      const Cr = (C as Spectrum).re, Ci = (C as Spectrum).im, Dr = (D as Spectrum).re, Di = (D as Spectrum).im;
      for (let u = 0, k = k0; u < n; u++, k++) {
        const t = taper[k] as number;
        const ar = Ar[k] as number;
        const ai = Ai[k] as number;
        const br = Br[k] as number;
        const bi = Bi[k] as number;
        const cr = Cr[k] as number;
        const ci = Ci[k] as number;
        const dr = Dr[k] as number;
        const di = Di[k] as number;
        outRe[u] = (ar * br + ai * bi) * t - (cr * di - ci * dr) * t;
        outIm[u] = (ar * bi - ai * br) * t + (cr * dr + ci * di) * t;
      }
    } else if (first) {
      const Ar = A.re, Ai = A.im, Br = B.re, Bi = B.im;
      for (let u = 0, k = k0; u < n; u++, k++) {
        const t = taper[k] as number;
        const ar = Ar[k] as number;
        const ai = Ai[k] as number;
        const br = Br[k] as number;
        const bi = Bi[k] as number;
        outRe[u] = (ar * br + ai * bi) * t;
        outIm[u] = (ar * bi - ai * br) * t;
      }
    } else {
      const Cr = (C as Spectrum).re, Ci = (C as Spectrum).im, Dr = (D as Spectrum).re, Di = (D as Spectrum).im;
      for (let u = 0, k = k0; u < n; u++, k++) {
        const t = taper[k] as number;
        const cr = Cr[k] as number;
        const ci = Ci[k] as number;
        const dr = Dr[k] as number;
        const di = Di[k] as number;
        outRe[u] = 0 - (cr * di - ci * dr) * t;
        outIm[u] = 0 + (cr * dr + ci * di) * t;
      }
    }
  }

  /** `surface` holds the correlation at (x, y) at [(x mod n) * m + y + r + 1], |x|, |y| <= r + 1. */
  private peak(surface: Float64Array, m: number, r: number, overlap?: Overlap): PatchShift | undefined {
    const n = this.n;
    // Unwrap the search window (+-r around zero shift, plus a 1-px rim for the fits) into a small array.
    const side = 2 * r + 3;
    const win = this.win.length >= side * side ? this.win : (this.win = new Float64Array(side * side));
    for (let y = -r - 1; y <= r + 1; y++) {
      const o = (y + r + 1) * side + r + 1;
      const col = y + r + 1;
      for (let x = -r - 1; x <= r + 1; x++) win[o + x] = surface[(x < 0 ? x + n : x) * m + col] as number;
    }
    let best = -Infinity;
    let bx = 0;
    let by = 0;
    for (let y = -r; y <= r; y++) {
      const o = (y + r + 1) * side + r + 1;
      for (let x = -r; x <= r; x++) {
        const v = win[o + x] as number;
        if (v > best) {
          best = v;
          bx = x;
          by = y;
        }
      }
    }
    if (!(best > 0)) return undefined;
    const raw = (x: number, y: number): number => win[(y + r + 1) * side + x + r + 1] as number;
    // Only the sub-pixel fit sees the envelope-normalised values: the drag is a fraction of a pixel.
    const o0 = overlap ? overlap(bx, by) : 1;
    const at = overlap && o0 > 0 ? (x: number, y: number): number => (raw(x, y) * o0) / Math.max(overlap(x, y), 1e-3 * o0) : raw;
    let second = 0;
    const excl = 3;
    for (let y = -r; y <= r; y++) {
      const o = (y + r + 1) * side + r + 1;
      for (let x = -r; x <= r; x++) {
        const v = win[o + x] as number;
        if (v <= second || (Math.abs(x - bx) <= excl && Math.abs(y - by) <= excl)) continue;
        if (v >= (win[o + x - 1] as number) && v >= (win[o + x + 1] as number) && v >= (win[o + x - side] as number) && v >= (win[o + x + side] as number)) second = v;
      }
    }
    const fit = (m: number, c: number, pl: number): number => {
      // Log-parabola: exact for a sampled Gaussian peak.
      if (m <= 0 || pl <= 0) {
        const den = m - 2 * c + pl;
        return den < 0 ? (0.5 * (m - pl)) / den : 0;
      }
      const lm = Math.log(m);
      const lc = Math.log(c);
      const lp = Math.log(pl);
      const den = lm - 2 * lc + lp;
      const off = den < 0 ? (0.5 * (lm - lp)) / den : 0;
      return Math.max(-1, Math.min(1, off));
    };
    const dx = bx + fit(at(bx - 1, by), best, at(bx + 1, by));
    const dy = by + fit(at(bx, by - 1), best, at(bx, by + 1));
    return { dx, dy, ratio: second > 0 ? best / second : 100 };
  }
}

let warm = false;

/**
 * Runs every path of the correlator once on tiny patches, before the first real one. The loops over a real patch
 * are long enough that V8 compiles them on the stack (OSR) during the first call, before the code after them has
 * run; that code then has no type feedback, and the compiled loop deoptimised at its exit on every later call
 * (a patch's spectra ran mostly interpreted). Results are unaffected: nothing is shared between instances.
 */
function warmUp(): void {
  if (warm) return;
  warm = true;
  for (const size of [8, 6]) {
    const c = new PhaseCorrelator(size);
    const a = Float64Array.from({ length: size * size }, (_, k) => (k * 7) % 5);
    const b = Float64Array.from({ length: size * size }, (_, k) => (k * 3) % 7);
    const s = [c.newSpectrum(), c.newSpectrum(), c.newSpectrum(), c.newSpectrum()] as const;
    c.spectra(a, b, s[0], s[1]);
    c.spectra(b, a, s[2], s[3]);
    c.fromSpectraPair(s[0], s[1], s[2], s[3], 2);
    c.fromSpectraPair(s[0], s[1], undefined, undefined, 2);
    c.fromSpectraPair(s[0], s[0], s[2], s[3], 2);
    c.correlate(a, b, 2);
  }
}
