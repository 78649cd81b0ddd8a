/**
 * In-place radix-2 complex FFT (1D and 2D, split re/im arrays). Hand-written rather than an npm
 * package: the only sizes used are small powers of two (64-256 px patches), the maintained JS FFT
 * packages either allocate per call or work on interleaved arrays, and precomputed tables per size
 * keep this within a few percent of them.
 */
export class Fft {
  readonly n: number;
  /** Bit-reversal permutation of 0 .. n - 1. */
  readonly rev: Uint32Array;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly colRe: Float64Array;
  private readonly colIm: Float64Array;

  constructor(n: number) {
    if (!Number.isInteger(Math.log2(n)) || n < 2) throw new RangeError(`FFT size must be a power of two, got ${n}`);
    this.n = n;
    const bits = Math.log2(n);
    this.rev = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.cos = new Float64Array(n / 2);
    this.sin = new Float64Array(n / 2);
    for (let i = 0; i < n / 2; i++) {
      this.cos[i] = Math.cos((2 * Math.PI * i) / n);
      this.sin[i] = Math.sin((2 * Math.PI * i) / n);
    }
    this.colRe = new Float64Array(n);
    this.colIm = new Float64Array(n);
  }

  /** Forward (e^{-i}) or inverse (e^{+i}, unscaled) transform of n values starting at `off`. */
  transform(re: Float64Array, im: Float64Array, off: number, inverse: boolean): void {
    const n = this.n;
    const rev = this.rev;
    for (let i = 0; i < n; i++) {
      const j = rev[i] as number;
      if (j > i) {
        const a = off + i;
        const b = off + j;
        const tr = re[a] as number;
        re[a] = re[b] as number;
        re[b] = tr;
        const ti = im[a] as number;
        im[a] = im[b] as number;
        im[b] = ti;
      }
    }
    const sign = inverse ? 1 : -1;
    // Twiddle-outer loop order: each twiddle is loaded once per stage, not once per butterfly.
    for (let size = 2; size <= n; size *= 2) {
      const half = size / 2;
      const step = n / size;
      for (let k = 0; k < half; k++) {
        const wr = this.cos[k * step] as number;
        const wi = sign * (this.sin[k * step] as number);
        for (let start = off + k; start < off + n; start += size) {
          const b = start + half;
          const br = re[b] as number;
          const bi = im[b] as number;
          const tr = br * wr - bi * wi;
          const ti = br * wi + bi * wr;
          const ar = re[start] as number;
          const ai = im[start] as number;
          re[b] = ar - tr;
          im[b] = ai - ti;
          re[start] = ar + tr;
          im[start] = ai + ti;
        }
      }
    }
  }

  /**
   * 2D transform of an n x n row-major array; the inverse is unscaled (divide by n^2). The column pass
   * runs its butterflies on whole rows at once, so it streams through memory instead of gathering
   * strided columns.
   */
  transform2d(re: Float64Array, im: Float64Array, inverse: boolean): void {
    const n = this.n;
    for (let y = 0; y < n; y++) this.transform(re, im, y * n, inverse);
    this.columns(re, im, inverse);
  }

  /** The column pass of a 2D transform, butterflies on whole rows. */
  private columns(re: Float64Array, im: Float64Array, inverse: boolean): void {
    const n = this.n;
    const rev = this.rev;
    const tr = this.colRe;
    const ti = this.colIm;
    for (let i = 0; i < n; i++) {
      const j = rev[i] as number;
      if (j > i) {
        tr.set(re.subarray(i * n, i * n + n));
        re.copyWithin(i * n, j * n, j * n + n);
        re.set(tr, j * n);
        ti.set(im.subarray(i * n, i * n + n));
        im.copyWithin(i * n, j * n, j * n + n);
        im.set(ti, j * n);
      }
    }
    const sign = inverse ? 1 : -1;
    for (let size = 2; size <= n; size *= 2) {
      const half = size / 2;
      const step = n / size;
      for (let k = 0; k < half; k++) {
        const wr = this.cos[k * step] as number;
        const wi = sign * (this.sin[k * step] as number);
        for (let start = k; start < n; start += size) {
          const a0 = start * n;
          const b0 = (start + half) * n;
          for (let x = 0; x < n; x++) {
            const a = a0 + x;
            const b = b0 + x;
            const br = re[b] as number;
            const bi = im[b] as number;
            const pr = br * wr - bi * wi;
            const pi = br * wi + bi * wr;
            const ar = re[a] as number;
            const ai = im[a] as number;
            re[b] = ar - pr;
            im[b] = ai - pi;
            re[a] = ar + pr;
            im[a] = ai + pi;
          }
        }
      }
    }
  }

