/**
 * The version folders' in-place writes (versions.ts RecordingStorage): LocalStorage reads them back, and a key
 * rewritten in the other spelling keeps one file.
 */
import { readdirSync } from "node:fs";
import * as path from "node:path";
import { beforeAll, expect, it } from "vitest";
import { LocalStorage } from "../precomputed/storage.js";
import { cachedSynthRun, copyRun } from "../server/edits/test-fixture.js";
import { RecordingStorage, VERSIONS_DIR } from "../server/edits/versions.js";

let template: string;
beforeAll(async () => {
  template = await cachedSynthRun();
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
