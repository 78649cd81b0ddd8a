import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { asNormalised, normaliseSection } from "./normalise.js";
import { resamplePlanes, RowResampler } from "./resample.js";
import { ResampledTiles } from "./resampled-tiles.js";
import { extractTile, planTiles, tilesOf } from "./tiling.js";

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

  it("fed band by band (RowResampler) gives resamplePlanes' values to the bit, holding only a few rows", () => {
    const [P, w, h] = [3, 29, 41];
    const src = random(P * w * h, 5);
    for (const [w2, h2] of [[70, 97], [13, 17], [29, 41], [40, 12]] as const) {
      const want = resamplePlanes(src, P, w, h, w2, h2);
      for (const band of [1, 7, 16, 41]) {
        const rr = new RowResampler(P, w, h, w2, h2);
        const got = new Float32Array(P * w2 * h2);
        let next = 0;
        for (let r0 = 0; r0 < h; r0 += band) {
          const rows = Math.min(band, h - r0);
          // A window as the blending passes it: the band's rows of every plane, planes `band` rows apart.
          const win = new Float32Array(P * band * w);
          for (let p = 0; p < P; p++) win.set(src.subarray((p * h + r0) * w, (p * h + r0 + rows) * w), p * band * w);
          const out = rr.push(win, rows, band * w);
          expect(out.y0).toBe(next);
          expect(rr.heldRows).toBeLessThanOrEqual(7); // a shrink by 41/17 reads 2 * ceil(2.4) + 1 = 7 rows at most
          for (let p = 0; p < P; p++) got.set(out.data.subarray(p * out.rows * w2, (p + 1) * out.rows * w2), (p * h2 + out.y0) * w2);
          next += out.rows;
        }
        expect(next, `${w2}x${h2} in bands of ${band}`).toBe(h2);
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `${w2}x${h2} in bands of ${band}`).toBe(true);
      }
    }
    expect(() => new RowResampler(1, 4, 4, 8, 8).push(new Float32Array(20), 5, 20)).toThrow(/pushed rows up to 5, the input has 4/);
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

describe("ResampledTiles", () => {
  // A 16-bit section enlarged 1.7x (10 nm -> 5.9 nm) and one shrunk, cut into several rows of small tiles.
  it.each([
    [300, 260, 510, 442],
    [300, 260, 160, 139],
  ])("%i x %i on a %i x %i grid: every tile equals the one cut from the whole resampled grid, holding about a row of tiles", (W, H, gw, gh) => {
    const section = Uint16Array.from({ length: W * H }, (_, i) => (Math.imul(i, 2654435761) >>> 20) + ((i % W) * 7));
    const whole = resamplePlanes(normaliseSection(section), 1, W, H, gw, gh);
    const plan = planTiles(gw, gh, 96, 32, 16);
    const tiles = tilesOf(plan);
    expect(plan.y.starts.length).toBeGreaterThan(2);
    const cutter = new ResampledTiles(section, W, H, gw, gh, tiles);
    let most = 0;
    for (const t of tiles) {
      const got = cutter.cut(t);
      most = Math.max(most, cutter.heldRows);
      expect(Buffer.from(got.buffer).equals(Buffer.from(extractTile(asNormalised(whole), gw, gh, t).buffer)), `tile ${t.index}`).toBe(true);
    }
    // One tile row plus what one 64-row band of the section makes, never the whole grid.
    expect(most).toBeLessThanOrEqual(plan.y.size + Math.ceil((64 * gh) / H) + 2);
    expect(most).toBeLessThan(gh);
  });

  it("refuses tiles out of plan order", () => {
    const tiles = tilesOf(planTiles(200, 200, 96, 32, 16));
    const cutter = new ResampledTiles(new Uint8Array(100 * 100), 100, 100, 200, 200, tiles);
    expect(() => cutter.cut(tiles[1] as (typeof tiles)[number])).toThrow(/tile 1 asked for before tile 0/);
  });
});
