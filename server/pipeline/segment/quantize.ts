/**
 * `vemscope quantize`: a static int8 copy of a segmentation model, calibrated on the user's own sections.
 * scripts/train/quantize.py edits the graph (Python's onnx package; see there for the layout and why 7-bit
 * weights); this side runs the calibration and the check in onnxruntime, the same runtime inference uses.
 *
 * Calibration: up to `sections` sections of each stack, evenly spaced, normalised as the model says, centre
 * crops of at most 512 x 512; every tensor that gets quantized records its min and max over all of them.
 * Check: float and int8 models on those crops, the share of pixels whose most probable class agrees. The model
 * card gains a `quantization` entry (calibration stacks, sections, that agreement); the int8 graph ends in a
 * softmax, so its metadata says `probabilities: true`. Nothing is written unless
 * every step succeeded; the output is written atomically.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { REPO_ROOT } from "../../repo-root.js";
import { PipelineError } from "../errors.js";
import { openStack } from "../ingest.js";
import { loadModelInfo, onnxMetadataProps, parseModelInfo, withOnnxMetadata } from "./model.js";
import { normaliseSection } from "./normalise.js";

const QUANTIZE_PY = path.join(REPO_ROOT, "scripts", "train", "quantize.py");
const MAX_CROP = 512;

export interface QuantizeOptions {
  model: string;
  /** Image stacks (TIFF or PNG folders) like those the model will segment. */
  calibrate: string[];
  out: string;
  /** Sections per stack (default 8). */
  sections?: number;
  python?: string;
  onProgress?: (line: string) => void;
}

export interface QuantizeReport {
  out: string;
  crops: number;
  pixels: number;
  /** Share of calibration pixels whose most probable class is the same in both models. */
  agreement: number;
}

