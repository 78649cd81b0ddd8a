import { existsSync, mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipelineError } from "../errors.js";
import { readStack } from "../ingest.js";
import { createRng } from "../random.js";
import { apply } from "./affine.js";
import { alignStack, type Stack } from "./align.js";
import { alignCommand, reportPathFor } from "./command.js";
import { emNeighbour288 } from "./fixtures.js";
import { cropWarp, warpSection } from "./synth.js";

const S = 256;
const dir = mkdtempSync(join(tmpdir(), "vemscope-align-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let sections: Uint8Array[] = [];
beforeAll(async () => {
  for (const z of [0, 1, 2, 3]) {
    const full = await emNeighbour288(z);
    // Neighbouring real sections, each shifted a little more, so that every pair has something to find.
    const c = cropWarp((full.width - S) / 2 + 3 * z, (full.height - S) / 2 - 2 * z);
    sections.push(warpSection(full.data, full.width, full.height, c, S, S).data as Uint8Array);
  }
});

function stackOf(list: Uint8Array[]): Stack {
  const data = new Uint8Array(S * S * list.length);
  list.forEach((s, z) => data.set(s, z * S * S));
  return { data, shape: [S, S, list.length] };
}

describe("alignment of bad input", () => {
  it("a blank section keeps the previous transform, is flagged, and the next section matches across it", async () => {
    const blank = new Uint8Array(S * S).fill(117);
    const [a, b, c] = sections as [Uint8Array, Uint8Array, Uint8Array];
    const { report, model, aligned } = await alignStack(stackOf([a, b, blank, c]), { iterations: 1 });
    expect(report.flagged).toEqual([2]);
    expect(report.sections[2]?.status).toBe("blank");
    expect(report.sections[2]?.message).toMatch(/previous transform/);
    expect(report.sections[3]?.matchedTo).toBe(1);
    expect(model.maps[2]?.affine).toEqual(model.maps[1]?.affine);
    // The blank section renders as itself (flat), never as a warped copy of something else.
    const out = aligned.data.subarray(2 * S * S, 3 * S * S);
    let lo = 255;
    for (let y = 16; y < S - 16; y++) for (let x = 16; x < S - 16; x++) lo = Math.min(lo, out[y * S + x] as number);
    expect(lo).toBeGreaterThanOrEqual(116);
    // The real section after it is still registered: its crop sits (+6, -4) px from section 0's, so the
    // centre maps about (-6, +4) px (real neighbours also drift by a pixel or so).
    const t = model.maps[3]?.affine ?? [1, 0, 0, 0, 1, 0];
    const [cx, cy] = apply(t, S / 2, S / 2);
    expect(Math.hypot(cx - S / 2 + 6, cy - S / 2 - 4)).toBeLessThan(2);
  });

  it("a section with no matches (noise) is flagged and keeps the previous transform", async () => {
    const rng = createRng(5);
    const noise = Uint8Array.from({ length: S * S }, () => rng.int(0, 255));
    const [a, b, c] = sections as [Uint8Array, Uint8Array, Uint8Array];
    const { report, model } = await alignStack(stackOf([a, noise, b, c]), { iterations: 1 });
    expect(report.sections[1]?.status).toBe("no_matches");
    expect(report.sections[1]?.flags).toContain("no_matches");
    expect(report.sections[1]?.message).toMatch(/consistent feature matches/);
    expect(model.maps[1]?.affine).toEqual([1, 0, 0, 0, 1, 0]);
    expect(report.sections[2]?.status).toBe("ok");
    expect(report.sections[2]?.matchedTo).toBe(0);
    expect(report.flagged).toEqual([1]);
  });

  it("the command writes OUT.tif and OUT.align.json, and refuses sections of different sizes naming the file", async () => {
    const ok = join(dir, "ok");
    mkdirSync(ok);
    for (const [z, s] of sections.slice(0, 3).entries()) {
      await sharp(Buffer.from(s), { raw: { width: S, height: S, channels: 1 } }).toColourspace("b-w").png().toFile(join(ok, `s${z}.png`));
    }
    const out = join(dir, "aligned.tif");
    const { report, reportPath } = await alignCommand({ image: ok, out, options: { iterations: 1 } });
    expect(reportPath).toBe(reportPathFor(out));
    expect(existsSync(out)).toBe(true);
    const json = JSON.parse(readFileSync(reportPath, "utf8")) as { sections: unknown[]; flagged: number[] };
    expect(json.sections).toHaveLength(3);
    expect(json.flagged).toEqual(report.flagged);
    const back = await readStack(out);
    expect(back.volume.shape).toEqual([S, S, 3]);

    const mixed = join(dir, "mixed");
    mkdirSync(mixed);
    await sharp(Buffer.from(sections[0] as Uint8Array), { raw: { width: S, height: S, channels: 1 } }).toColourspace("b-w").png().toFile(join(mixed, "s0.png"));
    await sharp(Buffer.from((sections[1] as Uint8Array).subarray(0, S * (S - 16))), { raw: { width: S, height: S - 16, channels: 1 } }).toColourspace("b-w").png().toFile(join(mixed, "s1.png"));
    const out2 = join(dir, "mixed.tif");
    const err = await alignCommand({ image: mixed, out: out2 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PipelineError);
    expect((err as PipelineError).message).toMatch(/s1\.png.*256x240/);
    expect(existsSync(out2)).toBe(false);
    expect(existsSync(reportPathFor(out2))).toBe(false);
  });
});
