/**
 * ER contacts block by block, each block read with a halo from the label store (one `blockwise.contacts` task
 * per block, merged in block order by mergeContactBlocks). Why the results match the whole-volume analysis
 * (contacts.ts):
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
import type { ContactAnalysis, InstanceContact } from "../contacts.js";
import { ContactRecords, contactFaceArea, floodSites } from "../contact-sites.js";
import { featureDistances, haloBox } from "../edt.js";
import { arrayOf, packArrays, unpackArrays } from "./pack.js";

const ER_CODE = 1;
const MEASURED = new Set(CLASSES.filter((c) => c.measuresContacts).map((c) => c.code));

/** Voxels of halo per axis so that halo x spacing >= capNm on every axis. */
export function haloVoxels(capNm: number, voxelNm: Vec3): Vec3 {
  return voxelNm.map((s) => Math.max(1, Math.ceil(capNm / s))) as Vec3;
}

/** One block's share: minima per instance, face-area sums per instance, and its contact voxels. */
export interface ContactBlock {
  minIds: Uint32Array;
  minGap: Float64Array;
  minGapInPlane: Float64Array;
  faceIds: Uint32Array;
  faceArea: Float64Array;
  records: ContactRecords;
}

export interface ContactBlockRequest {
  volumeShape: Vec3;
  origin: Vec3;
  extent: Vec3;
  halo: Vec3;
  voxelNm: Vec3;
  thresholdNm: number;
  capNm: number;
  classOf: Uint8Array;
}

/** The halo box a block's task reads. */
export function contactBox(r: Pick<ContactBlockRequest, "volumeShape" | "origin" | "extent" | "halo">) {
  return haloBox({ volumeShape: r.volumeShape, blockOrigin: r.origin, blockShape: r.extent, haloVoxels: r.halo });
}

/** The contact analysis of one block, from the labels of its halo box (contactBox). */
export function contactsOfBlock(labels: Uint32Array, r: ContactBlockRequest): ContactBlock {
  const { classOf, voxelNm, extent } = r;
  const [nx, ny] = r.volumeShape;
  const box = contactBox(r);
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
  const face = new Map<number, number>();
  if (anyOrganelle) {
    for (let z = iz; z < iz + extent[2]; z++) {
      for (let y = iy; y < iy + extent[1]; y++) {
        for (let x = ix; x < ix + extent[0]; x++) {
          const i = x + hx * (y + hy * z);
          const id = organelles[i];
          if (id !== 0) face.set(id, (face.get(id) ?? 0) + contactFaceArea(organelles, i, id, box.shape, voxelNm));
        }
      }
    }
  }
  const records = new ContactRecords();
  let minIds = new Uint32Array(0);
  let minGap = new Float64Array(0);
  let minGapInPlane = new Float64Array(0);
  if (anyEr && anyOrganelle) {
    // One transform for both the minima and the contact voxels; nothing beyond the cap is needed.
    const { distances: dist, contacts: contact } = featureDistances(organelles, er, box.shape, voxelNm, r.thresholdNm, r.capNm);
    minIds = Uint32Array.from(dist.ids);
    minGap = Float64Array.from(dist.minGapNm);
    minGapInPlane = Float64Array.from(dist.minGapInPlaneNm);
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
  return {
    minIds,
    minGap,
    minGapInPlane,
    faceIds: Uint32Array.from(face.keys()),
    faceArea: Float64Array.from(face.values()),
    records,
  };
}

export function packContactBlock(b: ContactBlock): Uint8Array {
  const r = b.records;
  return packArrays({
    minIds: b.minIds,
    minGap: b.minGap,
    minGapInPlane: b.minGapInPlane,
    faceIds: b.faceIds,
    faceArea: b.faceArea,
    organelle: r.organelle.slice(0, r.n),
    voxel: r.voxel.slice(0, r.n),
    gap: r.gap.slice(0, r.n),
    inPlane: r.inPlane.slice(0, r.n),
    feature: r.feature.slice(0, r.n),
    er: r.er.slice(0, r.n),
    area: r.area.slice(0, r.n),
  });
}

/** Accumulates blocks (in block order, so float sums come out the same on every executor) and finishes. */
export class ContactMerge {
  private readonly best: Float64Array;
  private readonly bestInPlane: Float64Array;
  private readonly faceArea: Float64Array;
  private readonly records = new ContactRecords();

  constructor(
    private readonly classOf: Uint8Array,
    private readonly shape: Vec3,
    private readonly thresholdNm: number,
    private readonly capNm: number,
  ) {
    this.best = new Float64Array(classOf.length).fill(Infinity);
    this.bestInPlane = new Float64Array(classOf.length).fill(Infinity);
    this.faceArea = new Float64Array(classOf.length);
  }

  addPacked(bytes: Uint8Array, what: string): void {
    const u = unpackArrays(bytes, what);
    const minIds = arrayOf(u, "minIds", Uint32Array, what);
    const minGap = arrayOf(u, "minGap", Float64Array, what);
    const minGapInPlane = arrayOf(u, "minGapInPlane", Float64Array, what);
    minIds.forEach((id, k) => {
      if (minGap[k] < this.best[id]) this.best[id] = minGap[k];
      if (minGapInPlane[k] < this.bestInPlane[id]) this.bestInPlane[id] = minGapInPlane[k];
    });
    const faceIds = arrayOf(u, "faceIds", Uint32Array, what);
    const faceArea = arrayOf(u, "faceArea", Float64Array, what);
    faceIds.forEach((id, k) => (this.faceArea[id] += faceArea[k]));
    const organelle = arrayOf(u, "organelle", Uint32Array, what);
    const voxel = arrayOf(u, "voxel", Float64Array, what);
    const gap = arrayOf(u, "gap", Float32Array, what);
    const inPlane = arrayOf(u, "inPlane", Uint8Array, what);
    const feature = arrayOf(u, "feature", Float64Array, what);
    const er = arrayOf(u, "er", Uint32Array, what);
    const area = arrayOf(u, "area", Float64Array, what);
    for (let k = 0; k < organelle.length; k++) this.records.push(organelle[k], voxel[k], gap[k], inPlane[k], feature[k], er[k], area[k]);
  }

  finish(): ContactAnalysis {
    const { classOf, capNm, thresholdNm } = this;
    const perInstance = new Map<number, InstanceContact>();
    const anyEr = classOf.includes(ER_CODE, 1);
    for (let id = 1; id < classOf.length; id++) {
      if (!MEASURED.has(classOf[id])) continue;
      if (!anyEr) {
        perInstance.set(id, { min_dist_er_nm: null, contact_in_plane: null, in_contact: false, contact_face_area_nm2: 0, face_area_nm2: 0, sites: 0 });
        continue;
      }
      const best = this.best[id];
      const exact = best < capNm;
      perInstance.set(id, {
        min_dist_er_nm: exact ? best : capNm,
        // Same test as contacts.ts on squared values; sqrt keeps integer-valued squares apart by far more.
        contact_in_plane: exact ? this.bestInPlane[id] <= best * (1 + 5e-13) : null,
        in_contact: best <= thresholdNm,
        contact_face_area_nm2: 0,
        face_area_nm2: this.faceArea[id],
        sites: 0,
      });
    }
    if (!anyEr) return { thresholdNm, perInstance, sites: [] };
    const sites = floodSites(this.records, this.shape, perInstance);
    return { thresholdNm, perInstance, sites };
  }
}