  /**
   * The butterflies of a transform along the row index of an n x `width` row-major array (row stride
   * `stride`) whose rows are already in bit-reversed order: the same arithmetic in the same order per
   * element as `transform`, but vectorised over the row, so it streams through memory. With `keep` < n / 2,
   * rows other than [-keep, keep] (wrapped) of the result are garbage: the last stage skips the butterflies
   * that produce only those.
   */
  butterflies(re: Float64Array, im: Float64Array, width: number, inverse: boolean, keep = this.n, stride = width, from = 2): void {
    const n = this.n;
    const sign = inverse ? 1 : -1;
    // Stages go two at a time (each group of 4 rows is closed under a pair of stages), which halves the
    // loads and stores; the last stage, when the count is odd, goes alone and can skip unread rows. `from`:
    // the first stage's span x 2 (4 after transposeRevFirst, which did the first stage).
    let size = from;
    for (; size * 2 <= n; size *= 4) this.stagePair(re, im, width, stride, sign, size / 2);
    if (size <= n) this.stage(re, im, width, stride, sign, size, keep);
  }

  /**
   * dst[rev[j] * rows + i] = src[offsets[i] + j] for i < rows, j < n (re and im), a transpose that puts the
   * source columns in bit-reversed order, followed by the first stage of `butterflies` (span 1, twiddle k = 0):
   * destination rows 2i and 2i + 1 are source columns j and j + n / 2 (rev[j] = 2i), so each pair is butterflied
   * on the way. In 8 x 8 tiles, so that neither side's cache lines are evicted between uses (a row-major walk
   * writes with a stride of a whole row).
   */
  transposeRevFirst(sre: Float64Array, sim: Float64Array, offsets: Int32Array, rows: number, dre: Float64Array, dim: Float64Array, inverse: boolean): void {
    const n = this.n;
    const rev = this.rev;
    const half = n / 2;
    const wr = this.cos[0] as number;
    const wi = (inverse ? 1 : -1) * (this.sin[0] as number);
    for (let i0 = 0; i0 < rows; i0 += 8) {
      const i1 = Math.min(rows, i0 + 8);
      for (let j0 = 0; j0 < half; j0 += 8) {
        const j1 = Math.min(half, j0 + 8);
        for (let j = j0; j < j1; j++) {
          const da = (rev[j] as number) * rows;
          const db = da + rows;
          for (let i = i0; i < i1; i++) {
            const qa = (offsets[i] as number) + j;
            const qb = qa + half;
            const br = sre[qb] as number;
            const bi = sim[qb] as number;
            const pr = br * wr - bi * wi;
            const pi = br * wi + bi * wr;
            const ar = sre[qa] as number;
            const ai = sim[qa] as number;
            dre[db + i] = ar - pr;
            dim[db + i] = ai - pi;
            dre[da + i] = ar + pr;
            dim[da + i] = ai + pi;
          }
        }
      }
    }
  }

  /** The first stage's twiddle (k = 0) as `butterflies` uses it: [wr, wi]. */
  firstTwiddle(inverse: boolean): [number, number] {
    return [this.cos[0] as number, (inverse ? 1 : -1) * (this.sin[0] as number)];
  }

