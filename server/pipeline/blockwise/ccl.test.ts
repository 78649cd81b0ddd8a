import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../../precomputed/array.js";
import { LocalStorage } from "../../../precomputed/storage.js";
import { connectedComponents } from "../label.js";
import { cclBlockTask, finishLabels, gatherParts, relabelBlockTask, stitchBlockTask } from "./ccl.js";
import { blockOrigins } from "./store.js";
import { WorkVolume, type WorkVolumeSpec } from "./work-store.js";

const dir = mkdtempSync(path.join(tmpdir(), "vemscope-ccl-tasks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Seeded sparse classes: many small components that touch block faces, edges and corners diagonally. */
function randomClasses(shape: Vec3, seed: number): Uint8Array {
  let s = seed >>> 0;
  const rnd = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const out = new Uint8Array(shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < out.length; i++) if (rnd() < 0.3) out[i] = 1 + Math.floor(rnd() * 2);
  return out;
}

describe("blockwise CCL as tasks", () => {
  it.each([
    [[37, 29, 17], [8, 7, 5]],
    [[24, 24, 12], [24, 24, 12]],
    [[30, 20, 9], [10, 20, 3]],
  ] as [Vec3, Vec3][])("volume %j in blocks %j: the in-memory labels, ids and order, in any task order", async (shape, block) => {
    const classes = randomClasses(shape, shape[0] * 7 + block[0]);
    const want = connectedComponents(classes, shape);
    const work = new LocalStorage(path.join(dir, `${shape.join("x")}-${block.join("x")}`));
    const classesSpec: WorkVolumeSpec = { name: "classes", shape, blockShape: block, type: "uint8" };
    const labelsSpec: WorkVolumeSpec = { name: "labels", shape, blockShape: block, type: "uint32" };
    const cv = new WorkVolume<Uint8Array>(work, classesSpec);
    const origins = [...blockOrigins(shape, block)];
    const whole = { readBox: (o: Vec3, e: Vec3) => crop(classes, shape, o, e) };
    for (const o of origins) await cv.writeBlock(o, whole.readBox(o, cv.blockExtent(o)));
    // Tasks in reverse order: the result must not depend on it.
    const backwards = [...origins].reverse();
    for (const o of backwards) await cclBlockTask(work, classesSpec, o, cv.blockExtent(o));
    const { parts } = await gatherParts(work, classesSpec);
    for (const o of backwards) await stitchBlockTask(work, classesSpec, o, cv.blockExtent(o));
    const cc = await finishLabels(work, classesSpec, parts);
    for (const o of backwards) await relabelBlockTask(work, classesSpec, labelsSpec, o, cv.blockExtent(o));
    expect(cc.count).toBe(want.count);
    expect([...cc.classOf]).toEqual([...want.classOf]);
    expect([...cc.voxels]).toEqual([...want.voxels]);
    const got = await new WorkVolume<Uint32Array>(work, labelsSpec).readBox([0, 0, 0], shape);
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.labels.buffer))).toBe(true);
  });
});

function crop(v: Uint8Array, shape: Vec3, o: Vec3, e: Vec3): Uint8Array {
  const out = new Uint8Array(e[0] * e[1] * e[2]);
  for (let z = 0; z < e[2]; z++) for (let y = 0; y < e[1]; y++) {
    const from = o[0] + shape[0] * (o[1] + y + shape[1] * (o[2] + z));
    out.set(v.subarray(from, from + e[0]), e[0] * (y + e[1] * z));
  }
  return out;
}
