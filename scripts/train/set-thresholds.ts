/**
 * Sets a model's decision thresholds (segment.ts `decide`) and, with --min-area, its minimum fragment areas per
 * section (cleanup.ts `removeSmallAreas`) in its ONNX metadata and model card:
 *   tsx scripts/train/set-thresholds.ts MODEL.onnx mito=0.85 [--min-area mito=10000|none] [--how "chosen on ..."]
 *   tsx scripts/train/set-thresholds.ts MODEL.onnx none
 *   tsx scripts/train/set-thresholds.ts MODEL.onnx keep --pixel-nm 4.6,5.9 [--zoom 0.8,1.25]
 * --pixel-nm: the span of the training sources' pixel sizes (nm), --zoom the scale augmentation's range (train.py
 * AUGMENTATIONS): metadata `pixel_nm` (model.ts `PixelRange`), for models exported before train.py wrote it.
 * The graph is untouched (model.ts `withOnnxMetadata` replaces only metadata entries); a `model-card.json`
 * beside the model gets the same `decision` entry. Writes are atomic (temp + rename).
 */
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { minAreaOption, thresholdsOption } from "../../server/pipeline/segment/cli-options.js";
import { onnxMetadataProps, parseMinAreas, parseModelInfo, parsePixelRange, parseThresholds, withOnnxMetadata } from "../../server/pipeline/segment/model.js";

async function writeAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}

const { positionals, values } = parseArgs({ allowPositionals: true, options: { how: { type: "string" }, "min-area": { type: "string" }, "pixel-nm": { type: "string" }, zoom: { type: "string" } } });
const [modelPath, spec] = positionals;
if (modelPath === undefined || spec === undefined) {
  process.stderr.write("usage: tsx scripts/train/set-thresholds.ts MODEL.onnx mito=0.85[,er=0.5] | none | keep [--min-area mito=10000|none] [--how TEXT] [--pixel-nm LO,HI [--zoom 0.8,1.25]]\n");
  process.exit(2);
}
const bytes = new Uint8Array(await readFile(modelPath));
const model = parseModelInfo(modelPath, bytes);
const thresholds = spec === "keep" ? Object.fromEntries(model.thresholds) : Object.fromEntries(thresholdsOption(spec) ?? new Map<string, number>());
parseThresholds(thresholds, model.classNames); // class names of this model
const areaSpec = values["min-area"];
const minAreas = areaSpec === undefined ? Object.fromEntries(model.minAreaNm2) : Object.fromEntries(minAreaOption(areaSpec) ?? new Map<string, number>());
parseMinAreas(minAreas, model.classNames);

const pair = (raw: string) => raw.split(",").map(Number);
let pixelNm = model.pixelNm;
if (values["pixel-nm"] !== undefined) {
  const [lo = NaN, hi = NaN] = pair(values["pixel-nm"]);
  const [zlo = NaN, zhi = NaN] = pair(values.zoom ?? "0.8,1.25");
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  pixelNm = parsePixelRange({ trained: [lo, hi], accepts: [r3(lo / zhi), r3(hi / zlo)] });
}

const props = onnxMetadataProps(bytes);
const meta = JSON.parse(props.get("vemscope") ?? "{}") as Record<string, unknown>;
if (pixelNm) meta.pixel_nm = pixelNm;
delete meta.thresholds;
if (Object.keys(thresholds).length > 0) meta.thresholds = thresholds;
delete meta.min_area_nm2;
if (Object.keys(minAreas).length > 0) meta.min_area_nm2 = minAreas;
const decision = {
  thresholds,
  rule: "a class with a threshold wins where its probability reaches it; the others by argmax",
  ...(Object.keys(minAreas).length > 0 ? { min_area_nm2: minAreas, min_area_rule: "per section, 8-connected fragments of the class smaller than this (nm^2) take the class they border most" } : {}),
  ...(values.how ? { how: values.how } : {}),
};
// "keep" without --min-area or --how leaves the decision, and so the card (its sweep, how it was chosen), as it is.
const decisionChanged = spec !== "keep" || areaSpec !== undefined || values.how !== undefined;
const card = model.card && decisionChanged ? { ...model.card, decision } : undefined;
const entries = new Map([["vemscope", JSON.stringify(meta)], ...(card ? [["model_card", JSON.stringify(card)] as [string, string]] : [])]);
const updated = withOnnxMetadata(bytes, entries);
parseModelInfo(modelPath, updated); // what inference will read
await writeAtomic(modelPath, updated);

const cardFile = path.join(path.dirname(modelPath), "model-card.json");
if (decisionChanged && existsSync(cardFile)) {
  const onDisk = JSON.parse(await readFile(cardFile, "utf8")) as Record<string, unknown>;
  await writeAtomic(cardFile, `${JSON.stringify({ ...onDisk, decision }, null, 1)}\n`);
}
process.stdout.write(`${modelPath}: thresholds ${JSON.stringify(thresholds)}, minimum areas ${JSON.stringify(minAreas)}, pixel sizes ${JSON.stringify(pixelNm ?? "unknown")}\n`);
