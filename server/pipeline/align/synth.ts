/**
 * Seeded synthetic section warps for tests and align-eval: an affine (rotation, scale, shear,
 * translation about the crop centre) plus a smooth elastic field (a few long-wavelength sinusoids).
 */
import type { Rng } from "../random.js";
import { compose, type Affine } from "./affine.js";
import type { Section } from "./image.js";
import { sampleRow } from "./map.js";

export interface WarpLimits {
  maxRotationDeg: number;
  scale: [number, number];
  maxShear: number;
  /** Fraction of the crop's size. */
  maxTranslation: number;
  /** Peak elastic displacement, px. */
  elasticPx: number;
  /** Shortest elastic wavelength as a fraction of the crop size. */
  minWavelength: number;
}

export const DEFAULT_LIMITS: WarpLimits = { maxRotationDeg: 10, scale: [0.95, 1.05], maxShear: 0.03, maxTranslation: 0.15, elasticPx: 3, minWavelength: 1 };

interface Mode {
  kx: number;
  ky: number;
  phase: number;
  ax: number;
  ay: number;
}

export interface Warp {
  /** Crop coordinates (after the elastic shift) -> source pixel coordinates. */
  affine: Affine;
  modes: Mode[];
}

/** An affine about the crop centre placed at (cx, cy) of the source. */
export function randomWarp(rng: Rng, size: [number, number], centre: [number, number], limits: WarpLimits = DEFAULT_LIMITS): Warp {
  const [w, h] = size;
  const th = (rng.uniform(-1, 1) * limits.maxRotationDeg * Math.PI) / 180;
  const s = rng.uniform(limits.scale[0], limits.scale[1]);
  const sh = rng.uniform(-limits.maxShear, limits.maxShear);
  const tx = rng.uniform(-1, 1) * limits.maxTranslation * w;
  const ty = rng.uniform(-1, 1) * limits.maxTranslation * h;
  const c = Math.cos(th) * s;
  const si = Math.sin(th) * s;
  const lin: Affine = compose([c, -si, 0, si, c, 0], [1, sh, 0, 0, 1, 0]);
  const toCentre: Affine = [1, 0, -(w - 1) / 2, 0, 1, -(h - 1) / 2];
  const affine = compose([1, 0, centre[0] + tx, 0, 1, centre[1] + ty], compose(lin, toCentre));
  const modes: Mode[] = [];
  const count = 3;
  for (let m = 0; m < count; m++) {
    const dir = rng.uniform(0, 2 * Math.PI);
    const wavelength = rng.uniform(limits.minWavelength, 2 * limits.minWavelength) * Math.max(w, h);
    const amp = limits.elasticPx / count;
    const ad = rng.uniform(0, 2 * Math.PI);
    modes.push({ kx: (2 * Math.PI * Math.cos(dir)) / wavelength, ky: (2 * Math.PI * Math.sin(dir)) / wavelength, phase: rng.uniform(0, 2 * Math.PI), ax: amp * Math.cos(ad), ay: amp * Math.sin(ad) });
  }
  return { affine, modes };
}

export function elasticAt(warp: Warp, x: number, y: number): [number, number] {
  let ex = 0;
  let ey = 0;
  for (const m of warp.modes) {
    const s = Math.sin(m.kx * x + m.ky * y + m.phase);
    ex += m.ax * s;
    ey += m.ay * s;
  }
  return [ex, ey];
}

/** Source coordinates of every pixel of one crop row under the warp. */
export function warpRow(warp: Warp, y: number, width: number, xs: Float64Array, ys: Float64Array): void {
  const [a, b, c, d, e, f] = warp.affine;
  for (let x = 0; x < width; x++) {
    const [ex, ey] = elasticAt(warp, x, y);
    const qx = x + ex;
    const qy = y + ey;
    xs[x] = a * qx + b * qy + c;
    ys[x] = d * qx + e * qy + f;
  }
}

/** Renders a width x height crop of `src` through `warp`; returns the crop and how many pixels fell outside. */
export function warpSection(src: Section, w: number, h: number, warp: Warp, width: number, height: number): { data: Uint8Array | Uint16Array; outside: number } {
  const out = src instanceof Uint16Array ? new Uint16Array(width * height) : new Uint8Array(width * height);
  const xs = new Float64Array(width);
  const ys = new Float64Array(width);
  let outside = 0;
  for (let y = 0; y < height; y++) {
    warpRow(warp, y, width, xs, ys);
    outside += sampleRow(src, w, h, xs, ys, width, out, y * width, 0);
  }
  return { data: out, outside };
}

/** The identity warp of a crop at offset (x0, y0): what the unwarped evaluation stack is. */
export function cropWarp(x0: number, y0: number): Warp {
  return { affine: [1, 0, x0, 0, 1, y0], modes: [] };
}
