/**
 * Levels of detail for one segment's display mesh, for the multi-resolution precomputed format
 * (precomputed/mesh-multires.ts): lod 0 is the full-resolution mesh, each coarser lod a meshoptimizer
 * simplification of it, and a cell grid whose cells double per lod.
 *
 * Per lod k the simplifier gets two limits and stops at whichever it reaches first:
 *  - a triangle target, `ratios[k]` of the input (default 1, 1/4, 1/16, then a quarter per further lod). Cells
 *    double per lod, so a cell's share of the surface grows four-fold; at a quarter of the triangles per step a
 *    fragment holds about as many triangles at every lod, and what Neuroglancer fetches per cell stays even.
 *  - an error bound, `errors[k]` times the largest side of a lod-k cell (default 1 % above lod 0). For a 1 um
 *    mitochondrion (lod 0 cells ~255 nm) that is ~5 nm at lod 1 (one in-plane voxel at 5 nm) and ~10 nm at lod 2;
 *    a sphere's area changes by about twice the relative change of its radius, well under 5 %. Tying the bound to
 *    the cell rather than the object keeps lod 1 of a 20 um ER network as fine as lod 1 of a mitochondrion's cell.
 *    Small or detailed meshes therefore keep more triangles than the ratio asks: the bound wins.
 * Every lod is simplified from the full mesh (not from the previous lod), so errors do not accumulate, and with
 * vertex placement (`simplifyWithUpdate`) so a coarse lod is not shrunk onto a subset of the fine vertices.
 *
 * The grid: by default cubic cells, placed so the coarsest lod is a single cell around the whole object (2 %
 * margin), which keeps Neuroglancer's octree one tree without placeholder levels. Objects too large for lod 0
 * cells of at most `maxChunkNm` get more lods (default ratios only).
 */
import { MeshoptSimplifier } from "meshoptimizer";
import type { Vec3 } from "../../precomputed/array.js";
import { writeMultiresMesh, type MultiresManifest, type QuantizationBits } from "../../precomputed/mesh-multires.js";
import type { Storage } from "../../precomputed/storage.js";
import { PipelineError } from "./errors.js";
import type { SegmentMesh } from "./mesh.js";

export const DEFAULT_LOD_RATIOS: readonly number[] = [1, 1 / 4, 1 / 16];
/** Fraction of the lod's cell side; lod 0 is the input as it is. */
export const DEFAULT_LOD_ERROR = 0.01;
export const DEFAULT_MAX_CHUNK_NM = 1024;

export interface MeshLodOptions {
  /** Triangle target per lod as a fraction of the input's, lod 0 first; non-increasing, in (0, 1]. */
  ratios?: readonly number[];
  /** Deviation bound per lod as a fraction of the largest side of that lod's cells; same length as `ratios`. */
  errors?: readonly number[];
  /** Lod 0 cell size in nm. Default: cubic, so the coarsest lod is one cell. */
  chunkShape?: Vec3;
  /** Corner of cell (0, 0, 0) in nm. Default: centred on the object (with `chunkShape` given: its lower corner). */
  gridOrigin?: Vec3;
  /** With default ratios and no `chunkShape`, lods are added until lod 0 cells are at most this big (nm). */
  maxChunkNm?: number;
}

export interface MeshLods {
  /** lod 0 (the input) first */
  lods: SegmentMesh[];
  /** Deviation meshoptimizer reports per lod, in nm (0 for an unsimplified lod). */
  errorsNm: number[];
  chunkShape: Vec3;
  gridOrigin: Vec3;
}

function checkOptions(ratios: readonly number[], errors: readonly number[]): void {
  if (ratios.length === 0 || ratios.length > 16) throw new PipelineError("bad_argument", "expected 1 to 16 lod ratios", "ratios");
  if (errors.length !== ratios.length) throw new PipelineError("bad_argument", `expected ${ratios.length} error bounds, one per lod`, "errors");
  ratios.forEach((r, k) => {
    if (!(r > 0 && r <= 1) || (k > 0 && r > ratios[k - 1])) throw new PipelineError("bad_argument", "ratios must be non-increasing, in (0, 1]", "ratios");
  });
  if (errors.some((e) => !(e >= 0 && e < 1))) throw new PipelineError("bad_argument", "error bounds must be in [0, 1)", "errors");
}

/** Keeps only the vertices `indices` use, renumbered in first-use order. */
function compact(positions: Float32Array, indices: Uint32Array): SegmentMesh {
  const remap = new Int32Array(positions.length / 3).fill(-1);
  const out = new Uint32Array(indices.length);
  const kept = new Float32Array(positions.length);
  const n = renumber(positions, indices, remap, out, kept);
  return { positions: kept.slice(0, 3 * n), indices: out };
}

/**
 * compact's loop, apart (V8 optimised it mid-loop and then deoptimised on the code after it); the kept vertices
 * go straight into a Float32Array of the same values the number array held. Returns how many were kept.
 */
function renumber(positions: Float32Array, indices: Uint32Array, remap: Int32Array, out: Uint32Array, kept: Float32Array): number {
  let n = 0;
  for (let i = 0; i < indices.length; ++i) {
    const v = indices[i];
    if (remap[v] < 0) {
      remap[v] = n;
      kept[3 * n] = positions[3 * v];
      kept[3 * n + 1] = positions[3 * v + 1];
      kept[3 * n + 2] = positions[3 * v + 2];
      n++;
    }
    out[i] = remap[v];
  }
  return n;
}

