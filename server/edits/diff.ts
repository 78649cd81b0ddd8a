import { promisify } from "node:util";
import { gunzipSync, gzip, gzipSync } from "node:zlib";
import { toLittleEndianBytes } from "../../precomputed/encodings/codec.js";

const gzipAsync = promisify(gzip);

/**
 * What one operation changed, as runs of consecutive voxel indices sharing an old and a new label:
 * 4 uint32 per run (start, length, old, new). A merge of a 100 Mvoxel object is ~10^5-10^6 x-runs,
 * a few MB, where a voxel list would be 1.2 GB. Undo and redo apply it backwards or forwards.
 */
export interface LabelDiff {
  runs: Uint32Array;
  /** Changed region, voxels, end exclusive: x0, y0, z0, x1, y1, z1 (empty when nothing changed). */
  bbox: [number, number, number, number, number, number];
}

export class DiffBuilder {
  private runs = new Uint32Array(1024);
  private n = 0;
  private readonly box: [number, number, number, number, number, number];

  /** trackBox false: the caller knows the changed box (and a split's 10^8 pushes skip three divisions each). */
  constructor(private readonly shape: readonly [number, number, number], private readonly trackBox = true) {
    this.box = [shape[0], shape[1], shape[2], 0, 0, 0];
  }

  /** Indices must arrive in increasing order (raster scans do). */
  push(index: number, oldLabel: number, newLabel: number): void {
    const k = 4 * (this.n - 1);
    if (this.n > 0 && this.runs[k] + this.runs[k + 1] === index && this.runs[k + 2] === oldLabel && this.runs[k + 3] === newLabel) {
      this.runs[k + 1]++;
    } else {
      if (4 * (this.n + 1) > this.runs.length) {
        const grown = new Uint32Array(this.runs.length * 2);
        grown.set(this.runs);
        this.runs = grown;
      }
      this.runs.set([index, 1, oldLabel, newLabel], 4 * this.n);
      this.n++;
    }
    if (!this.trackBox) return;
    const [nx, ny] = this.shape;
    const x = index % nx;
    const y = Math.floor(index / nx) % ny;
    const z = Math.floor(index / (nx * ny));
    const b = this.box;
    if (x < b[0]) b[0] = x;
    if (y < b[1]) b[1] = y;
    if (z < b[2]) b[2] = z;
    if (x + 1 > b[3]) b[3] = x + 1;
    if (y + 1 > b[4]) b[4] = y + 1;
    if (z + 1 > b[5]) b[5] = z + 1;
  }

  build(): LabelDiff {
    const runs = this.runs.slice(0, 4 * this.n);
    return { runs, bbox: this.n === 0 ? [0, 0, 0, 0, 0, 0] : [...this.box] };
  }
}

/** What the caller knows of the labels: compressed_segmentation blocks holding one label (cseg.ts BlockIndex). */
export interface KnownBlocks {
  shape: readonly [number, number, number];
  block: readonly [number, number, number];
  grid: readonly [number, number, number];
  uniform: Uint8Array;
  values: Uint32Array;
}

/**
 * Writes a diff into labels, forwards (old -> new) or backwards. Every voxel must hold the label the diff
 * expects; on the first one that does not, what was applied is rolled back and false is returned. With
 * `known` (a block index in step with `labels`), the voxels of a block known to hold only the expected
 * label are not read.
 */
export function applyDiff(labels: Uint32Array, runs: Uint32Array, direction: "forward" | "backward", known?: KnownBlocks): boolean {
  const from = direction === "forward" ? 2 : 3;
  const to = direction === "forward" ? 3 : 2;
  for (let k = 0; k < runs.length; k += 4) {
    const start = runs[k];
    const end = start + runs[k + 1];
    const want = runs[k + from];
    if (!(known ? holdsKnown(labels, start, end, want, known) : holds(labels, start, end, want))) {
      for (let j = k - 4; j >= 0; j -= 4) labels.fill(runs[j + from], runs[j], runs[j] + runs[j + 1]);
      return false;
    }
    labels.fill(runs[k + to], start, end);
  }
  return true;
}

function holds(labels: Uint32Array, start: number, end: number, want: number): boolean {
  for (let i = start; i < end; i++) if (labels[i] !== want) return false;
  return true;
}

/** holds(), reading only the parts of [start, end) in blocks not known to be uniformly `want`. */
function holdsKnown(labels: Uint32Array, start: number, end: number, want: number, known: KnownBlocks): boolean {
  const [nx, ny] = known.shape;
  const [bx, by, bz] = known.block;
  const [gx, gy] = known.grid;
  for (let i = start; i < end; ) {
    const x = i % nx;
    const rowStart = i - x;
    const r = rowStart / nx;
    const y = r % ny;
    const z = (r - y) / ny;
    const rowEnd = Math.min(end, rowStart + nx);
    const blockRow = gx * (Math.floor(y / by) + gy * Math.floor(z / bz));
    while (i < rowEnd) {
      const c = Math.floor((i - rowStart) / bx);
      const segEnd = Math.min(rowEnd, rowStart + (c + 1) * bx);
      const b = blockRow + c;
      if (!(known.uniform[b] === 1 && known.values[b] === want) && !holds(labels, i, segEnd, want)) return false;
      i = segEnd;
    }
  }
  return true;
}

/**
 * Writes a diff into labels forwards without checking the old labels: for a diff just planned from these
 * labels (a merge or split, planned in the same turn of the writer queue), where the check of applyDiff
 * cannot fail and costs a read of every changed voxel.
 */
export function writeDiff(labels: Uint32Array, runs: Uint32Array): void {
  for (let k = 0; k < runs.length; k += 4) labels.fill(runs[k + 3], runs[k], runs[k] + runs[k + 1]);
}

/** Segments whose voxels the diff takes away / gives, forwards. */
export function diffLabels(runs: Uint32Array): { olds: Set<number>; news: Set<number> } {
  const olds = new Set<number>();
  const news = new Set<number>();
  for (let k = 0; k < runs.length; k += 4) {
    olds.add(runs[k + 2]);
    news.add(runs[k + 3]);
  }
  return { olds, news };
}

export function encodeDiff(runs: Uint32Array): Uint8Array {
  return gzipSync(toLittleEndianBytes(runs));
}

/** encodeDiff on libuv's threads (same bytes): a 10^8-voxel split's diff gzips beside the commit. */
export function encodeDiffAsync(runs: Uint32Array): Promise<Uint8Array> {
  return gzipAsync(toLittleEndianBytes(runs.slice()));
}

export function decodeDiff(bytes: Uint8Array): Uint32Array {
  const raw = gunzipSync(bytes);
  if (raw.length % 16 !== 0) throw new Error("diff is not a whole number of runs");
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
  const runs = new Uint32Array(raw.length / 4);
  for (let i = 0; i < runs.length; i++) runs[i] = dv.getUint32(4 * i, true);
  return runs;
}
