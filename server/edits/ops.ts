import type { Vec3 } from "../../precomputed/array.js";
import { edtSquared } from "../pipeline/edt.js";
import type { KnownBlocks, LabelDiff } from "./diff.js";

/**
 * The label-changing kernels of proofreading, pure over a Uint32 label volume (x fastest). Each returns the
 * diff it would make without touching `labels`, so the caller applies it only once it can also commit it,
 * and replaying the log runs exactly the same code.
 */

/** Voxel box x0, y0, z0, x1, y1, z1 (end exclusive). */
export type Box6 = [number, number, number, number, number, number];

export function parseBox(bbox: string): Box6 | undefined {
  const v = bbox.trim().split(/\s+/).map(Number);
  return v.length === 6 && v.every(Number.isInteger) ? (v as Box6) : undefined;
}

export function unionBox(a: Box6, b: Box6): Box6 {
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.min(a[2], b[2]), Math.max(a[3], b[3]), Math.max(a[4], b[4]), Math.max(a[5], b[5])];
}

/** Box of the given ids by a full scan: for replay and recovery, where no table of boxes is at hand. */
export function scanBox(labels: Uint32Array, shape: Vec3, ids: ReadonlySet<number>): Box6 | undefined {
  const [nx, ny, nz] = shape;
  const b: Box6 = [nx, ny, nz, 0, 0, 0];
  let i = 0;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++, i++) {
        if (labels[i] === 0 || !ids.has(labels[i])) continue;
        if (x < b[0]) b[0] = x;
        if (y < b[1]) b[1] = y;
        if (z < b[2]) b[2] = z;
        if (x >= b[3]) b[3] = x + 1;
        if (y >= b[4]) b[4] = y + 1;
        if (z >= b[5]) b[5] = z + 1;
      }
  return b[3] > b[0] ? b : undefined;
}

/**
 * Runs of (start, length, old, new) appended in increasing index order, merged with the previous run when
 * contiguous with the same labels: the same runs DiffBuilder makes, pushed a run at a time (not a voxel).
 */
export class RunWriter {
  runs = new Uint32Array(4096);
  n = 0;
  add(start: number, length: number, oldLabel: number, newLabel: number): void {
    const k = 4 * (this.n - 1);
    const r = this.runs;
    if (this.n > 0 && r[k] + r[k + 1] === start && r[k + 2] === oldLabel && r[k + 3] === newLabel) {
      r[k + 1] += length;
      return;
    }
    if (4 * (this.n + 1) > r.length) {
      const grown = new Uint32Array(r.length * 2);
      grown.set(r);
      this.runs = grown;
    }
    const j = 4 * this.n++;
    this.runs[j] = start;
    this.runs[j + 1] = length;
    this.runs[j + 2] = oldLabel;
    this.runs[j + 3] = newLabel;
  }
  done(): Uint32Array {
    return this.runs.slice(0, 4 * this.n);
  }
}

/** The x-runs [x0, x1) of one label in each row of a box: row r's are runs[2q], runs[2q + 1] for rowFirst[r] <= q < rowFirst[r + 1]. */
export interface RowRuns {
  /** Rows of the box, z-major then y (r = y - y0 + (box height) * (z - z0)); one more entry at the end. */
  rowFirst: Int32Array;
  runs: Int32Array;
  n: number;
}

/**
 * The x-runs of `id` over `box`, row by row. With `known` (the block index of `labels`, in step with them), a
 * block known to hold one label is taken whole without reading its voxels: a large object's box is mostly
 * such blocks, and this scan is most of planning a merge or a big split. Same runs either way.
 */
export function labelRuns(labels: Uint32Array, shape: Vec3, id: number, box: Box6, known?: KnownBlocks): RowRuns {
  const [nx, ny] = shape;
  const rows = (box[4] - box[1]) * (box[5] - box[2]);
  const rowFirst = new Int32Array(rows + 1);
  const out: RowRuns = { rowFirst, runs: new Int32Array(1 << 16), n: 0 };
  const useKnown = known !== undefined && known.shape[0] === nx && known.shape[1] === ny && known.shape[2] === shape[2];
  for (let r = 0, z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++, r++) {
      rowFirst[r] = out.n;
      if (useKnown) rowRunsKnown(labels, nx * (y + ny * z), y, z, id, box[0], box[3], known, out);
      else rowRunsRead(labels, nx * (y + ny * z), id, box[0], box[3], out);
    }
  rowFirst[rows] = out.n;
  out.runs = out.runs.slice(0, 2 * out.n);
  return out;
}

