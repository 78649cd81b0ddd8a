/**
 * `vemscope train`: drives scripts/train/train.py (pack, then fit) with the system Python, turns its
 * JSON-lines output into events (the CLI draws them as a progress bar), and turns Python failures into
 * one-line PipelineErrors that say what to install or which input is wrong.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { createInterface } from "node:readline";
import cliProgress from "cli-progress";
import { classByName } from "../../server/pipeline/classes.js";
import { PipelineError } from "../../server/pipeline/errors.js";
import { loadModelInfo, type ModelInfo } from "../../server/pipeline/segment/model.js";
import { tempPathFor } from "../../server/pipeline/tiff.js";
import { REPO_ROOT } from "../../server/repo-root.js";
import { quantizeModel } from "../../server/pipeline/segment/quantize.js";

export const TRAIN_PY = path.join(REPO_ROOT, "scripts", "train", "train.py");
export const DEFAULT_PYTHON = "/usr/bin/python3";
/** train.py's AUGMENTATIONS, checked here so a typo fails before minutes of packing. */
export const AUGMENT_PROFILES = ["standard", "domain"];
const INSTALL_HINT = "apt-get install python3-torch python3-onnx python3-tifffile python3-skimage";

export interface TrainOptions {
  out: string;
  /** A training spec ({"sources": [...]}, see train.py); or the simple form below, written to OUT/spec.json. */
  data?: string;
  images?: string;
  /** "CLASS=DIR" per annotated class (binary masks, nonzero = the class). */
  masks?: string[];
  /** A class volume (codes 0-6) annotating every class. */
  labels?: string;
  /** Pixel size (x, y) in nm of the simple form's images: lets the fit choose minimum fragment areas (train.py). */
  pixelNm?: [number, number];
  iters?: number;
  minutes?: number;
  seed?: number;
  /** Continue from OUT/checkpoint.pt (and OUT/data.npz) instead of starting afresh. */
  resume?: boolean;
  /**
   * Start from these weights (a shipped models/*.pt or another fit's best.pt) with a fresh optimiser, in their
   * architecture: fine-tuning the shipped model on one's own annotations needs far fewer iterations than a new fit.
   */
  init?: string;
  /**
   * "CLASS[,CLASS]=DIR" per stack of unannotated images of the data to adapt to (another microscope): --init's model
   * labels them where it is sure (train.py `pseudo_label`) and the fit trains on those labels with the annotated
   * sources (self-training). Needs --init.
   */
  adapt?: string[];
  crop?: number;
  batch?: number;
  valEvery?: number;
  /** Iterations between progress events (train.py's default 10). */
  logEvery?: number;
  threads?: number;
  /** train.py's augmentation profile: "standard", or "domain" for a model meant for microscopes the data do not cover. */
  augment?: string;
  /**
   * Decay of a moving average of the weights that is validated, chosen and exported instead of the raw weights
   * (train.py `ema_update`); absent: train.py's default, 0.999; 0: the raw weights.
   */
  ema?: number;
  python?: string;
  onEvent?: (e: TrainEvent) => void;
}

/** One JSON line from train.py: {"event": "iter" | "val" | "packed" | ..., ...}. */
export type TrainEvent = { event: string } & Record<string, unknown>;

export interface TrainResult {
  model: ModelInfo;
  /** Its int8 copy (model-int8.onnx), calibrated on the training images. */
  int8?: string;
  spec: string;
  last: TrainEvent | undefined;
}

