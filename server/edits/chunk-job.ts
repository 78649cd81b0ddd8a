/**
 * The edit commit's chunk encoding as a worker kernel: while the editor's thread recomputes the coarser scales
 * of the pyramid, a pool worker encodes and gzips scale 0's changed chunks, reading the labels and block index
 * from shared memory (the editor keeps scale 0 on a SharedArrayBuffer when it uses a worker). Scale 0 holds
 * ~3/4 of an edit's chunks, so this takes most of the encoding off the critical path.
 */
import { gzipSync } from "node:zlib";
import type { Vec3 } from "../../precomputed/array.js";
import { encodeChunkU32, type BlockIndex } from "./cseg.js";

export interface ChunkJob {
  /** The scale's labels (a view on a SharedArrayBuffer: shared, not copied, across threads). */
  data: Uint32Array;
  shape: Vec3;
  block: Vec3;
  index?: BlockIndex;
  /** Chunks to encode: lo x, y, z, hi x, y, z per chunk. */
  boxes: Int32Array;
}

/** The chunks' gzip files, back to back (one buffer crosses the threads): chunk k is bytes [ends[k-1], ends[k]). */
export interface EncodedChunks {
  bytes: Uint8Array;
  ends: Int32Array;
}

/** Same bytes as the editor's own path: encodeChunkU32, then LocalStorage's gzip (default level). */
export function encodeChunkJob(job: ChunkJob): EncodedChunks {
  const files: Uint8Array[] = [];
  const ends = new Int32Array(job.boxes.length / 6);
  let total = 0;
  for (let k = 0; k < ends.length; k++) {
    const b = job.boxes.subarray(6 * k, 6 * k + 6);
    const gz = gzipSync(encodeChunkU32(job.data, job.shape, [b[0], b[1], b[2]], [b[3], b[4], b[5]], job.block, job.index));
    files.push(gz);
    total += gz.length;
    ends[k] = total;
  }
  // One fresh buffer: zlib's small outputs may sit in Node's shared pool, which must not be transferred.
  const bytes = new Uint8Array(total);
  for (let k = 0, at = 0; k < files.length; at = ends[k++]) bytes.set(files[k], at);
  return { bytes, ends };
}