function pushRun(out: RowRuns, x0: number, x1: number): void {
  if (2 * out.n + 2 > out.runs.length) {
    const grown = new Int32Array(out.runs.length * 2);
    grown.set(out.runs);
    out.runs = grown;
  }
  out.runs[2 * out.n] = x0;
  out.runs[2 * out.n + 1] = x1;
  out.n++;
}

/** One row's runs of `id` in [x0, x1), every voxel read. */
function rowRunsRead(labels: Uint32Array, row: number, id: number, x0: number, x1: number, out: RowRuns): void {
  const end = row + x1;
  for (let i = row + x0; i < end; i++) {
    if (labels[i] !== id) continue;
    const s = i;
    while (i < end && labels[i] === id) i++;
    pushRun(out, s - row, i - row);
  }
}

/** rowRunsRead, taking the row's stretches through uniform blocks from the block index. */
function rowRunsKnown(labels: Uint32Array, row: number, y: number, z: number, id: number, x0: number, x1: number, known: KnownBlocks, out: RowRuns): void {
  const [bx, by, bz] = known.block;
  const [gx, gy] = known.grid;
  const blockRow = gx * (Math.floor(y / by) + gy * Math.floor(z / bz));
  const { uniform, values } = known;
  const lastBlock = blockRow + Math.floor((x1 - 1) / bx);
  let start = -1;
  let x = x0;
  for (let b = blockRow + Math.floor(x0 / bx); b <= lastBlock; b++) {
    if (uniform[b] === 1) {
      const inside = values[b] === id;
      // A stretch of blocks all of id (or all not of it): one step.
      let e = b;
      while (e < lastBlock && uniform[e + 1] === 1 && (values[e + 1] === id) === inside) e++;
      if (inside) {
        if (start < 0) start = x;
      } else if (start >= 0) {
        pushRun(out, start, x);
        start = -1;
      }
      b = e;
      x = Math.min(x1, (b - blockRow + 1) * bx);
      continue;
    }
    const blockEnd = Math.min(x1, (b - blockRow + 1) * bx);
    for (; x < blockEnd; x++) {
      if (labels[row + x] === id) {
        if (start < 0) start = x;
      } else if (start >= 0) {
        pushRun(out, start, x);
        start = -1;
      }
    }
  }
  if (start >= 0) pushRun(out, start, x1);
}

/** Every voxel of `drop` becomes `keep`: a scan of drop's box only, a run per x-run of drop. */
export function mergeDiff(labels: Uint32Array, shape: Vec3, keep: number, drop: number, dropBox: Box6, known?: KnownBlocks): LabelDiff {
  const [nx, ny] = shape;
  const w = new RunWriter();
  const b: Box6 = [shape[0], shape[1], shape[2], 0, 0, 0];
  const { rowFirst, runs } = labelRuns(labels, shape, drop, dropBox, known);
  for (let r = 0, z = dropBox[2]; z < dropBox[5]; z++)
    for (let y = dropBox[1]; y < dropBox[4]; y++, r++) {
      const row = nx * (y + ny * z);
      for (let q = rowFirst[r]; q < rowFirst[r + 1]; q++) {
        const x0 = runs[2 * q];
        const x1 = runs[2 * q + 1];
        w.add(row + x0, x1 - x0, drop, keep);
        if (x0 < b[0]) b[0] = x0;
        if (x1 > b[3]) b[3] = x1;
        if (y < b[1]) b[1] = y;
        if (y + 1 > b[4]) b[4] = y + 1;
        if (z < b[2]) b[2] = z;
        if (z + 1 > b[5]) b[5] = z + 1;
      }
    }
  return { runs: w.done(), bbox: w.n === 0 ? [0, 0, 0, 0, 0, 0] : b };
}

