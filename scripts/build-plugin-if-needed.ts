/**
 * Rebuilds the Neuroglancer bundle (dist/plugin) only when a file under plugin/ is newer than
 * dist/plugin/index.html. `npm start` runs this as prestart, and browser tests call
 * `ensurePluginBuilt()` so a stale bundle never masquerades as the code under test.
 */
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));
export const pluginSourceDir = join(repoRoot, "plugin");
export const pluginDistDir = join(repoRoot, "dist", "plugin");
const pluginConfig = join(pluginSourceDir, "vite.config.ts");
const builtIndex = join(pluginDistDir, "index.html");

export type PluginBuildReason = "missing" | "stale" | "up-to-date";

export interface PluginBuildResult {
  reason: PluginBuildReason;
  /** Milliseconds spent building; 0 when nothing was rebuilt. */
  buildMs: number;
}

async function newestMtimeMs(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const { mtimeMs } = await stat(join(entry.parentPath, entry.name));
    newest = Math.max(newest, mtimeMs);
  }
  return newest;
}

export async function pluginBuildReason(): Promise<PluginBuildReason> {
  let builtMs: number;
  try {
    builtMs = (await stat(builtIndex)).mtimeMs;
  } catch {
    return "missing";
  }
  return (await newestMtimeMs(pluginSourceDir)) > builtMs ? "stale" : "up-to-date";
}

export async function ensurePluginBuilt(): Promise<PluginBuildResult> {
  const reason = await pluginBuildReason();
  if (reason === "up-to-date") return { reason, buildMs: 0 };
  // Imported lazily: loading Vite costs ~0.5 s, wasted when the bundle is current.
  const { build } = await import("vite");
  const started = performance.now();
  await build({ configFile: pluginConfig, logLevel: "warn" });
  return { reason, buildMs: Math.round(performance.now() - started) };
}

async function main(): Promise<void> {
  const { reason, buildMs } = await ensurePluginBuilt();
  const what =
    reason === "up-to-date"
      ? "dist/plugin is up to date"
      : `built dist/plugin in ${(buildMs / 1000).toFixed(1)} s (${reason === "missing" ? "no previous build" : "plugin/ changed"})`;
  console.log(`vemscope plugin: ${what}`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(`vemscope plugin: build failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
