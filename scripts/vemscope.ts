#!/usr/bin/env node
/** vemscope's command line (DESIGN.md's contract). Commands are a registry; each parses its own options. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { PipelineError } from "../server/pipeline/errors.js";
import { PrecomputedError } from "../precomputed/errors.js";
import { parseVoxel } from "../server/pipeline/voxel.js";
import { terminalProgress } from "./cli-progress-sink.js";

interface Command {
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  run(values: Values, positionals: string[]): Promise<number | void>;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

class UsageError extends Error {}

function required(values: Values, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v.length === 0) throw new UsageError(`missing --${name}`);
  return v;
}

const COMMANDS: Record<string, Command> = {
  run: {
    usage: "run --image IMG --voxel X,Y,Z --out DIR [--labels LABELS] [--model M.onnx] [--min-fragment-nm3 1000000] [--tta none|flips|d4] [--thresholds mito=0.85|none] [--min-area mito=10000|none] [--resample auto|none] [--no-align] [--export-tiff] [--contact-nm 30] [--block-budget VOXELS] [--blockwise] [--queue redis://HOST:PORT]",
    summary: "whole pipeline into DIR",
    options: {
      image: { type: "string" },
      voxel: { type: "string" },
      out: { type: "string" },
      labels: { type: "string" },
      model: { type: "string" },
      "min-fragment-nm3": { type: "string" },
      thresholds: { type: "string" },
      "min-area": { type: "string" },
      tta: { type: "string" },
      resample: { type: "string" },
      "no-align": { type: "boolean" },
      "export-tiff": { type: "boolean" },
      "contact-nm": { type: "string" },
      "block-budget": { type: "string" },
      blockwise: { type: "boolean" },
      queue: { type: "string" },
    },
    async run(v) {
      const { runPipeline } = await import("../server/pipeline/run.js");
      const contact = v["contact-nm"];
      const contactNm = typeof contact === "string" ? Number(contact) : 30;
      if (!Number.isFinite(contactNm) || contactNm < 0) throw new UsageError(`--contact-nm: expected a non-negative number, got '${String(contact)}'`);
      const frag = v["min-fragment-nm3"];
      const minFragmentNm3 = typeof frag === "string" ? Number(frag) : undefined;
      if (minFragmentNm3 !== undefined && !(Number.isFinite(minFragmentNm3) && minFragmentNm3 >= 0)) {
        throw new UsageError(`--min-fragment-nm3: expected a non-negative volume in nm^3, got '${String(frag)}'`);
      }
      const out = required(v, "out");
      // Loaded only when given: cli-options pulls in onnxruntime, which `run --labels` never needs.
      const seg = v.tta !== undefined || v.thresholds !== undefined || v["min-area"] !== undefined || v.resample !== undefined ? await import("../server/pipeline/segment/cli-options.js") : undefined;
      const thresholds = seg?.thresholdsOption(v.thresholds);
      const minAreas = seg?.minAreaOption(v["min-area"]);
      const result = await runPipeline({
        image: required(v, "image"),
        labels: typeof v.labels === "string" ? v.labels : undefined,
        model: typeof v.model === "string" ? v.model : undefined,
        minFragmentNm3,
        tta: seg?.ttaOption(v.tta),
        resample: seg?.resampleOption(v.resample),
        thresholds: thresholds && Object.fromEntries(thresholds),
        minAreaNm2: minAreas && Object.fromEntries(minAreas),
        voxelNm: parseVoxel(required(v, "voxel")),
        out,
        align: v["no-align"] !== true,
        exportTiff: v["export-tiff"] === true,
        contactNm,
        blockBudget: typeof v["block-budget"] === "string" ? Number(v["block-budget"]) : undefined,
        blockwise: v.blockwise === true ? true : undefined,
        queue: typeof v.queue === "string" ? v.queue : undefined,
        progress: terminalProgress(),
      });
      process.stdout.write(`${result.instances} instances written to ${out.startsWith("s3://") ? out : path.resolve(out)} in ${result.seconds.toFixed(1)} s\n`);
    },
  },
  phantom: {
    usage: "phantom --out DIR [--seed N] [--size X,Y,Z]",
    summary: "synthetic cell volume with analytic ground truth",
    options: { out: { type: "string" }, seed: { type: "string" }, size: { type: "string" } },
    async run(v) {
      const { makePhantom } = await import("../server/pipeline/phantom-command.js");
      const seed = typeof v.seed === "string" ? Number(v.seed) : 1;
      if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected a non-negative integer, got '${String(v.seed)}'`);
      const out = required(v, "out");
      const summary = await makePhantom({ out, seed, size: typeof v.size === "string" ? v.size : undefined, progress: terminalProgress() });
      process.stdout.write(`${summary}\n`);
    },
  },
  align: {
    usage: "align --image IMG --out OUT.tif",
    summary: "coarse (features + RANSAC affine) + elastic (patch correlation, spring mesh) alignment; slice 0 stays fixed; report in OUT.align.json",
    options: { image: { type: "string" }, out: { type: "string" } },
    async run(v) {
      const { alignCommand } = await import("../server/pipeline/align/command.js");
      const out = required(v, "out");
      const { report, reportPath, maxRssMiB } = await alignCommand({ image: required(v, "image"), out, progress: terminalProgress() });
      for (const s of report.sections) if (s.flags.length > 0) process.stderr.write(`section ${s.index}: ${s.flags.join(", ")}${s.message ? `: ${s.message}` : ""}\n`);
      const [w, h, d] = report.shape;
      process.stdout.write(
        `${d} sections of ${w}x${h} aligned to ${path.resolve(out)} in ${report.seconds.total.toFixed(1)} s (${report.megapixelsPerSecond.toFixed(2)} Mpx/s, peak RSS ${maxRssMiB} MiB); ` +
          `${report.flagged.length} flagged; report ${path.resolve(reportPath)}\n`,
      );
    },
  },
  "align-eval": {
    usage: "align-eval [--data DIR] [--sections N] [--seed S] [--json OUT]",
    summary: "seeded affine + elastic warps of an aligned real stack: warp recovery, adjacent consistency, NCC; elastic vs affine-only",
    options: { data: { type: "string" }, sections: { type: "string" }, seed: { type: "string" }, json: { type: "string" } },
    async run(v) {
      const { alignEvalCommand, summariseEval } = await import("../server/pipeline/align/command.js");
      const sections = typeof v.sections === "string" ? Number(v.sections) : 32;
      if (!Number.isInteger(sections) || sections < 3) throw new UsageError(`--sections: expected an integer >= 3, got '${String(v.sections)}'`);
      const seed = typeof v.seed === "string" ? Number(v.seed) : 1;
      if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected a non-negative integer, got '${String(v.seed)}'`);
      const data = typeof v.data === "string" ? v.data : path.join("..", "shared", "data", "lucchi_train", "image");
      const result = await alignEvalCommand({ data, sections, seed, json: typeof v.json === "string" ? v.json : undefined, progress: terminalProgress() });
      process.stdout.write(`${summariseEval(result)}\n`);
    },
  },
  serve: {
    usage: "serve DIR [--port 8080] [--host 127.0.0.1] [--auth-reads]",
    summary: "serve DIR's layers, the viewer and the API",
    options: { port: { type: "string" }, host: { type: "string" }, "auth-reads": { type: "boolean" } },
    async run(v, positionals) {
      const dir = positionals[0];
      if (!dir) throw new UsageError("missing DIR");
      const port = typeof v.port === "string" ? Number(v.port) : 8080;
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0-65535, got '${String(v.port)}'`);
      const { serve } = await import("../server/api/serve.js");
      const host = typeof v.host === "string" ? v.host : "127.0.0.1";
      if (!existsSync(path.join(dir, "state.json"))) throw new UsageError(`${dir}: not a vemscope output folder (no state.json); run 'vemscope run' first`);
      const { url } = await serve({ root: dir, port, host, authReads: v["auth-reads"] === true ? true : undefined }).catch((e: NodeJS.ErrnoException) => {
        throw e.code === "EADDRINUSE" ? new UsageError(`--port: ${host}:${port} is already in use; pass another --port`) : e;
      });
      process.stdout.write(`vemscope serving ${path.resolve(dir)}\nviewer: ${url}\n`);
      return new Promise<number>(() => {}); // serve until interrupted
    },
  },
  segment: {
    usage: "segment --image IMG --voxel X,Y,Z --out OUT.tif [--model M.onnx] [--probabilities DIR|FILE.tif] [--thresholds mito=0.6|none] [--min-area mito=10000|none] [--tta none|flips|d4] [--resample auto|none] [--tile 1024] [--overlap 192] [--workers N] [--threads N]",
    summary: "class volume (uint8, codes 0-6) from the 2D U-Net; optional per-class probabilities (uint8)",
    options: {
      image: { type: "string" },
      voxel: { type: "string" },
      out: { type: "string" },
      model: { type: "string" },
      probabilities: { type: "string" },
      thresholds: { type: "string" },
      "min-area": { type: "string" },
      tta: { type: "string" },
      resample: { type: "string" },
      tile: { type: "string" },
      overlap: { type: "string" },
      workers: { type: "string" },
      threads: { type: "string" },
    },
    async run(v) {
      const { minAreaSummary, segmentCommand } = await import("../server/pipeline/segment/command.js");
      const { intOption, minAreaOption, resampleOption, runnerOption, thresholdsOption, ttaOption } = await import("../server/pipeline/segment/cli-options.js");
      const out = required(v, "out");
      const stats = await segmentCommand({
        image: required(v, "image"),
        voxelNm: parseVoxel(required(v, "voxel")),
        out,
        model: typeof v.model === "string" ? v.model : undefined,
        probabilities: typeof v.probabilities === "string" ? v.probabilities : undefined,
        thresholds: thresholdsOption(v.thresholds),
        minAreaNm2: minAreaOption(v["min-area"]),
        tta: ttaOption(v.tta),
        resample: resampleOption(v.resample),
        tile: intOption(v.tile, "--tile", 16),
        overlap: intOption(v.overlap, "--overlap", 0),
        runner: runnerOption(v.workers, v.threads),
        progress: terminalProgress(),
      });
      const rate = stats.megapixels / stats.seconds;
      process.stdout.write(
        `${stats.sections} sections (${stats.megapixels.toFixed(1)} Mpx, ${stats.tiles} tiles of ${stats.tileSize.join("x")}${stats.tta === "none" ? "" : `, tta ${stats.tta}`}, ${stats.runner}) segmented in ${stats.seconds.toFixed(1)} s = ${rate.toFixed(2)} Mpx/s -> ${path.resolve(out)}\n`,
      );
      if (stats.resampledTo) {
        const r = stats.resampledTo;
        process.stdout.write(`inferred resampled to ${r.width}x${r.height} (${r.pixelNm.map((p) => p.toFixed(2)).join(" x ")} nm pixels, the model's training range; --resample none to infer as given)\n`);
      }
      const areas = minAreaSummary(stats);
      if (areas !== undefined) process.stdout.write(`${areas}\n`);
    },
  },
  quantize: {
    usage: "quantize --model IN.onnx --calibrate IMG[,IMG...] --out OUT.onnx [--sections 8] [--python /usr/bin/python3]",
    summary: "int8 copy of a segmentation model (faster on CPU), calibrated on sections like those it will segment",
    options: {
      model: { type: "string" },
      calibrate: { type: "string" },
      out: { type: "string" },
      sections: { type: "string" },
      python: { type: "string" },
    },
    async run(v) {
      const { quantizeModel } = await import("../server/pipeline/segment/quantize.js");
      const { intOption } = await import("../server/pipeline/segment/cli-options.js");
      const r = await quantizeModel({
        model: required(v, "model"),
        calibrate: required(v, "calibrate").split(",").filter((s) => s.length > 0),
        out: required(v, "out"),
        sections: intOption(v.sections, "--sections", 1),
        python: typeof v.python === "string" ? v.python : undefined,
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`int8 model -> ${path.resolve(r.out)}: calibrated on ${r.crops} crops (${(r.pixels / 1e6).toFixed(1)} Mpx); most probable class as the float model's on ${(100 * r.agreement).toFixed(2)}% of their pixels\n`);
    },
  },
  eval: {
    usage: "eval --pred P --truth T [--classes mito,er] [--slices 47-54] [--json OUT.json]",
    summary: "Dice and IoU per class, per section and overall (class volumes, or binary masks with one --classes)",
    options: { pred: { type: "string" }, truth: { type: "string" }, classes: { type: "string" }, slices: { type: "string" }, json: { type: "string" } },
    async run(v) {
      const { evalCommand } = await import("../server/pipeline/segment/command.js");
      const str = (k: string) => (typeof v[k] === "string" ? (v[k] as string) : undefined);
      const { text } = await evalCommand({ pred: required(v, "pred"), truth: required(v, "truth"), classes: str("classes"), slices: str("slices"), json: str("json") });
      process.stdout.write(text);
    },
  },
  train: {
    usage:
      "train (--data SPEC.json | --images DIR (--masks CLASS=DIR ... | --labels VOL)) --out DIR [--pixel-nm X[,Y]] [--iters N] [--minutes M] [--seed S] [--resume] [--crop 192] [--batch 8] [--val-every 250] [--threads N] [--augment standard|domain] [--ema 0.999|0] [--init WEIGHTS.pt [--adapt CLASS[,CLASS]=DIR ...]]",
    summary: "train the 2D U-Net with scripts/train/train.py (needs python3-torch, python3-onnx); exports DIR/model.onnx",
    options: {
      data: { type: "string" },
      images: { type: "string" },
      masks: { type: "string", multiple: true },
      labels: { type: "string" },
      out: { type: "string" },
      "pixel-nm": { type: "string" },
      iters: { type: "string" },
      minutes: { type: "string" },
      seed: { type: "string" },
      resume: { type: "boolean" },
      crop: { type: "string" },
      batch: { type: "string" },
      "val-every": { type: "string" },
      threads: { type: "string" },
      augment: { type: "string" },
      ema: { type: "string" },
      init: { type: "string" },
      adapt: { type: "string", multiple: true },
    },
    async run(v) {
      const { runTraining, trainPrinter } = await import("./train/command.js");
      const { intOption, numberOption, pixelOption } = await import("../server/pipeline/segment/cli-options.js");
      const printer = trainPrinter();
      const str = (k: string) => (typeof v[k] === "string" ? (v[k] as string) : undefined);
      const strs = (k: string) => (Array.isArray(v[k]) ? (v[k] as unknown[]).filter((m): m is string => typeof m === "string") : undefined);
      try {
        const result = await runTraining({
          out: required(v, "out"),
          data: str("data"),
          images: str("images"),
          masks: strs("masks"),
          labels: str("labels"),
          pixelNm: pixelOption(v["pixel-nm"]),
          iters: intOption(v.iters, "--iters", 1),
          minutes: numberOption(v.minutes, "--minutes"),
          seed: intOption(v.seed, "--seed", 0),
          resume: v.resume === true,
          crop: intOption(v.crop, "--crop", 16),
          batch: intOption(v.batch, "--batch", 1),
          valEvery: intOption(v["val-every"], "--val-every", 1),
          threads: intOption(v.threads, "--threads", 1),
          augment: str("augment"),
          ema: numberOption(v.ema, "--ema", true),
          init: str("init"),
          adapt: strs("adapt"),
          onEvent: (e) => printer.onEvent(e),
        });
        printer.stop();
        process.stdout.write(`model: ${path.resolve(result.model.path)} (spec ${result.spec})\n`);
        if (result.int8 !== undefined) process.stdout.write(`int8 copy for faster CPU inference: ${path.resolve(result.int8)}\n`);
      } finally {
        printer.stop();
      }
    },
  },
  token: {
    usage: "token create DIR --user NAME --role viewer|editor|admin",
    summary: "a bearer token for DIR's server (printed once; stored hashed in DIR/.vemscope/)",
    options: { user: { type: "string" }, role: { type: "string" } },
    async run(v, positionals) {
      const { tokenCommand } = await import("../server/edits/token-command.js");
      const user = typeof v.user === "string" ? v.user : undefined;
      const role = typeof v.role === "string" ? v.role : undefined;
      let token: string;
      try {
        token = tokenCommand(positionals[0], positionals[1], user, role);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      process.stdout.write(`${token}\n`);
    },
  },
  worker: {
    usage: "worker --queue redis://HOST:PORT [--concurrency N] [--queue-name NAME] [--lock-ms MS (default 300000)] | worker --queue URL --dead-letters [--run ID]",
    summary: "run queued tasks (see README, Scale-out) until interrupted; or list the tasks that failed for good",
    options: {
      queue: { type: "string" },
      concurrency: { type: "string" },
      "queue-name": { type: "string" },
      "lock-ms": { type: "string" },
      "dead-letters": { type: "boolean" },
      run: { type: "string" },
    },
    async run(v) {
      const { workerCommand } = await import("../server/jobs/worker-command.js");
      const str = (name: string) => (typeof v[name] === "string" ? (v[name] as string) : undefined);
      const opts = { queue: str("queue"), concurrency: str("concurrency"), queueName: str("queue-name"), lockMs: str("lock-ms"), run: str("run") };
      try {
        return await workerCommand({ ...opts, deadLetters: v["dead-letters"] === true, out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) });
      } catch (e) {
        if ((e as { name?: string; code?: string }).name === "JobError" && (e as { code?: string }).code === "invalid_argument") throw new UsageError((e as Error).message);
        if ((e as { name?: string }).name === "JobError") {
          process.stderr.write(`vemscope worker: ${(e as Error).message}\n`);
          return 1;
        }
        throw e;
      }
    },
  },
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([, c]) => `  ${c.usage}\n      ${c.summary}`);
  return `usage: npm run --silent vemscope -- <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(help());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`vemscope: unknown command '${name}'\n${help()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    return (await command.run(values, positionals)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`vemscope ${name}: ${(e as Error).message}\nusage: vemscope ${command.usage}\n`);
      return 2;
    }
    if (e instanceof PipelineError || e instanceof PrecomputedError) {
      process.stderr.write(`vemscope ${name}: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`vemscope ${name}: unexpected failure: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
