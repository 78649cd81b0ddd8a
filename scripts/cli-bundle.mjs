// @ts-check
/**
 * The command line and the demo run from an esbuild bundle of their TypeScript (dist/cli/), built on first use
 * and again whenever one of the files it was built from changed. Through tsx's loader every process and every
 * worker thread transpiles-on-load ~200 modules through loader hooks: on 2 cores a 16.8 Mvoxel `run --labels`
 * took ~2-4 s more CPU that way than from the bundle (README, "Measured figures", issue 4 seventh round).
 *
 * Plain JavaScript so that it runs before any TypeScript loader exists. A build goes into a fresh folder and is
 * published by renaming a small manifest over the old one, so concurrent processes never see half a bundle; a
 * process keeps the folder it started from (its worker threads load from there later), and superseded folders
 * are removed only once they are days old. `VEMSCOPE_NO_BUNDLE=1` runs from source through tsx instead.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BUNDLE_DIR = path.join(ROOT, "dist", "cli");
const MANIFEST = path.join(BUNDLE_DIR, "current.json");
/** Superseded builds younger than this stay: a long run started from one may still start worker threads from it. */
const KEEP_OLD_MS = 3 * 24 * 3600 * 1000;

/**
 * Output name -> source. The worker entries keep the names the pools look for next to the calling module
 * (`new URL("./entry.mjs", import.meta.url)`), so bundled code starts bundled workers without a loader.
 */
const ENTRIES = {
  vemscope: "scripts/vemscope.ts",
  demo: "scripts/demo.ts",
  entry: "server/pipeline/workers/worker.ts",
  "tile-worker": "server/pipeline/segment/tile-worker.ts",
};

/** Files whose change changes the bundle besides the modules themselves. */
const SETTINGS = ["package.json", "package-lock.json", "tsconfig.json", "scripts/cli-bundle.mjs"];

/** @param {string} rel */
function stamp(rel) {
  try {
    const s = statSync(path.join(ROOT, rel));
    return `${s.size}:${Math.floor(s.mtimeMs)}`;
  } catch {
    return "missing";
  }
}

/**
 * The folder of the current bundle when every file it was built from is unchanged, else undefined.
 * @returns {string | undefined}
 */
export function currentBundle() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
  } catch {
    return undefined;
  }
  if (typeof manifest?.dir !== "string" || typeof manifest.inputs !== "object" || manifest.inputs === null) return undefined;
  for (const [rel, s] of Object.entries(manifest.inputs)) if (stamp(rel) !== s) return undefined;
  const dir = path.join(BUNDLE_DIR, manifest.dir);
  for (const name of Object.keys(ENTRIES)) {
    try {
      statSync(path.join(dir, `${name}.mjs`));
    } catch {
      return undefined;
    }
  }
  return dir;
}

/**
 * Bundles the entries into a new folder and publishes it; returns that folder.
 * @returns {Promise<string>}
 */
export async function buildBundle() {
  const esbuild = await import("esbuild");
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const id = `b-${Date.now().toString(36)}-${process.pid}`;
  const dir = path.join(BUNDLE_DIR, id);
  const t0 = Date.now();
  let result;
  try {
    result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ENTRIES,
      outdir: dir,
      entryNames: "[name]",
      chunkNames: "chunk-[hash]",
      outExtension: { ".js": ".mjs" },
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      target: "node20",
      // Packages stay in node_modules: native addons, and files they read next to themselves.
      packages: "external",
      metafile: true,
      logLevel: "silent",
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  /** @type {Record<string, string>} */
  const inputs = {};
  for (const rel of [...Object.keys(result.metafile.inputs), ...SETTINGS]) {
    // A file changed while esbuild read it may be in the bundle in either state: stamped so the next start rebuilds.
    const s = stamp(rel);
    const changed = s !== "missing" && statSync(path.join(ROOT, rel)).mtimeMs >= t0;
    inputs[rel] = changed ? "changed during build" : s;
  }
  const tmp = `${MANIFEST}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ dir: id, built: new Date(t0).toISOString(), inputs }, null, 1));
  renameSync(tmp, MANIFEST);
  removeOld(id);
  return dir;
}

/** @param {string} keep */
function removeOld(keep) {
  for (const name of readdirSync(BUNDLE_DIR)) {
    if (name === keep || !name.startsWith("b-")) continue;
    const p = path.join(BUNDLE_DIR, name);
    try {
      if (Date.now() - statSync(p).mtimeMs > KEEP_OLD_MS) rmSync(p, { recursive: true, force: true });
    } catch {
      // Another process removed it first.
    }
  }
}

/**
 * Runs entry `name` (a key of ENTRIES) from the bundle, building it when stale; from source through tsx when
 * bundling is turned off or fails (a syntax error then shows as tsx reports it).
 * @param {keyof typeof ENTRIES} name
 */
export async function launch(name) {
  if (process.env.VEMSCOPE_NO_BUNDLE !== "1") {
    let dir = currentBundle();
    if (dir === undefined) {
      try {
        dir = await buildBundle();
      } catch (e) {
        const first = (e instanceof Error ? e.message : String(e)).split("\n")[0];
        process.stderr.write(`vemscope: could not bundle ${ENTRIES[name]} (${first}); running it through tsx\n`);
      }
    }
    if (dir !== undefined) {
      await import(pathToFileURL(path.join(dir, `${name}.mjs`)).href);
      return;
    }
  }
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(path.join(ROOT, ENTRIES[name])).href);
}
