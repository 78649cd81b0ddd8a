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
 *
 * Each step is its own function: V8 compiles a long function mid-loop on its first big input and throws that
 * code away on reaching a step not run yet, so as one function the first 10^8-voxel split planned at a third
 * of the speed of a later one.
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { KnownBlocks, LabelDiff } from "./diff.js";
import { labelRuns, nearestSeedGroup, REACHED, RunWriter, seededFlood, UNREACHED, type Box6, type RowRuns, type VoxelSeed } from "./ops.js";

/** The cell grid over the box: cells of fx x fy x fz voxels (shifts sx, sy, sz) from o, padded by one cell. */
interface Cells {
  o: Vec3;
  fx: number;
  fy: number;
  fz: number;
  sx: number;
  sy: number;
  sz: number;
  px: number;
  py: number;
  pz: number;
  pxy: number;
}

/** A cell's lowest voxel on one axis. */
const cellX0 = (g: Cells, c: number) => g.o[0] + ((c % g.px) - 1) * g.fx;
const cellY0 = (g: Cells, c: number) => g.o[1] + ((Math.floor(c / g.px) % g.py) - 1) * g.fy;
const cellZ0 = (g: Cells, c: number) => g.o[2] + (Math.floor(c / g.pxy) - 1) * g.fz;
const cellIndex = (g: Cells, x: number, y: number, z: number) => ((x - g.o[0]) >> g.sx) + 1 + g.px * (((y - g.o[1]) >> g.sy) + 1 + g.py * (((z - g.o[2]) >> g.sz) + 1));

export function splitDiffRefined(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, segment: number, box: Box6, seeds: readonly VoxelSeed[], newIds: readonly number[], grid: Vec3, known?: KnownBlocks): LabelDiff | undefined {
  const [fx, fy, fz] = grid;
  const sx = Math.log2(fx);
  const sy = Math.log2(fy);
  const sz = Math.log2(fz);
  if (![sx, sy, sz].every(Number.isInteger)) throw new Error(`split grid ${grid.join("x")}: cells must be powers of two`);
  const o: Vec3 = [(box[0] >> sx) << sx, (box[1] >> sy) << sy, (box[2] >> sz) << sz];
  const cs: Vec3 = [((box[3] - 1 - o[0]) >> sx) + 1, ((box[4] - 1 - o[1]) >> sy) + 1, ((box[5] - 1 - o[2]) >> sz) + 1];
  // Cells padded by one on every side (outside the object), so every cell has its six neighbours.
  const g: Cells = { o, fx, fy, fz, sx, sy, sz, px: cs[0] + 2, py: cs[1] + 2, pz: cs[2] + 2, pxy: (cs[0] + 2) * (cs[1] + 2) };
  // The one pass over the box: the object's x-runs per row (what the last step labels), and its cells.
  const rowRuns = labelRuns(labels, shape, segment, box, known);
  const mask = objectCells(rowRuns, box, g);
  const taken = new Map<number, number>();
  const cellSeeds: VoxelSeed[] = [];
  for (const s of seeds) {
    const i = cellIndex(g, s.voxel[0], s.voxel[1], s.voxel[2]);
    if ((taken.get(i) ?? s.group) !== s.group) return undefined;
    taken.set(i, s.group);
    cellSeeds.push({ voxel: [((s.voxel[0] - o[0]) >> sx) + 1, ((s.voxel[1] - o[1]) >> sy) + 1, ((s.voxel[2] - o[2]) >> sz) + 1], group: s.group });
  }
  const cellNm: Vec3 = [voxelNm[0] * fx, voxelNm[1] * fy, voxelNm[2] * fz];
  const { groupOf: lab, floorLevel, d2: cellD2 } = seededFlood(mask, [g.px, g.py, g.pz], cellNm, cellSeeds);
  unreachedToNearest(lab, g, seeds, voxelNm);
  const { brickOfCell, cellOfBrick } = bandCells(lab, g);
  const band = bandWords(labels, shape, segment, box, g, cellOfBrick);
  const maxLevel = bandDepths(band.word, g, cellOfBrick, cellD2, floorLevel);
  const queue = bandQueue(band.word, maxLevel, band.voxels);
  for (const s of seeds) {
    const c = cellIndex(g, s.voxel[0], s.voxel[1], s.voxel[2]);
    const k = brickOfCell[c];
    if (k >= 0) reach(queue, k * (1 << (sx + sy + sz)) + localOf(g, s.voxel[0], s.voxel[1], s.voxel[2], c), s.group);
  }
  seedBandFaces(labels, shape, segment, box, g, lab, brickOfCell, cellOfBrick, queue);
  floodBand(queue, g, brickOfCell, cellOfBrick);
  return { runs: writeRuns(rowRuns, shape, segment, box, g, lab, brickOfCell, band.word, newIds), bbox: [...box] };
}

