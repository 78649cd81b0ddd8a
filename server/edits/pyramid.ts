import type { Vec3, Volume } from "../../precomputed/array.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import { downsampleMode, insertSorted, modeOfSorted } from "../../precomputed/multiscale.js";
import { indexBlocks, updateBlocks, type BlockIndex } from "./cseg.js";
import type { KnownBlocks } from "./diff.js";
import type { Box6 } from "./ops.js";

/**
 * Every scale of the segmentation held in memory (about 1.15-1.33x scale 0), so an edit recomputes only the
 * block modes its changed voxels feed, scale by scale, and re-encodes only the chunks whose voxels changed.
 * The result equals a full cascade of downsampleMode (what the pipeline writes): each recomputed output
 * voxel sees exactly the same source block, and every other one sees an unchanged block.
 */
export interface Pyramid {
  levels: Volume<Uint32Array>[];
  /** steps[i]: factor from scale i-1 to scale i ([1,1,1] for scale 0). */
  steps: Vec3[];
  /** blocks[i]: scale i's compressed_segmentation block index (cseg.ts), where the encoder can use one. */
  blocks?: (BlockIndex | undefined)[];
}

export function pyramidSteps(info: VolumeInfo): Vec3[] {
  return info.scales.map((s, i) => (i === 0 ? [1, 1, 1] : ([0, 1, 2].map((d) => Math.round(s.resolution[d] / info.scales[i - 1].resolution[d])) as Vec3)));
}

export function buildPyramid(info: VolumeInfo, scale0: Volume<Uint32Array>): Pyramid {
  const steps = pyramidSteps(info);
  const levels = [scale0];
  for (let i = 1; i < info.scales.length; i++) levels.push(downsampleMode(levels[i - 1], steps[i]));
  const blocks = levels.map((level, i) => {
    const block = indexedBlock(info, i);
    return block && indexBlocks(level.data, level.shape, block);
  });
  return { levels, steps, blocks };
}

/** Scale 0's block index with its shape, for applyDiff to skip reading blocks known to hold one label. */
export function knownBlocks(p: Pyramid): KnownBlocks | undefined {
  const index = p.blocks?.[0];
  return index && { shape: p.levels[0].shape, ...index };
}

/**
 * Makes every coarser scale and block index afresh from scale 0: after updatePyramid failed part way (its
 * shortcuts trust the indexes, which are kept in step by counting what each edit changed).
 */
export function rebuildPyramid(p: Pyramid): void {
  for (let i = 1; i < p.levels.length; i++) p.levels[i].data.set(downsampleMode(p.levels[i - 1], p.steps[i]).data);
  p.blocks = p.blocks?.map((index, i) => index && indexBlocks(p.levels[i].data, p.levels[i].shape, index.block));
}

/** Scale i's block size where the fast encoder applies and chunks lie on one block grid; else undefined. */
function indexedBlock(info: VolumeInfo, i: number): Vec3 | undefined {
  const scale = info.scales[i];
  const block = scale.compressed_segmentation_block_size as Vec3 | undefined;
  if (scale.encoding !== "compressed_segmentation" || (info.num_channels ?? 1) !== 1 || !block) return undefined;
  return scale.chunk_sizes.every((c) => c.every((v, d) => v % block[d] === 0)) ? block : undefined;
}

/**
 * What an edit changed in one scale: scale 0 is the diff's runs; a coarser scale lists the voxels whose
 * block mode actually changed, as x-segments (row, x0, x1 exclusive, old label, new label; row = y + ny * z
 * of that scale) in raster order, so only their chunks are re-encoded and only their parents are recomputed in the next scale.
 * `box` bounds them (scale 0: the diff's box); `mask` is the same set as a mask over `box` (x fastest), made
 * on first use (tests read it; the edit path does not).
 */
export interface LevelChange {
  box: Box6;
  /** Changed voxels as (row, x0, x1, old, new) segments, raster order (scale 0: the runs' voxels). */
  segs?: Int32Array;
  /** 1 where the voxel changed; undefined for scale 0. */
  readonly mask?: Uint8Array;
}

