import type { Vec3 } from "../../precomputed/array.js";
import type { Storage } from "../../precomputed/storage.js";
import { classByName } from "../pipeline/classes.js";
import { applyContacts } from "../pipeline/contact-layer.js";
import { analyseContacts } from "../pipeline/contacts.js";
import { meshSegments, type SegmentMesh } from "../pipeline/mesh.js";
import { writeSegmentMultiresMesh } from "../pipeline/mesh-lod.js";
import { measuredRow, type InstanceRow } from "../pipeline/report.js";
import { measureTube } from "../pipeline/skeleton.js";
import { measureSurface, sphericity, volumeToSurface } from "../pipeline/surface.js";
import type { Box6 } from "./ops.js";

/**
 * Re-measuring only the segments an edit touched, with the pipeline's own kernels on a crop around each
 * (analyse.ts does the same per instance over the whole volume), so an edited row has the same columns and
 * definitions as report/morphometrics.csv.
 */

const ER_CODE = 1;
/**
 * ER is searched in growing crops around a segment (the whole volume last): most organelles have ER within
 * a few hundred nm, and two EDTs over a small crop cost a fraction of two over the volume.
 */
const CONTACT_SEARCH_NM = [250, 1000];
const DISPLAY_MESH_DOWNSAMPLE: Vec3 = [2, 2, 1];

/** Exact voxel sums of one segment: count, sums of x, y, z (integers, exact in doubles), tight box. */
export interface VoxelSums {
  n: number;
  sx: number;
  sy: number;
  sz: number;
  b: Box6;
}

const emptySums = (shape: Vec3): VoxelSums => ({ n: 0, sx: 0, sy: 0, sz: 0, b: [shape[0], shape[1], shape[2], 0, 0, 0] });

/** A row's voxel facts from its sums: the one formula of rowFacts and SegmentSums. */
function factsRow(id: number, cls: string, a: VoxelSums, voxelNm: Vec3): InstanceRow {
  return measuredRow({
    id,
    class: cls,
    voxels: a.n,
    volume_nm3: a.n * (voxelNm[0] * voxelNm[1] * voxelNm[2]),
    centroid_x_nm: (a.sx / a.n + 0.5) * voxelNm[0],
    centroid_y_nm: (a.sy / a.n + 0.5) * voxelNm[1],
    centroid_z_nm: (a.sz / a.n + 0.5) * voxelNm[2],
    bbox_voxels: a.b.join(" "),
  });
}

/** Adds the x-run [x0, x1) of row (y, z) to `a`; sx = the sum of its x, computed once by the caller. */
function addRun(a: VoxelSums, x0: number, x1: number, y: number, z: number, len: number, sx: number): void {
  a.n += len;
  a.sx += sx;
  a.sy += y * len;
  a.sz += z * len;
  const b = a.b;
  if (x0 < b[0]) b[0] = x0;
  if (y < b[1]) b[1] = y;
  if (z < b[2]) b[2] = z;
  if (x1 > b[3]) b[3] = x1;
  if (y >= b[4]) b[4] = y + 1;
  if (z >= b[5]) b[5] = z + 1;
}

/**
 * Sums of the ids in `acc` (those absent are skipped; `all`: every nonzero id, added as met) over `box`,
 * per x-run of one id, not per voxel: a run adds its length, its x sum (an arithmetic series) and its ends to
 * the box, so the scan is one comparison per voxel (a 10^8-voxel object is ~10^6 runs).
 */
function scanSums(labels: Uint32Array, shape: Vec3, box: Box6, acc: Map<number, VoxelSums>, all: boolean): void {
  const [nx, ny] = shape;
  for (let z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++) {
      const row = nx * (y + ny * z);
      const end = row + box[3];
      for (let i = row + box[0]; i < end; ) {
        const id = labels[i];
        const s = i;
        i++;
        while (i < end && labels[i] === id) i++;
        if (id === 0) continue;
        let a = acc.get(id);
        if (!a) {
          if (!all) continue;
          a = emptySums(shape);
          acc.set(id, a);
        }
        const len = i - s;
        const x0 = s - row;
        const x1 = i - row;
        addRun(a, x0, x1, y, z, len, ((x0 + x1 - 1) * len) / 2);
      }
    }
}

/** Voxel facts (count, volume, centroid, box) of `ids` found inside `box`; ids with no voxel left are absent. */
export function rowFacts(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, classes: ReadonlyMap<number, string>, box: Box6): Map<number, InstanceRow> {
  const acc = new Map<number, VoxelSums>();
  for (const id of classes.keys()) acc.set(id, emptySums(shape));
  scanSums(labels, shape, box, acc, false);
  const out = new Map<number, InstanceRow>();
  for (const [id, a] of acc) if (a.n > 0) out.set(id, factsRow(id, classes.get(id) ?? "unknown", a, voxelNm));
  return out;
}

