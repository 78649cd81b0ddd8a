import type { Vec3, Volume } from "../../precomputed/array.js";
import { chunkKey, type VolumeInfo } from "../../precomputed/info.js";
import { joinKey } from "../../precomputed/keys.js";
import { downsampleMode, insertSorted, modeOfSorted } from "../../precomputed/multiscale.js";
import type { Storage } from "../../precomputed/storage.js";
import { writeRegion } from "../../precomputed/volume-io.js";
import { encodeChunkU32 } from "./cseg.js";
import type { Box6 } from "./ops.js";

/**
 * Every scale of the segmentation held in memory (about 1.15-1.33x scale 0), so an edit recomputes only the
 * block modes its changed voxels feed, scale by scale, and re-encodes only the chunks whose voxels changed.
 * The result equals a full cascade of downsampleMode (what the pipeline writes): each recomputed output
 * voxel sees exactly the same source block, and every other one sees an unchanged block.
 */
export interface Pyramid {
  levels: Volume<Uint32Array>[];
  /** steps[i]: factor from scale i-1 to scale i ([1,1,1] for scale 0). */
  steps: Vec3[];
}

export function pyramidSteps(info: VolumeInfo): Vec3[] {
  return info.scales.map((s, i) => (i === 0 ? [1, 1, 1] : ([0, 1, 2].map((d) => Math.round(s.resolution[d] / info.scales[i - 1].resolution[d])) as Vec3)));
}

export function buildPyramid(info: VolumeInfo, scale0: Volume<Uint32Array>): Pyramid {
  const steps = pyramidSteps(info);
  const levels = [scale0];
  for (let i = 1; i < info.scales.length; i++) levels.push(downsampleMode(levels[i - 1], steps[i]));
  return { levels, steps };
}

function cropOf(v: Volume<Uint32Array>, lo: Vec3, hi: Vec3): Volume<Uint32Array> {
  const [nx, ny] = v.shape;
  const shape: Vec3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const out = new Uint32Array(shape[0] * shape[1] * shape[2]);
  let o = 0;
  for (let z = lo[2]; z < hi[2]; z++)
    for (let y = lo[1]; y < hi[1]; y++, o += shape[0]) {
      const from = lo[0] + nx * (y + ny * z);
      out.set(v.data.subarray(from, from + shape[0]), o);
    }
  return { data: out, shape };
}

/**
 * What an edit changed in one scale: scale 0 is the diff's runs; a coarser scale lists the voxels whose
 * block mode actually changed, as a mask over `box` (x fastest), so only their chunks are re-encoded and
 * only their parents are recomputed in the next scale.
 */
export interface LevelChange {
  box: Box6;
  /** 1 where the voxel changed; undefined for scale 0 (the runs say). */
  mask?: Uint8Array;
}

/**
 * Mode of one source block of `src` (the same rule as downsampleMode's modeIntegers: the most frequent
 * label, ties to the smallest, blocks cut at the volume's edge), read in place: no crop, no allocation.
 */
function blockMode(src: Uint32Array, sx: number, sy: number, x0: number, x1: number, y0: number, y1: number, z0: number, z1: number, scratch: Float64Array): number {
  const first = src[x0 + sx * (y0 + sy * z0)];
  // Most blocks hold one label: a comparison pass settles them without sorting.
  let uniform = true;
  for (let zz = z0; zz < z1 && uniform; zz++)
    for (let yy = y0; yy < y1; yy++) {
      const row = sx * (yy + sy * zz);
      let xx = x0;
      while (xx < x1 && src[row + xx] === first) xx++;
      if (xx < x1) {
        uniform = false;
        break;
      }
    }
  if (uniform) return first;
  let k = 0;
  for (let zz = z0; zz < z1; zz++)
    for (let yy = y0; yy < y1; yy++) {
      const row = sx * (yy + sy * zz);
      for (let xx = x0; xx < x1; xx++) insertSorted(scratch, k++, src[row + xx]);
    }
  return modeOfSorted(scratch, k);
}

/** Visits the x-segments of runs (start, length, ...) row by row: fn(x0, x1 exclusive, y, z). */
function forEachRowOfRuns(runs: Uint32Array, shape: Vec3, fn: (x0: number, x1: number, y: number, z: number) => void): void {
  const [nx, ny] = shape;
  for (let k = 0; k < runs.length; k += 4) {
    const end = runs[k] + runs[k + 1];
    for (let i = runs[k]; i < end; ) {
      const x = i % nx;
      const r = (i - x) / nx;
      const y = r % ny;
      const z = (r - y) / ny;
      const rowEnd = Math.min(end, i - x + nx);
      fn(x, x + rowEnd - i, y, z);
      i = rowEnd;
    }
  }
}