/** The cells holding a voxel of the object (1), from its runs. */
function objectCells({ rowFirst, runs }: RowRuns, box: Box6, g: Cells): Uint8Array {
  const mask = new Uint8Array(g.pxy * g.pz);
  const { o, sx } = g;
  for (let r = 0, z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++, r++) {
      const crow = cellIndex(g, o[0], y, z) - 1;
      for (let q = rowFirst[r]; q < rowFirst[r + 1]; q++) mask.fill(1, crow + ((runs[2 * q] - o[0]) >> sx) + 1, crow + ((runs[2 * q + 1] - 1 - o[0]) >> sx) + 2);
    }
  return mask;
}

/** Cells no flood reached (pieces of the object apart from every seed's): the seed nearest the cell's centre. */
function unreachedToNearest(lab: Uint16Array, g: Cells, seeds: readonly VoxelSeed[], voxelNm: Vec3): void {
  const seedNm = seeds.map((s) => [0, 1, 2].map((a) => (s.voxel[a] + 0.5) * voxelNm[a]));
  const { o, fx, fy, fz, px, py, pxy } = g;
  for (let c = 0; c < lab.length; c++) {
    if (lab[c] !== UNREACHED) continue;
    const cx = (c % px) - 1;
    const cy = (Math.floor(c / px) % py) - 1;
    const cz = Math.floor(c / pxy) - 1;
    lab[c] = 1 + nearestSeedGroup(seeds, seedNm, (o[0] + (cx + 0.5) * fx) * voxelNm[0], (o[1] + (cy + 0.5) * fy) * voxelNm[1], (o[2] + (cz + 0.5) * fz) * voxelNm[2]);
  }
}

/** The band: cells with a neighbour in another piece, numbered as bricks of full-resolution voxels. */
function bandCells(lab: Uint16Array, g: Cells): { brickOfCell: Int32Array; cellOfBrick: Int32Array } {
  const { px, pxy } = g;
  const brickOfCell = new Int32Array(lab.length).fill(-1);
  let n = 0;
  const other = (l: number, m: number) => m !== 0 && m !== l;
  for (let c = 0; c < lab.length; c++) {
    const l = lab[c];
    if (l === 0) continue;
    // The six neighbours in the order -x, +x, -y, +y, -z, +z (padding keeps them inside).
    if (other(l, lab[c - 1]) || other(l, lab[c + 1]) || other(l, lab[c - px]) || other(l, lab[c + px]) || other(l, lab[c - pxy]) || other(l, lab[c + pxy])) brickOfCell[c] = n++;
  }
  const cellOfBrick = new Int32Array(n);
  for (let c = 0; c < lab.length; c++) if (brickOfCell[c] >= 0) cellOfBrick[brickOfCell[c]] = c;
  return { brickOfCell, cellOfBrick };
}

/** Word per band voxel: 0 outside the object, 1 + level before a front reaches it, (1 + group) * REACHED after; here 1 for object voxels. */
function bandWords(labels: Uint32Array, shape: Vec3, segment: number, box: Box6, g: Cells, cellOfBrick: Int32Array): { word: Uint32Array; voxels: number } {
  const [nx, ny] = shape;
  const { fx, fy, fz, sy } = g;
  const cellVol = fx * fy * fz;
  const word = new Uint32Array(cellOfBrick.length * cellVol);
  let voxels = 0;
  for (let k = 0; k < cellOfBrick.length; k++) {
    const c = cellOfBrick[k];
    const x0 = cellX0(g, c);
    const y0 = cellY0(g, c);
    const z0 = cellZ0(g, c);
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
            voxels++;
          }
        }
      }
    }
  }
  return { word, voxels };
}

/** Per axis and voxel offset in a cell: the lower of the two cell centres around it (-1 or 0) and the weight of the upper. */
function lerp(f: number): { lowerCell: Int8Array; upperWeight: Float32Array } {
  const lowerCell = new Int8Array(f);
  const upperWeight = new Float32Array(f);
  for (let l = 0; l < f; l++) {
    const u = (l + 0.5) / f - 0.5;
    lowerCell[l] = u < 0 ? -1 : 0;
    upperWeight[l] = u < 0 ? u + 1 : u;
  }
  return { lowerCell, upperWeight };
}

/**
 * Depth of a band voxel: the cells' depth (capped at their floor) interpolated trilinearly between the
 * centres of the eight cells around the voxel's centre (cells outside the object: 0), in whole nm; written as
 * 1 + level into the band's words. Returns the deepest level.
 */
function bandDepths(word: Uint32Array, g: Cells, cellOfBrick: Int32Array, cellD2: Float32Array, floorLevel: number): number {
  const { fx, fy, fz, sy, px, pxy } = g;
  const cellVol = fx * fy * fz;
  const cellDepth = new Float32Array(cellD2.length);
  for (let c = 0; c < cellD2.length; c++) cellDepth[c] = Math.min(floorLevel, Math.sqrt(cellD2[c]));
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
  return maxLevel;
}

