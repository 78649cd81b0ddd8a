/**
 * `vemscope quantize`: the int8 copy keeps the float model's metadata and predictions, and the shipped int8
 * model is the quantized copy of the shipped float one. Needs Python with the onnx package (.ci/run installs it).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generatePhantom } from "../phantom/index.js";
import { PipelineError } from "../errors.js";
import { writeTiffStack } from "../tiff.js";
import { DEFAULT_MODEL_PATH, FLOAT_MODEL_PATH, loadModelInfo, onnxMetadataProps, WIDE_FLOAT_MODEL_PATH, WIDE_MODEL_PATH } from "./model.js";
import { quantizeModel } from "./quantize.js";
import { segmentVolume } from "./segment.js";

const PYTHON = "/usr/bin/python3";
const haveOnnx = (() => {
  try {
    execFileSync(PYTHON, ["-c", "import onnx, numpy"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const haveModels = existsSync(FLOAT_MODEL_PATH) && existsSync(DEFAULT_MODEL_PATH);
const EM = fileURLToPath(new URL("../../../../shared/data/lucchi_train/image/0003.png", import.meta.url));

const dir = mkdtempSync(join(tmpdir(), "vemscope-quantize-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const meta = (bytes: Uint8Array): Record<string, unknown> => JSON.parse(onnxMetadataProps(bytes).get("vemscope") ?? "{}") as Record<string, unknown>;

/** Synthetic EM-like sections (the phantom's renderer) as a calibration stack. */
async function phantomStack(seed: number): Promise<string> {
  const p = generatePhantom({ seed, size: [256, 256, 4], voxelNm: [5, 5, 45] });
  const file = join(dir, `phantom-${seed}.tif`);
  await writeTiffStack(file, p.image);
  return file;
}

/** The share of pixels of `image` whose class is the same with both models (argmax, no thresholds). */
async function classAgreement(image: { data: Uint8Array; shape: [number, number, number] }, a: string, b: string): Promise<number> {
  const none = new Map<string, number>();
  const ra = await segmentVolume(image, { model: a, thresholds: none, runner: { workers: 0, threads: 2 } });
  const rb = await segmentVolume(image, { model: b, thresholds: none, runner: { workers: 0, threads: 2 } });
  let same = 0;
  for (let i = 0; i < image.data.length; i++) if (ra.classes.data[i] === rb.classes.data[i]) same++;
  return same / image.data.length;
}

