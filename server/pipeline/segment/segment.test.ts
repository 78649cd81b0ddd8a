import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Volume } from "../../../precomputed/array.js";
import { PipelineError } from "../errors.js";
import { readLabels, readStack } from "../ingest.js";
import { minAreaSummary, segmentCommand } from "./command.js";
import { loadModelInfo, onnxMetadataProps, parseModelInfo, withOnnxMetadata, type ModelInfo } from "./model.js";
import { minAreaOption, thresholdsOption } from "./cli-options.js";
import { removeSmallAreas } from "./cleanup.js";
import { decide, decideSection, DEFAULT_MODEL_PATH, DEFAULT_OVERLAP, DEFAULT_TILE, segmentSections, segmentVolume, type SegmentResult } from "./segment.js";
import { normaliseSection } from "./normalise.js";
import type { TileRunner } from "./pool.js";
import { resamplePlanes } from "./resample.js";
import { planTiles, tilesOf } from "./tiling.js";

// Real EM from the project's shared training data (1024 x 1024 ssTEM, a validation section).
const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const EM_1024 = join(SHARED, "vnc_train/image/0014.png");
const haveModel = existsSync(DEFAULT_MODEL_PATH);
const haveEm = existsSync(EM_1024);

const dir = mkdtempSync(join(tmpdir(), "vemscope-segment-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let model: ModelInfo;
beforeAll(async () => {
  if (haveModel) model = await loadModelInfo(DEFAULT_MODEL_PATH);
});

async function rejection(p: Promise<unknown>): Promise<PipelineError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PipelineError);
  return e as PipelineError;
}

/** A W x H crop of the EM section (or a smooth synthetic pattern without the shared data). */
async function emCrop(W: number, H: number): Promise<Volume<Uint8Array>> {
  if (haveEm) {
    const { data } = await sharp(EM_1024).extract({ left: 0, top: 0, width: W, height: H }).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data), shape: [W, H, 1] };
  }
  const data = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[y * W + x] = 128 + 60 * Math.sin(x / 9) * Math.cos(y / 13) + ((x * 7 + y * 3) % 11);
  return { data, shape: [W, H, 1] };
}

/** The model file with all its metadata_props replaced by these (model.ts withOnnxMetadata). */
function withMetadata(bytes: Uint8Array, props: Record<string, string>): Uint8Array {
  const drop = [...onnxMetadataProps(bytes).keys()].map((k): [string, string | undefined] => [k, undefined]);
  return withOnnxMetadata(bytes, new Map([...drop, ...Object.entries(props)]));
}

const TILE = 768;

