import type { Vec3 } from "../../precomputed/array.js";
import { annotationEncodingSpec, annotationLayout, decodeAnnotationChunk, encodeAnnotationChunk, readAnnotationInfo } from "../../precomputed/annotations.js";
import type { PutOptions, Storage } from "../../precomputed/storage.js";
import { classByName } from "../pipeline/classes.js";
import { writeContactLayer } from "../pipeline/contact-layer.js";
import { analyseContacts, type ContactSite } from "../pipeline/contacts.js";
import type { Box6 } from "./ops.js";

/**
 * The `contacts/` annotation layer of an edited version. A site depends only on its organelle's voxels, on
 * which voxels are ER (a set no edit changes: merges join one class, splits keep it, undo/redo restore) and
 * on the ER id at its partner voxel. So after an edit the sites of the re-measured organelles are recomputed
 * on a crop (their box plus the contact threshold), every other site is carried over with its ER id read
 * again at its partner voxel (which is all an ER merge or split changes), and the whole list is numbered as
 * the pipeline numbers it (by organelle, then first voxel): the layer then equals a whole-volume analysis of
 * the edited labels.
 */

export const CONTACTS_PREFIX = "contacts";
const ER_CODE = 1;

/** Sites of one organelle, as analyseContacts over the whole volume finds them (ids still to be numbered). */
export function organelleSites(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, id: number, className: string, box: Box6, classOf: (id: number) => string | undefined, contactNm: number): ContactSite[] {
  const cls = classByName(className);
  if (!cls?.measuresContacts) return [];
  // Every ER voxel within the threshold of a face of the organelle lies inside this crop (one voxel for the
  // face-to-face gap, one to spare); the organelle itself never touches the crop edge but at the volume's.
  const lo = [0, 1, 2].map((d) => Math.max(0, box[d] - Math.ceil(contactNm / voxelNm[d]) - 2));
  const hi = [0, 1, 2].map((d) => Math.min(shape[d], box[d + 3] + Math.ceil(contactNm / voxelNm[d]) + 2));
  const cs: Vec3 = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
  const [nx, ny] = shape;
  // Organelle -> 1, each ER id -> 2 + k: a compact class table, and the ER ids come back for the sites.
  const crop = new Uint32Array(cs[0] * cs[1] * cs[2]);
  const erIds: number[] = [];
  const erIndex = new Map<number, number>();
  let o = 0;
  for (let z = lo[2]; z < hi[2]; z++)
    for (let y = lo[1]; y < hi[1]; y++) {
      const row = nx * (y + ny * z);
      for (let x = lo[0]; x < hi[0]; x++, o++) {
        const v = labels[row + x];
        if (v === 0) continue;
        if (v === id) crop[o] = 1;
        else if (classOf(v) === "er") {
          let k = erIndex.get(v);
          if (k === undefined) {
            k = erIds.length;
            erIndex.set(v, k);
            erIds.push(v);
          }
          crop[o] = 2 + k;
        }
      }
    }
  const codes = Uint8Array.from([0, cls.code, ...erIds.map(() => ER_CODE)]);
  const shift = (p: Vec3): Vec3 => [p[0] + lo[0], p[1] + lo[1], p[2] + lo[2]];
  return analyseContacts(crop, codes, cs, voxelNm, contactNm).sites.map((s) => ({ ...s, organelle: id, er: erIds[s.er - 2], organellePoint: shift(s.organellePoint), erPoint: shift(s.erPoint) }));
}

/**
 * The version's site list: `carried` minus the organelles in `fresh` and those gone, with ER ids read again
 * from `labels`, plus `fresh`; ordered by organelle (a stable sort keeps each organelle's own order, which is
 * the pipeline's) and numbered from 1, as floodSites numbers them.
 */