/** Tight box of `id` inside `box` (undefined: none there), a native indexOf / lastIndexOf per row. */
function boxOfId(labels: Uint32Array, shape: Vec3, id: number, box: Box6): Box6 | undefined {
  const [nx, ny] = shape;
  const b: Box6 = [shape[0], shape[1], shape[2], 0, 0, 0];
  for (let z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++) {
      const row = nx * (y + ny * z);
      const line = labels.subarray(row + box[0], row + box[3]);
      const first = line.indexOf(id);
      if (first < 0) continue;
      const last = line.lastIndexOf(id);
      if (box[0] + first < b[0]) b[0] = box[0] + first;
      if (box[0] + last + 1 > b[3]) b[3] = box[0] + last + 1;
      if (y < b[1]) b[1] = y;
      if (y >= b[4]) b[4] = y + 1;
      if (z < b[2]) b[2] = z;
      if (z >= b[5]) b[5] = z + 1;
    }
  return b[3] > b[0] ? b : undefined;
}

/**
 * Every segment's exact voxel sums, kept in step with the labels by each edit: an edit's rows then come
 * from its diff runs (sums are additive; a segment that only gains voxels grows its box by theirs) instead
 * of a scan of the union box. Only a segment that loses voxels and keeps some (an undone merge's survivor)
 * needs its box found again, by a native search of its old box's rows. The rows equal rowFacts' over a box
 * holding the segments (same integer sums, same formula).
 */
export class SegmentSums {
  private constructor(private readonly sums: Map<number, VoxelSums>) {}

  /** One pass over the labels. */
  static scan(labels: Uint32Array, shape: Vec3): SegmentSums {
    const acc = new Map<number, VoxelSums>();
    scanSums(labels, shape, [0, 0, 0, shape[0], shape[1], shape[2]], acc, true);
    return new SegmentSums(acc);
  }

  get(id: number): VoxelSums | undefined {
    return this.sums.get(id);
  }

  /**
   * After `runs` were applied to `labels`: the rows of the ids in `classes` (absent: no voxel left), and
   * the new sums of every id the runs touch, for commit() once the edit is committed.
   */
  derive(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, classes: ReadonlyMap<number, string>, runs: Uint32Array): { rows: Map<number, InstanceRow>; next: Map<number, VoxelSums> } {
    const [nx, ny] = shape;
    const next = new Map<number, VoxelSums>();
    const shrunk = new Set<number>();
    const of = (id: number): VoxelSums => {
      let a = next.get(id);
      if (!a) {
        const was = this.sums.get(id);
        a = was ? { n: was.n, sx: was.sx, sy: was.sy, sz: was.sz, b: [...was.b] } : emptySums(shape);
        next.set(id, a);
      }
      return a;
    };
    for (const id of classes.keys()) if (id !== 0) of(id);
    for (let k = 0; k < runs.length; k += 4) {
      const end = runs[k] + runs[k + 1];
      const from = runs[k + 2] === 0 ? undefined : of(runs[k + 2]);
      const to = runs[k + 3] === 0 ? undefined : of(runs[k + 3]);
      if (from) shrunk.add(runs[k + 2]);
      for (let i = runs[k]; i < end; ) {
        const x0 = i % nx;
        const r = (i - x0) / nx;
        const y = r % ny;
        const z = (r - y) / ny;
        const rowEnd = Math.min(end, i - x0 + nx);
        const len = rowEnd - i;
        const x1 = x0 + len;
        const sx = ((x0 + x1 - 1) * len) / 2;
        i = rowEnd;
        if (from) {
          from.n -= len;
          from.sx -= sx;
          from.sy -= y * len;
          from.sz -= z * len;
        }
        if (to) addRun(to, x0, x1, y, z, len, sx);
      }
    }
    for (const id of shrunk) {
      // Lost voxels and kept some: its box may shrink. What it kept lies in its old box, what it gained in the
      // runs' extents, and its sums' box covers both.
      const a = next.get(id) as VoxelSums;
      const found = a.n > 0 ? boxOfId(labels, shape, id, a.b) : undefined;
      if (found) a.b = found;
    }
    const rows = new Map<number, InstanceRow>();
    for (const [id, cls] of classes) {
      const a = next.get(id);
      if (a && a.n > 0) rows.set(id, factsRow(id, cls, a, voxelNm));
    }
    return { rows, next };
  }

  commit(next: ReadonlyMap<number, VoxelSums>): void {
    for (const [id, a] of next) {
      if (a.n > 0) this.sums.set(id, a);
      else this.sums.delete(id);
    }
  }
}

function grow(box: Box6, shape: Vec3, margin: Vec3, align: Vec3 = [1, 1, 1]): Box6 {
  const lo = [0, 1, 2].map((d) => Math.max(0, Math.floor((box[d] - margin[d]) / align[d]) * align[d]));
  const hi = [0, 1, 2].map((d) => Math.min(shape[d], box[d + 3] + margin[d]));
  return [lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]];
}

