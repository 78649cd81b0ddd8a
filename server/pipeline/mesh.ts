/**
 * Display meshes for every segment of a label volume: marching cubes over each segment's mask in its padded
 * bounding box, in physical nm (voxel i spans [i, i+1) * v, so its centre is at (i + 0.5) * v).
 *
 * Per segment: the mask is block-averaged by the downsampling factor (occupancy fractions, so a coarse
 * surface still sits where the fine one was), lightly smoothed with a [1 2 1]/4 kernel per axis so the
 * surface is not a staircase, and cut at 0.5. Vertices live on grid edges and are shared through per-slab
 * edge caches; the tables (mesh-tables.ts) make every mesh closed with outward, counter-clockwise winding.
 * Surface areas for measurement are not this module's job: these meshes are for display.
 */
import { GrowableU32, type Vec3 } from "../../precomputed/array.js";
import { PipelineError } from "./errors.js";
import { CORNER_OFFSETS, EDGES, TRIANGLES } from "./mesh-tables.js";

export interface SegmentMesh {
  /** xyz per vertex, nm */
  positions: Float32Array;
  /** three vertex indices per triangle, counter-clockwise seen from outside */
  indices: Uint32Array;
}

export interface MeshOptions {
  /** Only these segment ids (default: every nonzero id present). */
  ids?: Iterable<number>;
  /** Block size in voxels. Default: per segment, the smallest power-of-two in-plane (x, y) factor whose grid fits `maxVoxels`. */
  downsample?: Vec3;
  /** Budget for the automatic in-plane factor, in (downsampled) bounding-box voxels. Default 2^22. */
  maxVoxels?: number;
  /** Smooth the occupancy field before cutting it (default true). */
  smooth?: boolean;
}

interface Box {
  lo: Vec3;
  hi: Vec3; // inclusive
}

function boundingBoxes(labels: Uint32Array, shape: Vec3, wanted: Set<number> | undefined): Map<number, Box> {
  const [nx, ny, nz] = shape;
  const boxes = new Map<number, Box>();
  let i = 0;
  for (let z = 0; z < nz; ++z) {
    for (let y = 0; y < ny; ++y) {
      let last = 0;
      let box: Box | undefined;
      for (let x = 0; x < nx; ++x, ++i) {
        const id = labels[i];
        if (id === 0) continue;
        if (id !== last) {
          last = id;
          box = boxes.get(id);
          if (box === undefined) {
            if (wanted && !wanted.has(id)) {
              box = undefined;
              continue;
            }
            box = { lo: [x, y, z], hi: [x, y, z] };
            boxes.set(id, box);
          }
        }
        if (box === undefined) continue;
        if (x < box.lo[0]) box.lo[0] = x;
        if (x > box.hi[0]) box.hi[0] = x;
        if (y < box.lo[1]) box.lo[1] = y;
        if (y > box.hi[1]) box.hi[1] = y;
        box.hi[2] = z; // z only grows in raster order
      }
    }
  }
  return boxes;
}

function autoFactor(box: Box, maxVoxels: number): Vec3 {
  const ext = [0, 1, 2].map((d) => box.hi[d] - box.lo[d] + 1 + 4);
  let f = 1;
  while (Math.ceil(ext[0] / f) * Math.ceil(ext[1] / f) * ext[2] > maxVoxels && f < 1 << 16) f *= 2;
  return [f, f, 1];
}

/** Occupancy of `id` per block over the padded box; returns the field and its grid origin in voxels. */
function occupancy(labels: Uint32Array, shape: Vec3, id: number, box: Box, f: Vec3, pad: number) {
  // Blocks are aligned to multiples of f in the volume, so neighbouring segments share a lattice.
  const origin = [0, 1, 2].map((d) => (Math.floor(box.lo[d] / f[d]) - pad) * f[d]) as Vec3;
  const dims = [0, 1, 2].map((d) => Math.floor(box.hi[d] / f[d]) + pad + 1 - origin[d] / f[d]) as Vec3;
  const field = new Float32Array(dims[0] * dims[1] * dims[2]);
  addOccupancy(labels, shape[0], shape[1], shape[2], id, field, origin[0], origin[1], origin[2], dims[0], dims[1], dims[2], f[0], f[1], f[2]);
  return { field, dims, origin };
}

