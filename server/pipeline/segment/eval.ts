/**
 * Accuracy of a class volume against ground truth: Dice and IoU per class, per section and pooled over
 * the volume. Inputs are class volumes (codes 0-6) or binary masks (e.g. 0/255 mitochondria PNGs),
 * which become class volumes of the one class they annotate before counting.
 */
import type { Volume } from "../../../precomputed/array.js";
import { classByCode, classByName, CLASSES, MAX_CLASS_CODE } from "../classes.js";
import { PipelineError } from "../errors.js";

type Labels = Uint8Array | Uint16Array | Uint32Array;

export interface Counts {
  tp: number;
  fp: number;
  fn: number;
}

export interface SliceMetrics extends Counts {
  z: number;
  dice: number | null;
  iou: number | null;
}

export interface ClassMetrics extends Counts {
  class: string;
  code: number;
  /** null when the class is absent from both prediction and truth (nothing to score). */
  dice: number | null;
  iou: number | null;
  predVoxels: number;
  truthVoxels: number;
  slices: SliceMetrics[];
}

export type Interpretation = "class codes" | "binary mask";

export interface EvalReport {
  shape: [number, number, number];
  /** Sections scored (all unless restricted). */
  slices: number[];
  pred: { path: string; as: Interpretation };
  truth: { path: string; as: Interpretation };
  classes: ClassMetrics[];
}

export function dice(c: Counts): number | null {
  const d = 2 * c.tp + c.fp + c.fn;
  return d === 0 ? null : (2 * c.tp) / d;
}

export function iou(c: Counts): number | null {
  const d = c.tp + c.fp + c.fn;
  return d === 0 ? null : c.tp / d;
}

/**
 * Any value above the largest class code means the volume is a mask (0/255 PNGs), not class codes; a mask
 * then needs exactly one class to stand for.
 */
export function interpret(labels: Labels, path: string, classCodes: number[]): { codes: Uint8Array; as: Interpretation } {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if ((labels[i] as number) > max) max = labels[i] as number;
  if (max <= MAX_CLASS_CODE) return { codes: labels instanceof Uint8Array ? labels : Uint8Array.from(labels), as: "class codes" };
  if (classCodes.length !== 1) {
    throw new PipelineError(
      "bad_input",
      `values up to ${max} are not class codes (0-${MAX_CLASS_CODE}); for a binary mask say which class it annotates with one --classes name (e.g. --classes mito)`,
      path,
    );
  }
  const code = classCodes[0] as number;
  const out = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) if ((labels[i] as number) !== 0) out[i] = code;
  return { codes: out, as: "binary mask" };
}

/** `"mito,er"` -> [2, 1]. */
export function parseClasses(text: string): number[] {
  const names = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new PipelineError("bad_argument", "expected class names like mito,er", "--classes");
  return names.map((n) => {
    const c = classByName(n);
    if (!c) throw new PipelineError("bad_argument", `unknown class '${n}' (one of ${CLASSES.map((k) => k.name).join(", ")})`, "--classes");
    return c.code;
  });
}

/** `"47-54,60"` -> [47..54, 60], checked against the stack depth. */
export function parseSlices(text: string, depth: number): number[] {
  const out = new Set<number>();
  for (const part of text.split(",").map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new PipelineError("bad_argument", `expected section numbers or ranges like 47-54,60, got '${text}'`, "--slices");
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b >= depth) throw new PipelineError("bad_argument", `range ${part} is empty or outside sections 0-${depth - 1}`, "--slices");
    for (let z = a; z <= b; z++) out.add(z);
  }
  return [...out].sort((x, y) => x - y);
}

export interface EvaluateInput {
  pred: Volume<Labels>;
  truth: Volume<Labels>;
  predPath: string;
  truthPath: string;
  /** Class codes to score (default: the classes present in either volume). */
  classes?: number[];
  /** Sections to score (default: all). */
  slices?: number[];
}

