import type { Vec3 } from "../../precomputed/array.js";
import { edtSquared } from "../pipeline/edt.js";
import type { LabelDiff } from "./diff.js";

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
class RunWriter {
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

/** Every voxel of `drop` becomes `keep`: a scan of drop's box only, a run per x-run of drop. */
export function mergeDiff(labels: Uint32Array, shape: Vec3, keep: number, drop: number, dropBox: Box6): LabelDiff {
  const [nx, ny] = shape;
  const w = new RunWriter();
  const b: Box6 = [shape[0], shape[1], shape[2], 0, 0, 0];
  for (let z = dropBox[2]; z < dropBox[5]; z++)
    for (let y = dropBox[1]; y < dropBox[4]; y++) {
      const row = nx * (y + ny * z);
      const end = row + dropBox[3];
      for (let i = row + dropBox[0]; i < end; i++) {
        if (labels[i] !== drop) continue;
        const s = i;
        while (i < end && labels[i] === drop) i++;
        w.add(s, i - s, drop, keep);
        const x0 = s - row;
        const x1 = i - row;
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
const UNREACHED = 0xffff;

/** Group of the seed nearest to the point (nm); the first of equally near ones. */
function nearestSeedGroup(seeds: readonly VoxelSeed[], seedNm: readonly number[][], px: number, py: number, pz: number): number {
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
function seededFlood(mask: Uint8Array, shape: Vec3, voxelNm: Vec3, seeds: readonly VoxelSeed[]): { groupOf: Uint16Array; floorLevel: number; d2: Float32Array } {
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
const REACHED = 0x400000;

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

/**
 * splitDiff for big objects, on cells refined along the cut. One pass over the box reads the object's x-runs
 * and marks the cells (grid voxels each, powers of two, on the volume's grid) holding any of its voxels; the
 * seeded watershed runs on those cells (depth in nm, so necks still decide; cells no seed reaches go to the
 * seed nearest their centre). A cell whose six neighbours are all of its piece (or outside) gives that piece to
 * all its voxels. The cells along the cut (those with a neighbour of another piece, so two cells across it) are
 * flooded again voxel by voxel: from the seeds inside them and from the object voxels of the other cells that
 * touch them (fixed, their cell's piece), 6-connected, deepest first on the cells' depth (capped at the same
 * floor) interpolated trilinearly to each voxel. So the cut follows the object's own voxels across the band (a
 * gap narrower than a cell is not crossed, a neck between cells is cut where it is shallowest) and the
 * full-resolution work is the band's, not the box's; band voxels no front reaches keep their cell's piece.
 * Every seed's voxel gets its group, every object voxel a piece. Undefined when seeds of two groups share a
 * cell (the caller then tries a finer grid).
 */
export function splitDiffRefined(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, segment: number, box: Box6, seeds: readonly VoxelSeed[], newIds: readonly number[], grid: Vec3): LabelDiff | undefined {
  const [nx, ny, nz] = shape;
  const [fx, fy, fz] = grid;
  const sx = Math.log2(fx);
  const sy = Math.log2(fy);
  const sz = Math.log2(fz);
  if (![sx, sy, sz].every(Number.isInteger)) throw new Error(`split grid ${grid.join("x")}: cells must be powers of two`);
  const o: Vec3 = [(box[0] >> sx) << sx, (box[1] >> sy) << sy, (box[2] >> sz) << sz];
  const cs: Vec3 = [((box[3] - 1 - o[0]) >> sx) + 1, ((box[4] - 1 - o[1]) >> sy) + 1, ((box[5] - 1 - o[2]) >> sz) + 1];
  // Cells padded by one on every side (outside the object), so every cell has its six neighbours.
  const px = cs[0] + 2;
  const py = cs[1] + 2;
  const pz = cs[2] + 2;
  const pxy = px * py;
  const cellIndex = (x: number, y: number, z: number) => ((x - o[0]) >> sx) + 1 + px * (((y - o[1]) >> sy) + 1 + py * (((z - o[2]) >> sz) + 1));
  // The one pass over the box: the object's x-runs per row (what the last step labels), and its cells.
  const by = box[4] - box[1];
  const rows = by * (box[5] - box[2]);
  const rowFirst = new Int32Array(rows + 1);
  let runs = new Int32Array(1 << 16);
  let nRuns = 0;
  const mask = new Uint8Array(pxy * pz);
  for (let r = 0, z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++, r++) {
      rowFirst[r] = nRuns;
      const row = nx * (y + ny * z);
      const end = row + box[3];
      const crow = cellIndex(o[0], y, z) - 1;
      for (let i = row + box[0]; i < end; i++) {
        if (labels[i] !== segment) continue;
        const s = i;
        while (i < end && labels[i] === segment) i++;
        if (2 * nRuns + 2 > runs.length) {
          const grown = new Int32Array(runs.length * 2);
          grown.set(runs);
          runs = grown;
        }
        const xs = s - row;
        const xe = i - row;
        runs[2 * nRuns] = xs;
        runs[2 * nRuns + 1] = xe;
        nRuns++;
        mask.fill(1, crow + ((xs - o[0]) >> sx) + 1, crow + ((xe - 1 - o[0]) >> sx) + 2);
      }
    }
  rowFirst[rows] = nRuns;
  const cellOf = (v: Vec3) => cellIndex(v[0], v[1], v[2]);
  const taken = new Map<number, number>();
  const cellSeeds: VoxelSeed[] = [];
  for (const s of seeds) {
    const i = cellOf(s.voxel);
    if ((taken.get(i) ?? s.group) !== s.group) return undefined;
    taken.set(i, s.group);
    cellSeeds.push({ voxel: [((s.voxel[0] - o[0]) >> sx) + 1, ((s.voxel[1] - o[1]) >> sy) + 1, ((s.voxel[2] - o[2]) >> sz) + 1], group: s.group });
  }
  const cellNm: Vec3 = [voxelNm[0] * fx, voxelNm[1] * fy, voxelNm[2] * fz];
  const { groupOf: lab, floorLevel, d2: cellD2 } = seededFlood(mask, [px, py, pz], cellNm, cellSeeds);
  const seedNm = seeds.map((s) => [0, 1, 2].map((a) => (s.voxel[a] + 0.5) * voxelNm[a]));
  // Cells no flood reached (pieces of the object apart from every seed's): the seed nearest the cell's centre.
  for (let c = 0; c < lab.length; c++) {
    if (lab[c] !== UNREACHED) continue;
    const cx = (c % px) - 1;
    const cy = (Math.floor(c / px) % py) - 1;
    const cz = Math.floor(c / pxy) - 1;
    lab[c] = 1 + nearestSeedGroup(seeds, seedNm, (o[0] + (cx + 0.5) * fx) * voxelNm[0], (o[1] + (cy + 0.5) * fy) * voxelNm[1], (o[2] + (cz + 0.5) * fz) * voxelNm[2]);
  }
  // The band: cells with a neighbour in another piece, as bricks of full-resolution voxels.
  const brickOfCell = new Int32Array(lab.length).fill(-1);
  const cellOfBrick: number[] = [];
  const steps = [-1, 1, -px, px, -pxy, pxy];
  for (let c = 0; c < lab.length; c++) {
    const l = lab[c];
    if (l === 0) continue;
    for (const d of steps) {
      const m = lab[c + d];
      if (m !== 0 && m !== l) {
        brickOfCell[c] = cellOfBrick.length;
        cellOfBrick.push(c);
        break;
      }
    }
  }
  const cellShift = sx + sy + sz;
  const cellVol = 1 << cellShift;
  const nBand = cellOfBrick.length * cellVol;
  // word per band voxel: 0 outside the object, 1 + level before a front reaches it, (1 + group) * REACHED after.
  const word = new Uint32Array(nBand);
  const cellX0 = (c: number) => o[0] + ((c % px) - 1) * fx;
  const cellY0 = (c: number) => o[1] + ((Math.floor(c / px) % py) - 1) * fy;
  const cellZ0 = (c: number) => o[2] + (Math.floor(c / pxy) - 1) * fz;
  let bandVoxels = 0;
  for (let k = 0; k < cellOfBrick.length; k++) {
    const c = cellOfBrick[k];
    const [x0, y0, z0] = [cellX0(c), cellY0(c), cellZ0(c)];
    for (let lz = 0; lz < fz; lz++) {
      const z = z0 + lz;
      if (z < box[2] || z >= box[5]) continue;
      for (let ly = 0; ly < fy; ly++) {
        const y = y0 + ly;
        if (y < box[1] || y >= box[4]) continue;
        const row = nx * (y + ny * z);
        const base = k * cellVol + ((lz << sy) + ly) * fx;
        for (let lx = 0; lx < fx; lx++) {
          const x = x0 + lx;
          if (x >= box[0] && x < box[3] && labels[row + x] === segment) {
            word[base + lx] = 1;
            bandVoxels++;
          }
        }
      }
    }
  }
  // Depth of a band voxel: the cells' depth (capped at their floor) interpolated trilinearly between the
  // centres of the eight cells around the voxel's centre (cells outside the object: 0), in whole nm.
  const cellDepth = new Float32Array(cellD2.length);
  for (let c = 0; c < cellD2.length; c++) cellDepth[c] = Math.min(floorLevel, Math.sqrt(cellD2[c]));
  // Per axis and voxel offset in a cell: the lower of the two cell centres around it (-1 or 0) and the weight of the upper.
  const lerp = (f: number) => {
    const lowerCell = new Int8Array(f);
    const upperWeight = new Float32Array(f);
    for (let l = 0; l < f; l++) {
      const u = (l + 0.5) / f - 0.5;
      lowerCell[l] = u < 0 ? -1 : 0;
      upperWeight[l] = u < 0 ? u + 1 : u;
    }
    return { lowerCell, upperWeight };
  };
  const [ix, iy, iz] = [lerp(fx), lerp(fy), lerp(fz)];
  let maxLevel = 0;
  for (let k = 0; k < cellOfBrick.length; k++) {
    const cc = cellOfBrick[k];
    for (let lz = 0; lz < fz; lz++)
      for (let ly = 0; ly < fy; ly++) {
        const base = k * cellVol + ((lz << sy) + ly) * fx;
        const wz = iz.upperWeight[lz];
        const wy = iy.upperWeight[ly];
        const c0 = cc + iy.lowerCell[ly] * px + iz.lowerCell[lz] * pxy;
        for (let lx = 0; lx < fx; lx++) {
          if (word[base + lx] === 0) continue;
          const wx = ix.upperWeight[lx];
          const c = c0 + ix.lowerCell[lx];
          const a0 = cellDepth[c] + wx * (cellDepth[c + 1] - cellDepth[c]);
          const a1 = cellDepth[c + px] + wx * (cellDepth[c + px + 1] - cellDepth[c + px]);
          const b0 = cellDepth[c + pxy] + wx * (cellDepth[c + pxy + 1] - cellDepth[c + pxy]);
          const b1 = cellDepth[c + pxy + px] + wx * (cellDepth[c + pxy + px + 1] - cellDepth[c + pxy + px]);
          const a = a0 + wy * (a1 - a0);
          const l = Math.floor(a + wz * (b0 + wy * (b1 - b0) - a));
          word[base + lx] = 1 + l;
          if (l > maxLevel) maxLevel = l;
        }
      }
  }
  const perLevel = new Int32Array(maxLevel + 1);
  for (let v = 0; v < nBand; v++) if (word[v] !== 0) perLevel[word[v] - 1]++;
  // Bucket queue as in seededFlood (bucket 0 the deepest level; FIFO within a bucket).
  const start = new Int32Array(maxLevel + 2);
  for (let b = 0; b <= maxLevel; b++) start[b + 1] = start[b] + perLevel[maxLevel - b];
  const fill = start.slice(0, maxLevel + 1);
  const regions = new Int32Array(bandVoxels);
  const late = new Int32Array(bandVoxels);
  const localOf = (x: number, y: number, z: number, c: number) => (((z - cellZ0(c)) << sy) + y - cellY0(c)) * fx + x - cellX0(c);
  const reach = (v: number, g: number) => {
    const wv = word[v];
    if (wv === 0 || wv >= REACHED) return;
    word[v] = (1 + g) * REACHED;
    regions[fill[maxLevel - (wv - 1)]++] = v;
  };
  // The seeds inside the band first, then the band voxels touching an object voxel of a cell outside it.
  for (const s of seeds) {
    const c = cellOf(s.voxel);
    const k = brickOfCell[c];
    if (k >= 0) reach(k * cellVol + localOf(s.voxel[0], s.voxel[1], s.voxel[2], c), s.group);
  }
  const mx = fx - 1;
  const my = (fy - 1) * fx;
  const mz = (fz - 1) * fx * fy;
  const sxy = fx * fy;
  for (let k = 0; k < cellOfBrick.length; k++) {
    const c = cellOfBrick[k];
    let fixedSides = 0;
    for (let d = 0; d < 6; d++) if (brickOfCell[c + steps[d]] < 0 && lab[c + steps[d]] !== 0) fixedSides |= 1 << d;
    if (fixedSides === 0) continue;
    const [x0, y0, z0] = [cellX0(c), cellY0(c), cellZ0(c)];
    // Side by side (-x, +x, -y, +y, -z, +z), the face's voxels in raster order: reached from the voxel across
    // the face when that is an object voxel (the object lies inside its box).
    for (let d = 0; d < 6; d++) {
      if (!(fixedSides & (1 << d))) continue;
      const axis = d >> 1;
      const lAt = d & 1 ? [fx, fy, fz][axis] - 1 : 0;
      const step = d & 1 ? 1 : -1;
      const lzs = axis === 2 ? [lAt, lAt + 1] : [0, fz];
      const lys = axis === 1 ? [lAt, lAt + 1] : [0, fy];
      const lxs = axis === 0 ? [lAt, lAt + 1] : [0, fx];
      const ux0 = x0 + (axis === 0 ? step : 0);
      const uy0 = y0 + (axis === 1 ? step : 0);
      const uz0 = z0 + (axis === 2 ? step : 0);
      const g = lab[c + steps[d]] - 1;
      for (let lz = lzs[0]; lz < lzs[1]; lz++) {
        const uz = uz0 + lz;
        if (uz < box[2] || uz >= box[5]) continue;
        for (let ly = lys[0]; ly < lys[1]; ly++) {
          const uy = uy0 + ly;
          if (uy < box[1] || uy >= box[4]) continue;
          const urow = nx * (uy + ny * uz);
          const vrow = k * cellVol + ((lz << sy) + ly) * fx;
          for (let lx = lxs[0]; lx < lxs[1]; lx++) {
            const ux = ux0 + lx;
            if (ux < box[0] || ux >= box[3]) continue;
            const wv = word[vrow + lx];
            if (wv === 0 || wv >= REACHED || labels[urow + ux] !== segment) continue;
            reach(vrow + lx, g);
          }
        }
      }
    }
  }
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
      const k = v >> cellShift;
      const local = v - k * cellVol;
      const c = cellOfBrick[k];
      const lx = local & mx;
      const ly = (local >> sx) & (fy - 1);
      const lz = local >> (sx + sy);
      let kk: number;
      nb[0] = lx > 0 ? v - 1 : (kk = brickOfCell[c - 1]) >= 0 ? kk * cellVol + local + mx : -1;
      nb[1] = lx < mx ? v + 1 : (kk = brickOfCell[c + 1]) >= 0 ? kk * cellVol + local - mx : -1;
      nb[2] = ly > 0 ? v - fx : (kk = brickOfCell[c - px]) >= 0 ? kk * cellVol + local + my : -1;
      nb[3] = ly < fy - 1 ? v + fx : (kk = brickOfCell[c + px]) >= 0 ? kk * cellVol + local - my : -1;
      nb[4] = lz > 0 ? v - sxy : (kk = brickOfCell[c - pxy]) >= 0 ? kk * cellVol + local + mz : -1;
      nb[5] = lz < fz - 1 ? v + sxy : (kk = brickOfCell[c + pxy]) >= 0 ? kk * cellVol + local - mz : -1;
      for (let d = 0; d < 6; d++) {
        const u = nb[d];
        if (u < 0) continue;
        const wu = word[u];
        if (wu === 0 || wu >= REACHED) continue;
        word[u] = g;
        const bu = maxLevel - (wu - 1);
        if (bu > b) regions[fill[bu]++] = u;
        else late[lateN++] = u;
      }
    }
  }
  // Each run of the object: cells off the band give their piece to the whole stretch, band cells voxel by
  // voxel. stretchEnd: per cell off the band, the first x past it and the following cells of its piece off the band.
  const stretchEnd = new Int32Array(lab.length);
  for (let c = lab.length - 2; c > 0; c--) {
    if (lab[c] === 0 || brickOfCell[c] >= 0) continue;
    const same = lab[c + 1] === lab[c] && brickOfCell[c + 1] < 0 && c % px !== px - 2;
    stretchEnd[c] = same ? stretchEnd[c + 1] : o[0] + (c % px) * fx;
  }
  const w = new RunWriter();
  for (let r = 0, z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++, r++) {
      const row = nx * (y + ny * z);
      const crow = cellIndex(o[0], y, z) - 1;
      for (let q = rowFirst[r]; q < rowFirst[r + 1]; q++) {
        const xe = runs[2 * q + 1];
        for (let x = runs[2 * q]; x < xe; ) {
          const ci = (x - o[0]) >> sx;
          const c = crow + ci + 1;
          const cellEnd = Math.min(xe, o[0] + ((ci + 1) << sx));
          const k = brickOfCell[c];
          if (k < 0) {
            // Off the band: on to the end of the run, the band or another piece, whichever comes first.
            const stop = Math.min(xe, stretchEnd[c]);
            w.add(row + x, stop - x, segment, newIds[lab[c] - 1]);
            x = stop;
            continue;
          }
          const base = k * cellVol + localOf(x, y, z, c) - x;
          const own = lab[c] * REACHED;
          let from = x;
          let prev = 0;
          for (; x < cellEnd; x++) {
            const st = word[base + x];
            const g = st >= REACHED ? st : own;
            if (g !== prev) {
              if (prev !== 0) w.add(row + from, x - from, segment, newIds[prev / REACHED - 1]);
              from = x;
              prev = g;
            }
          }
          w.add(row + from, x - from, segment, newIds[prev / REACHED - 1]);
        }
      }
    }
  return { runs: w.done(), bbox: [...box] };
}
