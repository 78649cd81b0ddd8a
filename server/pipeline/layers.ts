import type { Vec3, Volume } from "../../precomputed/array.js";
import { multiresMeshInfo, writeMultiresMeshInfo } from "../../precomputed/mesh-multires.js";
import { buildSegmentProperties, writeSegmentProperties } from "../../precomputed/segment-properties.js";
import type { Storage } from "../../precomputed/storage.js";
import { makeInfo, writeVolume } from "../../precomputed/volume-io.js";
import { CLASSES } from "./classes.js";
import type { Components } from "./label.js";
import { meshSegments } from "./mesh.js";
import { writeSegmentMultiresMesh } from "./mesh-lod.js";
import type { Progress } from "./progress.js";
import type { InstanceRow } from "./report.js";

const DISPLAY_MESH_DOWNSAMPLE: Vec3 = [2, 2, 1];

/** Chunks of 128 x 128 x 16 voxels: about 640 x 640 x 720 nm at 5 x 5 x 45, near-cubic in space. */
const CHUNK: Vec3 = [128, 128, 16];

export async function writeImageLayer(storage: Storage, prefix: string, image: Volume<Uint8Array | Uint16Array>, voxelNm: Vec3, progress: Progress): Promise<void> {
  const uint8 = image.data instanceof Uint8Array;
  const info = makeInfo({
    type: "image",
    dataType: uint8 ? "uint8" : "uint16",
    size: image.shape,
    resolution: voxelNm,
    chunkSize: CHUNK,
    // JPEG only exists for 8-bit; 16-bit keeps its full range in gzipped raw chunks.
    encoding: uint8 ? "jpeg" : "raw",
  });
  await writeVolume(storage, prefix, info, image, { gzip: !uint8, onProgress: stageProgress(progress, "image layer", "chunks") });
  progress.end();
}

export async function writeSegmentationLayer(
  storage: Storage,
  prefix: string,
  components: Components,
  rows: readonly InstanceRow[],
  shape: Vec3,
  voxelNm: Vec3,
  progress: Progress,
): Promise<void> {
  const info = makeInfo({
    type: "segmentation",
    dataType: "uint32",
    size: shape,
    resolution: voxelNm,
    chunkSize: CHUNK,
    encoding: "compressed_segmentation",
    blockSize: [8, 8, 8],
    mesh: "mesh",
    segmentProperties: "segment_properties",
  });
  await writeVolume(storage, prefix, info, { data: components.labels, shape }, { gzip: true, onProgress: stageProgress(progress, "segmentation", "chunks") });
  progress.end();

  await writeSegmentProperties(storage, `${prefix}/segment_properties`, segmentProperties(rows));

  // Display meshes at half the in-plane resolution (10 x 10 x 45 nm at the paper's voxel): still finer in-plane
  // than the 45 nm sections, and 2.6x fewer triangles, so meshing + LODs take ~2.7x less time. Measurements
  // never use these meshes (surface.ts measures areas).
  const meshes = meshSegments(components.labels, shape, voxelNm, { downsample: DISPLAY_MESH_DOWNSAMPLE });
  // Objects thinner than the coarse grid (a one-voxel ER sheet) vanish there: mesh those at full resolution.
  const thin = rows.map((r) => r.id).filter((id) => (meshes.get(id)?.indices.length ?? 0) === 0);
  if (thin.length > 0) {
    for (const [id, mesh] of meshSegments(components.labels, shape, voxelNm, { ids: thin, downsample: [1, 1, 1] })) meshes.set(id, mesh);
  }
  progress.start("meshes", meshes.size, "segments");
  // 10 bits suffice: LOD-0 cells are at most ~1 um, so a quantisation step is ~1 nm.
  await writeMultiresMeshInfo(storage, `${prefix}/mesh`, multiresMeshInfo({ vertexQuantizationBits: 10 }));
  let done = 0;
  for (const [id, mesh] of meshes) {
    if (mesh.indices.length === 0) continue;
    await writeSegmentMultiresMesh(storage, `${prefix}/mesh`, id, mesh, { quantizationBits: 10 });
    progress.update(++done);
  }
  progress.end();
}

/** Adapts a (done, total) callback to a Progress stage that starts on the first call, when the total is known. */
function stageProgress(progress: Progress, name: string, unit: string): (done: number, total: number) => void {
  let started = false;
  return (done, total) => {
    if (!started) {
      progress.start(name, total, unit);
      started = true;
    }
    progress.update(done);
  };
}

/** Label, class tag and every numeric column, so Neuroglancer's own segment table can sort and filter. */
export function segmentProperties(rows: readonly InstanceRow[]) {
  const tagIndex = new Map(CLASSES.map((c, i) => [c.name, i]));
  const cell = (r: InstanceRow, k: string): unknown => (r as unknown as Record<string, unknown>)[k];
  // A column joins when any row measured it; rows where it does not apply carry -1 (JSON has no NaN), and
  // booleans become 0/1, so Neuroglancer's query box can filter e.g. `in_contact=1`.
  const numeric = Object.keys(rows[0] ?? {}).filter(
    (k) => k !== "id" && rows.some((r) => typeof cell(r, k) === "number" || typeof cell(r, k) === "boolean"),
  );
  return buildSegmentProperties({
    ids: rows.map((r) => r.id),
    label: rows.map((r) => `${r.class} ${r.id}`),
    tags: {
      names: CLASSES.map((c) => c.name),
      descriptions: CLASSES.map((c) => c.label),
      values: rows.map((r) => {
        const t = tagIndex.get(r.class);
        return t === undefined ? [] : [t];
      }),
    },
    numbers: numeric.map((k) => ({
      id: k,
      type: "float32" as const,
      values: rows.map((r) => {
        const v = cell(r, k);
        return typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : -1;
      }),
    })),
  });
}
