/**
 * The transform itself (see edt.ts for the algorithm and the two metrics): the x pass on the binary mask, the
 * parabola-envelope y and z passes, optional feature carry and in-plane hook, and pass restrictions.
 */
import type { Vec3 } from "../../precomputed/array.js";

export type Shape3 = readonly [number, number, number];
export type EdtArray = Float32Array | Float64Array;
/** "centre": centre-to-centre; "face": gap between voxel boundaries (DESIGN.md, min_dist_er_nm). */
export type DistanceMetric = "centre" | "face";

export interface EdtOptions {
  /**
   * Distances above this (nm) come back as Infinity. Cheaper, because capped entries drop out of the later
   * passes; distances at or below the cap are unchanged (the partial sums only grow from pass to pass).
   */
  maxDistanceNm?: number;
  /**
   * "float64" (default) is exact to rounding. "float32" halves memory and bandwidth; it stays exact while
   * squared distances are integers below 2^24 nm^2 (integer spacings, distances under ~4 um).
   */
  output?: "float32" | "float64";
  /**
   * Called once with the field after the x and y passes, when it holds the distances within each section
   * (what a per-section measure needs); the z pass then overwrites it in place, so copy what is kept.
   */
  onInPlane?: (field: EdtArray) => void;
}

export interface FeatureEdtOptions extends EdtOptions {
  metric?: DistanceMetric;
}

/** Marks "no feature voxel" in a carried feature transform. */
export const NO_VOXEL = 0xffffffff;

export interface Hooks {
  /** After the x and y passes: the field holds distances within each section only. */
  afterInPlane: (field: EdtArray, carry: Uint32Array) => void;
}

/**
 * Restrictions of the later passes, for callers that read only part of the result: half-open index ranges
 * (lines that reach a block's interior), and optionally an x-y footprint (nx * ny, nonzero = needed): z lines
 * outside it are left in-plane, and y lines in columns x without any footprint pixel are skipped.
 */
export interface PassRanges {
  yPassX?: readonly [number, number];
  zPassX?: readonly [number, number];
  zPassY?: readonly [number, number];
  footprint?: Uint8Array;
}

export function validate(mask: Uint8Array, shape: Shape3, spacingNm: Vec3): void {
  const [nx, ny, nz] = shape;
  if (![nx, ny, nz].every((n) => Number.isInteger(n) && n > 0)) throw new RangeError(`shape must be three positive integers, got [${shape}]`);
  if (mask.length !== nx * ny * nz) throw new RangeError(`mask has ${mask.length} voxels, shape [${shape}] needs ${nx * ny * nz}`);
  if (mask.length >= NO_VOXEL) throw new RangeError(`volume of ${mask.length} voxels is too large for one transform; use blocks`);
  if (!spacingNm.every((s) => Number.isFinite(s) && s > 0)) throw new RangeError(`spacing must be three positive numbers (nm), got [${spacingNm}]`);
}

export function runTransform(
  mask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  featureNonZero: boolean,
  face: boolean,
  opts: EdtOptions,
  hooks: Hooks,
  ranges?: PassRanges,
): { field: EdtArray; carry: Uint32Array };
export function runTransform(
  mask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  featureNonZero: boolean,
  face: boolean,
  opts: EdtOptions,
  hooks: null,
  ranges?: PassRanges,
): { field: EdtArray; carry: null };
/** The three passes; with hooks, also the feature transform (carry) and a look at the in-plane field. */
export function runTransform(
  mask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  featureNonZero: boolean,
  face: boolean,
  opts: EdtOptions,
  hooks: Hooks | null,
  ranges?: PassRanges,
): { field: EdtArray; carry: Uint32Array | null } {
  validate(mask, shape, spacingNm);
  const [nx, ny, nz] = shape;
  const cap = opts.maxDistanceNm ?? Infinity;
  if (!(cap >= 0)) throw new RangeError(`maxDistanceNm must be >= 0, got ${cap}`);
  const cap2 = cap * cap;
  const n = nx * ny * nz;
  const field: EdtArray = opts.output === "float32" ? new Float32Array(n) : new Float64Array(n);
  const carry = hooks ? new Uint32Array(n) : null;
  const s2: Vec3 = [spacingNm[0] ** 2, spacingNm[1] ** 2, spacingNm[2] ** 2];

  passX(mask, field, carry, nx, ny * nz, s2[0], featureNonZero, face, cap2);
  const line = new LineScratch(Math.max(ny, nz));
  if (ny > 1) {
    const [x0, x1] = ranges?.yPassX ?? [0, nx];
    const columns = footprintColumns(ranges?.footprint, nx, ny);
    for (let z = 0; z < nz; z++) {
      for (let x = x0; x < x1; x++) if (columns === null || columns[x] !== 0) envelopeLine(field, carry, z * nx * ny + x, nx, ny, s2[1], face, cap2, line);
    }
  }
  if (hooks && carry) hooks.afterInPlane(field, carry);
  opts.onInPlane?.(field);
  if (nz > 1) {
    const [x0, x1] = ranges?.zPassX ?? [0, nx];
    const [y0, y1] = ranges?.zPassY ?? [0, ny];
    const footprint = ranges?.footprint;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) if (footprint === undefined || footprint[y * nx + x] !== 0) envelopeLine(field, carry, y * nx + x, nx * ny, nz, s2[2], face, cap2, line);
    }
  }
  return { field, carry };
}

