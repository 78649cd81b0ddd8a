/** Small float-image kernels shared by the feature detector, the correlator and the evaluation. */

export type Section = Uint8Array | Uint16Array;

export interface FloatImage {
  data: Float32Array;
  width: number;
  height: number;
}

/** One z plane of a stack as a view (no copy). */
export function sectionView<T extends Uint8Array | Uint16Array>(data: T, w: number, h: number, z: number): T {
  return data.subarray(z * w * h, (z + 1) * w * h) as T;
}

/**
 * Grey values scaled so the 1st..99th percentiles span 0..1, averaged over `factor` x `factor` blocks.
 * Percentiles rather than min/max so that one hot pixel or a black border does not flatten the contrast
 * that the feature detector's thresholds assume.
 */
export function normalisedFloat(src: Section, w: number, h: number, factor = 1): FloatImage {
  const max = src instanceof Uint16Array ? 65535 : 255;
  const hist = new Uint32Array(max + 1);
  for (let i = 0; i < src.length; i++) hist[src[i] as number]++;
  const lo = percentileOf(hist, src.length * 0.01);
  const hi = percentileOf(hist, src.length * 0.99);
  const scale = hi > lo ? 1 / (hi - lo) : 0;
  const ow = Math.max(1, Math.floor(w / factor));
  const oh = Math.max(1, Math.floor(h / factor));
  const out = new Float32Array(ow * oh);
  const inv = 1 / (factor * factor);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let j = 0; j < factor; j++) {
        const row = (y * factor + j) * w + x * factor;
        for (let i = 0; i < factor; i++) s += src[row + i] as number;
      }
      out[y * ow + x] = (s * inv - lo) * scale;
    }
  }
  return { data: out, width: ow, height: oh };
}

function percentileOf(hist: Uint32Array, rank: number): number {
  let acc = 0;
  for (let v = 0; v < hist.length; v++) {
    acc += hist[v] as number;
    if (acc > rank) return v;
  }
  return hist.length - 1;
}

/** Standard deviation of a section, to recognise blank ones. */
export function sectionStd(src: Section): number {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < src.length; i++) {
    const v = src[i] as number;
    s += v;
    s2 += v * v;
  }
  const m = s / src.length;
  return Math.sqrt(Math.max(0, s2 / src.length - m * m));
}

export function gaussianKernel(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp((-i * i) / (2 * sigma * sigma));
    k[i + r] = v;
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i] = (k[i] as number) / sum;
  return k;
}

