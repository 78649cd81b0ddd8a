/**
 * SIFT-like features (Lowe 2004): difference-of-Gaussian extrema on a Gaussian pyramid, sub-pixel and
 * sub-scale refinement, edge rejection, dominant gradient orientations, and 4 x 4 x 8 gradient histogram
 * descriptors in the keypoint's rotated frame. Written here because no maintained npm package ships SIFT
 * or ORB for Node without a native OpenCV build; opencv.js builds on npm are unmaintained or lack
 * features2d.
 */
import { gaussianBlur, halve, type FloatImage } from "./image.js";

export interface Keypoint {
  x: number;
  y: number;
  /** Gaussian scale in input pixels. */
  sigma: number;
  angle: number;
  response: number;
}

export interface Features {
  keypoints: Keypoint[];
  /** 128 values per keypoint. */
  descriptors: Float32Array;
}

export interface FeatureOptions {
  maxFeatures?: number;
  /** DoG contrast threshold on 0..1 normalised grey values. */
  contrast?: number;
  octaves?: number;
}

const S = 3;
const SIGMA0 = 1.6;
const EDGE_R = 10;

interface Octave {
  gauss: FloatImage[];
  dog: FloatImage[];
  scale: number;
}

/** Gradient magnitude and angle of one pyramid level, computed once and shared by all its keypoints. */
interface Polar {
  mag: Float32Array;
  ang: Float32Array;
  width: number;
  height: number;
}

function polarOf(g: FloatImage): Polar {
  const { data, width: w, height: h } = g;
  const mag = new Float32Array(w * h);
  const ang = new Float32Array(w * h);
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const k = y * w + x;
      const gx = (data[k + 1] as number) - (data[k - 1] as number);
      const gy = (data[k + w] as number) - (data[k - w] as number);
      mag[k] = Math.sqrt(gx * gx + gy * gy);
      ang[k] = Math.atan2(gy, gx);
    }
  }
  return { mag, ang, width: w, height: h };
}

function buildPyramid(img: FloatImage, octaves: number): Octave[] {
  const out: Octave[] = [];
  // The input is taken as already blurred by 0.5 px (camera), as in Lowe's paper.
  let base = gaussianBlur(img, Math.sqrt(SIGMA0 * SIGMA0 - 0.25));
  const tmp = new Float32Array(img.width * img.height);
  for (let o = 0; o < octaves; o++) {
    if (base.width < 24 || base.height < 24) break;
    const gauss: FloatImage[] = [base];
    for (let i = 1; i < S + 3; i++) {
      const prev = SIGMA0 * 2 ** ((i - 1) / S);
      const cur = SIGMA0 * 2 ** (i / S);
      gauss.push(gaussianBlur(gauss[i - 1] as FloatImage, Math.sqrt(cur * cur - prev * prev), tmp));
    }
    const dog: FloatImage[] = [];
    for (let i = 0; i < S + 2; i++) {
      const a = (gauss[i] as FloatImage).data;
      const b = (gauss[i + 1] as FloatImage).data;
      const d = new Float32Array(a.length);
      for (let k = 0; k < a.length; k++) d[k] = (b[k] as number) - (a[k] as number);
      dog.push({ data: d, width: base.width, height: base.height });
    }
    out.push({ gauss, dog, scale: 2 ** o });
    base = halve(gauss[S] as FloatImage);
  }
  return out;
}

function isExtremum(dog: FloatImage[], i: number, x: number, y: number): boolean {
  const w = (dog[i] as FloatImage).width;
  const v = (dog[i] as FloatImage).data[y * w + x] as number;
  const max = v > 0;
  for (let s = i - 1; s <= i + 1; s++) {
    const d = (dog[s] as FloatImage).data;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        if (s === i && dx === 0 && dy === 0) continue;
        const u = d[(y + dy) * w + x + dx] as number;
        if (max ? u >= v : u <= v) return false;
      }
    }
  }
  return true;
}