/** A growable list of int32 triples (row, x0, x1). */
class Triples {
  data = new Int32Array(3 * 1024);
  n = 0;
  push(a: number, b: number, c: number): void {
    if (this.n + 3 > this.data.length) this.grow();
    this.data[this.n] = a;
    this.data[this.n + 1] = b;
    this.data[this.n + 2] = c;
    this.n += 3;
  }
  protected grow(): void {
    const grown = new Int32Array(2 * this.data.length);
    grown.set(this.data);
    this.data = grown;
  }
  done(): Int32Array {
    return this.data.slice(0, this.n);
  }
}

/** A growable list of segments (row, x0, x1, old, new): labels as int32 bits. */
class Segs extends Triples {
  push5(r: number, x0: number, x1: number, old: number, nw: number): void {
    if (this.n + 5 > this.data.length) this.grow();
    this.data[this.n] = r;
    this.data[this.n + 1] = x0;
    this.data[this.n + 2] = x1;
    this.data[this.n + 3] = old;
    this.data[this.n + 4] = nw;
    this.n += 5;
  }
}

/** A coarser scale's change: its segments, their box, and the mask over the box made on demand. */
function levelChange(segs: Int32Array, shape: Vec3): LevelChange {
  const ny = shape[1];
  const box: Box6 = [shape[0], shape[1], shape[2], 0, 0, 0];
  for (let k = 0; k < segs.length; k += 5) {
    const y = segs[k] % ny;
    const z = (segs[k] - y) / ny;
    if (segs[k + 1] < box[0]) box[0] = segs[k + 1];
    if (segs[k + 2] > box[3]) box[3] = segs[k + 2];
    if (y < box[1]) box[1] = y;
    if (y + 1 > box[4]) box[4] = y + 1;
    if (z < box[2]) box[2] = z;
    if (z + 1 > box[5]) box[5] = z + 1;
  }
  if (segs.length === 0) box.fill(0);
  let mask: Uint8Array | undefined;
  return {
    box,
    segs,
    get mask(): Uint8Array {
      if (mask) return mask;
      const [dx, dy] = [box[3] - box[0], box[4] - box[1]];
      mask = new Uint8Array(dx * dy * (box[5] - box[2]));
      for (let k = 0; k < segs.length; k += 5) {
        const y = segs[k] % ny;
        const z = (segs[k] - y) / ny;
        const at = dx * (y - box[1] + dy * (z - box[2])) - box[0];
        mask.fill(1, at + segs[k + 1], at + segs[k + 2]);
      }
      return mask;
    },
  };
}

/**
 * Scale 0's runs (start, length, old, new) as x-segments (row, x0, x1, was, now), raster order, `now` read
 * from `labels` (the runs may have been applied either way: a rollback applies them backwards).
 */
export function segsOfRuns(runs: Uint32Array, shape: Vec3, labels: Uint32Array): Int32Array {
  const nx = shape[0];
  const out = new Segs();
  for (let k = 0; k < runs.length; k += 4) {
    const end = runs[k] + runs[k + 1];
    for (let i = runs[k]; i < end; ) {
      const x = i % nx;
      const r = (i - x) / nx;
      const rowEnd = Math.min(end, i - x + nx);
      const now = labels[i];
      out.push5(r, x, x + rowEnd - i, now === runs[k + 3] ? runs[k + 2] : runs[k + 3], now);
      i = rowEnd;
    }
  }
  return out.done();
}

/**
 * Parents (in a scale of shape `size`, factor `step`) of the child segments `segs` (child shape `child`; the
 * labels are not read),
 * as sorted, disjoint x-intervals per parent row, rows increasing: (row, x0, x1) triples. A stable counting
 * sort by parent row (several child rows, and with a z step > 1 several child planes, feed one parent row),
 * then each row's intervals sorted by start and joined.
 */