export interface VoxelSeed {
  /** Voxel coordinates inside the volume. */
  voxel: Vec3;
  /** Index of the seed's group, 0..groups-1. */
  group: number;
}

/**
 * Seeded watershed of one segment on its distance transform: each group floods from its seeds, deepest
 * voxels (far from the boundary) first, so cuts fall on the necks between blobs. 6-connected flood (4x
 * cheaper than 26 on 10^8 voxels); voxels it cannot reach (pieces joined only by an edge or corner, or
 * separate pieces after a merge) go to the group of the nearest seed. Group g's voxels get `newIds[g]`.
 */
export function splitDiff(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, segment: number, box: Box6, seeds: readonly VoxelSeed[], newIds: readonly number[]): LabelDiff {
  const [nx, ny, nz] = shape;
  // One voxel of margin so the object's outside is background for the transform, also at the crop edge.
  const o: Vec3 = [Math.max(0, box[0] - 1), Math.max(0, box[1] - 1), Math.max(0, box[2] - 1)];
  const e: Vec3 = [Math.min(nx, box[3] + 1), Math.min(ny, box[4] + 1), Math.min(nz, box[5] + 1)];
  const [cx, cy, cz] = [e[0] - o[0], e[1] - o[1], e[2] - o[2]];
  const mask = new Uint8Array(cx * cy * cz);
  let c = 0;
  for (let z = o[2]; z < e[2]; z++)
    for (let y = o[1]; y < e[1]; y++) {
      const row = nx * (y + ny * z);
      for (let x = o[0]; x < e[0]; x++, c++) if (labels[row + x] === segment) mask[c] = 1;
    }
  const cropSeeds = seeds.map((s) => ({ voxel: [s.voxel[0] - o[0], s.voxel[1] - o[1], s.voxel[2] - o[2]] as Vec3, group: s.group }));
  const { groupOf } = seededFlood(mask, [cx, cy, cz], voxelNm, cropSeeds);
  const seedNm = seeds.map((s) => [0, 1, 2].map((a) => (s.voxel[a] + 0.5) * voxelNm[a]));
  // Runs are written per x-run of one group (not per voxel); the changed box is the segment's box.
  const w = new RunWriter();
  c = 0;
  for (let z = o[2]; z < e[2]; z++)
    for (let y = o[1]; y < e[1]; y++) {
      const row = nx * (y + ny * z);
      let runStart = -1;
      let runId = 0;
      for (let x = o[0]; x < e[0]; x++, c++) {
        const st = groupOf[c];
        let id = 0;
        if (st === UNREACHED) id = newIds[nearestSeedGroup(seeds, seedNm, (x + 0.5) * voxelNm[0], (y + 0.5) * voxelNm[1], (z + 0.5) * voxelNm[2])];
        else if (st !== 0) id = newIds[st - 1];
        if (id !== runId) {
          if (runId !== 0) w.add(runStart, row + x - runStart, segment, runId);
          runStart = row + x;
          runId = id;
        }
      }
      if (runId !== 0) w.add(runStart, row + e[0] - runStart, segment, runId);
    }
  return { runs: w.done(), bbox: [...box] };
}

/** Marks an object voxel that no seed's flood reached (groupOf). */
export const UNREACHED = 0xffff;

/** Group of the seed nearest to the point (nm); the first of equally near ones. */
export function nearestSeedGroup(seeds: readonly VoxelSeed[], seedNm: readonly number[][], px: number, py: number, pz: number): number {
  let best = Infinity;
  let g = 0;
  for (let k = 0; k < seeds.length; k++) {
    const q = seedNm[k];
    const dd = (px - q[0]) ** 2 + (py - q[1]) ** 2 + (pz - q[2]) ** 2;
    if (dd < best) {
      best = dd;
      g = seeds[k].group;
    }
  }
  return g;
}

/**
 * The seeded watershed itself, on a mask (x fastest) with seeds in its coordinates: 1 + group per voxel in
 * groupOf (0 outside the mask, UNREACHED where no flood got), the floor level (whole nm) depth was capped at,
 * and the squared depths (nm^2).
 */