/** Bucket queue as in seededFlood (bucket 0 the deepest level; FIFO within a bucket) over the band's words. */
interface BandQueue {
  word: Uint32Array;
  maxLevel: number;
  start: Int32Array;
  fill: Int32Array;
  regions: Int32Array;
  late: Int32Array;
}

function bandQueue(word: Uint32Array, maxLevel: number, voxels: number): BandQueue {
  const perLevel = new Int32Array(maxLevel + 1);
  for (let v = 0; v < word.length; v++) if (word[v] !== 0) perLevel[word[v] - 1]++;
  const start = new Int32Array(maxLevel + 2);
  for (let b = 0; b <= maxLevel; b++) start[b + 1] = start[b] + perLevel[maxLevel - b];
  return { word, maxLevel, start, fill: start.slice(0, maxLevel + 1), regions: new Int32Array(voxels), late: new Int32Array(voxels) };
}

function reach(q: BandQueue, v: number, group: number): void {
  const wv = q.word[v];
  if (wv === 0 || wv >= REACHED) return;
  q.word[v] = (1 + group) * REACHED;
  q.regions[q.fill[q.maxLevel - (wv - 1)]++] = v;
}

/** Index of voxel (x, y, z) inside its cell c's brick. */
const localOf = (g: Cells, x: number, y: number, z: number, c: number) => (((z - cellZ0(g, c)) << g.sy) + y - cellY0(g, c)) * g.fx + x - cellX0(g, c);

/** The band voxels touching an object voxel of a cell outside the band: reached by that cell's piece. */
function seedBandFaces(labels: Uint32Array, shape: Vec3, segment: number, box: Box6, g: Cells, lab: Uint16Array, brickOfCell: Int32Array, cellOfBrick: Int32Array, queue: BandQueue): void {
  const [nx, ny] = shape;
  const { fx, fy, fz, sy, px, pxy } = g;
  const cellVol = fx * fy * fz;
  const steps = [-1, 1, -px, px, -pxy, pxy];
  const word = queue.word;
  for (let k = 0; k < cellOfBrick.length; k++) {
    const c = cellOfBrick[k];
    let fixedSides = 0;
    for (let d = 0; d < 6; d++) if (brickOfCell[c + steps[d]] < 0 && lab[c + steps[d]] !== 0) fixedSides |= 1 << d;
    if (fixedSides === 0) continue;
    const x0 = cellX0(g, c);
    const y0 = cellY0(g, c);
    const z0 = cellZ0(g, c);
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
      const group = lab[c + steps[d]] - 1;
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
            reach(queue, vrow + lx, group);
          }
        }
      }
    }
  }
}

/** The band's flood, 6-connected across bricks, deepest level first. */
function floodBand(queue: BandQueue, g: Cells, brickOfCell: Int32Array, cellOfBrick: Int32Array): void {
  const { word, maxLevel, start, fill, regions, late } = queue;
  const { fx, fy, fz, sx, sy, sz, px, pxy } = g;
  const cellShift = sx + sy + sz;
  const cellVol = 1 << cellShift;
  const mx = fx - 1;
  const my = (fy - 1) * fx;
  const mz = (fz - 1) * fx * fy;
  const sxy = fx * fy;
  const nb = new Int32Array(6);
  for (let b = 0; b <= maxLevel; b++) {
    let lateN = 0;
    const regionEnd = fill[b];
    for (let q = start[b]; ; q++) {
      let v: number;
      if (q < regionEnd) v = regions[q];
      else if (q - regionEnd < lateN) v = late[q - regionEnd];
      else break;
      const gv = word[v];
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
        word[u] = gv;
        const bu = maxLevel - (wu - 1);
        if (bu > b) regions[fill[bu]++] = u;
        else late[lateN++] = u;
      }
    }
  }
}

/**
 * Each run of the object: cells off the band give their piece to the whole stretch, band cells voxel by
 * voxel (band voxels no front reached keep their cell's piece).
 */
function writeRuns({ rowFirst, runs }: RowRuns, shape: Vec3, segment: number, box: Box6, g: Cells, lab: Uint16Array, brickOfCell: Int32Array, word: Uint32Array, newIds: readonly number[]): Uint32Array {
  const [nx, ny] = shape;
  const { o, fx, sx, sy, sz, px } = g;
  const cellVol = 1 << (sx + sy + sz);
  // stretchEnd: per cell off the band, the first x past it and the following cells of its piece off the band.
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
      const crow = cellIndex(g, o[0], y, z) - 1;
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
          const base = k * cellVol + localOf(g, x, y, z, c) - x;
          const own = lab[c] * REACHED;
          let from = x;
          let prev = 0;
          for (; x < cellEnd; x++) {
            const st = word[base + x];
            const gr = st >= REACHED ? st : own;
            if (gr !== prev) {
              if (prev !== 0) w.add(row + from, x - from, segment, newIds[prev / REACHED - 1]);
              from = x;
              prev = gr;
            }
          }
          w.add(row + from, x - from, segment, newIds[prev / REACHED - 1]);
        }
      }
    }
  return w.done();
}
