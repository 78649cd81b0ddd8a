/**
 * An EM-like rendering of a class-label volume (heavy-metal stained, back-scatter inverted: membranes
 * dark, lipid bright). Section by section: class lumen levels and textures, dark membranes at every
 * boundary (double for mitochondria and nucleus), grazing darkening where a boundary crosses between
 * sections, blur, per-section brightness/contrast drift, noise. Every parameter is in EmStyle so that
 * training can vary them by seed (variedEmStyle).
 */
import type { Volume } from "../../../precomputed/array.js";
import { createRng, type Rng } from "../random.js";
import { CLASS_CODES } from "./shapes.js";

export interface EmStyle {
  cytoplasm: number;
  cytoplasmTexture: number;
  glycogenDarkening: number;
  ribosomesPerMpx: number;
  ribosomeDarkening: number;
  membrane: number;
  /** Pixels of dark membrane inside each boundary (1-2). */
  membraneWidthPx: number;
  erLumen: number;
  mitoMatrix: number;
  cristaeContrast: number;
  cristaePeriodPx: number;
  ld: number;
  ldRim: number;
  lyso: number;
  lysoGranularity: number;
  perox: number;
  peroxCore: number;
  peroxCoreDepthPx: number;
  nucleus: number;
  chromatinContrast: number;
  heterochromatinRimPx: number;
  /** Fraction towards membrane grey where the label changes to the section above or below. */
  grazing: number;
  blurSigmaPx: number;
  noiseSigma: number;
  sectionBrightnessJitter: number;
  sectionContrastJitter: number;
  illuminationGradient: number;
}

export const DEFAULT_EM_STYLE: EmStyle = {
  cytoplasm: 168,
  cytoplasmTexture: 10,
  glycogenDarkening: 22,
  ribosomesPerMpx: 900,
  ribosomeDarkening: 45,
  membrane: 48,
  membraneWidthPx: 1.5,
  erLumen: 118,
  mitoMatrix: 92,
  cristaeContrast: 45,
  cristaePeriodPx: 14,
  ld: 212,
  ldRim: 120,
  lyso: 62,
  lysoGranularity: 28,
  perox: 138,
  peroxCore: 80,
  peroxCoreDepthPx: 14,
  nucleus: 150,
  chromatinContrast: 30,
  heterochromatinRimPx: 8,
  grazing: 0.35,
  blurSigmaPx: 0.9,
  noiseSigma: 9,
  sectionBrightnessJitter: 6,
  sectionContrastJitter: 0.05,
  illuminationGradient: 10,
};

/** A style jittered around the default, for training data that does not overfit one look. */
export function variedEmStyle(seed: number): EmStyle {
  const rng = createRng(seed).fork("em-style");
  const s: EmStyle = { ...DEFAULT_EM_STYLE };
  const jitter = (v: number, rel: number) => v * (1 + rng.uniform(-rel, rel));
  for (const key of Object.keys(s) as (keyof EmStyle)[]) s[key] = jitter(s[key], 0.15);
  s.membraneWidthPx = rng.uniform(1, 2);
  s.blurSigmaPx = rng.uniform(0.6, 1.4);
  s.noiseSigma = rng.uniform(5, 16);
  return s;
}

