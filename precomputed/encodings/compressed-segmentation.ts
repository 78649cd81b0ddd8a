import type { DataType, Vec3, Volume } from "../array.js";
import { PrecomputedError } from "../errors.js";
import {
  badArgument,
  badChunk,
  checkDecodeParams,
  checkVolume,
  fromLittleEndianBytes,
  toLittleEndianBytes,
  voxelCount,
  type ChunkCodec,
  type DecodeParams,
  type EncodeOptions,
} from "./codec.js";

/**
 * Neuroglancer's compressed_segmentation encoding, written from its spec
 * (neuroglancer/src/sliceview/compressed_segmentation/README.md and the precomputed volume.md):
 *
 *   [channel offsets: one uint32 per channel, in words from the start of the chunk]
 *   per channel: gx*gy*gz block headers (x fastest), 2 words each:
 *     word 0 = lookupTableOffset (24 bits) | encodedBits << 24
 *     word 1 = encodedValuesOffset
 *   offsets count 32-bit words from the start of that channel's data; then encoded values and tables.
 *
 * Inside a block the value at (x, y, z) is the table index at bit `bits * (x + bx * (y + by * z))`,
 * packed little-endian in 32-bit words, with bits in {0, 1, 2, 4, 8, 16, 32}. Tables hold the block's
 * distinct values sorted ascending (uint64 as low word, high word); identical tables are written once.
 * Partial blocks at the chunk's upper edges are encoded at full block size with padding index 0.
 */

const CSEG_TYPES: readonly DataType[] = ["uint32", "uint64"];
const VALID_BITS: ReadonlySet<number> = new Set([0, 1, 2, 4, 8, 16, 32]);
/** Offsets in block headers are 24-bit (Neuroglancer masks encodedValuesOffset to 24 bits as well). */
const MAX_OFFSET = 1 << 24;

/** The structural part of Uint32Array / BigUint64Array the generic encoder needs. */
interface Labels<T extends number | bigint> {
  readonly length: number;
  [index: number]: T;
  subarray(begin?: number, end?: number): Labels<T>;
  slice(begin?: number, end?: number): Labels<T>;
  sort(): Labels<T>;
  join(separator?: string): string;
}

/** Appends 32-bit words; unused capacity stays zero, which the bit packing relies on. */
class WordBuilder {
  data = new Uint32Array(1024);
  length = 0;
  grow(count: number): number {
    const at = this.length;
    const needed = at + count;
    if (needed > this.data.length) {
      const bigger = new Uint32Array(Math.max(needed, this.data.length * 2));
      bigger.set(this.data.subarray(0, at));
      this.data = bigger;
    }
    this.length = needed;
    return at;
  }
}

function bitsFor(uniqueCount: number): number {
  if (uniqueCount <= 1) return 0;
  let bits = 1;
  while (2 ** bits < uniqueCount) bits *= 2;
  return bits;
}

function sortedUnique<T extends number | bigint>(values: Labels<T>): T[] {
  // Most blocks of a segmentation hold one label: no copy, no sort.
  const first = values[0];
  let uniform = true;
  for (let i = 1; i < values.length && uniform; i++) uniform = values[i] === first;
  if (uniform) return values.length === 0 ? [] : [first];
  const sorted = values.slice().sort();
  const out: T[] = [];
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) out.push(sorted[i]);
  }
  return out;
}

