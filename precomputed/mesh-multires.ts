/**
 * Multi-resolution precomputed meshes, `neuroglancer_multilod_draco` (neuroglancer
 * src/datasource/precomputed/meshes.md; read by `decodeMultiscaleManifestChunk` / `decodeMultiscaleFragmentChunk`
 * in src/datasource/precomputed/backend.ts, drawn by src/mesh/multiscale.ts).
 *
 * Layout under the mesh directory: `info` (JSON), per segment a binary manifest `<id>.index` and a data file `<id>`
 * holding the Draco-encoded fragments back to back (lod 0 first, each lod in z-curve order). A fragment is the part
 * of one level of detail inside one octree cell: at lod k the cells are `chunkShape * 2^k` from `gridOrigin`, and
 * vertex coordinates are integers in [0, M], M = 2^bits - 1, spanning the cell.
 *
 * How fragments stitch: each lod mesh is clipped at the cell planes (new vertices on the cut edges, computed once
 * per edge so both sides share them bit for bit) and quantised on one grid per lod: a cell's M steps end exactly
 * where the next cell's begin, so a vertex on a cut has the same position seen from either cell and the union of a
 * lod's fragments is as closed as the input. For lod > 0 the spec also wants every fragment split 2x2x2 with no
 * triangle crossing the split (Neuroglancer draws the eighths whose finer cells are not loaded), so those lods are
 * clipped at the half-cell planes too, and vertices on a half plane are stored as 2^(bits-1), the value
 * Neuroglancer's decoder accepts on both sides (the exact midpoint M/2 is not an integer).
 */
import { createRequire } from "node:module";
import type { Vec3 } from "./array.js";
import { PrecomputedError } from "./errors.js";
import type { MeshFragment } from "./mesh-legacy.js";
import type { Storage } from "./storage.js";
import { joinKey, segmentIdString } from "./keys.js";

export type QuantizationBits = 10 | 16;

export interface MultiresMeshInfo {
  "@type": "neuroglancer_multilod_draco";
  vertex_quantization_bits: QuantizationBits;
  /** 3x4 row-major affine transform from stored-model units to the segmentation's physical units (nm). */
  transform: number[];
  lod_scale_multiplier: number;
  /** Relative path of a segment_properties directory. */
  segment_properties?: string;
}

export interface MultiresMeshInfoOptions {
  vertexQuantizationBits?: QuantizationBits;
  transform?: number[];
  lodScaleMultiplier?: number;
  segmentProperties?: string;
}

const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];

export function multiresMeshInfo(options: MultiresMeshInfoOptions = {}): MultiresMeshInfo {
  const info: MultiresMeshInfo = {
    "@type": "neuroglancer_multilod_draco",
    vertex_quantization_bits: options.vertexQuantizationBits ?? 16,
    transform: options.transform ?? IDENTITY,
    lod_scale_multiplier: options.lodScaleMultiplier ?? 1,
  };
  if (options.segmentProperties !== undefined) info.segment_properties = options.segmentProperties;
  return validateMultiresMeshInfo(info);
}

export function validateMultiresMeshInfo(json: unknown): MultiresMeshInfo {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new PrecomputedError("invalid_info", "expected a JSON object");
  const j = json as Record<string, unknown>;
  if (j["@type"] !== "neuroglancer_multilod_draco") throw new PrecomputedError("invalid_info", 'must be "neuroglancer_multilod_draco"', "@type");
  const bits = j.vertex_quantization_bits;
  if (bits !== 10 && bits !== 16) throw new PrecomputedError("invalid_info", "must be 10 or 16", "vertex_quantization_bits");
  const t = j.transform;
  if (!Array.isArray(t) || t.length !== 12 || t.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
    throw new PrecomputedError("invalid_info", "expected 12 finite numbers (3x4 row-major)", "transform");
  }
  const m = j.lod_scale_multiplier;
  if (typeof m !== "number" || !Number.isFinite(m) || m <= 0) throw new PrecomputedError("invalid_info", "expected a positive number", "lod_scale_multiplier");
  if (j.sharding !== undefined) throw new PrecomputedError("unsupported", "sharded multi-resolution meshes are not supported", "sharding");
  const sp = j.segment_properties;
  if (sp !== undefined && typeof sp !== "string") throw new PrecomputedError("invalid_info", "expected a string", "segment_properties");
  const info: MultiresMeshInfo = {
    "@type": "neuroglancer_multilod_draco",
    vertex_quantization_bits: bits,
    transform: [...(t as number[])],
    lod_scale_multiplier: m,
  };
  if (sp !== undefined) info.segment_properties = sp;
  return info;
}