function parentsOf(segs: Int32Array, child: Vec3, size: Vec3, step: Vec3): Int32Array {
  const cny = child[1];
  const [fx, fy, fz] = step;
  const pny = size[1];
  const n = segs.length / 5;
  if (n === 0) return new Int32Array(0);
  const prow = new Int32Array(n);
  let lo = Infinity;
  let hi = -1;
  for (let k = 0; k < n; k++) {
    const r = segs[5 * k];
    const y = r % cny;
    const z = (r - y) / cny;
    const p = Math.floor(y / fy) + pny * Math.floor(z / fz);
    prow[k] = p;
    if (p < lo) lo = p;
    if (p > hi) hi = p;
  }
  const count = new Int32Array(hi - lo + 2);
  for (let k = 0; k < n; k++) count[prow[k] - lo + 1]++;
  for (let j = 1; j < count.length; j++) count[j] += count[j - 1];
  const order = new Int32Array(n);
  for (let k = 0; k < n; k++) order[count[prow[k] - lo]++] = k;
  const out = new Triples();
  const a = new Int32Array(n);
  const b = new Int32Array(n);
  for (let s = 0; s < n; ) {
    const p = prow[order[s]];
    // This row's parent intervals, insertion-sorted by start (a row has few, mostly in order already).
    let m = 0;
    while (s < n && prow[order[s]] === p) {
      const k = order[s++];
      const x0 = Math.floor(segs[5 * k + 1] / fx);
      const x1 = Math.floor((segs[5 * k + 2] - 1) / fx) + 1;
      let j = m++;
      while (j > 0 && a[j - 1] > x0) {
        a[j] = a[j - 1];
        b[j] = b[j - 1];
        j--;
      }
      a[j] = x0;
      b[j] = x1;
    }
    let cur0 = a[0];
    let cur1 = b[0];
    for (let j = 1; j < m; j++) {
      if (a[j] <= cur1) {
        if (b[j] > cur1) cur1 = b[j];
      } else {
        out.push(p, cur0, cur1);
        cur0 = a[j];
        cur1 = b[j];
      }
    }
    out.push(p, cur0, cur1);
  }
  return out.done();
}

/**
 * Mode of one source block of `src` (the same rule as downsampleMode's modeIntegers: the most frequent
 * label, ties to the smallest, blocks cut at the volume's edge), read in place: no crop, no allocation.
 */
function blockMode(src: Uint32Array, sx: number, sy: number, x0: number, x1: number, y0: number, y1: number, z0: number, z1: number, scratch: Float64Array): number {
  const first = src[x0 + sx * (y0 + sy * z0)];
  // Most blocks hold one label: a comparison pass settles them without sorting.
  let uniform = true;
  for (let zz = z0; zz < z1 && uniform; zz++)
    for (let yy = y0; yy < y1; yy++) {
      const row = sx * (yy + sy * zz);
      let xx = x0;
      while (xx < x1 && src[row + xx] === first) xx++;
      if (xx < x1) {
        uniform = false;
        break;
      }
    }
  if (uniform) return first;
  let k = 0;
  for (let zz = z0; zz < z1; zz++)
    for (let yy = y0; yy < y1; yy++) {
      const row = sx * (yy + sy * zz);
      for (let xx = x0; xx < x1; xx++) insertSorted(scratch, k++, src[row + xx]);
    }
  return modeOfSorted(scratch, k);
}

/** One scale's recomputation (updatePyramid): source and target levels, their block indexes, the output. */
interface LevelPass {
  s: Uint32Array;
  src: Vec3;
  dst: Uint32Array;
  shape: Vec3;
  step: Vec3;
  scratch: Float64Array;
  /** The finer scale's block index, where each parent's source block lies in one of its blocks. */
  index: BlockIndex | undefined;
  /** This scale's block index as before the pass, where a span of one finer block lies in one of its blocks. */
  own: BlockIndex | undefined;
  changed: Segs;
}