/**
 * After scale 0 changed at the voxels of `runs` (inside `box0`), recomputes the coarser scales: in scale i
 * only the block modes whose source block holds a voxel that changed in scale i-1, each in place, and a
 * recomputed mode that comes out as before stops there (its parent is not revisited). Exactly what a full
 * cascade of downsampleMode gives, as every other output voxel sees an unchanged block. Returns what changed
 * in each scale. (A merge is not a relabelling of the coarser scales: with keep < other < drop, a block of
 * other, other, drop, keep had mode `other` and now has `keep`; a drop/other tie flips to keep; so merges
 * recompute too, only where drop was.)
 */
export function updatePyramid(p: Pyramid, box0: Box6, runs: Uint32Array): LevelChange[] {
  const out: LevelChange[] = [{ box: box0 }];
  for (let i = 1; i < p.levels.length; i++) {
    const prev = out[i - 1];
    const step = p.steps[i];
    const size = p.levels[i].shape;
    const lo = [0, 1, 2].map((d) => Math.floor(prev.box[d] / step[d])) as Vec3;
    const hi = [0, 1, 2].map((d) => Math.max(lo[d], Math.min(size[d], Math.ceil(prev.box[d + 3] / step[d])))) as Vec3;
    const [dx, dy] = [hi[0] - lo[0], hi[1] - lo[1]];
    const mask = new Uint8Array(dx * dy * (hi[2] - lo[2]));
    const [fx, fy, fz] = step;
    const scratch = new Float64Array(fx * fy * fz);
    // Candidates: parents of what changed one scale finer.
    if (i === 1) {
      forEachRowOfRuns(runs, p.levels[0].shape, (x0, x1, y, z) => {
        const row = dx * (Math.floor(y / fy) - lo[1] + dy * (Math.floor(z / fz) - lo[2]));
        const last = Math.floor((x1 - 1) / fx);
        for (let ox = Math.floor(x0 / fx); ox <= last; ox++) mask[row + ox - lo[0]] = 1;
      });
    } else {
      const pm = prev.mask as Uint8Array;
      const pb = prev.box;
      const [px, py, pz] = [pb[3] - pb[0], pb[4] - pb[1], pb[5] - pb[2]];
      let c = 0;
      for (let z = 0; z < pz; z++) {
        const oz = Math.floor((z + pb[2]) / fz) - lo[2];
        for (let y = 0; y < py; y++) {
          const row = dx * (Math.floor((y + pb[1]) / fy) - lo[1] + dy * oz);
          for (let x = 0; x < px; x++, c++) if (pm[c] !== 0) mask[row + Math.floor((x + pb[0]) / fx) - lo[0]] = 1;
        }
      }
    }
    const src = p.levels[i - 1];
    const [sx, sy, sz] = src.shape;
    const dst = p.levels[i].data;
    const [nx, ny] = size;
    let c = 0;
    const s = src.data;
    for (let z = lo[2]; z < hi[2]; z++)
      for (let y = lo[1]; y < hi[1]; y++)
        for (let x = lo[0]; x < hi[0]; x++, c++) {
          if (mask[c] === 0) continue;
          // The usual 2 x 2 x 1 step, away from the volume's edge: four voxels, most often one label.
          if (fx === 2 && fy === 2 && fz === 1 && 2 * x + 1 < sx && 2 * y + 1 < sy) {
            const a = 2 * x + sx * (2 * y + sy * z);
            const v0 = s[a];
            if (s[a + 1] === v0 && s[a + sx] === v0 && s[a + sx + 1] === v0) {
              const at0 = x + nx * (y + ny * z);
              if (dst[at0] === v0) mask[c] = 0;
              else dst[at0] = v0;
              continue;
            }
          }
          const v = blockMode(src.data, sx, sy, x * fx, Math.min(x * fx + fx, sx), y * fy, Math.min(y * fy + fy, sy), z * fz, Math.min(z * fz + fz, sz), scratch);
          const at = x + nx * (y + ny * z);
          if (dst[at] === v) mask[c] = 0;
          else dst[at] = v;
        }
    out.push({ box: [lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]], mask });
  }
  return out;
}

/**
 * Scale-0 chunks (grid cells of `chunk`) holding a voxel of the runs, as boxes clipped to the volume: the
 * runs are x-runs (a run that wraps onto later rows covers those rows whole).
 */