function indexOf<T extends number | bigint>(sorted: readonly T[], value: T): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function encodeChannel<T extends number | bigint>(
  out: WordBuilder,
  data: Labels<T>,
  channelStart: number,
  shape: Vec3,
  block: Vec3,
  scratch: Labels<T>,
  writeTable: (out: WordBuilder, values: readonly T[]) => void,
): void {
  const base = out.length;
  const [sx, sy, sz] = shape;
  const [bx, by, bz] = block;
  const grid = [Math.ceil(sx / bx), Math.ceil(sy / by), Math.ceil(sz / bz)];
  const blockVolume = bx * by * bz;
  let header = out.grow(2 * grid[0] * grid[1] * grid[2]);
  const tables = new Map<string, number>();

  for (let gz = 0; gz < grid[2]; gz++) {
    for (let gy = 0; gy < grid[1]; gy++) {
      for (let gx = 0; gx < grid[0]; gx++) {
        const x0 = gx * bx, y0 = gy * by, z0 = gz * bz;
        const ax = Math.min(bx, sx - x0), ay = Math.min(by, sy - y0), az = Math.min(bz, sz - z0);
        const count = ax * ay * az;
        let k = 0;
        for (let z = 0; z < az; z++) {
          for (let y = 0; y < ay; y++) {
            const row = channelStart + x0 + sx * (y0 + y + sy * (z0 + z));
            for (let x = 0; x < ax; x++) scratch[k++] = data[row + x];
          }
        }
        const blockVals = scratch.subarray(0, count);
        const unique = sortedUnique(blockVals);
        const bits = bitsFor(unique.length);
        const encodedWords = Math.ceil((bits * blockVolume) / 32);
        const valuesAt = out.grow(encodedWords);
        if (bits > 0) {
          const words = out.data;
          k = 0;
          for (let z = 0; z < az; z++) {
            for (let y = 0; y < ay; y++) {
              for (let x = 0; x < ax; x++) {
                const bit = bits * (x + bx * (y + by * z));
                words[valuesAt + (bit >>> 5)] |= indexOf(unique, blockVals[k++]) << (bit & 31);
              }
            }
          }
        }
        const tableKey = unique.join(",");
        let tableOffset = tables.get(tableKey);
        if (tableOffset === undefined) {
          tableOffset = out.length - base;
          writeTable(out, unique);
          tables.set(tableKey, tableOffset);
        }
        const valuesOffset = valuesAt - base;
        if (tableOffset >= MAX_OFFSET || valuesOffset >= MAX_OFFSET) {
          throw new PrecomputedError("invalid_argument", "chunk too large for compressed_segmentation's 24-bit offsets; use smaller chunks");
        }
        out.data[header++] = (tableOffset | (bits << 24)) >>> 0;
        out.data[header++] = valuesOffset;
      }
    }
  }
}

const writeTable32 = (out: WordBuilder, values: readonly number[]): void => {
  const at = out.grow(values.length);
  for (let i = 0; i < values.length; i++) out.data[at + i] = values[i];
};

const writeTable64 = (out: WordBuilder, values: readonly bigint[]): void => {
  const at = out.grow(2 * values.length);
  for (let i = 0; i < values.length; i++) {
    out.data[at + 2 * i] = Number(values[i] & 0xffffffffn);
    out.data[at + 2 * i + 1] = Number(values[i] >> 32n);
  }
};

function checkBlockSize(blockSize: Vec3 | undefined): Vec3 {
  if (!blockSize) return badArgument("compressed_segmentation needs a block size");
  if (blockSize.length !== 3 || !blockSize.every((n) => Number.isSafeInteger(n) && n > 0)) {
    return badArgument(`block size must be 3 positive integers, got [${blockSize.join(", ")}]`);
  }
  return blockSize;
}

/** Words of the encoded chunk (channel header included). */
export function encodeCompressedSegmentation(volume: Volume, blockSize: Vec3 | undefined): Uint32Array {
  const channels = checkVolume(volume, CSEG_TYPES, "compressed_segmentation");
  const block = checkBlockSize(blockSize);
  const n = voxelCount(volume.shape);
  const out = new WordBuilder();
  out.grow(channels);
  for (let c = 0; c < channels; c++) {
    out.data[c] = out.length;
    const { data } = volume;
    const blockVolume = block[0] * block[1] * block[2];
    if (data instanceof Uint32Array) {
      encodeChannel<number>(out, data, c * n, volume.shape, block, new Uint32Array(blockVolume), writeTable32);
    } else if (data instanceof BigUint64Array) {
      encodeChannel<bigint>(out, data, c * n, volume.shape, block, new BigUint64Array(blockVolume), writeTable64);
    }
  }
  return out.data.slice(0, out.length);
}

