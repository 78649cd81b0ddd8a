import type { Vec3 } from "../../precomputed/array.js";
import { writeAnnotations } from "../../precomputed/annotations.js";
import type { Storage } from "../../precomputed/storage.js";
import type { ContactAnalysis } from "./contacts.js";
import type { InstanceRow } from "./report.js";

export const DEFAULT_CONTACT_NM = 30;

/**
 * Contact columns into the rows. contact_area_nm2 is the organelle's measured surface times the share of its
 * exposed voxel faces that lie within the threshold; without a measured surface, the raw face area (which
 * overstates by up to ~50% at 5 x 5 x 45 nm).
 */
export function applyContacts(rows: InstanceRow[], contacts: ContactAnalysis): void {
  for (const row of rows) {
    const c = contacts.perInstance.get(row.id);
    if (!c) continue;
    row.min_dist_er_nm = c.min_dist_er_nm;
    row.in_contact = c.in_contact;
    row.contact_in_plane = c.contact_in_plane;
    const share = c.face_area_nm2 > 0 ? c.contact_face_area_nm2 / c.face_area_nm2 : 0;
    row.contact_area_nm2 = typeof row.surface_nm2 === "number" ? row.surface_nm2 * share : c.contact_face_area_nm2;
    row.contact_sites = c.sites;
  }
}

/**
 * Contact sites as a precomputed annotation layer: one line per site from the organelle's closest voxel to
 * its ER partner, with area, gap and in-plane flag, related to both segments (so selecting a segment in
 * Neuroglancer filters its sites).
 */
export async function writeContactLayer(storage: Storage, prefix: string, contacts: ContactAnalysis, voxelNm: Vec3, shape: Vec3): Promise<void> {
  await writeAnnotations(storage, prefix, {
    type: "line",
    dimensions: { x: [voxelNm[0] * 1e-9, "m"], y: [voxelNm[1] * 1e-9, "m"], z: [voxelNm[2] * 1e-9, "m"] },
    lowerBound: [0, 0, 0],
    upperBound: [...shape],
    annotations: contacts.sites.map((s) => ({
      id: s.id,
      pointA: s.organellePoint,
      pointB: s.erPoint,
      properties: { area_nm2: s.area_nm2, gap_nm: s.min_gap_nm, in_plane: s.in_plane ? 1 : 0, voxels: s.voxels },
      relationships: { organelle: [s.organelle], er: [s.er] },
    })),
    propertySpecs: [
      { id: "area_nm2", type: "float32", description: "contact area (voxel faces within the threshold)" },
      { id: "gap_nm", type: "float32", description: "closest face-to-face gap to the ER" },
      { id: "in_plane", type: "uint8", description: "1: gap resolved within one section; 0: only across sections", enum_values: [0, 1], enum_labels: ["across sections", "in-plane"] },
      { id: "voxels", type: "uint32", description: "organelle surface voxels in the site" },
    ],
    relationships: ["organelle", "er"],
  });
}
