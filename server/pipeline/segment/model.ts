/**
 * The segmentation model file: an ONNX 2D U-Net exported by scripts/train/train.py, carrying a "vemscope"
 * metadata entry that says which class each output channel is, how inputs were normalised and what tile
 * sizes the network accepts. Inference must match training exactly, so a model without that entry (or
 * with values this code does not implement) is refused rather than run with guessed conventions.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { classByName } from "../classes.js";
import { PipelineError } from "../errors.js";
import { REPO_ROOT } from "../../repo-root.js";

/**
 * The shipped default (since session 14): the int8 copy (`vemscope quantize`) of the fast network beside it
 * (8-16-32-64, models/vemscope-unet-fast.onnx; its weights for `train --init` in vemscope-unet-fast.pt), trained and
 * fine-tuned on this repo's CPU: the best held-aside Lucchi and phantom Dice of the shipped models at ~1.5x the
 * wide model's speed (README, "Segmentation model").
 */
export const DEFAULT_MODEL_PATH = join(REPO_ROOT, "models", "vemscope-unet-fast-int8.onnx");
/** The trained float model the default was quantized from (float inference, `vemscope quantize`). */
export const FLOAT_MODEL_PATH = join(REPO_ROOT, "models", "vemscope-unet-fast.onnx");
/**
 * The wide model (16-32-64-128, GPU-trained; the default until session 14), int8, and its float original: a
 * little better on CDeep3M, slower (README, "Segmentation model").
 */
export const WIDE_MODEL_PATH = join(REPO_ROOT, "models", "vemscope-unet-int8.onnx");
export const WIDE_FLOAT_MODEL_PATH = join(REPO_ROOT, "models", "vemscope-unet.onnx");

/** The only input normalisation implemented (see normalise.ts); train.py's NORMALISATION. */
export const SUPPORTED_NORMALISATION = "section-zscore";

export interface ModelInfo {
  path: string;
  bytes: Uint8Array;
  /** Class names in output-channel order, as stored in the model. */
  classNames: string[];
  /** The class code (DESIGN.md) written for each output channel. */
  codes: number[];
  normalisation: string;
  /** Input height and width must be multiples of this (the U-Net's total pooling factor). */
  sizeMultiple: number;
  /**
   * The graph's output holds probabilities (it ends in a softmax, as `vemscope quantize` writes it: vectorised by
   * onnxruntime, where ours in JavaScript took ~a fifth of a tile's CPU time), not logits (inference then applies
   * the softmax). Metadata `probabilities: true`; absent means logits.
   */
  probabilities: boolean;
  /** The training run's model card (data, iterations, validation), when present. */
  card?: Record<string, unknown>;
  /**
   * Per class name, the probability a pixel needs to be that class (decision.ts); classes without one compete
   * by argmax. From the metadata's `thresholds`; empty when it has none.
   */
  thresholds: ReadonlyMap<string, number>;
  /**
   * Per class name, the least area (nm^2) a connected fragment of that class may have in a section; smaller ones
   * join the class they border most (segment.ts). From the metadata's `min_area_nm2`; empty when it has none.
   */
  minAreaNm2: ReadonlyMap<string, number>;
  /** The pixel sizes the model was trained for (metadata `pixel_nm`); absent: unknown, sections are never resampled. */
  pixelNm?: PixelRange;
}

/**
 * `trained`: the span of the training sources' pixel sizes (nm); `accepts`: the span the scale augmentation
 * reached (`trained` widened by its zoom range). Sections whose pixel size lies outside `accepts` are resampled
 * into `trained` for inference (segment.ts), where the network has seen structures at their size.
 */
export interface PixelRange {
  trained: [number, number];
  accepts: [number, number];
}

