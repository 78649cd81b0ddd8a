/**
 * The multi-level spatial index of a precomputed annotation collection (neuroglancer
 * src/datasource/precomputed/annotations.md, "Spatial index").
 *
 * Level 0 is one cell covering [lower_bound, upper_bound). Each finer level halves the chunk size along the
 * dimensions that are physically largest (more than half the largest), so chunks drift towards isotropy —
 * with 5 x 5 x 45 nm voxels z is halved only once x and y have caught up. At each level every remaining
 * annotation is emitted with probability min(1, limit / maxCount(level)); the draw is a hash of
 * (seed, id, level), so the index is reproducible and an annotation spanning several cells is emitted at the
 * same level in all of them. Emitted annotations leave the remaining set; levels continue until it is empty.
 */
import { PrecomputedError } from "./errors.js";

export interface SpatialItem {
  id: bigint;
  /** Geometry in the info's coordinates: a point, or two vectors whose meaning `kind` gives. */
  kind: "point" | "segment" | "box";
  a: ArrayLike<number>;
  b?: ArrayLike<number>;
}

export interface SpatialLevel {
  grid_shape: number[];
  chunk_size: number[];
  limit: number;
  /** `cell.join("_")` -> indices into the items array, in the (pseudo-random) order to write them. */
  cells: Map<string, number[]>;
}

export interface SpatialIndexOptions {
  /** Target maximum annotations per cell (the info's `limit`). */
  limit: number;
  seed: number;
  /** Physical size of one coordinate unit per dimension (the `dimensions` scales), for isotropy. */
  scales: number[];
  /** After this many levels everything left is emitted at the last one. */
  maxLevels: number;
}

/** 64-bit-input hash to [0, 1): splitmix-style mixing of the id's halves with seed and salt. */
export function hashUnit(id: bigint, seed: number, salt: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(salt + 0x632be5ab, 0xc2b2ae35);
  for (const word of [Number(id & 0xffffffffn), Number((id >> 32n) & 0xffffffffn)]) {
    h = Math.imul(h ^ word, 0x27d4eb2d);
    h ^= h >>> 15;
    h = Math.imul(h, 0x165667b1);
    h ^= h >>> 13;
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) / 4294967296;
}

function nextChunkSize(chunk: number[], scales: number[]): number[] {
  const phys = chunk.map((c, d) => c * scales[d]);
  const max = Math.max(...phys);
  return chunk.map((c, d) => (phys[d] > max / 2 ? c / 2 : c));
}

/** Calls `emit(cell)` for every grid cell (closed box) the item intersects, clamped to the grid. */
function forEachCell(
  item: SpatialItem,
  lower: number[],
  chunk: number[],
  grid: number[],
  emit: (cell: number[]) => void,
): void {
  const rank = lower.length;
  const cellOf = (x: number, d: number): number => Math.min(grid[d] - 1, Math.max(0, Math.floor((x - lower[d]) / chunk[d])));
  if (item.kind === "point") {
    emit(Array.from({ length: rank }, (_, d) => cellOf(item.a[d], d)));
    return;
  }
  const b = item.b ?? item.a;
  const lo = new Array<number>(rank);
  const hi = new Array<number>(rank);
  for (let d = 0; d < rank; ++d) {
    lo[d] = cellOf(Math.min(item.a[d], b[d]), d);
    hi[d] = cellOf(Math.max(item.a[d], b[d]), d);
  }
  if (item.kind === "box") {
    forEachInRange(lo, hi, emit);
    return;
  }
  // A segment: split the candidate cell range until each piece is one cell, pruning pieces it misses.
  const recurse = (rlo: number[], rhi: number[]): void => {
    const boxMin = rlo.map((c, d) => lower[d] + c * chunk[d]);
    const boxMax = rhi.map((c, d) => lower[d] + (c + 1) * chunk[d]);
    if (!segmentHitsBox(item.a, b, boxMin, boxMax)) return;
    let split = -1;
    for (let d = 0; d < rank; ++d) if (rhi[d] > rlo[d] && (split < 0 || rhi[d] - rlo[d] > rhi[split] - rlo[split])) split = d;
    if (split < 0) {
      emit(rlo);
      return;
    }
    const mid = (rlo[split] + rhi[split]) >> 1;
    recurse(rlo, rhi.map((v, d) => (d === split ? mid : v)));
    recurse(rlo.map((v, d) => (d === split ? mid + 1 : v)), rhi);
  };
  recurse(lo, hi);
}

