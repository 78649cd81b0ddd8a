import { allocate, dataTypeOf, type Vec3, type Volume, type VoxelArray } from "./array.js";
import { decodeChunk, encodeChunk } from "./encodings/index.js";
import { PrecomputedError } from "./errors.js";
import { add, boxesIn, sub, type ScaleInfo, type VolumeInfo } from "./info.js";
import { joinKey } from "./keys.js";
import { compressedMortonCode } from "./sharding-hash.js";
import { mergeIntoShards, ShardedReader, writeShards, type ShardingSpec } from "./sharding.js";
import type { Storage } from "./storage.js";

/**
 * Region reads and writes on a sharded scale: the counterpart of volume-io's readRegion / writeRegion.
 * Chunk boxes and their encodings are the unsharded ones; only where the bytes live differs (chunk id =
 * compressed Morton code of the chunk's grid position, as Neuroglancer computes it).
 */

const invalid = (message: string): never => {
  throw new PrecomputedError("invalid_argument", message);
};

function shardedScale(info: VolumeInfo, scaleIndex: number): ScaleInfo & { sharding: ShardingSpec } {
  const scale = info.scales[scaleIndex];
  if (!scale) return invalid(`no scale #${scaleIndex} (info has ${info.scales.length})`);
  const { sharding } = scale;
  if (!sharding) throw new PrecomputedError("invalid_argument", "scale is not sharded", `scales[${scaleIndex}]`);
  return { ...scale, sharding };
}

/** Neuroglancer's chunk id for the chunk starting at `chunkStart` (absolute voxel coordinates). */
export function volumeChunkId(scale: Pick<ScaleInfo, "size" | "voxel_offset" | "chunk_sizes">, chunkStart: Vec3): bigint {
  const chunk = scale.chunk_sizes[0];
  const grid = [0, 1, 2].map((d) => Math.ceil(scale.size[d] / chunk[d]));
  const pos = [0, 1, 2].map((d) => (chunkStart[d] - scale.voxel_offset[d]) / chunk[d]);
  if (!pos.every((p, d) => Number.isInteger(p) && p >= 0 && p < grid[d])) invalid(`[${chunkStart.join(", ")}] is not a chunk origin of the scale`);
  return compressedMortonCode(pos, grid);
}

function copyBox(src: Volume, srcStart: Vec3, dst: Volume, dstStart: Vec3, extent: Vec3): void {
  const channels = src.channels ?? 1;
  const [sx, sy, sz] = src.shape;
  const [dx, dy, dz] = dst.shape;
  if (dataTypeOf(src.data) !== dataTypeOf(dst.data)) invalid(`cannot copy ${dataTypeOf(src.data)} voxels into ${dataTypeOf(dst.data)}`);
  // Same element type on both sides (checked above), so the row copy is a plain typed-array set.
  const to = dst.data as unknown as { set(a: ArrayLike<unknown>, at: number): void };
  for (let c = 0; c < channels; c++) {
    for (let z = 0; z < extent[2]; z++) {
      for (let y = 0; y < extent[1]; y++) {
        const from = c * sx * sy * sz + srcStart[0] + sx * (srcStart[1] + y + sy * (srcStart[2] + z));
        const at = c * dx * dy * dz + dstStart[0] + dx * (dstStart[1] + y + dy * (dstStart[2] + z));
        to.set(src.data.subarray(from, from + extent[0]) as ArrayLike<unknown>, at);
      }
    }
  }
}

function emptyVolume(info: VolumeInfo, shape: Vec3): Volume {
  const data: VoxelArray = allocate(info.data_type, shape[0] * shape[1] * shape[2] * info.num_channels);
  return { data, shape, channels: info.num_channels };
}

/**
 * Writes every chunk covering `volume` at `offset` into the scale's shards. Writing the whole scale replaces
 * each shard outright; a smaller region is merged into the shards it touches (read-modify-write), so at most
 * one writer may work on a shard at a time.
 */