/** Quadratic fit in (x, y, scale); undefined when the point drifts away, is weak, or sits on an edge. */
function refine(dog: FloatImage[], i0: number, x0: number, y0: number, contrast: number): { x: number; y: number; s: number; value: number } | undefined {
  let i = i0;
  let x = x0;
  let y = y0;
  const w = (dog[0] as FloatImage).width;
  const h = (dog[0] as FloatImage).height;
  for (let iter = 0; iter < 5; iter++) {
    const D = (s: number, xx: number, yy: number): number => (dog[s] as FloatImage).data[yy * w + xx] as number;
    const v = D(i, x, y);
    const dx = (D(i, x + 1, y) - D(i, x - 1, y)) / 2;
    const dy = (D(i, x, y + 1) - D(i, x, y - 1)) / 2;
    const ds = (D(i + 1, x, y) - D(i - 1, x, y)) / 2;
    const dxx = D(i, x + 1, y) + D(i, x - 1, y) - 2 * v;
    const dyy = D(i, x, y + 1) + D(i, x, y - 1) - 2 * v;
    const dss = D(i + 1, x, y) + D(i - 1, x, y) - 2 * v;
    const dxy = (D(i, x + 1, y + 1) - D(i, x - 1, y + 1) - D(i, x + 1, y - 1) + D(i, x - 1, y - 1)) / 4;
    const dxs = (D(i + 1, x + 1, y) - D(i + 1, x - 1, y) - D(i - 1, x + 1, y) + D(i - 1, x - 1, y)) / 4;
    const dys = (D(i + 1, x, y + 1) - D(i + 1, x, y - 1) - D(i - 1, x, y + 1) + D(i - 1, x, y - 1)) / 4;
    // Solve H * off = -g by Cramer's rule (3 x 3, symmetric).
    const det = dxx * (dyy * dss - dys * dys) - dxy * (dxy * dss - dys * dxs) + dxs * (dxy * dys - dyy * dxs);
    if (Math.abs(det) < 1e-12) return undefined;
    const ox = -(dx * (dyy * dss - dys * dys) - dxy * (dy * dss - dys * ds) + dxs * (dy * dys - dyy * ds)) / det;
    const oy = -(dxx * (dy * dss - ds * dys) - dx * (dxy * dss - dys * dxs) + dxs * (dxy * ds - dy * dxs)) / det;
    const os = -(dxx * (dyy * ds - dys * dy) - dxy * (dxy * ds - dy * dxs) + dx * (dxy * dys - dyy * dxs)) / det;
    if (Math.abs(ox) < 0.5 && Math.abs(oy) < 0.5 && Math.abs(os) < 0.5) {
      const value = v + 0.5 * (dx * ox + dy * oy + ds * os);
      if (Math.abs(value) < contrast / S) return undefined;
      const tr = dxx + dyy;
      const det2 = dxx * dyy - dxy * dxy;
      if (det2 <= 0 || tr * tr * EDGE_R >= (EDGE_R + 1) ** 2 * det2) return undefined;
      return { x: x + ox, y: y + oy, s: i + os, value };
    }
    x += Math.round(ox);
    y += Math.round(oy);
    i += Math.round(os);
    if (i < 1 || i > S || x < 5 || y < 5 || x >= w - 5 || y >= h - 5) return undefined;
  }
  return undefined;
}

function orientations(g: Polar, x: number, y: number, sigma: number): number[] {
  const bins = 36;
  const hist = new Float64Array(bins);
  const r = Math.round(3 * 1.5 * sigma);
  const xi = Math.round(x);
  const yi = Math.round(y);
  const denom = 2 * (1.5 * sigma) ** 2;
  const { mag, ang, width: w, height: h } = g;
  for (let j = -r; j <= r; j++) {
    const yy = yi + j;
    if (yy <= 0 || yy >= h - 1) continue;
    for (let i = -r; i <= r; i++) {
      const xx = xi + i;
      if (xx <= 0 || xx >= w - 1) continue;
      const a = ang[yy * w + xx] as number;
      const bin = Math.round(((a + Math.PI) / (2 * Math.PI)) * bins) % bins;
      hist[bin] = (hist[bin] as number) + (mag[yy * w + xx] as number) * Math.exp(-(i * i + j * j) / denom);
    }
  }
  const smooth = new Float64Array(bins);
  for (let k = 0; k < bins; k++) {
    smooth[k] = ((hist[(k + bins - 2) % bins] as number) + (hist[(k + 2) % bins] as number)) / 16 +
      (4 * ((hist[(k + bins - 1) % bins] as number) + (hist[(k + 1) % bins] as number))) / 16 + (6 * (hist[k] as number)) / 16;
  }
  let max = 0;
  for (const v of smooth) max = Math.max(max, v);
  const out: number[] = [];
  for (let k = 0; k < bins; k++) {
    const l = smooth[(k + bins - 1) % bins] as number;
    const c = smooth[k] as number;
    const rr = smooth[(k + 1) % bins] as number;
    if (c > l && c > rr && c >= 0.8 * max) {
      const off = (0.5 * (l - rr)) / (l - 2 * c + rr);
      out.push((((k + off) / bins) * 2 * Math.PI) - Math.PI);
    }
  }
  return out;
}