function forEachInRange(lo: number[], hi: number[], emit: (cell: number[]) => void): void {
  const cur = [...lo];
  for (;;) {
    emit([...cur]);
    let d = 0;
    while (d < cur.length && cur[d] === hi[d]) {
      cur[d] = lo[d];
      ++d;
    }
    if (d === cur.length) return;
    ++cur[d];
  }
}

/** Slab test for a closed segment against a closed box, with a little slack so touching counts. */
export function segmentHitsBox(a: ArrayLike<number>, b: ArrayLike<number>, boxMin: number[], boxMax: number[]): boolean {
  let t0 = 0;
  let t1 = 1;
  for (let d = 0; d < boxMin.length; ++d) {
    const eps = 1e-9 * Math.max(1, Math.abs(boxMax[d] - boxMin[d]));
    const lo = boxMin[d] - eps;
    const hi = boxMax[d] + eps;
    const dir = b[d] - a[d];
    if (dir === 0) {
      if (a[d] < lo || a[d] > hi) return false;
      continue;
    }
    let ta = (lo - a[d]) / dir;
    let tb = (hi - a[d]) / dir;
    if (ta > tb) [ta, tb] = [tb, ta];
    t0 = Math.max(t0, ta);
    t1 = Math.min(t1, tb);
    if (t0 > t1) return false;
  }
  return true;
}

export function buildSpatialIndex(items: readonly SpatialItem[], lower: number[], upper: number[], options: SpatialIndexOptions): SpatialLevel[] {
  const { limit, seed, scales, maxLevels } = options;
  if (!Number.isInteger(limit) || limit < 1) throw new PrecomputedError("invalid_argument", "spatial limit must be a positive integer", "spatial.limit");
  if (!Number.isInteger(maxLevels) || maxLevels < 1) throw new PrecomputedError("invalid_argument", "maxLevels must be a positive integer", "spatial.maxLevels");
  const rank = lower.length;
  const extent = upper.map((u, d) => u - lower[d]);
  let chunk = [...extent];
  // Every level keeps grid_shape * chunk_size == upper - lower exactly: sizes are halved, grids doubled.
  let grid = new Array<number>(rank).fill(1);
  // Within a cell, write in a pseudo-random order that depends only on the id (the spec asks for random order).
  const orderKey = items.map((it) => hashUnit(it.id, seed, -1));
  let remaining = items.map((_, i) => i);
  const levels: SpatialLevel[] = [];
  for (let level = 0; ; ++level) {
    const cells = new Map<string, number[]>();
    const cellsOf = new Map<number, string[]>();
    for (const i of remaining) {
      const keys: string[] = [];
      forEachCell(items[i], lower, chunk, grid, (cell) => {
        const key = cell.join("_");
        keys.push(key);
        let list = cells.get(key);
        if (!list) cells.set(key, (list = []));
        list.push(i);
      });
      cellsOf.set(i, keys);
    }
    let maxCount = 0;
    for (const list of cells.values()) maxCount = Math.max(maxCount, list.length);
    const last = level === maxLevels - 1;
    const p = last ? 1 : Math.min(1, limit / Math.max(1, maxCount));
    const emitted = new Set<number>();
    const kept: number[] = [];
    for (const i of remaining) {
      if (hashUnit(items[i].id, seed, level) < p) emitted.add(i);
      else kept.push(i);
    }
    const out = new Map<string, number[]>();
    for (const i of emitted) {
      for (const key of cellsOf.get(i) ?? []) {
        let list = out.get(key);
        if (!list) out.set(key, (list = []));
        list.push(i);
      }
    }
    for (const list of out.values()) list.sort((x, y) => orderKey[x] - orderKey[y]);
    let emittedMax = 0;
    for (const list of out.values()) emittedMax = Math.max(emittedMax, list.length);
    // The last level may hold more than `limit` per cell; say so rather than understate it.
    levels.push({ grid_shape: [...grid], chunk_size: [...chunk], limit: Math.max(limit, emittedMax), cells: out });
    remaining = kept;
    const next = nextChunkSize(chunk, scales);
    grid = grid.map((g, d) => (next[d] !== chunk[d] ? g * 2 : g));
    chunk = next;
    if (remaining.length === 0) break;
  }
  return levels;
}
