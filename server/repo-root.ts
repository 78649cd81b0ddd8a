import { existsSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The repository's root folder: the nearest folder above this module holding package.json. Found by walking up
 * rather than by a fixed `../..`, because this module also runs from the CLI bundle (dist/cli/<build>/).
 */
function findRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, "..");
  }
}

export const REPO_ROOT = findRoot();
