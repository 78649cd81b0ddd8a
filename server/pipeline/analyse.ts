import type { Vec3, Volume } from "../../precomputed/array.js";
import { applyContacts, DEFAULT_CONTACT_NM } from "./contact-layer.js";
import { analyseContacts, type ContactAnalysis } from "./contacts.js";
import { connectedComponents, type Components } from "./label.js";
import { silentProgress, type Progress } from "./progress.js";
import { instanceRows, type InstanceRow } from "./report.js";

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
  const rows = instanceRows(components, classes.shape, voxelNm);
  progress.update(1);
  progress.start("ER contacts", 1, "volume");
  const contacts = analyseContacts(components.labels, components.classOf, classes.shape, voxelNm, opts.contactNm ?? DEFAULT_CONTACT_NM);
  applyContacts(rows, contacts);
  progress.update(1);
  progress.end();
  return { components, rows, contacts };
}
