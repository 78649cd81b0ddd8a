/**
 * Exact anisotropic Euclidean distance transforms and the ER-distance kernels built on them.
 *
 * Algorithm: Felzenszwalb & Huttenlocher (2012), "Distance transforms of sampled functions": a squared
 * distance sum_i (s_i d_i)^2 is separable, so three 1D passes (x, then y, then z) each take the lower
 * envelope of parabolas over one line. Linear time, exact up to float rounding, any spacing.
 *
 * Two metrics:
 * - "centre": centre-to-centre distance between voxels (what scipy.ndimage.distance_transform_edt gives).
 * - "face": DESIGN.md's face-to-face gap between voxel boundaries. For voxels (d_x, d_y, d_z) steps apart the gap
 *   is sqrt(sum_i (max(0, |d_i| - 1) s_i)^2), so touching by face, edge or corner is 0 and one empty voxel
 *   in x is s_x. Since max(0, |d| - 1) = min over e in {-1, 0, 1} of |d - e|, the gap to a feature set equals
 *   the centre distance to that set dilated by the 3x3x3 cube; dilation is separable too, so each 1D pass
 *   first takes a 3-wide running minimum along its axis, then the parabola envelope. The minimising
 *   dilated voxel always lies between the feature voxel and the query, so clipping the dilation at the
 *   volume edge loses nothing: the result is exact, not an approximation.
 *
 * Optionally each pass carries the index of the feature voxel that attains the minimum (a feature
 * transform); with the face metric the carried voxel is a real feature voxel, not a dilated one.
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
}

export interface FeatureEdtOptions extends EdtOptions {
  metric?: DistanceMetric;
}

/** Marks "no feature voxel" in a carried feature transform. */
export const NO_VOXEL = 0xffffffff;

// ---------------------------------------------------------------------------------------------------------
// Public transforms

/**
 * Squared distance (nm^2) from every voxel to the nearest voxel where mask == 0, 0 on those voxels, like
 * scipy.ndimage.distance_transform_edt(mask, sampling=(sz, sy, sx)) ** 2. Infinity where no zero exists.
 */
export function edtSquared(mask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts: EdtOptions & { output: "float32" }): Float32Array;
export function edtSquared(mask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts?: EdtOptions & { output?: "float64" }): Float64Array;
export function edtSquared(mask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts: EdtOptions = {}): EdtArray {
  return runTransform(mask, shape, spacingNm, false, false, opts, null).field;
}

/**
 * Squared distance (nm^2) from every voxel to the nearest feature voxel (featureMask != 0); 0 on the feature.
 * metric "centre" (default) is centre-to-centre; "face" is the face-to-face gap squared (touching = 0).
 */
export function edtToFeature(
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  opts: FeatureEdtOptions & { output: "float32" },
): Float32Array;
export function edtToFeature(
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  opts?: FeatureEdtOptions & { output?: "float64" },
): Float64Array;
export function edtToFeature(featureMask: Uint8Array, shape: Shape3, spacingNm: Vec3, opts: FeatureEdtOptions = {}): EdtArray {
  return runTransform(featureMask, shape, spacingNm, true, opts.metric === "face", opts, null).field;
}

// ---------------------------------------------------------------------------------------------------------
// Blocks with halos

export interface BlockRequest {
  volumeShape: Shape3;
  /** The block's first voxel and extent in the volume; the result covers exactly this box. */
  blockOrigin: Vec3;
  blockShape: Vec3;
  /** Extra voxels read on each side (per axis, or one number for all); clipped at the volume edge. */
  haloVoxels: number | Vec3;
}

export interface HaloBox {
  origin: Vec3;
  shape: Vec3;
  /** Where the block starts inside the halo box. */
  interiorOffset: Vec3;
}

/** The box a block task must read: the block plus its halo, clipped to the volume. */
export function haloBox(req: BlockRequest): HaloBox {
  const halo = haloPerAxis(req.haloVoxels);
  const origin: Vec3 = [0, 0, 0];
  const shape: Vec3 = [0, 0, 0];
  const interiorOffset: Vec3 = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const o = req.blockOrigin[a];
    const n = req.blockShape[a];
    const N = req.volumeShape[a];
    if (!Number.isInteger(o) || !Number.isInteger(n) || o < 0 || n < 1 || o + n > N) {
      throw new RangeError(`block [${req.blockOrigin}] + [${req.blockShape}] does not fit volume [${req.volumeShape}]`);
    }
    const lo = Math.max(0, o - halo[a]);
    const hi = Math.min(N, o + n + halo[a]);
    origin[a] = lo;
    shape[a] = hi - lo;
    interiorOffset[a] = o - lo;
  }
  return { origin, shape, interiorOffset };
}

