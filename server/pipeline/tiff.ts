/**
 * TIFF stacks: a structural scan of the IFD chain, page decoding through geotiff, and a writer for
 * multi-page greyscale stacks. Policy (what the pipeline accepts) lives in ingest.ts.
 *
 * Why our own scan before geotiff: geotiff follows IFD offsets without loop detection (a corrupted
 * next-IFD pointer hangs getImageCount) and reads past end-of-file as zeros (a truncated stack would
 * decode as black). The scan bounds every offset by the file size first, so bad files fail fast with a
 * PipelineError instead of hanging or returning silently wrong pixels.
 */
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import type { GeoTIFF } from "geotiff";
import type { Vec3, Volume } from "../../precomputed/array.js";
import { PipelineError } from "./errors.js";

export interface TiffPage {
  /** Position in the IFD chain (geotiff's image index). */
  ifdIndex: number;
  width: number;
  height: number;
  bitsPerSample: number;
  samplesPerPixel: number;
  /** 1 unsigned integer, 2 signed integer, 3 IEEE float. */
  sampleFormat: number;
  /** 0 WhiteIsZero, 1 BlackIsZero, 2 RGB, 3 palette, ... */
  photometric: number;
  compression: number;
  /** NewSubfileType bit 0: a thumbnail or pyramid level, not a section of the stack. */
  reduced: boolean;
  /** Where the samples lie, for uncompressed single-sample unsigned strips (read without geotiff). */
  raw?: RawStrips;
}

/** An uncompressed page's strips: `rowsPerStrip` rows each (the last may have fewer), samples in file byte order. */
export interface RawStrips {
  offsets: number[];
  counts: number[];
  rowsPerStrip: number;
  littleEndian: boolean;
}

export interface TiffScan {
  littleEndian: boolean;
  bigTiff: boolean;
  fileSize: number;
  pages: TiffPage[];
}

export type ProgressCallback = (done: number, total: number, what: string) => void;

const MAX_PAGES = 1_000_000;
const MAX_ENTRIES = 4096;
/** Upper bound on decoded/compressed size (LZW tops out near 2700:1); beyond it the header lies. */
const MAX_EXPANSION = 4096;
const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };

interface Entry {
  type: number;
  count: number;
  /** File offset of the value bytes (inline values point into the entry itself). */
  valueOffset: number;
}

class Bytes {
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly le: boolean,
    private readonly file: string,
  ) {}

  async view(offset: number, length: number, what: string): Promise<DataView> {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw bad(this.file, `${what} lies outside the file (offset ${offset}, ${length} bytes, file ${this.size} bytes); truncated or corrupt`);
    }
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.fh.read(buf, 0, length, offset);
    if (bytesRead !== length) throw bad(this.file, `short read at offset ${offset}; truncated file`);
    return new DataView(buf.buffer, buf.byteOffset, length);
  }
}

function bad(file: string, message: string, cause?: unknown): PipelineError {
  return new PipelineError("bad_input", message, file, cause === undefined ? undefined : { cause });
}

function u64(dv: DataView, at: number, le: boolean, file: string): number {
  const v = dv.getBigUint64(at, le);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(file, "offset beyond 2^53; corrupt BigTIFF");
  return Number(v);
}

/** Reads the header and every IFD; checks that all pixel data lies inside the file. */
export async function scanTiff(path: string): Promise<TiffScan> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw bad(path, e instanceof Error && "code" in e && e.code === "ENOENT" ? "file not found" : `cannot open: ${String(e)}`, e);
  }
  try {
    const { size } = await fh.stat();
    if (size < 8) throw bad(path, `not a TIFF file (${size} bytes)`);
    const head = Buffer.alloc(16);
    await fh.read(head, 0, Math.min(16, size), 0);
    const order = head.toString("latin1", 0, 2);
    if (order !== "II" && order !== "MM") throw bad(path, "not a TIFF file (no II/MM byte-order mark)");
    const le = order === "II";
    const hv = new DataView(head.buffer, head.byteOffset, 16);
    const magic = hv.getUint16(2, le);
    if (magic !== 42 && magic !== 43) throw bad(path, `not a TIFF file (magic number ${magic})`);
    const bigTiff = magic === 43;
    if (bigTiff && size < 16) throw bad(path, "truncated BigTIFF header");
    const bytes = new Bytes(fh, size, le, path);
    let next = bigTiff ? u64(hv, 8, le, path) : hv.getUint32(4, le);
    const seen = new Set<number>();
    const pages: TiffPage[] = [];
    while (next !== 0) {
      if (seen.has(next)) throw bad(path, `IFD chain loops back to offset ${next}; corrupt file`);
      if (seen.size >= MAX_PAGES) throw bad(path, `more than ${MAX_PAGES} pages`);
      seen.add(next);
      const { page, nextOffset } = await readIfd(bytes, next, bigTiff, seen.size - 1, path);
      pages.push(page);
      next = nextOffset;
    }
    if (pages.length === 0) throw bad(path, "TIFF has no pages");
    return { littleEndian: le, bigTiff, fileSize: size, pages };
  } finally {
    await fh.close();
  }
}

