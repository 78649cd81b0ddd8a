/**
 * 2D affine transforms as [a, b, c, d, e, f]: x' = a x + b y + c, y' = d x + e y + f, with least squares
 * fitting and a seeded RANSAC for matched point sets.
 */
import { createRng } from "../random.js";

export type Affine = [number, number, number, number, number, number];

export const IDENTITY: Affine = [1, 0, 0, 0, 1, 0];

export function apply(t: Affine, x: number, y: number): [number, number] {
  return [t[0] * x + t[1] * y + t[2], t[3] * x + t[4] * y + t[5]];
}

/** outer ∘ inner: first inner, then outer. */
export function compose(outer: Affine, inner: Affine): Affine {
  const [a, b, c, d, e, f] = outer;
  const [p, q, r, s, t, u] = inner;
  return [a * p + b * s, a * q + b * t, a * r + b * u + c, d * p + e * s, d * q + e * t, d * r + e * u + f];
}

export function invert(t: Affine): Affine {
  const [a, b, c, d, e, f] = t;
  const det = a * e - b * d;
  if (Math.abs(det) < 1e-12) throw new RangeError("singular affine");
  const ia = e / det;
  const ib = -b / det;
  const id = -d / det;
  const ie = a / det;
  return [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)];
}

/** Scales coordinates: a transform in a grid downsampled by `s` expressed in full-resolution pixels. */
export function rescale(t: Affine, s: number): Affine {
  return [t[0], t[1], t[2] / s, t[3], t[4], t[5] / s];
}

/** Rotation (degrees), mean scale and shear of the linear part, for plausibility checks and reports. */
export function decompose(t: Affine): { rotationDeg: number; scale: number; anisotropy: number } {
  const [a, b, , d, e] = t;
  const sx = Math.hypot(a, d);
  const det = a * e - b * d;
  const sy = det / sx;
  return { rotationDeg: (Math.atan2(d, a) * 180) / Math.PI, scale: Math.sqrt(Math.abs(det)), anisotropy: sx / sy };
}

/**
 * Weighted least squares affine mapping src[i] -> dst[i] (points interleaved x, y). Returns undefined
 * when the points are collinear or too few.
 */
export function fitAffine(src: ArrayLike<number>, dst: ArrayLike<number>, weights?: ArrayLike<number>, subset?: ArrayLike<number>): Affine | undefined {
  const n = subset ? subset.length : src.length / 2;
  if (n < 3) return undefined;
  // Centring first keeps the normal equations well conditioned for pixel coordinates in the thousands.
  let sw = 0;
  let mx = 0;
  let my = 0;
  let mu = 0;
  let mv = 0;
  for (let k = 0; k < n; k++) {
    const i = subset ? (subset[k] as number) : k;
    const w = weights ? (weights[i] as number) : 1;
    sw += w;
    mx += w * (src[2 * i] as number);
    my += w * (src[2 * i + 1] as number);
    mu += w * (dst[2 * i] as number);
    mv += w * (dst[2 * i + 1] as number);
  }
  if (sw <= 0) return undefined;
  mx /= sw;
  my /= sw;
  mu /= sw;
  mv /= sw;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  let sux = 0;
  let suy = 0;
  let svx = 0;
  let svy = 0;
  for (let k = 0; k < n; k++) {
    const i = subset ? (subset[k] as number) : k;
    const w = weights ? (weights[i] as number) : 1;
    const x = (src[2 * i] as number) - mx;
    const y = (src[2 * i + 1] as number) - my;
    const u = (dst[2 * i] as number) - mu;
    const v = (dst[2 * i + 1] as number) - mv;
    sxx += w * x * x;
    sxy += w * x * y;
    syy += w * y * y;
    sux += w * u * x;
    suy += w * u * y;
    svx += w * v * x;
    svy += w * v * y;
  }
  const det = sxx * syy - sxy * sxy;
  if (Math.abs(det) < 1e-9 * (sxx * syy + 1e-12) || det <= 0) return undefined;
  const a = (sux * syy - suy * sxy) / det;
  const b = (suy * sxx - sux * sxy) / det;
  const d = (svx * syy - svy * sxy) / det;
  const e = (svy * sxx - svx * sxy) / det;
  return [a, b, mu - a * mx - b * my, d, e, mv - d * mx - e * my];
}

