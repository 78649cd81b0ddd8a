/**
 * One segment's display mesh as stored objects: mesh at the display resolution (falling back to full
 * resolution for objects thinner than the coarse grid), levels of detail, Draco fragments and manifest.
 * Self-contained per segment so that it can run on a worker thread; the caller writes the objects.
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { PutOptions, Storage } from "../../precomputed/storage.js";
import { meshSegment } from "./mesh.js";
import { writeSegmentMultiresMesh } from "./mesh-lod.js";

/**
 * Display meshes at half the in-plane resolution (10 x 10 x 45 nm at the paper's voxel): still finer in-plane
 * than the 45 nm sections, and 2.6x fewer triangles, so meshing + LODs take ~2.7x less time.
 */
export const DISPLAY_MESH_DOWNSAMPLE: Vec3 = [2, 2, 1];
/** 10 bits suffice: LOD-0 cells are at most ~1 um, so a quantisation step is ~1 nm. */
export const MESH_QUANTIZATION_BITS = 10;

export interface StoredObject {
  key: string;
  data: Uint8Array;
  options?: PutOptions;
}

export interface MeshJob {
  /** The whole label volume (may be backed by a SharedArrayBuffer). */
  labels: Uint32Array;
  shape: Vec3;
  voxelNm: Vec3;
  id: number;
  /** x0, y0, z0, x1, y1, z1 in voxels, end exclusive. */
  bbox: ArrayLike<number>;
  meshPrefix: string;
}

/** The objects of one segment's multi-resolution mesh, in the order they must be written; none if it has no surface. */
export async function segmentMeshObjects(job: MeshJob): Promise<StoredObject[]> {
  const { labels, shape, voxelNm, id, bbox } = job;
  let mesh = meshSegment(labels, shape, voxelNm, id, bbox, { downsample: DISPLAY_MESH_DOWNSAMPLE });
  // Objects thinner than the coarse grid (a one-voxel ER sheet) vanish there: mesh those at full resolution.
  if (mesh.indices.length === 0) mesh = meshSegment(labels, shape, voxelNm, id, bbox, { downsample: [1, 1, 1] });
  if (mesh.indices.length === 0) return [];
  const storage = new MemoryStorage();
  await writeSegmentMultiresMesh(storage, job.meshPrefix, id, mesh, { quantizationBits: MESH_QUANTIZATION_BITS });
  return storage.objects;
}

/** Records puts in order; enough for writers that only put. */
class MemoryStorage implements Storage {
  readonly objects: StoredObject[] = [];

  async get(key: string): Promise<Uint8Array | undefined> {
    const o = this.objects.find((e) => e.key === key);
    return o?.data;
  }

  async put(key: string, data: Uint8Array | string, options?: PutOptions): Promise<void> {
    this.objects.push({ key, data: typeof data === "string" ? new TextEncoder().encode(data) : data, options });
  }

  async list(prefix: string): Promise<string[]> {
    return this.objects.map((o) => o.key).filter((k) => k.startsWith(prefix)).sort();
  }

  async delete(key: string): Promise<void> {
    const i = this.objects.findIndex((e) => e.key === key);
    if (i >= 0) this.objects.splice(i, 1);
  }
}