/**
 * occupancy's loop, alone and on scalars: inside occupancy, V8 optimised it mid-loop (on-stack replacement) and
 * then deoptimised on the return that had not run yet, and the small arrays (box, f, shape), whose element kinds
 * differ between callers, deoptimised it again ("wrong map"), each time followed by a fresh compile.
 */
function addOccupancy(
  labels: Uint32Array,
  nx: number,
  ny: number,
  nz: number,
  id: number,
  field: Float32Array,
  ox: number,
  oy: number,
  oz: number,
  dx: number,
  dy: number,
  dz: number,
  fx: number,
  fy: number,
  fz: number,
): void {
  const x0 = Math.max(0, ox);
  const x1 = Math.min(nx, ox + dx * fx);
  const scale = 1 / (fx * fy * fz);
  for (let z = Math.max(0, oz); z < Math.min(nz, oz + dz * fz); ++z) {
    const bz = Math.floor((z - oz) / fz);
    for (let y = Math.max(0, oy); y < Math.min(ny, oy + dy * fy); ++y) {
      const by = Math.floor((y - oy) / fy);
      const row = (bz * dy + by) * dx;
      let i = (z * ny + y) * nx + x0;
      for (let x = x0; x < x1; ++x, ++i) {
        if (labels[i] === id) field[row + Math.floor((x - ox) / fx)] += scale;
      }
    }
  }
}

/**
 * In-place separable [1 2 1]/4 smoothing; values beyond the grid count as 0. x runs along each row; y and z
 * combine whole rows / planes (neighbour rows are kept as copies until overwritten), so every pass reads memory
 * in order. Each output is 0.25 * prev + 0.5 * centre + 0.25 * next of the previous pass, as a line-by-line
 * pass computes it.
 */
function smooth3(field: Float32Array, dims: Vec3): void {
  // Scalars, and one module-level function per pass: destructuring dims deoptimised on its other element kind
  // ("wrong map"), and a closure made per call plus a loop optimised mid-way through the x pass left the later
  // passes without type feedback: each a deopt and a fresh compile.
  const nx = dims[0];
  const ny = dims[1];
  const nz = dims[2];
  smoothRows(field, nx, ny * nz);
  const rowA = new Float32Array(nx);
  const rowB = new Float32Array(nx);
  for (let z = 0; z < nz; ++z) smoothAcross(field, z * nx * ny, nx, nx, ny, rowA, rowB);
  smoothAcross(field, 0, nx * ny, nx * ny, nz, new Float32Array(nx * ny), new Float32Array(nx * ny));
}

/** The x pass: `rows` rows of `nx` values. */
function smoothRows(field: Float32Array, nx: number, rows: number): void {
  const line = new Float32Array(nx);
  for (let r = 0; r < rows; ++r) {
    const base = r * nx;
    for (let k = 0; k < nx; ++k) line[k] = field[base + k];
    for (let k = 0; k < nx; ++k) {
      const prev = k > 0 ? line[k - 1] : 0;
      const next = k + 1 < nx ? line[k + 1] : 0;
      field[base + k] = 0.25 * prev + 0.5 * line[k] + 0.25 * next;
    }
  }
}

