import type { Vec3 } from "../../precomputed/array.js";
import { toLittleEndianBytes } from "../../precomputed/encodings/codec.js";

/**
 * compressed_segmentation of one uint32 chunk read straight out of a pyramid level: byte for byte what
 * precomputed/encodings/compressed-segmentation.ts writes for the same voxels (same block order, values
 * before each new table, identical tables shared, partial blocks padded with index 0), without the crop
 * copy, the generic number|bigint paths and a string key per uniform block. An edit re-encodes every chunk
 * its voxels touch (10^3-10^4 chunks for a 10^8-voxel object), so this is on the edit's critical path.
 */

/** Reused output words (one edit encodes one chunk at a time, synchronously); grown on demand. */
let words = new Uint32Array(1 << 16);

function ensure(n: number): void {
  if (n <= words.length) return;
  const bigger = new Uint32Array(Math.max(n, 2 * words.length));
  bigger.set(words);
  words = bigger;
}

function bitsFor(uniqueCount: number): number {
  if (uniqueCount <= 1) return 0;
  let bits = 1;
  while (2 ** bits < uniqueCount) bits *= 2;
  return bits;
}

/** Offsets in block headers are 24-bit. */
const MAX_OFFSET = 1 << 24;

/** Encodes [lo, hi) of `src` (shape `shape`, x fastest) as one single-channel chunk. */
export function encodeChunkU32(src: Uint32Array, shape: Vec3, lo: Vec3, hi: Vec3, block: Vec3): Uint8Array {
  const [nx, ny] = shape;
  const [sx, sy, sz] = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const [bx, by, bz] = block;
  const grid = [Math.ceil(sx / bx), Math.ceil(sy / by), Math.ceil(sz / bz)];
  const blockVolume = bx * by * bz;
  const nBlocks = grid[0] * grid[1] * grid[2];
  // Channel offset word, then the block headers.
  let length = 1 + 2 * nBlocks;
  ensure(length);
  words.fill(0, 0, length);
  words[0] = 1;
  const base = 1;
  let header = base;
  const single = new Map<number, number>();
  const multi = new Map<string, number>();
  const scratch = new Uint32Array(blockVolume);
  for (let gz = 0; gz < grid[2]; gz++)
    for (let gy = 0; gy < grid[1]; gy++)
      for (let gx = 0; gx < grid[0]; gx++) {
        const x0 = gx * bx;
        const y0 = gy * by;
        const z0 = gz * bz;
        const ax = Math.min(bx, sx - x0);
        const ay = Math.min(by, sy - y0);
        const az = Math.min(bz, sz - z0);
        const first = src[lo[0] + x0 + nx * (lo[1] + y0 + ny * (lo[2] + z0))];
        let uniform = true;
        for (let z = 0; z < az && uniform; z++)
          for (let y = 0; y < ay; y++) {
            const row = lo[0] + x0 + nx * (lo[1] + y0 + y + ny * (lo[2] + z0 + z));
            let x = 0;
            while (x < ax && src[row + x] === first) x++;
            if (x < ax) {
              uniform = false;
              break;
            }
          }
        let tableOffset: number | undefined;
        let bits = 0;
        const valuesAt = length;
        if (uniform) {
          tableOffset = single.get(first);
          if (tableOffset === undefined) {
            tableOffset = length - base;
            ensure(length + 1);
            words[length++] = first;
            single.set(first, tableOffset);
          }
        } else {
          let k = 0;
          for (let z = 0; z < az; z++)
            for (let y = 0; y < ay; y++) {
              const row = lo[0] + x0 + nx * (lo[1] + y0 + y + ny * (lo[2] + z0 + z));
              for (let x = 0; x < ax; x++) scratch[k++] = src[row + x];
            }
          const sorted = scratch.slice(0, k).sort();
          let u = 0;
          for (let i = 0; i < k; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[u++] = sorted[i];
          const unique = sorted.subarray(0, u);
          bits = bitsFor(u);
          const encodedWords = Math.ceil((bits * blockVolume) / 32);
          ensure(length + encodedWords + u);
          words.fill(0, length, length + encodedWords);
          length += encodedWords;
          k = 0;
          for (let z = 0; z < az; z++)
            for (let y = 0; y < ay; y++)
              for (let x = 0; x < ax; x++) {
                const v = scratch[k++];
                let a = 0;
                let b = u - 1;
                while (a < b) {
                  const mid = (a + b) >>> 1;
                  if (unique[mid] < v) a = mid + 1;
                  else b = mid;
                }
                const bit = bits * (x + bx * (y + by * z));
                words[valuesAt + (bit >>> 5)] |= a << (bit & 31);
              }
          const key = unique.join(",");
          tableOffset = multi.get(key);
          if (tableOffset === undefined) {
            tableOffset = length - base;
            words.set(unique, length);
            length += u;
            multi.set(key, tableOffset);
          }
        }
        const valuesOffset = valuesAt - base;
        if (tableOffset >= MAX_OFFSET || valuesOffset >= MAX_OFFSET) throw new Error("chunk too large for compressed_segmentation's 24-bit offsets; use smaller chunks");
        words[header++] = (tableOffset | (bits << 24)) >>> 0;
        words[header++] = valuesOffset;
      }
  return toLittleEndianBytes(words.slice(0, length));
}
