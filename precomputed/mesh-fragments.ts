/**
 * Cutting one level of detail of a multi-resolution mesh into quantised cell fragments (mesh-multires.ts writes
 * them). Each lod mesh is clipped at the cell planes (new vertices on the cut edges, computed once per edge so
 * both sides share them bit for bit) and quantised on one grid per lod; lods above 0 are clipped at the half-cell
 * planes too (Neuroglancer draws the eighths of a cell separately).
 *
 * Most triangles of a display mesh lie inside one cell (cells are ~1 um, triangles ~10-45 nm), so those take a
 * path without clipping or allocation; the rest go through Sutherland-Hodgman as before. Both give the same
 * fragments, vertex for vertex and in the same order.
 */
import { GrowableU32, type Vec3 } from "./array.js";
import { PrecomputedError } from "./errors.js";
import type { MeshFragment } from "./mesh-legacy.js";

export type QuantizationBits = 10 | 16;

export interface MultiresGrid {
  /** Lod 0 cell size in stored-model units; lod k cells are `chunkShape * 2^k`. */
  chunkShape: Vec3;
  /** Corner of cell (0, 0, 0); no vertex may lie below it. */
  gridOrigin: Vec3;
  quantizationBits?: QuantizationBits;
}

export interface CellFragment {
  /** Cell at its lod, in cells of `chunkShape * 2^lod` from the grid origin. */
  position: Vec3;
  /** xyz per vertex, integers in [0, 2^bits - 1] across the cell. */
  positions: Uint32Array;
  /** three vertex indices per triangle, winding as in the input */
  indices: Uint32Array;
}

function lessMsb(a: number, b: number): boolean {
  return a < b && a < (a ^ b);
}

/** Neuroglancer's `zorder3LessThan`: x is the least significant interleaved bit, z the most. */
export function zorderLess(a: Vec3, b: Vec3): boolean {
  let d = 2;
  if (lessMsb(a[d] ^ b[d], a[1] ^ b[1])) d = 1;
  if (lessMsb(a[d] ^ b[d], a[0] ^ b[0])) d = 0;
  return a[d] < b[d];
}

export function zorderCompare(a: Vec3, b: Vec3): number {
  return zorderLess(a, b) ? -1 : zorderLess(b, a) ? 1 : 0;
}

