/**
 * Encodes an edit's scale-0 chunks on a worker thread while the editor's thread updates the coarser scales
 * (chunk-job.ts). Used for large segmentations only: below CHUNK_WORKER_MIN_VOXELS an edit's commit is short
 * on one thread, and a worker costs ~1 s of CPU to start. One worker serves every editor of the process and
 * stays up between edits (started with the first large editor, so its modules load before the first edit).
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import { KernelPool, requestedWorkers } from "../pipeline/workers/pool.js";
import type { EncodedChunks } from "./chunk-job.js";
import { chunkBoxes, fastEncoded } from "./changed-chunks.js";
import type { Pyramid } from "./pyramid.js";

export const CHUNK_WORKER_MIN_VOXELS = 1 << 23;

let pool: KernelPool | undefined;

function editorPool(): KernelPool {
  if (pool === undefined || pool.closed) pool = new KernelPool(1, { background: true, keepIdle: true });
  return pool;
}

function shared<T extends Uint8Array | Uint32Array>(a: T, make: (b: SharedArrayBuffer) => T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const out = make(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

export class ChunkEncoder {
  /** The worker has answered once (modules loaded, encoder compiled); until then edits encode on their thread. */
  private ready = false;

  private constructor(
    private readonly info: VolumeInfo,
    private readonly pyramid: Pyramid,
    private readonly pool: KernelPool,
  ) {
    // A first job on real chunks (read only) loads the worker and compiles the encoder on the layer's data.
    this.up = this.run(centreChunks(info, pyramid)).then(
      () => (this.ready = true),
      () => false,
    );
  }

  /** Resolves once the worker has answered its first job: true, or false if it failed. */
  readonly up: Promise<boolean>;

  /**
   * An encoder for the pyramid when it pays (or `workers` says so: 0 never, >= 1 always), else undefined.
   * Moves scale 0 and its block index onto shared memory (in place in the pyramid: same values).
   */
  static start(info: VolumeInfo, p: Pyramid, workers?: number): ChunkEncoder | undefined {
    const level = p.levels[0];
    const wanted = workers ?? (level.data.length >= CHUNK_WORKER_MIN_VOXELS ? Math.min(1, requestedWorkers()) : 0);
    if (wanted === 0 || !fastEncoded(info, 0)) return undefined;
    level.data = shared(level.data, (b) => new Uint32Array(b));
    const index = p.blocks?.[0];
    if (index) {
      index.uniform = shared(index.uniform, (b) => new Uint8Array(b));
      index.values = shared(index.values, (b) => new Uint32Array(b));
    }
    return new ChunkEncoder(info, p, editorPool());
  }

  /**
   * Scale 0's chunks holding a voxel of `segs0` (updateScale0's), encoded and gzipped on the worker; undefined
   * while the worker is not up yet (a cold worker would be slower than this thread).
   */
  encodeScale0(segs0: Int32Array): Promise<EncodedChunks> | undefined {
    if (!this.ready || this.pool.closed) return undefined;
    return this.run(chunkBoxes(this.info, this.pyramid, 0, segs0));
  }

  private run(boxes: Int32Array): Promise<EncodedChunks> {
    const level = this.pyramid.levels[0];
    const block = this.info.scales[0].compressed_segmentation_block_size as Vec3;
    return this.pool.run("editChunks", { data: level.data, shape: level.shape, block, index: this.pyramid.blocks?.[0], boxes }, [boxes.buffer as ArrayBuffer]);
  }
}

/** Up to 4 x 4 x 2 chunks of scale 0 around the volume's centre, as chunk boxes. */
function centreChunks(info: VolumeInfo, p: Pyramid): Int32Array {
  const shape = p.levels[0].shape;
  const chunk = info.scales[0].chunk_sizes[0];
  const boxes: number[] = [];
  const span = [4, 4, 2];
  const first = [0, 1, 2].map((d) => Math.max(0, Math.floor(shape[d] / 2 / chunk[d]) - span[d] / 2));
  for (let gz = first[2]; gz < first[2] + span[2] && gz * chunk[2] < shape[2]; gz++)
    for (let gy = first[1]; gy < first[1] + span[1] && gy * chunk[1] < shape[1]; gy++)
      for (let gx = first[0]; gx < first[0] + span[0] && gx * chunk[0] < shape[0]; gx++) {
        const lo = [gx * chunk[0], gy * chunk[1], gz * chunk[2]];
        boxes.push(...lo, ...lo.map((v, d) => Math.min(shape[d], v + chunk[d])));
      }
  return Int32Array.from(boxes);
}
