/**
 * Whole-object measures for the out-of-core run (`blockwise.objects` tasks over id ranges): each instance is cut
 * out of the label work volume by its bounding box, one at a time, and given the same kernels as analyse.ts (surface, mito skeleton) and layers.ts (display
 * mesh), so rows match the in-memory run. An object whose box exceeds the crop budget (the ER network, a nucleus
 * in a large volume) is never cut out whole: its surface and skeleton columns stay empty, and its display mesh
 * is made from an in-plane coarsened occupancy mask ("any voxel of the object" per coarse voxel, so thin ER
 * sheets survive) whose grid fits the budget.
 */
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import { classByCode } from "../classes.js";
import { PipelineError } from "../errors.js";
import { meshSegments, type SegmentMesh } from "../mesh.js";
import { writeSegmentMultiresMesh } from "../mesh-lod.js";
import type { InstanceRow } from "../report.js";
import { measureTube } from "../skeleton.js";
import { measureMaskSurface, sphericity, volumeToSurface } from "../surface.js";
import { CCL_KEYS } from "./ccl.js";
import { arrayOf, packArrays, unpackArrays } from "./pack.js";

/** As layers.ts: display meshes at half the in-plane resolution. */
const DISPLAY_MESH_DOWNSAMPLE: Vec3 = [2, 2, 1];

/** Where crops come from: the label work volume (or any box reader). */
export interface LabelSource {
  readBox(origin: Vec3, extent: Vec3): Uint32Array | Promise<Uint32Array>;
}

/** The measured columns an object crop gives (null = not measured). */
export type ObjectMeasures = Pick<InstanceRow, "surface_nm2" | "vsa_nm" | "sphericity" | "length_nm" | "width_nm" | "feret_max_nm" | "branched" | "branch_count">;
const MEASURE_KEYS = ["surface_nm2", "vsa_nm", "sphericity", "length_nm", "width_nm", "feret_max_nm", "branched", "branch_count"] as const;

/**
 * One instance: its measures and display mesh from a crop of its box `b` ([x0, y0, z0, x1, y1, z1)), or, when
 * the box exceeds the crop budget, no measures and a coarse mesh.
 */
export async function measureObject(
  store: LabelSource,
  id: number,
  cls: string,
  volumeNm3: number,
  b: ArrayLike<number>,
  voxelNm: Vec3,
  cropBudget: number,
): Promise<{ measures: Partial<ObjectMeasures>; mesh: SegmentMesh; oversized: boolean }> {
  const ext: Vec3 = [b[3] - b[0], b[4] - b[1], b[5] - b[2]];
  if (ext[0] * ext[1] * ext[2] > cropBudget) return { measures: {}, mesh: await coarseMesh(store, id, b, voxelNm, cropBudget), oversized: true };
  const measures: Partial<ObjectMeasures> = {};
  // x and y start on even voxels so the display mesh's 2 x 2 cells sit on the whole volume's lattice.
  const origin: Vec3 = [b[0] - (b[0] % 2), b[1] - (b[1] % 2), b[2]];
  const shape: Vec3 = [b[3] - origin[0], b[4] - origin[1], ext[2]];
  const labels = await store.readBox(origin, shape);
  const mask = cropMaskOf(labels, shape, [b[0] - origin[0], b[1] - origin[1], 0], ext, id);
  if (cls !== "er") {
    const m = measureMaskSurface(mask, ext, voxelNm);
    measures.surface_nm2 = m.surface_nm2;
    measures.vsa_nm = volumeToSurface(volumeNm3, m.surface_nm2);
    measures.sphericity = sphericity(volumeNm3, m.surface_nm2);
  }
  if (cls === "mito") {
    const t = measureTube(mask, ext, voxelNm);
    measures.length_nm = t.length_nm;
    measures.width_nm = t.width_nm;
    measures.feret_max_nm = t.feret_max_nm;
    measures.branched = t.branched;
    measures.branch_count = t.branch_count;
  }
  let mesh = meshSegments(labels, shape, voxelNm, { ids: [id], downsample: DISPLAY_MESH_DOWNSAMPLE }).get(id) ?? emptyMesh();
  // Thinner than the coarse grid (a one-voxel ER sheet): full resolution, as layers.ts does.
  if (mesh.indices.length === 0) mesh = meshSegments(labels, shape, voxelNm, { ids: [id], downsample: [1, 1, 1] }).get(id) ?? emptyMesh();
  shiftMesh(mesh, origin, voxelNm);
  return { measures, mesh, oversized: false };
}

