import { BYTES_PER_VOXEL, allocate, dataTypeOf, type DataType, type Vec3, type Volume, type VoxelArray } from "../array.js";
import { PrecomputedError } from "../errors.js";

/** What a chunk codec needs beyond the voxels; which fields matter depends on the encoding. */
export interface EncodeOptions {
  /** compressed_segmentation block size (the scale's `compressed_segmentation_block_size`). */
  blockSize?: Vec3;
  /** jpeg quality 1..100. */
  jpegQuality?: number;
}

/** The chunk's geometry: chunk files do not record it, the info and the chunk key do. */
export interface DecodeParams {
  dataType: DataType;
  shape: Vec3;
  channels: number;
  blockSize?: Vec3;
}

/** Async because jpeg goes through sharp; the others resolve at once. */
export interface ChunkCodec {
  readonly dataTypes: readonly DataType[];
  encode(volume: Volume, options: EncodeOptions): Promise<Uint8Array>;
  decode(bytes: Uint8Array, params: DecodeParams): Promise<Volume>;
}

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function voxelCount(shape: Vec3): number {
  return shape[0] * shape[1] * shape[2];
}

export function badChunk(message: string): never {
  throw new PrecomputedError("invalid_chunk", message);
}

export function badArgument(message: string): never {
  throw new PrecomputedError("invalid_argument", message);
}

function checkShape(shape: readonly number[], what: string): void {
  if (shape.length !== 3 || !shape.every((n) => Number.isSafeInteger(n) && n > 0)) {
    badArgument(`${what} must be 3 positive integers, got [${shape.join(", ")}]`);
  }
}

/** Returns the channel count after checking that data length, shape and channels agree. */
export function checkVolume(volume: Volume, dataTypes: readonly DataType[], encoding: string): number {
  checkShape(volume.shape, "volume shape");
  const channels = volume.channels ?? 1;
  if (!Number.isSafeInteger(channels) || channels < 1) badArgument(`channels must be a positive integer, got ${channels}`);
  const dt = dataTypeOf(volume.data);
  if (!dataTypes.includes(dt)) badArgument(`${encoding} cannot store ${dt} (supports ${dataTypes.join(", ")})`);
  const expected = voxelCount(volume.shape) * channels;
  if (volume.data.length !== expected) {
    badArgument(`volume data has ${volume.data.length} elements, shape x channels needs ${expected}`);
  }
  return channels;
}

export function checkDecodeParams(params: DecodeParams, dataTypes: readonly DataType[], encoding: string): void {
  checkShape(params.shape, "chunk shape");
  if (!Number.isSafeInteger(params.channels) || params.channels < 1) badArgument(`channels must be a positive integer`);
  if (!dataTypes.includes(params.dataType)) badArgument(`${encoding} cannot hold ${params.dataType}`);
}

/** Byte view of an array in little-endian order (a copy with bytes swapped on a big-endian host). */
export function toLittleEndianBytes(data: VoxelArray): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return LITTLE_ENDIAN ? bytes : swapBytes(bytes, data.BYTES_PER_ELEMENT);
}

/**
 * Typed array of `dataType` from little-endian bytes. Always copies: the input may be unaligned
 * (a Buffer slice) and callers may keep mutating it.
 */
export function fromLittleEndianBytes(bytes: Uint8Array, dataType: DataType): VoxelArray {
  const width = BYTES_PER_VOXEL[dataType];
  if (bytes.length % width !== 0) badChunk(`${bytes.length} bytes is not a whole number of ${dataType} values`);
  const out = allocate(dataType, bytes.length / width);
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  outBytes.set(LITTLE_ENDIAN ? bytes : swapBytes(bytes, width));
  return out;
}

function swapBytes(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) {
    for (let b = 0; b < width; b++) out[i + b] = bytes[i + width - 1 - b];
  }
  return out;
}