/** Crop of `labels` mapped through `map` (0 = drop), x fastest. */
function cropMapped(labels: Uint32Array, shape: Vec3, box: Box6, map: (id: number) => number): { data: Uint32Array; shape: Vec3 } {
  const [nx, ny] = shape;
  const cs: Vec3 = [box[3] - box[0], box[4] - box[1], box[5] - box[2]];
  const data = new Uint32Array(cs[0] * cs[1] * cs[2]);
  let o = 0;
  for (let z = box[2]; z < box[5]; z++)
    for (let y = box[1]; y < box[4]; y++) {
      const row = nx * (y + ny * z);
      for (let x = box[0]; x < box[3]; x++, o++) {
        const id = labels[row + x];
        if (id !== 0) data[o] = map(id);
      }
    }
  return { data, shape: cs };
}

/**
 * Fills the measured columns of `row` (surface, sphericity, mito tube, ER contacts) in place. `classOf`
 * gives the class name of any segment id, to find the ER around it.
 */
export function measureRow(row: InstanceRow, box: Box6, labels: Uint32Array, shape: Vec3, voxelNm: Vec3, classOf: (id: number) => string | undefined, contactNm: number): void {
  const cls = classByName(row.class);
  if (row.class === "er" || !cls) return;
  const m = measureSurface(labels, shape, voxelNm, row.id, box);
  row.surface_nm2 = m.surface_nm2;
  row.vsa_nm = volumeToSurface(row.volume_nm3, m.surface_nm2);
  row.sphericity = sphericity(row.volume_nm3, m.surface_nm2);
  if (row.class === "mito") {
    const crop = cropMapped(labels, shape, box, (id) => (id === row.id ? 1 : 0));
    const t = measureTube(Uint8Array.from(crop.data), crop.shape, voxelNm);
    row.length_nm = t.length_nm;
    row.width_nm = t.width_nm;
    row.feret_max_nm = t.feret_max_nm;
    row.branched = t.branched;
    row.branch_count = t.branch_count;
  }
  if (!cls.measuresContacts) return;
  // Segment -> 2, any ER -> 1: analyseContacts then sees one organelle and the ER, exactly as in the run.
  const TARGET = 2;
  const map = (id: number) => (id === row.id ? TARGET : classOf(id) === "er" ? ER_CODE : 0);
  const classCodes = Uint8Array.from([0, ER_CODE, cls.code]);
  let contacts: ReturnType<typeof analyseContacts> | undefined;
  for (const reach of [...CONTACT_SEARCH_NM, Infinity]) {
    const margin = [0, 1, 2].map((d) => (reach === Infinity ? shape[d] : Math.ceil(reach / voxelNm[d]) + 1)) as Vec3;
    const near = grow(box, shape, margin);
    const crop = cropMapped(labels, shape, near, map);
    contacts = analyseContacts(crop.data, classCodes, crop.shape, voxelNm, contactNm);
    const gap = contacts.perInstance.get(TARGET)?.min_dist_er_nm ?? null;
    // Every ER voxel within `reach` lies inside the crop, so a gap up to `reach` is the true minimum.
    const whole = near.every((v, i) => (i < 3 ? v === 0 : v === shape[i - 3]));
    if (whole || (gap !== null && gap <= reach)) break;
  }
  if (!contacts) return;
  const tmp = { ...row, id: TARGET };
  applyContacts([tmp], contacts);
  row.min_dist_er_nm = tmp.min_dist_er_nm;
  row.in_contact = tmp.in_contact;
  row.contact_in_plane = tmp.contact_in_plane;
  row.contact_area_nm2 = tmp.contact_area_nm2;
  row.contact_sites = tmp.contact_sites;
}

/** The display mesh of one segment (as layers.ts makes them: 10 x 10 x 45 nm, full resolution when thin). */
export function segmentMesh(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, id: number, box: Box6): SegmentMesh {
  // Crop origin on the downsampling lattice, so the mesh matches the one the pipeline made of the whole volume.
  const near = grow(box, shape, [4, 4, 2], DISPLAY_MESH_DOWNSAMPLE);
  const crop = cropMapped(labels, shape, near, (v) => (v === id ? 1 : 0));
  let mesh = meshSegments(crop.data, crop.shape, voxelNm, { ids: [1], downsample: DISPLAY_MESH_DOWNSAMPLE }).get(1);
  if (!mesh || mesh.indices.length === 0) mesh = meshSegments(crop.data, crop.shape, voxelNm, { ids: [1], downsample: [1, 1, 1] }).get(1);
  const positions = mesh ? mesh.positions.slice() : new Float32Array(0);
  for (let i = 0; i < positions.length; i += 3) {
    positions[i] += near[0] * voxelNm[0];
    positions[i + 1] += near[1] * voxelNm[1];
    positions[i + 2] += near[2] * voxelNm[2];
  }
  return { positions, indices: mesh ? mesh.indices : new Uint32Array(0) };
}

export async function writeMesh(storage: Storage, meshPrefix: string, id: number, mesh: SegmentMesh): Promise<boolean> {
  if (mesh.indices.length === 0) return false;
  await writeSegmentMultiresMesh(storage, meshPrefix, id, mesh, { quantizationBits: 10 });
  return true;
}
