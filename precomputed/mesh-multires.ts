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
import { fragmentMeshLod, gridOf, triangleOctant, zorderCompare, type CellFragment, type MultiresGrid, type QuantizationBits } from "./mesh-fragments.js";
import { checkManifest, encodeMultiresManifest, readMultiresManifest, type MultiresManifest } from "./mesh-manifest.js";

export { fragmentMeshLod, triangleOctant, zorderLess, type CellFragment, type MultiresGrid, type QuantizationBits } from "./mesh-fragments.js";
export { encodeMultiresManifest, multiresFragmentRanges, readMultiresManifest, type MultiresLodManifest, type MultiresManifest } from "./mesh-manifest.js";

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
  return encodeWith(await dracoEncoder(), fragment, bits, compressionLevel);
}

/**
 * encodeDracoFragment's body once the module is there, synchronous and apart from the async function: V8
 * optimised that mid-way through the byte-copy loop and deoptimised it again on the code before the loop.
 */
function encodeWith(draco: DracoEncoderModule, fragment: CellFragment, bits: QuantizationBits, compressionLevel: number): Uint8Array {
  const M = 2 ** bits - 1;
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

/**
 * Math.hypot(a, b, c), bit for bit, as V8 computes it (src/builtins/math.tq, MathHypot: scaled by the largest
 * magnitude, Kahan-summed squares): the builtin is not inlined and was ~3/4 of meanEdgeLength's time, while this
 * copy is. The lod scales are float32 of a mean over the edges, so any last-bit difference could reach the bytes.
 */
export function hypot3(a: number, b: number, c: number): number {
  const x = Math.abs(a);
  const y = Math.abs(b);
  const z = Math.abs(c);
  // NaN, infinities (and sums past the largest double): the builtin's own rules.
  if (!(x + y + z < Infinity)) return Math.hypot(a, b, c);
  let max = x > y ? x : y;
  if (z > max) max = z;
  if (max === 0) return 0;
  const nx = x / max;
  const ny = y / max;
  const nz = z / max;
  // The builtin's loop unrolled: the compensation is still 0 after the first square (0 + s is exact).
  let sum = nx * nx;
  let summand = ny * ny;
  let next = sum + summand;
  const compensation = next - sum - summand;
  sum = next;
  summand = nz * nz - compensation;
  next = sum + summand;
  return Math.sqrt(next) * max;
}

function meanEdgeLength(mesh: MeshFragment): number {
  const { positions: p, indices: ix } = mesh;
  let sum = 0;
  // Edges (a, b), (b, c), (c, a) of each triangle, in that order (the sum's rounding depends on it).
  for (let t = 0; t < ix.length; t += 3) {
    const a = 3 * ix[t];
    const b = 3 * ix[t + 1];
    const c = 3 * ix[t + 2];
    sum += hypot3(p[a] - p[b], p[a + 1] - p[b + 1], p[a + 2] - p[b + 2]);
    sum += hypot3(p[b] - p[c], p[b + 1] - p[c + 1], p[b + 2] - p[c + 2]);
    sum += hypot3(p[c] - p[a], p[c + 1] - p[a + 1], p[c + 2] - p[a + 2]);
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

/** Adds cell `p` of one lod's cells as an empty cell unless it is there already. */
function ensureCell(cells: Map<string, CellFragment | undefined>, p: Vec3): void {
  const key = p.join(",");
  if (!cells.has(key)) cells.set(key, undefined);
}

type LodCells = Map<string, CellFragment | undefined>;

/** Lod k's fragments by cell key. */
function cutLod(mesh: MeshFragment, k: number, grid: MultiresGrid): LodCells {
  const m: LodCells = new Map();
  for (const f of fragmentMeshLod(mesh, k, grid)) m.set(f.position.join(","), f);
  return m;
}

/** Gives each eighth of lod k's cells that holds triangles a cell at lod k - 1 (`finer`). */
function addChildren(cells: LodCells, finer: LodCells, bits: QuantizationBits): void {
  for (const f of cells.values()) {
    if (f === undefined) continue;
    const octants = new Set<number>();
    for (let t = 0; t < f.indices.length; t += 3) octants.add(triangleOctant(f.positions, f.indices[t], f.indices[t + 1], f.indices[t + 2], bits));
    for (const o of octants) ensureCell(finer, [2 * f.position[0] + (o & 1), 2 * f.position[1] + ((o >> 1) & 1), 2 * f.position[2] + ((o >> 2) & 1)]);
  }
}

/** Gives every cell of a lod its parent in the next coarser lod (`coarser`). */
function addParents(cells: LodCells, coarser: LodCells): void {
  for (const key of [...cells.keys()]) {
    const [x, y, z] = key.split(",").map(Number);
    ensureCell(coarser, [x >>> 1, y >>> 1, z >>> 1]);
  }
}

/** One lod's cells in z-curve order. */
function sortedCells(m: LodCells): { position: Vec3; f: CellFragment | undefined }[] {
  return [...m.entries()]
    .map(([key, f]) => ({ position: key.split(",").map(Number) as Vec3, f }))
    .sort((a, b) => zorderCompare(a.position, b.position));
}

/**
 * Per lod, the cells in z-curve order: the cut fragments plus the empty cells the octree needs (see
 * encodeMultiresMesh). Synchronous, outside the async encoder, and one small function per phase: with the phases'
 * loops in one function, V8 compiled the whole of it (the mesh cutting inlined) on each loop's on-stack
 * replacement and again after each phase's deopt, ~10 times a run at tens of ms each.
 */
function octreeCells(lods: MeshFragment[], grid: MultiresGrid, bits: QuantizationBits): { position: Vec3; f: CellFragment | undefined }[][] {
  const cells: LodCells[] = [];
  for (let k = 0; k < lods.length; ++k) cells.push(cutLod(lods[k], k, grid));
  if (cells.every((m) => m.size === 0)) throw new PrecomputedError("invalid_argument", "no lod has any triangle", "lods");
  for (let k = lods.length - 1; k > 0; --k) addChildren(cells[k], cells[k - 1], bits);
  for (let k = 0; k + 1 < lods.length; ++k) addParents(cells[k], cells[k + 1]);
  return cells.map(sortedCells);
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
  const fragments = octreeCells(lods, { chunkShape: chunk, gridOrigin: origin, quantizationBits: bits }, bits);
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

