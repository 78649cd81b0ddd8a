import type { DataType, Volume } from "../array.js";
import { BYTES_PER_VOXEL } from "../array.js";
import {
  badChunk,
  checkDecodeParams,
  checkVolume,
  fromLittleEndianBytes,
  toLittleEndianBytes,
  voxelCount,
  type ChunkCodec,
  type DecodeParams,
} from "./codec.js";

const RAW_TYPES: readonly DataType[] = ["uint8", "uint16", "uint32", "uint64", "float32"];

/** Little-endian values, x fastest, then y, z, channel: exactly the Volume memory order. */
export const rawCodec: ChunkCodec = {
  dataTypes: RAW_TYPES,

  async encode(volume: Volume): Promise<Uint8Array> {
    checkVolume(volume, RAW_TYPES, "raw");
    return toLittleEndianBytes(volume.data).slice();
  },

  async decode(bytes: Uint8Array, params: DecodeParams): Promise<Volume> {
    checkDecodeParams(params, RAW_TYPES, "raw");
    const expected = voxelCount(params.shape) * params.channels * BYTES_PER_VOXEL[params.dataType];
    if (bytes.length !== expected) {
      badChunk(
        `raw chunk is ${bytes.length} bytes; ${params.shape.join("x")} x ${params.channels} channel(s) of ${params.dataType} is ${expected}`,
      );
    }
    return { data: fromLittleEndianBytes(bytes, params.dataType), shape: [...params.shape], channels: params.channels };
  },
};