/** Smooth value noise in [-1, 1] on a lattice of `cell` pixels, bilinear with smoothstep weights. */
function smoothNoise(nx: number, ny: number, cell: number, rng: Rng): Float32Array {
  const gx = Math.ceil(nx / cell) + 2;
  const gy = Math.ceil(ny / cell) + 2;
  const grid = new Float32Array(gx * gy);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.uniform(-1, 1);
  const smooth = (t: number) => t * t * (3 - 2 * t);
  const col = new Int32Array(nx);
  const wx = new Float32Array(nx);
  for (let x = 0; x < nx; x++) {
    col[x] = Math.floor(x / cell);
    wx[x] = smooth(x / cell - (col[x] as number));
  }
  const out = new Float32Array(nx * ny);
  for (let y = 0; y < ny; y++) {
    const j = Math.floor(y / cell);
    const ty = smooth(y / cell - j);
    const r0 = gx * j;
    const r1 = gx * (j + 1);
    for (let x = 0; x < nx; x++) {
      const i = col[x] as number;
      const tx = wx[x] as number;
      const a = (grid[r0 + i] as number) * (1 - tx) + (grid[r0 + i + 1] as number) * tx;
      const b = (grid[r1 + i] as number) * (1 - tx) + (grid[r1 + i + 1] as number) * tx;
      out[x + nx * y] = a * (1 - ty) + b * ty;
    }
  }
  return out;
}

/** In-plane chamfer distance (px) to the nearest pixel of another label; 1 on the boundary row. */
function boundaryDistance(lab: Uint8Array, nx: number, ny: number, cap: number): Float32Array {
  const d = new Float32Array(nx * ny).fill(cap);
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = x + nx * y;
      const l = lab[i];
      if ((x > 0 && lab[i - 1] !== l) || (x < nx - 1 && lab[i + 1] !== l) || (y > 0 && lab[i - nx] !== l) || (y < ny - 1 && lab[i + nx] !== l)) d[i] = 1;
    }
  }
  const D = Math.SQRT2;
  // Forward then backward raster pass; a neighbour only propagates within the same label.
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = x + nx * y;
      const l = lab[i];
      let best = d[i] as number;
      if (x > 0 && lab[i - 1] === l) best = Math.min(best, (d[i - 1] as number) + 1);
      if (y > 0) {
        if (lab[i - nx] === l) best = Math.min(best, (d[i - nx] as number) + 1);
        if (x > 0 && lab[i - nx - 1] === l) best = Math.min(best, (d[i - nx - 1] as number) + D);
        if (x < nx - 1 && lab[i - nx + 1] === l) best = Math.min(best, (d[i - nx + 1] as number) + D);
      }
      d[i] = best;
    }
  }
  for (let y = ny - 1; y >= 0; y--) {
    for (let x = nx - 1; x >= 0; x--) {
      const i = x + nx * y;
      const l = lab[i];
      let best = d[i] as number;
      if (x < nx - 1 && lab[i + 1] === l) best = Math.min(best, (d[i + 1] as number) + 1);
      if (y < ny - 1) {
        if (lab[i + nx] === l) best = Math.min(best, (d[i + nx] as number) + 1);
        if (x < nx - 1 && lab[i + nx + 1] === l) best = Math.min(best, (d[i + nx + 1] as number) + D);
        if (x > 0 && lab[i + nx - 1] === l) best = Math.min(best, (d[i + nx - 1] as number) + D);
      }
      d[i] = best;
    }
  }
  return d;
}

function gaussianBlur(img: Float32Array, nx: number, ny: number, sigma: number): void {
  if (sigma <= 0) return;
  const rad = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * rad + 1);
  let sum = 0;
  for (let i = -rad; i <= rad; i++) sum += k[i + rad] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] = (k[i] as number) / sum;
  // Separable passes; only the `rad` pixels at each end need clamped indices.
  const tmp = new Float32Array(img.length);
  const taps = 2 * rad + 1;
  for (let y = 0; y < ny; y++) {
    const row = nx * y;
    for (let x = 0; x < nx; x++) {
      let acc = 0;
      if (x >= rad && x < nx - rad) {
        const base = row + x - rad;
        for (let q = 0; q < taps; q++) acc += (k[q] as number) * (img[base + q] as number);
      } else {
        for (let q = 0; q < taps; q++) acc += (k[q] as number) * (img[row + Math.min(nx - 1, Math.max(0, x + q - rad))] as number);
      }
      tmp[row + x] = acc;
    }
  }
  for (let y = 0; y < ny; y++) {
    const inner = y >= rad && y < ny - rad;
    for (let x = 0; x < nx; x++) {
      let acc = 0;
      if (inner) {
        let at = x + nx * (y - rad);
        for (let q = 0; q < taps; q++, at += nx) acc += (k[q] as number) * (tmp[at] as number);
      } else {
        for (let q = 0; q < taps; q++) acc += (k[q] as number) * (tmp[x + nx * Math.min(ny - 1, Math.max(0, y + q - rad))] as number);
      }
      img[x + nx * y] = acc;
    }
  }
}