/** Recomputes the parents x0 <= x < x1 of row r (y + ny * z) of one scale, noting those that changed. */
function passRow(pass: LevelPass, r: number, x0: number, x1: number): void {
  const { s, dst, scratch, index, own: pidx, changed } = pass;
  const [sx, sy, sz] = pass.src;
  const [nx, ny] = pass.shape;
  const [fx, fy, fz] = pass.step;
  const y = r % ny;
  const z = (r - y) / ny;
  const rowOut = r * nx;
  // Parents of the 2 x 2 x 1 step whose two child columns and rows are inside the volume.
  const rowQuad = fx === 2 && fy === 2 && fz === 1 && 2 * y + 1 < sy;
  const xQuadEnd = sx >> 1;
  const rowA = sx * (2 * y + sy * z);
  const [cbx, cby, cbz] = index?.block ?? [1, 1, 1];
  const [cgx, cgy] = index?.grid ?? [1, 1];
  const span = cbx / fx;
  const [pbx, pby, pbz] = pidx?.block ?? [1, 1, 1];
  const [pgx, pgy] = pidx?.grid ?? [1, 1];
  const indexRow = cgx * (Math.floor((y * fy) / cby) + cgy * Math.floor((z * fz) / cbz));
  const ownRow = pgx * (Math.floor(y / pby) + pgy * Math.floor(z / pbz));
  let runStart = -1;
  let runOld = 0;
  let runNew = 0;
  let x = x0;
  while (x < x1) {
    let spanEnd = x1;
    let uniform = false;
    let uv = 0;
    if (index) {
      const cx = Math.floor(x / span);
      spanEnd = Math.min(x1, (cx + 1) * span);
      const b = indexRow + cx;
      if (index.uniform[b] === 1) {
        uniform = true;
        uv = index.values[b];
        const pb = ownRow + Math.floor(x / pbx);
        if (pidx && pidx.uniform[pb] === 1) {
          const w = pidx.values[pb];
          // The spans after it that are alike (uniform finer block of uv, in a uniform block of w here)
          // take the same path: one stretch (a merge's interior is mostly such spans).
          for (let ncx = cx + 1; spanEnd < x1; ncx++) {
            const nb = indexRow + ncx;
            if (index.uniform[nb] !== 1 || index.values[nb] !== uv) break;
            const npb = ownRow + Math.floor(spanEnd / pbx);
            if (pidx.uniform[npb] !== 1 || pidx.values[npb] !== w) break;
            spanEnd = Math.min(x1, (ncx + 1) * span);
          }
          if (w === uv) {
            if (runStart >= 0) {
              changed.push5(r, runStart, x, runOld, runNew);
              runStart = -1;
            }
          } else {
            dst.fill(uv, rowOut + x, rowOut + spanEnd);
            if (runStart >= 0 && (w !== runOld || uv !== runNew)) {
              changed.push5(r, runStart, x, runOld, runNew);
              runStart = -1;
            }
            if (runStart < 0) {
              runStart = x;
              runOld = w;
              runNew = uv;
            }
          }
          x = spanEnd;
          continue;
        }
      }
    }
    for (; x < spanEnd; x++) {
      let v: number;
      if (uniform) v = uv;
      else if (rowQuad && x < xQuadEnd) {
        const a = rowA + 2 * x;
        v = s[a];
        if (s[a + 1] !== v || s[a + sx] !== v || s[a + sx + 1] !== v) v = blockMode(s, sx, sy, 2 * x, 2 * x + 2, 2 * y, 2 * y + 2, z, z + 1, scratch);
      } else v = blockMode(s, sx, sy, x * fx, Math.min(x * fx + fx, sx), y * fy, Math.min(y * fy + fy, sy), z * fz, Math.min(z * fz + fz, sz), scratch);
      const at = rowOut + x;
      const was = dst[at];
      if (was === v) {
        if (runStart >= 0) {
          changed.push5(r, runStart, x, runOld, runNew);
          runStart = -1;
        }
      } else {
        dst[at] = v;
        if (runStart >= 0 && (was !== runOld || v !== runNew)) {
          changed.push5(r, runStart, x, runOld, runNew);
          runStart = -1;
        }
        if (runStart < 0) {
          runStart = x;
          runOld = was;
          runNew = v;
        }
      }
    }
  }
  if (runStart >= 0) changed.push5(r, runStart, x1, runOld, runNew);
}

