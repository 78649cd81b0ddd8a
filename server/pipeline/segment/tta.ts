/**
 * Test-time augmentation: a tile is inferred as it is and flipped (and, for "d4", transposed too); each answer
 * is mapped back to the tile's frame and the probabilities are averaged. A 2D network trained with flips and
 * 90-degree rotations answers each view a little differently; the mean is steadier at object borders (the
 * shipped model on Lucchi++ 47-54, mito Dice: none 0.940, flips 0.943, d4 0.944; see README). Costs one
 * inference per view.
 */
import { PipelineError } from "../errors.js";
import type { TileRunner } from "./pool.js";

/** Views per mode; a view is a bit set: 1 = mirror x, 2 = mirror y, 4 = transpose (applied first). */
export const TTA_VIEWS = {
  none: [0],
  flips: [0, 1, 2, 3],
  d4: [0, 1, 2, 3, 4, 5, 6, 7],
} as const;

export type TtaMode = keyof typeof TTA_VIEWS;

export const isTtaMode = (s: string): s is TtaMode => Object.hasOwn(TTA_VIEWS, s);

/** `value` as a mode, or a PipelineError naming --tta (the CLI's option and segmentSections' argument alike). */
export function checkTta(value: unknown): TtaMode {
  if (typeof value === "string" && isTtaMode(value)) return value;
  throw new PipelineError("bad_argument", `expected one of ${Object.keys(TTA_VIEWS).join(", ")}, got '${String(value)}'`, "--tta");
}

/** Index in the original h x w tile of pixel (x, y) of a view's frame (w' x h' = h x w when transposed). */
function sourceIndex(view: number, x: number, y: number, h: number, w: number): number {
  let sx = view & 4 ? y : x;
  let sy = view & 4 ? x : y;
  if (view & 1) sx = w - 1 - sx;
  if (view & 2) sy = h - 1 - sy;
  return sy * w + sx;
}

/** The tile as a view sees it, with that view's height and width. */
export function viewOf(tile: Float32Array, h: number, w: number, view: number): { data: Float32Array; h: number; w: number } {
  const vh = view & 4 ? w : h;
  const vw = view & 4 ? h : w;
  const data = new Float32Array(h * w);
  for (let y = 0, i = 0; y < vh; y++) for (let x = 0; x < vw; x++, i++) data[i] = tile[sourceIndex(view, x, y, h, w)] as number;
  return { data, h: vh, w: vw };
}

/** Adds a view's channel-major [c, h', w'] answer into `acc` ([c, h, w], the tile's frame). */
export function addBack(acc: Float32Array, probs: Float32Array, channels: number, h: number, w: number, view: number): void {
  const n = h * w;
  const vh = view & 4 ? w : h;
  const vw = view & 4 ? h : w;
  for (let y = 0, i = 0; y < vh; y++)
    for (let x = 0; x < vw; x++, i++) {
      const s = sourceIndex(view, x, y, h, w);
      for (let k = 0; k < channels; k++) acc[k * n + s] = (acc[k * n + s] as number) + (probs[k * n + i] as number);
    }
}

/**
 * The mean of the views' probabilities. All views are queued at once (the runner spreads them over its
 * workers) and added in view order, so the float sums, and so the bytes, do not depend on which finishes first.
 */
export async function runAugmented(runner: TileRunner, tile: Float32Array, h: number, w: number, channels: number, mode: TtaMode): Promise<Float32Array> {
  const views = TTA_VIEWS[mode];
  if (views.length === 1) return runner.run(tile, h, w);
  const answers = views.map((v) => {
    const t = viewOf(tile, h, w, v);
    return runner.run(t.data, t.h, t.w);
  });
  const acc = new Float32Array(channels * h * w);
  try {
    for (let j = 0; j < views.length; j++) addBack(acc, await (answers[j] as Promise<Float32Array>), channels, h, w, views[j] as number);
  } catch (e) {
    for (const a of answers) a.catch(() => undefined);
    throw e;
  }
  const inv = 1 / views.length;
  for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] as number) * inv;
  return acc;
}
