import { describe, expect, it } from "vitest";
import { createRng } from "../random.js";
import type { TileRunner } from "./pool.js";
import { addBack, runAugmented, TTA_VIEWS, viewOf } from "./tta.js";

/**
 * A stand-in network whose answer at a pixel depends only on that pixel (so it commutes with every flip and
 * transpose): whatever the views, their mean must be the plain answer, which catches any view mapped back to
 * the wrong place. It is also a real TileRunner: queued runs, answers in any order.
 */
function pixelwiseRunner(channels: number, order: "fifo" | "lifo"): TileRunner & { calls: [number, number][] } {
  const calls: [number, number][] = [];
  const waiting: (() => void)[] = [];
  const flush = () => setTimeout(() => { const run = order === "lifo" ? waiting.reverse() : waiting; run.splice(0).forEach((f) => f()); }, 0);
  return {
    slots: 2,
    description: "pixelwise",
    calls,
    run(tile, h, w) {
      calls.push([h, w]);
      return new Promise((resolve) => {
        waiting.push(() => {
          const n = h * w;
          const out = new Float32Array(channels * n);
          for (let i = 0; i < n; i++) {
            const e = Math.exp(tile[i] as number);
            out[i] = e / (1 + e);
            for (let k = 1; k < channels; k++) out[k * n + i] = (1 - (out[i] as number)) / (channels - 1);
          }
          resolve(out);
        });
        if (waiting.length === 1) flush();
      });
    },
    close: async () => undefined,
  };
}

describe("test-time augmentation", () => {
  const rng = createRng(7);
  const [h, w] = [48, 80];
  const tile = Float32Array.from({ length: h * w }, () => 4 * rng.next() - 2);

  it("views are flips and transposes: each pixel once, the transposed ones w x h", () => {
    for (const v of TTA_VIEWS.d4) {
      const t = viewOf(tile, h, w, v);
      expect([t.h, t.w]).toEqual(v & 4 ? [w, h] : [h, w]);
      expect([...t.data].sort()).toEqual([...tile].sort());
    }
    // mirror x: the first row reversed
    expect([...viewOf(tile, h, w, 1).data.subarray(0, w)]).toEqual([...tile.subarray(0, w)].reverse());
    // transpose: column 0 becomes row 0
    expect([...viewOf(tile, h, w, 4).data.subarray(0, h)]).toEqual(Array.from({ length: h }, (_, y) => tile[y * w]));
  });

  it("maps every view's answer back onto the tile: a pixelwise network gives the plain answer for flips and d4, in any answer order", async () => {
    for (const order of ["fifo", "lifo"] as const) {
      const plain = await runAugmented(pixelwiseRunner(3, order), tile, h, w, 3, "none");
      for (const mode of ["flips", "d4"] as const) {
        const runner = pixelwiseRunner(3, order);
        const mean = await runAugmented(runner, tile, h, w, 3, mode);
        expect(runner.calls.length).toBe(TTA_VIEWS[mode].length);
        for (let i = 0; i < plain.length; i++) expect(mean[i]).toBeCloseTo(plain[i] as number, 6);
      }
    }
  });

  it("addBack of a view of a position ramp returns the ramp", () => {
    const ramp = Float32Array.from({ length: h * w }, (_, i) => i);
    for (const v of TTA_VIEWS.d4) {
      const acc = new Float32Array(h * w);
      addBack(acc, viewOf(ramp, h, w, v).data, 1, h, w, v);
      expect(acc).toEqual(ramp);
    }
  });
});
