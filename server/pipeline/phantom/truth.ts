/** The phantom's ground truth as written to truth.json: analytic measures plus grid cross-references. */
import type { Box, Centreline, Vec3 } from "./geometry.js";
import type { Raster } from "./rasterise.js";
import type { Scene } from "./scene.js";
import { CLASS_CODES, measureOrganelle, type ErKind, type OrganelleClass, type ShapeKind } from "./shapes.js";

export const TRUTH_FORMAT = "vemscope-phantom-truth";
export const TRUTH_VERSION = 1;

export type CentrelineJson =
  | { kind: "point"; centre_nm: Vec3 }
  | { kind: "segment"; a_nm: Vec3; b_nm: Vec3 }
  | { kind: "arc"; centre_nm: Vec3; radius_nm: number; theta0_rad: number; theta1_rad: number };

export interface OrganelleTruth {
  id: number;
  class: OrganelleClass;
  class_code: number;
  shape: ShapeKind;
  volume_nm3: number;
  /** Closed surface of the part inside the volume (the cut nucleus includes its flat cut face). */
  surface_nm2: number;
  cut_face_nm2: number | null;
  sphericity: number;
  volume_to_surface_nm: number;
  /** Mitochondria only (null otherwise). */
  length_nm: number | null;
  width_nm: number | null;
  feret_max_nm: number | null;
  branched: boolean | null;
  branch_count: number | null;
  /** Analytic surface-to-surface distance to the nearest ER; equals the voxel face-to-face distance by design. */
  min_dist_er_nm: number | null;
  /** Whether min_dist_er_nm is attained within one section (false: only across sections). */
  min_dist_in_plane: boolean | null;
  /** Axis of the designed nearest approach: x or y (in-plane) or z (across sections). */
  min_dist_axis: "x" | "y" | "z" | null;
  er_contact: boolean | null;
  /**
   * In contact, and only across sections: the ER within the threshold lies in the sections above or below,
   * none within the threshold in the organelle's own sections. False when in-plane or not in contact.
   */
  contact_across_sections_only: boolean | null;
  /** The ER element placed at min_dist_er_nm. */
  contact_er_element: number | null;
  touches_boundary: boolean;
  centroid_nm: Vec3;
  /** A voxel [i, j, k] inside the organelle, to match pipeline instances to truth. */
  seed_voxel: Vec3;
  /** Grid facts (not measurements): inclusive voxel bounds and voxel count of the rasterised shape. */
  bbox_voxels: { min: Vec3; max: Vec3 };
  voxel_count: number;
  /** voxel_count x voxel volume / volume_nm3 - 1: how well the grid represents this shape. */
  voxel_volume_error: number;
  volume_method: string;
  surface_method: string;
  geometry: { radius_nm: number; centreline: CentrelineJson[] };
}

export interface ErElementTruth {
  id: number;
  kind: ErKind;
  /** Axis-aligned box (nm) dilated by radius_nm; sheets have radius 0, tubes a degenerate box (their axis). */
  box_nm: { lo: Vec3; hi: Vec3 };
  radius_nm: number;
  component: number;
  partner_of: number | null;
}

export interface PhantomTruth {
  format: typeof TRUTH_FORMAT;
  version: typeof TRUTH_VERSION;
  seed: number;
  size: Vec3;
  voxel_nm: Vec3;
  extent_nm: Vec3;
  class_codes: typeof CLASS_CODES;
  contact_threshold_nm: number;
  counts: Record<OrganelleClass, number>;
  organelles: OrganelleTruth[];
  er: {
    component_count: number;
    components: { id: number; element_ids: number[]; seed_voxel: Vec3 }[];
    elements: ErElementTruth[];
  };
  /** Worst |voxel_volume_error| per class (signed), to state the grid's representation error. */
  voxel_volume_error_worst: Partial<Record<OrganelleClass, number>>;
  skipped: string[];
  methods: Record<string, string>;
}