export function seededFlood(mask: Uint8Array, shape: Vec3, voxelNm: Vec3, seeds: readonly VoxelSeed[]): { groupOf: Uint16Array; floorLevel: number; d2: Float32Array } {
  const [cx, cy, cz] = shape;
  const n = cx * cy * cz;
  const d2 = edtSquared(mask, [cx, cy, cz], voxelNm, { output: "float32" });
  // The flood runs on the crop padded by one voxel on every side (outside the object there), so the six
  // neighbours of an object voxel always exist, and stored in 8x8x8 bricks, so that they mostly share
  // cache lines and pages with it (in raster order a z neighbour is a whole plane away: the flood was
  // memory-bound, ~400 ns per voxel at 20 Mvoxel). One word per voxel: 0 outside the object, 1 + depth
  // level (whole nm) before the flood reaches it, (1 + group) * REACHED once it has.
  const nbx = (cx + 9) >> 3;
  const nby = (cy + 9) >> 3;
  const nbz = (cz + 9) >> 3;
  const sy = 512 * nbx;
  const sz = 512 * nbx * nby;
  const brickOf = (x: number, y: number, z: number) => (((z >> 3) * nby + (y >> 3)) * nbx + (x >> 3)) * 512 + (((z & 7) << 6) | ((y & 7) << 3) | (x & 7));
  const word = new Uint32Array(sz * nbz);
  // Bucket queue on whole nm of depth: deterministic (FIFO within a bucket), O(1) per voxel.
  let maxLevel = 0;
  let objectVoxels = 0;
  // Voxels per depth level, grown as deeper levels appear.
  let perLevel = new Int32Array(1024);
  // Depth counts only down to the shallowest seed: everything deeper is one flat floor that the seeds'
  // fronts cross breadth-first, together. Without it, the deepest seed floods every deeper voxel (the
  // whole core of a neckless object) before a shallower seed moves, leaving that seed a sliver; necks
  // shallower than the seeds still wait for their own level, so cuts still fall on them.
  let floorLevel = REACHED - 2;
  for (const s of seeds) {
    const i = s.voxel[0] + cx * (s.voxel[1] + cy * s.voxel[2]);
    if (i >= 0 && i < n && mask[i]) floorLevel = Math.min(floorLevel, Math.floor(Math.sqrt(d2[i])));
  }
  let c = 0;
  for (let z = 0; z < cz; z++)
    for (let y = 0; y < cy; y++)
      for (let x = 0; x < cx; x++, c++) {
        if (!mask[c]) continue;
        const l = Math.min(floorLevel, Math.floor(Math.sqrt(d2[c])));
        word[brickOf(x + 1, y + 1, z + 1)] = 1 + l;
        if (l > maxLevel) maxLevel = l;
        if (l >= perLevel.length) {
          const grown = new Int32Array(Math.max(2 * perLevel.length, l + 1));
          grown.set(perLevel);
          perLevel = grown;
        }
        perLevel[l]++;
        objectVoxels++;
      }
  // Contiguous queues, not linked lists: following `next` links was a chain of dependent cache misses.
  // Bucket b is, in push order, what earlier buckets pushed into it (only voxels of level b, so a region
  // of as many slots as voxels of that level) and then what its own processing pushes (levels b and deeper: `late`, reused).
  const start = new Int32Array(maxLevel + 2);
  for (let b = 0; b <= maxLevel; b++) start[b + 1] = start[b] + perLevel[maxLevel - b];
  const fill = start.slice(0, maxLevel + 1);
  const regions = new Int32Array(objectVoxels);
  const late = new Int32Array(objectVoxels);
  // bucket 0 holds the deepest level
  for (const s of seeds) {
    const v = brickOf(s.voxel[0] + 1, s.voxel[1] + 1, s.voxel[2] + 1);
    const wv = word[v];
    if (wv === 0 || wv >= REACHED) continue;
    word[v] = (1 + s.group) * REACHED;
    regions[fill[maxLevel - (wv - 1)]++] = v;
  }
  // Neighbour order -x, +x, -y, +y, -z, +z (the order fixes FIFO ties, so it is part of the result).
  const nb = new Int32Array(6);
  for (let b = 0; b <= maxLevel; b++) {
    let lateN = 0;
    const regionEnd = fill[b];
    for (let q = start[b]; ; q++) {
      let v: number;
      if (q < regionEnd) v = regions[q];
      else if (q - regionEnd < lateN) v = late[q - regionEnd];
      else break;
      const g = word[v];
      const lx = v & 7;
      const ly = (v >> 3) & 7;
      const lz = (v >> 6) & 7;
      nb[0] = lx > 0 ? v - 1 : v - 505;
      nb[1] = lx < 7 ? v + 1 : v + 505;
      nb[2] = ly > 0 ? v - 8 : v - sy + 56;
      nb[3] = ly < 7 ? v + 8 : v + sy - 56;
      nb[4] = lz > 0 ? v - 64 : v - sz + 448;
      nb[5] = lz < 7 ? v + 64 : v + sz - 448;
      for (let k = 0; k < 6; k++) {
        const u = nb[k];
        const wu = word[u];
        if (wu === 0 || wu >= REACHED) continue;
        word[u] = g;
        const bu = maxLevel - (wu - 1);
        if (bu > b) regions[fill[bu]++] = u;
        else late[lateN++] = u;
      }
    }
  }
  const groupOf = new Uint16Array(n);
  c = 0;
  for (let z = 0; z < cz; z++)
    for (let y = 0; y < cy; y++)
      for (let x = 0; x < cx; x++, c++) {
        const st = word[brickOf(x + 1, y + 1, z + 1)];
        groupOf[c] = st >= REACHED ? st / REACHED : st !== 0 ? UNREACHED : 0;
      }
  return { groupOf, floorLevel, d2 };
}

