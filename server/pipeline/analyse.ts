import { availableParallelism } from "node:os";
import type { Vec3, Volume } from "../../precomputed/array.js";
import { applyContacts, DEFAULT_CONTACT_NM } from "./contact-layer.js";
import { analyseContacts, type ContactAnalysis } from "./contacts.js";
import { connectedComponents, type Components } from "./label.js";
import type { ObjectJob } from "./object-measures.js";
import { silentProgress, type Progress } from "./progress.js";
import { instanceRows, type InstanceRow } from "./report.js";
import { instanceStats, type InstanceStats } from "./stats.js";
import { sphericity, volumeToSurface } from "./surface.js";
import { requestedWorkers } from "./workers/pool.js";
import { startSharedJobs } from "./workers/shared-jobs.js";

export interface Analysis {
  components: Components;
  rows: InstanceRow[];
  contacts: ContactAnalysis;
  /** Voxel counts and boxes per instance id, for the mesh writer (one pass over the labels less). */
  stats: InstanceStats;
}

export interface AnalyseOptions {
  contactNm?: number;
  progress?: Progress;
  /**
   * Measure surfaces and mito skeletons on a helper thread while this one finds the ER contacts (same
   * numbers either way). Default: when there is more than one core and VEMSCOPE_WORKERS is not 0.
   */
  helperThread?: boolean;
  /**
   * Called once the instances exist, before the ER contacts (which hold this thread for seconds): work that
   * needs only the labels (the display meshes) can be queued on the worker pool here, so that the helper
   * thread goes on to it when the per-object measures are done instead of idling until the contacts end.
   */
  onInstances?(components: Components, stats: InstanceStats): void;
}

/**
 * The measuring half of the pipeline on a class volume, in memory: instances, per-instance rows, ER contacts.
 * `run` writes what this returns; accuracy tests compare it with the phantom's analytic truth.
 */
export function analyseClasses(classes: Volume<Uint8Array>, voxelNm: Vec3, opts: AnalyseOptions = {}): Analysis {
  return startAnalysis(classes, voxelNm, opts).finish();
}

/** An analysis whose instances and ER contacts are done while the helper thread may still be measuring objects. */
export interface PendingAnalysis {
  components: Components;
  contacts: ContactAnalysis;
  stats: InstanceStats;
  /**
   * Waits for the helper's surfaces and skeletons (this thread measures the objects it has not started) and
   * completes the rows. Work the caller does before this call overlaps the helper's instead of duplicating its
   * kernels here: this thread then claims fewer objects, and each thread warms up (JIT) only the code it runs.
   */
  finish(): Analysis;
}

/** analyseClasses up to the ER contacts: the per-object measures keep running on the helper thread. */
export function startAnalysis(classes: Volume<Uint8Array>, voxelNm: Vec3, opts: AnalyseOptions = {}): PendingAnalysis {
  const progress = opts.progress ?? silentProgress;
  progress.start("instances", 1, "volume");
  const found = connectedComponents(classes.data, classes.shape);
  const helper = opts.helperThread ?? defaultHelper();
  // Worker threads read the labels in place: one copy into shared memory (kept as the result's labels, so the
  // mesh writer's workers reuse it) instead of one crop per object.
  const components: Components = helper ? { ...found, labels: shareLabels(found.labels) } : found;
  const stats = instanceStats(components.labels, classes.shape, components.count);
  const rows = instanceRows(components, classes.shape, voxelNm, stats);
  progress.update(1);

  // The ER network spans the whole volume and is not an organelle the paper measures; everything else is.
  // Surfaces and mito tubes are per object and independent of the contacts, so they run beside them.
  const objects = rows.filter((r) => r.class !== "er");
  const jobs: ObjectJob[] = objects.map((row) => ({
    labels: components.labels,
    shape: classes.shape,
    voxelNm,
    id: row.id,
    bbox: Array.from(stats.bbox.subarray(6 * row.id, 6 * row.id + 6)),
    surface: true,
    tube: row.class === "mito",
  }));
  // Largest boxes first, so that the last job claimed is a small one.
  const order = jobs.map((_, k) => k).sort((a, b) => boxVolume(jobs[b].bbox) - boxVolume(jobs[a].bbox) || a - b);
  const run = startSharedJobs("object", order.map((k) => jobs[k]), helper);
  // After the measures' batch, so that the helper takes that first.
  opts.onInstances?.(components, stats);

  progress.start("ER contacts", 1, "volume");
  const contacts = analyseContacts(components.labels, components.classOf, classes.shape, voxelNm, opts.contactNm ?? DEFAULT_CONTACT_NM);
  progress.update(1);
  progress.end();
  const finish = (): Analysis => {
    progress.start("surfaces + mito skeletons", objects.length, "instances");
    const measured = run.finish();
    order.forEach((k, j) => {
      const row = objects[k];
      const m = measured[j];
      if (m.surface_nm2 !== null) {
        row.surface_nm2 = m.surface_nm2;
        row.vsa_nm = volumeToSurface(row.volume_nm3, m.surface_nm2);
        row.sphericity = sphericity(row.volume_nm3, m.surface_nm2);
      }
      if (m.tube !== null) {
        row.length_nm = m.tube.length_nm;
        row.width_nm = m.tube.width_nm;
        row.feret_max_nm = m.tube.feret_max_nm;
        row.branched = m.tube.branched;
        row.branch_count = m.tube.branch_count;
      }
    });
    progress.update(objects.length);
    // Contact areas scale the measured surfaces, so they go in last.
    applyContacts(rows, contacts);
    progress.end();
    return { components, rows, contacts, stats };
  };
  return { components, contacts, stats, finish };
}

function defaultHelper(): boolean {
  return availableParallelism() > 1 && requestedWorkers() > 0;
}

function shareLabels(labels: Uint32Array): Uint32Array {
  const shared = new Uint32Array(new SharedArrayBuffer(labels.byteLength));
  shared.set(labels);
  return shared;
}

function boxVolume(b: number[]): number {
  return (b[3] - b[0]) * (b[4] - b[1]) * (b[5] - b[2]);
}