/**
 * Distances below which a block's result is guaranteed to equal the whole-volume result. If the true nearest
 * target lies outside the halo box along axis a (on a side not clipped by the volume edge), it is at least
 * h_a + 1 steps away along a: centre distance >= (h_a + 1) s_a, face gap >= h_a s_a. So every result strictly
 * below min over such sides is exact; in particular every distance <= halo width in nm along the thinnest
 * axis (centre metric). Results above it are upper bounds: the block only ever sees a subset of targets.
 */
export function exactBelowNm(req: BlockRequest, spacingNm: Vec3, metric: DistanceMetric): number {
  const box = haloBox(req);
  let limit = Infinity;
  for (let a = 0; a < 3; a++) {
    const loClipped = box.origin[a] === 0;
    const hiClipped = box.origin[a] + box.shape[a] === req.volumeShape[a];
    const sides = [loClipped ? Infinity : box.interiorOffset[a], hiClipped ? Infinity : box.shape[a] - box.interiorOffset[a] - req.blockShape[a]];
    for (const h of sides) {
      if (h === Infinity) continue;
      limit = Math.min(limit, (metric === "face" ? h : h + 1) * spacingNm[a]);
    }
  }
  return limit;
}

export interface BlockEdtOptions extends EdtOptions {
  /** "background": distance to mask == 0 (edtSquared); "feature": distance to mask != 0 (edtToFeature). */
  target: "background" | "feature";
  metric?: DistanceMetric;
}

export interface BlockEdt {
  /** Squared distances (nm^2) for the block only, shape blockShape. */
  data: EdtArray;
  shape: Vec3;
  /** Results strictly below this distance (nm) are exact; see exactBelowNm. */
  exactBelowNm: number;
}

/**
 * EDT of one block from its halo box (haloMask holds haloBox(req), x fastest). Only lines that reach the
 * block are transformed in the y and z passes, so the halo costs one x pass plus a thin y pass.
 */
export function edtBlock(haloMask: Uint8Array, req: BlockRequest, spacingNm: Vec3, opts: BlockEdtOptions): BlockEdt {
  const box = haloBox(req);
  const metric = opts.metric ?? "centre";
  const face = metric === "face";
  if (face && opts.target === "background") throw new RangeError("the face metric is defined for target 'feature' only");
  const ranges: PassRanges = {
    yPassX: [box.interiorOffset[0], box.interiorOffset[0] + req.blockShape[0]],
    zPassX: [box.interiorOffset[0], box.interiorOffset[0] + req.blockShape[0]],
    zPassY: [box.interiorOffset[1], box.interiorOffset[1] + req.blockShape[1]],
  };
  const { field } = runTransform(haloMask, box.shape, spacingNm, opts.target === "feature", face, opts, null, ranges);
  const [bx, by, bz] = req.blockShape;
  const [hx, hy] = box.shape;
  const [ox, oy, oz] = box.interiorOffset;
  const data = field instanceof Float32Array ? new Float32Array(bx * by * bz) : new Float64Array(bx * by * bz);
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const src = ((z + oz) * hy + (y + oy)) * hx + ox;
      data.set(field.subarray(src, src + bx), (z * by + y) * bx);
    }
  }
  return { data, shape: [bx, by, bz], exactBelowNm: exactBelowNm(req, spacingNm, metric) };
}