function descriptor(g: Polar, x: number, y: number, sigma: number, angle: number, out: Float32Array, at: number): void {
  const d = 4;
  const n = 8;
  const binWidth = 3 * sigma;
  const radius = Math.round((binWidth * Math.SQRT2 * (d + 1)) / 2);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const hist = new Float64Array(d * d * n);
  const { mag: gm, ang: ga, width: w, height: h } = g;
  const xi = Math.round(x);
  const yi = Math.round(y);
  const r2 = radius * radius;
  for (let j = -radius; j <= radius; j++) {
    for (let i = -radius; i <= radius; i++) {
      if (i * i + j * j > r2) continue;
      const rx = (cos * i + sin * j) / binWidth;
      const ry = (-sin * i + cos * j) / binWidth;
      const rbin = ry + d / 2 - 0.5;
      const cbin = rx + d / 2 - 0.5;
      if (rbin <= -1 || rbin >= d || cbin <= -1 || cbin >= d) continue;
      const xx = xi + i;
      const yy = yi + j;
      if (xx <= 0 || xx >= w - 1 || yy <= 0 || yy >= h - 1) continue;
      const mag = (gm[yy * w + xx] as number) * Math.exp(-(rx * rx + ry * ry) / (0.5 * d * d));
      let ob = (((ga[yy * w + xx] as number) - angle) / (2 * Math.PI)) * n;
      if (ob < 0) ob += n;
      if (ob >= n) ob -= n;
      const r0 = Math.floor(rbin);
      const c0 = Math.floor(cbin);
      const o0 = Math.floor(ob);
      const fr = rbin - r0;
      const fc = cbin - c0;
      const fo = ob - o0;
      for (let dr = 0; dr <= 1; dr++) {
        const rb = r0 + dr;
        if (rb < 0 || rb >= d) continue;
        const wr = dr ? fr : 1 - fr;
        for (let dc = 0; dc <= 1; dc++) {
          const cb = c0 + dc;
          if (cb < 0 || cb >= d) continue;
          const wc = dc ? fc : 1 - fc;
          for (let dob = 0; dob <= 1; dob++) {
            const obin = (o0 + dob) % n;
            const k = (rb * d + cb) * n + obin;
            hist[k] = (hist[k] as number) + mag * wr * wc * (dob ? fo : 1 - fo);
          }
        }
      }
    }
  }
  // Normalise, clip at 0.2 (illumination changes saturate some gradients), renormalise.
  let norm = 0;
  for (const v of hist) norm += v * v;
  norm = Math.sqrt(norm) || 1;
  let norm2 = 0;
  for (let k = 0; k < hist.length; k++) {
    const v = Math.min(0.2, (hist[k] as number) / norm);
    hist[k] = v;
    norm2 += v * v;
  }
  norm2 = Math.sqrt(norm2) || 1;
  for (let k = 0; k < hist.length; k++) out[at + k] = (hist[k] as number) / norm2;
}