export const OBJECT_KEYS = {
  bbox: "objects/bbox",
  volume: "objects/volume",
  result: (first: number) => `objects/result/${first}`,
};

/** Coordinator: the per-instance tables the object tasks read by range (boxes, volumes; classes are ccl's). */
export async function writeObjectTables(work: Storage, rows: readonly InstanceRow[], bbox: Int32Array): Promise<void> {
  const volume = new Float64Array(rows.length + 1);
  for (const r of rows) volume[r.id] = r.volume_nm3;
  await work.put(OBJECT_KEYS.bbox, new Uint8Array(bbox.buffer, bbox.byteOffset, 6 * 4 * (rows.length + 1)));
  await work.put(OBJECT_KEYS.volume, new Uint8Array(volume.buffer));
}

async function range(work: Storage, key: string, start: number, end: number): Promise<Uint8Array> {
  const bytes = work.getRange ? await work.getRange(key, start, end) : (await work.get(key))?.slice(start, end);
  if (!bytes || bytes.length !== end - start) throw new PipelineError("stage_failed", "work table missing or short", key);
  const own = new Uint8Array(bytes.length);
  own.set(bytes);
  return own;
}

export interface ObjectsTaskInput {
  work: Storage;
  labels: LabelSource;
  output: Storage;
  meshPrefix: string;
  /** Ids [first, end). */
  first: number;
  end: number;
  voxelNm: Vec3;
  cropBudget: number;
}

/** `blockwise.objects`: instances [first, end): measures into the work store, meshes into the output. */
export async function objectsTask(t: ObjectsTaskInput): Promise<string[]> {
  const { first, end } = t;
  const bbox = new Int32Array((await range(t.work, OBJECT_KEYS.bbox, 24 * first, 24 * end)).buffer);
  const volume = new Float64Array((await range(t.work, OBJECT_KEYS.volume, 8 * first, 8 * end)).buffer);
  const classOf = await range(t.work, CCL_KEYS.classOf, first, end);
  const n = end - first;
  const cols = Object.fromEntries(MEASURE_KEYS.map((k) => [k, new Float64Array(n).fill(NaN)])) as Record<(typeof MEASURE_KEYS)[number], Float64Array>;
  const oversized = new Uint8Array(n);
  const outputs: string[] = [];
  for (let k = 0; k < n; k++) {
    const id = first + k;
    const cls = classByCode(classOf[k])?.name ?? `class${classOf[k]}`;
    const r = await measureObject(t.labels, id, cls, volume[k], bbox.subarray(6 * k, 6 * k + 6), t.voxelNm, t.cropBudget);
    for (const key of MEASURE_KEYS) {
      const v = r.measures[key];
      if (v !== undefined && v !== null) cols[key][k] = typeof v === "boolean" ? Number(v) : v;
    }
    oversized[k] = r.oversized ? 1 : 0;
    if (r.mesh.indices.length > 0) await writeSegmentMultiresMesh(t.output, t.meshPrefix, id, r.mesh, { quantizationBits: 10 });
  }
  const key = OBJECT_KEYS.result(first);
  await t.work.put(key, packArrays({ ...cols, oversized }, { first, end }));
  outputs.push(key);
  return outputs;
}

/** Coordinator: id ranges of about `perTask` instances. */
export function objectRanges(count: number, perTask: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a = 1; a <= count; a += perTask) out.push([a, Math.min(count + 1, a + perTask)]);
  return out;
}

