/**
 * A uint8 multi-page TIFF written page by page, for probability stacks: holding 7 class probability
 * volumes in memory until the end would cost 7 bytes per voxel for output that is only streamed through.
 * Same layout as tiff.ts's writeTiffStack (pixels first, contiguous, then the IFDs), written to a
 * temporary name and renamed by close(), so an interrupted run never leaves a complete-looking file.
 */
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { PipelineError } from "../errors.js";
import { tempPathFor } from "../tiff.js";

export class TiffPageWriter {
  private written = 0;

  private constructor(
    private readonly path: string,
    private readonly tmp: string,
    private fh: FileHandle | undefined,
    private readonly width: number,
    private readonly height: number,
    private readonly pages: number,
    private readonly description: string,
    private readonly pixelNm: [number, number] | undefined,
  ) {}

  /**
   * `description` is stored in the first page (ImageJ reads stack/hyperstack layout from it); `pixelNm`
   * becomes X/YResolution (pixels per nm, as writeTiffStack stores it) so viewers open the stack scaled.
   */
  static async open(path: string, width: number, height: number, pages: number, description: string, pixelNm?: [number, number]): Promise<TiffPageWriter> {
    const bytes = width * height * pages;
    if (8 + bytes + pages * 200 + description.length > 0xffffffff) {
      throw new PipelineError("stage_failed", `stack of ${pages} pages of ${width}x${height} exceeds classic TIFF's 4 GiB`, path);
    }
    const tmp = tempPathFor(path);
    let fh: FileHandle;
    try {
      fh = await open(tmp, "w");
      const header = Buffer.alloc(8);
      header.write("II", 0, "latin1");
      header.writeUInt16LE(42, 2);
      const end = 8 + bytes;
      header.writeUInt32LE(end + (end % 2), 4);
      await fh.write(header);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw new PipelineError("stage_failed", `cannot write TIFF: ${e instanceof Error ? e.message : String(e)}`, path, { cause: e });
    }
    return new TiffPageWriter(path, tmp, fh, width, height, pages, description, pixelNm);
  }

  async write(page: Uint8Array): Promise<void> {
    if (!this.fh) throw new PipelineError("stage_failed", "write after close", this.path);
    if (page.length !== this.width * this.height) throw new PipelineError("stage_failed", `page of ${page.length} bytes, expected ${this.width * this.height}`, this.path);
    if (this.written >= this.pages) throw new PipelineError("stage_failed", `more than the ${this.pages} pages announced`, this.path);
    await this.guard(() => (this.fh as FileHandle).write(page));
    this.written += 1;
  }

  async close(): Promise<void> {
    if (!this.fh) return;
    if (this.written !== this.pages) {
      await this.abort();
      throw new PipelineError("stage_failed", `${this.written} of ${this.pages} pages written`, this.path);
    }
    const fh = this.fh;
    await this.guard(async () => {
      const pageBytes = this.width * this.height;
      const dataEnd = 8 + pageBytes * this.pages;
      if (dataEnd % 2) await fh.write(Buffer.alloc(1));
      await fh.write(this.ifds(dataEnd + (dataEnd % 2)));
      await fh.close();
      this.fh = undefined;
      await rename(this.tmp, this.path);
    });
  }

  async abort(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.close().catch(() => undefined);
    await unlink(this.tmp).catch(() => undefined);
  }

  private async guard<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      await this.abort();
      throw new PipelineError("stage_failed", `cannot write TIFF: ${e instanceof Error ? e.message : String(e)}`, this.path, { cause: e });
    }
  }

  private ifds(start: number): Buffer {
    const desc = Buffer.from(`${this.description}\0`, "latin1");
    const descLen = desc.length + (desc.length % 2);
    const res = this.pixelNm;
    const n = res ? 15 : 13;
    const ifdSize = 2 + 12 * n + 4;
    const buf = Buffer.alloc(ifdSize * this.pages + descLen + (res ? 16 : 0));
    const pageBytes = this.width * this.height;
    const descAt = start + ifdSize * this.pages;
    const resAt = descAt + descLen;
    for (let z = 0; z < this.pages; z++) {
      const at = z * ifdSize;
      const entries: [number, number, number, number][] = [
        [254, 4, 1, 0],
        [256, 4, 1, this.width],
        [257, 4, 1, this.height],
        [258, 3, 1, 8],
        [259, 3, 1, 1],
        [262, 3, 1, 1],
        [270, 2, z === 0 ? desc.length : 1, z === 0 ? descAt : 0],
        [273, 4, 1, 8 + z * pageBytes],
        [277, 3, 1, 1],
        [278, 4, 1, this.height],
        [279, 4, 1, pageBytes],
        ...(res ? ([[282, 5, 1, resAt], [283, 5, 1, resAt + 8]] as [number, number, number, number][]) : []),
        [284, 3, 1, 1],
        [339, 3, 1, 1],
      ];
      buf.writeUInt16LE(n, at);
      entries.forEach(([tag, type, count, value], i) => {
        const o = at + 2 + 12 * i;
        buf.writeUInt16LE(tag, o);
        buf.writeUInt16LE(type, o + 2);
        buf.writeUInt32LE(count, o + 4);
        if (type === 3) buf.writeUInt16LE(value, o + 8);
        else buf.writeUInt32LE(value, o + 8);
      });
      buf.writeUInt32LE(z + 1 < this.pages ? start + (z + 1) * ifdSize : 0, at + 2 + 12 * n);
    }
    desc.copy(buf, ifdSize * this.pages);
    if (res) {
      // Pixels per nm as a RATIONAL: 1e6 / (nm * 1e6), exact for the usual few-decimal voxel sizes.
      const o = ifdSize * this.pages + descLen;
      res.forEach((nm, i) => {
        buf.writeUInt32LE(1_000_000, o + 8 * i);
        buf.writeUInt32LE(Math.max(1, Math.round(nm * 1_000_000)), o + 8 * i + 4);
      });
    }
    return buf;
  }
}