/** Copies box (origin, shape) out of a volume, x fastest; for reading halo boxes from an in-memory volume. */
export function cropVolume<T extends Uint8Array | Uint32Array>(data: T, volumeShape: Shape3, origin: Vec3, shape: Vec3): T {
  const [vx, vy] = volumeShape;
  const [cx, cy, cz] = shape;
  const out = (data instanceof Uint8Array ? new Uint8Array(cx * cy * cz) : new Uint32Array(cx * cy * cz)) as T;
  for (let z = 0; z < cz; z++) {
    for (let y = 0; y < cy; y++) {
      const src = ((z + origin[2]) * vy + (y + origin[1])) * vx + origin[0];
      out.set(data.subarray(src, src + cx), (z * cy + y) * cx);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Per-instance distances to a feature (the ER)

export interface FeatureDistances {
  /** Instance ids present in labels, ascending; the other arrays are indexed like ids. */
  ids: Uint32Array;
  /** Minimum face-to-face gap (nm) to the feature; Infinity when there is none (within maxDistanceNm). */
  minGapNm: Float64Array;
  /** The same minimum over voxel pairs in one section (dz = 0) only: what a single section shows. */
  minGapInPlaneNm: Float64Array;
  /** 1 when the minimum is attained by a pair in one section ("in-plane"), 0 when only across sections. */
  inPlane: Uint8Array;
  /** Linear indices of one voxel pair attaining minGapNm (in one section when inPlane); -1 when Infinity. */
  organelleVoxel: Float64Array;
  featureVoxel: Float64Array;
}

export interface MinDistanceOptions {
  /** Instances farther than this (nm) report Infinity; speeds up the transform. */
  maxDistanceNm?: number;
}

/**
 * Per instance (labels != 0; the feature itself must not be labelled) the minimum face-to-face gap to the
 * feature, where it occurs, and whether it is resolved in-plane. The minimum over an instance is always
 * attained on a boundary voxel (stepping from any voxel towards its nearest feature voxel never increases the
 * gap until the step would leave the instance), so reported voxels are boundary voxels.
 */
export function minDistanceToFeature(
  labels: Uint32Array,
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  opts: MinDistanceOptions = {},
): FeatureDistances {
  if (labels.length !== featureMask.length) throw new RangeError(`labels have ${labels.length} voxels, feature mask ${featureMask.length}`);
  const slots = instanceSlots(labels);
  const k = slots.ids.length;
  const bestIn = new Float64Array(k).fill(Infinity);
  const best = new Float64Array(k).fill(Infinity);
  const inVox = new Float64Array(k).fill(-1);
  const inFeat = new Float64Array(k).fill(-1);
  const vox = new Float64Array(k).fill(-1);
  const feat = new Float64Array(k).fill(-1);
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;

  const reduce = (field: EdtArray, carry: Uint32Array, bestV: Float64Array, bestVox: Float64Array, bestFeat: Float64Array): void => {
    let lastLab = 0;
    let lastSlot = -1;
    for (let z = 0, i = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++, i++) {
          const lab = labels[i];
          if (lab === 0) continue;
          if (lab !== lastLab) {
            lastLab = lab;
            lastSlot = slots.slotOf(lab);
          }
          const v = field[i];
          // Strict < in raster order: ties resolve to the first voxel, so results are deterministic.
          if (v < bestV[lastSlot] && isBoundary(labels, i, lab, x, y, z, nx, ny, nz, sxy)) {
            bestV[lastSlot] = v;
            bestVox[lastSlot] = i;
            bestFeat[lastSlot] = carry[i];
          }
        }
      }
    }
  };

  const { field, carry } = runTransform(featureMask, shape, spacingNm, true, true, { maxDistanceNm: opts.maxDistanceNm }, {
    afterInPlane: (f, c) => reduce(f, c, bestIn, inVox, inFeat),
  });
  reduce(field, carry, best, vox, feat);

  const inPlane = new Uint8Array(k);
  for (let s = 0; s < k; s++) {
    if (best[s] === Infinity) continue;
    if (attainedInPlane(bestIn[s], best[s])) {
      inPlane[s] = 1;
      vox[s] = inVox[s];
      feat[s] = inFeat[s];
    }
  }
  return {
    ids: slots.ids,
    minGapNm: best.map(Math.sqrt),
    minGapInPlaneNm: bestIn.map(Math.sqrt),
    inPlane,
    organelleVoxel: vox,
    featureVoxel: feat,
  };
}

export interface ContactSurface {
  thresholdNm: number;
  /** Instance ids present in labels, ascending (including those without contacts). */
  ids: Uint32Array;
  /** Contact voxels of ids[k] are entries offsets[k] .. offsets[k + 1] - 1 of the arrays below. */
  offsets: Uint32Array;
  /** Boundary voxels (linear index, ascending per instance) within thresholdNm of the feature. */
  voxel: Uint32Array;
  /** Their face-to-face gap (nm). */
  gapNm: Float32Array;
  /** 1 when the gap is attained by a feature voxel in the same section. */
  inPlane: Uint8Array;
  /** A feature voxel attaining the gap (in the same section when inPlane). */
  featureVoxel: Uint32Array;
}

/**
 * Per instance, its boundary voxels (a face neighbour inside the volume carries another label; the volume's
 * own edge is a cut, not a surface) whose face-to-face gap to the feature is <= thresholdNm.
 */
export function contactSurfaceVoxels(
  labels: Uint32Array,
  featureMask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  thresholdNm: number,
): ContactSurface {
  if (labels.length !== featureMask.length) throw new RangeError(`labels have ${labels.length} voxels, feature mask ${featureMask.length}`);
  if (!(thresholdNm >= 0)) throw new RangeError(`threshold must be >= 0 nm, got ${thresholdNm}`);
  const slots = instanceSlots(labels);
  const k = slots.ids.length;
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;

  // Boundary voxels grouped by instance: count, prefix-sum, fill.
  const counts = new Uint32Array(k + 1);
  const forEachBoundary = (visit: (i: number, slot: number) => void): void => {
    let lastLab = 0;
    let lastSlot = -1;
    for (let z = 0, i = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++, i++) {
          const lab = labels[i];
          if (lab === 0 || !isBoundary(labels, i, lab, x, y, z, nx, ny, nz, sxy)) continue;
          if (lab !== lastLab) {
            lastLab = lab;
            lastSlot = slots.slotOf(lab);
          }
          visit(i, lastSlot);
        }
      }
    }
  };
  forEachBoundary((_i, s) => counts[s + 1]++);
  for (let s = 0; s < k; s++) counts[s + 1] += counts[s];
  const boundary = new Uint32Array(counts[k]);
  const fill = counts.slice(0, k);
  forEachBoundary((i, s) => (boundary[fill[s]++] = i));

  const nb = boundary.length;
  const planeGap = new Float64Array(nb);
  const planeFeat = new Uint32Array(nb);
  const { field: gap, carry: carried } = runTransform(featureMask, shape, spacingNm, true, true, { maxDistanceNm: thresholdNm }, {
    afterInPlane: (field, carry) => {
      for (let j = 0; j < nb; j++) {
        planeGap[j] = field[boundary[j]];
        planeFeat[j] = carry[boundary[j]];
      }
    },
  });

  const limit2 = thresholdNm * thresholdNm;
  const offsets = new Uint32Array(k + 1);
  let kept = 0;
  for (let j = 0; j < nb; j++) if (gap[boundary[j]] <= limit2) kept++;
  const voxel = new Uint32Array(kept);
  const gapNm = new Float32Array(kept);
  const inPlane = new Uint8Array(kept);
  const featureVoxel = new Uint32Array(kept);
  let w = 0;
  for (let s = 0; s < k; s++) {
    offsets[s] = w;
    for (let j = counts[s]; j < counts[s + 1]; j++) {
      const i = boundary[j];
      const g2 = gap[i];
      if (!(g2 <= limit2)) continue;
      const flat = attainedInPlane(planeGap[j], g2);
      voxel[w] = i;
      gapNm[w] = Math.sqrt(g2);
      inPlane[w] = flat ? 1 : 0;
      featureVoxel[w] = flat ? planeFeat[j] : carried[i];
      w++;
    }
  }
  offsets[k] = w;
  return { thresholdNm, ids: slots.ids, offsets, voxel, gapNm, inPlane, featureVoxel };
}

