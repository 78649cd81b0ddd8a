/** `vemscope segment` and `vemscope eval`: file handling around segmentVolume and evaluate. */
import { mkdir, rename, writeFile } from "node:fs/promises";
import { extname, join } from "node:path";
import type { Vec3 } from "../../../precomputed/array.js";
import { PipelineError } from "../errors.js";
import { openStack, readLabels } from "../ingest.js";
import type { Progress } from "../progress.js";
import { tempPathFor } from "../tiff.js";
import { evaluate, formatReport, parseClasses, parseSlices, type EvalReport } from "./eval.js";
import { checkMinAreas, checkThresholds, loadModelInfo } from "./model.js";
import type { RunnerOptions } from "./pool.js";
import { DEFAULT_MODEL_PATH, segmentSections, type ResampleMode, type SegmentStats } from "./segment.js";
import { TiffPageWriter } from "./tiff-stream.js";
import type { TtaMode } from "./tta.js";

export interface SegmentCommandOptions {
  image: string;
  voxelNm: Vec3;
  out: string;
  model?: string;
  /** A folder (one `<class>.tif` per class) or a `.tif` file (ImageJ hyperstack, channels = classes). */
  probabilities?: string;
  /** Decision thresholds instead of the model's (segment.ts `decide`); empty: plain argmax. */
  thresholds?: ReadonlyMap<string, number>;
  /** Least fragment areas per class (nm^2) instead of the model's; empty: none. */
  minAreaNm2?: ReadonlyMap<string, number>;
  tta?: TtaMode;
  /** segment.ts `inferenceGrid`: "auto" (default) or "none". */
  resample?: ResampleMode;
  tile?: number;
  overlap?: number;
  runner?: RunnerOptions;
  progress?: Progress;
}

const isTiffName = (p: string) => [".tif", ".tiff"].includes(extname(p).toLowerCase());

/**
 * Streams the stack: sections are read, segmented and written one at a time (class pages and probability
 * pages go straight to their TIFFs), so memory holds a few sections whatever the stack's depth.
 */
export async function segmentCommand(o: SegmentCommandOptions): Promise<SegmentStats> {
  if (!isTiffName(o.out)) throw new PipelineError("bad_argument", "expected a .tif file name for the class volume", "--out");
  // The model and every section header are checked before any pixel is decoded or file created.
  const model = await loadModelInfo(o.model ?? DEFAULT_MODEL_PATH);
  checkThresholds(model, o.thresholds);
  checkMinAreas(model, o.minAreaNm2);
  const reader = await openStack(o.image, "image");
  const [W, H, D] = reader.shape;
  const C = model.codes.length;
  const pixelNm: [number, number] = [o.voxelNm[0], o.voxelNm[1]];
  const stackDesc = (pages: number, extra = "") => `ImageJ=1.11a\nimages=${pages}\n${extra}unit=nm\nspacing=${o.voxelNm[2]}\nloop=false\n`;
  const writers: TiffPageWriter[] = [];
  try {
    const classes = await TiffPageWriter.open(o.out, W, H, D, stackDesc(D, `slices=${D}\n`), pixelNm);
    writers.push(classes);
    let probs: (planes: Uint8Array[]) => Promise<void> = async () => undefined;
    if (o.probabilities !== undefined) {
      const target = o.probabilities;
      if (isTiffName(target)) {
        // One ImageJ hyperstack, channel fastest (ImageJ's czt order): page z * C + k is class k of section z.
        const hyper = await TiffPageWriter.open(target, W, H, C * D, stackDesc(C * D, `channels=${C}\nslices=${D}\nhyperstack=true\nmode=grayscale\n`), pixelNm);
        writers.push(hyper);
        probs = async (planes) => {
          for (const p of planes) await hyper.write(p);
        };
      } else {
        await mkdir(target, { recursive: true }).catch((e: unknown) => {
          throw new PipelineError("bad_argument", `cannot create folder: ${e instanceof Error ? e.message : String(e)}`, "--probabilities");
        });
        const perClass: TiffPageWriter[] = [];
        for (const name of model.classNames) perClass.push(await TiffPageWriter.open(join(target, `${name}.tif`), W, H, D, stackDesc(D, `slices=${D}\n`), pixelNm));
        writers.push(...perClass);
        probs = async (planes) => {
          for (let k = 0; k < C; k++) await (perClass[k] as TiffPageWriter).write(planes[k] as Uint8Array);
        };
      }
    }
    const stats = await segmentSections(
      { shape: reader.shape, read: async (z) => (await reader.read(z, z + 1)) as Uint8Array | Uint16Array },
      async (_z, plane, planes) => {
        await classes.write(plane);
        if (planes) await probs(planes);
      },
      { model, tile: o.tile, overlap: o.overlap, runner: o.runner, progress: o.progress, probabilities: o.probabilities !== undefined, thresholds: o.thresholds, minAreaNm2: o.minAreaNm2, pixelNm, tta: o.tta, resample: o.resample },
    );
    for (const w of writers) await w.close();
    return stats;
  } catch (e) {
    await Promise.all(writers.map((w) => w.abort()));
    throw e;
  }
}

/** Above this share of their classes' pixels, the minimum areas' summary says to check the pixel size. */
export const MIN_AREA_WARN_SHARE = 0.2;

/**
 * What the minimum areas removed, as one line (undefined when none applied). A pixel size given in the wrong unit
 * makes the areas huge in pixels and removes real organelles: a large share is said loudly.
 */
export function minAreaSummary(stats: SegmentStats): string | undefined {
  const rules = Object.entries(stats.minAreaNm2);
  if (rules.length === 0) return undefined;
  const { fragments, pixels, ofPixels } = stats.minAreaRemoved;
  const share = ofPixels > 0 ? pixels / ofPixels : 0;
  const warn = share > MIN_AREA_WARN_SHARE ? `; more than ${100 * MIN_AREA_WARN_SHARE}%: is --voxel the pixel size in nm? (--min-area none keeps every fragment)` : "";
  return `minimum areas (${rules.map(([c, a]) => `${c} ${a} nm^2`).join(", ")}): ${fragments} fragments removed, ${(100 * share).toFixed(1)}% of those classes' pixels${warn}`;
}

export interface EvalCommandOptions {
  pred: string;
  truth: string;
  classes?: string;
  slices?: string;
  json?: string;
}

export async function evalCommand(o: EvalCommandOptions): Promise<{ report: EvalReport; text: string }> {
  const classes = o.classes === undefined ? undefined : parseClasses(o.classes);
  const [pred, truth] = await Promise.all([readLabels(o.pred), readLabels(o.truth)]);
  const slices = o.slices === undefined ? undefined : parseSlices(o.slices, pred.shape[2]);
  const report = evaluate({ pred, truth, predPath: o.pred, truthPath: o.truth, classes, slices });
  if (o.json !== undefined) await writeJsonAtomic(o.json, report);
  return { report, text: formatReport(report) };
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 1)}\n`);
    await rename(tmp, path);
  } catch (e) {
    throw new PipelineError("stage_failed", `cannot write JSON: ${e instanceof Error ? e.message : String(e)}`, path, { cause: e });
  }
}
