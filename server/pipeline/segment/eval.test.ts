import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import type { Volume } from "../../../precomputed/array.js";
import { PipelineError } from "../errors.js";
import { writeTiffStack } from "../tiff.js";
import { evalCommand } from "./command.js";
import { evaluate, parseClasses, parseSlices, type EvalReport } from "./eval.js";

const dir = mkdtempSync(join(tmpdir(), "vemscope-eval-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** W x H x D with a filled rectangle per section. */
function rects(W: number, H: number, boxes: ([number, number, number, number, number] | null)[]): Volume<Uint8Array> {
  const data = new Uint8Array(W * H * boxes.length);
  boxes.forEach((b, z) => {
    if (!b) return;
    const [x0, y0, x1, y1, v] = b;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[z * W * H + y * W + x] = v;
  });
  return { data, shape: [W, H, boxes.length] };
}

const metric = (r: EvalReport, name: string) => r.classes.find((c) => c.class === name);

describe("evaluate", () => {
  it("gives the analytic Dice and IoU of overlapping rectangles, per section and pooled", () => {
    // Section 0: truth 10x10 at (0,0), prediction 10x10 at (5,0): overlap 50 -> Dice 0.5, IoU 50/150.
    // Section 1: identical 4x5 squares -> 1, 1. Section 2: both empty -> undefined (null).
    const truth = rects(20, 10, [[0, 0, 10, 10, 2], [0, 0, 4, 5, 2], null]);
    const pred = rects(20, 10, [[5, 0, 15, 10, 2], [0, 0, 4, 5, 2], null]);
    const r = evaluate({ pred, truth, predPath: "p", truthPath: "t", classes: [2] });
    const mito = metric(r, "mito");
    expect(mito?.slices.map((s) => s.dice)).toEqual([0.5, 1, null]);
    expect(mito?.slices[0]?.iou).toBeCloseTo(1 / 3, 12);
    // Pooled: tp 50 + 20, fp 50, fn 50 -> Dice 140/240, IoU 70/170.
    expect(mito?.dice).toBeCloseTo(140 / 240, 12);
    expect(mito?.iou).toBeCloseTo(70 / 170, 12);
    expect(mito?.predVoxels).toBe(120);
    expect(mito?.truthVoxels).toBe(120);
  });

  it("scores each class of a class volume separately and defaults to the classes present", () => {
    const truth = rects(10, 10, [[0, 0, 10, 5, 1]]); // top half ER
    const pred = rects(10, 10, [[0, 0, 10, 10, 1]]); // everything ER
    pred.data.fill(6, 0, 10); // first row nucleus instead
    const r = evaluate({ pred, truth, predPath: "p", truthPath: "t" });
    expect(r.classes.map((c) => c.class)).toEqual(["er", "nucleus"]);
    // ER: tp 40, fp 50, fn 10 -> Dice 80/140. Nucleus: fp 10 -> 0.
    expect(metric(r, "er")?.dice).toBeCloseTo(80 / 140, 12);
    expect(metric(r, "nucleus")?.dice).toBe(0);
  });

  it("reads 0/255 masks as the one class named, and refuses them without one", () => {
    const truth = rects(8, 8, [[0, 0, 4, 8, 255]]);
    const pred = rects(8, 8, [[0, 0, 8, 8, 2]]);
    const r = evaluate({ pred, truth, predPath: "p", truthPath: "t", classes: [2] });
    expect(r.truth.as).toBe("binary mask");
    expect(r.pred.as).toBe("class codes");
    expect(metric(r, "mito")?.dice).toBeCloseTo(64 / 96, 12);
    expect(() => evaluate({ pred, truth, predPath: "p", truthPath: "t.png" })).toThrow(/t\.png: .*--classes mito/);
  });

  it("refuses volumes of different shapes, naming both", () => {
    const e = (() => {
      try {
        evaluate({ pred: rects(8, 8, [null]), truth: rects(8, 9, [null]), predPath: "pred.tif", truthPath: "truth.tif", classes: [2] });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(PipelineError);
    expect((e as PipelineError).code).toBe("shape_mismatch");
    expect((e as PipelineError).message).toMatch(/pred\.tif: prediction is 8x8x1 but truth truth\.tif is 8x9x1/);
  });

  it("parses --classes and --slices with errors naming the option", () => {
    expect(parseClasses("mito, er")).toEqual([2, 1]);
    expect(() => parseClasses("golgi")).toThrow(/--classes: unknown class 'golgi'/);
    expect(parseSlices("3-5,1", 10)).toEqual([1, 3, 4, 5]);
    expect(() => parseSlices("8-12", 10)).toThrow(/--slices/);
  });
});

describe("eval command", () => {
  it("compares a TIFF class volume with a folder of 0/255 mask PNGs, restricted to some sections, and writes JSON", async () => {
    const W = 16;
    const H = 8;
    const truthDir = join(dir, "mito");
    mkdirSync(truthDir);
    const pred = rects(W, H, [[0, 0, 8, 8, 2], [0, 0, 8, 8, 2], [0, 0, 16, 8, 2]]);
    for (let z = 0; z < 3; z++) {
      const m = new Uint8Array(W * H);
      for (let y = 0; y < H; y++) for (let x = 0; x < 4 * (z + 1); x++) m[y * W + x] = 255;
      await sharp(m, { raw: { width: W, height: H, channels: 1 } }).toColourspace("b-w").png().toFile(join(truthDir, `${String(z).padStart(4, "0")}.png`));
    }
    await writeTiffStack(join(dir, "pred.tif"), pred);
    const json = join(dir, "eval.json");
    const { report, text } = await evalCommand({ pred: join(dir, "pred.tif"), truth: truthDir, classes: "mito", slices: "1-2", json });
    // Section 1: pred 64 px, truth 64 px, same -> 1. Section 2: pred 128, truth 96 -> Dice 192/224.
    expect(report.slices).toEqual([1, 2]);
    expect(report.classes[0]?.slices.map((s) => s.dice)).toEqual([1, 192 / 224]);
    expect(report.classes[0]?.dice).toBeCloseTo(320 / 352, 12);
    expect(text).toMatch(/mito\s+0\.9091/);
    expect(JSON.parse(readFileSync(json, "utf8")).classes[0].dice).toBeCloseTo(320 / 352, 12);
  });
});