/** Coordinator: the tasks' measures into the rows, in id order; returns the oversized ids. */
export async function gatherObjects(work: Storage, rows: InstanceRow[], ranges: [number, number][]): Promise<number[]> {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const oversized: number[] = [];
  for (const [first, end] of ranges) {
    const key = OBJECT_KEYS.result(first);
    const bytes = await work.get(key);
    if (!bytes) throw new PipelineError("stage_failed", "object task result missing", key);
    const u = unpackArrays(bytes, key);
    const over = arrayOf(u, "oversized", Uint8Array, key);
    const cols = MEASURE_KEYS.map((k) => [k, arrayOf(u, k, Float64Array, key)] as const);
    for (let k = 0; k < end - first; k++) {
      const row = byId.get(first + k);
      if (!row) continue;
      if (over[k]) oversized.push(row.id);
      for (const [name, col] of cols) {
        const v = col[k];
        if (Number.isNaN(v)) continue;
        if (name === "branched") row.branched = v === 1;
        else row[name] = v;
      }
    }
  }
  return oversized;
}

function emptyMesh(): SegmentMesh {
  return { positions: new Float32Array(0), indices: new Uint32Array(0) };
}

function cropMaskOf(labels: Uint32Array, shape: Vec3, at: Vec3, ext: Vec3, id: number): Uint8Array {
  const mask = new Uint8Array(ext[0] * ext[1] * ext[2]);
  let o = 0;
  for (let z = 0; z < ext[2]; z++) {
    for (let y = 0; y < ext[1]; y++) {
      const row = at[0] + shape[0] * (at[1] + y + shape[1] * (at[2] + z));
      for (let x = 0; x < ext[0]; x++, o++) if (labels[row + x] === id) mask[o] = 1;
    }
  }
  return mask;
}

function shiftMesh(mesh: SegmentMesh, origin: Vec3, voxelNm: Vec3): void {
  const p = mesh.positions;
  for (let i = 0; i < p.length; i += 3) {
    p[i] += origin[0] * voxelNm[0];
    p[i + 1] += origin[1] * voxelNm[1];
    p[i + 2] += origin[2] * voxelNm[2];
  }
}

/**
 * The object's occupancy on a grid coarsened in-plane by the smallest power of two that fits a quarter of the
 * budget (the mesher holds several float fields of it), read from the store a few rows at a time.
 */
async function coarseMesh(store: LabelSource, id: number, b: ArrayLike<number>, voxelNm: Vec3, budget: number): Promise<SegmentMesh> {
  let f = 2;
  const ext = [b[3] - b[0], b[4] - b[1], b[5] - b[2]];
  while (Math.ceil(ext[0] / f) * Math.ceil(ext[1] / f) * ext[2] > budget / 4 && f < 1 << 16) f *= 2;
  const origin: Vec3 = [b[0] - (b[0] % f), b[1] - (b[1] % f), b[2]];
  const cs: Vec3 = [Math.ceil((b[3] - origin[0]) / f), Math.ceil((b[4] - origin[1]) / f), ext[2]];
  const coarse = new Uint32Array(cs[0] * cs[1] * cs[2]);
  const width = b[3] - origin[0];
  const rows = Math.max(f, f * Math.floor(budget / 4 / Math.max(1, width) / f));
  // Several sections per read when whole rows fit: each read is a request per block on S3.
  const sections = Math.max(1, Math.floor(budget / 4 / Math.max(1, width * Math.min(rows, b[4] - origin[1]))));
  for (let z0 = b[2]; z0 < b[5]; z0 += sections) {
    const dz = Math.min(sections, b[5] - z0);
    for (let y0 = origin[1]; y0 < b[4]; y0 += rows) {
      const h = Math.min(rows, b[4] - y0);
      const part = await store.readBox([origin[0], y0, z0], [width, h, dz]);
      for (let z = 0; z < dz; z++) {
        for (let y = 0; y < h; y++) {
          const row = cs[0] * (Math.floor((y0 + y - origin[1]) / f) + cs[1] * (z0 + z - origin[2]));
          for (let x = 0; x < width; x++) if (part[x + width * (y + h * z)] === id) coarse[row + Math.floor(x / f)] = 1;
        }
      }
    }
  }
  const coarseNm: Vec3 = [voxelNm[0] * f, voxelNm[1] * f, voxelNm[2]];
  const mesh = meshSegments(coarse, cs, coarseNm, { ids: [1], downsample: [1, 1, 1] }).get(1) ?? emptyMesh();
  shiftMesh(mesh, origin, voxelNm);
  return mesh;
}