export interface RansacResult {
  affine: Affine;
  inliers: Uint8Array;
  count: number;
  /** Root mean square residual of the inliers, in the points' units. */
  rms: number;
}

export interface RansacOptions {
  threshold?: number;
  iterations?: number;
  seed?: number;
  /** Rejects samples whose transform no section pair could plausibly have (scale, rotation). */
  plausible?: (t: Affine) => boolean;
}

export function ransacAffine(src: ArrayLike<number>, dst: ArrayLike<number>, options: RansacOptions = {}): RansacResult | undefined {
  const n = src.length / 2;
  if (n < 3) return undefined;
  const thr = options.threshold ?? 3;
  const thr2 = thr * thr;
  const iterations = options.iterations ?? 2000;
  const rng = createRng(options.seed ?? 1);
  const plausible = options.plausible ?? (() => true);
  let best: Affine | undefined;
  let bestCount = 0;
  const sample = new Uint32Array(3);
  const countInliers = (t: Affine): number => {
    let c = 0;
    for (let i = 0; i < n; i++) {
      const [x, y] = apply(t, src[2 * i] as number, src[2 * i + 1] as number);
      const dx = x - (dst[2 * i] as number);
      const dy = y - (dst[2 * i + 1] as number);
      if (dx * dx + dy * dy <= thr2) c++;
    }
    return c;
  };
  let needed = iterations;
  for (let it = 0; it < needed; it++) {
    sample[0] = rng.int(0, n - 1);
    sample[1] = rng.int(0, n - 1);
    sample[2] = rng.int(0, n - 1);
    if (sample[0] === sample[1] || sample[1] === sample[2] || sample[0] === sample[2]) continue;
    const t = fitAffine(src, dst, undefined, sample);
    if (!t || !plausible(t)) continue;
    const c = countInliers(t);
    if (c > bestCount) {
      bestCount = c;
      best = t;
      // Adaptive stop at 99.9% confidence of having drawn one all-inlier triple.
      const w = c / n;
      const k = Math.log(0.001) / Math.log(Math.max(1e-12, 1 - w * w * w));
      needed = Math.min(iterations, Math.max(50, Math.ceil(k)));
    }
  }
  if (!best || bestCount < 3) return undefined;
  // Refit on inliers until the inlier set settles; least squares on all inliers is more precise than any triple.
  let inliers = new Uint8Array(n);
  let t = best;
  for (let round = 0; round < 5; round++) {
    const next = new Uint8Array(n);
    const idx: number[] = [];
    for (let i = 0; i < n; i++) {
      const [x, y] = apply(t, src[2 * i] as number, src[2 * i + 1] as number);
      const dx = x - (dst[2 * i] as number);
      const dy = y - (dst[2 * i + 1] as number);
      if (dx * dx + dy * dy <= thr2) {
        next[i] = 1;
        idx.push(i);
      }
    }
    inliers = next;
    const refit = fitAffine(src, dst, undefined, idx);
    if (!refit) break;
    const same = refit.every((v, i) => Math.abs(v - (t[i] as number)) < 1e-9);
    t = refit;
    if (same) break;
  }
  let count = 0;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const [x, y] = apply(t, src[2 * i] as number, src[2 * i + 1] as number);
    const d2 = (x - (dst[2 * i] as number)) ** 2 + (y - (dst[2 * i + 1] as number)) ** 2;
    if (d2 <= thr2) {
      inliers[i] = 1;
      count++;
      ss += d2;
    } else inliers[i] = 0;
  }
  return { affine: t, inliers, count, rms: count > 0 ? Math.sqrt(ss / count) : Infinity };
}
