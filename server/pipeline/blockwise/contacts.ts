/**
 * ER contacts block by block, each block read with a halo from the label store. Why the results match the
 * whole-volume analysis (contacts.ts):
 * - Distances are computed on the halo box, where only a subset of the ER is visible, so every value is >= the
 *   true one, and values below the halo width (nm, per axis) are exact at the block's voxels (edt.ts
 *   exactBelowNm). Every instance's true minimum is reached at a boundary voxel inside some block, so the
 *   minimum over blocks is exact whenever it is below the cap (the halo width); otherwise the true distance is
 *   at least the cap, and the cap is what is reported.
 * - Contact voxels (gap <= threshold < cap) are exact at the block's voxels, whose six neighbours are always in
 *   the halo box, so the boundary test is the whole-volume one. They are kept (one record each, ~40 bytes: the
 *   contact surface, not the volume) and flooded into sites after the last block exactly as contacts.ts does, so
 *   sites that straddle block faces come out whole, with the same numbering and the same closest pair.
 */
import type { Vec3 } from "../../../precomputed/array.js";
import { CLASSES } from "../classes.js";
import type { ContactAnalysis, ContactSite, InstanceContact } from "../contacts.js";
import { ContactRecords, contactFaceArea, floodSites } from "../contact-sites.js";
import { featureDistances, haloBox } from "../edt.js";
import type { BlockStore } from "./store.js";
import { blockOrigins } from "./store.js";

const ER_CODE = 1;
const MEASURED = new Set(CLASSES.filter((c) => c.measuresContacts).map((c) => c.code));

export interface BlockwiseContactOptions {
  thresholdNm: number;
  /** Halo width in nm: distances below it are exact, larger ones are reported as this value. */
  capNm: number;
  blockShape: Vec3;
  onBlock?: (done: number, total: number) => void;
}

/** Voxels of halo per axis so that halo x spacing >= capNm on every axis. */
export function haloVoxels(capNm: number, voxelNm: Vec3): Vec3 {
  return voxelNm.map((s) => Math.max(1, Math.ceil(capNm / s))) as Vec3;
}

export async function analyseContactsBlockwise(store: BlockStore<Uint32Array>, classOf: Uint8Array, voxelNm: Vec3, opts: BlockwiseContactOptions): Promise<ContactAnalysis> {
  const { thresholdNm, capNm } = opts;
  const shape = store.shape;
  const [nx, ny] = shape;
  const perInstance = new Map<number, InstanceContact>();
  const measured: number[] = [];
  for (let id = 1; id < classOf.length; id++) if (MEASURED.has(classOf[id])) measured.push(id);
  if (!classOf.includes(ER_CODE, 1)) {
    for (const id of measured) perInstance.set(id, { min_dist_er_nm: null, contact_in_plane: null, in_contact: false, contact_face_area_nm2: 0, face_area_nm2: 0, sites: 0 });
    return { thresholdNm, perInstance, sites: [] };
  }
  const best = new Float64Array(classOf.length).fill(Infinity);
  const bestInPlane = new Float64Array(classOf.length).fill(Infinity);
  const faceArea = new Float64Array(classOf.length);
  const records = new ContactRecords();
  const halo = haloVoxels(capNm, voxelNm);
  const origins = [...blockOrigins(shape, opts.blockShape)];
  let done = 0;
  for (const origin of origins) {
    const extent = [0, 1, 2].map((d) => Math.min(opts.blockShape[d], shape[d] - origin[d])) as Vec3;
    const box = haloBox({ volumeShape: shape, blockOrigin: origin, blockShape: extent, haloVoxels: halo });
    const labels = store.readBox(box.origin, box.shape);
    const [hx, hy] = box.shape;
    const er = new Uint8Array(labels.length);
    const organelles = new Uint32Array(labels.length);
    let anyEr = false;
    let anyOrganelle = false;
    for (let i = 0; i < labels.length; i++) {
      const id = labels[i];
      if (id === 0) continue;
      const code = classOf[id];
      if (code === ER_CODE) {
        er[i] = 1;
        anyEr = true;
      } else if (MEASURED.has(code)) {
        organelles[i] = id;
        anyOrganelle = true;
      }
    }
    const [ix, iy, iz] = box.interiorOffset;
    const inside = (i: number): boolean => {
      const x = i % hx;
      const y = Math.floor(i / hx) % hy;
      const z = Math.floor(i / (hx * hy));
      return x >= ix && x < ix + extent[0] && y >= iy && y < iy + extent[1] && z >= iz && z < iz + extent[2];
    };
    const global = (i: number): number => {
      const x = (i % hx) + box.origin[0];
      const y = (Math.floor(i / hx) % hy) + box.origin[1];
      const z = Math.floor(i / (hx * hy)) + box.origin[2];
      return x + nx * (y + ny * z);
    };
    if (anyOrganelle) {
      for (let z = iz; z < iz + extent[2]; z++) {
        for (let y = iy; y < iy + extent[1]; y++) {
          for (let x = ix; x < ix + extent[0]; x++) {
            const i = x + hx * (y + hy * z);
            const id = organelles[i];
            if (id !== 0) faceArea[id] += contactFaceArea(organelles, i, id, box.shape, voxelNm);
          }
        }
      }
    }
    if (anyEr && anyOrganelle) {
      // One transform for both the minima and the contact voxels; nothing beyond the cap is needed.
      const { distances: dist, contacts: contact } = featureDistances(organelles, er, box.shape, voxelNm, thresholdNm, capNm);
      dist.ids.forEach((id, k) => {
        if (dist.minGapNm[k] < best[id]) best[id] = dist.minGapNm[k];
        if (dist.minGapInPlaneNm[k] < bestInPlane[id]) bestInPlane[id] = dist.minGapInPlaneNm[k];
      });
      for (let k = 0; k < contact.ids.length; k++) {
        const id = contact.ids[k];
        for (let e = contact.offsets[k]; e < contact.offsets[k + 1]; e++) {
          const v = contact.voxel[e];
          if (!inside(v)) continue;
          const f = contact.featureVoxel[e];
          records.push(id, global(v), contact.gapNm[e], contact.inPlane[e], global(f), labels[f], contactFaceArea(organelles, v, id, box.shape, voxelNm));
        }
      }
    }
    opts.onBlock?.(++done, origins.length);
  }
  for (const id of measured) {
    const exact = best[id] < capNm;
    perInstance.set(id, {
      min_dist_er_nm: exact ? best[id] : capNm,
      // Same test as contacts.ts on squared values; sqrt keeps integer-valued squares apart by far more.
      contact_in_plane: exact ? bestInPlane[id] <= best[id] * (1 + 5e-13) : null,
      in_contact: best[id] <= thresholdNm,
      contact_face_area_nm2: 0,
      face_area_nm2: faceArea[id],
      sites: 0,
    });
  }
  const sites = floodSites(records, shape, perInstance);
  return { thresholdNm, perInstance, sites };
}
