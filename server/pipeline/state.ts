import type { Vec3 } from "../../precomputed/array.js";
import { RELATIVE_SOURCE } from "../api/state-sources.js";
import { classByCode } from "./classes.js";

export interface StateInput {
  voxelNm: Vec3;
  size: Vec3;
  /** classOf[id] = class code; ids 1..classOf.length-1. */
  classOf: Uint8Array;
  /** Extra layers (e.g. contact annotations) by name -> relative folder. */
  annotationLayers?: { name: string; folder: string }[];
}

/**
 * The Neuroglancer state that opens every layer of a run. Sources are relative (`precomputed://./image`) so
 * the folder can move; the server makes them absolute for whoever asks (`/api/state`).
 */
export function buildState(input: StateInput): Record<string, unknown> {
  const [vx, vy, vz] = input.voxelNm;
  const [nx, ny, nz] = input.size;
  const segments: string[] = [];
  const segmentColors: Record<string, string> = {};
  for (let id = 1; id < input.classOf.length; id++) {
    const cls = classByCode(input.classOf[id]);
    if (!cls) continue;
    segments.push(String(id));
    segmentColors[String(id)] = cls.color;
  }
  const layers: Record<string, unknown>[] = [
    { type: "image", source: `${RELATIVE_SOURCE}image`, name: "EM", tab: "source" },
    {
      type: "segmentation",
      source: `${RELATIVE_SOURCE}segmentation`,
      name: "organelles",
      tab: "segments",
      segments,
      segmentColors,
      selectedAlpha: 0.35,
      notSelectedAlpha: 0.1,
      objectAlpha: 0.9,
    },
    ...(input.annotationLayers ?? []).map((a) => ({
      type: "annotation",
      source: `${RELATIVE_SOURCE}${a.folder}`,
      name: a.name,
      tab: "rendering",
    })),
  ];
  const extentNm = Math.max(nx * vx, ny * vy, nz * vz);
  return {
    dimensions: { x: [vx * 1e-9, "m"], y: [vy * 1e-9, "m"], z: [vz * 1e-9, "m"] },
    position: [nx / 2, ny / 2, nz / 2],
    // Neuroglancer scales are "physical units (of the first dimension) per screen pixel".
    crossSectionScale: Math.max(1, Math.max(nx, ny) / 800),
    projectionScale: extentNm / vx,
    layers,
    selectedLayer: { layer: "organelles", visible: true },
    layout: "4panel",
  };
}