/** The spec for the simple form: one source from --images with --masks or --labels. */
export function buildSpec(o: Pick<TrainOptions, "images" | "masks" | "labels" | "pixelNm">): { sources: Record<string, unknown>[] } {
  if (!o.images) throw new PipelineError("bad_argument", "give --data SPEC.json, or --images with --masks CLASS=DIR or --labels VOL", "--images");
  const hasMasks = (o.masks?.length ?? 0) > 0;
  if (hasMasks === (o.labels !== undefined)) throw new PipelineError("bad_argument", "give either --masks CLASS=DIR (one or more) or --labels VOL with --images", hasMasks ? "--labels" : "--masks");
  const source: Record<string, unknown> = { name: path.basename(path.resolve(o.images)), images: existing(o.images, "--images") };
  if (o.labels !== undefined) source.labels = existing(o.labels, "--labels");
  else {
    const masks: Record<string, string> = {};
    for (const m of o.masks ?? []) {
      const eq = m.indexOf("=");
      const name = m.slice(0, eq);
      if (eq < 1 || !classByName(name)) throw new PipelineError("bad_argument", `expected CLASS=DIR with CLASS one of er, mito, ld, lyso, perox, nucleus, got '${m}'`, "--masks");
      if (masks[name]) throw new PipelineError("bad_argument", `class ${name} given twice`, "--masks");
      masks[name] = existing(m.slice(eq + 1), "--masks");
    }
    source.masks = masks;
  }
  if (o.pixelNm !== undefined) source.pixel_nm = o.pixelNm;
  return { sources: [source] };
}

function existing(p: string, option: string): string {
  if (!existsSync(p)) throw new PipelineError("bad_input", "no such file or folder", `${option} ${p}`);
  return path.resolve(p);
}

/** --adapt's sources ("CLASS[,CLASS]=DIR"): images only, pseudo-labelled for those classes by train.py's fit. */
export function adaptSources(adapt: string[]): Record<string, unknown>[] {
  return adapt.map((a) => {
    const eq = a.indexOf("=");
    const classes = eq < 1 ? [] : [...new Set(a.slice(0, eq).split(","))];
    if (classes.length === 0 || classes.some((c) => c === "background" || !classByName(c))) {
      throw new PipelineError("bad_argument", `expected CLASS[,CLASS]=DIR with CLASS one of er, mito, ld, lyso, perox, nucleus, got '${a}'`, "--adapt");
    }
    const images = existing(a.slice(eq + 1), "--adapt");
    return { name: `${path.basename(images)}-unlabelled`, images, unlabelled: classes };
  });
}

export async function runTraining(o: TrainOptions): Promise<TrainResult> {
  const python = o.python ?? DEFAULT_PYTHON;
  if (o.augment !== undefined && !AUGMENT_PROFILES.includes(o.augment)) {
    throw new PipelineError("bad_argument", `expected one of ${AUGMENT_PROFILES.join(", ")}, got '${o.augment}'`, "--augment");
  }
  if (o.ema !== undefined && !(o.ema >= 0 && o.ema < 1)) throw new PipelineError("bad_argument", `expected a decay in [0, 1) (0: the raw weights), got ${o.ema}`, "--ema");
  if (o.init !== undefined && !existsSync(o.init)) throw new PipelineError("bad_input", "no such file", `--init ${o.init}`);
  const adapt = adaptSources(o.adapt ?? []);
  if (adapt.length > 0 && o.init === undefined) {
    throw new PipelineError("bad_argument", "needs --init WEIGHTS.pt: that model's confident answers on the unlabelled images become their labels", "--adapt");
  }
  await mkdir(o.out, { recursive: true }).catch((e: unknown) => {
    throw new PipelineError("bad_argument", `cannot create folder: ${e instanceof Error ? e.message : String(e)}`, "--out");
  });
  const sources = o.data !== undefined ? await checkSpec(o.data) : buildSpec(o).sources;
  // Given a spec and --adapt, the spec trained on is OUT/spec.json: the given one's sources and the unlabelled ones.
  const given = adapt.length === 0 ? o.data : undefined;
  const spec = given ?? path.join(o.out, "spec.json");
  if (given === undefined) {
    const tmp = tempPathFor(spec);
    await writeFile(tmp, `${JSON.stringify({ sources: [...sources, ...adapt] }, null, 1)}\n`);
    await rename(tmp, spec);
  }
  await checkPython(python);
  const packed = path.join(o.out, "data.npz");
  if (!(o.resume && existsSync(packed))) {
    await runPython(python, ["pack", "--spec", spec, "--out", packed], o.onEvent);
  }
  const num = (flag: string, v: number | undefined) => (v === undefined ? [] : [flag, String(v)]);
  const fitArgs = [
    "fit", "--data", packed, "--out", o.out,
    ...num("--iters", o.iters), ...num("--minutes", o.minutes), ...num("--seed", o.seed), ...num("--crop", o.crop),
    ...num("--batch", o.batch), ...num("--val-every", o.valEvery), ...num("--log-every", o.logEvery), ...num("--threads", o.threads),
    ...(o.augment === undefined ? [] : ["--augment", o.augment]),
    ...num("--ema", o.ema),
    ...(o.init === undefined ? [] : ["--init", path.resolve(o.init)]),
    ...(o.resume ? [] : ["--fresh"]),
  ];
  const last = await runPython(python, fitArgs, o.onEvent);
  const modelPath = path.join(o.out, "model.onnx");
  if (!existsSync(modelPath)) throw new PipelineError("stage_failed", "training ended without exporting a model (no validation ran?)", modelPath);
  // The int8 copy (`vemscope quantize`), calibrated on the training images: 1.4-1.8x faster inference on CPU at
  // the same Dice for the shipped model (README, "int8 model").
  const images = ((JSON.parse(await readFile(spec, "utf8")) as { sources: { images?: unknown }[] }).sources ?? [])
    .map((src) => src.images)
    .filter((p): p is string => typeof p === "string");
  let int8: string | undefined;
  if (images.length > 0) {
    // Hours of training must not end in an error for want of the copy: a failure is reported, the float model stays.
    try {
      const q = await quantizeModel({ model: modelPath, calibrate: images, out: path.join(o.out, "model-int8.onnx"), python });
      o.onEvent?.({ event: "quantized", out: q.out, argmax_agreement: q.agreement });
      int8 = q.out;
    } catch (e) {
      o.onEvent?.({ event: "quantize_failed", message: e instanceof Error ? e.message : String(e) });
    }
  }
  return { model: await loadModelInfo(modelPath), int8, spec, last };
}

