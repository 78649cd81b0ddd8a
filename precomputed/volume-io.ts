import { allocate, dataTypeOf, type DataType, type Vec3, type Volume, type VoxelArray } from "./array.js";
import { decodeChunk, encodeChunk, GZIP_WORTHWHILE } from "./encodings/index.js";
import { PrecomputedError } from "./errors.js";
import { add, boxesIn, chunkKey, sub, validateInfo, type ChunkBox, type Encoding, type ScaleInfo, type VolumeInfo, type VolumeType } from "./info.js";
import { downsampleMean, downsampleMode, planScales } from "./multiscale.js";
import type { Storage } from "./storage.js";
import { joinKey } from "./keys.js";

/**
 * Reading and writing whole volumes and chunk-aligned regions of a precomputed layer through a Storage.
 * Coordinates are absolute voxel coordinates of the scale (its voxel_offset included), as in chunk keys.
 */

export interface MakeInfoOptions {
  type: VolumeType;
  dataType: DataType;
  size: Vec3;
  /** nm per voxel at full resolution. */
  resolution: Vec3;
  chunkSize: Vec3;
  encoding: Encoding;
  numChannels?: number;
  voxelOffset?: Vec3;
  /** compressed_segmentation block size; default [8, 8, 8], Neuroglancer's usual. */
  blockSize?: Vec3;
  jpegQuality?: number;
  /** See planScales; maxLevels 1 gives a single scale. */
  maxLevels?: number;
  minExtent?: number;
  mesh?: string;
  segmentProperties?: string;
}

/** A validated info with the scale pyramid from planScales, every scale with the same chunk size and encoding. */
export function makeInfo(o: MakeInfoOptions): VolumeInfo {
  const planned = planScales({
    size: o.size,
    resolution: o.resolution,
    chunkSize: o.chunkSize,
    voxelOffset: o.voxelOffset,
    maxLevels: o.maxLevels,
    minExtent: o.minExtent,
  });
  const scales: ScaleInfo[] = planned.map((p) => ({
    key: p.key,
    size: p.size,
    resolution: p.resolution,
    voxel_offset: p.voxel_offset,
    chunk_sizes: [[...o.chunkSize]],
    encoding: o.encoding,
    ...(o.encoding === "compressed_segmentation" ? { compressed_segmentation_block_size: o.blockSize ?? [8, 8, 8] } : {}),
    ...(o.jpegQuality !== undefined ? { jpeg_quality: o.jpegQuality } : {}),
  }));
  return validateInfo({
    "@type": "neuroglancer_multiscale_volume",
    type: o.type,
    data_type: o.dataType,
    num_channels: o.numChannels ?? 1,
    scales,
    ...(o.mesh !== undefined ? { mesh: o.mesh } : {}),
    ...(o.segmentProperties !== undefined ? { segment_properties: o.segmentProperties } : {}),
  });
}

export interface WriteOptions {
  /** Store raw and compressed_segmentation chunks gzip-compressed (jpeg never: it would not shrink). */
  gzip?: boolean;
}

export interface WriteVolumeOptions extends WriteOptions {
  /** Called after each chunk is stored, with chunks done and chunks in all scales. */
  onProgress?: (done: number, total: number) => void;
}

/** Chunks in flight at once: enough to overlap encoding with storage latency, bounded for memory. */
const CONCURRENCY = 8;

const invalid = (message: string): never => {
  throw new PrecomputedError("invalid_argument", message);
};


function scaleAt(info: VolumeInfo, scaleIndex: number): ScaleInfo {
  const scale = info.scales[scaleIndex];
  if (!scale) return invalid(`no scale #${scaleIndex} (info has ${info.scales.length})`);
  if (scale.sharding) throw new PrecomputedError("unsupported", "sharded scales are not handled by volume-io", `scales[${scaleIndex}]`);
  return scale;
}

function checkVolumeMatches(info: VolumeInfo, volume: Volume): void {
  const dt = dataTypeOf(volume.data);
  if (dt !== info.data_type) invalid(`volume is ${dt}, the layer is ${info.data_type}`);
  const channels = volume.channels ?? 1;
  if (channels !== info.num_channels) invalid(`volume has ${channels} channel(s), the layer has ${info.num_channels}`);
  const n = volume.shape[0] * volume.shape[1] * volume.shape[2] * channels;
  if (!volume.shape.every((s) => Number.isSafeInteger(s) && s > 0) || volume.data.length !== n) {
    invalid(`volume data length ${volume.data.length} does not match shape [${volume.shape.join(", ")}] x ${channels}`);
  }
}

