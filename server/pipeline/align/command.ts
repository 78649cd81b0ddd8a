/**
 * The `align` and `align-eval` commands: read a stack, align it, write OUT.tif plus OUT.align.json
 * (the report, with every flagged section and what was done instead), both atomically.
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { PipelineError } from "../errors.js";
import { readStack } from "../ingest.js";
import { silentProgress, type Progress } from "../progress.js";
import { tempPathFor, writeTiffStack } from "../tiff.js";
import { alignStack, type AlignOptions, type AlignReport } from "./align.js";
import { evaluateAlignment, type EvalResult } from "./evaluate.js";

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 1)}\n`);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new PipelineError("stage_failed", `cannot write: ${e instanceof Error ? e.message : String(e)}`, path, { cause: e });
  }
}

/** OUT.tif -> OUT.align.json (the report sits beside the stack it describes). */
export function reportPathFor(out: string): string {
  return `${out.replace(/\.tiff?$/i, "")}.align.json`;
}

export interface AlignCommandResult {
  report: AlignReport;
  reportPath: string;
  maxRssMiB: number;
}

export async function alignCommand(args: { image: string; out: string; progress?: Progress; options?: AlignOptions }): Promise<AlignCommandResult> {
  const progress = args.progress ?? silentProgress;
  if (!/\.tiff?$/i.test(args.out)) throw new PipelineError("bad_argument", "expected a .tif or .tiff output name", args.out);
  const { volume } = await readStack(args.image, {
    onProgress: (done, total) => {
      if (done === 1 || total <= 1) progress.start("read", total, "slices");
      progress.update(done);
      if (done === total) progress.end();
    },
  });
  const { aligned, report } = await alignStack(volume, { ...args.options, progress, file: args.image });
  const reportPath = reportPathFor(args.out);
  // The report first: a stack without its flags could be mistaken for a clean alignment.
  await writeJsonAtomic(reportPath, { image: args.image, ...report });
  await writeTiffStack(args.out, aligned);
  return { report, reportPath, maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
}

export async function alignEvalCommand(args: { data: string; sections: number; seed: number; json?: string; progress?: Progress }): Promise<EvalResult> {
  const { volume } = await readStack(args.data);
  if (volume.shape[2] < 3) throw new PipelineError("bad_input", `align-eval needs at least 3 sections, found ${volume.shape[2]}`, args.data);
  const result = await evaluateAlignment(volume, { sections: args.sections, seed: args.seed, progress: args.progress });
  if (args.json) await writeJsonAtomic(args.json, { data: args.data, ...result });
  return result;
}

/** The few lines the CLI prints after align-eval. */
export function summariseEval(r: EvalResult): string {
  const row = (name: string, s: EvalResult["elastic"]): string =>
    `${name.padEnd(12)} warp recovery ${s.warpRecovery.medianPx.toFixed(3)} / ${s.warpRecovery.p95Px.toFixed(3)} px (exact ${s.exactRecovery.medianPx.toFixed(3)} / ${s.exactRecovery.p95Px.toFixed(3)})   ` +
    `adjacent ${s.adjacentConsistency.medianPx.toFixed(3)} / ${s.adjacentConsistency.p95Px.toFixed(3)} px   ` +
    `(vs align(unwarped) ${s.adjacentVsUnwarped.medianPx.toFixed(3)} / ${s.adjacentVsUnwarped.p95Px.toFixed(3)})   ` +
    `NCC ${s.ncc.mean.toFixed(3)}   ${s.megapixelsPerSecond.toFixed(3)} Mpx/s${s.flagged.length ? `   flagged ${s.flagged.join(",")}` : ""}`;
  return [
    `${r.sections} sections, ${r.crop[0]}x${r.crop[1]} crop, seed ${r.seed}; median / p95`,
    row("elastic", r.elastic),
    row("affine-only", r.affineOnly),
    `floor for adjacent consistency (align(unwarped) vs original): ${r.elastic.unwarpedVsOriginal.medianPx.toFixed(3)} / ${r.elastic.unwarpedVsOriginal.p95Px.toFixed(3)} px`,
    `original neighbours: shift ${r.elastic.originalNeighbourShift.medianPx.toFixed(3)} / ${r.elastic.originalNeighbourShift.p95Px.toFixed(3)} px, NCC ${r.nccOriginal.mean.toFixed(3)}; warped NCC ${r.nccWarped.mean.toFixed(3)}`,
    `peak RSS ${r.maxRssMiB} MiB`,
  ].join("\n");
}
