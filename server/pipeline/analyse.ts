import type { Vec3, Volume } from "../../precomputed/array.js";
import { applyContacts, DEFAULT_CONTACT_NM } from "./contact-layer.js";
import { analyseContacts, type ContactAnalysis } from "./contacts.js";
import { connectedComponents, type Components } from "./label.js";
import { silentProgress, type Progress } from "./progress.js";
import { instanceRows, type InstanceRow } from "./report.js";
import { measureTube } from "./skeleton.js";
import { measureSurface, sphericity, volumeToSurface } from "./surface.js";
import { cropMask, instanceStats } from "./stats.js";

export interface Analysis {
  components: Components;
  rows: InstanceRow[];
  contacts: ContactAnalysis;
}

/**
 * The measuring half of the pipeline on a class volume, in memory: instances, per-instance rows, ER contacts.
 * `run` writes what this returns; accuracy tests compare it with the phantom's analytic truth.
 */
export function analyseClasses(classes: Volume<Uint8Array>, voxelNm: Vec3, opts: { contactNm?: number; progress?: Progress } = {}): Analysis {
  const progress = opts.progress ?? silentProgress;
  progress.start("instances", 1, "volume");
  const components = connectedComponents(classes.data, classes.shape);
  const stats = instanceStats(components.labels, classes.shape, components.count);
  const rows = instanceRows(components, classes.shape, voxelNm, stats);
  progress.update(1);
  // The ER network spans the whole volume and is not an organelle the paper measures; everything else is.
  const solids = rows.filter((r) => r.class !== "er");
  progress.start("surfaces", solids.length, "instances");
  solids.forEach((row, k) => {
    const m = measureSurface(components.labels, classes.shape, voxelNm, row.id, stats.bbox.subarray(6 * row.id, 6 * row.id + 6));
    row.surface_nm2 = m.surface_nm2;
    row.vsa_nm = volumeToSurface(row.volume_nm3, m.surface_nm2);
    row.sphericity = sphericity(row.volume_nm3, m.surface_nm2);
    progress.update(k + 1);
  });
  const mitos = rows.filter((r) => r.class === "mito");
  progress.start("mito skeletons", mitos.length, "mitochondria");
  mitos.forEach((row, k) => {
    const crop = cropMask(components.labels, classes.shape, stats, row.id);
    const m = measureTube(crop.mask, crop.shape, voxelNm);
    row.length_nm = m.length_nm;
    row.width_nm = m.width_nm;
    row.feret_max_nm = m.feret_max_nm;
    row.branched = m.branched;
    row.branch_count = m.branch_count;
    progress.update(k + 1);
  });
  progress.start("ER contacts", 1, "volume");
  const contacts = analyseContacts(components.labels, components.classOf, classes.shape, voxelNm, opts.contactNm ?? DEFAULT_CONTACT_NM);
  applyContacts(rows, contacts);
  progress.update(1);
  progress.end();
  return { components, rows, contacts };
}