/** `{"trained": [lo, hi], "accepts": [lo, hi]}`, positive, with accepts containing trained. */
export function parsePixelRange(raw: unknown): PixelRange {
  const pair = (v: unknown, key: string): [number, number] => {
    if (!Array.isArray(v) || v.length !== 2 || !v.every((x): x is number => typeof x === "number" && Number.isFinite(x) && x > 0) || v[0] > v[1]) {
      throw new Error(`'${key}' must be [low, high] in nm, positive and low <= high, got ${JSON.stringify(v)}`);
    }
    return [v[0], v[1]];
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`expected {"trained": [lo, hi], "accepts": [lo, hi]}, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const trained = pair(r.trained, "trained");
  const accepts = pair(r.accepts, "accepts");
  if (accepts[0] > trained[0] || accepts[1] < trained[1]) throw new Error(`'accepts' ${JSON.stringify(accepts)} must contain 'trained' ${JSON.stringify(trained)}`);
  return { trained, accepts };
}

function bad(file: string, message: string, cause?: unknown): PipelineError {
  return new PipelineError("bad_input", message, file, cause === undefined ? undefined : { cause });
}

/** Reads and validates a model file; the bytes are kept so sessions (and workers) need not re-read it. */
export async function loadModelInfo(path: string): Promise<ModelInfo> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    const missing = e instanceof Error && "code" in e && e.code === "ENOENT";
    throw bad(path, missing ? "model file not found (train one with 'vemscope train' or pass --model)" : `cannot read model: ${String(e)}`, e);
  }
  return parseModelInfo(path, bytes);
}

export function parseModelInfo(path: string, bytes: Uint8Array): ModelInfo {
  let props: Map<string, string>;
  try {
    props = onnxMetadataProps(bytes);
  } catch (e) {
    throw bad(path, `not an ONNX model (${e instanceof Error ? e.message : String(e)})`, e);
  }
  const raw = props.get("vemscope");
  if (raw === undefined) {
    throw bad(path, "model has no 'vemscope' metadata (classes, normalisation, size_multiple); export it with scripts/train/train.py");
  }
  let meta: unknown;
  try {
    meta = JSON.parse(raw);
  } catch (e) {
    throw bad(path, "model's 'vemscope' metadata is not valid JSON", e);
  }
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw bad(path, "model's 'vemscope' metadata is not a JSON object");
  const m = meta as Record<string, unknown>;
  const classes = m.classes;
  if (!Array.isArray(classes) || classes.length < 2 || !classes.every((c): c is string => typeof c === "string")) {
    throw bad(path, "model metadata 'classes' must be a list of at least two class names");
  }
  const codes = classes.map((name) => {
    const code = name === "background" ? 0 : classByName(name)?.code;
    if (code === undefined) throw bad(path, `model metadata names unknown class '${name}' (known: background, er, mito, ld, lyso, perox, nucleus)`);
    return code;
  });
  if (new Set(codes).size !== codes.length) throw bad(path, "model metadata 'classes' lists a class twice");
  if (m.normalisation !== SUPPORTED_NORMALISATION) {
    throw bad(path, `model expects normalisation '${String(m.normalisation)}'; only '${SUPPORTED_NORMALISATION}' is implemented`);
  }
  const sm = m.size_multiple;
  if (typeof sm !== "number" || !Number.isInteger(sm) || sm < 1 || sm > 1024) {
    throw bad(path, `model metadata 'size_multiple' must be an integer 1-1024, got ${JSON.stringify(sm)}`);
  }
  const probabilities = m.probabilities ?? false;
  if (typeof probabilities !== "boolean") throw bad(path, `model metadata 'probabilities' must be true or false, got ${JSON.stringify(m.probabilities)}`);
  let card: Record<string, unknown> | undefined;
  const cardText = props.get("model_card");
  if (cardText !== undefined) {
    try {
      const c: unknown = JSON.parse(cardText);
      if (typeof c === "object" && c !== null && !Array.isArray(c)) card = c as Record<string, unknown>;
    } catch {
      card = undefined; // the card documents the model; a broken one must not stop inference
    }
  }
  // An optional metadata entry, parsed; its errors name the entry and the file.
  const field = <T>(key: string, parse: (raw: unknown) => T): T => {
    try {
      return parse(m[key]);
    } catch (e) {
      throw bad(path, `model metadata '${key}': ${e instanceof Error ? e.message : String(e)}`, e);
    }
  };
  const thresholds = field("thresholds", (raw) => parseThresholds(raw ?? {}, classes));
  const minAreaNm2 = field("min_area_nm2", (raw) => parseMinAreas(raw ?? {}, classes));
  const pixelNm = field("pixel_nm", (raw) => (raw === undefined ? undefined : parsePixelRange(raw)));
  return { path, bytes, classNames: classes, codes, normalisation: SUPPORTED_NORMALISATION, sizeMultiple: sm, probabilities, card, thresholds, minAreaNm2, ...(pixelNm ? { pixelNm } : {}) };
}

/** An override of the model's thresholds, checked against its classes (PipelineError naming --thresholds). */
export function checkThresholds(model: ModelInfo, thresholds: ReadonlyMap<string, number> | undefined): void {
  checkOverride(model, thresholds, parseThresholds, "--thresholds");
}

/** An override of the model's minimum areas, checked against its classes (PipelineError naming --min-area). */
export function checkMinAreas(model: ModelInfo, areas: ReadonlyMap<string, number> | undefined): void {
  checkOverride(model, areas, parseMinAreas, "--min-area");
}

function checkOverride(model: ModelInfo, values: ReadonlyMap<string, number> | undefined, parse: (raw: unknown, names: readonly string[]) => unknown, option: string): void {
  if (values === undefined) return;
  try {
    parse(Object.fromEntries(values), model.classNames);
  } catch (e) {
    throw new PipelineError("bad_argument", e instanceof Error ? e.message : String(e), option);
  }
}

/** `{ class name: value }` for classes of the model other than background, each value checked by `valid`. */
function parseClassValues(raw: unknown, classNames: readonly string[], what: string, mustBe: string, valid: (v: number) => boolean): Map<string, number> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`expected an object of class name -> ${what}`);
  const out = new Map<string, number>();
  for (const [name, v] of Object.entries(raw)) {
    if (name === "background" || !classNames.includes(name)) throw new Error(`'${name}' is not a class of the model (${classNames.filter((c) => c !== "background").join(", ")})`);
    if (typeof v !== "number" || !valid(v)) throw new Error(`${what} of '${name}' must be ${mustBe}, got ${JSON.stringify(v)}`);
    out.set(name, v);
  }
  return out;
}

/** `{ class name: probability in (0, 1) }` for classes of the model other than background. */
export function parseThresholds(raw: unknown, classNames: readonly string[]): Map<string, number> {
  return parseClassValues(raw, classNames, "threshold", "a number between 0 and 1", (t) => t > 0 && t < 1);
}

/** `{ class name: least fragment area in nm^2 }` for classes of the model other than background. */
export function parseMinAreas(raw: unknown, classNames: readonly string[]): Map<string, number> {
  return parseClassValues(raw, classNames, "minimum area", "a positive number", (a) => Number.isFinite(a) && a > 0);
}

/**
 * The model's bytes with these metadata_props set (entries of the same keys dropped, the new ones appended,
 * an undefined value removes its key; every other top-level field kept byte for byte). Protobuf allows a
 * repeated field's entries anywhere, so no re-encoding of the graph is needed.
 */
export function withOnnxMetadata(bytes: Uint8Array, entries: ReadonlyMap<string, string | undefined>): Uint8Array {
  onnxMetadataProps(bytes); // validates: an ONNX model with a graph
  const parts: Uint8Array[] = [];
  const r = new Reader(bytes, 0, bytes.length);
  while (!r.done()) {
    const at = r.position;
    const tag = r.varint();
    const wire = tag & 7;
    if (wire === 2 && tag >>> 3 === 14) {
      const len = r.varint();
      const start = r.skip(len);
      const key = new Reader(bytes, start, start + len).stringField(1);
      if (key !== undefined && entries.has(key)) continue;
    } else {
      r.skipWire(wire);
    }
    parts.push(bytes.subarray(at, r.position));
  }
  const enc = new TextEncoder();
  for (const [key, value] of entries) {
    if (value === undefined) continue;
    const entry = concat([lengthDelimited(1, enc.encode(key)), lengthDelimited(2, enc.encode(value))]);
    parts.push(lengthDelimited(14, entry));
  }
  return concat(parts);
}

function varintBytes(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function lengthDelimited(field: number, payload: Uint8Array): Uint8Array {
  return concat([Uint8Array.from([...varintBytes(field * 8 + 2), ...varintBytes(payload.length)]), payload]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * ModelProto.metadata_props (field 14, StringStringEntryProto {key = 1, value = 2}), read by walking the
 * top-level protobuf fields. onnxruntime-node does not expose custom metadata, and pulling in a full ONNX
 * schema for two strings is not worth it.
 */
export function onnxMetadataProps(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const r = new Reader(bytes, 0, bytes.length);
  let sawGraph = false;
  while (!r.done()) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) throw new Error("field number 0");
    if (wire === 2) {
      const len = r.varint();
      const start = r.skip(len);
      if (field === 7) sawGraph = true;
      if (field === 14) {
        const key = new Reader(bytes, start, start + len).stringField(1) ?? "";
        out.set(key, new Reader(bytes, start, start + len).stringField(2) ?? "");
      }
    } else {
      r.skipWire(wire);
    }
  }
  if (!sawGraph) throw new Error("no graph");
  return out;
}

class Reader {
  constructor(
    private readonly b: Uint8Array,
    private pos: number,
    private readonly end: number,
  ) {}

  done(): boolean {
    return this.pos >= this.end;
  }

  get position(): number {
    return this.pos;
  }

  /** String field `field` of the message from here to its end, as UTF-8 text (the last one, as protobuf reads). */
  stringField(field: number): string | undefined {
    let text: string | undefined;
    while (!this.done()) {
      const t = this.varint();
      if ((t & 7) !== 2) {
        this.skipWire(t & 7);
        continue;
      }
      const l = this.varint();
      const s = this.skip(l);
      if (t >>> 3 === field) text = new TextDecoder("utf-8", { fatal: false }).decode(this.b.subarray(s, s + l));
    }
    return text;
  }

  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("truncated varint");
      const byte = this.b[this.pos++] as number;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
    throw new Error("varint too long");
  }

  /** Advances over `n` bytes and returns where they start. */
  skip(n: number): number {
    const at = this.pos;
    if (!Number.isSafeInteger(n) || n < 0 || at + n > this.end) throw new Error("length runs past the end");
    this.pos += n;
    return at;
  }

  skipWire(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.skip(8);
    else if (wire === 5) this.skip(4);
    else if (wire === 2) this.skip(this.varint());
    else throw new Error(`unsupported wire type ${wire}`);
  }
}
