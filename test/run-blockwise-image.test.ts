/**
 * The whole pipeline out of core from an image alone (issue 9: every stage as tasks): alignment (`align.*`
 * tasks), segmentation and its fragment cleanup (`segment.*` tasks), then the blockwise stages, against the
 * in-memory run of the same command, its oracle. Real SBEM sections (the alignment fixtures, 288 x 288) stacked
 * and shifted a few pixels each (so the aligner has work), cut into small blocks: the same alignment report
 * (timings aside), the same segmentation record, the same aligned image and segmentation at every scale and the
 * same rows. Both runs use `--tta flips` and a mito threshold of 0.7 (recorded in report/segmentation.json), and
 * give the stack an 8 nm pixel, outside what the shipped model accepts (3.68-7.375 nm), so both infer its sections
 * resampled to 5.9 nm and back (segment.ts `inferenceGrid`; recorded as `inferred_pixel_nm`).
 * (test/run-scale-out.test.ts runs the same on queue workers, with the defaults.)
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { LocalStorage } from "../precomputed/storage.js";
import { readRegion } from "../precomputed/volume-io.js";
import { runPipeline } from "../server/pipeline/run.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { shiftedEmStack } from "./helpers/em-stack.js";
import { csvRows, files, infoOf } from "./helpers/outputs.js";

const SHAPE: Vec3 = [288, 288, 8];
const CAP_NM = 100;
const VOXEL: Vec3 = [8, 8, 45];
let dir: string;
const memOut = () => path.join(dir, "memory");
const blkOut = () => path.join(dir, "blockwise");

beforeAll(async () => {
  process.env.VEMSCOPE_WORKERS = "0";
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-blockwise-image-"));
  const stack = await shiftedEmStack();
  expect(stack.shape).toEqual(SHAPE);
  await writeTiffStack(path.join(dir, "image.tif"), stack);
  // With test-time augmentation and a threshold override, so both reach the section tasks.
  const common = { image: path.join(dir, "image.tif"), voxelNm: VOXEL, tta: "flips" as const, thresholds: { mito: 0.7 } };
  const a = await runPipeline({ ...common, out: memOut() });
  expect(a.mode).toBe("memory");
  const b = await runPipeline({ ...common, out: blkOut(), blockwise: true, blockShape: [96, 96, 4], distanceCapNm: CAP_NM });
  expect(b.mode).toBe("blockwise");
  expect(b.instances).toBe(a.instances);
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const json = (out: string, name: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(out, "report", name), "utf8")) as Record<string, unknown>;

describe("out-of-core run from an image alone vs the in-memory run", () => {
  it("aligns and segments the same: alignment report (timings aside) and segmentation record", () => {
    const timeless = (r: Record<string, unknown>) => ({ ...r, seconds: undefined, megapixelsPerSecond: undefined });
    const ra = json(memOut(), "alignment.json");
    const sections = ra.sections as { status: string; translationPx: number[] }[];
    expect(sections.filter((s) => s.status === "ok").length).toBe(SHAPE[2] - 1);
    expect(sections.some((s) => Math.abs(s.translationPx[0] ?? 0) >= 1)).toBe(true);
    expect(timeless(json(blkOut(), "alignment.json"))).toEqual(timeless(ra));
    expect(readFileSync(path.join(blkOut(), "report", "segmentation.json"), "utf8")).toBe(readFileSync(path.join(memOut(), "report", "segmentation.json"), "utf8"));
    expect(json(memOut(), "segmentation.json")).toMatchObject({ tta: "flips", thresholds: { mito: 0.7 } });
    const inferred = json(memOut(), "segmentation.json").inferred_pixel_nm as number[];
    expect(inferred.map((v) => Math.round(v * 100) / 100)).toEqual([5.89, 5.89]); // 288 px x 8 nm on a 391-px grid
  });

  it("writes the same aligned image and segmentation at every scale, and nothing of its work store", async () => {
    const a = new LocalStorage(memOut());
    const b = new LocalStorage(blkOut());
    for (const layer of ["image", "segmentation"]) {
      const ia = await infoOf(a, layer);
      expect(await infoOf(b, layer)).toEqual(ia);
      for (let s = 0; s < ia.scales.length; s++) {
        const va = await readRegion(a, layer, ia, s, [0, 0, 0], ia.scales[s].size);
        const vb = await readRegion(b, layer, ia, s, [0, 0, 0], ia.scales[s].size);
        expect(Buffer.from(vb.data.buffer).equals(Buffer.from(va.data.buffer)), `${layer} scale ${s}`).toBe(true);
      }
    }
    expect(files(blkOut(), ".").some((f) => f.includes(".blocks") || f.includes(".tmp-"))).toBe(false);
  });

  it("measures the same instances", () => {
    const ra = csvRows(memOut());
    const rb = csvRows(blkOut());
    expect(ra.length).toBeGreaterThan(3);
    expect(rb.map((r) => [r.id, r.class, r.voxels])).toEqual(ra.map((r) => [r.id, r.class, r.voxels]));
  });
});