/** Separable Gaussian blur with edge clamping; `tmp` avoids a per-call allocation in pyramids. */
export function gaussianBlur(img: FloatImage, sigma: number, tmp?: Float32Array): FloatImage {
  if (!blurWarm) {
    // Every path once on a tiny image first (see warmUp in correlate.ts: the first whole-section call would
    // otherwise compile its loops before the code after them has type feedback, and deoptimise at their exits).
    blurWarm = true;
    gaussianBlur({ data: Float32Array.from({ length: 24 * 20 }, (_, k) => (k * 7) % 11), width: 24, height: 20 }, 1.6);
  }
  const { width: w, height: h, data } = img;
  // The Float32 kernel's values as doubles (exact), which is what each multiplication reads.
  const k = Float64Array.from(gaussianKernel(sigma));
  const len = k.length;
  const r = (len - 1) / 2;
  const mid = tmp && tmp.length >= w * h ? tmp : new Float32Array(w * h);
  // Interior pixels skip the edge clamping, which otherwise costs as much as the multiply-adds.
  const xa = Math.min(r, w);
  const xb = Math.max(xa, w - r);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < xa; x++) mid[row + x] = clampedTaps(data, row, w, x, k, r);
    // Four outputs per sweep of the taps: four independent sums (each in its own order, as one at a time).
    let x = xa;
    for (; x + 3 < xb; x += 4) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      const base = row + x - r;
      for (let i = 0; i < len; i++) {
        const kv = k[i] as number;
        s0 += kv * (data[base + i] as number);
        s1 += kv * (data[base + i + 1] as number);
        s2 += kv * (data[base + i + 2] as number);
        s3 += kv * (data[base + i + 3] as number);
      }
      mid[row + x] = s0;
      mid[row + x + 1] = s1;
      mid[row + x + 2] = s2;
      mid[row + x + 3] = s3;
    }
    for (; x < xb; x++) {
      let s = 0;
      const base = row + x - r;
      for (let i = 0; i < len; i++) s += (k[i] as number) * (data[base + i] as number);
      mid[row + x] = s;
    }
    for (let x = xb; x < w; x++) mid[row + x] = clampedTaps(data, row, w, x, k, r);
  }
  // Vertical pass: each output row accumulates the taps in order, rounded to float32 after each one (as
  // storing into `out` would); four taps per sweep of the row keep the running value in a register.
  const out = new Float32Array(w * h);
  const fround = Math.fround;
  for (let y = 0; y < h; y++) {
    const o = y * w;
    let i = -r;
    for (; i + 3 <= r; i += 4) {
      const s0 = clampRow(y + i, w, h);
      const s1 = clampRow(y + i + 1, w, h);
      const s2 = clampRow(y + i + 2, w, h);
      const s3 = clampRow(y + i + 3, w, h);
      const k0 = k[i + r] as number;
      const k1 = k[i + r + 1] as number;
      const k2 = k[i + r + 2] as number;
      const k3 = k[i + r + 3] as number;
      for (let x = 0; x < w; x++) {
        let acc = fround((out[o + x] as number) + k0 * (mid[s0 + x] as number));
        acc = fround(acc + k1 * (mid[s1 + x] as number));
        acc = fround(acc + k2 * (mid[s2 + x] as number));
        out[o + x] = acc + k3 * (mid[s3 + x] as number);
      }
    }
    for (; i <= r; i++) {
      const src = clampRow(y + i, w, h);
      const kv = k[i + r] as number;
      for (let x = 0; x < w; x++) out[o + x] = (out[o + x] as number) + kv * (mid[src + x] as number);
    }
  }
  return { data: out, width: w, height: h };
}

let blurWarm = false;

/** Offset of row yy clamped to [0, h - 1]. */
function clampRow(yy: number, w: number, h: number): number {
  return (yy < 0 ? 0 : yy >= h ? h - 1 : yy) * w;
}

/** One horizontal output of gaussianBlur near the row's ends (indices clamped). */
function clampedTaps(data: Float32Array, row: number, w: number, x: number, k: Float64Array, r: number): number {
  let s = 0;
  for (let i = -r; i <= r; i++) {
    const xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
    s += (k[i + r] as number) * (data[row + xx] as number);
  }
  return s;
}

/** Every other pixel: the next octave of a Gaussian pyramid (the input is already blurred). */
export function halve(img: FloatImage): FloatImage {
  const w = Math.floor(img.width / 2);
  const h = Math.floor(img.height / 2);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = img.data[2 * y * img.width + 2 * x] as number;
  return { data: out, width: w, height: h };
}

/** Bilinear sample; NaN outside the image so callers can tell missing data from dark pixels. */
export function bilinear(src: ArrayLike<number>, w: number, h: number, x: number, y: number): number {
  if (!(x >= 0 && y >= 0 && x <= w - 1 && y <= h - 1)) return NaN;
  const x0 = Math.min(Math.floor(x), w - 2 < 0 ? 0 : w - 2);
  const y0 = Math.min(Math.floor(y), h - 2 < 0 ? 0 : h - 2);
  const fx = x - x0;
  const fy = y - y0;
  const i = y0 * w + x0;
  const x1 = w > 1 ? 1 : 0;
  const y1 = h > 1 ? w : 0;
  const a = src[i] as number;
  const b = src[i + x1] as number;
  const c = src[i + y1] as number;
  const d = src[i + y1 + x1] as number;
  return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
}
