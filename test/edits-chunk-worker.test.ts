/**
 * The editor's large-volume paths: scale 0's chunks encoded on a worker thread beside the pyramid update
 * (server/edits/chunk-encoder.ts, chunk-job.ts) and the warm-up merge done and undone when the editor opens
 * (warm-up.ts). Both must be invisible: an editor using them writes every version file byte for byte as one
 * that does not, and the warm-up leaves the labels and every pyramid level as they were.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EditDb } from "../server/edits/db.js";
import { Editor } from "../server/edits/editor.js";
import { SegmentSums } from "../server/edits/measure.js";
import { warmUp } from "../server/edits/warm-up.js";
import { cachedSynthRun, copyRun, SYNTH_VOXEL } from "../server/edits/test-fixture.js";
import { versionDir } from "../server/edits/versions.js";
import type { Vec3 } from "../precomputed/array.js";

function files(dir: string, under = ""): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(path.join(dir, under))) {
    const rel = path.join(under, name);
    if (statSync(path.join(dir, rel)).isDirectory()) for (const [k, v] of files(dir, rel)) out.set(k, v);
    else out.set(rel, readFileSync(path.join(dir, rel)));
  }
  return out;
}

describe("chunk worker and warm-up", () => {
  let plain: { root: string; db: EditDb; editor: Editor };
  let fast: { root: string; db: EditDb; editor: Editor };

  beforeAll(async () => {
    const run = await cachedSynthRun();
    const open = async (options: { chunkWorkers: number; warmUp: boolean }) => {
      const root = copyRun(run);
      const db = EditDb.at(root);
      return { root, db, editor: await Editor.open(root, db, { measure: false, ...options }) };
    };
    plain = await open({ chunkWorkers: 0, warmUp: false });
    fast = await open({ chunkWorkers: 1, warmUp: true });
  }, 120_000);

  afterAll(() => {
    plain?.db.close();
    fast?.db.close();
  });

  it("warm-up leaves labels and pyramid as they were; edits write the same files with the worker as without", async () => {
    expect(await plain.editor.chunkWorkerUp()).toBe(false);
    expect(await fast.editor.chunkWorkerUp()).toBe(true);
    expect(Buffer.from(fast.editor.labels.buffer).equals(Buffer.from(plain.editor.labels.buffer))).toBe(true);
    for (let i = 0; i < plain.editor.pyramid.levels.length; i++) {
      expect(Buffer.from(fast.editor.pyramid.levels[i].data.buffer).equals(Buffer.from(plain.editor.pyramid.levels[i].data.buffer))).toBe(true);
    }
    // Warm-up did run (a class with two segments exists) and, run again, changes nothing either.
    expect(warmUp({ info: fast.editor.info, pyramid: fast.editor.pyramid, sums: SegmentSums.scan(fast.editor.labels, fast.editor.shape), rows: fast.editor.rows })).toBe(true);
    expect(Buffer.from(fast.editor.labels.buffer).equals(Buffer.from(plain.editor.labels.buffer))).toBe(true);
    for (let i = 0; i < plain.editor.pyramid.levels.length; i++) {
      expect(Buffer.from(fast.editor.pyramid.levels[i].data.buffer).equals(Buffer.from(plain.editor.pyramid.levels[i].data.buffer))).toBe(true);
      const [a, b] = [fast.editor.pyramid.blocks?.[i], plain.editor.pyramid.blocks?.[i]];
      expect(a && Buffer.from(a.uniform).equals(Buffer.from(b?.uniform ?? []))).toBe(b !== undefined ? true : undefined);
    }
    // The worker reads scale 0 from shared memory.
    expect(fast.editor.labels.buffer).toBeInstanceOf(SharedArrayBuffer);

    const rows = [...plain.editor.rows.values()];
    const perox = rows.filter((r) => r.class === "perox").map((r) => r.id);
    const mito = rows.find((r) => r.class === "mito");
    expect(perox.length).toBeGreaterThanOrEqual(4);
    expect(mito).toBeDefined();
    // The dumbbell's two balls (synthClasses: centres at x 30 and 70, y 30, z 4.5 voxels).
    const nm = (v: Vec3) => v.map((c, d) => (c + 0.5) * SYNTH_VOXEL[d]) as Vec3;
    const steps: ((e: Editor) => Promise<unknown>)[] = [
      (e) => e.edit({ kind: "merge", base: e.version, segments: [perox[0], perox[1]] }, "u"),
      (e) => e.edit({ kind: "merge", base: e.version, segments: [perox[2], perox[3]] }, "u"),
      (e) => e.edit({ kind: "split", base: e.version, segment: mito?.id as number, seeds: [{ point: nm([30, 30, 4]), group: 1 }, { point: nm([70, 30, 4]), group: 2 }] }, "u"),
      (e) => e.edit({ kind: "undo", base: e.version, operation: 3 }, "u"),
      (e) => e.edit({ kind: "undo", base: e.version, operation: 1 }, "u"),
      (e) => e.edit({ kind: "redo", base: e.version, operation: 3 }, "u"),
    ];
    for (const step of steps) {
      await step(plain.editor);
      await step(fast.editor);
      const v = plain.editor.version;
      expect(fast.editor.version).toBe(v);
      const want = files(versionDir(plain.root, v, "edit"));
      const got = files(versionDir(fast.root, v, "edit"));
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      expect([...want.keys()].some((k) => k.startsWith(`segmentation${path.sep}`))).toBe(true);
      for (const [k, bytes] of want) expect(got.get(k)?.equals(bytes), k).toBe(true);
      expect(Buffer.from(fast.editor.labels.buffer).equals(Buffer.from(plain.editor.labels.buffer))).toBe(true);
    }
  }, 120_000);
});
