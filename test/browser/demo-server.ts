/** A small phantom through `vemscope run --labels`, served with the built viewer: what the browser tests open. */
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ensurePluginBuilt, pluginDistDir } from "../../scripts/build-plugin-if-needed.js";
import { serve } from "../../server/api/serve.js";
import { makePhantom } from "../../server/pipeline/phantom-command.js";
import { runPipeline } from "../../server/pipeline/run.js";

export interface DemoServer {
  url: string;
  dir: string;
  close(): Promise<void>;
}

export async function startDemoServer(name: string, opts: { seed?: number; size?: string } = {}): Promise<DemoServer> {
  await ensurePluginBuilt();
  const dir = mkdtempSync(path.join(tmpdir(), `vemscope-${name}-`));
  await makePhantom({ out: path.join(dir, "phantom"), seed: opts.seed ?? 3, size: opts.size ?? "256,256,32" });
  await runPipeline({
    image: path.join(dir, "phantom", "image.tif"),
    labels: path.join(dir, "phantom", "labels.tif"),
    voxelNm: [5, 5, 45],
    out: path.join(dir, "run"),
  });
  const { server, url } = await serve({ root: path.join(dir, "run"), port: 0, host: "127.0.0.1", viewerDir: pluginDistDir });
  return {
    url,
    dir,
    close: async () => {
      await new Promise<void>((resolve) => (server as Server).close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