/** word states of the floods: (1 + group) * REACHED once reached; 2^22: depth levels up to 4 mm, groups (<= 1000) fit above. */
export const REACHED = 0x400000;

/** Objects whose box exceeds this many voxels split on cells (splitGrid); the grid of the smallest of them. */
export const COARSE_SPLIT_VOXELS = 4_000_000;
export const COARSE_SPLIT_GRID: Vec3 = [4, 4, 2];

/**
 * splitDiff on a coarser grid, for big objects (the transform and the flood are O(box) and dominate a
 * split: ~5 s CPU at 2 * 10^7 voxels at full resolution). A coarse cell (grid[0] x grid[1] x grid[2] fine
 * voxels) belongs to the object when any of its voxels does, so every object voxel and every seed has one;
 * the seeded watershed runs on the cells (depth in nm, so necks still decide), and each object voxel takes
 * its cell's piece. The cut is thus placed to a cell (10 nm in xy at 5 nm voxels) instead of a voxel.
 * Undefined when seeds of two groups share a cell (the caller then splits at full resolution).
 * What splits ran before splitDiffRefined (their logged grids have one section per cell); kept to replay them.
 */
export function splitDiffCoarse(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, segment: number, box: Box6, seeds: readonly VoxelSeed[], newIds: readonly number[], grid: Vec3): LabelDiff | undefined {
  const [nx, ny] = shape;
  const [fx, fy, fz] = grid;
  // Cells on the volume's grid (not the box's), so the result does not depend on how tight the box is.
  const o: Vec3 = [Math.floor(box[0] / fx) * fx, Math.floor(box[1] / fy) * fy, Math.floor(box[2] / fz) * fz];
  const cs: Vec3 = [Math.ceil((box[3] - o[0]) / fx), Math.ceil((box[4] - o[1]) / fy), Math.ceil((box[5] - o[2]) / fz)];
  const coarse = new Uint32Array(cs[0] * cs[1] * cs[2]);
  // Cells are powers of two wide in x (splitGrid's), so a voxel's cell is a shift, not a division: these
  // two passes read every voxel of the box (10^8 at the sizes this is for).
  const shiftX = Math.log2(fx);
  if (!Number.isInteger(shiftX)) throw new Error(`split grid ${grid.join("x")}: x must be a power of two`);
  for (let z = box[2]; z < box[5]; z++) {
    const cz = Math.floor((z - o[2]) / fz);
    for (let y = box[1]; y < box[4]; y++) {
      const row = nx * (y + ny * z);
      const crow = cs[0] * (Math.floor((y - o[1]) / fy) + cs[1] * cz);
      for (let x = box[0]; x < box[3]; x++) if (labels[row + x] === segment) coarse[crow + ((x - o[0]) >> shiftX)] = segment;
    }
  }
  const cellOf = (v: Vec3): Vec3 => [Math.floor((v[0] - o[0]) / fx), Math.floor((v[1] - o[1]) / fy), Math.floor((v[2] - o[2]) / fz)];
  const taken = new Map<number, number>();
  const coarseSeeds: VoxelSeed[] = [];
  for (const s of seeds) {
    const c = cellOf(s.voxel);
    const i = c[0] + cs[0] * (c[1] + cs[1] * c[2]);
    if ((taken.get(i) ?? s.group) !== s.group) return undefined;
    taken.set(i, s.group);
    coarseSeeds.push({ voxel: c, group: s.group });
  }
  const cellNm: Vec3 = [voxelNm[0] * fx, voxelNm[1] * fy, voxelNm[2] * fz];
  const d = splitDiff(coarse, cs, cellNm, segment, [0, 0, 0, cs[0], cs[1], cs[2]], coarseSeeds, newIds);
  for (let k = 0; k < d.runs.length; k += 4) coarse.fill(d.runs[k + 3], d.runs[k], d.runs[k] + d.runs[k + 1]);
  // Each object voxel takes its cell's new id; runs per x-run of one id, as splitDiff writes them.
  const w = new RunWriter();
  for (let z = box[2]; z < box[5]; z++) {
    const cz = Math.floor((z - o[2]) / fz);
    for (let y = box[1]; y < box[4]; y++) {
      const row = nx * (y + ny * z);
      const crow = cs[0] * (Math.floor((y - o[1]) / fy) + cs[1] * cz);
      let runStart = -1;
      let runId = 0;
      for (let x = box[0]; x < box[3]; x++) {
        const id = labels[row + x] === segment ? coarse[crow + ((x - o[0]) >> shiftX)] : 0;
        if (id !== runId) {
          if (runId !== 0) w.add(runStart, row + x - runStart, segment, runId);
          runStart = row + x;
          runId = id;
        }
      }
      if (runId !== 0) w.add(runStart, row + box[3] - runStart, segment, runId);
    }
  }
  return { runs: w.done(), bbox: [...box] };
}

