/**
 * Reading input stacks: a multi-page TIFF, a single PNG/TIFF, or a folder of PNG/TIFF slices sorted by
 * name (natural order: s2 before s10). Every failure is a PipelineError("bad_input") naming the file.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import type { Metadata } from "sharp";
import type { Volume } from "../../precomputed/array.js";
import { PipelineError } from "./errors.js";
import { decodeTiffPages, scanTiff, type ProgressCallback, type TiffPage } from "./tiff.js";

export interface ReadOptions {
  onProgress?: ProgressCallback;
}

export interface Stack {
  volume: Volume<Uint8Array | Uint16Array>;
  bitDepth: 8 | 16;
}

export type LabelVolume = Volume<Uint8Array | Uint16Array | Uint32Array>;

export type Mode = "image" | "labels";

/** One decodable plane: a TIFF page or a PNG file. */
interface Plane {
  file: string;
  /** What the error messages call it: "page 7" or "slice 3 (s003.png)". */
  name: string;
  width: number;
  height: number;
  bits: number;
  source: { kind: "tiff"; page: TiffPage; whiteIsZero: boolean } | { kind: "png" };
}

const SLICE_EXT = new Set([".png", ".tif", ".tiff"]);

/**
 * A stack opened for reading a few sections at a time: every header is checked up front (sizes, bit depths,
 * sample types), so a bad stack fails before any pixel is decoded, and `read` holds only the sections asked for.
 */
export interface StackReader {
  path: string;
  shape: [number, number, number];
  bits: number;
  /** Sections [z0, z1) decoded, x fastest; a fresh array per call. */
  read(z0: number, z1: number): Promise<Uint8Array | Uint16Array | Uint32Array>;
}

export async function openStack(path: string, mode: Mode): Promise<StackReader> {
  const { planes, bits } = await collectPlanes(path, mode);
  if (mode === "image" && bits !== 8 && bits !== 16) throw bad(path, `unsupported bit depth ${bits}`);
  const first = planes[0] as Plane;
  return {
    path,
    shape: [first.width, first.height, planes.length],
    bits,
    read: async (z0, z1) => {
      if (!Number.isInteger(z0) || !Number.isInteger(z1) || z0 < 0 || z1 > planes.length || z0 >= z1) {
        throw new RangeError(`sections [${z0}, ${z1}) outside a stack of ${planes.length}`);
      }
      return decodePlanes(path, planes.slice(z0, z1), bits);
    },
  };
}

export async function readStack(path: string, options: ReadOptions = {}): Promise<Stack> {
  const { planes, bits } = await collectPlanes(path, "image");
  if (bits !== 8 && bits !== 16) throw bad(path, `unsupported bit depth ${bits}`);
  const data = await decodePlanes(path, planes, bits, options.onProgress);
  const first = planes[0] as Plane;
  return {
    volume: { data: data as Uint8Array | Uint16Array, shape: [first.width, first.height, planes.length] },
    bitDepth: bits,
  };
}

/** A class or instance label volume: uint8 class codes usually, uint16/uint32 accepted as they are. */
export async function readLabels(path: string, options: ReadOptions = {}): Promise<LabelVolume> {
  const { planes, bits } = await collectPlanes(path, "labels");
  const data = await decodePlanes(path, planes, bits, options.onProgress);
  const first = planes[0] as Plane;
  return { data, shape: [first.width, first.height, planes.length] };
}

function bad(file: string, message: string, cause?: unknown): PipelineError {
  return new PipelineError("bad_input", message, file, cause === undefined ? undefined : { cause });
}

async function collectPlanes(path: string, mode: Mode): Promise<{ planes: Plane[]; bits: number }> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    throw bad(path, e instanceof Error && "code" in e && e.code === "ENOENT" ? "file not found" : `cannot read: ${String(e)}`, e);
  }
  const planes: Plane[] = [];
  if (isDir) {
    const names = (await readdir(path)).filter((n) => !n.startsWith(".") && SLICE_EXT.has(extname(n).toLowerCase())).sort(naturalCompare);
    if (names.length === 0) throw bad(path, "folder holds no PNG or TIFF slices");
    for (const [i, name] of names.entries()) {
      const file = join(path, name);
      const label = `slice ${i} (${name})`;
      planes.push(...(await planesOf(file, mode, label)));
    }
  } else {
    planes.push(...(await planesOf(path, mode, undefined)));
  }
  const first = planes[0];
  if (!first) throw bad(path, "no image pages");
  for (const p of planes) {
    if (p.width !== first.width || p.height !== first.height) {
      throw bad(p.file, `${p.name} is ${p.width}x${p.height}, ${first.name} is ${first.width}x${first.height}`);
    }
    if (p.bits !== first.bits) throw bad(p.file, `${p.name} is ${p.bits}-bit, ${first.name} is ${first.bits}-bit`);
  }
  return { planes, bits: first.bits };
}

async function planesOf(file: string, mode: Mode, sliceLabel: string | undefined): Promise<Plane[]> {
  const ext = extname(file).toLowerCase();
  if (ext === ".png") return [await pngPlane(file, sliceLabel ?? basename(file))];
  const scan = await scanTiff(file);
  const pages = scan.pages.filter((p) => !p.reduced);
  return pages.map((p, k) => {
    checkPage(file, p, mode, sliceLabel ?? `page ${p.ifdIndex}`);
    const name = sliceLabel === undefined ? `page ${k}` : pages.length > 1 ? `${sliceLabel} page ${k}` : sliceLabel;
    return {
      file,
      name,
      width: p.width,
      height: p.height,
      bits: p.bitsPerSample,
      source: { kind: "tiff", page: p, whiteIsZero: p.photometric === 0 && mode === "image" },
    };
  });
}