/** y within each plane, then z across planes: `run` values per line, lines `stride` apart, `count` lines. */
function smoothAcross(field: Float32Array, start: number, run: number, stride: number, count: number, prevLine: Float32Array, centre: Float32Array): void {
  prevLine.fill(0);
  let prev = prevLine;
  let cur = centre;
  for (let k = 0; k < count; ++k) {
    const at = start + k * stride;
    for (let i = 0; i < run; ++i) cur[i] = field[at + i];
    const hasNext = k + 1 < count;
    for (let i = 0; i < run; ++i) {
      const next = hasNext ? field[at + stride + i] : 0;
      field[at + i] = 0.25 * prev[i] + 0.5 * cur[i] + 0.25 * next;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
}

class GrowableF32 {
  data = new Float32Array(3 * 1024);
  length = 0;
  push3(a: number, b: number, c: number): void {
    if (this.length + 3 > this.data.length) {
      const next = new Float32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = a;
    this.data[this.length++] = b;
    this.data[this.length++] = c;
  }
}

const ISO = 0.5;

// Edge e: corners EDGE_A[e] -> EDGE_B[e] along EDGE_AXIS[e]; corner c sits at (c & 1, c >> 1 & 1, c >> 2 & 1).
// Typed, module-level tables rather than arrays made per call, so optimised code sees one element kind.
const EDGE_A = Uint8Array.from(EDGES, (e) => e[0]);
const EDGE_B = Uint8Array.from(EDGES, (e) => e[1]);
const EDGE_AXIS = Uint8Array.from(EDGES, (e) => e[2]);

/** Which grid points are inside (the raw field decides, as the cell masks always did); its own loop for V8's sake. */
function insideMask(field: Float32Array): Uint8Array {
  const inside = new Uint8Array(field.length);
  for (let i = 0; i < field.length; ++i) inside[i] = field[i] > ISO ? 1 : 0;
  return inside;
}

/**
 * The vertices of one marching-cubes pass, one per grid edge, made on first use. A class instead of a closure
 * made per call: optimised code specialised on one call's closure deoptimised ("wrong call target") on the next.
 */
class EdgeVertices {
  readonly positions = new GrowableF32();
  // Vertex ids of edges starting at each grid point of slabs z = k and k + 1 (x and y edges), and of the
  // z edges between them; -1 = not made yet.
  xyLow: Int32Array;
  xyHigh: Int32Array;
  readonly zEdges: Int32Array;
  /** The current cell's corner values and grid indices. */
  readonly values = new Float32Array(8);
  readonly corners = new Int32Array(8);

  constructor(
    readonly smoothed: Float32Array | undefined,
    readonly nx: number,
    plane: number,
    readonly baseX: number,
    readonly baseY: number,
    readonly baseZ: number,
    readonly stepX: number,
    readonly stepY: number,
    readonly stepZ: number,
  ) {
    this.xyLow = new Int32Array(2 * plane).fill(-1);
    this.xyHigh = new Int32Array(2 * plane).fill(-1);
    this.zEdges = new Int32Array(plane);
  }

  vertex(x: number, y: number, z: number, e: number): number {
    const ca = EDGE_A[e];
    const cb = EDGE_B[e];
    const axis = EDGE_AXIS[e];
    const az = (ca >> 2) & 1;
    const px = x + (ca & 1);
    const py = y + ((ca >> 1) & 1);
    const pz = z + az;
    const slot = px + py * this.nx;
    let cache: Int32Array;
    let key: number;
    if (axis === 2) {
      cache = this.zEdges;
      key = slot;
    } else {
      cache = az === 0 ? this.xyLow : this.xyHigh;
      key = 2 * slot + axis;
    }
    let v = cache[key];
    if (v < 0) {
      const values = this.values;
      const va = values[ca];
      let t = (ISO - va) / (values[cb] - va);
      const smoothed = this.smoothed;
      if (smoothed) {
        const sa = smoothed[this.corners[ca]];
        const sb = smoothed[this.corners[cb]];
        if ((sa > ISO) === (va > ISO) && (sb > ISO) === (values[cb] > ISO)) t = (ISO - sa) / (sb - sa);
      }
      // keep vertices off grid points, where two edges' vertices would coincide
      t = Math.min(0.99, Math.max(0.01, t));
      const qx = axis === 0 ? px + t : px;
      const qy = axis === 1 ? py + t : py;
      const qz = axis === 2 ? pz + t : pz;
      const positions = this.positions;
      v = positions.length / 3;
      positions.push3(this.baseX + qx * this.stepX, this.baseY + qy * this.stepY, this.baseZ + qz * this.stepZ);
      cache[key] = v;
    }
    return v;
  }

  /** The upper slab's x/y edges become the lower slab's for the next z. */
  nextSlab(): void {
    const low = this.xyLow;
    this.xyLow = this.xyHigh;
    this.xyHigh = low;
    this.xyHigh.fill(-1);
  }
}

/**
 * Marching cubes at ISO; grid point (i, j, k) is at ((origin + (i + 0.5) f) v) nm per axis.
 * Inside/outside comes from the raw field, so smoothing never changes the topology or erases a structure
 * one voxel thin (a [1 2 1] blur alone would drop a single-section ER sheet below 0.5). The smoothed field
 * only places the vertex along its edge, and only where it agrees with the raw field about both ends;
 * elsewhere (thin parts) the raw crossing stands.
 */
function marchingCubes(field: Float32Array, smoothed: Float32Array | undefined, dims: Vec3, origin: Vec3, f: Vec3, voxelNm: Vec3): SegmentMesh {
  // Scalars rather than destructured arrays: dims, f and voxelNm come as small-int or double arrays, and the
  // array-iterator destructuring deoptimised ("wrong map") whenever the other kind came along.
  const nx = dims[0];
  const ny = dims[1];
  const nz = dims[2];
  const plane = nx * ny;
  const edges = new EdgeVertices(
    smoothed,
    nx,
    plane,
    (origin[0] + 0.5 * f[0]) * voxelNm[0],
    (origin[1] + 0.5 * f[1]) * voxelNm[1],
    (origin[2] + 0.5 * f[2]) * voxelNm[2],
    f[0] * voxelNm[0],
    f[1] * voxelNm[1],
    f[2] * voxelNm[2],
  );
  const indices = new GrowableU32(3 * 1024);
  const cornerIndex = Int32Array.from(CORNER_OFFSETS, ([dx, dy, dz]) => dx + dy * nx + dz * plane);
  marchCells(field, insideMask(field), nx, ny, nz, cornerIndex, edges, indices);
  const positions = edges.positions;
  return { positions: positions.data.slice(0, positions.length), indices: indices.toArray() };
}

/**
 * marchingCubes' loop over the cells, alone: optimised mid-loop inside marchingCubes, V8 deoptimised it on the
 * code after the loop (no type feedback yet) and on the entry's small arrays of the other element kind.
 */
function marchCells(field: Float32Array, inside: Uint8Array, nx: number, ny: number, nz: number, cornerIndex: Int32Array, edges: EdgeVertices, indices: GrowableU32): void {
  const plane = nx * ny;
  const values = edges.values;
  const corners = edges.corners;
  for (let z = 0; z + 1 < nz; ++z) {
    edges.zEdges.fill(-1);
    for (let y = 0; y + 1 < ny; ++y) {
      // Corners 0, 2, 4, 6 lie on the cell's low-x face, 1, 3, 5, 7 on its high-x face: a face's four inside
      // bits, spread to those corners, carry over to the next cell along x.
      const r00 = y * nx + z * plane;
      const r10 = r00 + nx;
      const r01 = r00 + plane;
      const r11 = r01 + nx;
      let low = SPREAD[inside[r00] | (inside[r10] << 1) | (inside[r01] << 2) | (inside[r11] << 3)];
      for (let x = 0; x + 1 < nx; ++x) {
        const high = SPREAD[inside[r00 + x + 1] | (inside[r10 + x + 1] << 1) | (inside[r01 + x + 1] << 2) | (inside[r11 + x + 1] << 3)];
        const mask = low | (high << 1);
        low = high;
        if (mask === 0 || mask === 255) continue;
        const i0 = x + y * nx + z * plane;
        for (let c = 0; c < 8; ++c) {
          const j = i0 + cornerIndex[c];
          values[c] = field[j];
          corners[c] = j;
        }
        const tris = TRIANGLES[mask];
        for (let k = 0; k < tris.length; ++k) indices.push(edges.vertex(x, y, z, tris[k]));
      }
    }
    edges.nextSlab();
  }
}

/** Four face bits (y, z) -> the mask bits of corners 0, 2, 4, 6. */
const SPREAD = Uint8Array.from({ length: 16 }, (_, b) => (b & 1) | ((b & 2) << 1) | ((b & 4) << 2) | ((b & 8) << 3));

/** Meshes every (or each requested) segment of a label volume. */
export function meshSegments(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, options: MeshOptions = {}): Map<number, SegmentMesh> {
  if (!(labels instanceof Uint32Array)) throw new PipelineError("bad_argument", "labels must be a Uint32Array");
  if (shape.length !== 3 || shape.some((n) => !Number.isInteger(n) || n < 0)) throw new PipelineError("bad_argument", `bad shape ${JSON.stringify(shape)}`);
  if (labels.length !== shape[0] * shape[1] * shape[2]) {
    throw new PipelineError("shape_mismatch", `labels hold ${labels.length} voxels, shape ${shape.join("x")} needs ${shape[0] * shape[1] * shape[2]}`);
  }
  if (voxelNm.length !== 3 || voxelNm.some((v) => !(v > 0) || !Number.isFinite(v))) throw new PipelineError("bad_argument", "voxel size must be three positive numbers");
  const { downsample } = options;
  if (downsample && (downsample.length !== 3 || downsample.some((f) => !Number.isInteger(f) || f < 1))) {
    throw new PipelineError("bad_argument", "downsample must be three positive integers");
  }
  const wanted = options.ids === undefined ? undefined : new Set(options.ids);
  const boxes = boundingBoxes(labels, shape, wanted);
  const out = new Map<number, SegmentMesh>();
  const ids = [...boxes.keys()].sort((a, b) => a - b);
  for (const id of ids) {
    const box = boxes.get(id);
    if (box) out.set(id, meshBoxed(labels, shape, voxelNm, id, box, options));
  }
  return out;
}

/**
 * One segment's mesh given its bounding box (voxels, x0, y0, z0, x1, y1, z1 end exclusive, the layout of
 * stats.ts): what meshSegments does per id, without scanning the volume for boxes.
 */
export function meshSegment(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, id: number, bbox: ArrayLike<number>, options: Omit<MeshOptions, "ids"> = {}): SegmentMesh {
  if (labels.length !== shape[0] * shape[1] * shape[2]) throw new PipelineError("shape_mismatch", `labels hold ${labels.length} voxels, shape ${shape.join("x")} needs ${shape[0] * shape[1] * shape[2]}`);
  if (!(bbox[3] > bbox[0] && bbox[4] > bbox[1] && bbox[5] > bbox[2])) return { positions: new Float32Array(0), indices: new Uint32Array(0) };
  return meshBoxed(labels, shape, voxelNm, id, { lo: [bbox[0], bbox[1], bbox[2]], hi: [bbox[3] - 1, bbox[4] - 1, bbox[5] - 1] }, options);
}

function meshBoxed(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, id: number, box: Box, options: Omit<MeshOptions, "ids">): SegmentMesh {
  const { downsample, smooth = true, maxVoxels = 1 << 22 } = options;
  const f = downsample ?? autoFactor(box, maxVoxels);
  // two blocks of zeros around the mask: one for the smoothing to spread into, one to close the surface
  const { field, dims, origin } = occupancy(labels, shape, id, box, f, 2);
  let smoothed: Float32Array | undefined;
  if (smooth) {
    smoothed = field.slice();
    smooth3(smoothed, dims);
  }
  return marchingCubes(field, smoothed, dims, origin, f, voxelNm);
}