export function mergeSites(carried: readonly ContactSite[], fresh: ReadonlyMap<number, ContactSite[]>, exists: (id: number) => boolean, labels: Uint32Array, shape: Vec3): ContactSite[] {
  const [nx, ny] = shape;
  const erAt = (p: Vec3) => labels[Math.floor(p[0]) + nx * (Math.floor(p[1]) + ny * Math.floor(p[2]))];
  const kept = carried.filter((s) => !fresh.has(s.organelle) && exists(s.organelle)).map((s) => ({ ...s, er: erAt(s.erPoint) }));
  const all = [...kept, ...[...fresh.values()].flat()];
  all.sort((a, b) => a.organelle - b.organelle);
  return all.map((s, k) => ({ ...s, id: k + 1 }));
}

/** The sites of a written layer, read back per organelle (rel_organelle/<id>); undefined without a layer. */
export async function readSites(storage: Storage, organelles: readonly number[], labels: Uint32Array, shape: Vec3): Promise<ContactSite[] | undefined> {
  let spec;
  try {
    spec = annotationEncodingSpec(await readAnnotationInfo(storage, CONTACTS_PREFIX));
  } catch {
    return undefined;
  }
  const [nx, ny] = shape;
  const sites: ContactSite[] = [];
  for (const id of organelles) {
    const bytes = await storage.get(`${CONTACTS_PREFIX}/rel_organelle/${id}`);
    if (!bytes) continue;
    for (const a of decodeAnnotationChunk(bytes, spec)) {
      const p = a.properties;
      const pa = a.pointA as Vec3;
      const pb = a.pointB as Vec3;
      sites.push({
        id: Number(a.id),
        organelle: id,
        // Multi-annotation chunks carry no relationships: the partner is the ER id at the partner voxel.
        er: labels[Math.floor(pb[0]) + nx * (Math.floor(pb[1]) + ny * Math.floor(pb[2]))],
        voxels: Number(p.voxels),
        area_nm2: Number(p.area_nm2),
        min_gap_nm: Number(p.gap_nm),
        in_plane: Number(p.in_plane) === 1,
        organellePoint: [pa[0], pa[1], pa[2]],
        erPoint: [pb[0], pb[1], pb[2]],
      });
    }
  }
  // Within an organelle, the layer's ids are the pipeline's order.
  return sites.sort((a, b) => a.organelle - b.organelle || a.id - b.id);
}

/**
 * Writes the layer into a version folder copy-on-write: a file whose bytes equal the version's current copy
 * is not written again (it resolves to that copy), and a spatial or relationship chunk of an earlier layer
 * that this one no longer has is overwritten by an empty chunk, so no stale site shows through from an older
 * version. (A by_id record above the new site count is left: no chunk refers to it any more.)
 */
export async function writeVersionContacts(target: Storage, current: Storage, earlierKeys: readonly string[], sites: ContactSite[], voxelNm: Vec3, shape: Vec3): Promise<void> {
  const written = new Set<string>();
  const put = async (key: string, data: Uint8Array | string, options?: PutOptions) => {
    written.add(key);
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const old = await current.get(key);
    if (old && Buffer.compare(Buffer.from(old), Buffer.from(bytes)) === 0) return;
    await target.put(key, data, options);
  };
  // list() answers nothing, so writeAnnotations deletes nothing: cleaning is the empty chunks below.
  const cow: Storage = { get: (k) => current.get(k), put, list: async () => [], delete: async () => undefined };
  await writeContactLayer(cow, CONTACTS_PREFIX, { thresholdNm: 0, perInstance: new Map(), sites }, voxelNm, shape);
  const spec = annotationEncodingSpec(await readAnnotationInfo(cow, CONTACTS_PREFIX));
  const empty = encodeAnnotationChunk([], annotationLayout(spec));
  const chunk = new RegExp(`^${CONTACTS_PREFIX}/(spatial[0-9]+|rel_[^/]+)/`);
  for (const key of earlierKeys) if (chunk.test(key) && !written.has(key)) await put(key, empty);
}