/**
 * Copies box `extent` from src (at srcStart) to dst (at dstStart), all channels, one x-row at a time.
 * Arrays must be of the same type.
 */
function copyBox(src: Volume, srcStart: Vec3, dst: Volume, dstStart: Vec3, extent: Vec3): void {
  const channels = src.channels ?? 1;
  const [sx, sy, sz] = src.shape;
  const [dx, dy, dz] = dst.shape;
  const copyRow = rowCopier(src.data, dst.data);
  for (let c = 0; c < channels; c++) {
    for (let z = 0; z < extent[2]; z++) {
      for (let y = 0; y < extent[1]; y++) {
        const from = c * sx * sy * sz + srcStart[0] + sx * (srcStart[1] + y + sy * (srcStart[2] + z));
        const to = c * dx * dy * dz + dstStart[0] + dx * (dstStart[1] + y + dy * (dstStart[2] + z));
        copyRow(from, to, extent[0]);
      }
    }
  }
}

function rowCopier(src: VoxelArray, dst: VoxelArray): (from: number, to: number, length: number) => void {
  if (src instanceof BigUint64Array && dst instanceof BigUint64Array) {
    return (from, to, length) => dst.set(src.subarray(from, from + length), to);
  }
  if (!(src instanceof BigUint64Array) && !(dst instanceof BigUint64Array) && dataTypeOf(src) === dataTypeOf(dst)) {
    return (from, to, length) => dst.set(src.subarray(from, from + length), to);
  }
  return invalid(`cannot copy ${dataTypeOf(src)} voxels into ${dataTypeOf(dst)}`);
}

function emptyVolume(dataType: DataType, shape: Vec3, channels: number): Volume {
  const data: VoxelArray = allocate(dataType, shape[0] * shape[1] * shape[2] * channels);
  return { data, shape, channels };
}

