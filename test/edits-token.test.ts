/** `vemscope token create`: prints a token once, stores only its hash; bad arguments exit 2 with one line. */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { EditDb } from "../server/edits/db.js";
import { cachedSynthRun, copyRun } from "../server/edits/test-fixture.js";
import { lookupToken } from "../server/edits/tokens.js";

const run = promisify(execFile);
const cli = (args: string[]) => run(path.resolve("node_modules/.bin/tsx"), ["scripts/vemscope.ts", ...args]);

it("creates tokens for a served folder, hashed, and refuses bad roles", async () => {
  const root = copyRun(await cachedSynthRun());
  const { stdout } = await cli(["token", "create", root, "--user", "carol", "--role", "admin"]);
  const token = stdout.trim();
  expect(token).toMatch(/^vst_[A-Za-z0-9_-]{43}$/);
  const db = EditDb.at(root);
  expect(lookupToken(db, token)).toEqual({ user: "carol", role: "admin" });
  const stored = db.db.prepare<[], { hash: string }>("SELECT hash FROM tokens").all();
  expect(stored.map((r) => r.hash)).not.toContain(token);
  db.close();
  const bad = await cli(["token", "create", root, "--user", "carol", "--role", "root"]).catch((e: { code: number; stderr: string }) => e);
  expect(bad).toMatchObject({ code: 2 });
  expect((bad as { stderr: string }).stderr).toContain("--role");
  const noDir = await cli(["token", "create", "/nonexistent", "--user", "c", "--role", "viewer"]).catch((e: { code: number }) => e);
  expect(noDir).toMatchObject({ code: 2 });
});
