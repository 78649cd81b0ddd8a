/**
 * A chunked raw volume in a Storage (a local folder or s3://): the work store that blockwise tasks share. One
 * object per block, `<name>/<k>_<j>_<i>.raw` (x fastest, host byte order) — the same names BlockStore uses on
 * disk, so a BlockStore filled in `<work folder>/<name>` is readable here without a copy. Tasks on any machine
 * read boxes from it with range reads and write whole blocks (one atomic put each).
 *
 * codec "rle" (the label volume): each z section run-length encoded as uint32 (value, length) pairs after a table
 * of the sections' byte offsets. Labels are long runs, so a block is some 20-100x smaller than raw: an S3 request
 * costs milliseconds of CPU per MB (client and server), and object crops read a block's needed sections with
 * one range read (the offset table is read once per block and kept).
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
  /** Absent: raw. */
  codec?: "rle";
};

const CTORS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array } as const;
/** Section reads of one block in flight at once: hides S3 round trips without many open requests. */
const RANGES_IN_FLIGHT = 8;

export function blockKey(spec: WorkVolumeSpec, origin: readonly number[]): string {
  const [i, j, k] = [0, 1, 2].map((d) => Math.floor(origin[d] / spec.blockShape[d]));
  return `${spec.name}/${k}_${j}_${i}.raw`;
}

export class WorkVolume<T extends StoreArray = StoreArray> {
  private readonly bytes: number;
  /** rle: section byte offsets per block key (blocks never change once written). */
  private readonly sections = new Map<string, Uint32Array>();

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
    const bytes = this.spec.codec === "rle" ? encodeRle(data, e[0] * e[1], e[2]) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    await this.storage.put(blockKey(this.spec, origin), bytes);
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
    const rowsPerZ = b[1] - a[1];
    const key = blockKey(this.spec, block);
    const copyRows = (buf: StoreArray, z: number, at: number): void => {
      for (let y = 0; y < rowsPerZ; y++) {
        const src = at + y * be[0] + (a[0] - block[0]);
        const dst = a[0] - origin[0] + extent[0] * (a[1] + y - origin[1] + extent[1] * (z - origin[2]));
        out.set(buf.subarray(src, src + b[0] - a[0]), dst);
      }
    };
    if (this.spec.codec === "rle") {
      let offsets = this.sections.get(key);
      if (!offsets) {
        offsets = u32(await this.range(key, 0, 4 * (be[2] + 1), 4)).slice();
        this.sections.set(key, offsets);
      }
      const z0 = a[2] - block[2];
      const z1 = b[2] - block[2];
      const runs = u32(await this.range(key, offsets[z0], offsets[z1], 4));
      // Only the rows the box needs are filled; the rest of the section buffer is never read.
      const section = this.allocate(plane);
      const lo = (a[1] - block[1]) * be[0];
      const hi = (b[1] - block[1]) * be[0];
      for (let z = z0; z < z1; z++) {
        const end = (offsets[z + 1] - offsets[z0]) / 4;
        let p = 0;
        for (let r = (offsets[z] - offsets[z0]) / 4; r < end && p < hi; r += 2) {
          const q = p + runs[r + 1];
          if (q > lo) section.fill(runs[r], Math.max(p, lo), Math.min(q, hi));
          p = q;
        }
        copyRows(section, z + block[2], lo);
      }
      return;
    }
    // One range over the z span reads whole planes in between: for a box that covers a small part of each
    // section (an object's crop) that is most of the block, per crop. Then read section by section instead,
    // a few ranges at a time (round trips on S3), and only the rows the box needs.
    if (b[2] - a[2] > 1 && 2 * rowsPerZ <= be[1]) {
      const span = rowsPerZ * be[0] * this.bytes;
      const zs = Array.from({ length: b[2] - a[2] }, (_, k) => a[2] + k);
      for (let k = 0; k < zs.length; k += RANGES_IN_FLIGHT) {
        const group = zs.slice(k, k + RANGES_IN_FLIGHT);
        const parts = await Promise.all(
          group.map((z) => {
            const first = ((z - block[2]) * plane + (a[1] - block[1]) * be[0]) * this.bytes;
            return this.range(key, first, first + span, this.bytes).then((bytes) => this.view(bytes));
          }),
        );
        group.forEach((z, g) => copyRows(parts[g], z, 0));
      }
      return;
    }
    const first = ((a[2] - block[2]) * plane + (a[1] - block[1]) * be[0]) * this.bytes;
    const last = ((b[2] - 1 - block[2]) * plane + (b[1] - block[1]) * be[0]) * this.bytes;
    const buf = this.view(await this.range(key, first, last, this.bytes));
    for (let z = a[2]; z < b[2]; z++) copyRows(buf, z, (z - a[2]) * plane);
  }

  private view(bytes: Uint8Array): StoreArray {
    // Storage reads come from files or HTTP bodies, never from shared memory.
    return new CTORS[this.spec.type](bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / this.bytes);
  }

  /** Bytes [first, last) of a block, starting at a multiple of `align` in their buffer (copied only if not). */
  private async range(key: string, first: number, last: number, align: number): Promise<Uint8Array> {
    const bytes = this.storage.getRange ? await this.storage.getRange(key, first, last) : (await this.storage.get(key))?.slice(first, last);
    if (!bytes || bytes.length !== last - first) {
      throw new PipelineError("stage_failed", `work block is missing or short (${bytes?.length ?? "no"} of ${last - first} bytes)`, key);
    }
    if (bytes.byteOffset % align === 0) return bytes;
    const own = new Uint8Array(bytes.length);
    own.set(bytes);
    return own;
  }

  /** Deletes every block (and anything else under the volume's name). */
  async remove(): Promise<void> {
    await removePrefix(this.storage, `${this.spec.name}/`);
  }
}

/** Storage reads come from files or HTTP bodies, never from shared memory. */
const u32 = (bytes: Uint8Array): Uint32Array => new Uint32Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / 4);

/** codec "rle": offsets of the nz sections (+ end) in bytes, then each section's (value, length) uint32 pairs. */
export function encodeRle(data: StoreArray, plane: number, nz: number): Uint8Array {
  let out = new Uint32Array(nz + 1 + 4096);
  let n = nz + 1;
  for (let z = 0; z < nz; z++) {
    out[z] = 4 * n;
    const end = (z + 1) * plane;
    for (let i = z * plane; i < end; ) {
      const v = data[i];
      let j = i + 1;
      while (j < end && data[j] === v) j++;
      if (n + 2 > out.length) {
        const grown = new Uint32Array(2 * out.length);
        grown.set(out);
        out = grown;
      }
      out[n++] = v;
      out[n++] = j - i;
      i = j;
    }
  }
  out[nz] = 4 * n;
  return new Uint8Array(out.buffer, 0, 4 * n);
}

export async function removePrefix(storage: Storage, prefix: string): Promise<void> {
  // One request per object on S3: several in flight, or a large work prefix takes minutes of round trips.
  await eachLimited(await storage.list(prefix), 16, (key) => storage.delete(key));
}

/**
 * fn over every item with at most `limit` calls in flight (storage round trips overlap; CPU work in fn still
 * runs one piece at a time on the event loop). Rejects with the first error, after the calls in flight end.
 */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}
