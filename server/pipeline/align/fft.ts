/**
 * In-place radix-2 complex FFT (1D and 2D, split re/im arrays). Hand-written rather than an npm
 * package: the only sizes used are small powers of two (64-256 px patches), the maintained JS FFT
 * packages either allocate per call or work on interleaved arrays, and precomputed tables per size
 * keep this within a few percent of them.
 */
export class Fft {
  readonly n: number;
  private readonly rev: Uint32Array;
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
   * Inverse 2D transform when only rows [-r, r] (wrapped) of the result are read: columns first, then
   * just those rows, which saves most of the row pass for a small search window.
   */
  inverseRows(re: Float64Array, im: Float64Array, r: number): void {
    this.columns(re, im, true);
    const n = this.n;
    for (let y = -r; y <= r; y++) this.transform(re, im, (y < 0 ? y + n : y) * n, true);
  }
}