const C = CLASS_CODES;

/**
 * Pixel noise from a fixed table of standard normals indexed by a per-section xorshift stream: tens of
 * millions of draws per stack at a fraction of Box-Muller's cost, still seeded and deterministic.
 */
const NORMAL_TABLE = (() => {
  const rng = createRng("em-normal-table");
  const t = new Float32Array(1 << 16);
  for (let i = 0; i < t.length; i++) t[i] = rng.normal();
  return t;
})();

function pixelNoise(rng: Rng): () => number {
  let state = rng.int(1, 0xfffffffe) >>> 0;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return NORMAL_TABLE[(state >>> 0) & 0xffff] as number;
  };
}

function renderSection(labels: Uint8Array, k: number, nx: number, ny: number, nz: number, style: EmStyle, rng: Rng): Float32Array {
  const plane = nx * ny;
  const lab = labels.subarray(k * plane, (k + 1) * plane);
  const below = k > 0 ? labels.subarray((k - 1) * plane, k * plane) : lab;
  const above = k < nz - 1 ? labels.subarray((k + 1) * plane, (k + 2) * plane) : lab;
  const dist = boundaryDistance(lab, nx, ny, 64);
  const low = smoothNoise(nx, ny, 48, rng);
  const mid = smoothNoise(nx, ny, 9, rng);
  const angle = smoothNoise(nx, ny, 40, rng);
  const img = new Float32Array(plane);
  const s = style;
  const phase = rng.uniform(0, 2 * Math.PI);
  const noise = pixelNoise(rng);
  const cristaeAngle = rng.uniform(0, Math.PI);
  const ca = Math.cos(cristaeAngle);
  const sa = Math.sin(cristaeAngle);
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = x + nx * y;
      const l = lab[i];
      const d = dist[i] as number;
      const m = mid[i] as number;
      let v: number;
      if (l === C.background) {
        v = s.cytoplasm + s.cytoplasmTexture * (low[i] as number) + 0.5 * s.cytoplasmTexture * m;
        if (m > 0.55) v -= s.glycogenDarkening * (m - 0.55) * 2.2;
        if (d <= 1) v = v * 0.6 + s.membrane * 0.4; // outer leaflet of the neighbour's membrane
      } else if (l === C.er) {
        v = s.erLumen + 6 * m;
      } else if (l === C.mito) {
        v = s.mitoMatrix + 6 * m;
        if (d > 3.5) {
          // Wavy lamellar cristae: a per-section direction, warped by smooth noise (a varying angle would swirl).
          const u = x * ca + y * sa + 4 * (angle[i] as number) * s.cristaePeriodPx;
          const stripe = Math.cos((2 * Math.PI * u) / s.cristaePeriodPx + phase);
          if (stripe > 0.6) v += s.cristaeContrast;
          else if (stripe > 0.3) v -= 0.6 * s.cristaeContrast;
        } else if (d > 2.2 && d <= 3.5) v = s.membrane + 10; // inner membrane
      } else if (l === C.ld) {
        v = s.ld + 4 * (low[i] as number);
      } else if (l === C.lyso) {
        v = s.lyso + s.lysoGranularity * (0.6 * m + 0.3 * noise());
      } else if (l === C.perox) {
        const core = Math.min(1, Math.max(0, (d - s.peroxCoreDepthPx) / 4));
        v = s.perox * (1 - core) + s.peroxCore * core + 5 * m;
      } else {
        // Condensed chromatin: dark blobs where the mid-scale noise is low.
        v = s.nucleus - 1.5 * s.chromatinContrast * Math.max(0, -m - 0.2) + 4 * (low[i] as number);
        if (d > 4 && d <= 4 + s.heterochromatinRimPx) v -= s.chromatinContrast * 0.8;
        else if (d > 2.2 && d <= 3.5) v = s.membrane + 15; // inner nuclear membrane
        else if (d > 1.2 && d <= 2.2) v = s.nucleus + 10; // perinuclear space
      }
      if (l !== C.background) {
        const w = s.membraneWidthPx;
        if (d <= w) v = l === C.ld ? s.ldRim : s.membrane;
        else if (d < w + 1) v = v * (d - w) + (l === C.ld ? s.ldRim : s.membrane) * (1 - (d - w));
      }
      // A boundary crossing obliquely within the section thickness shows as a grey smear, mostly on the object side.
      if (below[i] !== l || above[i] !== l) {
        const g = l === C.background ? 0.3 * s.grazing : s.grazing;
        v = v * (1 - g) + s.membrane * g;
      }
      img[i] = v;
    }
  }
  // Ribosomes and glycogen granules: small dark dots in the cytoplasm, denser along the ER.
  const dots = Math.round((s.ribosomesPerMpx * plane) / 1e6);
  for (let n = 0; n < dots; n++) {
    const cx = rng.int(0, nx - 1);
    const cy = rng.int(0, ny - 1);
    const ci = cx + nx * cy;
    if (lab[ci] !== C.background) continue;
    if ((dist[ci] as number) > 6 && rng.bool(0.3)) continue;
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        const px = cx + dx;
        const py = cy + dy;
        if (px < 0 || py < 0 || px >= nx || py >= ny || dx * dx + dy * dy > 4) continue;
        const j = px + nx * py;
        if (lab[j] === C.background) img[j] = (img[j] as number) - s.ribosomeDarkening * (1 - (dx * dx + dy * dy) / 6);
      }
    }
  }
  gaussianBlur(img, nx, ny, s.blurSigmaPx);
  const gain = 1 + rng.uniform(-s.sectionContrastJitter, s.sectionContrastJitter);
  const offset = rng.uniform(-s.sectionBrightnessJitter, s.sectionBrightnessJitter);
  const ga = rng.uniform(0, 2 * Math.PI);
  const gx = (s.illuminationGradient * Math.cos(ga)) / nx;
  const gy = (s.illuminationGradient * Math.sin(ga)) / ny;
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const i = x + nx * y;
      const signal = ((img[i] as number) - 128) * gain + 128 + offset + gx * (x - nx / 2) + gy * (y - ny / 2);
      // Shot-like noise: a little stronger in bright regions.
      img[i] = signal + noise() * s.noiseSigma * (0.75 + 0.5 * Math.max(0, signal) / 255);
    }
  }
  return img;
}

/** Renders a uint8 EM-like stack from uint8 class codes; deterministic per seed (and style). */
export function renderEM(labels: Volume<Uint8Array>, seed: number, style: EmStyle = DEFAULT_EM_STYLE, onProgress?: (done: number, total: number, what: string) => void): Volume<Uint8Array> {
  const [nx, ny, nz] = labels.shape;
  const out = new Uint8Array(nx * ny * nz);
  const base = createRng(seed).fork("render");
  for (let k = 0; k < nz; k++) {
    const img = renderSection(labels.data, k, nx, ny, nz, style, base.fork(`section-${k}`));
    const at = k * nx * ny;
    for (let i = 0; i < img.length; i++) {
      const v = Math.round(img[i] as number);
      out[at + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    onProgress?.(k + 1, nz, "render");
  }
  return { data: out, shape: [nx, ny, nz] };
}
