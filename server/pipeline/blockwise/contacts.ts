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
import { closer } from "../contacts.js";
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

class Records {
  n = 0;
  organelle = new Uint32Array(1024);
  voxel = new Float64Array(1024);
  gap = new Float32Array(1024);
  inPlane = new Uint8Array(1024);
  feature = new Float64Array(1024);
  er = new Uint32Array(1024);
  area = new Float64Array(1024);

  push(organelle: number, voxel: number, gap: number, inPlane: number, feature: number, er: number, area: number): void {
    if (this.n === this.voxel.length) {
      const grow = <T extends Uint32Array | Float64Array | Float32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.organelle = grow(this.organelle);
      this.voxel = grow(this.voxel);
      this.gap = grow(this.gap);
      this.inPlane = grow(this.inPlane);
      this.feature = grow(this.feature);
      this.er = grow(this.er);
      this.area = grow(this.area);
    }
    const k = this.n++;
    this.organelle[k] = organelle;
    this.voxel[k] = voxel;
    this.gap[k] = gap;
    this.inPlane[k] = inPlane;
    this.feature[k] = feature;
    this.er[k] = er;
    this.area[k] = area;
  }
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
  const records = new Records();
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
            if (id !== 0) faceArea[id] += voxelFaceArea(organelles, i, id, box.shape, voxelNm);
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
          records.push(id, global(v), contact.gapNm[e], contact.inPlane[e], global(f), labels[f], voxelFaceArea(organelles, v, id, box.shape, voxelNm));
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

/** contacts.ts's flood, replayed over all blocks' contact voxels: same start voxels, same stack order. */
function floodSites(r: Records, shape: Vec3, perInstance: Map<number, InstanceContact>): ContactSite[] {
  const [nx, ny, nz] = shape;
  const sxy = nx * ny;
  const order = Array.from({ length: r.n }, (_, k) => k).sort((a, b) => r.organelle[a] - r.organelle[b] || r.voxel[a] - r.voxel[b]);
  const xyz = (i: number): Vec3 => [(i % nx) + 0.5, (Math.floor(i / nx) % ny) + 0.5, Math.floor(i / sxy) + 0.5];
  const sites: ContactSite[] = [];
  const pick = { gapNm: r.gap, inPlane: r.inPlane, voxel: r.voxel };
  for (let lo = 0; lo < order.length; ) {
    const id = r.organelle[order[lo]];
    let hi = lo;
    while (hi < order.length && r.organelle[order[hi]] === id) hi++;
    const entry = perInstance.get(id);
    const local = new Map<number, number>();
    for (let e = lo; e < hi; e++) local.set(r.voxel[order[e]], e);
    const seen = new Uint8Array(hi - lo);
    for (let e0 = lo; e0 < hi && entry; e0++) {
      if (seen[e0 - lo]) continue;
      const stack = [e0];
      seen[e0 - lo] = 1;
      let bestE = e0;
      let area = 0;
      let count = 0;
      while (stack.length > 0) {
        const e = stack.pop() as number;
        const k = order[e];
        const v = r.voxel[k];
        count++;
        area += r.area[k];
        if (closer(pick, k, order[bestE])) bestE = e;
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
      const kb = order[bestE];
      sites.push({
        id: sites.length + 1,
        organelle: id,
        er: r.er[kb],
        voxels: count,
        area_nm2: area,
        min_gap_nm: r.gap[kb],
        in_plane: r.inPlane[kb] === 1,
        organellePoint: xyz(r.voxel[kb]),
        erPoint: xyz(r.feature[kb]),
      });
      entry.contact_face_area_nm2 += area;
      entry.sites++;
    }
    lo = hi;
  }
  return sites;
}

/** contacts.ts's face area of voxel v of instance id: faces towards another label, inside the (halo) box. */
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
