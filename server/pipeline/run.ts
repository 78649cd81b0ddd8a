import { existsSync, promises as fs } from "node:fs";
import * as path from "node:path";
import type { Vec3, Volume } from "../../precomputed/array.js";
import { LocalStorage } from "../../precomputed/storage.js";
import { PipelineError } from "./errors.js";
import type { Components } from "./label.js";
import { silentProgress, type Progress } from "./progress.js";
import { readLabelsChecked, readImage } from "./inputs.js";
import { writeImageLayer, writeSegmentationLayer } from "./layers.js";
import type { ContactAnalysis } from "./contacts.js";
import { DEFAULT_CONTACT_NM, writeContactLayer } from "./contact-layer.js";
import { analyseClasses } from "./analyse.js";
import { writeReport, type InstanceRow } from "./report.js";
import { buildState } from "./state.js";
import { writeTiffStack } from "./tiff.js";

export interface RunOptions {
  image: string;
  /** A class volume (DESIGN.md codes); alignment and segmentation are then skipped. */
  labels?: string;
  model?: string;
  voxelNm: Vec3;
  out: string;
  align?: boolean;
  exportTiff?: boolean;
  contactNm?: number;
  progress?: Progress;
}

export interface RunResult {
  instances: number;
  seconds: number;
  out: string;
}

/** What stages hand each other. */
export interface RunContext {
  options: RunOptions;
  progress: Progress;
  /** Folder being written; renamed onto `out` only when every stage has succeeded. */
  staging: string;
  storage: LocalStorage;
  image?: Volume<Uint8Array | Uint16Array>;
  classes?: Volume<Uint8Array>;
  components?: Components;
  rows?: InstanceRow[];
  contacts?: ContactAnalysis;
}

interface Stage {
  name: string;
  /** Skipped when false (e.g. alignment with --no-align or with --labels). */
  when?(ctx: RunContext): boolean;
  run(ctx: RunContext): Promise<void>;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new PipelineError("stage_failed", `internal: ${what} missing before it is used`);
  return value;
}

const STAGES: Stage[] = [
  {
    name: "ingest",
    async run(ctx) {
      ctx.image = await readImage(ctx.options.image);
      if (ctx.options.labels) ctx.classes = await readLabelsChecked(ctx.options.labels, ctx.image);
    },
  },
  {
    name: "segment",
    when: (ctx) => ctx.classes === undefined,
    async run() {
      throw new PipelineError(
        "stage_failed",
        "no segmentation model is shipped yet: pass --labels with a class volume (codes 0-6)",
        "--model",
      );
    },
  },
  {
    name: "analyse",
    async run(ctx) {
      const analysis = analyseClasses(need(ctx.classes, "class volume"), ctx.options.voxelNm, { contactNm: ctx.options.contactNm, progress: ctx.progress });
      ctx.components = analysis.components;
      ctx.rows = analysis.rows;
      ctx.contacts = analysis.contacts;
    },
  },
  {
    name: "contact layer",
    async run(ctx) {
      await writeContactLayer(ctx.storage, "contacts", need(ctx.contacts, "contacts"), ctx.options.voxelNm, need(ctx.classes, "class volume").shape);
    },
  },
  {
    name: "image layer",
    async run(ctx) {
      await writeImageLayer(ctx.storage, "image", need(ctx.image, "image"), ctx.options.voxelNm, ctx.progress);
    },
  },
  {
    name: "segmentation layer",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      await writeSegmentationLayer(
        ctx.storage,
        "segmentation",
        need(ctx.components, "instances"),
        need(ctx.rows, "instance rows"),
        classes.shape,
        ctx.options.voxelNm,
        ctx.progress,
      );
    },
  },
  {
    name: "report",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      await writeReport(ctx.storage, need(ctx.rows, "instance rows"), classes.shape, ctx.options.voxelNm, ctx.options.contactNm ?? DEFAULT_CONTACT_NM);
    },
  },
  {
    name: "state",
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      const state = buildState({
        voxelNm: ctx.options.voxelNm,
        size: classes.shape,
        classOf: need(ctx.components, "instances").classOf,
        annotationLayers: [{ name: "ER contacts", folder: "contacts" }],
      });
      await ctx.storage.put("state.json", JSON.stringify(state, null, 1));
    },
  },
  {
    name: "export",
    when: (ctx) => ctx.options.exportTiff === true,
    async run(ctx) {
      const classes = need(ctx.classes, "class volume");
      const components = need(ctx.components, "instances");
      await fs.mkdir(path.join(ctx.staging, "export"), { recursive: true });
      await writeTiffStack(path.join(ctx.staging, "export", "classes.tif"), classes);
      await writeTiffStack(path.join(ctx.staging, "export", "instances.tif"), { data: components.labels, shape: classes.shape });
    },
  },
];

/**
 * The whole pipeline into `out`. Everything is written into a staging folder beside `out` and renamed into
 * place at the end, so a failure leaves no half-written output and an earlier result stays intact.
 */
export async function runPipeline(options: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  const out = path.resolve(options.out);
  await refuseForeignFolder(out);
  const staging = `${out}.partial-${process.pid}`;
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { recursive: true });
  const ctx: RunContext = { options, progress: options.progress ?? silentProgress, staging, storage: new LocalStorage(staging) };
  try {
    for (const stage of STAGES) {
      if (stage.when && !stage.when(ctx)) continue;
      await stage.run(ctx);
    }
    await replaceFolder(staging, out);
  } catch (e) {
    ctx.progress.end();
    await fs.rm(staging, { recursive: true, force: true });
    throw e;
  }
  return { instances: ctx.components?.count ?? 0, seconds: (performance.now() - t0) / 1000, out };
}

/** Replacing `out` is only safe when it is an earlier vemscope result (or empty), never someone's other files. */
async function refuseForeignFolder(out: string): Promise<void> {
  if (!existsSync(out)) return;
  const stat = await fs.stat(out);
  if (!stat.isDirectory()) throw new PipelineError("bad_argument", "exists and is not a folder", out);
  const entries = await fs.readdir(out);
  if (entries.length > 0 && !entries.includes("state.json")) {
    throw new PipelineError("bad_argument", "exists and is not a vemscope output (no state.json): choose another --out or empty it", out);
  }
}

async function replaceFolder(staging: string, out: string): Promise<void> {
  if (!existsSync(out)) {
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.rename(staging, out);
    return;
  }
  const old = `${out}.old-${process.pid}`;
  await fs.rename(out, old);
  await fs.rename(staging, out);
  await fs.rm(old, { recursive: true, force: true });
}
