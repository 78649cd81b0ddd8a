/** Command-line options of segment/train, checked with errors that name the option. */
import { availableParallelism } from "node:os";
import { PipelineError } from "../errors.js";
import { defaultRunnerOptions, type RunnerOptions } from "./pool.js";
import { checkResample, type ResampleMode } from "./segment.js";
import { checkTta, type TtaMode } from "./tta.js";

type Raw = string | boolean | (string | boolean)[] | undefined;

export function intOption(raw: Raw, option: string, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min) throw new PipelineError("bad_argument", `expected an integer >= ${min}, got '${String(raw)}'`, option);
  return n;
}

/** A finite number above 0, or from 0 with `zero` (e.g. --ema 0: off). */
export function numberOption(raw: Raw, option: string, zero = false): number | undefined {
  if (raw === undefined) return undefined;
  const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zero)) throw new PipelineError("bad_argument", `expected ${zero ? "a number >= 0" : "a positive number"}, got '${String(raw)}'`, option);
  return n;
}

/** --resample auto|none. */
export function resampleOption(raw: Raw): ResampleMode | undefined {
  return raw === undefined ? undefined : checkResample(String(raw));
}

/** --tta none|flips|d4. */
export function ttaOption(raw: Raw): TtaMode | undefined {
  return raw === undefined ? undefined : checkTta(raw);
}

/**
 * --thresholds mito=0.6,er=0.5 (class name = probability in (0, 1)), or "none" for plain argmax; absent: the
 * model's own. Class names are checked against the model once it is loaded.
 */
export function thresholdsOption(raw: Raw): Map<string, number> | undefined {
  return classValuesOption(raw, "--thresholds", /^[0-9.]+$/, (t) => t > 0 && t < 1, "CLASS=P[,CLASS=P...] with 0 < P < 1");
}

/**
 * --min-area mito=10000,er=2000 (class name = least fragment area in nm^2 per section), or "none"; absent: the
 * model's own. Class names are checked against the model once it is loaded.
 */
export function minAreaOption(raw: Raw): Map<string, number> | undefined {
  return classValuesOption(raw, "--min-area", /^[0-9.e+]+$/, (a) => Number.isFinite(a) && a > 0, "CLASS=NM2[,CLASS=NM2...] with areas > 0 in nm^2");
}

/** CLASS=V[,CLASS=V...] or "none" (an empty map). */
function classValuesOption(raw: Raw, option: string, number: RegExp, valid: (v: number) => boolean, expected: string): Map<string, number> | undefined {
  if (raw === undefined) return undefined;
  const text = typeof raw === "string" ? raw.trim() : "";
  if (text === "none") return new Map();
  const out = new Map<string, number>();
  for (const part of text.split(",")) {
    const m = /^([a-z]+)=(.+)$/.exec(part.trim());
    const v = m && number.test(m[2] as string) ? Number(m[2]) : NaN;
    if (!m || !valid(v)) throw new PipelineError("bad_argument", `expected ${expected}, or 'none'; got '${String(raw)}'`, option);
    out.set(m[1] as string, v);
  }
  return out;
}

/** --pixel-nm X or X,Y (nm, positive). */
export function pixelOption(raw: Raw): [number, number] | undefined {
  if (raw === undefined) return undefined;
  const parts = typeof raw === "string" ? raw.split(",").map((p) => Number(p.trim())) : [];
  if (!(parts.length === 1 || parts.length === 2) || !parts.every((v) => Number.isFinite(v) && v > 0)) {
    throw new PipelineError("bad_argument", `expected X or X,Y in nm (positive), got '${String(raw)}'`, "--pixel-nm");
  }
  return [parts[0] as number, (parts[1] ?? parts[0]) as number];
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