async function readIfd(bytes: Bytes, at: number, bigTiff: boolean, index: number, file: string): Promise<{ page: TiffPage; nextOffset: number }> {
  const le = bytes.le;
  const countSize = bigTiff ? 8 : 2;
  const entrySize = bigTiff ? 20 : 12;
  const inlineSize = bigTiff ? 8 : 4;
  const cv = await bytes.view(at, countSize, `IFD ${index}`);
  const n = bigTiff ? u64(cv, 0, le, file) : cv.getUint16(0, le);
  if (n === 0 || n > MAX_ENTRIES) throw bad(file, `IFD ${index} has ${n} entries; corrupt file`);
  const body = await bytes.view(at + countSize, n * entrySize + inlineSize, `IFD ${index}`);
  const entries = new Map<number, Entry>();
  for (let i = 0; i < n; i++) {
    const o = i * entrySize;
    const tag = body.getUint16(o, le);
    const type = body.getUint16(o + 2, le);
    const count = bigTiff ? u64(body, o + 4, le, file) : body.getUint32(o + 4, le);
    const typeSize = TYPE_SIZE[type];
    if (typeSize === undefined) continue; // unknown types are legal; we only need the baseline tags
    const valueField = o + (bigTiff ? 12 : 8);
    const inline = count * typeSize <= inlineSize;
    const valueOffset = inline
      ? at + countSize + valueField
      : bigTiff
        ? u64(body, valueField, le, file)
        : body.getUint32(valueField, le);
    entries.set(tag, { type, count, valueOffset });
  }
  const nextOffset = bigTiff ? u64(body, n * entrySize, le, file) : body.getUint32(n * entrySize, le);

  const uints = async (tag: number, name: string, maxCount: number): Promise<number[] | undefined> => {
    const e = entries.get(tag);
    if (!e) return undefined;
    if (e.count === 0 || e.count > maxCount) throw bad(file, `page ${index}: ${name} has ${e.count} values; corrupt file`);
    const size = TYPE_SIZE[e.type] ?? 0;
    if (![1, 3, 4, 13, 16, 18].includes(e.type)) throw bad(file, `page ${index}: ${name} has non-integer type ${e.type}`);
    const dv = await bytes.view(e.valueOffset, e.count * size, `page ${index} ${name}`);
    const out: number[] = new Array<number>(e.count);
    for (let i = 0; i < e.count; i++) {
      out[i] = size === 1 ? dv.getUint8(i) : size === 2 ? dv.getUint16(i * 2, le) : size === 4 ? dv.getUint32(i * 4, le) : u64(dv, i * 8, le, file);
    }
    return out;
  };
  const one = async (tag: number, name: string, fallback?: number): Promise<number> => {
    const v = await uints(tag, name, 64);
    if (v === undefined) {
      if (fallback === undefined) throw bad(file, `page ${index}: required tag ${name} missing`);
      return fallback;
    }
    return v[0] as number;
  };

  const width = await one(256, "ImageWidth");
  const height = await one(257, "ImageLength");
  if (width < 1 || height < 1 || width > 1_000_000 || height > 1_000_000) {
    throw bad(file, `page ${index} claims ${width}x${height} pixels; corrupt file`);
  }
  const samplesPerPixel = await one(277, "SamplesPerPixel", 1);
  if (samplesPerPixel < 1 || samplesPerPixel > 64) throw bad(file, `page ${index}: ${samplesPerPixel} samples per pixel; corrupt file`);
  const bps = (await uints(258, "BitsPerSample", 64)) ?? [1];
  const bitsPerSample = bps[0] as number;
  const sampleFormat = await one(339, "SampleFormat", 1);
  const compression = await one(259, "Compression", 1);
  const photometric = await one(262, "PhotometricInterpretation", 1);
  const subfile = await one(254, "NewSubfileType", 0);
  const planar = await one(284, "PlanarConfiguration", 1);

  const tiled = entries.has(322) || entries.has(324);
  let chunks: number;
  let rowsPerStrip = 0;
  if (tiled) {
    const tw = await one(322, "TileWidth");
    const th = await one(323, "TileLength");
    if (tw < 1 || th < 1) throw bad(file, `page ${index}: tile size ${tw}x${th}; corrupt file`);
    chunks = Math.ceil(width / tw) * Math.ceil(height / th);
  } else {
    const rps = Math.min(await one(278, "RowsPerStrip", 0xffffffff), height);
    if (rps < 1) throw bad(file, `page ${index}: RowsPerStrip is 0; corrupt file`);
    chunks = Math.ceil(height / rps);
    rowsPerStrip = rps;
  }
  if (planar === 2) chunks *= samplesPerPixel;
  const offsets = await uints(tiled ? 324 : 273, tiled ? "TileOffsets" : "StripOffsets", 1e7);
  const counts = await uints(tiled ? 325 : 279, tiled ? "TileByteCounts" : "StripByteCounts", 1e7);
  if (!offsets || !counts) throw bad(file, `page ${index}: no pixel data offsets; corrupt file`);
  if (offsets.length < chunks || counts.length < chunks) {
    throw bad(file, `page ${index}: ${offsets.length} data blocks for ${chunks} expected; corrupt file`);
  }
  let stored = 0;
  for (let i = 0; i < chunks; i++) {
    const off = offsets[i] as number;
    const cnt = counts[i] as number;
    if (off + cnt > bytes.size) {
      throw bad(file, `page ${index}: pixel data ends at byte ${off + cnt} but the file has ${bytes.size}; truncated or corrupt`);
    }
    stored += cnt;
  }
  const decoded = (width * height * samplesPerPixel * bitsPerSample) / 8;
  if (compression === 1 && stored < decoded && !tiled) {
    throw bad(file, `page ${index}: ${stored} bytes of pixels stored, ${decoded} needed; truncated or corrupt`);
  }
  if (compression !== 1 && decoded > stored * MAX_EXPANSION + 65536) {
    throw bad(file, `page ${index}: ${stored} compressed bytes cannot hold ${width}x${height} pixels; corrupt file`);
  }
  const page: TiffPage = { ifdIndex: index, width, height, bitsPerSample, samplesPerPixel, sampleFormat, compression, photometric, reduced: (subfile & 1) === 1 };
  if (compression === 1 && !tiled && samplesPerPixel === 1 && sampleFormat === 1 && [8, 16, 32].includes(bitsPerSample)) {
    page.raw = { offsets: offsets.slice(0, chunks), counts: counts.slice(0, chunks), rowsPerStrip, littleEndian: le };
  }
  return { page, nextOffset };
}

