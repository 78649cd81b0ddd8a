/**
 * Tiling a section for the network: overlapping tiles whose sides are multiples of the model's size
 * multiple, blend weights that fade each tile out towards its interior edges (where the network sees
 * least context), and reflect padding for sections smaller than one tile.
 */
import type { NormalisedSection } from "./normalise.js";

export interface AxisPlan {
  /** Tile side along this axis, a multiple of the size multiple (may exceed the section: padded). */
  size: number;
  /** Tile start positions in section coordinates. */
  starts: number[];
}

export interface TilePlan {
  width: number;
  height: number;
  x: AxisPlan;
  y: AxisPlan;
  /** Per-tile weight along x and y (length = tile side), for each start. */
  wx: Float32Array[];
  wy: Float32Array[];
}

export interface Tile {
  index: number;
  x0: number;
  y0: number;
  /** Tile side in the network input (padded). */
  w: number;
  h: number;
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * Fewest tiles of at most `maxTile` that cover `length` with at least `overlap` between neighbours, then
 * the smallest tile side (a multiple of `multiple`) that does so, spread evenly: a fixed side with a short
 * last tile would waste most of that tile on re-computing pixels already covered.
 */
export function planAxis(length: number, maxTile: number, overlap: number, multiple: number): AxisPlan {
  const single = roundUp(length, multiple);
  if (length <= maxTile || single <= maxTile) return { size: single, starts: [0] };
  // Starts on multiples of the size multiple: the network's pooling grid then lines up with an untiled pass
  // (a U-Net is not shift-invariant by less than its total downsampling). The last tile may reach past the
  // section's end, where it is reflect-padded like a small section. Add tiles until that fits maxTile and overlap.
  for (let n = Math.ceil((length - overlap) / (maxTile - overlap)); ; n++) {
    let size = roundUp(Math.ceil((length + (n - 1) * overlap) / n), multiple);
    if (size >= length) return { size: single, starts: [0] };
    const last = Math.floor((length - size) / multiple) * multiple;
    if (last + size < length) size += multiple;
    if (size >= length) return { size: single, starts: [0] };
    const starts: number[] = [];
    for (let i = 0; i < n; i++) starts.push(Math.floor(Math.round((i * last) / (n - 1)) / multiple) * multiple);
    const overlapOk = starts.every((st, i) => i === 0 || (starts[i - 1] as number) + size - st >= overlap);
    if (size <= maxTile && overlapOk) return { size, starts };
  }
}

/**
 * Raised-cosine ramps across each overlap with the neighbouring tile; 1 elsewhere and at section borders
 * (no neighbour there). Two ramps over the same overlap sum to exactly 1, so blending is a partition of
 * unity where tiles meet; the accumulated weight is divided out anyway for uneven overlaps.
 */
export function axisWeights(plan: AxisPlan, length: number): Float32Array[] {
  return plan.starts.map((s, i) => {
    const w = new Float32Array(plan.size).fill(1);
    const prev = plan.starts[i - 1];
    const next = plan.starts[i + 1];
    if (prev !== undefined) {
      const r = prev + plan.size - s;
      for (let d = 0; d < r && d < plan.size; d++) w[d] = Math.min(w[d] as number, ramp(d, r));
    }
    if (next !== undefined) {
      const end = Math.min(s + plan.size, length);
      const r = end - next;
      for (let d = 0; d < r && d < plan.size; d++) {
        const at = end - s - 1 - d;
        if (at >= 0) w[at] = Math.min(w[at] as number, ramp(d, r));
      }
    }
    return w;
  });
}

function ramp(d: number, r: number): number {
  return 0.5 - 0.5 * Math.cos((Math.PI * (d + 0.5)) / r);
}

export function planTiles(width: number, height: number, maxTile: number, overlap: number, multiple: number): TilePlan {
  const x = planAxis(width, maxTile, overlap, multiple);
  const y = planAxis(height, maxTile, overlap, multiple);
  return { width, height, x, y, wx: axisWeights(x, width), wy: axisWeights(y, height) };
}

export function tilesOf(plan: TilePlan): Tile[] {
  const tiles: Tile[] = [];
  for (const y0 of plan.y.starts) for (const x0 of plan.x.starts) tiles.push({ index: tiles.length, x0, y0, w: plan.x.size, h: plan.y.size });
  return tiles;
}

/** numpy's 'reflect' (edge not repeated), applied repeatedly for pads longer than the section. */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * n - 2;
  let k = i % period;
  if (k < 0) k += period;
  return k < n ? k : period - k;
}

/**
 * Copies a tile out of a section, normalising as it goes ((pixel - mean) * inv, in float64 as normaliseSection
 * does, so the values are the same to the bit), reflecting past the section's right and bottom edges.
 */
export function extractTile(section: NormalisedSection, width: number, height: number, tile: Tile, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(tile.w * tile.h);
  const { data, mean, inv } = section;
  const first = section.firstRow ?? 0;
  const inside = Math.max(0, Math.min(tile.w, width - tile.x0));
  const copy = data instanceof Float32Array && mean === 0 && inv === 1;
  for (let ty = 0; ty < tile.h; ty++) {
    const sy = reflectIndex(tile.y0 + ty, height);
    const row = (sy - first) * width;
    const o = ty * tile.w;
    if (copy) dst.set(data.subarray(row + tile.x0, row + tile.x0 + inside), o);
    else for (let tx = 0; tx < inside; tx++) dst[o + tx] = ((data[row + tile.x0 + tx] as number) - mean) * inv;
    for (let tx = inside; tx < tile.w; tx++) dst[o + tx] = ((data[row + reflectIndex(tile.x0 + tx, width)] as number) - mean) * inv;
  }
  return dst;
}