// ---------------------------------------------------------------------------------------------------------
// Internals

/**
 * In-plane minimum equals the 3D one. The x-y passes and the z pass's dz = 0 term add the same numbers, so
 * equality is bitwise for integer nm spacings; the relative slack covers other spacings' rounding.
 */
function attainedInPlane(inPlane2: number, all2: number): boolean {
  return inPlane2 <= all2 + all2 * 1e-12;
}

function isBoundary(labels: Uint32Array, i: number, lab: number, x: number, y: number, z: number, nx: number, ny: number, nz: number, sxy: number): boolean {
  return (
    (x > 0 && labels[i - 1] !== lab) ||
    (x < nx - 1 && labels[i + 1] !== lab) ||
    (y > 0 && labels[i - nx] !== lab) ||
    (y < ny - 1 && labels[i + nx] !== lab) ||
    (z > 0 && labels[i - sxy] !== lab) ||
    (z < nz - 1 && labels[i + sxy] !== lab)
  );
}

interface InstanceSlots {
  ids: Uint32Array;
  slotOf(label: number): number;
}

/** Dense label -> slot table when ids are compact (connectedComponents numbers 1..n), a Map otherwise. */
function instanceSlots(labels: Uint32Array): InstanceSlots {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  if (max <= Math.max(1 << 20, labels.length)) {
    const table = new Int32Array(max + 1).fill(-1);
    for (let i = 0; i < labels.length; i++) table[labels[i]] = 0;
    let k = 0;
    for (let id = 1; id <= max; id++) if (table[id] === 0) k++;
    const ids = new Uint32Array(k);
    k = 0;
    for (let id = 1; id <= max; id++) {
      if (table[id] === 0) {
        ids[k] = id;
        table[id] = k++;
      }
    }
    return { ids, slotOf: (label) => table[label] };
  }
  const seen = new Set<number>();
  let last = 0;
  for (let i = 0; i < labels.length; i++) {
    const lab = labels[i];
    if (lab !== 0 && lab !== last) seen.add(lab);
    last = lab;
  }
  const ids = Uint32Array.from(seen).sort();
  const map = new Map<number, number>();
  ids.forEach((id, s) => map.set(id, s));
  return { ids, slotOf: (label) => map.get(label) ?? -1 };
}