type UIntArray = Uint8Array | Uint16Array | Uint32Array;

/**
 * Decodes single-sample pages into `out` (page k of `pages` at plane k). The caller has checked with scanTiff
 * that the pages exist, share width x height and have the sample type of `out`. A page given as its TiffPage
 * with `raw` strips (uncompressed) is read straight into `out`; any other page (an IFD index, or compressed)
 * goes through geotiff. Both give the same samples.
 */
export async function decodeTiffPages(
  path: string,
  pages: readonly (number | TiffPage)[],
  out: UIntArray,
  planeOffset: number,
  width: number,
  height: number,
  onProgress?: ProgressCallback,
): Promise<void> {
  const plane = width * height;
  let tiff: GeoTIFF | undefined;
  let fh: FileHandle | undefined;
  try {
    for (let k = 0; k < pages.length; k++) {
      const page = pages[k];
      const ifdIndex = typeof page === "number" ? page : page.ifdIndex;
      if (typeof page !== "number" && rawReadable(page, out, width, height)) {
        fh ??= await open(path, "r");
        await readRawPage(fh, path, page, out, (planeOffset + k) * plane);
      } else {
        // Loaded on first use: uncompressed stacks never need it.
        tiff ??= await (await import("geotiff")).fromFile(path);
        const image = await tiff.getImage(ifdIndex);
        const raster = await image.readRasters({ interleave: true, samples: [0] });
        if (raster.length !== plane) throw bad(path, `page ${ifdIndex} decoded to ${raster.length} samples, expected ${plane}`);
        if (raster.BYTES_PER_ELEMENT !== out.BYTES_PER_ELEMENT) {
          throw bad(path, `page ${ifdIndex} decoded to ${raster.BYTES_PER_ELEMENT * 8}-bit samples, expected ${out.BYTES_PER_ELEMENT * 8}`);
        }
        out.set(raster as unknown as ArrayLike<number>, (planeOffset + k) * plane);
      }
      onProgress?.(k + 1, pages.length, "decode");
    }
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    throw bad(path, `cannot decode TIFF: ${e instanceof Error ? e.message : String(e)}`, e);
  } finally {
    if (tiff) await Promise.resolve(tiff.close()).catch(() => undefined);
    if (fh) await fh.close().catch(() => undefined);
  }
}

