/**
 * Contact sites shared by the in-memory (contacts.ts) and out-of-core (blockwise/contacts.ts) analyses: the
 * organelle's contact voxels, one record each, flooded through 26-neighbours into sites. One kernel for both
 * paths, so the out-of-core sites are the in-memory ones by construction (same numbering, same closest pair).
 */
import type { Vec3 } from "../../precomputed/array.js";
import type { ContactSite, InstanceContact } from "./contacts.js";

/** Contact voxels (global raster index), their gap, nearest ER voxel, ER id and exposed face area. */
export class ContactRecords {
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

/** Sites in order of (organelle, first voxel); each site's representative is the closest pair (closer()). */
export function floodSites(r: ContactRecords, shape: Vec3, perInstance: Map<number, InstanceContact>): ContactSite[] {
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

/** Area of the faces of voxel v (of instance id) that border another label, inside the (halo) box. */
export function contactFaceArea(labels: Uint32Array, v: number, id: number, shape: Vec3, voxelNm: Vec3): number {
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

/**
 * Site representative: smallest gap; on a tie an in-plane pair wins (as the organelle's contact_in_plane does),
 * then the lower voxel index, so the choice never depends on flood-fill order.
 */
export function closer(c: { gapNm: ArrayLike<number>; inPlane: ArrayLike<number>; voxel: ArrayLike<number> }, a: number, b: number): boolean {
  if (c.gapNm[a] !== c.gapNm[b]) return c.gapNm[a] < c.gapNm[b];
  if (c.inPlane[a] !== c.inPlane[b]) return c.inPlane[a] === 1;
  return c.voxel[a] < c.voxel[b];
}