/**
 * After scale 0 changed at the voxels of `runs` (inside `box0`), recomputes the coarser scales: in scale i
 * only the block modes whose source block holds a voxel that changed in scale i-1, each in place, and a
 * recomputed mode that comes out as before stops there (its parent is not revisited). Exactly what a full
 * cascade of downsampleMode gives, as every other output voxel sees an unchanged block. Returns what changed
 * in each scale. (A merge is not a relabelling of the coarser scales: with keep < other < drop, a block of
 * other, other, drop, keep had mode `other` and now has `keep`; a drop/other tie flips to keep; so merges
 * recompute too, only where drop was. Most blocks are uniform before and after: with the usual 2 x 2 x 1
 * step three comparisons settle one, so a block that only renames costs no more than that.) The work
 * follows the changed voxels as x-segments per row, never a mask over the box.
 */
export function updatePyramid(p: Pyramid, box0: Box6, runs: Uint32Array): LevelChange[] {
  return updateCoarser(p, box0, updateScale0(p, runs));
}

/**
 * updatePyramid's first step: scale 0's changed voxels as segments, and scale 0's block index brought up to
 * date. After it, scale 0 and its index are final, so its chunks may be encoded (on another thread) while
 * updateCoarser runs.
 */
export function updateScale0(p: Pyramid, runs: Uint32Array): Int32Array {
  const segs = segsOfRuns(runs, p.levels[0].shape, p.levels[0].data);
  const b0 = p.blocks?.[0];
  if (b0) updateBlocks(b0, p.levels[0].data, p.levels[0].shape, segs);
  return segs;
}

/** updatePyramid's cascade over the coarser scales, from scale 0's segments (updateScale0). */
export function updateCoarser(p: Pyramid, box0: Box6, segs0: Int32Array): LevelChange[] {
  let segs = segs0;
  const out: LevelChange[] = [{ box: box0, segs }];
  for (let i = 1; i < p.levels.length; i++) {
    const step = p.steps[i];
    const src = p.levels[i - 1];
    const level = p.levels[i];
    const cand = parentsOf(segs, src.shape, level.shape, step);
    const changed = new Segs();
    const [fx, fy, fz] = step;
    // The finer scale's block index (up to date: updated before this scale is computed), where each
    // parent's source block lies in one of its blocks: a parent of a uniform block takes its label unread.
    const ci = p.blocks?.[i - 1];
    const index = ci && ci.block.every((v, d) => v % step[d] === 0) ? ci : undefined;
    // This scale's own index, as it was before this pass (each voxel is written at most once in it, and
    // the index is brought up to date after): a span of parents that one uniform finer block feeds and
    // that lies in one uniform block here either keeps its label or changes whole, unread.
    const own = p.blocks?.[i];
    const pidx = index && own && own.block[0] % (index.block[0] / fx) === 0 ? own : undefined;
    const pass: LevelPass = { s: src.data, src: src.shape, dst: level.data, shape: level.shape, step, scratch: new Float64Array(fx * fy * fz), index, own: pidx, changed };
    // One call per candidate row: a small function the engine optimizes after a few rows, for every scale.
    for (let k = 0; k < cand.length; k += 3) passRow(pass, cand[k], cand[k + 1], cand[k + 2]);
    segs = changed.done();
    const bi = p.blocks?.[i];
    if (bi) updateBlocks(bi, level.data, level.shape, segs);
    out.push(levelChange(segs, level.shape));
  }
  return out;
}
