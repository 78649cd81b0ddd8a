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
  }

  /**
   * The butterflies of a transform along the row index of an n x `width` row-major array (row stride
   * `stride`) whose rows are already in bit-reversed order: the same arithmetic in the same order per
   * element as a row-by-row in-place radix-2 transform (the `transform` of db17f24 and before), but
   * vectorised over the row, so it streams through memory. With `keep` < n / 2, rows other than
   * [-keep, keep] (wrapped) of the result are garbage: the last stage skips the butterflies that produce
   * only those.
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
}