async function checkSpec(spec: string): Promise<unknown[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(spec, "utf8"));
  } catch (e) {
    const missing = e instanceof Error && "code" in e && e.code === "ENOENT";
    throw new PipelineError("bad_input", missing ? "file not found" : `not a JSON training spec: ${e instanceof Error ? e.message : String(e)}`, spec, { cause: e });
  }
  const sources = (parsed as { sources?: unknown }).sources;
  if (!Array.isArray(sources) || sources.length === 0) throw new PipelineError("bad_input", "spec needs a non-empty \"sources\" list", spec);
  return sources;
}

/** Fails with the install command when Python or one of train.py's modules is missing. */
async function checkPython(python: string): Promise<void> {
  const { code, stderr } = await collect(python, ["-c", "import numpy, torch, onnx, tifffile, skimage"]);
  if (code === 0) return;
  const missing = /No module named '([^']+)'/.exec(stderr)?.[1];
  throw new PipelineError(
    "stage_failed",
    missing ? `Python module '${missing}' is missing; install the training dependencies: ${INSTALL_HINT}` : `cannot run Python (${lastLine(stderr) || `exit ${code}`}); install: apt-get install python3 and ${INSTALL_HINT}`,
    python,
  );
}

function collect(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (e) => resolve({ code: -1, stderr: e.message }));
    child.on("close", (code) => resolve({ code: code ?? -1, stderr }));
  });
}

function lastLine(text: string): string {
  return text.trim().split("\n").filter((l) => l.trim().length > 0).pop()?.trim() ?? "";
}

