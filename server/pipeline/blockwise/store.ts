/**
 * A temporary chunked volume on local disk: one raw file per block (x fastest, host byte order), so a pass can
 * re-read any box without holding the volume. Lives in the run's staging folder and is removed before the
 * rename, so it never reaches the output.
 */
import { appendFileSync, closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Vec3 } from "../../../precomputed/array.js";

export type StoreArray = Uint8Array | Uint16Array | Uint32Array;
export type StoreType = "uint8" | "uint16" | "uint32";

const CTORS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array } as const;

export class BlockStore<T extends StoreArray = StoreArray> {
  private readonly bytes: number;

  constructor(
    readonly dir: string,
    readonly shape: Vec3,
    readonly blockShape: Vec3,
    readonly type: StoreType,
  ) {
    this.bytes = CTORS[type].BYTES_PER_ELEMENT;
    mkdirSync(dir, { recursive: true });
  }

  allocate(n: number): T {
    return new CTORS[this.type](n) as T;
  }

  /** Extent of the block starting at `origin` (a multiple of blockShape), clipped to the volume. */
  blockExtent(origin: Vec3): Vec3 {
    return [0, 1, 2].map((d) => Math.min(this.blockShape[d], this.shape[d] - origin[d])) as Vec3;
  }

  private file(origin: Vec3): string {
    const [i, j, k] = [0, 1, 2].map((d) => Math.floor(origin[d] / this.blockShape[d]));
    return path.join(this.dir, `${k}_${j}_${i}.raw`);
  }

  writeBlock(origin: Vec3, data: StoreArray): void {
    const e = this.blockExtent(origin);
    if (data.length !== e[0] * e[1] * e[2] || data.BYTES_PER_ELEMENT !== this.bytes) {
      throw new RangeError(`block at [${origin}] needs ${e.join("x")} ${this.type} voxels, got ${data.length}`);
    }
    writeFileSync(this.file(origin), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  /**
   * Section z of the whole volume (x fastest), cut into the blocks of its block layer. Sections must come in
   * order; the first section of a layer starts its block files afresh.
   */
  appendSection(z: number, section: StoreArray): void {
    const [nx, ny] = this.shape;
    const [bx, by, bz] = this.blockShape;
    const fresh = z % bz === 0;
    for (let oy = 0; oy < ny; oy += by) {
      for (let ox = 0; ox < nx; ox += bx) {
        const w = Math.min(bx, nx - ox);
        const h = Math.min(by, ny - oy);
        const tile = this.allocate(w * h);
        for (let y = 0; y < h; y++) tile.set(section.subarray(ox + nx * (oy + y), ox + nx * (oy + y) + w), w * y);
        const file = this.file([ox, oy, z - (z % bz)]);
        const bytes = new Uint8Array(tile.buffer, 0, tile.byteLength);
        if (fresh) writeFileSync(file, bytes);
        else appendFileSync(file, bytes);
      }
    }
  }

  readBlock(origin: Vec3): T {
    return this.readBox(origin, this.blockExtent(origin));
  }

  /** Any box inside the volume, assembled from the blocks it overlaps (one read per block section). */
  readBox(origin: Vec3, extent: Vec3): T {
    const [ex, ey, ez] = extent;
    const out = this.allocate(ex * ey * ez);
    const lo = [0, 1, 2].map((d) => Math.floor(origin[d] / this.blockShape[d]) * this.blockShape[d]);
    for (let bz0 = lo[2]; bz0 < origin[2] + ez; bz0 += this.blockShape[2]) {
      for (let by0 = lo[1]; by0 < origin[1] + ey; by0 += this.blockShape[1]) {
        for (let bx0 = lo[0]; bx0 < origin[0] + ex; bx0 += this.blockShape[0]) {
          this.copyFromBlock([bx0, by0, bz0], origin, extent, out);
        }
      }
    }
    return out;
  }

  private copyFromBlock(block: Vec3, origin: Vec3, extent: Vec3, out: T): void {
    const be = this.blockExtent(block);
    const a = [0, 1, 2].map((d) => Math.max(block[d], origin[d]));
    const b = [0, 1, 2].map((d) => Math.min(block[d] + be[d], origin[d] + extent[d]));
    if (a.some((v, d) => v >= b[d])) return;
    const rows = b[1] - a[1];
    const buf = this.allocate(rows * be[0]);
    const view = new Uint8Array(buf.buffer);
    const fd = openSync(this.file(block), "r");
    try {
      for (let z = a[2]; z < b[2]; z++) {
        const at = ((z - block[2]) * be[1] + (a[1] - block[1])) * be[0] * this.bytes;
        const got = readSync(fd, view, 0, view.length, at);
        if (got !== view.length) throw new RangeError(`block file ${this.file(block)} is short`);
        for (let y = 0; y < rows; y++) {
          const src = y * be[0] + (a[0] - block[0]);
          const dst = (a[0] - origin[0]) + extent[0] * (a[1] + y - origin[1] + extent[1] * (z - origin[2]));
          out.set(buf.subarray(src, src + b[0] - a[0]), dst);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Block origins in z, y, x order. */
export function* blockOrigins(shape: Vec3, blockShape: Vec3): Generator<Vec3> {
  for (let z = 0; z < shape[2]; z += blockShape[2]) {
    for (let y = 0; y < shape[1]; y += blockShape[1]) {
      for (let x = 0; x < shape[0]; x += blockShape[0]) yield [x, y, z];
    }
  }
}
