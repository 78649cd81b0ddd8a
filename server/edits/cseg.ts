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

/**
 * Encodes [lo, hi) of `src` (shape `shape`, x fastest) as one single-channel chunk. With `index` (the
 * scale's block index, up to date; `lo` on its grid) uniform blocks are taken from it unread.
 */
export function encodeChunkU32(src: Uint32Array, shape: Vec3, lo: Vec3, hi: Vec3, block: Vec3, index?: BlockIndex): Uint8Array {
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
  const unique = new Uint32Array(blockVolume);
  const ig = index?.grid ?? [0, 0, 0];
  const i0 = [lo[0] / bx, lo[1] / by, lo[2] / bz];
  for (let gz = 0; gz < grid[2]; gz++)
    for (let gy = 0; gy < grid[1]; gy++)
      for (let gx = 0; gx < grid[0]; gx++) {
        const x0 = gx * bx;
        const y0 = gy * by;
        const z0 = gz * bz;
        const ax = Math.min(bx, sx - x0);
        const ay = Math.min(by, sy - y0);
        const az = Math.min(bz, sz - z0);
        let first = src[lo[0] + x0 + nx * (lo[1] + y0 + ny * (lo[2] + z0))];
        let uniform = true;
        if (index) {
          const b = i0[0] + gx + ig[0] * (i0[1] + gy + ig[1] * (i0[2] + gz));
          uniform = index.uniform[b] === 1;
          first = index.values[b];
        } else {
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
          // The block's labels, and its distinct ones as met (most blocks hold two or three: a short list
          // checked on each change of label, then sorted, instead of sorting all its voxels).
          let k = 0;
          let u = 0;
          let last = src[lo[0] + x0 + nx * (lo[1] + y0 + ny * (lo[2] + z0))];
          unique[u++] = last;
          for (let z = 0; z < az; z++)
            for (let y = 0; y < ay; y++) {
              const row = lo[0] + x0 + nx * (lo[1] + y0 + y + ny * (lo[2] + z0 + z));
              for (let x = 0; x < ax; x++) {
                const v = src[row + x];
                scratch[k++] = v;
                if (v === last) continue;
                last = v;
                let j = 0;
                while (j < u && unique[j] !== v) j++;
                if (j === u) unique[u++] = v;
              }
            }
          const sorted = unique.subarray(0, u).sort();
          bits = bitsFor(u);
          const encodedWords = Math.ceil((bits * blockVolume) / 32);
          ensure(length + encodedWords + u);
          words.fill(0, length, length + encodedWords);
          length += encodedWords;
          k = 0;
          let prev = sorted[0];
          let prevAt = 0;
          for (let z = 0; z < az; z++)
            for (let y = 0; y < ay; y++)
              for (let x = 0; x < ax; x++) {
                const v = scratch[k++];
                if (v !== prev) {
                  let a = 0;
                  let b = u - 1;
                  while (a < b) {
                    const mid = (a + b) >>> 1;
                    if (sorted[mid] < v) a = mid + 1;
                    else b = mid;
                  }
                  prev = v;
                  prevAt = a;
                }
                const bit = bits * (x + bx * (y + by * z));
                words[valuesAt + (bit >>> 5)] |= prevAt << (bit & 31);
              }
          const key = sorted.join(",");
          tableOffset = multi.get(key);
          if (tableOffset === undefined) {
            tableOffset = length - base;
            words.set(sorted, length);
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

/**
 * Which compressed_segmentation blocks of one scale hold a single label, and which: one flag and one value
 * per block of the scale's block grid (blocks cut at the volume's edge count only their voxels). Kept in step
 * with the pyramid by each edit (updateBlocks), it lets the encoder write a uniform block's header and table
 * without reading its voxels; only blocks with more than one label are read. Valid when every chunk size is
 * a multiple of the block size, so each chunk's blocks are cells of this one grid.
 */
export interface BlockIndex {
  block: Vec3;
  grid: Vec3;
  /** 1: the block holds one label, `values` says which. */
  uniform: Uint8Array;
  values: Uint32Array;
}

/** The block index of a scale (`shape`, x fastest), by one pass over its voxels. */
export function indexBlocks(src: Uint32Array, shape: Vec3, block: Vec3): BlockIndex {
  const grid = [0, 1, 2].map((d) => Math.ceil(shape[d] / block[d])) as Vec3;
  const n = grid[0] * grid[1] * grid[2];
  const index: BlockIndex = { block, grid, uniform: new Uint8Array(n), values: new Uint32Array(n) };
  for (let b = 0; b < n; b++) checkBlock(index, src, shape, b);
  return index;
}

/** Reads block b's voxels and records whether it is uniform. */
function checkBlock(index: BlockIndex, src: Uint32Array, shape: Vec3, b: number): void {
  const [nx, ny] = shape;
  const [bx, by, bz] = index.block;
  const [gx, gy] = index.grid;
  const x0 = (b % gx) * bx;
  const y0 = (Math.floor(b / gx) % gy) * by;
  const z0 = Math.floor(b / (gx * gy)) * bz;
  const x1 = Math.min(shape[0], x0 + bx);
  const y1 = Math.min(shape[1], y0 + by);
  const z1 = Math.min(shape[2], z0 + bz);
  const first = src[x0 + nx * (y0 + ny * z0)];
  for (let z = z0; z < z1; z++)
    for (let y = y0; y < y1; y++) {
      const row = nx * (y + ny * z);
      for (let x = row + x0, end = row + x1; x < end; x++)
        if (src[x] !== first) {
          index.uniform[b] = 0;
          return;
        }
    }
  index.uniform[b] = 1;
  index.values[b] = first;
}

/** Per-update scratch of updateBlocks, kept between edits (one per index). */
const scratchOf = new WeakMap<BlockIndex, { count: Int32Array; next: Uint32Array; mixed: Uint8Array; touched: Int32Array }>();

/**
 * Brings `index` up to date after the voxels of `segs` changed in `src`: (row, x0, x1, old, new) x-segments,
 * row = y + ny * z, each voxel of a segment went from old to new. A uniform block whose every voxel changed
 * to one label is uniform in it; a uniform block changed in part is mixed (its other voxels kept the old
 * label); any other touched block (mixed before, or changed to several labels) is read again.
 */
export function updateBlocks(index: BlockIndex, src: Uint32Array, shape: Vec3, segs: Int32Array): void {
  const [bx, by, bz] = index.block;
  const [gx, gy] = index.grid;
  const ny = shape[1];
  const n = index.uniform.length;
  let s = scratchOf.get(index);
  if (!s) {
    s = { count: new Int32Array(n), next: new Uint32Array(n), mixed: new Uint8Array(n), touched: new Int32Array(n) };
    scratchOf.set(index, s);
  }
  const { count, next, mixed, touched } = s;
  let nTouched = 0;
  for (let k = 0; k < segs.length; k += 5) {
    const y = segs[k] % ny;
    const z = (segs[k] - y) / ny;
    const x0 = segs[k + 1];
    const x1 = segs[k + 2];
    const same = segs[k + 3] === segs[k + 4];
    const nw = segs[k + 4] >>> 0;
    const rowBase = gx * (Math.floor(y / by) + gy * Math.floor(z / bz));
    const c0 = Math.floor(x0 / bx);
    const c1 = Math.floor((x1 - 1) / bx);
    for (let c = c0; c <= c1; c++) {
      const b = rowBase + c;
      // Whole blocks in the middle, cut ones at the segment's ends.
      const len = c > c0 && c < c1 ? bx : Math.min(x1, (c + 1) * bx) - Math.max(x0, c * bx);
      if (count[b] === 0) {
        touched[nTouched++] = b;
        next[b] = nw;
        mixed[b] = same ? 1 : 0;
      } else if (next[b] !== nw || same) mixed[b] = 1;
      count[b] += len;
    }
  }
  const [sx, sy, sz] = shape;
  for (let t = 0; t < nTouched; t++) {
    const b = touched[t];
    const cx = b % gx;
    const cy = Math.floor(b / gx) % gy;
    const cz = Math.floor(b / (gx * gy));
    const voxels = (Math.min(sx, (cx + 1) * bx) - cx * bx) * (Math.min(sy, (cy + 1) * by) - cy * by) * (Math.min(sz, (cz + 1) * bz) - cz * bz);
    if (index.uniform[b] === 1 && mixed[b] === 0) {
      if (count[b] === voxels) index.values[b] = next[b];
      else index.uniform[b] = 0;
    } else checkBlock(index, src, shape, b);
    count[b] = 0;
  }
}