export async function quantizeModel(o: QuantizeOptions): Promise<QuantizeReport> {
  const model = await loadModelInfo(o.model);
  if (model.card?.quantization !== undefined) throw new PipelineError("bad_argument", "model is already quantized", o.model);
  if (o.calibrate.length === 0) throw new PipelineError("bad_argument", "give at least one calibration stack", "--calibrate");
  const perStack = o.sections ?? 8;
  if (!Number.isInteger(perStack) || perStack < 1) throw new PipelineError("bad_argument", `expected a positive integer, got ${perStack}`, "--sections");
  if (path.extname(o.out).toLowerCase() !== ".onnx") throw new PipelineError("bad_argument", "expected an .onnx file name", "--out");
  const python = o.python ?? "/usr/bin/python3";
  const say = o.onProgress ?? (() => undefined);

  const crops = await calibrationCrops(o.calibrate, perStack, model.sizeMultiple);
  const work = await mkdtemp(path.join(tmpdir(), "vemscope-quantize-"));
  try {
    const probePath = path.join(work, "probe.onnx");
    const names = JSON.parse(await runPython(python, ["probe", o.model, probePath])) as string[];
    say(`calibrating ${names.length} tensors on ${crops.length} crops ...`);
    const ranges = await calibrate(probePath, names, crops);
    const rangesPath = path.join(work, "ranges.json");
    await writeFile(rangesPath, JSON.stringify(ranges));
    const qPath = path.join(work, "int8.onnx");
    await runPython(python, ["qdq", o.model, rangesPath, qPath]);
    say("checking the int8 model against the float one ...");
    const { agree, pixels } = await agreement(o.model, qPath, crops);
    const quantization = {
      weights: "int8 per output channel, symmetric, 7 bits",
      activations: "uint8 per tensor, calibrated min..max",
      head: "float",
      calibration: { stacks: o.calibrate, sections_per_stack: perStack, crops: crops.length, pixels },
      argmax_agreement: agree / pixels,
      from: path.basename(o.model),
    };
    // The graph quantize.py wrote carries the float model's metadata; the card (already parsed) gains the entry.
    const bytes = new Uint8Array(await readFile(qPath));
    const props = onnxMetadataProps(bytes);
    const meta = JSON.parse(props.get("vemscope") ?? "{}") as Record<string, unknown>;
    const updated = withOnnxMetadata(
      bytes,
      new Map([
        ["vemscope", JSON.stringify({ ...meta, output: String(meta.output ?? "").replace("logits", "probabilities"), probabilities: true })],
        ["model_card", JSON.stringify({ ...model.card, quantization })],
      ]),
    );
    parseModelInfo(o.out, updated); // what inference will read
    const tmp = `${o.out}.tmp-${process.pid}`;
    await writeFile(tmp, updated);
    await rename(tmp, o.out);
    return { out: o.out, crops: crops.length, pixels, agreement: quantization.argmax_agreement };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

interface Crop {
  data: Float32Array;
  w: number;
  h: number;
}

/** Normalised centre crops of evenly spaced sections of each stack. */
async function calibrationCrops(stacks: string[], perStack: number, multiple: number): Promise<Crop[]> {
  const crops: Crop[] = [];
  for (const stack of stacks) {
    const reader = await openStack(stack, "image");
    const [nx, ny, nz] = reader.shape;
    const w = Math.min(MAX_CROP, nx - (nx % multiple));
    const h = Math.min(MAX_CROP, ny - (ny % multiple));
    if (w === 0 || h === 0) throw new PipelineError("bad_input", `sections of ${nx} x ${ny} are smaller than the model's ${multiple}-pixel step`, stack);
    const n = Math.min(perStack, nz);
    for (let k = 0; k < n; k++) {
      const z = Math.floor(((k + 0.5) * nz) / n);
      const norm = normaliseSection((await reader.read(z, z + 1)) as Uint8Array | Uint16Array);
      const data = new Float32Array(w * h);
      const x0 = (nx - w) >> 1;
      const y0 = (ny - h) >> 1;
      for (let y = 0; y < h; y++) data.set(norm.subarray((y0 + y) * nx + x0, (y0 + y) * nx + x0 + w), y * w);
      crops.push({ data, w, h });
    }
  }
  return crops;
}

const feed = (s: ort.InferenceSession, c: Crop) => ({ [s.inputNames[0] as string]: new ort.Tensor("float32", c.data, [1, 1, c.h, c.w]) });

/** Min and max of every probed tensor (and of the input) over all crops. */
async function calibrate(probePath: string, names: string[], crops: Crop[]): Promise<Record<string, [number, number]>> {
  const session = await ort.InferenceSession.create(probePath, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  const ranges: Record<string, [number, number]> = {};
  const add = (name: string, d: Float32Array) => {
    const r = ranges[name] ?? [Infinity, -Infinity];
    for (let i = 0; i < d.length; i++) {
      const v = d[i] as number;
      if (v < r[0]) r[0] = v;
      if (v > r[1]) r[1] = v;
    }
    ranges[name] = r;
  };
  try {
    const input = session.inputNames[0] as string;
    for (const c of crops) {
      const out = await session.run(feed(session, c));
      for (const name of names) {
        if (name === input) add(name, c.data);
        else if (out[name] !== undefined) add(name, out[name].data as Float32Array);
        else throw new PipelineError("stage_failed", `calibration: the probe model has no output '${name}'`, probePath);
      }
    }
  } finally {
    await session.release();
  }
  return ranges;
}

/** Pixels of the crops whose argmax class is the same in both models. */
async function agreement(floatPath: string, intPath: string, crops: Crop[]): Promise<{ agree: number; pixels: number }> {
  const a = await ort.InferenceSession.create(floatPath, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  const b = await ort.InferenceSession.create(intPath, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  let agree = 0;
  let pixels = 0;
  try {
    for (const c of crops) {
      const la = (await a.run(feed(a, c)))[a.outputNames[0] as string]?.data as Float32Array;
      const lb = (await b.run(feed(b, c)))[b.outputNames[0] as string]?.data as Float32Array;
      const n = c.w * c.h;
      const channels = la.length / n;
      for (let i = 0; i < n; i++) {
        let ka = 0;
        let kb = 0;
        for (let k = 1; k < channels; k++) {
          if ((la[k * n + i] as number) > (la[ka * n + i] as number)) ka = k;
          if ((lb[k * n + i] as number) > (lb[kb * n + i] as number)) kb = k;
        }
        if (ka === kb) agree++;
      }
      pixels += n;
    }
  } finally {
    await a.release();
    await b.release();
  }
  return { agree, pixels };
}

/** Runs quantize.py; its stdout (one JSON line), or a PipelineError with its last stderr line. */
function runPython(python: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [QUANTIZE_PY, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", (e) => reject(new PipelineError("stage_failed", `cannot start Python: ${e.message}; install: apt-get install python3 python3-onnx`, python, { cause: e })));
    child.on("close", (code) => {
      if (code === 0) return resolve(out.trim());
      const last = err.trim().split("\n").pop() ?? "";
      const missing = /No module named '([^']+)'/.exec(err)?.[1];
      reject(new PipelineError("stage_failed", missing ? `Python module '${missing}' is missing; install: apt-get install python3-onnx` : `quantize.py ${args[0]} failed (exit ${code}): ${last}`, python));
    });
  });
}