export function detectFeatures(img: FloatImage, options: FeatureOptions = {}): Features {
  if (!featuresWarm) {
    // Every path once on a small image first (see warmUp in correlate.ts). Nothing is shared with the real call.
    featuresWarm = true;
    const size = 96;
    const data = new Float32Array(size * size);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) data[y * size + x] = 0.5 + 0.4 * Math.sin(x * 0.45 + Math.cos(y * 0.3)) * Math.cos(y * 0.37);
    const f = detectFeatures({ data, width: size, height: size });
    matchFeatures(f, f, 0.8, 40);
  }
  const maxFeatures = options.maxFeatures ?? 2000;
  const contrast = options.contrast ?? 0.02;
  const octaves = buildPyramid(img, options.octaves ?? 4);
  type Candidate = { o: number; x: number; y: number; s: number; value: number };
  const candidates: Candidate[] = [];
  for (let o = 0; o < octaves.length; o++) {
    const { dog } = octaves[o] as Octave;
    const w = (dog[0] as FloatImage).width;
    const h = (dog[0] as FloatImage).height;
    const pre = (0.5 * contrast) / S;
    for (let i = 1; i <= S; i++) {
      const d = (dog[i] as FloatImage).data;
      for (let y = 5; y < h - 5; y++) {
        for (let x = 5; x < w - 5; x++) {
          const v = d[y * w + x] as number;
          if (Math.abs(v) <= pre || !isExtremum(dog, i, x, y)) continue;
          const r = refine(dog, i, x, y, contrast);
          if (r) candidates.push({ o, ...r });
        }
      }
    }
  }
  candidates.sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
  const keypoints: Keypoint[] = [];
  const descs: Float32Array[] = [];
  const polars = new Map<number, Polar>();
  for (const c of candidates) {
    if (keypoints.length >= maxFeatures) break;
    const oct = octaves[c.o] as Octave;
    const sigmaOct = SIGMA0 * 2 ** (c.s / S);
    const level = Math.min(S + 2, Math.max(0, Math.round(c.s)));
    const key = c.o * 16 + level;
    let g = polars.get(key);
    if (!g) {
      g = polarOf(oct.gauss[level] as FloatImage);
      polars.set(key, g);
    }
    for (const angle of orientations(g, c.x, c.y, sigmaOct)) {
      const d = new Float32Array(128);
      descriptor(g, c.x, c.y, sigmaOct, angle, d, 0);
      keypoints.push({ x: c.x * oct.scale, y: c.y * oct.scale, sigma: sigmaOct * oct.scale, angle, response: Math.abs(c.value) });
      descs.push(d);
    }
  }
  const descriptors = new Float32Array(descs.length * 128);
  descs.forEach((d, k) => descriptors.set(d, k * 128));
  return { keypoints, descriptors };
}

let featuresWarm = false;

/**
 * Nearest neighbours by descriptor distance with Lowe's ratio test. Candidates farther apart than
 * `maxDistance` (in pixels) are never considered: sections of one stack do not jump across the image,
 * and excluding impossible candidates makes the ratio test more selective among plausible ones.
 */
export function matchFeatures(a: Features, b: Features, ratio = 0.8, maxDistance = Infinity): { src: Float64Array; dst: Float64Array } {
  const src: number[] = [];
  const dst: number[] = [];
  const na = a.keypoints.length;
  const nb = b.keypoints.length;
  const maxD2 = maxDistance * maxDistance;
  for (let i = 0; i < na; i++) {
    const ka = a.keypoints[i] as Keypoint;
    let best = Infinity;
    let second = Infinity;
    let bestJ = -1;
    for (let j = 0; j < nb; j++) {
      const kb = b.keypoints[j] as Keypoint;
      if ((ka.x - kb.x) ** 2 + (ka.y - kb.y) ** 2 > maxD2) continue;
      let d = 0;
      const oa = i * 128;
      const ob = j * 128;
      for (let k = 0; k < 128; k++) {
        const t = (a.descriptors[oa + k] as number) - (b.descriptors[ob + k] as number);
        d += t * t;
        if (d >= second) break;
      }
      if (d < best) {
        second = best;
        best = d;
        bestJ = j;
      } else if (d < second) second = d;
    }
    if (bestJ >= 0 && best < ratio * ratio * second) {
      const kb = b.keypoints[bestJ] as Keypoint;
      src.push(ka.x, ka.y);
      dst.push(kb.x, kb.y);
    }
  }
  return { src: Float64Array.from(src), dst: Float64Array.from(dst) };
}