describe.skipIf(!haveModel)(`segmentation with the shipped model${haveModel ? "" : ` (skipped: ${DEFAULT_MODEL_PATH} missing)`}`, () => {
  let tiled: SegmentResult;
  let whole: SegmentResult;
  let image: Volume<Uint8Array>;

  beforeAll(async () => {
    image = await emCrop(1024, 1024);
    // Two workers and one in-process session: the two runners must give the same numbers.
    // 768 / 192: the default tile covers this section whole, so a smaller one makes the seams to test.
    tiled = await segmentVolume(image, { model, tile: TILE, overlap: DEFAULT_OVERLAP, probabilities: true, runner: { workers: 2, threads: 1 } });
    whole = await segmentVolume(image, { model, tile: 1024, overlap: 0, probabilities: true, runner: { workers: 0, threads: 2 } });
  });

  it("tiled (768, overlap 192) equals untiled inference on a 1024 x 1024 section within 0.5% of pixels", () => {
    expect(tiled.stats.tiles).toBe(4);
    expect(whole.stats.tiles).toBe(1);
    // The default tile takes such a section whole.
    expect(tilesOf(planTiles(1024, 1024, DEFAULT_TILE, DEFAULT_OVERLAP, model.sizeMultiple))).toHaveLength(1);
    let differ = 0;
    for (let i = 0; i < image.data.length; i++) if (tiled.classes.data[i] !== whole.classes.data[i]) differ++;
    expect(differ / image.data.length).toBeLessThan(0.005);
  });

  it("shows no seams: probabilities near tile edges deviate from untiled no more than elsewhere", () => {
    const W = 1024;
    const plan = planTiles(W, W, TILE, DEFAULT_OVERLAP, model.sizeMultiple);
    // Interior tile edges (where a tile's own prediction is least reliable), in x and in y.
    const edges = new Set<number>();
    for (const s of plan.x.starts) {
      if (s > 0) edges.add(s);
      if (s + plan.x.size < W) edges.add(s + plan.x.size - 1);
    }
    const nearEdge = new Uint8Array(W);
    for (const e of edges) for (let d = -3; d <= 3; d++) if (e + d >= 0 && e + d < W) nearEdge[e + d] = 1;
    let band = 0;
    let bandN = 0;
    let rest = 0;
    let restN = 0;
    for (const [k, p] of (tiled.probabilities ?? []).entries()) {
      const q = whole.probabilities?.[k]?.volume.data as Uint8Array;
      for (let y = 0; y < W; y++) {
        for (let x = 0; x < W; x++) {
          const d = Math.abs((p.volume.data[y * W + x] as number) - (q[y * W + x] as number));
          if (nearEdge[x] || nearEdge[y]) {
            band += d;
            bandN++;
          } else {
            rest += d;
            restN++;
          }
        }
      }
    }
    // Mean absolute difference in probability (0-255 units): the blend must hide the tile borders.
    expect(band / bandN).toBeLessThan(2 * (rest / restN) + 0.5);
  });

  it("gives the same classes for an 8-bit section and the same section at 16 bit (x * 257)", async () => {
    const small = await emCrop(256, 192);
    const wide: Volume<Uint16Array> = { data: Uint16Array.from(small.data, (v) => v * 257), shape: small.shape };
    const a = await segmentVolume(small, { model, runner: { workers: 0, threads: 1 } });
    const b = await segmentVolume(wide, { model, runner: { workers: 0, threads: 1 } });
    let differ = 0;
    for (let i = 0; i < small.data.length; i++) if (a.classes.data[i] !== b.classes.data[i]) differ++;
    expect(differ).toBeLessThanOrEqual(2); // float rounding of the z-scores may flip an exact tie, nothing more
  });

  it("segment writes a uint8 class TIFF and per-class probability stacks that sum to 255 per pixel", async () => {
    const small = await emCrop(200, 120);
    const img = join(dir, "img.tif");
    const { writeTiffStack } = await import("../tiff.js");
    await writeTiffStack(img, { data: new Uint8Array([...small.data, ...small.data]), shape: [200, 120, 2] });
    const out = join(dir, "classes.tif");
    const probs = join(dir, "probs");
    // Plain argmax, no minimum area here (the shipped model's mito threshold and minimum area are tested below).
    const stats = await segmentCommand({ image: img, voxelNm: [5, 5, 45], out, probabilities: probs, thresholds: new Map(), minAreaNm2: new Map(), runner: { workers: 1, threads: 1 } });
    expect(stats.sections).toBe(2);
    const classes = await readLabels(out);
    expect(classes.shape).toEqual([200, 120, 2]);
    expect(classes.data).toBeInstanceOf(Uint8Array);
    expect(Math.max(...classes.data)).toBeLessThanOrEqual(6);
    const planes = await Promise.all(model.classNames.map((n) => readStack(join(probs, `${n}.tif`))));
    for (let i = 0; i < 200 * 120 * 2; i += 97) {
      const sum = planes.reduce((s, p) => s + (p.volume.data[i] as number), 0);
      expect(Math.abs(sum - 255)).toBeLessThanOrEqual(4);
      // The class written is the most probable one (up to uint8 rounding of near-ties).
      const max = Math.max(...planes.map((p) => p.volume.data[i] as number));
      const chosen = planes[model.codes.indexOf(classes.data[i] as number)]?.volume.data[i] as number;
      expect(chosen).toBeGreaterThanOrEqual(max - 1);
    }
    const hyper = join(dir, "probs.tif");
    await segmentCommand({ image: img, voxelNm: [5, 5, 45], out, probabilities: hyper, runner: { workers: 0, threads: 1 } });
    expect((await readStack(hyper)).volume.shape).toEqual([200, 120, 2 * model.codes.length]);
    expect(readFileSync(hyper).includes(Buffer.from("channels=7"))).toBe(true);
  });
});