/** Runs `work` over items, `limit` at a time; after the first failure no new item is started. */
async function pool<T>(items: Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed = false;
  const runner = async (): Promise<void> => {
    for (let next = it.next(); !next.done && !failed; next = it.next()) {
      try {
        await work(next.value);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, runner));
}

async function writeChunks(
  storage: Storage,
  prefix: string,
  info: VolumeInfo,
  scaleIndex: number,
  offset: Vec3,
  volume: Volume,
  options: WriteOptions,
  onChunk: () => void,
): Promise<void> {
  const scale = scaleAt(info, scaleIndex);
  checkVolumeMatches(info, volume);
  const chunk = scale.chunk_sizes[0];
  const volumeEnd = add(scale.voxel_offset, scale.size);
  const end = add(offset, volume.shape);
  for (let d = 0; d < 3; d++) {
    const rel = offset[d] - scale.voxel_offset[d];
    if (!Number.isSafeInteger(offset[d]) || rel < 0 || rel % chunk[d] !== 0) {
      invalid(`offset [${offset.join(", ")}] is not on the chunk grid (chunk ${chunk.join("x")} from voxel_offset)`);
    }
    if (end[d] > volumeEnd[d]) invalid(`region ends at ${end[d]} on axis ${d}, past the volume's ${volumeEnd[d]}`);
    if (end[d] !== volumeEnd[d] && (end[d] - scale.voxel_offset[d]) % chunk[d] !== 0) {
      invalid(`region end [${end.join(", ")}] is neither on the chunk grid nor at the volume edge`);
    }
  }
  const putOptions = options.gzip && GZIP_WORTHWHILE[scale.encoding] ? { contentEncoding: "gzip" as const } : {};
  const encodeOptions = { blockSize: scale.compressed_segmentation_block_size, jpegQuality: scale.jpeg_quality };
  const channels = volume.channels ?? 1;
  await pool(boxesIn(offset, end, chunk, scale.voxel_offset), CONCURRENCY, async (box: ChunkBox) => {
    const part = emptyVolume(info.data_type, sub(box.end, box.start), channels);
    copyBox(volume, sub(box.start, offset), part, [0, 0, 0], part.shape);
    const bytes = await encodeChunk(scale.encoding, part, encodeOptions);
    await storage.put(joinKey(prefix, chunkKey(scale, box.start, box.end)), bytes, putOptions);
    onChunk();
  });
}

/**
 * Writes every chunk covering `volume` placed at `offset` in scale `scaleIndex`. The offset must lie on
 * the chunk grid; the region must end on the grid or at the volume's edge, so each chunk is whole.
 */
export async function writeRegion(
  storage: Storage,
  prefix: string,
  info: VolumeInfo,
  scaleIndex: number,
  offset: Vec3,
  volume: Volume,
  options: WriteOptions = {},
): Promise<void> {
  await writeChunks(storage, prefix, info, scaleIndex, offset, volume, options, () => {});
}

/** Integer factor between two consecutive scales, or an error naming the scale. */
function stepBetween(prev: ScaleInfo, next: ScaleInfo, index: number): Vec3 {
  const step = [0, 1, 2].map((d) => next.resolution[d] / prev.resolution[d]);
  const rounded = step.map(Math.round) as Vec3;
  const ok = rounded.every((r, d) => r >= 1 && Math.abs(step[d] - r) < 1e-6 && next.size[d] === Math.ceil(prev.size[d] / r));
  if (!ok) {
    throw new PrecomputedError("invalid_argument", "scale is not an integer downsampling of the previous one (resolution and size)", `scales[${index}]`);
  }
  return rounded;
}

/**
 * Writes `info`, then every scale: scale 0 is `volume` (its shape must be scales[0].size); each next scale
 * is downsampled from the previous one, by block mean for images and block mode for segmentations.
 */
export async function writeVolume(
  storage: Storage,
  prefix: string,
  infoIn: VolumeInfo,
  volume: Volume,
  options: WriteVolumeOptions = {},
): Promise<void> {
  const info = validateInfo(infoIn);
  checkVolumeMatches(info, volume);
  if (!volume.shape.every((s, d) => s === info.scales[0].size[d])) {
    invalid(`volume shape [${volume.shape.join(", ")}] differs from scales[0].size [${info.scales[0].size.join(", ")}]`);
  }
  const steps = info.scales.map((s, i) => (i === 0 ? ([1, 1, 1] as Vec3) : stepBetween(info.scales[i - 1], s, i)));
  let total = 0;
  info.scales.forEach((s, i) => {
    const chunk = scaleAt(info, i).chunk_sizes[0];
    total += s.size.reduce((n, size, d) => n * Math.ceil(size / chunk[d]), 1);
  });
  const downsample = info.type === "segmentation" ? downsampleMode : downsampleMean;
  await storage.put(joinKey(prefix, "info"), JSON.stringify(info, null, 1));
  let done = 0;
  let current = volume;
  for (let i = 0; i < info.scales.length; i++) {
    if (i > 0) current = downsample(current, steps[i]);
    await writeChunks(storage, prefix, info, i, info.scales[i].voxel_offset, current, options, () => {
      done++;
      options.onProgress?.(done, total);
    });
  }
}

/**
 * Reads [start, end) of scale `scaleIndex`, assembling it from the chunks it touches. A missing chunk
 * reads as zeros, as in Neuroglancer.
 */
export async function readRegion(
  storage: Storage,
  prefix: string,
  info: VolumeInfo,
  scaleIndex: number,
  start: Vec3,
  end: Vec3,
): Promise<Volume> {
  const scale = scaleAt(info, scaleIndex);
  const volumeEnd = add(scale.voxel_offset, scale.size);
  for (let d = 0; d < 3; d++) {
    if (!Number.isSafeInteger(start[d]) || !Number.isSafeInteger(end[d]) || start[d] < scale.voxel_offset[d] || end[d] > volumeEnd[d] || start[d] >= end[d]) {
      invalid(`region [${start.join(", ")}]-[${end.join(", ")}] is empty or outside the scale's bounds`);
    }
  }
  const chunk = scale.chunk_sizes[0];
  const channels = info.num_channels;
  const out = emptyVolume(info.data_type, sub(end, start), channels);
  await pool(boxesIn(start, end, chunk, scale.voxel_offset), CONCURRENCY, async (box: ChunkBox) => {
    const chunkStart = [0, 1, 2].map(
      (d) => scale.voxel_offset[d] + Math.floor((box.start[d] - scale.voxel_offset[d]) / chunk[d]) * chunk[d],
    ) as Vec3;
    const chunkEnd = [0, 1, 2].map((d) => Math.min(chunkStart[d] + chunk[d], volumeEnd[d])) as Vec3;
    const key = joinKey(prefix, chunkKey(scale, chunkStart, chunkEnd));
    const bytes = await storage.get(key);
    if (!bytes) return;
    let part: Volume;
    try {
      part = await decodeChunk(scale.encoding, bytes, {
        dataType: info.data_type,
        shape: sub(chunkEnd, chunkStart),
        channels,
        blockSize: scale.compressed_segmentation_block_size,
      });
    } catch (e) {
      if (e instanceof PrecomputedError && e.path === undefined) {
        throw new PrecomputedError(e.code, e.message, key, { cause: e });
      }
      throw e;
    }
    copyBox(part, sub(box.start, chunkStart), out, sub(box.start, start), sub(box.end, box.start));
  });
  return out;
}
