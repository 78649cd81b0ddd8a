import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { resamplePlanes } from "./resample.js";

const PYTHON = "/usr/bin/python3";
const havePil = spawnSync(PYTHON, ["-c", "import PIL, numpy"]).status === 0;

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

describe("resamplePlanes", () => {
  it("keeps a constant plane constant and a linear ramp linear when enlarging", () => {
    const flat = resamplePlanes(new Float32Array(2 * 30 * 20).fill(1.5), 2, 30, 20, 67, 13);
    for (const v of flat) expect(v).toBeCloseTo(1.5, 5);
    // x-ramp 0..29 at pixel centres; enlarged 3x, an output pixel centre at (o + 0.5) / 3 - 0.5 input pixels.
    const ramp = Float32Array.from({ length: 30 * 4 }, (_, i) => i % 30);
    const big = resamplePlanes(ramp, 1, 30, 4, 90, 4);
    for (let o = 3; o < 87; o++) expect(big[o]).toBeCloseTo((o + 0.5) / 3 - 0.5, 4);
  });

  it("averages pairs when halving (the antialiasing support widens with the shrink)", () => {
    const src = random(16 * 8, 3);
    const half = resamplePlanes(src, 1, 16, 8, 8, 8);
    // Halving x: triangle of half-width 2 centred between inputs 2o and 2o+1: weights 1/8, 3/8, 3/8, 1/8.
    for (let o = 1; o < 7; o++) {
      const a = (i: number) => src[i] as number;
      expect(half[o]).toBeCloseTo((a(2 * o - 1) + 3 * a(2 * o) + 3 * a(2 * o + 1) + a(2 * o + 2)) / 8, 5);
    }
  });

  it("refuses a buffer of the wrong size", () => {
    expect(() => resamplePlanes(new Float32Array(10), 1, 3, 3, 6, 6)).toThrow(/expected 1 x 3 x 3 values, got 10/);
  });

  it.skipIf(!havePil)("equals Pillow's BILINEAR resize of float images, enlarging and shrinking by uneven factors", () => {
    const [w, h] = [37, 23];
    const src = random(w * h, 11);
    for (const [w2, h2] of [[80, 50], [11, 7], [37, 60], [50, 9]] as const) {
      const code = [
        "import sys, numpy as np",
        "from PIL import Image",
        `a = np.frombuffer(sys.stdin.buffer.read(), '<f4').reshape(${h}, ${w})`,
        `b = np.asarray(Image.fromarray(a, 'F').resize((${w2}, ${h2}), Image.BILINEAR), '<f4')`,
        "sys.stdout.buffer.write(b.tobytes())",
      ].join("\n");
      const r = spawnSync(PYTHON, ["-c", code], { input: Buffer.from(src.buffer) });
      expect(r.status, r.stderr?.toString()).toBe(0);
      const want = new Float32Array(new Uint8Array(r.stdout).buffer);
      const got = resamplePlanes(src, 1, w, h, w2, h2);
      expect(got.length).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
      expect(worst, `${w}x${h} -> ${w2}x${h2}`).toBeLessThan(1e-5);
    }
  });
});
