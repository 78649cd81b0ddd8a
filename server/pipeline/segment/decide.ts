/**
 * Each pixel's class from its blended probabilities: the model's decision thresholds (a class whose probability
 * reaches its threshold wins), argmax for the others; pure kernels on typed arrays (segment.ts runs them per band of
 * final rows).
 */
import type { ModelInfo } from "./model.js";

/**
 * Class codes of a section: `decide` for every pixel of the channel-major float32 probabilities, and each
 * channel's probability as uint8 into `planes` when given. Loops run channel by channel over whole planes, not
 * pixel by pixel over channels: the per-pixel form (a Float64 copy and a call per pixel) cost ~140 ns a pixel, a
 * quarter of the main thread on the demo; this one ~40. `decide` stays the oracle (segment.test.ts). Channel k's
 * plane starts at k * stride (a blending window holds more rows than it decides); the codes go into `out`.
 */
export function decideSection(probs: Float32Array, n: number, C: number, codes: readonly number[], threshold: Float64Array, planes?: Uint8Array[], stride = n, out = new Uint8Array(n)): Uint8Array {
  // As in decide: without any unthresholded channel every channel competes in the fallback argmax.
  const free = threshold.some((t) => Number.isNaN(t));
  const bestP = new Float32Array(n).fill(-1);
  const best = new Uint8Array(n);
  const reachedP = new Float32Array(n).fill(-1);
  const reached = new Int8Array(n).fill(-1);
  for (let k = 0; k < C; k++) {
    const t = threshold[k] as number;
    const plane = probs.subarray(k * stride, k * stride + n);
    const bytes = planes?.[k];
    if (bytes) for (let i = 0; i < n; i++) bytes[i] = Math.round((plane[i] as number) * 255);
    if (!free || Number.isNaN(t)) {
      for (let i = 0; i < n; i++) {
        const p = plane[i] as number;
        if (p > (bestP[i] as number)) {
          bestP[i] = p;
          best[i] = k;
        }
      }
    }
    if (!Number.isNaN(t)) {
      // reachedP starts below any probability, so "more probable than the best reached" also means "first reached".
      for (let i = 0; i < n; i++) {
        const p = plane[i] as number;
        if (p >= t && p > (reachedP[i] as number)) {
          reachedP[i] = p;
          reached[i] = k;
        }
      }
    }
  }
  for (let i = 0; i < n; i++) {
    const r = reached[i] as number;
    out[i] = codes[r >= 0 ? r : (best[i] as number)] as number;
  }
  return out;
}

/** Per output channel the model's threshold (or an override's), NaN for channels decided by argmax. */
export function thresholdsByChannel(model: ModelInfo, override?: ReadonlyMap<string, number>): Float64Array {
  const t = override ?? model.thresholds;
  return Float64Array.from(model.classNames, (name) => t.get(name) ?? NaN);
}

/**
 * A pixel's channel from its probabilities: the most probable of the channels with a threshold that their
 * probability reaches, else the most probable channel among those without one (all of them when every channel
 * has one); first of equals. With no thresholds this is argmax. Why thresholds: a class learnt with a class-weighted marginal
 * loss (mitochondria on real data, annotated alone) comes out over-confident, so "most probable of seven"
 * calls it where the model gives "not mitochondrion" the larger share.
 */
export function decide(p: ArrayLike<number>, threshold: Float64Array): number {
  let free = false;
  let reached = -1;
  for (let k = 0; k < p.length; k++) {
    const t = threshold[k] as number;
    if (Number.isNaN(t)) free = true;
    else if ((p[k] as number) >= t && (reached < 0 || (p[k] as number) > (p[reached] as number))) reached = k;
  }
  if (reached >= 0) return reached;
  let best = -1;
  let bestP = -1;
  for (let k = 0; k < p.length; k++) {
    if (free && !Number.isNaN(threshold[k] as number)) continue;
    if ((p[k] as number) > bestP) {
      bestP = p[k] as number;
      best = k;
    }
  }
  return best < 0 ? 0 : best;
}