function chunksOfRuns(runs: Uint32Array, shape: Vec3, chunk: Vec3): Box6[] {
  const [nx, ny] = shape;
  const g = [0, 1, 2].map((d) => Math.ceil(shape[d] / chunk[d])) as Vec3;
  const hit = new Uint8Array(g[0] * g[1] * g[2]);
  for (let k = 0; k < runs.length; k += 4) {
    const start = runs[k];
    const end = start + runs[k + 1];
    for (let i = start; i < end; ) {
      const x = i % nx;
      const r = (i - x) / nx;
      const y = r % ny;
      const z = (r - y) / ny;
      const rowEnd = Math.min(end, i - x + nx);
      const gy = Math.floor(y / chunk[1]);
      const gz = Math.floor(z / chunk[2]);
      const last = Math.floor((rowEnd - 1 - (i - x)) / chunk[0]);
      for (let gx = Math.floor(x / chunk[0]); gx <= last; gx++) hit[gx + g[0] * (gy + g[1] * gz)] = 1;
      i = rowEnd;
    }
  }
  const out: Box6[] = [];
  for (let gz = 0, c = 0; gz < g[2]; gz++)
    for (let gy = 0; gy < g[1]; gy++)
      for (let gx = 0; gx < g[0]; gx++, c++)
        if (hit[c]) {
          const lo = [gx * chunk[0], gy * chunk[1], gz * chunk[2]];
          out.push([lo[0], lo[1], lo[2], Math.min(shape[0], lo[0] + chunk[0]), Math.min(shape[1], lo[1] + chunk[1]), Math.min(shape[2], lo[2] + chunk[2])]);
        }
  return out;
}

/** Chunks (of `chunk`) of a scale holding a voxel set in `mask` over `box`, as grid indices. */
function chunksOfMask(change: LevelChange, chunk: Vec3, grid: Vec3, hit: Set<number>): void {
  const { box: b, mask } = change;
  if (!mask) return;
  const dx = b[3] - b[0];
  let c = 0;
  for (let z = b[2]; z < b[5]; z++) {
    const gz = Math.floor(z / chunk[2]);
    for (let y = b[1]; y < b[4]; y++) {
      const gy = Math.floor(y / chunk[1]);
      const rowStart = c;
      for (; c < rowStart + dx; c++) if (mask[c] !== 0) hit.add(Math.floor((c - rowStart + b[0]) / chunk[0]) + grid[0] * (gy + grid[1] * gz));
    }
  }
}

/**
 * Re-encodes, in every scale, only the chunks whose content changed: in scale 0 those holding a voxel of
 * the runs, in a coarser scale those holding a block mode that updatePyramid found changed (a sparse object,
 * or a merge whose coarse modes come out the same, rewrites no more than that).
 */
export async function writeChangedChunks(storage: Storage, prefix: string, info: VolumeInfo, p: Pyramid, changes: readonly LevelChange[], runs: Uint32Array): Promise<void> {
  for (let i = 0; i < changes.length; i++) {
    const scale = info.scales[i];
    const chunk = scale.chunk_sizes[0];
    if (scale.voxel_offset.some((v) => v !== 0)) throw new Error("edits need layers whose voxel_offset is 0");
    const grid = [0, 1, 2].map((d) => Math.ceil(scale.size[d] / chunk[d])) as Vec3;
    const hit = new Set<number>();
    if (i === 0) {
      for (const r of chunksOfRuns(runs, p.levels[0].shape, chunk)) hit.add(r[0] / chunk[0] + grid[0] * (r[1] / chunk[1] + grid[1] * (r[2] / chunk[2])));
    } else chunksOfMask(changes[i], chunk, grid, hit);
    const fast = scale.encoding === "compressed_segmentation" && (info.num_channels ?? 1) === 1 && scale.compressed_segmentation_block_size !== undefined;
    const level = p.levels[i];
    const pending: Promise<void>[] = [];
    for (const c of [...hit].sort((a, b) => a - b)) {
      const gx = c % grid[0];
      const gy = Math.floor(c / grid[0]) % grid[1];
      const gz = Math.floor(c / (grid[0] * grid[1]));
      const lo: Vec3 = [gx * chunk[0], gy * chunk[1], gz * chunk[2]];
      const hi = [0, 1, 2].map((d) => Math.min(scale.size[d], lo[d] + chunk[d])) as Vec3;
      if (!fast) {
        await writeRegion(storage, prefix, info, i, lo, cropOf(level, lo, hi), { gzip: true });
        continue;
      }
      // The same bytes and file as writeRegion (gzip: compressed_segmentation gains from it); several
      // writes in flight, as writeRegion has, while the next chunk encodes.
      const bytes = encodeChunkU32(level.data, level.shape, lo, hi, scale.compressed_segmentation_block_size as Vec3);
      pending.push(storage.put(joinKey(prefix, chunkKey(scale, lo, hi)), bytes, { contentEncoding: "gzip" }));
      if (pending.length >= 8) await settle(pending.splice(0));
    }
    await settle(pending);
  }
}

/** Waits for every write, then throws the first failure: no write may land after the caller rolls back. */
async function settle(writes: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(writes);
  for (const r of results) if (r.status === "rejected") throw r.reason;
}