function haloPerAxis(h: number | Vec3): Vec3 {
  const v: Vec3 = typeof h === "number" ? [h, h, h] : [h[0], h[1], h[2]];
  if (v.some((n) => !Number.isInteger(n) || n < 0)) throw new RangeError(`halo must be non-negative integers, got ${String(h)}`);
  return v;
}

interface Hooks {
  /** After the x and y passes: the field holds distances within each section only. */
  afterInPlane: (field: EdtArray, carry: Uint32Array) => void;
}

/** Half-open index ranges restricting the later passes to lines that reach a block's interior. */
interface PassRanges {
  yPassX: readonly [number, number];
  zPassX: readonly [number, number];
  zPassY: readonly [number, number];
}

function validate(mask: Uint8Array, shape: Shape3, spacingNm: Vec3): void {
  const [nx, ny, nz] = shape;
  if (![nx, ny, nz].every((n) => Number.isInteger(n) && n > 0)) throw new RangeError(`shape must be three positive integers, got [${shape}]`);
  if (mask.length !== nx * ny * nz) throw new RangeError(`mask has ${mask.length} voxels, shape [${shape}] needs ${nx * ny * nz}`);
  if (mask.length >= NO_VOXEL) throw new RangeError(`volume of ${mask.length} voxels is too large for one transform; use blocks`);
  if (!spacingNm.every((s) => Number.isFinite(s) && s > 0)) throw new RangeError(`spacing must be three positive numbers (nm), got [${spacingNm}]`);
}

function runTransform(
  mask: Uint8Array,
  shape: Shape3,
  spacingNm: Vec3,
  featureNonZero: boolean,
  face: boolean,
  opts: EdtOptions,
  hooks: Hooks,
  ranges?: PassRanges,
): { field: EdtArray; carry: Uint32Array };
function runTransform(
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
function runTransform(
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
    for (let z = 0; z < nz; z++) {
      for (let x = x0; x < x1; x++) envelopeLine(field, carry, z * nx * ny + x, nx, ny, s2[1], face, cap2, line);
    }
  }
  if (hooks && carry) hooks.afterInPlane(field, carry);
  if (nz > 1) {
    const [x0, x1] = ranges?.zPassX ?? [0, nx];
    const [y0, y1] = ranges?.zPassY ?? [0, ny];
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) envelopeLine(field, carry, y * nx + x, nx * ny, nz, s2[2], face, cap2, line);
    }
  }
  return { field, carry };
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
    if (gq === Infinity) continue;
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
    while (zb[j + 1] < p) j++;
    const d = p - v[j];
    const val = s2 * d * d + gv[j];
    field[i] = val > cap2 ? Infinity : val;
    if (carry) carry[i] = srcv[j];
  }
}
