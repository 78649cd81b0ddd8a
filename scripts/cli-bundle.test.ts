/**
 * The command line runs from an esbuild bundle (cli-bundle.mjs): what it writes must be what the TypeScript
 * sources write through tsx, worker threads included, and a changed source must make the bundle stale.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generatePhantom } from "../server/pipeline/phantom/index.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { buildBundle, currentBundle } from "./cli-bundle.mjs";

const run = promisify(execFile);
let dir: string;

/** Every file under `root`, relative path -> bytes. */
function files(root: string, rel = ""): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) for (const [k, v] of files(root, r)) out.set(k, v);
    else out.set(r, readFileSync(path.join(root, r)));
  }
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-cli-bundle-"));
  const p = generatePhantom({ seed: 3, size: [256, 256, 16], voxelNm: [5, 5, 45] });
  await writeTiffStack(path.join(dir, "image.tif"), p.image);
  await writeTiffStack(path.join(dir, "labels.tif"), p.labels);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("bundled command line", () => {
  it("writes the same bytes as the TypeScript sources through tsx, with a worker thread", async () => {
    const runWith = async (out: string, env: NodeJS.ProcessEnv) => {
      const args = ["scripts/cli.mjs", "run", "--image", path.join(dir, "image.tif"), "--labels", path.join(dir, "labels.tif"), "--voxel", "5,5,45", "--out", path.join(dir, out)];
      // One pool worker: the display meshes and surfaces then run in a thread started from the bundle's entry.mjs.
      return run(process.execPath, args, { cwd: process.cwd(), env: { ...process.env, VEMSCOPE_WORKERS: "1", ...env } });
    };
    const bundled = await runWith("bundled", { VEMSCOPE_NO_BUNDLE: "" });
    expect(bundled.stderr).not.toMatch(/could not bundle/);
    expect(currentBundle()).toBeDefined();
    await runWith("source", { VEMSCOPE_NO_BUNDLE: "1" });
    const a = files(path.join(dir, "bundled"));
    const b = files(path.join(dir, "source"));
    expect(a.size).toBeGreaterThan(20);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [k, v] of a) expect(v.equals(b.get(k) as Buffer), k).toBe(true);
  });

  it("bundles no module that finds files next to itself, except the worker entries bundled beside it", async () => {
    const dist = currentBundle() ?? (await buildBundle());
    const manifest = JSON.parse(readFileSync(path.join(dist, "..", "current.json"), "utf8")) as { inputs: Record<string, string> };
    // In the bundle import.meta.url is dist/cli/<build>/chunk-*.mjs: a path relative to the source file breaks
    // there (server/repo-root.ts finds the repository instead). Resolving packages from it is fine.
    const allowed = /new URL\("\.\/(entry|tile-worker)\.mjs", import\.meta\.url\)|createRequire\(import\.meta\.url\)|fileURLToPath\(import\.meta\.url\)\);$/;
    const offending: string[] = [];
    for (const rel of Object.keys(manifest.inputs).filter((f) => f.endsWith(".ts"))) {
      for (const line of readFileSync(rel, "utf8").split("\n")) {
        if (line.includes("import.meta") && !line.trimStart().startsWith("//") && !line.trimStart().startsWith("*") && !allowed.test(line)) offending.push(`${rel}: ${line.trim()}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("is stale once a file it was built from changes, and fresh again when it is back", async () => {
    // Whole seconds: a file's time set from a fractional Date can come back a nanosecond short of it.
    const source = path.resolve("server/pipeline/contacts.ts");
    const { atime, mtimeMs } = statSync(source);
    const s = Math.floor(mtimeMs / 1000);
    utimesSync(source, atime, s);
    const dist = await buildBundle();
    expect(currentBundle()).toBe(dist);
    expect(statSync(path.join(dist, "vemscope.mjs")).isFile()).toBe(true);
    expect(statSync(path.join(dist, "entry.mjs")).isFile()).toBe(true);
    try {
      utimesSync(source, atime, s + 5);
      expect(currentBundle()).toBeUndefined();
    } finally {
      utimesSync(source, atime, s);
    }
    // Fresh again (another test's CLI may have published a newer build meanwhile: any fresh one will do).
    expect(currentBundle()).toBeDefined();
  });
});
