import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipelineError } from "../../server/pipeline/errors.js";
import { pixelOption } from "../../server/pipeline/segment/cli-options.js";
import { loadModelInfo } from "../../server/pipeline/segment/model.js";
import { segmentVolume } from "../../server/pipeline/segment/segment.js";
import { REPO_ROOT } from "../../server/repo-root.js";
import { buildSpec, DEFAULT_PYTHON, runTraining, TRAIN_PY, type TrainEvent } from "./command.js";

const dir = mkdtempSync(join(tmpdir(), "vemscope-train-"));
const FAST_WEIGHTS = join(REPO_ROOT, "models", "vemscope-unet-fast.pt");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const probe = spawnSync(DEFAULT_PYTHON, ["-c", "import numpy, torch, onnx, tifffile, skimage"], { encoding: "utf8" });
const haveTorch = probe.status === 0;
const skipReason = haveTorch ? "" : ` (skipped: ${DEFAULT_PYTHON} cannot import torch/onnx/tifffile/skimage; apt-get install python3-torch python3-onnx python3-tifffile python3-skimage)`;

const W = 64;
beforeAll(async () => {
  // Two sections: dark discs ("mitochondria") on a textured background, masks 0/255.
  for (const sub of ["image", "mito"]) mkdirSync(join(dir, "data", sub), { recursive: true });
  for (let z = 0; z < 2; z++) {
    const img = new Uint8Array(W * W);
    const mask = new Uint8Array(W * W);
    for (let y = 0; y < W; y++) {
      for (let x = 0; x < W; x++) {
        const inside = (x - 20 - z * 8) ** 2 + (y - 30) ** 2 < 100 || (x - 46) ** 2 + (y - 14 - z * 4) ** 2 < 64;
        img[y * W + x] = inside ? 60 + ((x * 7 + y) % 13) : 170 + ((x * 3 + y * 5) % 29);
        mask[y * W + x] = inside ? 255 : 0;
      }
    }
    const name = `${String(z).padStart(4, "0")}.png`;
    await sharp(img, { raw: { width: W, height: W, channels: 1 } }).toColourspace("b-w").png().toFile(join(dir, "data/image", name));
    await sharp(mask, { raw: { width: W, height: W, channels: 1 } }).toColourspace("b-w").png().toFile(join(dir, "data/mito", name));
  }
});

async function rejection(p: Promise<unknown>): Promise<PipelineError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PipelineError);
  return e as PipelineError;
}