/** Growable float64 xyz store. */
class Points {
  data: Float64Array;
  count = 0;
  constructor(capacity: number) {
    this.data = new Float64Array(3 * Math.max(1024, capacity));
  }
  add(x: number, y: number, z: number): number {
    if (3 * this.count + 3 > this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    const o = 3 * this.count;
    this.data[o] = x;
    this.data[o + 1] = y;
    this.data[o + 2] = z;
    return this.count++;
  }
}

/** Float32 the way the manifest stores it, so our cell arithmetic matches what Neuroglancer reads back. */
export function gridOf(grid: MultiresGrid): { chunk: Vec3; origin: Vec3; bits: QuantizationBits } {
  const bits = grid.quantizationBits ?? 16;
  if (bits !== 10 && bits !== 16) throw new PrecomputedError("invalid_argument", "must be 10 or 16", "quantizationBits");
  const chunk = grid.chunkShape.map(Math.fround) as Vec3;
  const origin = grid.gridOrigin.map(Math.fround) as Vec3;
  if (grid.chunkShape.length !== 3 || !chunk.every((c) => Number.isFinite(c) && c > 0)) {
    throw new PrecomputedError("invalid_argument", "expected 3 finite positive numbers", "chunkShape");
  }
  if (grid.gridOrigin.length !== 3 || !origin.every(Number.isFinite)) throw new PrecomputedError("invalid_argument", "expected 3 finite numbers", "gridOrigin");
  return { chunk, origin, bits };
}

function checkMesh(mesh: MeshFragment, path: string): void {
  const { positions, indices } = mesh;
  if (!(positions instanceof Float32Array) || !(indices instanceof Uint32Array)) {
    throw new PrecomputedError("invalid_argument", "positions must be a Float32Array and indices a Uint32Array", path);
  }
  if (positions.length % 3 !== 0 || indices.length % 3 !== 0) throw new PrecomputedError("invalid_argument", "positions and indices must come in threes", path);
  const nv = positions.length / 3;
  for (let i = 0; i < indices.length; ++i) {
    if (indices[i] >= nv) throw new PrecomputedError("invalid_argument", `index ${indices[i]} is not below the ${nv} vertices`, path);
  }
  for (let i = 0; i < positions.length; ++i) if (!Number.isFinite(positions[i])) throw new PrecomputedError("invalid_argument", "positions must be finite", path);
}

interface Fragment {
  /** Order of creation. */
  index: number;
  position: Vec3;
  positions: GrowableU32;
  indices: GrowableU32;
  /** Quantised position key -> local vertex id. */
  ids: Map<number, number>;
}

/** Cells below this per axis get a numeric map key; others (far from the origin) a string one. */
const NUMERIC_CELL = 1 << 17;
/** Cut-cache keys are numeric while vertex ids stay below this. */
const NUMERIC_VERTEX = 2 ** 25;

/**
 * Vertices in slab units (see fragmentMeshLod), with room for the cut vertices. A loop of its own so that V8's
 * on-stack replacement of it does not run on into the triangle phase with no type feedback there (which deopted
 * and recompiled the whole of fragmentMeshLod per segment).
 */
function slabUnits(positions: Float32Array, origin: Float64Array, slab: Float64Array, lod: number): Points {
  const nv = positions.length / 3;
  const pts = new Points(nv + (nv >> 2));
  const data = pts.data;
  for (let i = 0; i < nv; ++i) {
    let outside = false;
    for (let d = 0; d < 3; ++d) {
      const v = (positions[3 * i + d] - origin[d]) / slab[d];
      const r = Math.round(v);
      // Float noise around a cut would otherwise leave slivers a few ulps wide.
      const u = Math.abs(v - r) <= 1e-9 * Math.max(1, Math.abs(v)) ? r : v;
      if (u < 0 || u >= 2 ** 31) outside = true;
      data[3 * i + d] = u;
    }
    if (outside) {
      throw new PrecomputedError("invalid_argument", `vertex ${i} lies outside the grid (below gridOrigin or too many cells away)`, `lods[${lod}]`);
    }
    pts.count++;
  }
  return pts;
}

interface CutHit {
  plane: number;
  id: number;
}

/**
 * State of cutting one lod. Methods on one class rather than closures made per call: V8 then sees the same call
 * targets and receiver map in every call (per-call closures deopted optimised code with "wrong call target").
 */
class LodCutter {
  readonly pts: Points;
  readonly nv: number;
  readonly split: number;
  /** Largest quantised coordinate, 2^bits - 1. */
  readonly M: number;
  readonly half: number;
  // One vertex per (edge, plane), computed from the lower vertex id, so neighbours across a cut share it exactly.
  // Keyed by (edge, axis) with the plane stored beside it; a second plane on the same edge and axis (or vertex ids
  // too large for an exact numeric key) falls back to a string key.
  readonly cutNumeric = new Map<number, CutHit>();
  readonly cutNamed = new Map<string, number>();
  readonly cells = new Map<number | string, Fragment>();
  readonly fragments: Fragment[] = [];
  // The last (fragment, local id) each input vertex got: a vertex's quantised key depends only on its cell, so
  // a hit in the same fragment is the id the fragment's map would return.
  readonly lastFragment: Int32Array;
  readonly lastId: Uint32Array;
  readonly cell: Vec3 = [0, 0, 0];
  readonly local: Vec3 = [0, 0, 0];
  readonly tri: Vec3 = [0, 0, 0];

  constructor(pts: Points, split: number, bits: QuantizationBits) {
    this.pts = pts;
    this.nv = pts.count;
    this.split = split;
    this.M = 2 ** bits - 1;
    this.half = 2 ** (bits - 1);
    this.lastFragment = new Int32Array(this.nv).fill(-1);
    this.lastId = new Uint32Array(this.nv);
  }

  cut(a: number, b: number, axis: number, plane: number): number {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    let id: number | undefined;
    const numeric = hi < NUMERIC_VERTEX;
    const nkey = (lo * NUMERIC_VERTEX + hi) * 3 + axis;
    const hit = numeric ? this.cutNumeric.get(nkey) : undefined;
    if (hit !== undefined && hit.plane === plane) return hit.id;
    const skey = `${lo},${hi},${axis},${plane}`;
    if (!numeric || hit !== undefined) id = this.cutNamed.get(skey);
    if (id === undefined) {
      const p = this.pts.data;
      const t = (plane - p[3 * lo + axis]) / (p[3 * hi + axis] - p[3 * lo + axis]);
      let c0 = 0;
      let c1 = 0;
      let c2 = 0;
      for (let d = 0; d < 3; ++d) {
        let c = plane;
        if (d !== axis) {
          const x = p[3 * lo + d];
          const y = p[3 * hi + d];
          // Rounding may overshoot an endpoint by an ulp; one that sat on an earlier cut would then slip into the
          // neighbouring slab and the polygon into the wrong cell.
          c = Math.min(Math.max(x + t * (y - x), Math.min(x, y)), Math.max(x, y));
        }
        if (d === 0) c0 = c;
        else if (d === 1) c1 = c;
        else c2 = c;
      }
      id = this.pts.add(c0, c1, c2);
      if (numeric && hit === undefined) this.cutNumeric.set(nkey, { plane, id });
      else this.cutNamed.set(skey, id);
    }
    return id;
  }