const METHODS: Record<string, string> = {
  shapes:
    "Every organelle is the set of points within a radius of a centreline: point (sphere), segment (capsule), in-plane circular arc (bent tube with hemispherical caps), or three segments sharing an endpoint (branched Y/T). The nucleus is a sphere cut by one in-plane face of the volume. ER: vertical sheets (axis-aligned boxes, 40-60 nm thick), z-parallel tubes and in-plane connector tubes (axis-aligned capsules).",
  rasterisation: "A voxel is inside when its centre is inside the analytic shape; shapes are evaluated only inside their bounding boxes.",
  volume: "Closed forms for spheres, capsules, arc tubes (Pappus) and the nucleus cap; branched unions by exact line/capsule intervals along x integrated on a 1 nm (y, z) grid. Never counted from the voxel grid.",
  surface:
    "Closed forms as above; branched unions by integrating each capsule's surface on a 1 nm equal-area grid, dropping cells inside another capsule. The cut nucleus includes its flat cut face (cut_face_nm2), as a mesh of the padded volume would.",
  sphericity: "pi^(1/3) (6V)^(2/3) / A from the analytic V and A.",
  length:
    "Mitochondria: tip to tip along the centreline: straight L + 2r; arc R*phi + 2r; branched: longest junction-to-tip pair of arms + 2r. width = 2r. branch_count = branch points of the centreline graph (a Y or T has 1). feret_max: largest centreline point distance + 2r.",
  min_dist_er:
    "Analytic surface-to-surface distance to the nearest ER. Each organelle has one designed partner element beyond its extreme point along +-x or +-y; all centreline points lie on voxel centres and radii are (m + 1/2) voxels, so the gap is a whole number of in-plane voxels and equals the voxel face-to-face distance (touching = 0). Every other ER element is at least gap + 60 nm away. Gaps are <= 20 nm (contact) or >= 40 nm (no contact), never within 8 nm of the 30 nm threshold.",
  across_sections:
    "A few organelles (min_dist_axis z) have their partner just above or below them: a horizontal ER sheet (one 45 nm section thick) or in-plane tubule (radius 22.5 nm, axis at a section centre) passing over a centreline point. Their radius is (m + 1/2) sections, so the top and bottom points lie on section faces, and the z gap is a whole number of sections: 0 (in contact: the ER fills the section next to the organelle's last section, face-to-face distance 0, DESIGN.md's metric) or 45 nm (no contact: one empty section, the smallest z gap beyond 30 nm). Analytic distance = face-to-face distance. Every other ER element is at least max(gap, 30) + 60 nm away, so no ER is within 30 nm inside the organelle's own sections: contact_across_sections_only is true for the z-gap-0 ones. Their partners join the nearest ER trunk by in-plane connector legs in the partner's section, or form a small network of their own. They are placed last from their own random stream, so the rest of a seed's scene does not change.",
  bbox_voxels: "Inclusive voxel index bounds of the rasterised organelle (a grid fact, not a measurement).",
  seed_voxel: "A voxel whose centre lies on (or within a few nm of) the centreline: certainly inside the organelle.",
  er_components: "Known by construction: ER elements overlap by design (connectors start and end inside what they join, or cross a vertical element by >= 20 nm) or stay >= 100 nm apart.",
  representation:
    "Radii are chosen so that the voxel grid represents the shape within 2% (tube cross-sections and balls centred on voxel centres at 45 nm sections); voxel_volume_error reports the actual per-organelle value.",
};

function centrelineJson(p: Centreline): CentrelineJson {
  if (p.kind === "point") return { kind: "point", centre_nm: p.c };
  if (p.kind === "segment") return { kind: "segment", a_nm: p.a, b_nm: p.b };
  return { kind: "arc", centre_nm: p.c, radius_nm: p.R, theta0_rad: p.theta0, theta1_rad: p.theta1 };
}

const AXES = ["x", "y", "z"] as const;

const toVoxel = (p: Vec3, voxel: Vec3): Vec3 => [Math.floor(p[0] / voxel[0]), Math.floor(p[1] / voxel[1]), Math.floor(p[2] / voxel[2])];

function erSeed(box: Box, r: number, voxel: Vec3, extent: Vec3): Vec3 {
  // A point on the element's axis or inside its box, pulled inside the volume.
  const p: Vec3 = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const lo = Math.max(box.lo[i] as number, 0);
    const hi = Math.min(box.hi[i] as number, extent[i] as number);
    const v = voxel[i] as number;
    p[i] = r > 0 && lo === hi ? lo : Math.min(hi - v / 2, Math.max(lo + v / 2, (lo + hi) / 2));
  }
  return toVoxel(p, voxel);
}

