import { allocate, dataTypeOf, type Vec3, type Volume, type VoxelArray } from "./array.js";
import { PrecomputedError } from "./errors.js";

/**
 * Scale pyramid planning and the two downsampling kernels.
 *
 * Factor rule (Neuroglancer's python `downsample_scales.compute_near_isotropic_downsampling_scales`,
 * which igneous ships as `igneous/downsample_scales.py`): at every step the axis with the smallest
 * current voxel size (the first one on a tie) is halved in resolution, target = 2 x that voxel size,
 * and every other axis whose voxel is closer to the target after doubling than before
 * (|2v - t| < |v - t|) is doubled too. For 5 x 5 x 45 nm this gives
 * 5_5_45, 10_10_45, 20_20_45, 40_40_45, 80_80_90, 160_160_180, ...: factor [2,2,1] while z is
 * coarser, then [2,2,2] once the voxel is near-isotropic. (igneous's own downsample task defaults to a
 * fixed [2,2,1]; we follow the near-isotropic rule because 45 nm sections make [2,2,1] pyramids
 * degenerate into needles.)
 *
 * Stopping rule (ours; the python one stops as soon as any axis is under 128 voxels, which would give
 * no levels for a 45-section stack): add a level while some axis that the next step would halve is
 * still longer than one chunk (otherwise the level saves no chunks), no halved axis would fall below
 * `minExtent` voxels, and fewer than `maxLevels` scales exist. Sizes and offsets follow cloud-volume: size = ceil(size0 / factor),
 * voxel_offset = floor(offset0 / factor), with factor the cumulative factor from scale 0.
 */

export interface PlanScalesOptions {
  size: Vec3;
  resolution: Vec3;
  chunkSize: Vec3;
  voxelOffset?: Vec3;
  /** Most scales, full resolution included. Default 16. */
  maxLevels?: number;
  /** No axis that is downsampled may end up with fewer voxels than this. Default 1. */
  minExtent?: number;
}

export interface PlannedScale {
  key: string;
  size: Vec3;
  resolution: Vec3;
  voxel_offset: Vec3;
  /** Factor from scale 0. */
  factor: Vec3;
  /** Factor from the previous scale ([1,1,1] for scale 0). */
  step: Vec3;
}

function vecOk(v: readonly number[], integer: boolean): boolean {
  return v.length === 3 && v.every((n) => Number.isFinite(n) && n > 0 && (!integer || Number.isSafeInteger(n)));
}

/** Scale key in igneous / cloud-volume style: the resolution in nm joined with `_`. */
export function scaleKeyFor(resolution: Vec3): string {
  return resolution.map((r) => String(r)).join("_");
}

export function planScales(options: PlanScalesOptions): PlannedScale[] {
  const { size, resolution, chunkSize } = options;
  const offset = options.voxelOffset ?? [0, 0, 0];
  const maxLevels = options.maxLevels ?? 16;
  const minExtent = options.minExtent ?? 1;
  if (!vecOk(size, true)) throw new PrecomputedError("invalid_argument", `size must be 3 positive integers`);
  if (!vecOk(chunkSize, true)) throw new PrecomputedError("invalid_argument", `chunkSize must be 3 positive integers`);
  if (!vecOk(resolution, false)) throw new PrecomputedError("invalid_argument", `resolution must be 3 positive numbers`);
  if (!offset.every(Number.isSafeInteger)) throw new PrecomputedError("invalid_argument", `voxelOffset must be integers`);
  if (!Number.isSafeInteger(maxLevels) || maxLevels < 1) throw new PrecomputedError("invalid_argument", `maxLevels must be >= 1`);

  const level = (factor: Vec3, step: Vec3): PlannedScale => {
    const res = [0, 1, 2].map((d) => resolution[d] * factor[d]) as Vec3;
    return {
      key: scaleKeyFor(res),
      size: [0, 1, 2].map((d) => Math.ceil(size[d] / factor[d])) as Vec3,
      resolution: res,
      voxel_offset: [0, 1, 2].map((d) => Math.floor(offset[d] / factor[d])) as Vec3,
      factor,
      step,
    };
  };

  const scales = [level([1, 1, 1], [1, 1, 1])];
  while (scales.length < maxLevels) {
    const cur = scales[scales.length - 1];
    const step = nextStep(cur.resolution);
    if (!cur.size.some((s, d) => step[d] > 1 && s > chunkSize[d])) break;
    const factor = [0, 1, 2].map((d) => cur.factor[d] * step[d]) as Vec3;
    const next = level(factor, step);
    if (next.size.some((s, d) => step[d] > 1 && s < minExtent)) break;
    scales.push(next);
  }
  return scales;
}

function nextStep(voxel: Vec3): Vec3 {
  let smallest = 0;
  for (let d = 1; d < 3; d++) if (voxel[d] < voxel[smallest]) smallest = d;
  const target = voxel[smallest] * 2;
  return [0, 1, 2].map((d) =>
    d === smallest || Math.abs(voxel[d] - target) > Math.abs(voxel[d] * 2 - target) ? 2 : 1,
  ) as Vec3;
}

