import type { Vec3 } from "../../precomputed/array.js";
import { makeInfo } from "../../precomputed/volume-io.js";
import { splitDiff, mergeDiff } from "../../server/edits/ops.js";
import { applyDiff, encodeDiff } from "../../server/edits/diff.js";
import { buildPyramid, updatePyramid, writeChangedChunks } from "../../server/edits/pyramid.js";
import { rowFacts } from "../../server/edits/measure.js";
import { RecordingStorage } from "../../server/edits/versions.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
const mvox = Number(process.argv[2] ?? 20);
const nz = 100;
const side = Math.ceil(Math.sqrt((mvox * 1e6) / nz) / 16) * 16 + 32;
const shape: Vec3 = [side, side, nz];
const voxelNm: Vec3 = [5, 5, 45];
const labels = new Uint32Array(side * side * nz);
const half = side >> 1;
for (let z = 0; z < nz; z++)
  for (let y = 16; y < side - 16; y++) {
    const row = side * (y + side * z);
    labels.fill(1, row + 16, row + half - 1);
    labels.fill(2, row + half + 1, row + side - 16);
  }
const info = makeInfo({ type: "segmentation", dataType: "uint32", size: shape, resolution: voxelNm, chunkSize: [128, 128, 16], encoding: "compressed_segmentation", mesh: "mesh", segmentProperties: "segment_properties" });
const t = (label: string, f: () => unknown) => { const t0 = performance.now(); const r = f(); console.log(label, (performance.now() - t0).toFixed(0), "ms"); return r; };
const ta = async (label: string, f: () => Promise<unknown>) => { const t0 = performance.now(); const r = await f(); console.log(label, (performance.now() - t0).toFixed(0), "ms"); return r; };
const pyr = t("buildPyramid", () => buildPyramid(info, { data: labels, shape })) as ReturnType<typeof buildPyramid>;
const box2: [number, number, number, number, number, number] = [half + 1, 16, 0, side - 16, side - 16, nz];
const full: [number, number, number, number, number, number] = [16, 16, 0, side - 16, side - 16, nz];
const md = t("mergeDiff", () => mergeDiff(labels, shape, 1, 2, box2)) as ReturnType<typeof mergeDiff>;
console.log("merge runs", md.runs.length / 4, "bbox", md.bbox.join(" "));
t("applyDiff", () => applyDiff(labels, md.runs, "forward"));
const boxes = t("updatePyramid", () => updatePyramid(pyr, md.bbox)) as ReturnType<typeof updatePyramid>;
t("rowFacts", () => rowFacts(labels, shape, voxelNm, new Map([[1, "mito"], [2, "mito"]]), full));
t("encodeDiff", () => encodeDiff(md.runs));
const dir = mkdtempSync(path.join(tmpdir(), "prof-split-"));
await ta("writeChangedChunks(merge)", () => writeChangedChunks(new RecordingStorage(dir), "segmentation", info, pyr, boxes));
const seeds = [{ voxel: [Math.floor(half / 2), Math.floor(side / 2), 50] as Vec3, group: 0 }, { voxel: [Math.floor((half + side) / 2), Math.floor(side / 2), 50] as Vec3, group: 1 }];
const sd = t("splitDiff", () => splitDiff(labels, shape, voxelNm, 1, full, seeds, [3, 4])) as ReturnType<typeof splitDiff>;
console.log("split runs", sd.runs.length / 4);
t("applyDiff", () => applyDiff(labels, sd.runs, "forward"));
const boxes2 = t("updatePyramid", () => updatePyramid(pyr, sd.bbox)) as ReturnType<typeof updatePyramid>;
t("rowFacts", () => rowFacts(labels, shape, voxelNm, new Map([[1, "mito"], [3, "mito"], [4, "mito"]]), full));
t("encodeDiff", () => encodeDiff(sd.runs));
await ta("writeChangedChunks(split)", () => writeChangedChunks(new RecordingStorage(dir + "/b"), "segmentation", info, pyr, boxes2));
let c3 = 0, c4 = 0; for (let i = 0; i < labels.length; i++) { if (labels[i] === 3) c3++; else if (labels[i] === 4) c4++; }
console.log("counts", c3, c4);
rmSync(dir, { recursive: true, force: true });