function decodeChannel(
  words: Uint32Array,
  base: number,
  out: Uint32Array | BigUint64Array,
  channelStart: number,
  shape: Vec3,
  block: Vec3,
  channel: number,
): void {
  const wordsPerValue = out instanceof BigUint64Array ? 2 : 1;
  const [sx, sy, sz] = shape;
  const [bx, by, bz] = block;
  const grid = [Math.ceil(sx / bx), Math.ceil(sy / by), Math.ceil(sz / bz)];
  const blockVolume = bx * by * bz;
  const numBlocks = grid[0] * grid[1] * grid[2];
  if (base + 2 * numBlocks > words.length) {
    badChunk(`channel ${channel}: ${numBlocks} block headers at word ${base} run past the end (${words.length} words)`);
  }
  const indices = new Uint32Array(blockVolume);
  let blockIndex = 0;
  for (let gz = 0; gz < grid[2]; gz++) {
    for (let gy = 0; gy < grid[1]; gy++) {
      for (let gx = 0; gx < grid[0]; gx++, blockIndex++) {
        const h0 = words[base + 2 * blockIndex];
        const h1 = words[base + 2 * blockIndex + 1];
        const bits = h0 >>> 24;
        const where = `channel ${channel} block (${gx}, ${gy}, ${gz})`;
        if (!VALID_BITS.has(bits)) badChunk(`${where}: invalid encoded bits ${bits}`);
        const tableStart = base + (h0 & 0xffffff);
        const valuesStart = base + h1;
        const x0 = gx * bx, y0 = gy * by, z0 = gz * bz;
        const ax = Math.min(bx, sx - x0), ay = Math.min(by, sy - y0), az = Math.min(bz, sz - z0);
        let maxIndex = 0;
        if (bits > 0) {
          if (valuesStart + Math.ceil((bits * blockVolume) / 32) > words.length) {
            badChunk(`${where}: encoded values at word ${valuesStart} run past the end (${words.length} words)`);
          }
          const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
          let k = 0;
          for (let z = 0; z < az; z++) {
            for (let y = 0; y < ay; y++) {
              for (let x = 0; x < ax; x++) {
                const bit = bits * (x + bx * (y + by * z));
                const index = ((words[valuesStart + (bit >>> 5)] >>> (bit & 31)) & mask) >>> 0;
                indices[k++] = index;
                if (index > maxIndex) maxIndex = index;
              }
            }
          }
        }
        if (tableStart + (maxIndex + 1) * wordsPerValue > words.length) {
          badChunk(`${where}: lookup table entry ${maxIndex} at word ${tableStart} is past the end (${words.length} words)`);
        }
        let k = 0;
        for (let z = 0; z < az; z++) {
          for (let y = 0; y < ay; y++) {
            const row = channelStart + x0 + sx * (y0 + y + sy * (z0 + z));
            for (let x = 0; x < ax; x++) {
              const w = tableStart + (bits > 0 ? indices[k++] : 0) * wordsPerValue;
              if (out instanceof Uint32Array) out[row + x] = words[w];
              else out[row + x] = BigInt(words[w]) | (BigInt(words[w + 1]) << 32n);
            }
          }
        }
      }
    }
  }
}

/** Decodes the words of a chunk (channel header included) into a Volume of params.shape and params.channels. */
export function decodeCompressedSegmentation(words: Uint32Array, params: DecodeParams): Volume {
  checkDecodeParams(params, CSEG_TYPES, "compressed_segmentation");
  const block = checkBlockSize(params.blockSize);
  const { channels, shape } = params;
  if (words.length < channels) badChunk(`chunk of ${words.length} words cannot hold ${channels} channel offsets`);
  const n = voxelCount(shape);
  const out = params.dataType === "uint32" ? new Uint32Array(n * channels) : new BigUint64Array(n * channels);
  for (let c = 0; c < channels; c++) {
    const base = words[c];
    if (base < channels || base >= words.length) badChunk(`channel ${c} offset ${base} is outside the chunk (${words.length} words)`);
    decodeChannel(words, base, out, c * n, shape, block, c);
  }
  return { data: out, shape: [...shape], channels };
}

export const compressedSegmentationCodec: ChunkCodec = {
  dataTypes: CSEG_TYPES,

  async encode(volume: Volume, options: EncodeOptions): Promise<Uint8Array> {
    return toLittleEndianBytes(encodeCompressedSegmentation(volume, options.blockSize));
  },

  async decode(bytes: Uint8Array, params: DecodeParams): Promise<Volume> {
    checkDecodeParams(params, CSEG_TYPES, "compressed_segmentation");
    if (bytes.length % 4 !== 0) badChunk(`compressed_segmentation chunk is ${bytes.length} bytes, not a whole number of 32-bit words`);
    return decodeCompressedSegmentation(fromLittleEndianBytes(bytes, "uint32") as Uint32Array, params);
  },
};