export function evaluate(input: EvaluateInput): EvalReport {
  const [W, H, D] = input.pred.shape;
  const [tw, th, td] = input.truth.shape;
  if (W !== tw || H !== th || D !== td) {
    throw new PipelineError("shape_mismatch", `prediction is ${W}x${H}x${D} but truth ${input.truthPath} is ${tw}x${th}x${td}`, input.predPath);
  }
  const pred = interpret(input.pred.data, input.predPath, input.classes ?? []);
  const truth = interpret(input.truth.data, input.truthPath, input.classes ?? []);
  const classCodes = input.classes ?? presentClasses(pred.codes, truth.codes);
  const slices = input.slices ?? Array.from({ length: D }, (_, z) => z);
  const n = W * H;
  const K = MAX_CLASS_CODE + 1;
  // One pass per section: equal codes are a hit for that class, unequal a false positive for the
  // predicted class and a miss for the true one.
  const perSlice = slices.map((z) => {
    const tp = new Float64Array(K);
    const fp = new Float64Array(K);
    const fn = new Float64Array(K);
    const p = pred.codes.subarray(z * n, (z + 1) * n);
    const t = truth.codes.subarray(z * n, (z + 1) * n);
    for (let i = 0; i < n; i++) {
      const a = p[i] as number;
      const b = t[i] as number;
      if (a === b) tp[a] = (tp[a] as number) + 1;
      else {
        fp[a] = (fp[a] as number) + 1;
        fn[b] = (fn[b] as number) + 1;
      }
    }
    return { z, tp, fp, fn };
  });
  const classes = classCodes.map((code): ClassMetrics => {
    const sl = perSlice.map((s): SliceMetrics => {
      const c = { tp: s.tp[code] as number, fp: s.fp[code] as number, fn: s.fn[code] as number };
      return { z: s.z, ...c, dice: dice(c), iou: iou(c) };
    });
    const total = sl.reduce((a, s) => ({ tp: a.tp + s.tp, fp: a.fp + s.fp, fn: a.fn + s.fn }), { tp: 0, fp: 0, fn: 0 });
    return {
      class: classByCode(code)?.name ?? String(code),
      code,
      ...total,
      dice: dice(total),
      iou: iou(total),
      predVoxels: total.tp + total.fp,
      truthVoxels: total.tp + total.fn,
      slices: sl,
    };
  });
  return {
    shape: [W, H, D],
    slices,
    pred: { path: input.predPath, as: pred.as },
    truth: { path: input.truthPath, as: truth.as },
    classes,
  };
}

function presentClasses(a: Uint8Array, b: Uint8Array): number[] {
  const seen = new Uint8Array(256);
  for (let i = 0; i < a.length; i++) seen[a[i] as number] = 1;
  for (let i = 0; i < b.length; i++) seen[b[i] as number] = 1;
  const present = CLASSES.map((c) => c.code).filter((c) => seen[c] === 1);
  return present.length > 0 ? present : CLASSES.map((c) => c.code);
}

/** The printed report: overall per class, then Dice per section. */
export function formatReport(r: EvalReport): string {
  const f = (v: number | null) => (v === null ? "   -  " : v.toFixed(4));
  const lines = [
    `prediction ${r.pred.path} (${r.pred.as}) vs truth ${r.truth.path} (${r.truth.as}), ${r.shape.join("x")}, ${r.slices.length} sections`,
    "",
    `${"class".padEnd(8)} ${"dice".padStart(6)} ${"iou".padStart(6)} ${"pred vox".padStart(11)} ${"truth vox".padStart(11)}`,
    ...r.classes.map((c) => `${c.class.padEnd(8)} ${f(c.dice)} ${f(c.iou)} ${String(c.predVoxels).padStart(11)} ${String(c.truthVoxels).padStart(11)}`),
    "",
    `dice per section: ${"z".padStart(5)} ${r.classes.map((c) => c.class.padStart(7)).join(" ")}`,
  ];
  r.slices.forEach((z, i) => {
    lines.push(`${"".padEnd(18)} ${String(z).padStart(5)} ${r.classes.map((c) => ` ${f(c.slices[i]?.dice ?? null)}`).join(" ")}`);
  });
  return `${lines.join("\n")}\n`;
}