/** Array types whose elements are JS numbers. */
type NumberArray = Exclude<VoxelArray, BigUint64Array>;

interface Geometry {
  shape: Vec3;
  out: Vec3;
  factor: Vec3;
  channels: number;
}

function geometry(volume: Volume, factor: Vec3): Geometry {
  if (!vecOk(factor, true)) throw new PrecomputedError("invalid_argument", `factor must be 3 positive integers`);
  const channels = volume.channels ?? 1;
  const n = volume.shape[0] * volume.shape[1] * volume.shape[2];
  if (!vecOk(volume.shape, true) || volume.data.length !== n * channels) {
    throw new PrecomputedError("invalid_argument", `volume data length ${volume.data.length} does not match shape x channels`);
  }
  const out = [0, 1, 2].map((d) => Math.ceil(volume.shape[d] / factor[d])) as Vec3;
  return { shape: volume.shape, out, factor, channels };
}

/**
 * Calls `visit(outIndex, inIndices)` for each output voxel with the input indices of its block; blocks
 * at the upper edges are partial (only the voxels that exist).
 */
function forEachBlock(g: Geometry, visit: (outIndex: number, inIndices: Int32Array, count: number) => void): void {
  const [sx, sy, sz] = g.shape;
  const [ox, oy, oz] = g.out;
  const [fx, fy, fz] = g.factor;
  const nIn = sx * sy * sz;
  const nOut = ox * oy * oz;
  const indices = new Int32Array(fx * fy * fz);
  for (let c = 0; c < g.channels; c++) {
    for (let z = 0; z < oz; z++) {
      const z1 = Math.min((z + 1) * fz, sz);
      for (let y = 0; y < oy; y++) {
        const y1 = Math.min((y + 1) * fy, sy);
        for (let x = 0; x < ox; x++) {
          const x1 = Math.min((x + 1) * fx, sx);
          let k = 0;
          for (let zz = z * fz; zz < z1; zz++) {
            for (let yy = y * fy; yy < y1; yy++) {
              const row = c * nIn + sx * (yy + sy * zz);
              for (let xx = x * fx; xx < x1; xx++) indices[k++] = row + xx;
            }
          }
          visit(c * nOut + x + ox * (y + oy * z), indices, k);
        }
      }
    }
  }
}

/**
 * Block mean for image data. Partial edge blocks average the voxels they have. Integer types round
 * half up (mean 2.5 -> 3), which keeps a flat field flat and avoids the darkening drift truncation
 * causes over many levels; float32 keeps the exact mean (summed in float64). uint64 sums in BigInt.
 */
export function downsampleMean<T extends VoxelArray>(volume: Volume<T>, factor: Vec3): Volume<T> {
  const g = geometry(volume, factor);
  const nOut = g.out[0] * g.out[1] * g.out[2] * g.channels;
  const src = volume.data;
  const out = allocate(dataTypeOf(src), nOut) as T;
  if (src instanceof BigUint64Array && out instanceof BigUint64Array) {
    forEachBlock(g, (o, idx, k) => {
      let sum = 0n;
      for (let i = 0; i < k; i++) sum += src[idx[i]];
      out[o] = (sum + BigInt(k) / 2n) / BigInt(k);
    });
  } else {
    meanNumbers(g, src as NumberArray, out as NumberArray, !(src instanceof Float32Array));
  }
  return { data: out, shape: g.out, channels: g.channels };
}

/**
 * downsampleMean for number arrays: the same blocks and the same summation order as forEachBlock (z, then y,
 * then x), written out without the per-block callback and index list, which cost more than the sums.
 */
function meanNumbers(g: Geometry, s: NumberArray, out: NumberArray, round: boolean): void {
  const [sx, sy, sz] = g.shape;
  const [ox, oy, oz] = g.out;
  const [fx, fy, fz] = g.factor;
  const nIn = sx * sy * sz;
  const nOut = ox * oy * oz;
  for (let c = 0; c < g.channels; c++) {
    for (let z = 0; z < oz; z++) {
      const z0 = z * fz;
      const z1 = Math.min(z0 + fz, sz);
      for (let y = 0; y < oy; y++) {
        const y0 = y * fy;
        const y1 = Math.min(y0 + fy, sy);
        const o = c * nOut + ox * (y + oy * z);
        for (let x = 0; x < ox; x++) {
          const x0 = x * fx;
          const x1 = Math.min(x0 + fx, sx);
          let sum = 0;
          for (let zz = z0; zz < z1; zz++) {
            for (let yy = y0; yy < y1; yy++) {
              const row = c * nIn + sx * (yy + sy * zz);
              for (let xx = x0; xx < x1; xx++) sum += s[row + xx];
            }
          }
          const k = (x1 - x0) * (y1 - y0) * (z1 - z0);
          out[o + x] = round ? Math.floor(sum / k + 0.5) : sum / k;
        }
      }
    }
  }
}

