/**
 * The warm-up of the edit kernels when the editor opens (server/edits/warmup.ts): it runs on a private volume,
 * leaves the served folder, its log and its labels as they were, and edits after it give what they give
 * without it. Also the version folders' in-place writes (versions.ts RecordingStorage): LocalStorage reads
 * them back, and a key rewritten in the other spelling keeps one file.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { beforeAll, expect, it } from "vitest";
import { LocalStorage } from "../precomputed/storage.js";
import { EditDb } from "../server/edits/db.js";
import { Editor } from "../server/edits/editor.js";
import { rowsFromCsv } from "../server/edits/table.js";
import { cachedSynthRun, copyRun } from "../server/edits/test-fixture.js";
import { RecordingStorage, VERSIONS_DIR } from "../server/edits/versions.js";
import { warmEditKernels } from "../server/edits/warmup.js";

let template: string;
beforeAll(async () => {
  template = await cachedSynthRun();
});

/** Every file under `dir` with its size and modification time. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const s = statSync(p);
        out.set(path.relative(dir, p), `${s.size} ${s.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return out;
}

it("warm-up leaves the folder, the log, the version and the labels untouched; edits after it are the same", async () => {
  const results: { labels: Uint32Array; version: number; files: string[]; rows: string }[] = [];
  for (const warmup of [true, false]) {
    const root = copyRun(template);
    const db = EditDb.at(root);
    const before = snapshot(root);
    const perox = [...rowsFromCsv(readFileSync(path.join(root, "report/morphometrics.csv"), "utf8")).values()].filter((r) => r.class === "perox").map((r) => r.id);
    let warmed: { cpuMs: number; edits: number } | undefined;
    const editor = await Editor.open(root, db, { measure: false, warmup, onWarmup: (r) => (warmed = r) });
    if (warmup) {
      expect(warmed?.edits).toBeGreaterThan(0);
      // Opening wrote nothing but the database (the warm-up's chunks and tables went nowhere).
      const after = snapshot(root);
      for (const [f, s] of before) expect(after.get(f)).toBe(s);
      expect([...after.keys()].filter((f) => !before.has(f) && !f.startsWith(".vemscope/edits.sqlite"))).toEqual([]);
    } else expect(warmed).toBeUndefined();
    expect(editor.version).toBe(0);
    expect(db.ops()).toEqual([]);
    const opened = editor.labels.slice();
    const merge = await editor.edit({ kind: "merge", base: 0, segments: [perox[0], perox[1]] }, "t");
    await editor.edit({ kind: "undo", base: merge.version, operation: merge.operation_id }, "t");
    expect(Buffer.from(editor.labels.buffer).equals(Buffer.from(opened.buffer))).toBe(true);
    const again = await editor.edit({ kind: "merge", base: 2, segments: [perox[2], perox[3]] }, "t");
    await editor.idle();
    results.push({
      labels: editor.labels.slice(),
      version: again.version,
      files: db.ops().flatMap((o) => o.files).sort(),
      rows: readFileSync(path.join(root, VERSIONS_DIR, "3", "edit", "report/morphometrics.csv"), "utf8"),
    });
    db.close();
  }
  const [warm, cold] = results;
  expect(warm.version).toBe(3);
  expect(cold.version).toBe(3);
  expect(Buffer.from(warm.labels.buffer).equals(Buffer.from(cold.labels.buffer))).toBe(true);
  expect(warm.files).toEqual(cold.files);
  expect(warm.rows).toBe(cold.rows);
});

it("warm-up alone: runs its edits on the layer's scales and leaves the info as it was", async () => {
  const storage = new LocalStorage(template);
  const info = JSON.parse(new TextDecoder().decode((await storage.get("segmentation/info")) as Uint8Array));
  const copy = structuredClone(info);
  const r = await warmEditKernels(info);
  expect(r.edits).toBeGreaterThanOrEqual(6);
  expect(r.cpuMs).toBeGreaterThan(0);
  expect(info).toEqual(copy);
});

it("version folders written in place read back through LocalStorage, one spelling per key", async () => {
  const root = copyRun(template);
  const dir = path.join(root, VERSIONS_DIR, "9", "edit");
  const rec = new RecordingStorage(dir);
  await rec.put("a/b/c", new Uint8Array([1, 2, 3]), { contentEncoding: "gzip" });
  await rec.put("a/d", "text");
  const local = new LocalStorage(dir);
  expect([...((await local.get("a/b/c")) as Uint8Array)]).toEqual([1, 2, 3]);
  expect(new TextDecoder().decode(await local.get("a/d"))).toBe("text");
  await rec.put("a/b/c", new Uint8Array([4]));
  expect(readdirSync(path.join(dir, "a", "b"))).toEqual(["c"]);
  expect([...((await local.get("a/b/c")) as Uint8Array)]).toEqual([4]);
  expect([...rec.keys].sort()).toEqual(["a/b/c", "a/d"]);
  expect(await local.list("a/")).toEqual(["a/b/c", "a/d"]);
});