/** Uncompressed strips that hold every row of the page at the sample size of `out`. */
function rawReadable(page: TiffPage, out: UIntArray, width: number, height: number): page is TiffPage & { raw: RawStrips } {
  const raw = page.raw;
  if (raw === undefined || page.width !== width || page.height !== height || page.bitsPerSample !== 8 * out.BYTES_PER_ELEMENT) return false;
  if (raw.offsets.length !== Math.ceil(height / raw.rowsPerStrip)) return false;
  return raw.counts.every((c, s) => c >= Math.min(raw.rowsPerStrip, height - s * raw.rowsPerStrip) * width * out.BYTES_PER_ELEMENT);
}

const HOST_LITTLE_ENDIAN = endianness() === "LE";

async function readRawPage(fh: FileHandle, path: string, page: TiffPage & { raw: RawStrips }, out: UIntArray, at: number): Promise<void> {
  const { raw, width, height } = page;
  const bytesPerSample = out.BYTES_PER_ELEMENT;
  const target = Buffer.from(out.buffer, out.byteOffset + at * bytesPerSample, width * height * bytesPerSample);
  for (let s = 0; s < raw.offsets.length; s++) {
    const row0 = s * raw.rowsPerStrip;
    const length = Math.min(raw.rowsPerStrip, height - row0) * width * bytesPerSample;
    const start = row0 * width * bytesPerSample;
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(target, start + done, length - done, raw.offsets[s] + done);
      if (bytesRead === 0) throw bad(path, `page ${page.ifdIndex}: short read at offset ${raw.offsets[s] + done}; truncated file`);
      done += bytesRead;
    }
  }
  if (bytesPerSample > 1 && raw.littleEndian !== HOST_LITTLE_ENDIAN) {
    if (bytesPerSample === 2) target.swap16();
    else target.swap32();
  }
}

export interface WriteTiffOptions {
  /** Stored as ImageJ calibration (unit nm, z spacing) and X/YResolution so Fiji opens the stack scaled. */
  voxelNm?: Vec3;
  onProgress?: ProgressCallback;
}

let tempCounter = 0;

/** A name beside `path` for writing before an atomic rename; unique per process and call. */
export function tempPathFor(path: string): string {
  tempCounter += 1;
  return `${path}.tmp-${process.pid}-${tempCounter}`;
}

/**
 * Writes a greyscale stack (uint8/16/32, one page per z) as baseline little-endian uncompressed TIFF,
 * one strip per page, pixel data first and contiguous, then the IFDs. Hand-written because no maintained
 * Node library writes multi-page 16/32-bit greyscale (sharp writes one page or RGB-ish; geotiff's writer
 * is single-image). Contiguous data is also what ImageJ's reader of "images=N" stacks expects.
 * Written to a temporary name and renamed, so a crash never leaves a complete-looking partial file.
 */
