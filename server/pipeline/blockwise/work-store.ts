/**
 * A chunked raw volume in a Storage (a local folder or s3://): the work store that blockwise tasks share. One
 * object per block, `<name>/<k>_<j>_<i>.raw` (x fastest, host byte order) — the same names BlockStore uses on
 * disk, so a BlockStore filled in `<work folder>/<name>` is readable here without a copy. Tasks on any machine
 * read boxes from it with range reads and write whole blocks (one atomic put each).
 */
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import { PipelineError } from "../errors.js";
import type { StoreArray, StoreType } from "./store.js";

/** What a task needs to open a work volume: plain JSON. */
export type WorkVolumeSpec = {
  name: string;
  shape: Vec3;
  blockShape: Vec3;
  type: StoreType;
};

const CTORS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array } as const;

export function blockKey(spec: WorkVolumeSpec, origin: readonly number[]): string {
  const [i, j, k] = [0, 1, 2].map((d) => Math.floor(origin[d] / spec.blockShape[d]));
  return `${spec.name}/${k}_${j}_${i}.raw`;
}

export class WorkVolume<T extends StoreArray = StoreArray> {
  private readonly bytes: number;

  constructor(
    readonly storage: Storage,
    readonly spec: WorkVolumeSpec,
  ) {
    this.bytes = CTORS[spec.type].BYTES_PER_ELEMENT;
  }

  allocate(n: number): T {
    return new CTORS[this.spec.type](n) as T;
  }

  blockExtent(origin: readonly number[]): Vec3 {
    return [0, 1, 2].map((d) => Math.min(this.spec.blockShape[d], this.spec.shape[d] - origin[d])) as Vec3;
  }

  async writeBlock(origin: Vec3, data: StoreArray): Promise<void> {
    const e = this.blockExtent(origin);
    if (data.length !== e[0] * e[1] * e[2] || data.BYTES_PER_ELEMENT !== this.bytes) {
      throw new RangeError(`work block ${blockKey(this.spec, origin)} needs ${e.join("x")} ${this.spec.type} voxels, got ${data.length}`);
    }
    await this.storage.put(blockKey(this.spec, origin), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  async readBlock(origin: Vec3): Promise<T> {
    return this.readBox(origin, this.blockExtent(origin));
  }

  /** Any box inside the volume: one range read per overlapping block (the span of z sections it needs). */
  async readBox(origin: readonly number[], extent: readonly number[]): Promise<T> {
    const [ex, ey, ez] = extent;
    const out = this.allocate(ex * ey * ez);
    const bs = this.spec.blockShape;
    const lo = [0, 1, 2].map((d) => Math.floor(origin[d] / bs[d]) * bs[d]);
    for (let bz0 = lo[2]; bz0 < origin[2] + ez; bz0 += bs[2]) {
      for (let by0 = lo[1]; by0 < origin[1] + ey; by0 += bs[1]) {
        for (let bx0 = lo[0]; bx0 < origin[0] + ex; bx0 += bs[0]) {
          await this.copyFromBlock([bx0, by0, bz0], origin, extent, out);
        }
      }
    }
    return out;
  }

  private async copyFromBlock(block: Vec3, origin: readonly number[], extent: readonly number[], out: T): Promise<void> {
    const be = this.blockExtent(block);
    const a = [0, 1, 2].map((d) => Math.max(block[d], origin[d]));
    const b = [0, 1, 2].map((d) => Math.min(block[d] + be[d], origin[d] + extent[d]));
    if (a.some((v, d) => v >= b[d])) return;
    const plane = be[0] * be[1];
    const first = ((a[2] - block[2]) * plane + (a[1] - block[1]) * be[0]) * this.bytes;
    const last = ((b[2] - 1 - block[2]) * plane + (b[1] - block[1]) * be[0]) * this.bytes;
    const key = blockKey(this.spec, block);
    const bytes = this.storage.getRange ? await this.storage.getRange(key, first, last) : (await this.storage.get(key))?.slice(first, last);
    if (!bytes || bytes.length !== last - first) {
      throw new PipelineError("stage_failed", `work block is missing or short (${bytes?.length ?? "no"} of ${last - first} bytes)`, key);
    }
    const own = new Uint8Array(bytes.length);
    own.set(bytes);
    const buf = new CTORS[this.spec.type](own.buffer) as StoreArray;
    const rowsPerZ = b[1] - a[1];
    for (let z = a[2]; z < b[2]; z++) {
      for (let y = 0; y < rowsPerZ; y++) {
        const src = (z - a[2]) * plane + y * be[0] + (a[0] - block[0]);
        const dst = a[0] - origin[0] + extent[0] * (a[1] + y - origin[1] + extent[1] * (z - origin[2]));
        out.set(buf.subarray(src, src + b[0] - a[0]), dst);
      }
    }
  }

  /** Deletes every block (and anything else under the volume's name). */
  async remove(): Promise<void> {
    await removePrefix(this.storage, `${this.spec.name}/`);
  }
}

export async function removePrefix(storage: Storage, prefix: string): Promise<void> {
  for (const key of await storage.list(prefix)) await storage.delete(key);
}
