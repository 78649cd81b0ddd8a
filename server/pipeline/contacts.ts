/**
 * ER membrane contact sites (MCS), as Jiang et al. and CellMap/COSEM define them: per organelle the minimum
 * face-to-face gap to the ER, and contact sites = the organelle's surface voxels within the threshold,
 * connected (26) into sites, each with its area, closest gap, ER partner and whether that gap is seen within
 * one section ("in-plane") or only across sections (45 nm z steps).
 */
import type { Vec3 } from "../../precomputed/array.js";
import { CLASSES } from "./classes.js";
import { ContactRecords, contactFaceArea, floodSites } from "./contact-sites.js";
import { featureDistances } from "./edt.js";

export interface ContactSite {
  id: number;
  organelle: number;
  /** ER network (instance id) nearest to the site's closest voxel. */
  er: number;
  voxels: number;
  /** Exposed voxel-face area of the site's voxels, scaled to the organelle's measured surface when known. */
  area_nm2: number;
  min_gap_nm: number;
  in_plane: boolean;
  /** Voxel-centre coordinates (voxel units) of the closest organelle voxel and its ER partner. */
  organellePoint: Vec3;
  erPoint: Vec3;
}

export interface InstanceContact {
  min_dist_er_nm: number | null;
  contact_in_plane: boolean | null;
  in_contact: boolean;
  /** Exposed voxel-face area within the threshold (nm^2), before scaling to a measured surface. */
  contact_face_area_nm2: number;
  /** All exposed voxel-face area of the instance (nm^2): the denominator for that scaling. */
  face_area_nm2: number;
  sites: number;
}

export interface ContactAnalysis {
  thresholdNm: number;
  perInstance: Map<number, InstanceContact>;
  sites: ContactSite[];
}

const ER_CODE = 1;
const MEASURED = new Set(CLASSES.filter((c) => c.measuresContacts).map((c) => c.code));

export function analyseContacts(labels: Uint32Array, classOf: Uint8Array, shape: Vec3, voxelNm: Vec3, thresholdNm: number): ContactAnalysis {
  const er = new Uint8Array(labels.length);
  const organelles = new Uint32Array(labels.length);
  // Per id: 1 = ER, 2 = an organelle whose contacts are measured, else 0; one table read per voxel instead of
  // a class look-up and a Set look-up (ids beyond classOf read undefined: neither, as before).
  const role = new Uint8Array(classOf.length);
  for (let id = 1; id < classOf.length; id++) role[id] = classOf[id] === ER_CODE ? 1 : MEASURED.has(classOf[id]) ? 2 : 0;
  let anyEr = false;
  for (let i = 0; i < labels.length; i++) {
    const id = labels[i];
    if (id === 0) continue;
    const r = role[id];
    if (r === 1) {
      er[i] = 1;
      anyEr = true;
    } else if (r === 2) organelles[i] = id;
  }
  const perInstance = new Map<number, InstanceContact>();
  const sites: ContactSite[] = [];
  if (!anyEr) {
    for (let id = 1; id < classOf.length; id++) {
      if (MEASURED.has(classOf[id])) perInstance.set(id, { min_dist_er_nm: null, contact_in_plane: null, in_contact: false, contact_face_area_nm2: 0, face_area_nm2: 0, sites: 0 });
    }
    return { thresholdNm, perInstance, sites };
  }

  const { distances: dist, contacts: contact } = featureDistances(organelles, er, shape, voxelNm, thresholdNm);
  const faceArea = exposedFaceArea(organelles, classOf.length, shape, voxelNm);
  dist.ids.forEach((id, k) => {
    const gap = dist.minGapNm[k];
    perInstance.set(id, {
      min_dist_er_nm: Number.isFinite(gap) ? gap : null,
      contact_in_plane: Number.isFinite(gap) ? dist.inPlane[k] === 1 : null,
      in_contact: gap <= thresholdNm,
      contact_face_area_nm2: 0,
      face_area_nm2: faceArea[id] ?? 0,
      sites: 0,
    });
  });

  const records = new ContactRecords();
  for (let k = 0; k < contact.ids.length; k++) {
    const id = contact.ids[k];
    if (!perInstance.has(id)) continue;
    for (let e = contact.offsets[k]; e < contact.offsets[k + 1]; e++) {
      const v = contact.voxel[e];
      const f = contact.featureVoxel[e];
      records.push(id, v, contact.gapNm[e], contact.inPlane[e], f, labels[f], contactFaceArea(organelles, v, id, shape, voxelNm));
    }
  }
  sites.push(...floodSites(records, shape, perInstance));
  return { thresholdNm, perInstance, sites };
}

/** Exposed face area per instance id (ids < idCount, as connectedComponents numbers them). */
function exposedFaceArea(labels: Uint32Array, idCount: number, shape: Vec3, voxelNm: Vec3): Float64Array {
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  const ax = voxelNm[1] * voxelNm[2];
  const ay = voxelNm[0] * voxelNm[2];
  const az = voxelNm[0] * voxelNm[1];
  const out = new Float64Array(idCount);
  for (let z = 0, v = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, v++) {
        const id = labels[v];
        if (id === 0) continue;
        let a = 0;
        if (x > 0 && labels[v - 1] !== id) a += ax;
        if (x < nx - 1 && labels[v + 1] !== id) a += ax;
        if (y > 0 && labels[v - nx] !== id) a += ay;
        if (y < ny - 1 && labels[v + nx] !== id) a += ay;
        if (z > 0 && labels[v - sxy] !== id) a += az;
        if (z < nz - 1 && labels[v + sxy] !== id) a += az;
        out[id] += a;
      }
    }
  }
  return out;
}