/** Runs train.py; JSON lines become events; on failure, train.py's own message or Python's last line. */
function runPython(python: string, args: string[], onEvent?: (e: TrainEvent) => void): Promise<TrainEvent | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [TRAIN_PY, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });
    let stderr = "";
    let last: TrainEvent | undefined;
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20000);
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (!line.startsWith("{")) return;
      try {
        const e: unknown = JSON.parse(line);
        if (typeof e === "object" && e !== null && typeof (e as { event?: unknown }).event === "string") {
          last = e as TrainEvent;
          onEvent?.(last);
        }
      } catch {
        // a stray line that merely starts with "{" is not an event
      }
    });
    child.on("error", (e) => reject(new PipelineError("stage_failed", `cannot start Python: ${e.message}; install: apt-get install python3 and ${INSTALL_HINT}`, python, { cause: e })));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve(last);
      const ours = stderr.split("\n").find((l) => l.startsWith("vemscope train: "));
      const missing = /No module named '([^']+)'/.exec(stderr)?.[1];
      const why = ours
        ? ours.slice("vemscope train: ".length)
        : missing
          ? `Python module '${missing}' is missing; install: ${INSTALL_HINT}`
          : `train.py ${args[0]} failed (${signal ?? `exit ${code}`}): ${lastLine(stderr)}`;
      reject(new PipelineError("stage_failed", why, `train.py ${args[0]}`));
    });
  });
}

/** The CLI's view of training: a bar with loss and train.py's ETA on a terminal, one line per validation otherwise. */
export function trainPrinter(stream: NodeJS.WriteStream = process.stderr): { onEvent(e: TrainEvent): void; stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  let lastTenth = -1;
  const tty = stream.isTTY === true;
  const say = (s: string) => {
    if (bar) bar.stop();
    bar = undefined;
    stream.write(`${s}\n`);
  };
  return {
    onEvent(e) {
      const n = (k: string) => (typeof e[k] === "number" ? (e[k] as number) : 0);
      if (e.event === "packed") say(`packed ${String(e.source)}: ${JSON.stringify(e.shape)} (${n("train")} train / ${n("val")} val sections; ${(e.known as string[] | undefined)?.join(", ") ?? ""})`);
      else if (e.event === "pseudo_labelled") say(`pseudo-labels for ${String(e.source)} from ${String(e.from)}: ${Object.entries((e.share as Record<string, number> | undefined) ?? {}).map(([k, v]) => `${k === "background" ? "none of them" : k} ${(100 * v).toFixed(1)}%`).join(", ")}, unsure (not trained on) ${(100 * n("unlabelled")).toFixed(1)}%`);
      else if (e.event === "resumed") say(`resumed at iteration ${n("iter")} (best score ${n("best").toFixed(4)})`);
      else if (e.event === "decision") say(`decision (chosen on the training sections): thresholds ${JSON.stringify(e.thresholds)}, minimum areas (nm^2) ${JSON.stringify(e.min_area_nm2 ?? {})}`);
      else if (e.event === "quantize_failed") say(`no int8 copy (vemscope quantize can make one later): ${String(e.message)}`);
      else if (e.event === "quantized") say(`int8 copy: most probable class as the float model's on ${(100 * n("argmax_agreement")).toFixed(2)}% of the calibration pixels`);
      else if (e.event === "iter") {
        const eta = `${Math.floor(n("eta_s") / 60)}m${String(Math.round(n("eta_s") % 60)).padStart(2, "0")}s`;
        if (!tty) {
          const tenth = Math.floor((10 * n("iter")) / Math.max(1, n("total")));
          if (tenth !== lastTenth) stream.write(`train: iteration ${n("iter")}/${n("total")}, loss ${n("loss").toFixed(4)}, eta ${eta}\n`);
          lastTenth = tenth;
          return;
        }
        if (!bar) {
          bar = new cliProgress.SingleBar({ stream, format: "train [{bar}] {value}/{total} it  loss {loss}  {spi} s/it  eta {eta}", hideCursor: true }, cliProgress.Presets.shades_classic);
          bar.start(n("total"), n("iter"), { loss: "-", eta: "-", spi: "-" });
        }
        bar.setTotal(n("total"));
        bar.update(n("iter"), { loss: n("loss").toFixed(4), eta, spi: n("s_per_iter").toFixed(2) });
      } else if (e.event === "val") say(`validation at ${n("iter")}: score ${n("score").toFixed(4)}${e.improved ? " (best, model exported)" : ` (best ${n("best").toFixed(4)})`}`);
      else if (e.event === "early_stop") say(`early stop at ${n("iter")}: no improvement`);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