export function buildTruth(scene: Scene, raster: Raster, contactThreshold: number): PhantomTruth {
  const voxelVolume = scene.voxel[0] * scene.voxel[1] * scene.voxel[2];
  const counts: Record<OrganelleClass, number> = { mito: 0, ld: 0, lyso: 0, perox: 0, nucleus: 0 };
  const worst: Partial<Record<OrganelleClass, number>> = {};
  const organelles = scene.organelles.map((o): OrganelleTruth => {
    const m = measureOrganelle(o, scene.extent);
    counts[o.cls] += 1;
    const voxelCount = raster.voxelCounts.get(o.id) ?? 0;
    const err = (voxelCount * voxelVolume) / m.volumeNm3 - 1;
    if (Math.abs(err) > Math.abs(worst[o.cls] ?? 0)) worst[o.cls] = err;
    const bbox = raster.voxelBounds.get(o.id) ?? { min: [0, 0, 0], max: [-1, -1, -1] };
    const gap = o.contact?.gapNm;
    const axis = o.contact?.axis;
    return {
      id: o.id,
      class: o.cls,
      class_code: CLASS_CODES[o.cls],
      shape: o.shape,
      volume_nm3: m.volumeNm3,
      surface_nm2: m.surfaceNm2,
      cut_face_nm2: m.cutFaceNm2 ?? null,
      sphericity: m.sphericity,
      volume_to_surface_nm: m.volumeNm3 / m.surfaceNm2,
      length_nm: m.mito?.lengthNm ?? null,
      width_nm: m.mito?.widthNm ?? null,
      feret_max_nm: m.mito?.feretMaxNm ?? null,
      branched: m.mito?.branched ?? null,
      branch_count: m.mito?.branchCount ?? null,
      min_dist_er_nm: gap ?? null,
      min_dist_in_plane: gap === undefined ? null : axis !== 2,
      min_dist_axis: axis === undefined ? null : AXES[axis],
      er_contact: gap === undefined ? null : gap <= contactThreshold,
      contact_across_sections_only: gap === undefined ? null : gap <= contactThreshold && axis === 2,
      contact_er_element: o.contact?.erElementId ?? null,
      touches_boundary: o.shape === "sphere_cap",
      centroid_nm: m.centroidNm,
      seed_voxel: toVoxel(o.seedPoint, scene.voxel),
      bbox_voxels: { min: [...bbox.min], max: [...bbox.max] },
      voxel_count: voxelCount,
      voxel_volume_error: err,
      volume_method: m.volumeMethod,
      surface_method: m.surfaceMethod,
      geometry: { radius_nm: o.r, centreline: o.prims.map(centrelineJson) },
    };
  });
  const componentOf = new Map<number, number>();
  scene.erComponents.forEach((ids, i) => ids.forEach((id) => componentOf.set(id, i + 1)));
  const elements = scene.er.map(
    (e): ErElementTruth => ({
      id: e.id,
      kind: e.kind,
      box_nm: { lo: [...e.box.lo], hi: [...e.box.hi] },
      radius_nm: e.r,
      component: componentOf.get(e.id) ?? 0,
      partner_of: e.ownerId ?? null,
    }),
  );
  const components = scene.erComponents.map((ids, i) => {
    const first = scene.er.find((e) => e.id === ids[0]);
    if (!first) throw new Error(`ER component ${i + 1} has no elements`);
    return { id: i + 1, element_ids: ids, seed_voxel: erSeed(first.box, first.r, scene.voxel, scene.extent) };
  });
  return {
    format: TRUTH_FORMAT,
    version: TRUTH_VERSION,
    seed: scene.seed,
    size: scene.size,
    voxel_nm: scene.voxel,
    extent_nm: scene.extent,
    class_codes: CLASS_CODES,
    contact_threshold_nm: contactThreshold,
    counts,
    organelles,
    er: { component_count: components.length, components, elements },
    voxel_volume_error_worst: worst,
    skipped: scene.skipped,
    methods: METHODS,
  };
}
