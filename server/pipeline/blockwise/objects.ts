/**
 * Whole-object measures for the out-of-core run: each instance is cut out of the label store by its bounding
 * box, one at a time, and given the same kernels as analyse.ts (surface, mito skeleton) and layers.ts (display
 * mesh), so rows match the in-memory run. An object whose box exceeds the crop budget (the ER network, a nucleus
 * in a large volume) is never cut out whole: its surface and skeleton columns stay empty, and its display mesh
 * is made from an in-plane coarsened occupancy mask ("any voxel of the object" per coarse voxel, so thin ER
 * sheets survive) whose grid fits the budget.
 */
import type { Vec3 } from "../../../precomputed/array.js";
import { multiresMeshInfo, writeMultiresMeshInfo } from "../../../precomputed/mesh-multires.js";
import type { Storage } from "../../../precomputed/storage.js";
import { meshSegments, type SegmentMesh } from "../mesh.js";
import { writeSegmentMultiresMesh } from "../mesh-lod.js";
import type { Progress } from "../progress.js";
import type { InstanceRow } from "../report.js";
import { measureTube } from "../skeleton.js";
import { measureMaskSurface, sphericity, volumeToSurface } from "../surface.js";
import type { BlockStore } from "./store.js";

/** As layers.ts: display meshes at half the in-plane resolution. */
const DISPLAY_MESH_DOWNSAMPLE: Vec3 = [2, 2, 1];

export interface ObjectOptions {
  /** Most voxels of a bounding box cut out whole. */
  cropBudget: number;
  meshPrefix: string;
  progress: Progress;
}

export async function measureObjects(
  store: BlockStore<Uint32Array>,
  rows: InstanceRow[],
  bbox: Int32Array,
  voxelNm: Vec3,
  storage: Storage,
  opts: ObjectOptions,
): Promise<{ oversized: number[] }> {
  await writeMultiresMeshInfo(storage, opts.meshPrefix, multiresMeshInfo({ vertexQuantizationBits: 10 }));
  const oversized: number[] = [];
  opts.progress.start("objects", rows.length, "instances");
  let done = 0;
  for (const row of rows) {
    const b = bbox.subarray(6 * row.id, 6 * row.id + 6);
    const ext: Vec3 = [b[3] - b[0], b[4] - b[1], b[5] - b[2]];
    let mesh: SegmentMesh;
    if (ext[0] * ext[1] * ext[2] <= opts.cropBudget) {
      // x and y start on even voxels so the display mesh's 2 x 2 cells sit on the whole volume's lattice.
      const origin: Vec3 = [b[0] - (b[0] % 2), b[1] - (b[1] % 2), b[2]];
      const shape: Vec3 = [b[3] - origin[0], b[4] - origin[1], ext[2]];
      const labels = store.readBox(origin, shape);
      const mask = cropMaskOf(labels, shape, [b[0] - origin[0], b[1] - origin[1], 0], ext, row.id);
      if (row.class !== "er") {
        const m = measureMaskSurface(mask, ext, voxelNm);
        row.surface_nm2 = m.surface_nm2;
        row.vsa_nm = volumeToSurface(row.volume_nm3, m.surface_nm2);
        row.sphericity = sphericity(row.volume_nm3, m.surface_nm2);
      }
      if (row.class === "mito") {
        const t = measureTube(mask, ext, voxelNm);
        row.length_nm = t.length_nm;
        row.width_nm = t.width_nm;
        row.feret_max_nm = t.feret_max_nm;
        row.branched = t.branched;
        row.branch_count = t.branch_count;
      }
      mesh = meshSegments(labels, shape, voxelNm, { ids: [row.id], downsample: DISPLAY_MESH_DOWNSAMPLE }).get(row.id) ?? emptyMesh();
      // Thinner than the coarse grid (a one-voxel ER sheet): full resolution, as layers.ts does.
      if (mesh.indices.length === 0) mesh = meshSegments(labels, shape, voxelNm, { ids: [row.id], downsample: [1, 1, 1] }).get(row.id) ?? emptyMesh();
      shiftMesh(mesh, origin, voxelNm);
    } else {
      oversized.push(row.id);
      mesh = coarseMesh(store, row.id, b, voxelNm, opts.cropBudget);
    }
    if (mesh.indices.length > 0) await writeSegmentMultiresMesh(storage, opts.meshPrefix, row.id, mesh, { quantizationBits: 10 });
    opts.progress.update(++done);
  }
  opts.progress.end();
  return { oversized };
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
function coarseMesh(store: BlockStore<Uint32Array>, id: number, b: ArrayLike<number>, voxelNm: Vec3, budget: number): SegmentMesh {
  let f = 2;
  const ext = [b[3] - b[0], b[4] - b[1], b[5] - b[2]];
  while (Math.ceil(ext[0] / f) * Math.ceil(ext[1] / f) * ext[2] > budget / 4 && f < 1 << 16) f *= 2;
  const origin: Vec3 = [b[0] - (b[0] % f), b[1] - (b[1] % f), b[2]];
  const cs: Vec3 = [Math.ceil((b[3] - origin[0]) / f), Math.ceil((b[4] - origin[1]) / f), ext[2]];
  const coarse = new Uint32Array(cs[0] * cs[1] * cs[2]);
  const width = b[3] - origin[0];
  const rows = Math.max(f, f * Math.floor(budget / 4 / Math.max(1, width) / f));
  for (let z = b[2]; z < b[5]; z++) {
    for (let y0 = origin[1]; y0 < b[4]; y0 += rows) {
      const h = Math.min(rows, b[4] - y0);
      const part = store.readBox([origin[0], y0, z], [width, h, 1], );
      for (let y = 0; y < h; y++) {
        const row = cs[0] * (Math.floor((y0 + y - origin[1]) / f) + cs[1] * (z - origin[2]));
        for (let x = 0; x < width; x++) if (part[x + width * y] === id) coarse[row + Math.floor(x / f)] = 1;
      }
    }
  }
  const coarseNm: Vec3 = [voxelNm[0] * f, voxelNm[1] * f, voxelNm[2]];
  const mesh = meshSegments(coarse, cs, coarseNm, { ids: [1], downsample: [1, 1, 1] }).get(1) ?? emptyMesh();
  shiftMesh(mesh, origin, voxelNm);
  return mesh;
}
