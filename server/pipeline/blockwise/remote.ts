/**
 * `run` with s3:// locations (S3 or any S3-compatible server; endpoint and credentials from the environment,
 * server/storage/s3-storage.ts):
 * - `--image` / `--labels` s3://bucket/key.tif (a multi-page TIFF) or s3://bucket/prefix/ (a folder of slices):
 *   copied to a local temporary folder with 64 MiB range reads (memory stays bounded), removed at the end;
 * - `--out s3://bucket/prefix`: the out-of-core path writes straight into the bucket (with or without `--labels`); its
 *   work store is the sibling prefix `<prefix>.work-<key>`, `<key>` naming the inputs and options (resume.ts),
 *   removed at the end. S3 has no folder rename, so completeness is marked instead: `state.json` is deleted
 *   before anything is written and written last, and a prefix that holds objects but no state.json (not a
 *   vemscope output) is refused, as for local folders. An earlier output under the prefix is deleted first.
 * - Resuming: once the output prefix is cleared the work prefix gets `owner.json`; a rerun of the same command
 *   that finds it keeps the output's objects (the finished tasks' outputs, which it skips) and continues.
 */
import { createWriteStream, promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { once } from "node:events";
import type { Storage } from "../../../precomputed/storage.js";
import { parseS3Url, storageFor } from "../../storage/index.js";
import { DEFAULT_CONTACT_NM } from "../contact-layer.js";
import { PipelineError } from "../errors.js";
import { silentProgress } from "../progress.js";
import type { RunOptions, RunResult } from "../run.js";
import { resumeKey } from "./resume.js";
import { DEFAULT_BLOCK_BUDGET, runBlockwise } from "./run.js";
import { removePrefix } from "./work-store.js";

const PART = 64 * 2 ** 20;

/** Copies one object to a local file, PART bytes at a time. */
async function download(storage: Storage, key: string, file: string, what: string): Promise<void> {
  const out = createWriteStream(file);
  try {
    for (let at = 0; ; at += PART) {
      const bytes = storage.getRange ? await storage.getRange(key, at, at + PART) : (await storage.get(key))?.slice(at, at + PART);
      if (bytes === undefined) {
        if (at === 0) throw new PipelineError("bad_input", "no such object", what);
        break;
      }
      if (!out.write(bytes)) await once(out, "drain");
      if (bytes.length < PART) break;
    }
  } finally {
    out.end();
    await once(out, "close");
  }
}

/** A local copy of an s3:// input: one object, or every object under a prefix (a folder of slices). */
export async function fetchInput(url: string, dir: string): Promise<string> {
  const { bucket, prefix } = parseS3Url(url);
  const slash = prefix.lastIndexOf("/");
  const parent = storageFor(`s3://${bucket}${slash > 0 ? `/${prefix.slice(0, slash)}` : ""}`);
  const name = prefix.slice(slash + 1);
  await fs.mkdir(dir, { recursive: true });
  if (name && !url.endsWith("/")) {
    const single = await parent.getRange?.(name, 0, 1);
    if (single !== undefined) {
      const file = path.join(dir, name);
      await download(parent, name, file, url);
      return file;
    }
  }
  const folder = storageFor(url.replace(/\/+$/, ""));
  const keys = (await folder.list("")).filter((k) => !k.includes("/"));
  if (keys.length === 0) throw new PipelineError("bad_input", "no such object, and no objects under it as a folder", url);
  const local = path.join(dir, name || "input");
  await fs.mkdir(local, { recursive: true });
  for (const k of keys) await download(folder, k, path.join(local, k), `${url.replace(/\/+$/, "")}/${k}`);
  return local;
}

/** The sibling prefix for the work store of an output at `out`. */
export function workLocationFor(out: string, tag: string | number): string {
  const { bucket, prefix } = parseS3Url(out);
  return prefix ? `s3://${bucket}/${prefix}.work-${tag}` : `s3://${bucket}/.vemscope-work-${tag}`;
}

/** In the work prefix: written once the output prefix has been cleared for this run, so a rerun keeps it. */
const OWNER_KEY = "owner.json";

export async function runWithObjectStore(options: RunOptions, local: (o: RunOptions) => Promise<RunResult>): Promise<RunResult> {
  const t0 = performance.now();
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-s3-"));
  try {
    const image = options.image.startsWith("s3://") ? await fetchInput(options.image, path.join(tmp, "image")) : options.image;
    const labels = options.labels?.startsWith("s3://") ? await fetchInput(options.labels, path.join(tmp, "labels")) : options.labels;
    if (!options.out.startsWith("s3://")) return await local({ ...options, image, labels });
    if (options.exportTiff) throw new PipelineError("bad_argument", "TIFF export is not available with an s3:// output", "--export-tiff");
    const budget = options.blockBudget ?? DEFAULT_BLOCK_BUDGET;
    if (!(Number.isSafeInteger(budget) && budget > 0)) throw new PipelineError("bad_argument", `expected a positive number of voxels, got ${budget}`, "--block-budget");
    if (options.queue !== undefined && !/^rediss?:\/\//.test(options.queue)) throw new PipelineError("bad_argument", `expected redis://HOST:PORT, got '${options.queue}'`, "--queue");
    const contactNm = options.contactNm ?? DEFAULT_CONTACT_NM;
    // The work prefix is named by the inputs (their S3 listings or local files) and the options, as the local
    // staging folder is: a rerun of a killed run finds it and continues (resume.ts).
    const key = await resumeKey({ ...options, contactNm, budget, capNm: options.distanceCapNm });
    const workUrl = workLocationFor(options.out, key);
    const work = storageFor(workUrl);
    const storage = storageFor(options.out);
    const resuming = (await work.get(OWNER_KEY)) !== undefined;
    const existing = await storage.list("");
    if (resuming) {
      // The output holds what the killed run's finished tasks wrote: kept, since those tasks are skipped now.
      if (existing.includes("state.json")) await storage.delete("state.json");
    } else {
      if (existing.length > 0 && !existing.includes("state.json")) {
        throw new PipelineError("bad_argument", "holds objects and is not a vemscope output (no state.json): choose another --out or empty it", options.out);
      }
      // state.json first, so that an interrupted replacement never looks complete.
      if (existing.includes("state.json")) await storage.delete("state.json");
      for (const k of existing) if (k !== "state.json") await storage.delete(k);
      await work.put(OWNER_KEY, JSON.stringify({ out: options.out }));
    }
    try {
      const { instances } = await runBlockwise({
        image,
        labels,
        align: options.align,
        model: options.model,
        minFragmentNm3: options.minFragmentNm3,
        voxelNm: options.voxelNm,
        contactNm,
        storage,
        outputUrl: options.out.replace(/\/+$/, ""),
        workUrl,
        scratch: path.join(tmp, "ingest"),
        progress: options.progress ?? silentProgress,
        budget,
        blockShape: options.blockShape,
        capNm: options.distanceCapNm,
        queue: options.queue,
        shardAboveChunks: options.shardAboveChunks,
      });
      return { instances, mode: "blockwise", seconds: (performance.now() - t0) / 1000, out: options.out };
    } catch (e) {
      // Failed tasks may pass on a rerun, which continues from the work prefix (as local runs keep their staging
      // folder); anything else leaves no work objects. state.json is written last, so nothing here looks complete.
      if (!(e instanceof PipelineError && e.code === "stage_failed")) await removePrefix(work, "").catch(() => undefined);
      throw e;
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
