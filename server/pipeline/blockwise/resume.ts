/**
 * Resumable out-of-core runs: a killed `run --labels --blockwise` continues where it stopped.
 * - The staging folder (and so the work store in it) is named by a key of the inputs (path, size, mtime of each
 *   file) and of the options that change the output, so a rerun of the same command finds it again; other inputs
 *   or options give another folder, never a mix.
 * - Every blockwise task writes a marker `done/<digest of the task>` into the work store after its outputs (each an
 *   atomic put), so a marker means complete outputs; the coordinator skips tasks that have one. Tasks are
 *   deterministic, so the rerun's output is the same bytes as an uninterrupted run's.
 */
import { createHash } from "node:crypto";
import { appendFileSync, promises as fs } from "node:fs";
import * as path from "node:path";
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import type { TaskKind } from "../../jobs/kinds.js";
import type { Task } from "../../jobs/tasks.js";
import { DEFAULT_MODEL_PATH } from "../segment/model.js";

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

/** Options that change the bytes of an out-of-core output. */
export interface ResumeInputs {
  image: string;
  /** Absent: the image is aligned (unless align is false) and segmented with `model` and the fragment minimum. */
  labels?: string;
  align?: boolean;
  model?: string;
  minFragmentNm3?: number;
  tta?: string;
  thresholds?: Record<string, number>;
  minAreaNm2?: Record<string, number>;
  resample?: string;
  voxelNm: Vec3;
  contactNm: number;
  budget: number;
  blockShape?: Vec3;
  capNm?: number;
  shardAboveChunks?: number;
}

/**
 * Path, size and mtime of a file, or of every file of a folder of slices: a changed input changes the key. An
 * s3:// input: its URL and the key, size and ETag of every object under it (its local copy is new every run).
 */
async function fingerprint(p: string): Promise<unknown> {
  if (p.startsWith("s3://")) {
    // Loaded only for s3:// inputs: the AWS SDK is heavy and local runs never need it.
    const { parseS3Url, S3Storage } = await import("../../storage/index.js");
    const { bucket, prefix } = parseS3Url(p);
    return [p, await new S3Storage(bucket, "").listObjects(prefix)];
  }
  const abs = path.resolve(p);
  const st = await fs.stat(abs);
  if (!st.isDirectory()) return [abs, st.size, st.mtimeMs];
  const names = (await fs.readdir(abs)).sort();
  return [abs, await Promise.all(names.map(async (n) => fingerprint(path.join(abs, n))))];
}

/** 16 hex digits naming a run's staging folder (`<out>.partial-<key>`). */
export async function resumeKey(o: ResumeInputs): Promise<string> {
  const key = {
    v: 3, // bump when the work store's layout changes, so an old folder is not resumed by new code
    image: await fingerprint(o.image),
    labels: o.labels === undefined ? null : await fingerprint(o.labels),
    // Only what changes an image-only run's classes; with labels, alignment and model are not used.
    align: o.labels === undefined ? o.align !== false : null,
    // The default model too: its file (and so its metadata's thresholds and minimum areas) changes with vemscope.
    model: o.labels === undefined ? await fingerprint(o.model ?? DEFAULT_MODEL_PATH) : null,
    minFragmentNm3: o.labels === undefined ? (o.minFragmentNm3 ?? null) : null,
    // Keys absent unless set, so the folders of earlier runs without them keep their names.
    ...(o.labels === undefined && o.tta !== undefined && o.tta !== "none" ? { tta: o.tta } : {}),
    ...(o.labels === undefined && o.thresholds !== undefined ? { thresholds: o.thresholds } : {}),
    ...(o.labels === undefined && o.minAreaNm2 !== undefined ? { minAreaNm2: o.minAreaNm2 } : {}),
    ...(o.labels === undefined && o.resample !== undefined && o.resample !== "auto" ? { resample: o.resample } : {}),
    voxelNm: o.voxelNm,
    contactNm: o.contactNm,
    budget: o.budget,
    blockShape: o.blockShape ?? null,
    capNm: o.capNm ?? null,
    shardAboveChunks: o.shardAboveChunks ?? null,
  };
  return sha256(JSON.stringify(key)).slice(0, 16);
}

/**
 * The completion marker of a task. Its digest covers kind, bbox and params (not only the id): two stages may run
 * the same kind over the same bbox (image and segmentation pyramids), with different params.
 */
export function doneKey(task: Task): string {
  const { id, kind, bbox, halo, params } = task;
  return `done/${sha256(JSON.stringify({ id, kind, bbox, halo, params })).slice(0, 32)}`;
}

/** Markers of coordinator steps that are not tasks (ingest). */
export const stepKey = (name: string): string => `done/step-${name}`;

/** The tasks of a stage that have no completion marker yet. */
export async function pendingTasks(work: Storage, tasks: Task[]): Promise<Task[]> {
  const done = new Set(await work.list("done/"));
  return tasks.filter((t) => !done.has(doneKey(t)));
}

/**
 * A kind that marks its task complete in the work store (`params.work`) once its run has returned. Set
 * VEMSCOPE_TASK_LOG to a file to get one line per task run (tests count the tasks a resumed run executes).
 */
export function resumable(kind: TaskKind): TaskKind {
  return {
    ...kind,
    async run(task, ctx) {
      const outcome = await kind.run(task, ctx);
      const work = task.params.work;
      if (typeof work === "string") await ctx.storage(work).put(doneKey(task), "");
      const log = process.env.VEMSCOPE_TASK_LOG;
      if (log) appendFileSync(log, `${task.kind} ${task.id}\n`);
      return outcome;
    },
  };
}

/** LocalStorage's in-flight names (`<key>.tmp-<pid>-<hex>`, precomputed/storage.ts). */
const TEMP_FILE = /\.tmp-\d+-[0-9a-f]{8}$/;

/**
 * Removes the temporary files of puts that a killed process left half done under `root`, so that a resumed
 * output holds the same files as an uninterrupted one. Run once every task has finished.
 */
export async function sweepTempFiles(root: string): Promise<void> {
  const entries = await fs.readdir(root, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) if (e.isFile() && TEMP_FILE.test(e.name)) await fs.rm(path.join(e.parentPath, e.name), { force: true });
}