/** Boxes up to COARSE_SPLIT_VOXELS split at full resolution; bigger ones on cells of at most this many per split (refineGrid). */
export const REFINE_SPLIT_CELLS = 500_000;

/**
 * The cell of a refined split of an object with this box (splitDiffRefined): full resolution up to
 * COARSE_SPLIT_VOXELS, then the smallest of 2 x 2 x 2, 4 x 4 x 2, 8 x 8 x 2, 8 x 8 x 4, 16 x 16 x 4, 16 x 16 x 8,
 * ... voxels (40 x 40 x 180 nm at 5 x 5 x 45 nm voxels for 10^8 voxels) that keeps the cells under REFINE_SPLIT_CELLS.
 * Always at least 2 in z: a logged grid of one section per cell is a split made before the refinement
 * (splitDiffCoarse), and replays as one.
 */
export function splitGrid(box: Box6): Vec3 {
  const n = (box[3] - box[0]) * (box[4] - box[1]) * (box[5] - box[2]);
  if (n <= COARSE_SPLIT_VOXELS) return [1, 1, 1];
  const g: Vec3 = [2, 2, 2];
  while (n / (g[0] * g[1] * g[2]) > REFINE_SPLIT_CELLS && g[0] < 1024) {
    if (g[0] < 4 * g[2]) g[0] = g[1] = 2 * g[0];
    else g[2] *= 2;
  }
  return g;
}

/** The next finer grid of splitGrid's ladder, undefined below 2 x 2 x 2 (for seeds of two groups in one cell). */
export function finerGrid(g: Vec3): Vec3 | undefined {
  if (g[0] <= 2 && g[2] <= 2) return undefined;
  return g[2] <= 2 || g[0] >= 4 * g[2] ? [Math.max(1, g[0] / 2), Math.max(1, g[1] / 2), g[2]] : [g[0], g[1], g[2] / 2];
}

export { splitDiffRefined } from "./split-refined.js";