  fragmentAt(): Fragment {
    const cx = this.cell[0];
    const cy = this.cell[1];
    const cz = this.cell[2];
    const key = cx < NUMERIC_CELL && cy < NUMERIC_CELL && cz < NUMERIC_CELL ? cx + NUMERIC_CELL * (cy + NUMERIC_CELL * cz) : `${cx},${cy},${cz}`;
    let frag = this.cells.get(key);
    if (frag === undefined) {
      frag = { index: this.fragments.length, position: [cx, cy, cz], positions: new GrowableU32(), indices: new GrowableU32(), ids: new Map() };
      this.cells.set(key, frag);
      this.fragments.push(frag);
    }
    return frag;
  }

  /** Local id of vertex v in `frag` (cell `cell`), added on first use. */
  idOf(frag: Fragment, v: number): number {
    const nv = this.nv;
    if (v < nv && this.lastFragment[v] === frag.index) return this.lastId[v];
    const p = this.pts.data;
    const { split, M, cell, local } = this;
    for (let d = 0; d < 3; ++d) {
      const u = p[3 * v + d];
      // On a half-cell plane the exact value M/2 is not an integer; Neuroglancer's partition accepts 2^(bits-1)
      // on both sides, and any other rounding would file the triangle under the wrong eighth.
      const q = split === 2 && u === 2 * cell[d] + 1 ? this.half : Math.round(((u - split * cell[d]) / split) * M);
      local[d] = Math.min(M, Math.max(0, q));
    }
    const qkey = local[0] + (M + 1) * (local[1] + (M + 1) * local[2]);
    let id = frag.ids.get(qkey);
    if (id === undefined) {
      id = frag.positions.length / 3;
      frag.positions.push(local[0]);
      frag.positions.push(local[1]);
      frag.positions.push(local[2]);
      frag.ids.set(qkey, id);
    }
    if (v < nv) {
      this.lastFragment[v] = frag.index;
      this.lastId[v] = id;
    }
    return id;
  }

  /** Files a polygon (fan) lying in one unit cube of slab space under its cell. */
  emit(poly: readonly number[], n: number): void {
    const p = this.pts.data;
    const cell = this.cell;
    for (let d = 0; d < 3; ++d) {
      let min = Infinity;
      for (let i = 0; i < n; ++i) min = Math.min(min, p[3 * poly[i] + d]);
      cell[d] = Math.floor(Math.floor(min) / this.split);
    }
    const frag = this.fragmentAt();
    const id0 = this.idOf(frag, poly[0]);
    let prev = this.idOf(frag, poly[1]);
    for (let i = 1; i + 1 < n; ++i) {
      const next = this.idOf(frag, poly[i + 1]);
      // Quantisation can merge vertices; such a triangle has no area and its edges pair up among its neighbours.
      if (id0 !== prev && prev !== next && id0 !== next) {
        frag.indices.push(id0);
        frag.indices.push(prev);
        frag.indices.push(next);
      }
      prev = next;
    }
  }

  /** All triangles of the lod, in input order. */
  triangles(idx: Uint32Array): void {
    const tri = this.tri;
    for (let t = 0; t < idx.length; t += 3) {
      const a = idx[t];
      const b = idx[t + 1];
      const c = idx[t + 2];
      if (a === b || b === c || a === c) continue;
      // A triangle that crosses no plane on any axis is its own polygon.
      const p = this.pts.data;
      let inside = true;
      for (let axis = 0; axis < 3 && inside; ++axis) {
        const xa = p[3 * a + axis];
        const xb = p[3 * b + axis];
        const xc = p[3 * c + axis];
        let min = xa;
        let max = xa;
        if (xb < min) min = xb;
        if (xb > max) max = xb;
        if (xc < min) min = xc;
        if (xc > max) max = xc;
        if (max > Math.floor(min) + 1) inside = false;
      }
      if (inside) {
        tri[0] = a;
        tri[1] = b;
        tri[2] = c;
        this.emit(tri, 3);
      } else {
        this.clipped(a, b, c);
      }
    }
  }