function checkPage(file: string, p: TiffPage, mode: Mode, name: string): void {
  if (p.samplesPerPixel > 1 || p.photometric === 2) {
    throw bad(file, `${name} is an RGB/multi-channel image (${p.samplesPerPixel} samples per pixel); convert to greyscale`);
  }
  if (p.photometric === 3 && mode === "image") throw bad(file, `${name} is a palette-colour image; convert to greyscale`);
  if (p.photometric > 3) throw bad(file, `${name} has photometric interpretation ${p.photometric}; only greyscale is supported`);
  if (p.sampleFormat === 3) throw bad(file, `${name} has ${p.bitsPerSample}-bit floating-point samples; convert to unsigned integers`);
  if (p.sampleFormat === 2) throw bad(file, `${name} has signed ${p.bitsPerSample}-bit samples; convert to unsigned integers`);
  if (p.sampleFormat !== 1 && p.sampleFormat !== 4) throw bad(file, `${name} has sample format ${p.sampleFormat}`);
  const allowed = mode === "image" ? [8, 16] : [8, 16, 32];
  if (!allowed.includes(p.bitsPerSample)) {
    throw bad(file, `${name} is ${p.bitsPerSample}-bit; unsupported bit depth (${mode === "image" ? "8 or 16" : "8, 16 or 32"} expected)`);
  }
}

async function pngPlane(file: string, name: string): Promise<Plane> {
  let meta: Metadata;
  try {
    meta = await (await loadSharp())(file).metadata();
  } catch (e) {
    throw bad(file, `cannot read image: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  const { width, height, channels, depth } = meta;
  if (!width || !height) throw bad(file, "image has no size");
  // Grey+alpha keeps its grey channel; colour is refused rather than guessed at.
  if (channels !== undefined && channels > 2) throw bad(file, `${name} is an RGB image (${channels} channels); convert to greyscale`);
  const bits = depth === "uchar" ? 8 : depth === "ushort" ? 16 : 0;
  if (bits === 0) throw bad(file, `${name} has pixel depth ${depth ?? "unknown"}; unsupported bit depth`);
  return { file, name, width, height, bits, source: { kind: "png" } };
}

async function decodePlanes(path: string, planes: Plane[], bits: number, onProgress?: ProgressCallback): Promise<Uint8Array | Uint16Array | Uint32Array> {
  const first = planes[0] as Plane;
  const plane = first.width * first.height;
  let out: Uint8Array | Uint16Array | Uint32Array;
  try {
    const n = plane * planes.length;
    out = bits === 8 ? new Uint8Array(n) : bits === 16 ? new Uint16Array(n) : new Uint32Array(n);
  } catch (e) {
    throw bad(path, `stack of ${first.width}x${first.height}x${planes.length} ${bits}-bit voxels does not fit in memory`, e);
  }
  // Consecutive pages of one TIFF decode in one pass so the file is opened once.
  let z = 0;
  while (z < planes.length) {
    const p = planes[z] as Plane;
    if (p.source.kind === "png") {
      await decodePng(p, out, z * plane);
      z += 1;
    } else {
      const run: TiffPage[] = [];
      const whiteIsZero = p.source.whiteIsZero;
      while (z + run.length < planes.length) {
        const q = planes[z + run.length] as Plane;
        if (q.file !== p.file || q.source.kind !== "tiff") break;
        run.push(q.source.page);
      }
      await decodeTiffPages(p.file, run, out, z, first.width, first.height);
      if (whiteIsZero) {
        const max = bits === 8 ? 0xff : 0xffff;
        for (let i = z * plane; i < (z + run.length) * plane; i++) out[i] = max - (out[i] as number);
      }
      z += run.length;
    }
    onProgress?.(z, planes.length, "read");
  }
  return out;
}

async function decodePng(p: Plane, out: Uint8Array | Uint16Array | Uint32Array, at: number): Promise<void> {
  let data: Buffer;
  try {
    ({ data } = await (await loadSharp())(p.file)
      .extractChannel(0)
      // Without an explicit grey colourspace sharp routes 16-bit input through 8-bit sRGB.
      .toColourspace(p.bits === 16 ? "grey16" : "b-w")
      .raw({ depth: p.bits === 16 ? "ushort" : "uchar" })
      .toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw bad(p.file, `cannot decode image: ${e instanceof Error ? e.message : String(e)}`, e);
  }
  const n = p.width * p.height;
  if (data.length !== n * (p.bits / 8)) throw bad(p.file, `decoded ${data.length} bytes, expected ${n * (p.bits / 8)}`);
  if (p.bits === 16) {
    // sharp's raw ushort output is host-endian; copy so an odd byteOffset cannot break the view.
    const aligned = new Uint16Array(n);
    new Uint8Array(aligned.buffer).set(data);
    out.set(aligned, at);
  } else {
    out.set(data, at);
  }
}

/** Natural order: digit runs compare by value, so slice_2 sorts before slice_10. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.split(/(\d+)/);
  const rb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i] as string;
    const y = rb[i] as string;
    if (x === y) continue;
    if (i % 2 === 1) {
      const d = Number(BigInt(x) - BigInt(y));
      if (d !== 0) return d < 0 ? -1 : 1;
      if (x.length !== y.length) return x.length - y.length; // "007" vs "7": shorter first, stably
    } else {
      return x < y ? -1 : 1;
    }
  }
  return ra.length - rb.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** sharp (libvips) is loaded only for PNG slices: TIFF stacks never need it. */
async function loadSharp(): Promise<typeof import("sharp").default> {
  return (await import("sharp")).default;
}