export async function writeMultiresMeshInfo(storage: Storage, meshPrefix: string, info: MultiresMeshInfo = multiresMeshInfo()): Promise<void> {
  await storage.put(joinKey(meshPrefix, "info"), JSON.stringify(validateMultiresMeshInfo(info)));
}

// ---------------------------------------------------------------------------------------------------------------
// Manifest (`<id>.index`)

export interface MultiresLodManifest {
  /** Octree cell of each fragment, in cells of `chunkShape * 2^lod`, strictly increasing in z-curve order. */
  fragmentPositions: Vec3[];
  /** Encoded size in bytes of each fragment; 0 marks an empty cell. */
  fragmentSizes: number[];
}

export interface MultiresManifest {
  chunkShape: Vec3;
  gridOrigin: Vec3;
  /** Per lod, the size of detail it shows, in stored-model units (times the info's lod_scale_multiplier). */
  lodScales: number[];
  vertexOffsets: Vec3[];
  lods: MultiresLodManifest[];
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

function zorderCompare(a: Vec3, b: Vec3): number {
  return zorderLess(a, b) ? -1 : zorderLess(b, a) ? 1 : 0;
}

const isUint32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

function checkManifest(m: MultiresManifest, code: "invalid_argument" | "invalid_chunk"): void {
  const vec = (v: Vec3, what: string, positive: boolean): void => {
    if (v.length !== 3 || v.some((x) => !Number.isFinite(x) || (positive && !(x > 0)))) {
      throw new PrecomputedError(code, positive ? "expected 3 finite positive numbers" : "expected 3 finite numbers", what);
    }
  };
  vec(m.chunkShape, "chunk_shape", true);
  vec(m.gridOrigin, "grid_origin", false);
  const n = m.lods.length;
  // Neuroglancer sums the fragment counts with a reduce that has no initial value: zero lods crash it.
  if (n < 1) throw new PrecomputedError(code, "a manifest needs at least one lod", "num_lods");
  if (m.lodScales.length !== n || m.vertexOffsets.length !== n) throw new PrecomputedError(code, `expected ${n} lod scales and vertex offsets`, "lod_scales");
  m.lodScales.forEach((s, i) => {
    if (!Number.isFinite(s) || s < 0) throw new PrecomputedError(code, "expected a finite non-negative number", `lod_scales[${i}]`);
  });
  m.vertexOffsets.forEach((v, i) => vec(v, `vertex_offsets[${i}]`, false));
  m.lods.forEach((lod, k) => {
    const { fragmentPositions: pos, fragmentSizes: sizes } = lod;
    if (pos.length !== sizes.length) throw new PrecomputedError(code, "fragment positions and sizes differ in length", `lods[${k}]`);
    pos.forEach((p, i) => {
      if (p.length !== 3 || !p.every(isUint32)) throw new PrecomputedError(code, "expected 3 uint32 cell coordinates", `lods[${k}].fragment_positions[${i}]`);
      if (i > 0 && !zorderLess(pos[i - 1], p)) {
        throw new PrecomputedError(code, "fragment positions must be strictly increasing in z-curve order", `lods[${k}].fragment_positions[${i}]`);
      }
    });
    sizes.forEach((s, i) => {
      if (!isUint32(s)) throw new PrecomputedError(code, "expected a uint32 byte count", `lods[${k}].fragment_offsets[${i}]`);
    });
  });
}

export function encodeMultiresManifest(m: MultiresManifest): Uint8Array {
  checkManifest(m, "invalid_argument");
  const n = m.lods.length;
  const total = m.lods.reduce((s, l) => s + l.fragmentPositions.length, 0);
  const bytes = new Uint8Array(28 + 20 * n + 16 * total);
  const dv = new DataView(bytes.buffer);
  let o = 0;
  const f32 = (v: number): void => {
    dv.setFloat32(o, v, true);
    o += 4;
  };
  const u32 = (v: number): void => {
    dv.setUint32(o, v, true);
    o += 4;
  };
  m.chunkShape.forEach(f32);
  m.gridOrigin.forEach(f32);
  u32(n);
  m.lodScales.forEach(f32);
  m.vertexOffsets.forEach((v) => v.forEach(f32));
  m.lods.forEach((l) => u32(l.fragmentPositions.length));
  for (const l of m.lods) {
    for (let d = 0; d < 3; ++d) for (const p of l.fragmentPositions) u32(p[d]);
    l.fragmentSizes.forEach(u32);
  }
  return bytes;
}

/** Decodes and checks a `<id>.index` manifest; anything malformed is a PrecomputedError("invalid_chunk"). */
export function readMultiresManifest(bytes: Uint8Array): MultiresManifest {
  if (!(bytes instanceof Uint8Array)) throw new PrecomputedError("invalid_argument", "expected a Uint8Array");
  const size = bytes.byteLength;
  if (size < 28 || size % 4 !== 0) throw new PrecomputedError("invalid_chunk", `manifest of ${size} bytes is too short or not a multiple of 4`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, size);
  let o = 0;
  const f32 = (): number => {
    const v = dv.getFloat32(o, true);
    o += 4;
    return v;
  };
  const u32 = (): number => {
    const v = dv.getUint32(o, true);
    o += 4;
    return v;
  };
  const vec = (read: () => number): Vec3 => [read(), read(), read()];
  const chunkShape = vec(f32);
  const gridOrigin = vec(f32);
  const n = u32();
  // Checked before allocating anything sized by n, so a corrupt count cannot ask for gigabytes.
  if (o + 20 * n > size) throw new PrecomputedError("invalid_chunk", `manifest of ${size} bytes cannot hold ${n} lods`, "num_lods");
  const lodScales = Array.from({ length: n }, f32);
  const vertexOffsets = Array.from({ length: n }, () => vec(f32));
  const counts = Array.from({ length: n }, u32);
  const total = counts.reduce((s, c) => s + c, 0);
  if (size !== o + 16 * total) {
    throw new PrecomputedError("invalid_chunk", `manifest of ${size} bytes does not match ${n} lods with ${total} fragments`, "num_fragments_per_lod");
  }
  const lods = counts.map((count): MultiresLodManifest => {
    const cols = [0, 1, 2, 3].map(() => Array.from({ length: count }, u32));
    return { fragmentPositions: cols[0].map((x, i): Vec3 => [x, cols[1][i], cols[2][i]]), fragmentSizes: cols[3] };
  });
  const m: MultiresManifest = { chunkShape, gridOrigin, lodScales, vertexOffsets, lods };
  checkManifest(m, "invalid_chunk");
  return m;
}

/** Byte range of every fragment in the data file `<id>`, per lod, in manifest order. */
export function multiresFragmentRanges(m: MultiresManifest): { offset: number; size: number }[][] {
  let offset = 0;
  return m.lods.map((l) =>
    l.fragmentSizes.map((size) => {
      const r = { offset, size };
      offset += size;
      return r;
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Cutting a lod mesh into quantised cell fragments

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

/** Growable float64 xyz store. */
class Points {
  data = new Float64Array(3 * 1024);
  count = 0;
  add(x: number, y: number, z: number): number {
    if (3 * this.count + 3 > this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data.set([x, y, z], 3 * this.count);
    return this.count++;
  }
}

/** Float32 the way the manifest stores it, so our cell arithmetic matches what Neuroglancer reads back. */
function gridOf(grid: MultiresGrid): { chunk: Vec3; origin: Vec3; bits: QuantizationBits } {
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
  for (const i of indices) if (i >= nv) throw new PrecomputedError("invalid_argument", `index ${i} is not below the ${nv} vertices`, path);
  for (const v of positions) if (!Number.isFinite(v)) throw new PrecomputedError("invalid_argument", "positions must be finite", path);
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
  const slab = chunk.map((c) => (c * 2 ** lod) / split);
  const pts = new Points();
  const nv = mesh.positions.length / 3;
  for (let i = 0; i < nv; ++i) {
    const u = [0, 1, 2].map((d) => {
      const v = (mesh.positions[3 * i + d] - origin[d]) / slab[d];
      const r = Math.round(v);
      // Float noise around a cut would otherwise leave slivers a few ulps wide.
      return Math.abs(v - r) <= 1e-9 * Math.max(1, Math.abs(v)) ? r : v;
    });
    if (u.some((v) => v < 0 || v >= 2 ** 31)) {
      throw new PrecomputedError("invalid_argument", `vertex ${i} lies outside the grid (below gridOrigin or too many cells away)`, `lods[${lod}]`);
    }
    pts.add(u[0], u[1], u[2]);
  }

  // One vertex per (edge, plane), computed from the lower vertex id, so neighbours across a cut share it exactly.
  const cutCache = new Map<string, number>();
  const cut = (a: number, b: number, axis: number, plane: number): number => {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const key = `${lo},${hi},${axis},${plane}`;
    let id = cutCache.get(key);
    if (id === undefined) {
      const p = pts.data;
      const t = (plane - p[3 * lo + axis]) / (p[3 * hi + axis] - p[3 * lo + axis]);
      const c = [0, 1, 2].map((d) => {
        if (d === axis) return plane;
        const [x, y] = [p[3 * lo + d], p[3 * hi + d]];
        // Rounding may overshoot an endpoint by an ulp; one that sat on an earlier cut would then slip into the
        // neighbouring slab and the polygon into the wrong cell.
        return Math.min(Math.max(x + t * (y - x), Math.min(x, y)), Math.max(x, y));
      });
      id = pts.add(c[0], c[1], c[2]);
      cutCache.set(key, id);
    }
    return id;
  };

  const M = 2 ** bits - 1;
  const half = 2 ** (bits - 1);
  const cells = new Map<string, { position: Vec3; positions: number[]; indices: number[]; ids: Map<number, number> }>();
  const local = new Array<number>(3);
  for (let t = 0; t < mesh.indices.length; t += 3) {
    const [a, b, c] = [mesh.indices[t], mesh.indices[t + 1], mesh.indices[t + 2]];
    if (a === b || b === c || a === c) continue;
    let polys: number[][] = [[a, b, c]];
    for (let axis = 0; axis < 3; ++axis) {
      const out: number[][] = [];
      for (let poly of polys) {
        for (;;) {
          let min = Infinity;
          let max = -Infinity;
          for (const v of poly) {
            const x = pts.data[3 * v + axis];
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
            const p = poly[i];
            const q = poly[(i + 1) % poly.length];
            const dp = pts.data[3 * p + axis] - plane;
            const dq = pts.data[3 * q + axis] - plane;
            if (dp <= 0) below.push(p);
            if (dp >= 0) above.push(p);
            if ((dp < 0 && dq > 0) || (dp > 0 && dq < 0)) {
              const x = cut(p, q, axis, plane);
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

    for (const poly of polys) {
      const cell: Vec3 = [0, 0, 0];
      for (let d = 0; d < 3; ++d) {
        let min = Infinity;
        for (const v of poly) min = Math.min(min, pts.data[3 * v + d]);
        cell[d] = Math.floor(Math.floor(min) / split);
      }
      const key = cell.join(",");
      let frag = cells.get(key);
      if (frag === undefined) cells.set(key, (frag = { position: cell, positions: [], indices: [], ids: new Map() }));
      const ids = poly.map((v) => {
        for (let d = 0; d < 3; ++d) {
          const u = pts.data[3 * v + d];
          // On a half-cell plane the exact value M/2 is not an integer; Neuroglancer's partition accepts 2^(bits-1)
          // on both sides, and any other rounding would file the triangle under the wrong eighth.
          const q = split === 2 && u === 2 * cell[d] + 1 ? half : Math.round(((u - split * cell[d]) / split) * M);
          local[d] = Math.min(M, Math.max(0, q));
        }
        const qkey = local[0] + (M + 1) * (local[1] + (M + 1) * local[2]);
        let id = frag.ids.get(qkey);
        if (id === undefined) {
          id = frag.positions.length / 3;
          frag.positions.push(local[0], local[1], local[2]);
          frag.ids.set(qkey, id);
        }
        return id;
      });
      for (let i = 1; i + 1 < ids.length; ++i) {
        // Quantisation can merge vertices; such a triangle has no area and its edges pair up among its neighbours.
        if (ids[0] !== ids[i] && ids[i] !== ids[i + 1] && ids[0] !== ids[i + 1]) frag.indices.push(ids[0], ids[i], ids[i + 1]);
      }
    }
  }
  return [...cells.values()]
    .filter((f) => f.indices.length > 0)
    .map((f) => ({ position: f.position, positions: Uint32Array.from(f.positions), indices: Uint32Array.from(f.indices) }))
    .sort((x, y) => zorderCompare(x.position, y.position));
}

/** Which eighth of its cell Neuroglancer's decoder files a triangle under (neuroglancer_draco.cc, partition). */
export function triangleOctant(positions: ArrayLike<number>, a: number, b: number, c: number, bits: QuantizationBits): number {
  const p = 2 ** (bits - 1);
  let mask = 0xff;
  for (const v of [a, b, c]) {
    const [x, y, z] = [positions[3 * v], positions[3 * v + 1], positions[3 * v + 2]];
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

// ---------------------------------------------------------------------------------------------------------------
// Draco encoding (draco3d's encoder module; structural types for the parts used)

interface DracoObject {
  readonly ptr?: number;
}
interface DracoInt8Array extends DracoObject {
  GetValue(i: number): number;
}
interface DracoEncoder extends DracoObject {
  SetSpeedOptions(encodeSpeed: number, decodeSpeed: number): void;
  SetEncodingMethod(method: number): void;
  SetAttributeExplicitQuantization(attribute: number, bits: number, numComponents: number, origin: number[], range: number): void;
  EncodeMeshToDracoBuffer(mesh: DracoObject, out: DracoInt8Array): number;
}
interface DracoMeshBuilder extends DracoObject {
  AddFacesToMesh(mesh: DracoObject, numFaces: number, faces: Uint32Array): boolean;
  AddFloatAttributeToMesh(mesh: DracoObject, attribute: number, numPoints: number, numComponents: number, values: Float32Array): number;
}
interface DracoEncoderModule {
  Encoder: new () => DracoEncoder;
  MeshBuilder: new () => DracoMeshBuilder;
  Mesh: new () => DracoObject;
  DracoInt8Array: new () => DracoInt8Array;
  POSITION: number;
  MESH_EDGEBREAKER_ENCODING: number;
  destroy(object: DracoObject): void;
}
interface Draco3d {
  createEncoderModule(options: object): Promise<DracoEncoderModule>;
}

let encoderModule: Promise<DracoEncoderModule> | undefined;

function dracoEncoder(): Promise<DracoEncoderModule> {
  encoderModule ??= (async () => {
    // draco3d is CommonJS without type declarations; loaded on first use so readers never pay for the wasm.
    const draco = createRequire(import.meta.url)("draco3d") as Draco3d;
    return draco.createEncoderModule({});
  })();
  return encoderModule;
}

/**
 * Draco-encodes one fragment. Positions go in as floats holding the integer grid values with an explicit
 * quantisation of `bits` bits over [0, 2^bits - 1]: Draco's quantiser then maps each value to itself, and
 * Neuroglancer, which skips Draco's dequantisation, reads back exactly our integers.
 */
export async function encodeDracoFragment(fragment: CellFragment, bits: QuantizationBits, compressionLevel = 7): Promise<Uint8Array> {
  if (!Number.isInteger(compressionLevel) || compressionLevel < 0 || compressionLevel > 10) {
    throw new PrecomputedError("invalid_argument", "compression level must be an integer in [0, 10]", "compressionLevel");
  }
  const M = 2 ** bits - 1;
  if (fragment.positions.some((v) => v > M)) throw new PrecomputedError("invalid_argument", `vertex values must be at most ${M}`, "positions");
  const draco = await dracoEncoder();
  const builder = new draco.MeshBuilder();
  const mesh = new draco.Mesh();
  const encoder = new draco.Encoder();
  const out = new draco.DracoInt8Array();
  try {
    builder.AddFacesToMesh(mesh, fragment.indices.length / 3, fragment.indices);
    builder.AddFloatAttributeToMesh(mesh, draco.POSITION, fragment.positions.length / 3, 3, Float32Array.from(fragment.positions));
    encoder.SetAttributeExplicitQuantization(draco.POSITION, bits, 3, [0, 0, 0], M);
    encoder.SetSpeedOptions(10 - compressionLevel, 10 - compressionLevel);
    encoder.SetEncodingMethod(draco.MESH_EDGEBREAKER_ENCODING);
    const n = encoder.EncodeMeshToDracoBuffer(mesh, out);
    if (n <= 0) throw new PrecomputedError("invalid_argument", "Draco could not encode the fragment", "fragment");
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; ++i) bytes[i] = out.GetValue(i);
    return bytes;
  } finally {
    for (const o of [out, encoder, mesh, builder]) draco.destroy(o);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Whole segments

export interface MultiresMeshOptions extends MultiresGrid {
  /**
   * Detail size per lod in stored-model units; Neuroglancer shows a finer lod once a coarser one's scale covers
   * more than its detail cutoff in screen pixels. Default: each lod's mean edge length, made non-decreasing.
   */
  lodScales?: number[];
  /** Draco compression level 0-10 (default 7). */
  compressionLevel?: number;
}

export interface EncodedMultiresMesh {
  manifest: MultiresManifest;
  /** The data file `<id>`: all non-empty fragments, in manifest order. */
  data: Uint8Array;
  /** Per lod, the fragments in manifest order; `undefined` for cells kept empty to hold the octree together. */
  fragments: (CellFragment | undefined)[][];
}

function meanEdgeLength(mesh: MeshFragment): number {
  const { positions: p, indices: ix } = mesh;
  let sum = 0;
  for (let t = 0; t < ix.length; t += 3) {
    for (let e = 0; e < 3; ++e) {
      const a = 3 * ix[t + e];
      const b = 3 * ix[t + ((e + 1) % 3)];
      sum += Math.hypot(p[a] - p[b], p[a + 1] - p[b + 1], p[a + 2] - p[b + 2]);
    }
  }
  return ix.length === 0 ? 0 : sum / ix.length;
}

function defaultLodScales(lods: MeshFragment[], chunk: Vec3): number[] {
  const scales: number[] = [];
  for (const mesh of lods) {
    const prev = scales.length === 0 ? Math.min(...chunk) / 64 : scales[scales.length - 1];
    // Zero would tell Neuroglancer the lod is a placeholder level, so every scale stays positive.
    scales.push(Math.fround(Math.max(meanEdgeLength(mesh), prev)));
  }
  return scales;
}

/**
 * Cuts every lod into cell fragments, adds the empty cells the octree needs, and Draco-encodes the fragments.
 * Octree rules (src/mesh/multiscale.ts): a cell at lod k-1 is only reached through its parent at lod k, so every
 * cell gets a parent (empty if that lod has nothing there); and a lod-k eighth with triangles gets a child at
 * lod k-1 (empty if need be), else Neuroglancer would draw the coarse eighth next to the finer cells around it.
 */
export async function encodeMultiresMesh(lods: MeshFragment[], options: MultiresMeshOptions): Promise<EncodedMultiresMesh> {
  if (!Array.isArray(lods) || lods.length === 0 || lods.length > 30) throw new PrecomputedError("invalid_argument", "expected 1 to 30 lods", "lods");
  const { chunk, origin, bits } = gridOf(options);
  const lodScales = options.lodScales ?? defaultLodScales(lods, chunk);
  if (lodScales.length !== lods.length || lodScales.some((s) => !Number.isFinite(s) || s <= 0)) {
    throw new PrecomputedError("invalid_argument", `expected ${lods.length} finite positive lod scales`, "lodScales");
  }
  const grid = { chunkShape: chunk, gridOrigin: origin, quantizationBits: bits };
  const cells = lods.map((mesh, k) => {
    const m = new Map<string, CellFragment | undefined>();
    for (const f of fragmentMeshLod(mesh, k, grid)) m.set(f.position.join(","), f);
    return m;
  });
  if (cells.every((m) => m.size === 0)) throw new PrecomputedError("invalid_argument", "no lod has any triangle", "lods");
  const ensure = (k: number, p: Vec3): void => {
    const key = p.join(",");
    if (!cells[k].has(key)) cells[k].set(key, undefined);
  };
  for (let k = lods.length - 1; k > 0; --k) {
    for (const f of cells[k].values()) {
      if (f === undefined) continue;
      const octants = new Set<number>();
      for (let t = 0; t < f.indices.length; t += 3) octants.add(triangleOctant(f.positions, f.indices[t], f.indices[t + 1], f.indices[t + 2], bits));
      for (const o of octants) ensure(k - 1, [2 * f.position[0] + (o & 1), 2 * f.position[1] + ((o >> 1) & 1), 2 * f.position[2] + ((o >> 2) & 1)]);
    }
  }
  for (let k = 0; k + 1 < lods.length; ++k) {
    for (const key of [...cells[k].keys()]) {
      const [x, y, z] = key.split(",").map(Number);
      ensure(k + 1, [x >>> 1, y >>> 1, z >>> 1]);
    }
  }
  const fragments = cells.map((m) =>
    [...m.entries()]
      .map(([key, f]) => ({ position: key.split(",").map(Number) as Vec3, f }))
      .sort((a, b) => zorderCompare(a.position, b.position)),
  );
  const level = options.compressionLevel ?? 7;
  const encoded = await Promise.all(fragments.map((l) => Promise.all(l.map(({ f }) => (f ? encodeDracoFragment(f, bits, level) : new Uint8Array(0))))));
  const data = new Uint8Array(encoded.flat().reduce((s, b) => s + b.byteLength, 0));
  let o = 0;
  for (const b of encoded.flat()) {
    data.set(b, o);
    o += b.byteLength;
  }
  const manifest: MultiresManifest = {
    chunkShape: chunk,
    gridOrigin: origin,
    lodScales: lodScales.map(Math.fround),
    vertexOffsets: lods.map((): Vec3 => [0, 0, 0]),
    lods: fragments.map((l, k) => ({ fragmentPositions: l.map((e) => e.position), fragmentSizes: encoded[k].map((b) => b.byteLength) })),
  };
  checkManifest(manifest, "invalid_argument");
  return { manifest, data, fragments: fragments.map((l) => l.map((e) => e.f)) };
}

/**
 * Writes one segment: the data file `<id>` first, then the manifest `<id>.index`, so a manifest never points at
 * data that is not there yet. The data file is stored uncompressed because Neuroglancer reads it by byte range.
 * `quantizationBits` must match the mesh info's `vertex_quantization_bits`.
 */
export async function writeMultiresMesh(
  storage: Storage,
  meshPrefix: string,
  id: number | bigint,
  lods: MeshFragment[],
  options: MultiresMeshOptions,
): Promise<MultiresManifest> {
  const sid = segmentIdString(id);
  const { manifest, data } = await encodeMultiresMesh(lods, options);
  await storage.put(joinKey(meshPrefix, sid), data);
  await storage.put(joinKey(meshPrefix, `${sid}.index`), encodeMultiresManifest(manifest));
  return manifest;
}

export async function readMultiresMeshManifest(storage: Storage, meshPrefix: string, id: number | bigint): Promise<MultiresManifest> {
  const key = joinKey(meshPrefix, `${segmentIdString(id)}.index`);
  const bytes = await storage.get(key);
  if (bytes === undefined) throw new PrecomputedError("not_found", "no multi-resolution mesh manifest", key);
  try {
    return readMultiresManifest(bytes);
  } catch (e) {
    if (e instanceof PrecomputedError) throw new PrecomputedError(e.code, e.message, key, { cause: e });
    throw e;
  }
}


