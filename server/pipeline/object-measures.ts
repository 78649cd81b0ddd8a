/**
 * Per-object measures that need only the object's own voxels: the interpolated surface (surface.ts) and, for
 * mitochondria, the tube morphometrics (skeleton.ts). One self-contained job per object, so that objects can
 * be measured on any thread in any order with the same numbers.
 */
import type { Vec3 } from "../../precomputed/array.js";
import { measureTube, type TubeMeasure } from "./skeleton.js";
import { cropBox } from "./stats.js";
import { measureSurface } from "./surface.js";

export interface ObjectJob {
  /** The whole label volume (may be backed by a SharedArrayBuffer). */
  labels: Uint32Array;
  shape: Vec3;
  voxelNm: Vec3;
  id: number;
  /** x0, y0, z0, x1, y1, z1 in voxels, end exclusive. */
  bbox: number[];
  surface: boolean;
  tube: boolean;
}

export interface ObjectMeasure {
  id: number;
  surface_nm2: number | null;
  tube: TubeMeasure | null;
}

export function measureObject(job: ObjectJob): ObjectMeasure {
  const { labels, shape, voxelNm, id, bbox } = job;
  const surface_nm2 = job.surface ? measureSurface(labels, shape, voxelNm, id, bbox).surface_nm2 : null;
  let tube: TubeMeasure | null = null;
  if (job.tube) {
    const crop = cropBox(labels, shape, bbox, id);
    tube = measureTube(crop.mask, crop.shape, voxelNm);
  }
  return { id, surface_nm2, tube };
}
