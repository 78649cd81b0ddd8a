/**
 * Separable linear resampling of channel-major float planes, antialiased when shrinking: the same filter as
 * Pillow's BILINEAR resize (a triangle whose support widens by the shrink factor, weights renormalised at the
 * borders), so Pillow is its oracle (resample.test.ts). Written here rather than taken from sharp because it runs
 * on float32 probabilities and z-scored sections, which sharp's 8/16-bit pipeline does not carry.
 */

/** Per output index, the first input index and the normalised weights of the inputs it reads. */
interface Taps {
  first: Int32Array;
  count: Int32Array;
  /** `maxTaps` weights per output index (zero-padded). */
  weights: Float32Array;
  maxTaps: number;
}

function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle's half-width, in input pixels
  const maxTaps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  const w = new Float64Array(maxTaps);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.floor(centre - support + 0.5), 0);
    const hi = Math.min(Math.floor(centre + support + 0.5), inSize);
    let sum = 0;
    for (let i = lo; i < hi; i++) {
      const v = Math.max(0, 1 - Math.abs((i - centre + 0.5) / filterScale));
      w[i - lo] = v;
      sum += v;
    }
    first[o] = lo;
    count[o] = hi - lo;
    for (let i = 0; i < hi - lo; i++) weights[o * maxTaps + i] = sum > 0 ? (w[i] as number) / sum : 0;
  }
  return { first, count, weights, maxTaps };
}

/** `planes` planes of w x h (channel-major) resampled to w2 x h2 each. */
export function resamplePlanes(src: Float32Array, planes: number, w: number, h: number, w2: number, h2: number): Float32Array {
  if (src.length !== planes * w * h) throw new RangeError(`expected ${planes} x ${w} x ${h} values, got ${src.length}`);
  if (w2 === w && h2 === h) return src;
  return new RowResampler(planes, w, h, w2, h2).push(src, h, w * h).data;
}

/** Output rows [y0, y0 + rows) of every plane, channel-major: plane p's rows start at p * rows * width. */
export interface ResampledRows {
  y0: number;
  rows: number;
  data: Float32Array;
}

/**
 * Resampling fed row band by row band (resamplePlanes is one band of every row): input rows arrive in order, each
 * output row leaves as soon as every input row it reads has arrived, and only the input rows later output rows
 * still read are held (a few rows more than the band). Each output value is the same arithmetic in the same order
 * whatever the bands, so the same to the bit; it lets a section inferred on another grid be resampled back from a
 * blending window instead of from its whole grid.
 */
export class RowResampler {
  private readonly tx: Taps;
  private readonly ty: Taps;
  /** Horizontally resampled input rows [heldStart, heldEnd) of each plane, `cap` rows a plane. */
  private held = new Float32Array(0);
  private cap = 0;
  private heldStart = 0;
  private heldEnd = 0;
  private nextOut = 0;

  constructor(
    private readonly planes: number,
    private readonly w: number,
    private readonly h: number,
    private readonly w2: number,
    private readonly h2: number,
  ) {
    this.tx = taps(w, w2);
    this.ty = taps(h, h2);
  }

  /** Input rows held for output rows still to come (at most one output row's taps). */
  get heldRows(): number {
    return this.heldEnd - this.heldStart;
  }

  /** The next `rows` input rows of each plane, plane p's at src[p * stride]; returns the output rows now final. */
  push(src: Float32Array, rows: number, stride: number): ResampledRows {
    const { planes, w, w2, tx, ty } = this;
    if (this.heldEnd + rows > this.h) throw new RangeError(`pushed rows up to ${this.heldEnd + rows}, the input has ${this.h}`);
    const keep = this.heldEnd - this.heldStart;
    if (keep + rows > this.cap) {
      const cap = keep + rows;
      const grown = new Float32Array(planes * cap * w2);
      for (let p = 0; p < planes; p++) grown.set(this.held.subarray(p * this.cap * w2, (p * this.cap + keep) * w2), p * cap * w2);
      this.held = grown;
      this.cap = cap;
    }
    for (let p = 0; p < planes; p++) {
      for (let r = 0; r < rows; r++) {
        const sr = p * stride + r * w;
        const dr = (p * this.cap + keep + r) * w2;
        for (let x = 0; x < w2; x++) {
          const f = (tx.first[x] as number) + sr;
          const c = tx.count[x] as number;
          const wo = x * tx.maxTaps;
          let acc = 0;
          for (let k = 0; k < c; k++) acc += (src[f + k] as number) * (tx.weights[wo + k] as number);
          this.held[dr + x] = acc;
        }
      }
    }
    this.heldEnd += rows;
    const y0 = this.nextOut;
    let y1 = y0;
    while (y1 < this.h2 && (ty.first[y1] as number) + (ty.count[y1] as number) <= this.heldEnd) y1++;
    const n = y1 - y0;
    const out = new Float32Array(planes * n * w2);
    for (let p = 0; p < planes; p++) {
      for (let y = y0; y < y1; y++) {
        const f = ty.first[y] as number;
        const c = ty.count[y] as number;
        const wo = y * ty.maxTaps;
        const dr = (p * n + y - y0) * w2;
        for (let k = 0; k < c; k++) {
          const wk = ty.weights[wo + k] as number;
          const sr = (p * this.cap + f + k - this.heldStart) * w2;
          for (let x = 0; x < w2; x++) out[dr + x] = (out[dr + x] as number) + wk * (this.held[sr + x] as number);
        }
      }
    }
    this.nextOut = y1;
    // Rows before the next output row's first input are read by no later row (firsts do not decrease).
    const drop = Math.min((y1 < this.h2 ? (ty.first[y1] as number) : this.heldEnd) - this.heldStart, this.heldEnd - this.heldStart);
    if (drop > 0) {
      const left = this.heldEnd - this.heldStart - drop;
      for (let p = 0; p < planes; p++) this.held.copyWithin(p * this.cap * w2, (p * this.cap + drop) * w2, (p * this.cap + drop + left) * w2);
      this.heldStart += drop;
    }
    return { y0, rows: n, data: out };
  }
}
