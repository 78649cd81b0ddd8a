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
  const tx = taps(w, w2);
  const ty = taps(h, h2);
  const row = new Float32Array(w2 * h); // one plane after the horizontal pass
  const out = new Float32Array(planes * w2 * h2);
  for (let p = 0; p < planes; p++) {
    const s = src.subarray(p * w * h, (p + 1) * w * h);
    for (let y = 0; y < h; y++) {
      const sr = y * w;
      const dr = y * w2;
      for (let x = 0; x < w2; x++) {
        const f = (tx.first[x] as number) + sr;
        const c = tx.count[x] as number;
        const wo = x * tx.maxTaps;
        let acc = 0;
        for (let k = 0; k < c; k++) acc += (s[f + k] as number) * (tx.weights[wo + k] as number);
        row[dr + x] = acc;
      }
    }
    const d = out.subarray(p * w2 * h2, (p + 1) * w2 * h2);
    for (let y = 0; y < h2; y++) {
      const f = ty.first[y] as number;
      const c = ty.count[y] as number;
      const wo = y * ty.maxTaps;
      const dr = y * w2;
      for (let k = 0; k < c; k++) {
        const wk = ty.weights[wo + k] as number;
        const sr = (f + k) * w2;
        for (let x = 0; x < w2; x++) d[dr + x] = (d[dr + x] as number) + wk * (row[sr + x] as number);
      }
    }
  }
  return out;
}