describe("train command", () => {
  it("writes a spec for --images with --masks CLASS=DIR, and checks the simple form's options", () => {
    const spec = buildSpec({ images: join(dir, "data/image"), masks: [`mito=${join(dir, "data/mito")}`] });
    expect(spec.sources[0]).toMatchObject({ name: "image", images: join(dir, "data/image"), masks: { mito: join(dir, "data/mito") } });
    expect(() => buildSpec({ images: join(dir, "data/image"), masks: ["golgi=/x"] })).toThrow(/--masks: expected CLASS=DIR/);
    expect(() => buildSpec({ images: join(dir, "data/image") })).toThrow(/either --masks/);
    expect(() => buildSpec({ images: join(dir, "nope"), labels: "x.tif" })).toThrow(/--images .*nope: no such file/);
    expect(buildSpec({ images: join(dir, "data/image"), labels: join(dir, "data/mito"), pixelNm: pixelOption("4.6") }).sources[0]?.pixel_nm).toEqual([4.6, 4.6]);
    expect(pixelOption("5,6")).toEqual([5, 6]);
    for (const bad of ["0", "5,-1", "a", "1,2,3"]) expect(() => pixelOption(bad)).toThrow(/--pixel-nm: expected X or X,Y/);
  });

  it("says what to install when Python lacks torch", async () => {
    const fake = join(dir, "fake-python");
    writeFileSync(fake, "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n");
    chmodSync(fake, 0o755);
    const e = await rejection(runTraining({ out: join(dir, "out-fake"), images: join(dir, "data/image"), masks: [`mito=${join(dir, "data/mito")}`], python: fake }));
    expect(e.message).toMatch(/Python module 'torch' is missing; .*apt-get install python3-torch python3-onnx/);
    expect(JSON.parse(readFileSync(join(dir, "out-fake/spec.json"), "utf8")).sources).toHaveLength(1);
    const none = await rejection(runTraining({ out: join(dir, "out-none"), images: join(dir, "data/image"), labels: join(dir, "data/mito"), python: join(dir, "no-python") }));
    expect(none.message).toMatch(/cannot run Python/);
  });

  it("refuses a missing or malformed spec, naming it", async () => {
    expect((await rejection(runTraining({ out: join(dir, "o1"), data: join(dir, "missing.json") }))).message).toMatch(/missing\.json: file not found/);
    writeFileSync(join(dir, "bad.json"), "{\"sources\": []}");
    expect((await rejection(runTraining({ out: join(dir, "o2"), data: join(dir, "bad.json") }))).message).toMatch(/bad\.json: spec needs a non-empty "sources"/);
    const aug = await rejection(runTraining({ out: join(dir, "o3"), data: join(dir, "bad.json"), augment: "strong" }));
    expect(aug.message).toMatch(/--augment: expected one of standard, domain, got 'strong'/);
    expect((await rejection(runTraining({ out: join(dir, "o4"), data: join(dir, "bad.json"), ema: 1 }))).message).toMatch(/--ema: expected a decay in \[0, 1\)/);
  });

  it.skipIf(!haveTorch)(`trains 4 iterations on two 64 x 64 sections and exports a model that segment can run${skipReason}`, async () => {
    const events: TrainEvent[] = [];
    const out = join(dir, "run");
    const result = await runTraining({
      out,
      images: join(dir, "data/image"),
      masks: [`mito=${join(dir, "data/mito")}`],
      pixelNm: [5, 5],
      iters: 4,
      crop: 32,
      batch: 2,
      valEvery: 2,
      logEvery: 1,
      threads: 1,
      seed: 3,
      augment: "domain",
      onEvent: (e) => events.push(e),
    });
    expect(events.some((e) => e.event === "packed")).toBe(true);
    const iters = events.filter((e) => e.event === "iter");
    expect(iters.map((e) => e.iter)).toEqual([1, 2, 3, 4]);
    expect(typeof iters[0]?.loss).toBe("number");
    expect(events.some((e) => e.event === "val")).toBe(true);
    expect(result.last?.event).toBe("done");
    expect(result.model.classNames).toEqual(["background", "er", "mito", "ld", "lyso", "perox", "nucleus"]);
    expect(existsSync(join(out, "model-card.json"))).toBe(true);
    expect((result.model.card?.training as { augmentation: string }).augmentation).toMatch(/random monotone intensity curve/);
    // The weight average is on by default (train.py --ema 0.999).
    expect((result.model.card?.training as { ema_decay?: number }).ema_decay).toBe(0.999);
    // The pixel sizes it was trained for: the source's 5 nm, and what the domain profile's zoom (0.65-1.5) reached.
    expect(result.model.pixelNm).toEqual({ trained: [5, 5], accepts: [3.333, 7.692] });
    // mito was annotated alone (learnt against "everything else"): the export swept its threshold on the training
    // sections of that source and put the winner, if one beat argmax, into the model's metadata.
    const decision = result.model.card?.decision as { thresholds: Record<string, number>; sweep: Record<string, { sources: string[]; dice: Record<string, number> }> };
    expect(decision.sweep.mito?.sources).toEqual(["image"]);
    expect(Object.keys(decision.sweep.mito?.dice ?? {})).toHaveLength(14);
    expect(Object.fromEntries(result.model.thresholds)).toEqual(decision.thresholds);
    expect(events.some((e) => e.event === "decision")).toBe(true);
    // With the pixel size given, the minimum area was swept on the same sections, and the winner (if any) went into
    // the metadata too.
    const areas = result.model.card?.decision as { min_area_nm2: Record<string, number>; min_area_sweep: Record<string, Record<string, number>> };
    expect(new Set(Object.keys(areas.min_area_sweep.mito ?? {}))).toEqual(new Set(["none", "2500", "5000", "7500", "10000", "12500", "15000", "20000"]));
    expect(Object.fromEntries(result.model.minAreaNm2)).toEqual(areas.min_area_nm2);
    expect((result.model.card?.data as { pixel_nm?: number[] }[])[0]?.pixel_nm).toEqual([5, 5]);
    const seg = await segmentVolume({ data: new Uint8Array(48 * 40).fill(100), shape: [48, 40, 1] }, { model: result.model, runner: { workers: 0, threads: 1 } });
    expect(seg.classes.shape).toEqual([48, 40, 1]);
    // And its int8 copy, calibrated on the training images, with the same classes.
    expect(result.int8).toBe(join(out, "model-int8.onnx"));
    const int8 = await loadModelInfo(join(out, "model-int8.onnx"));
    expect(int8.classNames).toEqual(result.model.classNames);
    expect(int8.minAreaNm2).toEqual(result.model.minAreaNm2);
    expect((int8.card?.quantization as { calibration: { stacks: string[] } }).calibration.stacks).toEqual([join(dir, "data/image")]);
    expect(events.some((e) => e.event === "quantized")).toBe(true);
    // --resume continues from the checkpoint rather than starting afresh.
    const resumed: TrainEvent[] = [];
    await runTraining({ out, images: join(dir, "data/image"), masks: [`mito=${join(dir, "data/mito")}`], iters: 5, crop: 32, batch: 2, valEvery: 5, logEvery: 1, threads: 1, resume: true, onEvent: (e) => resumed.push(e) });
    expect(resumed.find((e) => e.event === "resumed")?.iter).toBe(4);
    expect(resumed.filter((e) => e.event === "iter").map((e) => e.iter)).toEqual([5]);
  }, 180_000);

  it.skipIf(!haveTorch)(`--init fine-tunes given weights in their own architecture, and refuses a missing or foreign file${skipReason}`, async () => {
    const simple = { images: join(dir, "data/image"), masks: [`mito=${join(dir, "data/mito")}`], crop: 32, batch: 2, logEvery: 1, threads: 1 };
    const events: TrainEvent[] = [];
    // The shipped fast model's weights are 8-16-32-64; no --widths is given, so they must set the architecture.
    const tuned = await runTraining({ ...simple, out: join(dir, "tuned"), iters: 2, valEvery: 2, init: FAST_WEIGHTS, ema: 0, onEvent: (e) => events.push(e) });
    expect(events.some((e) => e.event === "initialised")).toBe(true);
    expect(tuned.model.card?.architecture).toMatch(/\(8-16-32-64\) \+ 64 bottleneck/);
    expect((tuned.model.card?.training as { initialised_from: { from: string } }).initialised_from.from).toBe("vemscope-unet-fast.pt");
    // --ema 0: the raw weights, validated alone (no "raw" scores beside them) and no decay in the card.
    expect((tuned.model.card?.training as { ema_decay?: number }).ema_decay).toBeUndefined();
    expect(events.find((e) => e.event === "val")?.raw).toBeUndefined();
    expect((await rejection(runTraining({ ...simple, out: join(dir, "t2"), iters: 1, init: join(dir, "none.pt") }))).message).toMatch(/^--init .*none\.pt: no such file/);
    const foreign = join(dir, "foreign.pt");
    writeFileSync(foreign, "not torch");
    expect((await rejection(runTraining({ ...simple, out: join(dir, "t3"), iters: 1, init: foreign }))).message).toMatch(/foreign\.pt: not a weights file saved by train\.py/);
  }, 300_000);

  it.skipIf(!haveTorch)(`--adapt adds unannotated images that --init's model pseudo-labels, kept out of the decision sweep${skipReason}`, async () => {
    const simple = { images: join(dir, "data/image"), masks: [`mito=${join(dir, "data/mito")}`], crop: 32, batch: 2, logEvery: 1, threads: 1 };
    const events: TrainEvent[] = [];
    const r = await runTraining({ ...simple, out: join(dir, "adapted"), iters: 2, valEvery: 2, init: FAST_WEIGHTS, adapt: [`mito=${join(dir, "data/image")}`], onEvent: (e) => events.push(e) });
    const pl = events.find((e) => e.event === "pseudo_labelled") as { source: string; from: string; share: Record<string, number>; unlabelled: number } | undefined;
    expect(pl?.source).toBe("image-unlabelled");
    expect(pl?.from).toBe("vemscope-unet-fast.pt");
    expect(Object.keys(pl?.share ?? {}).sort()).toEqual(["background", "mito"]);
    expect((pl?.share.background ?? 0) + (pl?.share.mito ?? 0) + (pl?.unlabelled ?? 0)).toBeCloseTo(1, 3);
    const data = r.model.card?.data as { name: string; annotated: string[]; val_slices: number[]; pseudo_labels?: { sure: number; none_below: number } }[];
    expect(data.map((d) => d.name)).toEqual(["image", "image-unlabelled"]);
    expect(data[1]).toMatchObject({ annotated: ["mito"], val_slices: [], pseudo_labels: { sure: 0.9, none_below: 0.003 } });
    // Thresholds are chosen on annotated sections only: pseudo-labels would grade the model by its own answers.
    expect((r.model.card?.decision as { sweep: Record<string, { sources: string[] }> }).sweep.mito?.sources).toEqual(["image"]);
    const spec = JSON.parse(readFileSync(r.spec, "utf8")) as { sources: { unlabelled?: string[] }[] };
    expect(spec.sources.map((src) => src.unlabelled)).toEqual([undefined, ["mito"]]);
    expect((await rejection(runTraining({ ...simple, out: join(dir, "a2"), iters: 1, adapt: [`mito=${join(dir, "data/image")}`] }))).message).toMatch(/^--adapt: needs --init/);
    expect((await rejection(runTraining({ ...simple, out: join(dir, "a3"), iters: 1, init: FAST_WEIGHTS, adapt: [join(dir, "data/image")] }))).message).toMatch(/^--adapt: expected CLASS\[,CLASS\]=DIR/);
    expect((await rejection(runTraining({ ...simple, out: join(dir, "a4"), iters: 1, init: FAST_WEIGHTS, adapt: ["golgi=/x"] }))).message).toMatch(/--adapt: expected/);
    // Unlabelled images alone: nothing would correct the model's own answers.
    const alone = join(dir, "alone.json");
    writeFileSync(alone, JSON.stringify({ sources: [{ images: join(dir, "data/image"), unlabelled: ["mito"] }] }));
    expect((await rejection(runTraining({ out: join(dir, "a5"), data: alone, iters: 1, crop: 32, batch: 2, threads: 1, init: FAST_WEIGHTS }))).message).toMatch(/need annotated ones beside them/);
    const both = join(dir, "both.json");
    writeFileSync(both, JSON.stringify({ sources: [{ images: join(dir, "data/image"), unlabelled: ["mito"], masks: { mito: join(dir, "data/mito") } }] }));
    expect((await rejection(runTraining({ out: join(dir, "a6"), data: both, iters: 1, init: FAST_WEIGHTS }))).message).toMatch(/'unlabelled' sources have no 'labels' or 'masks'/);
  }, 300_000);

  it.skipIf(!haveTorch)(`pseudo_label: a class where it is sure (>= 0.9), none where every listed class is <= 0.003, else unlabelled${skipReason}`, () => {
    const code = [
      "import sys, json, numpy as np, torch",
      `sys.path.insert(0, ${JSON.stringify(dirname(TRAIN_PY))})`,
      "import train",
      "class Pointwise(torch.nn.Module):  # logits from the pixel alone, so mirror images agree",
      "    def __init__(self):",
      "        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))",
      "    def forward(self, x):",
      "        z = torch.zeros(x.shape[0], len(train.CLASS_NAMES), *x.shape[2:])",
      "        z[:, 2] = x[:, 0]",
      "        return z",
      "C = len(train.CLASS_NAMES)",
      "odds = lambda p: float(np.log(p / (1 - p) * (C - 1)))  # logit of mito against six zeros for probability p",
      "x = np.array([[odds(0.95), odds(0.5), odds(0.002)], [odds(0.89), odds(0.004), odds(0.91)]], np.float32)",
      "lab = train.pseudo_label(Pointwise().eval(), np.tile(x, (1, 1)), [2])",
      "print(json.dumps(lab.tolist()))",
    ].join("\n");
    const r = spawnSync(DEFAULT_PYTHON, ["-c", code], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([[2, 255, 0], [255, 255, 2]]);
  });

  it.skipIf(!haveTorch)(`the domain augmentation's intensity curve keeps the order of grey levels, its blur keeps their mean${skipReason}`, () => {
    const code = [
      "import sys, json, numpy as np, torch",
      `sys.path.insert(0, ${JSON.stringify(dirname(TRAIN_PY))})`,
      "import train",
      "rng = np.random.default_rng(7)",
      "x = torch.linspace(-6, 6, 241)",
      "curves = [train.monotone_curve(x, rng, 0.6) for _ in range(20)]",
      "img = torch.from_numpy(rng.normal(0, 1, (1, 40, 40)).astype(np.float32))",
      "b = train.gaussian_blur(img, 1.5)",
      "print(json.dumps({'increasing': all(bool((c[1:] > c[:-1]).all()) for c in curves),",
      "  'changed': max(float((c - x).abs().max()) for c in curves),",
      "  'at0': max(abs(float(c[120])) for c in curves),",
      "  'flat': float((train.gaussian_blur(torch.full((1, 20, 20), 2.5), 1.0) - 2.5).abs().max()),",
      "  'std': [float(img.std()), float(b.std())], 'shape': list(b.shape)}))",
    ].join("\n");
    const r = spawnSync(DEFAULT_PYTHON, ["-c", code], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { increasing: boolean; changed: number; at0: number; flat: number; std: number[]; shape: number[] };
    expect(o.increasing).toBe(true);
    expect(o.changed).toBeGreaterThan(0.5); // it does bend the grey levels
    expect(o.at0).toBeLessThan(1e-5); // and leaves the mean grey (0 after z-scoring) where it was
    expect(o.flat).toBeLessThan(1e-5);
    expect(o.shape).toEqual([1, 40, 40]);
    expect(o.std[1]).toBeLessThan(o.std[0] * 0.5);
  });

  it.skipIf(!haveTorch)(`--ema averages every floating tensor (batch-norm statistics too) with timm's warm-up, and copies BN's counter${skipReason}`, () => {
    const code = [
      "import sys, json, torch",
      `sys.path.insert(0, ${JSON.stringify(dirname(TRAIN_PY))})`,
      "import train",
      "net = lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))",
      "model, ema = net(), net()",
      "ema.load_state_dict(model.state_dict())",
      "w0 = model[0].weight.detach().clone()",
      "with torch.no_grad():",
      "    model[0].weight.add_(1.0); model[1].running_mean.fill_(4.0); model[1].num_batches_tracked.fill_(7)",
      "d = train.ema_decay(0.999, 0)",
      "train.ema_update(ema, model, d)",
      "print(json.dumps({'d0': d, 'd_late': train.ema_decay(0.999, 10**6),",
      "  'weight': float((ema[0].weight - w0).abs().max()), 'mean': ema[1].running_mean.tolist(),",
      "  'count': int(ema[1].num_batches_tracked), 'model_untouched': float((model[0].weight - w0).min())}))",
    ].join("\n");
    const r = spawnSync(DEFAULT_PYTHON, ["-c", code], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { d0: number; d_late: number; weight: number; mean: number[]; count: number; model_untouched: number };
    expect(o.d0).toBeCloseTo(0.1, 12); // (1 + 0) / (10 + 0): the first steps are mostly forgotten
    expect(o.d_late).toBe(0.999);
    expect(o.weight).toBeCloseTo(0.9, 6); // 0.1 * old + 0.9 * (old + 1)
    expect(o.mean).toEqual([expect.closeTo(3.6, 6), expect.closeTo(3.6, 6)]);
    expect(o.count).toBe(7);
    expect(o.model_untouched).toBeCloseTo(1, 6);
  });

  it.skipIf(!haveTorch)(`the loss ignores UNLABELLED pixels: whatever the network says there, loss and gradient stay${skipReason}`, () => {
    const code = [
      "import sys, json, torch",
      `sys.path.insert(0, ${JSON.stringify(dirname(TRAIN_PY))})`,
      "import train",
      "g = torch.Generator().manual_seed(3)",
      "C = len(train.CLASS_NAMES)",
      "y = torch.randint(0, 3, (2, 16, 16), generator=g)",
      "y[:, :, 8:] = train.UNLABELLED",
      "kmask = train.known_mask([[2], [1, 2, 3, 4, 5, 6]], 'cpu')",
      "w = torch.ones(C)",
      "def run(logits):",
      "    logits = logits.clone().requires_grad_(True)",
      "    loss, _, _ = train.losses(logits, y, kmask, w)",
      "    loss.backward()",
      "    return loss.item(), logits.grad",
      "a = torch.randn(2, C, 16, 16, generator=g)",
      "b = a.clone(); b[:, :, :, 8:] = 50 * torch.randn(2, C, 16, 8, generator=g)",
      "la, ga = run(a); lb, gb = run(b)",
      "yl = y.clone(); yl[:, :, 8:] = 0",
      "lfull, _, _ = train.losses(a, yl, kmask, w)",
      "print(json.dumps({'same': abs(la - lb), 'grad_diff': float((ga - gb).abs().max()),",
      "  'grad_unlabelled': float(ga[:, :, :, 8:].abs().max()), 'labelled_differs': abs(lfull.item() - la), 'finite': la == la}))",
    ].join("\n");
    const r = spawnSync(DEFAULT_PYTHON, ["-c", code], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { same: number; grad_diff: number; grad_unlabelled: number; labelled_differs: number; finite: boolean };
    expect(o.finite).toBe(true);
    expect(o.same).toBeLessThan(1e-6);
    expect(o.grad_diff).toBeLessThan(1e-6);
    expect(o.grad_unlabelled).toBe(0);
    expect(o.labelled_differs).toBeGreaterThan(1e-3); // the same pixels called background do count
  });

  it.skipIf(!haveTorch)(`choose_min_area keeps the smallest area that drops false specks and no true object${skipReason}`, () => {
    // A true disc of 1257 px (31,400 nm^2 at 5 nm) predicted with three false 3 x 3 specks (225 nm^2 each).
    const code = [
      "import sys, json, numpy as np",
      `sys.path.insert(0, ${JSON.stringify(dirname(TRAIN_PY))})`,
      "import train",
      "yy, xx = np.mgrid[:96, :96]",
      "t = (yy - 48) ** 2 + (xx - 48) ** 2 <= 400",
      "p = t.copy()",
      "for y, x in [(2, 2), (2, 90), (90, 2)]: p[y:y + 3, x:x + 3] = True",
      "area, table = train.choose_min_area([[(p, t)]], [[5.0, 5.0]])",
      "print(json.dumps({'area': area, 'table': table}))",
    ].join("\n");
    const r = spawnSync(DEFAULT_PYTHON, ["-c", code], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const { area, table } = JSON.parse(r.stdout) as { area: number; table: Record<string, number> };
    expect(area).toBe(2500);
    expect(table.none).toBeLessThan(1);
    for (const a of ["2500", "5000", "20000"]) expect(table[a]).toBe(1);
    // Larger than the disc itself: everything goes, Dice 0.
    const r2 = spawnSync(DEFAULT_PYTHON, ["-c", code.replace("[[5.0, 5.0]]", "[[1.0, 1.0]]")], { encoding: "utf8" });
    const t2 = (JSON.parse(r2.stdout) as { table: Record<string, number> }).table;
    expect(t2["2500"]).toBe(0);
  });

  it.skipIf(!haveTorch)(`choose_decision gives fully annotated classes minimum areas after argmax, and no thresholds${skipReason}`, () => {
    // A "network" whose most probable class is the input value rounded: a lipid droplet disc (code 3) predicted with
    // three false 3 x 3 specks of it, on a source annotating every class at 5 nm; a second source, without pixel_nm,
    // annotates lysosomes (code 4) alone: learnt marginally, they take the threshold path and get no minimum area.
    const code = [
      "import sys, json, types, numpy as np, torch",
      `sys.path.insert(0, ${JSON.stringify(dirname(TRAIN_PY))})`,
      "import train",
      "class Nearest(torch.nn.Module):",
      "    def __init__(self):",
      "        super().__init__(); self.dummy = torch.nn.Parameter(torch.zeros(1))",
      "    def forward(self, x):",
      "        codes = torch.arange(7, dtype=torch.float32).view(1, 7, 1, 1)",
      "        return -(x - codes) ** 2",
      "yy, xx = np.mgrid[:96, :96]",
      "t = np.where((yy - 48) ** 2 + (xx - 48) ** 2 <= 400, 3, 0).astype(np.uint8)",
      "x = t.astype(np.float32)",
      "for y0, x0 in [(2, 2), (2, 90), (90, 2)]: x[y0:y0 + 3, x0:x0 + 3] = 3",
      "lyso = np.where((yy - 48) ** 2 + (xx - 48) ** 2 <= 100, 4, 0).astype(np.uint8)",
      "full = {'name': 'full', 'known': [1, 2, 3, 4, 5, 6], 'train': [0], 'x': x[None], 'y': t[None], 'pixel_nm': [5.0, 5.0]}",
      "other = {'name': 'other', 'known': [4], 'train': [0], 'x': lyso[None].astype(np.float32), 'y': lyso[None]}",
      "d = train.choose_decision(Nearest(), types.SimpleNamespace(sources=[full, other]))",
      "print(json.dumps(d))",
    ].join("\n");
    const r = spawnSync(DEFAULT_PYTHON, ["-c", code], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as { thresholds: Record<string, number>; min_area_nm2: Record<string, number>; min_area_sweep: Record<string, Record<string, number>> };
    expect(d.thresholds).toEqual({});
    expect(d.min_area_nm2).toEqual({ ld: 2500 });
    expect(d.min_area_sweep.ld?.none).toBeLessThan(1);
    expect(d.min_area_sweep.ld?.["2500"]).toBe(1);
    // Swept where only the source with the pixel size annotates the class, with nothing to remove: none chosen.
    expect(Object.keys(d.min_area_sweep).sort()).toEqual(["er", "ld", "mito", "nucleus", "perox"]);
  });

  it.skipIf(!haveTorch)(`compact packs round-trip; a held-out source is validated but never trained on; export rebuilds the ONNX${skipReason}`, () => {
    const py = (args: string[]) => {
      const r = spawnSync(DEFAULT_PYTHON, [TRAIN_PY, ...args], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as TrainEvent);
    };
    const src = (name: string) => ({ name, images: join(dir, "data/image"), masks: { mito: join(dir, "data/mito") }, val_slices: [1] });
    writeFileSync(join(dir, "two.json"), JSON.stringify({ sources: [src("a"), src("b")] }));
    py(["pack", "--spec", join(dir, "two.json"), "--out", join(dir, "plain.npz")]);
    py(["pack", "--spec", join(dir, "two.json"), "--out", join(dir, "compact.npz"), "--compact"]);
    // The compact pack stores differences along x; decoding must give the very pixels of the plain pack.
    const check = spawnSync(DEFAULT_PYTHON, ["-c", `import sys; sys.path.insert(0, ${JSON.stringify(join(TRAIN_PY, ".."))})
import numpy as np, train
a, b = np.load(${JSON.stringify(join(dir, "plain.npz"))}), np.load(${JSON.stringify(join(dir, "compact.npz"))})
assert "images_0" not in b.files and "xdelta_images_0" in b.files
assert all(np.array_equal(a[f"images_{k}"], train.read_member(b, f"images_{k}")) for k in (0, 1))
print("same")`], { encoding: "utf8" });
    expect(check.stdout.trim(), check.stderr).toBe("same");
    const out = join(dir, "held");
    const fit = py(["fit", "--data", join(dir, "compact.npz"), "--out", out, "--iters", "2", "--crop", "32", "--batch", "2", "--val-every", "2",
      "--log-every", "1", "--threads", "1", "--cpu", "--no-onnx", "--fresh", "--holdout", "b", "--ema", "0.99"]);
    writeFileSync(join(out, "fit.log"), fit.map((e) => JSON.stringify(e)).join("\n"));
    const val = fit.find((e) => e.event === "val")?.val as Record<string, unknown>;
    expect(Object.keys(val).sort()).toEqual(["a", "b (held out)"]);
    // --ema: the average is what was validated and kept; the raw weights' scores ride along.
    const raw = fit.find((e) => e.event === "val")?.raw as { score: number; val: Record<string, unknown> };
    expect(Object.keys(raw.val).sort()).toEqual(["a", "b (held out)"]);
    expect(typeof raw.score).toBe("number");
    const card = JSON.parse(readFileSync(join(out, "model-card.json"), "utf8")) as { data: { name: string; held_out?: boolean; train_slices: number[]; weight: number }[]; training: { ema_decay?: number } };
    expect(card.training.ema_decay).toBe(0.99);
    expect(card.data.find((d) => d.name === "b")).toMatchObject({ held_out: true, train_slices: [], weight: 0 });
    expect(existsSync(join(out, "model.onnx"))).toBe(false);
    py(["export", "--weights", join(out, "best.pt"), "--out", join(out, "exported"), "--cross-dataset", join(out, "fit.log")]);
    const exported = JSON.parse(readFileSync(join(out, "exported/model-card.json"), "utf8")) as { cross_dataset: { held_out: Record<string, unknown> }[] };
    expect(Object.keys(exported.cross_dataset[0]?.held_out ?? {})).toEqual(["b"]);
    expect(existsSync(join(out, "exported/model.onnx"))).toBe(true);
  }, 180_000);
});