/** Simplifies to about `ratio` of the triangles, never moving the surface by more than `errorNm`. */
export async function simplifyMesh(mesh: SegmentMesh, ratio: number, errorNm: number): Promise<{ mesh: SegmentMesh; errorNm: number }> {
  if (ratio >= 1 || errorNm === 0) return { mesh: { positions: mesh.positions.slice(), indices: mesh.indices.slice() }, errorNm: 0 };
  await MeshoptSimplifier.ready;
  const positions = mesh.positions.slice(); // updated in place
  const indices = mesh.indices.slice();
  const target = Math.min(indices.length, Math.max(3, 3 * Math.floor((ratio * indices.length) / 3)));
  const [count, error] = MeshoptSimplifier.simplifyWithUpdate(indices, positions, 3, new Float32Array(0), 0, [], null, target, errorNm, ["ErrorAbsolute"]);
  return { mesh: compact(positions, indices.subarray(0, count)), errorNm: error };
}

function bounds(meshes: SegmentMesh[]): { lo: Vec3; hi: Vec3 } {
  // Float64Arrays hold the same values as the number arrays did; the per-mesh loop is its own function (V8
  // optimised it mid-loop inside this one and deoptimised on the code after it).
  const lo = new Float64Array([Infinity, Infinity, Infinity]);
  const hi = new Float64Array([-Infinity, -Infinity, -Infinity]);
  for (const m of meshes) extend(m.positions, lo, hi);
  return { lo: [lo[0], lo[1], lo[2]], hi: [hi[0], hi[1], hi[2]] };
}

function extend(positions: Float32Array, lo: Float64Array, hi: Float64Array): void {
  for (let i = 0; i < positions.length; ++i) {
    const d = i % 3;
    if (positions[i] < lo[d]) lo[d] = positions[i];
    if (positions[i] > hi[d]) hi[d] = positions[i];
  }
}

/** The lods of one segment's mesh and the grid to cut them on. */
export async function buildMeshLods(mesh: SegmentMesh, options: MeshLodOptions = {}): Promise<MeshLods> {
  if (mesh.indices.length === 0) throw new PipelineError("bad_input", "mesh has no triangles", "mesh");
  const { chunkShape: givenChunk, gridOrigin: givenOrigin } = options;
  if (givenChunk !== undefined && (givenChunk.length !== 3 || !givenChunk.every((c) => Number.isFinite(c) && c > 0))) {
    throw new PipelineError("bad_argument", "expected 3 positive cell sizes in nm", "chunkShape");
  }
  if (givenOrigin !== undefined && (givenOrigin.length !== 3 || !givenOrigin.every(Number.isFinite))) {
    throw new PipelineError("bad_argument", "expected 3 finite numbers", "gridOrigin");
  }
  const maxChunk = options.maxChunkNm ?? DEFAULT_MAX_CHUNK_NM;
  if (!(maxChunk > 0)) throw new PipelineError("bad_argument", "expected a positive size in nm", "maxChunkNm");
  const input = bounds([mesh]);
  const side = (box: { lo: Vec3; hi: Vec3 }): number => Math.max(...[0, 1, 2].map((d) => box.hi[d] - box.lo[d]), 1e-3) * 1.02;
  let ratios = options.ratios;
  if (ratios === undefined) {
    const r = [...DEFAULT_LOD_RATIOS];
    while (givenChunk === undefined && side(input) / 2 ** (r.length - 1) > maxChunk && r.length < 16) r.push(r[r.length - 1] / 4);
    ratios = r;
  }
  const errors = options.errors ?? ratios.map((_, k) => (k === 0 ? 0 : DEFAULT_LOD_ERROR));
  checkOptions(ratios, errors);
  const cell0 = givenChunk === undefined ? side(input) / 2 ** (ratios.length - 1) : Math.max(...givenChunk);
  const results: { mesh: SegmentMesh; errorNm: number }[] = [];
  for (let k = 0; k < ratios.length; ++k) results.push(await simplifyMesh(mesh, ratios[k], errors[k] * cell0 * 2 ** k));
  const lods = results.map((r) => r.mesh);
  // Simplified vertices may move slightly outside the input's box, so the grid is fitted to all lods.
  const box = bounds(lods);
  let chunkShape = givenChunk;
  let gridOrigin = givenOrigin;
  if (chunkShape === undefined) {
    const s = side(box);
    const c = s / 2 ** (lods.length - 1);
    chunkShape = [c, c, c];
    gridOrigin ??= [0, 1, 2].map((d) => (box.lo[d] + box.hi[d]) / 2 - s / 2) as Vec3;
  }
  gridOrigin ??= [...box.lo];
  return { lods, errorsNm: results.map((r) => r.errorNm), chunkShape, gridOrigin };
}

/**
 * Builds the lods of one segment's mesh (nm) and writes them as a multi-resolution mesh `<id>` / `<id>.index`
 * under `meshPrefix`, whose info must say `quantizationBits` and an identity transform (stored units = nm).
 */
export async function writeSegmentMultiresMesh(
  storage: Storage,
  meshPrefix: string,
  id: number,
  mesh: SegmentMesh,
  options: MeshLodOptions & { quantizationBits?: QuantizationBits } = {},
): Promise<{ manifest: MultiresManifest; lods: MeshLods }> {
  const lods = await buildMeshLods(mesh, options);
  const manifest = await writeMultiresMesh(storage, meshPrefix, id, lods.lods, {
    chunkShape: lods.chunkShape,
    gridOrigin: lods.gridOrigin,
    quantizationBits: options.quantizationBits ?? 16,
  });
  return { manifest, lods };
}