describe.skipIf(!haveOnnx || !haveModels)("int8 quantization", () => {
  let out: string;
  let report: Awaited<ReturnType<typeof quantizeModel>>;
  beforeAll(async () => {
    out = join(dir, "int8.onnx");
    report = await quantizeModel({ model: FLOAT_MODEL_PATH, calibrate: [await phantomStack(11)], out, sections: 2, python: PYTHON });
  });

  it("writes a model a quarter the size that keeps the float model's classes, normalisation and thresholds, ending in a softmax", async () => {
    const f = await loadModelInfo(FLOAT_MODEL_PATH);
    const q = await loadModelInfo(out);
    expect(q.classNames).toEqual(f.classNames);
    expect(q.codes).toEqual(f.codes);
    expect(q.normalisation).toBe(f.normalisation);
    // The same metadata, and the int8 graph ends in its own Softmax.
    expect(meta(q.bytes)).toEqual({ ...meta(f.bytes), output: "float32 probabilities [n,7,h,w]", probabilities: true });
    expect(q.probabilities).toBe(true);
    expect(f.probabilities).toBe(false);
    expect(statSync(out).size).toBeLessThan(statSync(FLOAT_MODEL_PATH).size / 3);
    const quantization = q.card?.quantization as { calibration: { crops: number }; argmax_agreement: number };
    expect(quantization.calibration.crops).toBe(2);
    expect(quantization.argmax_agreement).toBe(report.agreement);
    expect(report.agreement).toBeGreaterThan(0.97);
  });

  it("segments unseen synthetic sections as the float model does on >= 98% of pixels", async () => {
    const p = generatePhantom({ seed: 12, size: [256, 256, 2], voxelNm: [5, 5, 45] });
    expect(await classAgreement(p.image as { data: Uint8Array; shape: [number, number, number] }, FLOAT_MODEL_PATH, out)).toBeGreaterThan(0.98);
  });

  it("each shipped int8 model (the default and the wide one) is the int8 copy of its shipped float model and agrees with it on real EM", async () => {
    for (const [int8, float, name] of [[DEFAULT_MODEL_PATH, FLOAT_MODEL_PATH, "vemscope-unet-fast.onnx"], [WIDE_MODEL_PATH, WIDE_FLOAT_MODEL_PATH, "vemscope-unet.onnx"]] as const) {
      const q = await loadModelInfo(int8);
      const f = await loadModelInfo(float);
      expect((q.card?.quantization as { from: string }).from).toBe(name);
      expect(meta(q.bytes)).toEqual({ ...meta(f.bytes), output: "float32 probabilities [n,7,h,w]", probabilities: true });
      if (!existsSync(EM)) continue;
      const { data, info } = await sharp(EM).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
      const image = { data: new Uint8Array(data), shape: [info.width, info.height, 1] as [number, number, number] };
      expect(await classAgreement(image, float, int8), name).toBeGreaterThan(0.98);
    }
  });

  it("the default (fast) model has the wide one's classes, a decision, a card that says how it was trained and fine-tuned, and calls mostly the same mitochondria on real EM", async () => {
    const q = await loadModelInfo(WIDE_MODEL_PATH);
    const fast = await loadModelInfo(DEFAULT_MODEL_PATH);
    expect(fast.classNames).toEqual(q.classNames);
    expect([...fast.thresholds.keys()]).toEqual(["mito"]);
    expect(fast.minAreaNm2).toEqual(new Map([["mito", 12500]]));
    expect(fast.card?.architecture).toMatch(/8-16-32-64/);
    const training = fast.card?.training as { hardware: { device: string }[]; initialised_from: { iterations: number } };
    expect(training.hardware[0]?.device).toMatch(/^cpu/);
    expect(training.initialised_from.iterations).toBe(5500);
    expect(meta(fast.bytes).probabilities).toBe(true);
    if (!existsSync(EM)) return;
    const { data, info } = await sharp(EM).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
    const image = { data: new Uint8Array(data), shape: [info.width, info.height, 1] as [number, number, number] };
    // Real EM annotates mitochondria alone, so which other class a model calls the rest is arbitrary: compare the
    // mitochondria each calls with its own decision (the held-aside Dice of both is in README).
    const mito = async (m: string) => (await segmentVolume(image, { model: m, runner: { workers: 0, threads: 2 } })).classes.data.map((c) => (c === 2 ? 1 : 0));
    const [a, b] = [await mito(WIDE_MODEL_PATH), await mito(DEFAULT_MODEL_PATH)];
    let both = 0;
    let sum = 0;
    for (let i = 0; i < a.length; i++) {
      both += a[i] & b[i];
      sum += a[i] + b[i];
    }
    expect(sum).toBeGreaterThan(0.02 * a.length);
    expect((2 * both) / sum).toBeGreaterThan(0.9);
  });

  it("refuses an already quantized model, a bad calibration stack and a non-.onnx output, writing nothing", async () => {
    const again = join(dir, "again.onnx");
    const fail = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
    const e1 = await fail(quantizeModel({ model: out, calibrate: [await phantomStack(11)], out: again, python: PYTHON }));
    expect(e1).toBeInstanceOf(PipelineError);
    expect((e1 as PipelineError).message).toMatch(/already quantized/);
    const junk = join(dir, "junk.tif");
    writeFileSync(junk, "not a tiff");
    const e2 = await fail(quantizeModel({ model: FLOAT_MODEL_PATH, calibrate: [junk], out: again, python: PYTHON }));
    expect(e2).toBeInstanceOf(PipelineError);
    expect((e2 as PipelineError).file).toBe(junk);
    const e3 = await fail(quantizeModel({ model: FLOAT_MODEL_PATH, calibrate: [junk], out: join(dir, "x.bin"), python: PYTHON }));
    expect((e3 as PipelineError).file).toBe("--out");
    expect(existsSync(again)).toBe(false);
    expect(readFileSync(out).length).toBeGreaterThan(0);
  });
});
