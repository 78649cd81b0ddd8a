import * as path from "node:path";
import { generatePhantom, writePhantom } from "./phantom/index.js";
import type { ProgressCallback } from "./tiff.js";
import { silentProgress, type Progress } from "./progress.js";
import { parseSize } from "./voxel.js";

/** Adapts the phantom's (done, total, what) callbacks to one Progress stage. */
function asCallback(progress: Progress, stage: string): ProgressCallback {
  let started = false;
  return (done, total) => {
    if (!started) {
      progress.start(stage, total, "steps");
      started = true;
    }
    progress.update(done);
  };
}

/** `vemscope phantom`: generate, write atomically, and say what was made. */
export async function makePhantom(opts: { out: string; seed: number; size?: string; progress?: Progress }): Promise<string> {
  const progress = opts.progress ?? silentProgress;
  const size = opts.size === undefined ? undefined : parseSize(opts.size, "--size");
  const phantom = generatePhantom({ seed: opts.seed, size, onProgress: asCallback(progress, "phantom") });
  progress.end();
  await writePhantom(opts.out, phantom, { onProgress: asCallback(progress, "write phantom") });
  progress.end();
  const t = phantom.truth;
  const counts = Object.entries(t.counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
  return `phantom seed ${t.seed}, ${t.size.join("x")} voxels at ${t.voxel_nm.join("x")} nm: ${counts}, ${t.er.component_count} ER networks -> ${path.resolve(opts.out)}`;
}