/** Per x, whether the footprint has any pixel in that column; null when there is no footprint. */
function footprintColumns(footprint: Uint8Array | undefined, nx: number, ny: number): Uint8Array | null {
  if (footprint === undefined) return null;
  if (footprint.length !== nx * ny) throw new RangeError(`footprint has ${footprint.length} pixels, needs ${nx * ny}`);
  const columns = new Uint8Array(nx);
  for (let i = 0; i < nx * ny; i++) if (footprint[i] !== 0) columns[i % nx] = 1;
  return columns;
}

/**
 * x pass on the binary mask: along a row the nearest target is simply the nearer of the previous and next
 * one, found by a forward and a backward scan; no envelope needed.
 */
function passX(
  mask: Uint8Array,
  field: EdtArray,
  carry: Uint32Array | null,
  nx: number,
  rows: number,
  s2: number,
  featureNonZero: boolean,
  face: boolean,
  cap2: number,
): void {
  const prev = new Int32Array(nx);
  const FAR = 0x3fffffff;
  for (let r = 0, base = 0; r < rows; r++, base += nx) {
    let last = -FAR;
    for (let x = 0; x < nx; x++) {
      if ((mask[base + x] !== 0) === featureNonZero) last = x;
      prev[x] = last;
    }
    if (last < 0) {
      field.fill(Infinity, base, base + nx);
      if (carry) carry.fill(NO_VOXEL, base, base + nx);
      continue;
    }
    let next = FAR;
    for (let x = nx - 1; x >= 0; x--) {
      if ((mask[base + x] !== 0) === featureNonZero) next = x;
      const p = prev[x];
      let d = x - p;
      let src = p;
      if (next - x < d) {
        d = next - x;
        src = next;
      }
      if (face && d > 0) d--;
      const v = s2 * d * d;
      field[base + x] = v > cap2 ? Infinity : v;
      if (carry) carry[base + x] = base + src;
    }
  }
}

/** The lower envelope of one line, allocated once per transform and reused by every line. */
class LineScratch {
  /** Parabola positions, their heights g, g + s2 q^2, left boundaries, and carried feature voxels. */
  readonly v: Int32Array;
  readonly gv: Float64Array;
  readonly h: Float64Array;
  readonly zb: Float64Array;
  readonly srcv: Uint32Array;
  constructor(n: number) {
    this.v = new Int32Array(n);
    this.gv = new Float64Array(n);
    this.h = new Float64Array(n);
    this.zb = new Float64Array(n + 1);
    this.srcv = new Uint32Array(n);
  }
}

/**
 * One line of a y or z pass, in place: lower envelope of the parabolas s2 (p - q)^2 + g[q], where g is the
 * line itself (centre) or its 3-wide running minimum (face). The line is read straight from the volume
 * (a sliding window supplies the running minimum) and the envelope keeps its own copy of g, so no gather
 * buffer is needed and the write-back may overwrite the line. Measured faster than gathering into
 * scratch, and than transposing tiles of lines.
 */
function envelopeLine(
  field: EdtArray,
  carry: Uint32Array | null,
  base: number,
  stride: number,
  n: number,
  s2: number,
  face: boolean,
  cap2: number,
  sc: LineScratch,
): void {
  const v = sc.v;
  const gv = sc.gv;
  const h = sc.h;
  const zb = sc.zb;
  const srcv = sc.srcv;
  const twoS2 = 2 * s2;
  let top = -1;
  let zeros = 0;
  let prv = Infinity;
  let cur = field[base];
  let nxt = n > 1 ? field[base + stride] : Infinity;
  for (let q = 0, ahead = base + 2 * stride; q < n; q++, ahead += stride) {
    let gq = cur;
    let from = q;
    if (cur === 0) zeros++;
    // Inside a run of zeros (centre metric) a zero is never the nearest for any other point, a neighbour
    // being nearer, and its own result stays 0 (the write-back skips zeros): it needs no parabola. In
    // background transforms most of a line is such a run.
    const interiorZero = !face && cur === 0 && prv === 0 && nxt === 0;
    if (face) {
      if (prv < gq) {
        gq = prv;
        from = q - 1;
      }
      if (nxt < gq) {
        gq = nxt;
        from = q + 1;
      }
    }
    prv = cur;
    cur = nxt;
    nxt = q + 2 < n ? field[ahead] : Infinity;
    if (gq === Infinity || interiorZero) continue;
    const hq = gq + s2 * q * q;
    if (top >= 0) {
      // Pop parabolas hidden by q: their intersection with q lies left of their own left boundary. The test
      // multiplies instead of dividing (q > v[top]); zb[0] = -Infinity always stops it at the first parabola.
      while (hq - h[top] <= zb[top] * (twoS2 * (q - v[top]))) top--;
      const b = (hq - h[top]) / (twoS2 * (q - v[top]));
      top++;
      zb[top] = b;
    } else {
      top = 0;
      zb[0] = -Infinity;
    }
    v[top] = q;
    h[top] = hq;
    gv[top] = gq;
    // Construction reads only; the write-back comes after, so the carry still holds the previous pass here.
    if (carry) srcv[top] = carry[base + from * stride];
  }
  // Nothing within reach (common with a cap), or every voxel on a target (common in background): unchanged.
  if (top < 0 || zeros === n) return;
  zb[top + 1] = Infinity;
  let j = 0;
  for (let p = 0, i = base; p < n; p++, i += stride) {
    // A zero stays zero, and keeps its carried voxel: with either metric its own parabola wins at distance 0.
    if (field[i] === 0) continue;
    while (zb[j + 1] < p) j++;
    const d = p - v[j];
    const val = s2 * d * d + gv[j];
    field[i] = val > cap2 ? Infinity : val;
    if (carry) carry[i] = srcv[j];
  }
}
