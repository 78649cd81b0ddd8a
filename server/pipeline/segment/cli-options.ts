/** Numeric command-line options of segment/train, checked with errors that name the option. */
import { availableParallelism } from "node:os";
import { PipelineError } from "../errors.js";
import { defaultRunnerOptions, type RunnerOptions } from "./pool.js";

type Raw = string | boolean | (string | boolean)[] | undefined;

export function intOption(raw: Raw, option: string, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min) throw new PipelineError("bad_argument", `expected an integer >= ${min}, got '${String(raw)}'`, option);
  return n;
}

export function numberOption(raw: Raw, option: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw new PipelineError("bad_argument", `expected a positive number, got '${String(raw)}'`, option);
  return n;
}

/**
 * --workers 0 = one in-process session (then --threads defaults to every core); without either option
 * segmentation picks by job size (defaultRunnerOptions).
 */
export function runnerOption(workers: Raw, threads: Raw): RunnerOptions | undefined {
  const w = intOption(workers, "--workers", 0);
  const t = intOption(threads, "--threads", 1);
  if (w === undefined && t === undefined) return undefined;
  const cores = availableParallelism();
  const ww = w ?? defaultRunnerOptions(cores).workers;
  return { workers: ww, threads: t ?? (ww === 0 ? cores : Math.max(1, Math.floor(cores / ww))) };
}