export async function writeShardedRegion(
  storage: Storage,
  prefix: string,
  info: VolumeInfo,
  scaleIndex: number,
  offset: Vec3,
  volume: Volume,
): Promise<string[]> {
  const scale = shardedScale(info, scaleIndex);
  const chunk = scale.chunk_sizes[0];
  const scaleEnd = add(scale.voxel_offset, scale.size);
  const end = add(offset, volume.shape);
  if (dataTypeOf(volume.data) !== info.data_type) invalid(`volume is ${dataTypeOf(volume.data)}, the layer is ${info.data_type}`);
  if ((volume.channels ?? 1) !== info.num_channels) invalid(`volume has ${volume.channels ?? 1} channel(s), the layer has ${info.num_channels}`);
  for (let d = 0; d < 3; d++) {
    if ((offset[d] - scale.voxel_offset[d]) % chunk[d] !== 0 || offset[d] < scale.voxel_offset[d]) invalid(`offset [${offset.join(", ")}] is not on the chunk grid`);
    if (end[d] > scaleEnd[d] || (end[d] !== scaleEnd[d] && (end[d] - scale.voxel_offset[d]) % chunk[d] !== 0)) {
      invalid(`region end [${end.join(", ")}] is neither on the chunk grid nor at the volume edge`);
    }
  }
  const entries: [bigint, Uint8Array][] = [];
  const encodeOptions = { blockSize: scale.compressed_segmentation_block_size, jpegQuality: scale.jpeg_quality };
  for (const box of boxesIn(offset, end, chunk, scale.voxel_offset)) {
    const part = emptyVolume(info, sub(box.end, box.start));
    copyBox(volume, sub(box.start, offset), part, [0, 0, 0], part.shape);
    entries.push([volumeChunkId(scale, box.start), await encodeChunk(scale.encoding, part, encodeOptions)]);
  }
  const whole = offset.every((o, d) => o === scale.voxel_offset[d]) && end.every((e, d) => e === scaleEnd[d]);
  const write = whole ? writeShards : mergeIntoShards;
  return write(storage, joinKey(prefix, scale.key), scale.sharding, entries);
}

/** Reads [start, end) of a sharded scale; missing chunks read as zeros, as in Neuroglancer. */
export async function readShardedRegion(
  storage: Storage,
  prefix: string,
  info: VolumeInfo,
  scaleIndex: number,
  start: Vec3,
  end: Vec3,
  reader?: ShardedReader,
): Promise<Volume> {
  const scale = shardedScale(info, scaleIndex);
  const chunk = scale.chunk_sizes[0];
  const scaleEnd = add(scale.voxel_offset, scale.size);
  for (let d = 0; d < 3; d++) {
    if (!(start[d] >= scale.voxel_offset[d] && end[d] <= scaleEnd[d] && start[d] < end[d])) {
      invalid(`region [${start.join(", ")}]-[${end.join(", ")}] is empty or outside the scale's bounds`);
    }
  }
  const r = reader ?? new ShardedReader(storage, joinKey(prefix, scale.key), scale.sharding);
  const out = emptyVolume(info, sub(end, start));
  for (const box of boxesIn(start, end, chunk, scale.voxel_offset)) {
    const cStart = [0, 1, 2].map((d) => scale.voxel_offset[d] + Math.floor((box.start[d] - scale.voxel_offset[d]) / chunk[d]) * chunk[d]) as Vec3;
    const cEnd = [0, 1, 2].map((d) => Math.min(cStart[d] + chunk[d], scaleEnd[d])) as Vec3;
    const bytes = await r.get(volumeChunkId(scale, cStart));
    if (!bytes) continue;
    const part = await decodeChunk(scale.encoding, bytes, {
      dataType: info.data_type,
      shape: sub(cEnd, cStart),
      channels: info.num_channels,
      blockSize: scale.compressed_segmentation_block_size,
    });
    copyBox(part, sub(box.start, cStart), out, sub(box.start, start), sub(box.end, box.start));
  }
  return out;
}