  /** One radix-2 stage of `butterflies` (butterfly span size / 2). */
  private stage(re: Float64Array, im: Float64Array, width: number, stride: number, sign: number, size: number, keep: number): void {
    const n = this.n;
    const cos = this.cos;
    const sin = this.sin;
    const half = size / 2;
    const step = n / size;
    const last = size === n;
    const off = half * stride;
    for (let k = 0; k < half; k++) {
      if (last && k > keep && k + half < n - keep) continue;
      const wr = cos[k * step] as number;
      const wi = sign * (sin[k * step] as number);
      for (let start = k; start < n; start += size) {
        const a0 = start * stride;
        const end = a0 + width;
        for (let a = a0; a < end; a++) {
          const b = a + off;
          const br = re[b] as number;
          const bi = im[b] as number;
          const pr = br * wr - bi * wi;
          const pi = br * wi + bi * wr;
          const ar = re[a] as number;
          const ai = im[a] as number;
          re[b] = ar - pr;
          im[b] = ai - pi;
          re[a] = ar + pr;
          im[a] = ai + pi;
        }
      }
    }
  }

  /**
   * Two radix-2 stages of `butterflies` at once, spans h and 2h: rows j, j + h, j + 2h, j + 3h of each block of
   * 4h go through (j, j + h), (j + 2h, j + 3h) with twiddle k = j of the first stage, then (j, j + 2h) and
   * (j + h, j + 3h) with k = j and j + h of the second: every butterfly as `stage` computes it.
   */
  private stagePair(re: Float64Array, im: Float64Array, width: number, stride: number, sign: number, h: number): void {
    const n = this.n;
    const cos = this.cos;
    const sin = this.sin;
    const s1 = n / (2 * h);
    const s2 = n / (4 * h);
    const off = h * stride;
    for (let j = 0; j < h; j++) {
      const w1r = cos[j * s1] as number;
      const w1i = sign * (sin[j * s1] as number);
      const w2r = cos[j * s2] as number;
      const w2i = sign * (sin[j * s2] as number);
      const w3r = cos[(j + h) * s2] as number;
      const w3i = sign * (sin[(j + h) * s2] as number);
      for (let start = j; start < n; start += 4 * h) {
        const a0 = start * stride;
        const end = a0 + width;
        for (let a = a0; a < end; a++) {
          const b = a + off;
          const c = b + off;
          const d = c + off;
          // First stage: (a, b) and (c, d), twiddle w1.
          const br = re[b] as number;
          const bi = im[b] as number;
          let pr = br * w1r - bi * w1i;
          let pi = br * w1i + bi * w1r;
          const ar = re[a] as number;
          const ai = im[a] as number;
          const b1r = ar - pr;
          const b1i = ai - pi;
          const a1r = ar + pr;
          const a1i = ai + pi;
          const dr = re[d] as number;
          const di = im[d] as number;
          pr = dr * w1r - di * w1i;
          pi = dr * w1i + di * w1r;
          const cr = re[c] as number;
          const ci = im[c] as number;
          const d1r = cr - pr;
          const d1i = ci - pi;
          const c1r = cr + pr;
          const c1i = ci + pi;
          // Second stage: (a, c) with w2, (b, d) with w3.
          pr = c1r * w2r - c1i * w2i;
          pi = c1r * w2i + c1i * w2r;
          re[c] = a1r - pr;
          im[c] = a1i - pi;
          re[a] = a1r + pr;
          im[a] = a1i + pi;
          pr = d1r * w3r - d1i * w3i;
          pi = d1r * w3i + d1i * w3r;
          re[d] = b1r - pr;
          im[d] = b1i - pi;
          re[b] = b1r + pr;
          im[b] = b1i + pi;
        }
      }
    }
  }

  /**
   * Inverse 2D transform when only rows [-r, r] (wrapped) of the result are read: columns first, then
   * just those rows, which saves most of the row pass for a small search window.
   */
  inverseRows(re: Float64Array, im: Float64Array, r: number): void {
    this.columns(re, im, true);
    const n = this.n;
    for (let y = -r; y <= r; y++) this.transform(re, im, (y < 0 ? y + n : y) * n, true);
  }
}