export async function writeTiffStack(path: string, volume: Volume<UIntArray>, options: WriteTiffOptions = {}): Promise<void> {
  const [w, h, d] = volume.shape;
  const data = volume.data;
  if ((volume.channels ?? 1) !== 1) throw new PipelineError("bad_argument", "writeTiffStack writes single-channel volumes only", path);
  if (w < 1 || h < 1 || d < 1 || data.length !== w * h * d) {
    throw new PipelineError("bad_argument", `volume shape ${w}x${h}x${d} does not match ${data.length} voxels`, path);
  }
  const bps = data.BYTES_PER_ELEMENT * 8;
  const pageBytes = w * h * data.BYTES_PER_ELEMENT;
  const vox = options.voxelNm;
  // ImageJ has no uint32 type, so it gets a plain stack without the ImageJ header.
  const description =
    bps <= 16
      ? `ImageJ=1.11a\nimages=${d}\nslices=${d}\n${vox ? `unit=nm\nspacing=${vox[2]}\n` : ""}loop=false\n\0`
      : undefined;
  const descBytes = description ? Buffer.from(description, "latin1") : undefined;
  const nEntries = descBytes ? 16 : 15;
  const ifdSize = 2 + 12 * nEntries + 4;
  const dataEnd = 8 + pageBytes * d;
  const ifdStart = dataEnd + (dataEnd % 2);
  const page0Extra = 16 + (descBytes ? descBytes.length + (descBytes.length % 2) : 0);
  const total = ifdStart + d * (ifdSize + 16) + (page0Extra - 16);
  if (total > 0xffffffff) {
    throw new PipelineError("stage_failed", `stack would be ${(total / 2 ** 30).toFixed(1)} GiB; classic TIFF ends at 4 GiB and BigTIFF writing is not implemented`, path);
  }

  const ifds = Buffer.alloc(total - ifdStart);
  const v = new DataView(ifds.buffer, ifds.byteOffset, ifds.length);
  const rational = rationalOf(vox ? 1 / vox[0] : 1);
  const rationalY = rationalOf(vox ? 1 / vox[1] : 1);
  let at = 0;
  for (let z = 0; z < d; z++) {
    const ifdOffset = ifdStart + at;
    const extraStart = at + ifdSize;
    const xres = ifdStart + extraStart;
    const yres = xres + 8;
    const hasDesc = z === 0 && descBytes !== undefined;
    const descOffset = yres + 8;
    const entries: [number, number, number, number][] = [
      [254, 4, 1, 0],
      [256, 4, 1, w],
      [257, 4, 1, h],
      [258, 3, 1, bps],
      [259, 3, 1, 1],
      [262, 3, 1, 1],
      ...(descBytes ? ([[270, 2, hasDesc ? descBytes.length : 1, hasDesc ? descOffset : 0]] as [number, number, number, number][]) : []),
      [273, 4, 1, 8 + z * pageBytes],
      [277, 3, 1, 1],
      [278, 4, 1, h],
      [279, 4, 1, pageBytes],
      [282, 5, 1, xres],
      [283, 5, 1, yres],
      [284, 3, 1, 1],
      [296, 3, 1, 1],
      [339, 3, 1, 1],
    ];
    v.setUint16(at, entries.length, true);
    entries.forEach(([tag, type, count, value], i) => {
      const o = at + 2 + 12 * i;
      v.setUint16(o, tag, true);
      v.setUint16(o + 2, type, true);
      v.setUint32(o + 4, count, true);
      if (type === 3) v.setUint16(o + 8, value, true);
      else v.setUint32(o + 8, value, true); // LONG values and offsets; an empty ASCII stays 0 = ""
    });
    const extraLen = 16 + (hasDesc ? descBytes.length + (descBytes.length % 2) : 0);
    const nextIfd = z + 1 < d ? ifdOffset + ifdSize + extraLen : 0;
    v.setUint32(at + 2 + 12 * entries.length, nextIfd, true);
    v.setUint32(extraStart, rational[0], true);
    v.setUint32(extraStart + 4, rational[1], true);
    v.setUint32(extraStart + 8, rationalY[0], true);
    v.setUint32(extraStart + 12, rationalY[1], true);
    if (hasDesc) descBytes.copy(ifds, extraStart + 16);
    at += ifdSize + extraLen;
  }

  const header = Buffer.alloc(8);
  header.write("II", 0, "latin1");
  header.writeUInt16LE(42, 2);
  header.writeUInt32LE(ifdStart, 4);

  const tmp = tempPathFor(path);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, "w");
    await fh.write(header);
    const bigEndianHost = endianness() === "BE";
    const pagesPerWrite = Math.max(1, Math.floor((16 << 20) / pageBytes));
    for (let z0 = 0; z0 < d; z0 += pagesPerWrite) {
      const z1 = Math.min(d, z0 + pagesPerWrite);
      let chunk = Buffer.from(data.buffer, data.byteOffset + z0 * pageBytes, (z1 - z0) * pageBytes);
      if (bigEndianHost && bps > 8) {
        chunk = Buffer.from(chunk);
        if (bps === 16) chunk.swap16();
        else chunk.swap32();
      }
      await fh.write(chunk);
      options.onProgress?.(z1, d, "write");
    }
    if (dataEnd % 2) await fh.write(Buffer.alloc(1));
    await fh.write(ifds);
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw new PipelineError("stage_failed", `cannot write TIFF: ${e instanceof Error ? e.message : String(e)}`, path, { cause: e });
  }
}

/** A positive number as a TIFF RATIONAL (two uint32), exact for integers and 1/integer. */
function rationalOf(x: number): [number, number] {
  if (Number.isInteger(x) && x <= 0xffffffff) return [x, 1];
  const inv = 1 / x;
  if (Number.isInteger(inv) && inv <= 0xffffffff) return [1, inv];
  const den = 1_000_000;
  return [Math.min(0xffffffff, Math.round(x * den)), den];
}