describe.skipIf(!haveModel)("decision thresholds (the shipped model's, an override, none)", () => {
  it("a mito threshold moves only mito pixels below it, to the next most probable class; the metadata rewrite leaves the network alone", async () => {
    const img = await emCrop(320, 320);
    const opts = { runner: { workers: 0, threads: 2 }, probabilities: true } as const;
    const plain = await segmentVolume(img, { model, ...opts, thresholds: new Map() });
    const strict = await segmentVolume(img, { model, ...opts, thresholds: new Map([["mito", 0.95]]) });
    const mitoChannel = model.classNames.indexOf("mito");
    const MITO = model.codes[mitoChannel] as number;
    const pMito = strict.probabilities?.[mitoChannel]?.volume.data as Uint8Array;
    expect(pMito).toEqual(plain.probabilities?.[mitoChannel]?.volume.data);
    let moved = 0;
    let changedElsewhere = 0;
    let keptBelow = 0;
    for (let i = 0; i < pMito.length; i++) {
      const a = plain.classes.data[i] as number;
      const b = strict.classes.data[i] as number;
      if (a !== MITO) changedElsewhere += b !== a ? 1 : 0;
      else if (b === MITO) keptBelow += (pMito[i] as number) < Math.floor(0.95 * 255) ? 1 : 0;
      else moved++;
    }
    expect(changedElsewhere).toBe(0);
    expect(keptBelow).toBe(0);
    if (haveEm) expect(moved).toBeGreaterThan(100); // real EM has mitochondrion borders the model is unsure of

    // The same network without thresholds in its metadata: plain argmax, the same probabilities to the bit.
    const meta = JSON.parse(onnxMetadataProps(model.bytes).get("vemscope") as string) as Record<string, unknown>;
    delete meta.thresholds;
    const bare = parseModelInfo("bare.onnx", withOnnxMetadata(model.bytes, new Map([["vemscope", JSON.stringify(meta)]])));
    expect(bare.thresholds.size).toBe(0);
    expect(onnxMetadataProps(bare.bytes).get("model_card")).toBe(onnxMetadataProps(model.bytes).get("model_card"));
    const viaBare = await segmentVolume(img, { model: bare, ...opts });
    expect(viaBare.classes.data).toEqual(plain.classes.data);
    viaBare.probabilities?.forEach((p, k) => expect(p.volume.data).toEqual(plain.probabilities?.[k]?.volume.data));
    // Without an override the model's own thresholds decide.
    const own = await segmentVolume(img, { model, ...opts });
    expect(own.classes.data).toEqual((await segmentVolume(img, { model, ...opts, thresholds: model.thresholds })).classes.data);
  });

  it("the model's minimum mito area, applied with a pixel size, is removeSmallAreas on the plain decision; 'none' and no pixel size keep every fragment", async () => {
    expect(model.minAreaNm2).toEqual(new Map([["mito", 12500]]));
    const area = 12500;
    const img = await emCrop(512, 512);
    const opts = { runner: { workers: 0, threads: 2 } } as const;
    const kept = await segmentVolume(img, { model, ...opts, pixelNm: [4.6, 4.6], minAreaNm2: new Map() });
    const noPixel = await segmentVolume(img, { model, ...opts });
    const own = await segmentVolume(img, { model, ...opts, pixelNm: [4.6, 4.6] });
    expect(noPixel.classes.data).toEqual(kept.classes.data);
    expect(noPixel.stats.minAreaNm2).toEqual({});
    expect(own.stats.minAreaNm2).toEqual({ mito: area });
    const want = kept.classes.data.slice();
    const MITO = model.codes[model.classNames.indexOf("mito")] as number;
    const r = removeSmallAreas(want, 512, 512, [4.6, 4.6], new Map([[MITO, area]]));
    expect(own.classes.data).toEqual(want);
    const mitoPixels = kept.classes.data.reduce((n, v) => n + (v === MITO ? 1 : 0), 0);
    expect(own.stats.minAreaRemoved).toEqual({ fragments: r.fragments, pixels: r.voxels, ofPixels: mitoPixels });
    expect(minAreaSummary(own.stats)).toMatch(/^minimum areas \(mito 12500 nm\^2\): \d+ fragments removed, \d+\.\d% of those classes' pixels/);
    if (haveEm) expect(minAreaSummary(own.stats)).not.toMatch(/is --voxel/); // real EM at its own pixel size: a few specks
    expect(minAreaSummary(noPixel.stats)).toBeUndefined();
    // A pixel size in the wrong unit (um for nm, say) makes the area huge in pixels: the summary says so.
    // (resample "none": these check the areas' units on the same inference, not the resampling of other pixel sizes)
    const wrong = await segmentVolume(img, { model, ...opts, pixelNm: [0.3, 0.3], resample: "none" });
    if (haveEm) expect(minAreaSummary(wrong.stats)).toMatch(/is --voxel the pixel size in nm\?/);
    if (haveEm) expect(r.fragments).toBeGreaterThan(0); // real EM leaves small mito specks
    // An override in the same units: 2x the pixel size is 4x the area per pixel.
    const coarse = await segmentVolume(img, { model, ...opts, pixelNm: [9.2, 9.2], minAreaNm2: new Map([["mito", 4 * area]]), resample: "none" });
    expect(coarse.classes.data).toEqual(own.classes.data);
  });

  it("infers a section whose pixel size the model was not trained for resampled into its range: real EM at half its pixel size", async () => {
    expect(model.pixelNm).toEqual({ trained: [4.6, 5.9], accepts: [3.68, 7.375] });
    // VNC 0014 (4.6 nm) enlarged 2x: the same tissue at 2.3 nm, mitochondria twice the size the network knows.
    const [W, H] = [384, 384];
    const big = async (file: string, kernel: "linear" | "nearest") =>
      new Uint8Array(await sharp(file).extract({ left: 256, top: 256, width: W, height: H }).toColourspace("b-w").resize(2 * W, 2 * H, { kernel }).raw().toBuffer());
    const img = haveEm ? await big(EM_1024, "linear") : (await emCrop(2 * W, 2 * H)).data;
    const opts = { model, runner: { workers: 0, threads: 2 }, pixelNm: [2.3, 2.3] as [number, number] };
    const auto = await segmentVolume({ data: img, shape: [2 * W, 2 * H, 1] }, opts);
    const asGiven = await segmentVolume({ data: img, shape: [2 * W, 2 * H, 1] }, { ...opts, resample: "none" });
    expect(auto.stats.resampledTo).toEqual({ width: W, height: H, pixelNm: [4.6, 4.6] });
    expect(asGiven.stats.resampledTo).toBeUndefined();
    expect(auto.classes.shape).toEqual([2 * W, 2 * H, 1]);
    if (haveEm) {
      const truth = await big(join(SHARED, "vnc_train/mito/0014.png"), "nearest");
      const MITO = model.codes[model.classNames.indexOf("mito")] as number;
      const dice = (c: Uint8Array) => {
        let both = 0, p = 0, t = 0;
        for (let i = 0; i < c.length; i++) {
          const a = c[i] === MITO, b = (truth[i] as number) > 127;
          both += a && b ? 1 : 0;
          p += a ? 1 : 0;
          t += b ? 1 : 0;
        }
        return (2 * both) / (p + t);
      };
      // The crop at its own pixel size, its classes enlarged the same way.
      const native = await segmentVolume({ data: new Uint8Array(await sharp(EM_1024).extract({ left: 256, top: 256, width: W, height: H }).toColourspace("b-w").raw().toBuffer()), shape: [W, H, 1] }, { ...opts, pixelNm: [4.6, 4.6] });
      const up = new Uint8Array(4 * W * H);
      for (let y = 0; y < 2 * H; y++) for (let x = 0; x < 2 * W; x++) up[y * 2 * W + x] = native.classes.data[(y >> 1) * W + (x >> 1)] as number;
      // Against the truth: resampled as good as the section at its own 4.6 nm (0.740 vs 0.733 when written), as
      // given much worse (0.567).
      expect(dice(auto.classes.data)).toBeGreaterThan(dice(up) - 0.02);
      expect(dice(asGiven.classes.data)).toBeLessThan(dice(up) - 0.1);
    }
    // Inside what the model accepts, nothing is resampled: the same bytes as with "none".
    const own = await emCrop(256, 256);
    const near = await segmentVolume(own, { ...opts, pixelNm: [7, 7] });
    expect(near.stats.resampledTo).toBeUndefined();
    expect(near.classes.data).toEqual((await segmentVolume(own, { ...opts, pixelNm: [7, 7], resample: "none" })).classes.data);
    await expect(segmentVolume(own, { ...opts, resample: "bicubic" as "auto" })).rejects.toThrow(/--resample: expected one of auto, none, got 'bicubic'/);
  });

  it("refuses minimum areas for classes the model lacks, or not positive, naming --min-area or the model file", async () => {
    const img = join(dir, "area.tif");
    const { writeTiffStack } = await import("../tiff.js");
    await writeTiffStack(img, { data: (await emCrop(64, 64)).data, shape: [64, 64, 1] });
    const out = join(dir, "area-out.tif");
    const e = await rejection(segmentCommand({ image: img, voxelNm: [5, 5, 45], out, minAreaNm2: new Map([["golgi", 500]]) }));
    expect(e.message).toMatch(/^--min-area: 'golgi' is not a class of the model/);
    expect(existsSync(out)).toBe(false);
    expect(() => minAreaOption("mito=-5")).toThrow(/--min-area: expected CLASS=NM2/);
    expect(() => minAreaOption("mito=abc")).toThrow(/--min-area/);
    expect(minAreaOption("none")).toEqual(new Map());
    expect(minAreaOption("mito=1e4,er=500")).toEqual(new Map([["mito", 10000], ["er", 500]]));
    const good = JSON.parse(onnxMetadataProps(model.bytes).get("vemscope") as string) as Record<string, unknown>;
    expect(() => parseModelInfo("m.onnx", withMetadata(model.bytes, { vemscope: JSON.stringify({ ...good, min_area_nm2: { mito: 0 } }) }))).toThrow(/m\.onnx: model metadata 'min_area_nm2': minimum area of 'mito' must be a positive number, got 0/);
    expect(() => parseModelInfo("m.onnx", withMetadata(model.bytes, { vemscope: JSON.stringify({ ...good, min_area_nm2: { background: 10 } }) }))).toThrow(/'background' is not a class of the model/);
  });

  it("refuses thresholds for classes the model lacks, or outside (0, 1), naming --thresholds", async () => {
    const img = join(dir, "thr.tif");
    const { writeTiffStack } = await import("../tiff.js");
    await writeTiffStack(img, { data: (await emCrop(64, 64)).data, shape: [64, 64, 1] });
    const out = join(dir, "thr-out.tif");
    const e = await rejection(segmentCommand({ image: img, voxelNm: [5, 5, 45], out, thresholds: new Map([["golgi", 0.5]]) }));
    expect(e.message).toMatch(/^--thresholds: 'golgi' is not a class of the model \(er, mito, ld, lyso, perox, nucleus\)/);
    expect(existsSync(out)).toBe(false);
    expect(() => thresholdsOption("mito=1.5")).toThrow(/--thresholds: expected CLASS=P/);
    expect(() => thresholdsOption("mito")).toThrow(/--thresholds/);
    expect(thresholdsOption("none")).toEqual(new Map());
    expect(thresholdsOption("mito=0.85,er=0.5")).toEqual(new Map([["mito", 0.85], ["er", 0.5]]));
  });
});

describe.skipIf(!haveModel)("test-time augmentation with the shipped model", () => {
  it("--tta flips infers 4 views of each tile and stays close to the plain answer; a bad mode names --tta", async () => {
    const img = await emCrop(256, 256);
    const runner = { workers: 0, threads: 2 };
    const plain = await segmentVolume(img, { model, runner });
    const aug = await segmentVolume(img, { model, runner, tta: "flips" });
    expect(aug.stats.tta).toBe("flips");
    expect(aug.stats.inferredMegapixels).toBeCloseTo(4 * plain.stats.inferredMegapixels, 9);
    // Mitochondria (the class trained on real EM; the others are synthetic-only and unsteady on it): a view
    // mapped back to the wrong place would disagree on whole objects.
    const MITO = model.codes[model.classNames.indexOf("mito")];
    const n = img.data.length;
    let same = 0;
    for (let i = 0; i < n; i++) if ((aug.classes.data[i] === MITO) === (plain.classes.data[i] === MITO)) same++;
    expect(same / n).toBeGreaterThan(0.97);
    if (haveEm) expect(same).toBeLessThan(n);
    const e = await rejection(segmentVolume(img, { model, runner, tta: "rot" as "none" }));
    expect(e.message).toMatch(/^--tta: expected one of none, flips, d4, got 'rot'/);
  });
});

describe("decide: a pixel's channel from its probabilities", () => {
  const none = new Float64Array([NaN, NaN, NaN]);
  it("is argmax without thresholds (the first of equals)", () => {
    expect(decide([0.2, 0.5, 0.3], none)).toBe(1);
    expect(decide([0.4, 0.4, 0.2], none)).toBe(0);
  });
  it("gives a thresholded class where it reaches its threshold, else the most probable of the others", () => {
    const t = new Float64Array([NaN, 0.8, NaN]);
    expect(decide([0.1, 0.85, 0.05], t)).toBe(1);
    expect(decide([0.1, 0.8, 0.1], t)).toBe(1);
    expect(decide([0.25, 0.6, 0.15], t)).toBe(0);
    expect(decide([0.15, 0.6, 0.25], t)).toBe(2);
  });
  it("takes the most probable of the thresholded classes reached, and argmax of all when every class has a threshold", () => {
    expect(decide([0.1, 0.45, 0.45], new Float64Array([NaN, 0.4, 0.4]))).toBe(1);
    expect(decide([0.1, 0.42, 0.48], new Float64Array([NaN, 0.4, 0.4]))).toBe(2);
    expect(decide([0.1, 0.48, 0.42], new Float64Array([NaN, 0.4, 0.4]))).toBe(1);
    expect(decide([0.2, 0.5, 0.3], new Float64Array([0.9, 0.9, 0.9]))).toBe(1);
  });
});

describe("decideSection: decide over a whole section, channel by channel", () => {
  it("gives decide's answer and probability bytes for every pixel, ties and threshold edges included", () => {
    const n = 4000;
    const C = 5;
    let seed = 7;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    // Values from a small set, so exact ties between channels and values exactly at a threshold are common.
    const levels = [0, 0.05, 0.2, 0.4, 0.45, 0.5, 0.85, 0.9, 1];
    const probs = Float32Array.from({ length: C * n }, () => levels[Math.floor(rnd() * levels.length)] as number);
    const codes = [0, 1, 2, 3, 6];
    const cases = [
      [NaN, NaN, NaN, NaN, NaN],
      [NaN, 0.85, NaN, NaN, NaN],
      [NaN, 0.4, 0.45, NaN, 0.9],
      [0.5, 0.5, 0.5, 0.5, 0.5],
    ].map((t) => new Float64Array(t));
    for (const threshold of cases) {
      const planes = codes.map(() => new Uint8Array(n));
      const out = decideSection(probs, n, C, codes, threshold, planes);
      const p = new Float64Array(C);
      let agree = 0;
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < C; k++) p[k] = probs[k * n + i] as number;
        if (out[i] === codes[decide(p, threshold)] && planes.every((pl, k) => pl[i] === Math.round((p[k] as number) * 255))) agree++;
      }
      expect(agree).toBe(n);
    }
  });
});

