/**
 * ER membrane contact sites (MCS), as Jiang et al. and CellMap/COSEM define them: per organelle the minimum
 * face-to-face gap to the ER, and contact sites = the organelle's surface voxels within the threshold,
 * connected (26) into sites, each with its area, closest gap, ER partner and whether that gap is seen within
 * one section ("in-plane") or only across sections (45 nm z steps).
 */
import type { Vec3 } from "../../precomputed/array.js";
import { CLASSES } from "./classes.js";
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
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  const er = new Uint8Array(labels.length);
  const organelles = new Uint32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const id = labels[i];
    if (id === 0) continue;
    const code = classOf[id];
    if (code === ER_CODE) er[i] = 1;
    else if (MEASURED.has(code)) organelles[i] = id;
  }
  const perInstance = new Map<number, InstanceContact>();
  const sites: ContactSite[] = [];
  if (!er.includes(1)) {
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

  const xyz = (i: number): Vec3 => [(i % nx) + 0.5, (Math.floor(i / nx) % ny) + 0.5, Math.floor(i / sxy) + 0.5];
  for (let k = 0; k < contact.ids.length; k++) {
    const id = contact.ids[k];
    const lo = contact.offsets[k];
    const hi = contact.offsets[k + 1];
    if (hi === lo) continue;
    const entry = perInstance.get(id);
    if (!entry) continue;
    const local = new Map<number, number>();
    for (let e = lo; e < hi; e++) local.set(contact.voxel[e], e);
    const seen = new Uint8Array(hi - lo);
    for (let e0 = lo; e0 < hi; e0++) {
      if (seen[e0 - lo]) continue;
      // Flood the site through 26-neighbouring contact voxels of the same organelle.
      const stack = [e0];
      seen[e0 - lo] = 1;
      let best = e0;
      let area = 0;
      let count = 0;
      while (stack.length > 0) {
        const e = stack.pop() as number;
        const v = contact.voxel[e];
        count++;
        area += voxelFaceArea(organelles, v, id, shape, voxelNm);
        if (closer(contact, e, best)) best = e;
        const x = v % nx;
        const y = Math.floor(v / nx) % ny;
        const z = Math.floor(v / sxy);
        for (let dz = -1; dz <= 1; dz++) {
          if (z + dz < 0 || z + dz >= nz) continue;
          for (let dy = -1; dy <= 1; dy++) {
            if (y + dy < 0 || y + dy >= ny) continue;
            for (let dx = -1; dx <= 1; dx++) {
              if (x + dx < 0 || x + dx >= nx) continue;
              const n = local.get(v + dx + dy * nx + dz * sxy);
              if (n !== undefined && !seen[n - lo]) {
                seen[n - lo] = 1;
                stack.push(n);
              }
            }
          }
        }
      }
      const erVoxel = contact.featureVoxel[best];
      sites.push({
        id: sites.length + 1,
        organelle: id,
        er: labels[erVoxel],
        voxels: count,
        area_nm2: area,
        min_gap_nm: contact.gapNm[best],
        in_plane: contact.inPlane[best] === 1,
        organellePoint: xyz(contact.voxel[best]),
        erPoint: xyz(erVoxel),
      });
      entry.contact_face_area_nm2 += area;
      entry.sites++;
    }
  }
  return { thresholdNm, perInstance, sites };
}

/** Area of the faces of voxel v (of instance id) that border another label, inside the volume. */
function voxelFaceArea(labels: Uint32Array, v: number, id: number, shape: Vec3, voxelNm: Vec3): number {
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  const x = v % nx;
  const y = Math.floor(v / nx) % ny;
  const z = Math.floor(v / sxy);
  const ax = voxelNm[1] * voxelNm[2];
  const ay = voxelNm[0] * voxelNm[2];
  const az = voxelNm[0] * voxelNm[1];
  let a = 0;
  if (x > 0 && labels[v - 1] !== id) a += ax;
  if (x < nx - 1 && labels[v + 1] !== id) a += ax;
  if (y > 0 && labels[v - nx] !== id) a += ay;
  if (y < ny - 1 && labels[v + nx] !== id) a += ay;
  if (z > 0 && labels[v - sxy] !== id) a += az;
  if (z < nz - 1 && labels[v + sxy] !== id) a += az;
  return a;
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

/**
 * Site representative: smallest gap; on a tie an in-plane pair wins (as the organelle's contact_in_plane does),
 * then the lower voxel index, so the choice never depends on flood-fill order.
 */
export function closer(c: { gapNm: ArrayLike<number>; inPlane: ArrayLike<number>; voxel: ArrayLike<number> }, a: number, b: number): boolean {
  if (c.gapNm[a] !== c.gapNm[b]) return c.gapNm[a] < c.gapNm[b];
  if (c.inPlane[a] !== c.inPlane[b]) return c.inPlane[a] === 1;
  return c.voxel[a] < c.voxel[b];
}