/**
 * Most frequent label in each block, for segmentation. Ties go to the smallest label, so the result does
 * not depend on where in the block a label sits (a 2 x 2 block {0, 0, 7, 7} gives 0). Partial edge
 * blocks vote with the voxels they have.
 */
export function downsampleMode<T extends VoxelArray>(volume: Volume<T>, factor: Vec3): Volume<T> {
  const g = geometry(volume, factor);
  const nOut = g.out[0] * g.out[1] * g.out[2] * g.channels;
  const src = volume.data;
  const out = allocate(dataTypeOf(src), nOut) as T;
  if (src instanceof BigUint64Array && out instanceof BigUint64Array) {
    modeInto<bigint>(g, src, out, new BigUint64Array(g.factor[0] * g.factor[1] * g.factor[2]));
  } else if (src instanceof Float32Array || src instanceof Float64Array) {
    modeInto<number>(g, src as NumberArray, out as NumberArray, new Float64Array(g.factor[0] * g.factor[1] * g.factor[2]));
  } else {
    modeIntegers(g, src as NumberArray, out as NumberArray, new Float64Array(g.factor[0] * g.factor[1] * g.factor[2]));
  }
  return { data: out, shape: g.out, channels: g.channels };
}

interface Indexed<E> {
  [index: number]: E;
}

/** Inserts v into the sorted scratch[0..k) (insertion sort: blocks are a handful of voxels, 2 x 2 x 1 to 2 x 2 x 2). */
export function insertSorted(scratch: Float64Array, k: number, v: number): void {
  let j = k;
  while (j > 0 && scratch[j - 1] > v) {
    scratch[j] = scratch[j - 1];
    j--;
  }
  scratch[j] = v;
}

/**
 * The most frequent of the sorted scratch[0..k), ties to the smallest value: the pipeline's pyramid rule, shared
 * with the proofreading server's in-place pyramid update so that both give the same coarse labels.
 */
export function modeOfSorted(scratch: Float64Array, k: number): number {
  let best = scratch[0];
  let bestCount = 0;
  for (let i = 0; i < k; ) {
    let j = i + 1;
    while (j < k && scratch[j] === scratch[i]) j++;
    if (j - i > bestCount) {
      bestCount = j - i;
      best = scratch[i];
    }
    i = j;
  }
  return best;
}

/**
 * modeInto for integer arrays, without the per-block callback: a block of one label (most of them) is that
 * label; any other block is sorted and counted exactly as modeInto does.
 */
function modeIntegers(g: Geometry, src: NumberArray, out: NumberArray, scratch: Float64Array): void {
  const [sx, sy, sz] = g.shape;
  const [ox, oy, oz] = g.out;
  const [fx, fy, fz] = g.factor;
  const nIn = sx * sy * sz;
  const nOut = ox * oy * oz;
  for (let c = 0; c < g.channels; c++) {
    for (let z = 0; z < oz; z++) {
      const z0 = z * fz;
      const z1 = Math.min(z0 + fz, sz);
      for (let y = 0; y < oy; y++) {
        const y0 = y * fy;
        const y1 = Math.min(y0 + fy, sy);
        const o = c * nOut + ox * (y + oy * z);
        for (let x = 0; x < ox; x++) {
          const x0 = x * fx;
          const x1 = Math.min(x0 + fx, sx);
          const first = src[c * nIn + x0 + sx * (y0 + sy * z0)];
          let uniform = true;
          let k = 0;
          for (let zz = z0; zz < z1; zz++) {
            for (let yy = y0; yy < y1; yy++) {
              const row = c * nIn + sx * (yy + sy * zz);
              for (let xx = x0; xx < x1; xx++) {
                const v = src[row + xx];
                if (v !== first) uniform = false;
                insertSorted(scratch, k++, v);
              }
            }
          }
          if (uniform) {
            out[o + x] = first;
            continue;
          }
          out[o + x] = modeOfSorted(scratch, k);
        }
      }
    }
  }
}

function modeInto<E extends number | bigint>(g: Geometry, src: Indexed<E>, out: Indexed<E>, scratch: Indexed<E>): void {
  forEachBlock(g, (o, idx, k) => {
    // Insertion sort: blocks are a handful of voxels (2 x 2 x 1 to 2 x 2 x 2 in practice).
    for (let i = 0; i < k; i++) {
      const v = src[idx[i]];
      let j = i;
      while (j > 0 && scratch[j - 1] > v) {
        scratch[j] = scratch[j - 1];
        j--;
      }
      scratch[j] = v;
    }
    let best = scratch[0];
    let bestCount = 0;
    for (let i = 0; i < k; ) {
      let j = i + 1;
      while (j < k && scratch[j] === scratch[i]) j++;
      if (j - i > bestCount) {
        bestCount = j - i;
        best = scratch[i];
      }
      i = j;
    }
    out[o] = best;
  });
}