describe.skipIf(!haveModel)("bad inputs", () => {
  it("refuses a missing model file, naming it", async () => {
    const e = await rejection(loadModelInfo(join(dir, "none.onnx")));
    expect(e.code).toBe("bad_input");
    expect(e.message).toMatch(/none\.onnx: model file not found/);
  });

  it("refuses models without or with wrong vemscope metadata, and files that are not ONNX", () => {
    const bytes = model.bytes;
    const good = JSON.parse(onnxMetadataProps(bytes).get("vemscope") as string) as Record<string, unknown>;
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /no 'vemscope' metadata/],
      [{ vemscope: "{not json" }, /not valid JSON/],
      [{ vemscope: JSON.stringify({ ...good, normalisation: "minmax" }) }, /normalisation 'minmax'; only 'section-zscore'/],
      [{ vemscope: JSON.stringify({ ...good, classes: ["background", "golgi"] }) }, /unknown class 'golgi'/],
      [{ vemscope: JSON.stringify({ ...good, size_multiple: 0 }) }, /size_multiple/],
      [{ vemscope: JSON.stringify({ ...good, thresholds: { golgi: 0.5 } }) }, /m\.onnx: model metadata 'thresholds': 'golgi' is not a class of the model/],
      [{ vemscope: JSON.stringify({ ...good, thresholds: { mito: 1.2 } }) }, /threshold of 'mito' must be a number between 0 and 1, got 1\.2/],
      [{ vemscope: JSON.stringify({ ...good, thresholds: [0.5] }) }, /'thresholds': expected an object/],
      [{ vemscope: JSON.stringify({ ...good, pixel_nm: { trained: [5, 4], accepts: [3, 7] } }) }, /m\.onnx: model metadata 'pixel_nm': 'trained' must be \[low, high\]/],
      [{ vemscope: JSON.stringify({ ...good, pixel_nm: { trained: [4, 6], accepts: [5, 7] } }) }, /'accepts' \[5,7\] must contain 'trained' \[4,6\]/],
      [{ vemscope: JSON.stringify({ ...good, pixel_nm: 5 }) }, /'pixel_nm': expected \{"trained"/],
    ];
    for (const [props, re] of cases) {
      expect(() => parseModelInfo("m.onnx", withMetadata(bytes, props))).toThrow(re);
    }
    expect(() => parseModelInfo("x.onnx", new Uint8Array([0xff, 0xff, 0xff]))).toThrow(/x\.onnx: not an ONNX model/);
    // The rewritten file is still a valid model when the metadata is right.
    expect(parseModelInfo("m.onnx", withMetadata(bytes, { vemscope: JSON.stringify(good) })).codes).toEqual(model.codes);
  });

  it("refuses a model whose graph has fewer outputs than its metadata's classes", async () => {
    const good = JSON.parse(onnxMetadataProps(model.bytes).get("vemscope") as string) as Record<string, unknown>;
    const liar = parseModelInfo("liar.onnx", withMetadata(model.bytes, { vemscope: JSON.stringify({ ...good, classes: ["background", "mito"] }) }));
    const e = await rejection(segmentVolume(await emCrop(64, 64), { model: liar, runner: { workers: 0, threads: 1 } }));
    expect(e.message).toMatch(/liar\.onnx: inference failed: output shape \[1, 7, 64, 64\] is not \[1, 2, 64, 64\]/);
  });

  it("refuses 3-channel images: as a volume and as an RGB PNG given to segment", async () => {
    const rgb: Volume<Uint8Array> = { data: new Uint8Array(16 * 16 * 3), shape: [16, 16, 1], channels: 3 };
    expect((await rejection(segmentVolume(rgb, { model }))).message).toMatch(/3 channels/);
    const png = join(dir, "rgb.png");
    await sharp(new Uint8Array(32 * 32 * 3).fill(90), { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(png);
    const e = await rejection(segmentCommand({ image: png, voxelNm: [5, 5, 45], out: join(dir, "rgb-out.tif") }));
    expect(e.code).toBe("bad_input");
    expect(e.message).toMatch(/rgb\.png: .*RGB/);
    expect(existsSync(join(dir, "rgb-out.tif"))).toBe(false);
  });

  it("refuses bad tiling options, naming them", async () => {
    const img = await emCrop(32, 32);
    expect((await rejection(segmentVolume(img, { model, tile: 8 }))).message).toMatch(/^--tile:/);
    expect((await rejection(segmentVolume(img, { model, tile: 128, overlap: 64 }))).message).toMatch(/^--overlap:/);
  });
});

describe("blending window: a section tiled in many rows is blended band by band", () => {
  // A pointwise "network" (mito probability = logistic of the normalised pixel) gives every pixel the same answer
  // in every tile that covers it, so the blended result must be that answer wherever the rows are held and dropped.
  const runner: TileRunner = {
    slots: 2,
    description: "pointwise",
    async run(tile) {
      const n = tile.length;
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const p = 1 / (1 + Math.exp(-3 * (tile[i] as number)));
        out[i] = 1 - p;
        out[n + i] = p;
      }
      return out;
    },
    async close() {},
  };
  const fake: ModelInfo = {
    path: "pointwise", bytes: new Uint8Array(0), classNames: ["background", "mito"], codes: [0, 2], normalisation: "section-zscore",
    sizeMultiple: 16, probabilities: true, thresholds: new Map(), minAreaNm2: new Map(), pixelNm: { trained: [5, 5], accepts: [4, 6] },
  };
  const [W, H] = [72, 700];
  const data = Uint8Array.from({ length: W * H }, (_, i) => (Math.imul(i, 2654435761) >>> 24) ^ ((i / W) & 63));
  const norm = normaliseSection(data);
  const mitoP = (x: number) => 1 / (1 + Math.exp(-3 * x));
  const sink = async (tile: number, overlap: number, pixelNm?: [number, number]) => {
    const classes = new Uint8Array(W * H);
    const probs = new Uint8Array(W * H);
    const stats = await segmentSections({ shape: [W, H, 1], read: async () => data }, (_, c, p) => {
      classes.set(c);
      probs.set(p?.[1] as Uint8Array);
    }, { model: fake, tileRunner: runner, tile, overlap, probabilities: true, pixelNm });
    return { classes, probs, stats };
  };

  it("equals the pointwise answer with 64-px tiles (many rows of tiles) and with one tile row", async () => {
    for (const [tile, overlap] of [[64, 16], [96, 32], [1024, 0]] as const) {
      const { classes, probs } = await sink(tile, overlap);
      let off = 0;
      for (let i = 0; i < W * H; i++) {
        const p = mitoP(norm[i] as number);
        if (Math.abs(p - 0.5) > 1e-4 && classes[i] !== (p >= 0.5 ? 2 : 0)) off++;
        expect(Math.abs((probs[i] as number) - 255 * p)).toBeLessThanOrEqual(0.51);
      }
      expect(off, `tile ${tile}`).toBe(0);
    }
  });

  it("resampled (a pixel size outside what the model accepts) equals resampling the pointwise answer back", async () => {
    const { classes, probs, stats } = await sink(64, 16, [10, 10]);
    expect(stats.resampledTo).toEqual({ width: 144, height: 1400, pixelNm: [5, 5] });
    const work = resamplePlanes(norm, 1, W, H, 144, 1400);
    const p2 = new Float32Array(2 * 144 * 1400);
    for (let i = 0; i < work.length; i++) {
      p2[work.length + i] = mitoP(work[i] as number);
      p2[i] = 1 - (p2[work.length + i] as number);
    }
    const back = resamplePlanes(p2, 2, 144, 1400, W, H);
    for (let i = 0; i < W * H; i++) {
      const p = back[W * H + i] as number;
      expect(Math.abs((probs[i] as number) - 255 * p)).toBeLessThanOrEqual(0.51);
      if (Math.abs(p - (back[i] as number)) > 1e-4) expect(classes[i]).toBe(p > (back[i] as number) ? 2 : 0);
    }
  });
});
