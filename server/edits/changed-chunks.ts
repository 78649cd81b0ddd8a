/**
 * Writing an edit's changed chunks back to the layer, scale by scale: only the chunks holding a changed voxel
 * (pyramid.ts' LevelChange), re-encoded here or taken as the chunk worker encoded and gzipped them.
 */
import type { Vec3 } from "../../precomputed/array.js";
import { chunkKey, type VolumeInfo } from "../../precomputed/info.js";
import { joinKey } from "../../precomputed/keys.js";
import type { Storage } from "../../precomputed/storage.js";
import { writeRegion } from "../../precomputed/volume-io.js";
import { cropVolume } from "../pipeline/edt.js";
import type { EncodedChunks } from "./chunk-job.js";
import { encodeChunkU32 } from "./cseg.js";
import { segsOfRuns, type LevelChange, type Pyramid } from "./pyramid.js";

/** Chunks (of `chunk`, grid `grid`) of a scale holding a voxel of the segments, as a flag per grid cell. */
function chunksOfSegs(segs: Int32Array, shape: Vec3, chunk: Vec3, grid: Vec3): Uint8Array {
  const ny = shape[1];
  const hit = new Uint8Array(grid[0] * grid[1] * grid[2]);
  for (let k = 0; k < segs.length; k += 5) {
    const y = segs[k] % ny;
    const z = (segs[k] - y) / ny;
    const row = grid[0] * (Math.floor(y / chunk[1]) + grid[1] * Math.floor(z / chunk[2]));
    const last = Math.floor((segs[k + 2] - 1) / chunk[0]);
    for (let gx = Math.floor(segs[k + 1] / chunk[0]); gx <= last; gx++) hit[row + gx] = 1;
  }
  return hit;
}

/** Scale i's chunks holding a voxel of `segs`, as boxes (lo x, y, z, hi x, y, z per chunk), in grid order. */
export function chunkBoxes(info: VolumeInfo, p: Pyramid, i: number, segs: Int32Array): Int32Array {
  const scale = info.scales[i];
  const chunk = scale.chunk_sizes[0];
  if (scale.voxel_offset.some((v) => v !== 0)) throw new Error("edits need layers whose voxel_offset is 0");
  const grid = [0, 1, 2].map((d) => Math.ceil(scale.size[d] / chunk[d])) as Vec3;
  const hit = chunksOfSegs(segs, p.levels[i].shape, chunk, grid);
  let n = 0;
  for (let c = 0; c < hit.length; c++) n += hit[c];
  const boxes = new Int32Array(6 * n);
  for (let c = 0, k = 0; c < hit.length; c++) {
    if (hit[c] === 0) continue;
    const lo = [c % grid[0], Math.floor(c / grid[0]) % grid[1], Math.floor(c / (grid[0] * grid[1]))].map((g, d) => g * chunk[d]);
    for (let d = 0; d < 3; d++) {
      boxes[k + d] = lo[d];
      boxes[k + 3 + d] = Math.min(scale.size[d], lo[d] + chunk[d]);
    }
    k += 6;
  }
  return boxes;
}

/** Whether chunks of scale i take the fast encoder (encodeChunkU32) rather than writeRegion. */
export function fastEncoded(info: VolumeInfo, i: number): boolean {
  const scale = info.scales[i];
  return scale.encoding === "compressed_segmentation" && (info.num_channels ?? 1) === 1 && scale.compressed_segmentation_block_size !== undefined;
}

/** A storage that can also take bytes gzipped already (the chunk worker's), stored as put(..., gzip) would. */
export interface GzipStorage extends Storage {
  putGzipped(key: string, gz: Uint8Array): Promise<void>;
}

/**
 * Re-encodes, in every scale, only the chunks whose content changed: in scale 0 those holding a voxel of
 * the runs, in a coarser scale those holding a block mode that updatePyramid found changed (a sparse object,
 * or a merge whose coarse modes come out the same, rewrites no more than that). `encoded` holds scales whose
 * chunks (chunkBoxes' order) were encoded and gzipped elsewhere (the chunk worker); written as they are.
 */
export async function writeChangedChunks(
  storage: Storage,
  prefix: string,
  info: VolumeInfo,
  p: Pyramid,
  changes: readonly LevelChange[],
  runs: Uint32Array,
  encoded?: ReadonlyMap<number, Promise<EncodedChunks>>,
): Promise<void> {
  for (let i = 0; i < changes.length; i++) {
    const scale = info.scales[i];
    const segs = changes[i].segs ?? (i === 0 ? segsOfRuns(runs, p.levels[0].shape, p.levels[0].data) : new Int32Array(0));
    const boxes = chunkBoxes(info, p, i, segs);
    const fast = fastEncoded(info, i);
    const level = p.levels[i];
    const done = encoded?.get(i);
    // A failed worker leaves the chunks to this thread (same bytes).
    const ready = done && "putGzipped" in storage ? await done.catch(() => undefined) : undefined;
    const pending: Promise<void>[] = [];
    for (let k = 0; k < boxes.length; k += 6) {
      const lo: Vec3 = [boxes[k], boxes[k + 1], boxes[k + 2]];
      const hi: Vec3 = [boxes[k + 3], boxes[k + 4], boxes[k + 5]];
      if (ready) {
        const c = k / 6;
        const gz = ready.bytes.subarray(c === 0 ? 0 : ready.ends[c - 1], ready.ends[c]);
        pending.push((storage as GzipStorage).putGzipped(joinKey(prefix, chunkKey(scale, lo, hi)), gz));
      } else if (!fast) {
        const shape: Vec3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        await writeRegion(storage, prefix, info, i, lo, { data: cropVolume(level.data, level.shape, lo, shape), shape }, { gzip: true });
        continue;
      } else {
        // The same bytes and file as writeRegion (gzip: compressed_segmentation gains from it).
        const bytes = encodeChunkU32(level.data, level.shape, lo, hi, scale.compressed_segmentation_block_size as Vec3, p.blocks?.[i]);
        pending.push(storage.put(joinKey(prefix, chunkKey(scale, lo, hi)), bytes, { contentEncoding: "gzip" }));
      }
      // Several writes in flight while the next chunk encodes.
      if (pending.length >= 32) await settle(pending.splice(0));
    }
    await settle(pending);
  }
}

/** Waits for every write, then throws the first failure: no write may land after the caller rolls back. */
async function settle(writes: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(writes);
  for (const r of results) if (r.status === "rejected") throw r.reason;
}
