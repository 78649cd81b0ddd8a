/**
 * `npm start`: the whole pipeline on the embedded default dataset (the seeded phantom, generated here, never
 * committed), then serves it and prints the viewer URL.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { makePhantom } from "../server/pipeline/phantom-command.js";
import { runPipeline } from "../server/pipeline/run.js";
import { serve } from "../server/api/serve.js";
import { terminalProgress } from "./cli-progress-sink.js";

const root = path.resolve("data", "demo");
const phantomDir = path.join(root, "phantom");
const runDir = path.join(root, "run");
const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? "127.0.0.1";

const t0 = performance.now();
if (!existsSync(path.join(phantomDir, "truth.json"))) {
  process.stderr.write(`generating the demo phantom in ${phantomDir}\n`);
  process.stdout.write(`${await makePhantom({ out: phantomDir, seed: 1, progress: terminalProgress() })}\n`);
}
const result = await runPipeline({
  image: path.join(phantomDir, "image.tif"),
  // No --labels: the shipped model (models/vemscope-unet-fast-int8.onnx) segments the phantom's EM-like image, as a run on
  // real data would. VEMSCOPE_DEMO_TRUTH=1 uses the phantom's true classes instead (faster, exact). The phantom is
  // rendered aligned, so alignment (which would only resample it) is skipped.
  ...(process.env.VEMSCOPE_DEMO_TRUTH === "1" ? { labels: path.join(phantomDir, "labels.tif") } : { align: false }),
  voxelNm: [5, 5, 45],
  out: runDir,
  progress: terminalProgress(),
});
process.stdout.write(`pipeline: ${result.instances} instances in ${result.seconds.toFixed(1)} s (demo total ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
const { url } = await serve({ root: runDir, port, host, tryNextPorts: 20 });
process.stdout.write(
  `\nvemscope demo ready. Open the viewer:\n  ${url}\nfigures: ${url}precomputed/report/figures/index.html\ntable:   ${url}precomputed/report/morphometrics.csv\n(Ctrl-C to stop)\n`,
);