  /** A triangle that crosses a plane: Sutherland-Hodgman per axis, then each piece filed under its cell. */
  clipped(a: number, b: number, c: number): void {
    let polys: number[][] = [[a, b, c]];
    for (let axis = 0; axis < 3; ++axis) {
      const out: number[][] = [];
      for (let poly of polys) {
        for (;;) {
          const q = this.pts.data;
          let min = Infinity;
          let max = -Infinity;
          for (const v of poly) {
            const x = q[3 * v + axis];
            if (x < min) min = x;
            if (x > max) max = x;
          }
          const plane = Math.floor(min) + 1;
          if (max <= plane) {
            out.push(poly);
            break;
          }
          // Sutherland-Hodgman against one plane; vertices on the plane go to both sides.
          const below: number[] = [];
          const above: number[] = [];
          for (let i = 0; i < poly.length; ++i) {
            const pv = poly[i];
            const qv = poly[(i + 1) % poly.length];
            const dp = this.pts.data[3 * pv + axis] - plane;
            const dq = this.pts.data[3 * qv + axis] - plane;
            if (dp <= 0) below.push(pv);
            if (dp >= 0) above.push(pv);
            if ((dp < 0 && dq > 0) || (dp > 0 && dq < 0)) {
              const x = this.cut(pv, qv, axis, plane);
              below.push(x);
              above.push(x);
            }
          }
          if (below.length >= 3) out.push(below);
          if (above.length < 3) break;
          poly = above;
        }
      }
      polys = out;
    }
    for (const poly of polys) this.emit(poly, poly.length);
  }
}

/**
 * Cuts one lod's mesh into cell fragments, sorted in z-curve order. Works in "slab units" u = (x - origin) / slab,
 * where a slab is the cell (lod 0) or half a cell (lod > 0): every cut is at an integer u, and each clipped polygon
 * lies within one unit cube, so which cell and which eighth it belongs to follows from its lowest corner.
 */
export function fragmentMeshLod(mesh: MeshFragment, lod: number, grid: MultiresGrid): CellFragment[] {
  checkMesh(mesh, `lods[${lod}]`);
  if (!Number.isInteger(lod) || lod < 0 || lod > 30) throw new PrecomputedError("invalid_argument", "lod must be an integer in [0, 30]", "lod");
  const { chunk, origin, bits } = gridOf(grid);
  const split = lod === 0 ? 1 : 2;
  // Float64Arrays, not the number arrays: those are small-int or double arrays depending on the grid's values,
  // and the mix deoptimised slabUnits ("wrong map") whenever a mesh with the other kind came along.
  const slab = Float64Array.from(chunk, (c) => (c * 2 ** lod) / split);
  const cutter = new LodCutter(slabUnits(mesh.positions, Float64Array.from(origin), slab, lod), split, bits);
  cutter.triangles(mesh.indices);
  return cutter.fragments
    .filter((f) => f.indices.length > 0)
    .map((f) => ({ position: f.position, positions: f.positions.toArray(), indices: f.indices.toArray() }))
    .sort((x, y) => zorderCompare(x.position, y.position));
}

/** Which eighth of its cell Neuroglancer's decoder files a triangle under (neuroglancer_draco.cc, partition). */
export function triangleOctant(positions: ArrayLike<number>, a: number, b: number, c: number, bits: QuantizationBits): number {
  const p = 2 ** (bits - 1);
  let mask = 0xff;
  for (let k = 0; k < 3; ++k) {
    const v = k === 0 ? a : k === 1 ? b : c;
    const x = positions[3 * v];
    const y = positions[3 * v + 1];
    const z = positions[3 * v + 2];
    if (x < p) mask &= 0b01010101;
    else if (x > p) mask &= 0b10101010;
    if (y < p) mask &= 0b00110011;
    else if (y > p) mask &= 0b11001100;
    if (z < p) mask &= 0b00001111;
    else if (z > p) mask &= 0b11110000;
  }
  // Index of the lowest set bit; 0 for an empty mask, as Neuroglancer's lookup table does.
  return mask === 0 ? 0 : 31 - Math.clz32(mask & -mask);
}
