/** `npm run bench -- <name> [options]`: benchmarks side by side with a reference tool, reported as ratios. */
const BENCHES: Record<string, { summary: string; load: () => Promise<{ main(args: string[]): Promise<void> }> }> = {
  scale: { summary: "downsample tasks through the Redis queue with 1, 2, 4 workers vs in-process; projection to 11 / 188 Gvox; --pipeline: whole run, S3 in/out, N workers", load: () => import("./scale.js") },
  serve: { summary: "chunk serving vs nginx on the same folder", load: () => import("./serve.js") },
  surface: { summary: "surface area vs skimage marching cubes", load: () => import("./surface-quick.js") },
  edt: { summary: "anisotropic EDT vs scipy.ndimage.distance_transform_edt", load: () => import("./edt-quick.js") },
  stream: { summary: "peak RSS of the out-of-core run at 1x, 2x, 4x the block budget", load: () => import("./stream.js") },
  edits: { summary: "proofreading: merge/split/undo latency to a visible new version, and to re-measurement", load: () => import("./edits.js") },
  align: { summary: "alignment Mpx/s on Lucchi and the patch correlation kernel vs numpy phase correlation", load: () => import("./align.js") },
  analysis: { summary: "CCL, EDT, surface vs scipy/skimage and the whole run --labels", load: () => import("./analysis.js") },
  segment: { summary: "tiled U-Net inference vs a bare onnxruntime session on the same tiles", load: () => import("./segment.js") },
};

const [name, ...args] = process.argv.slice(2);
const bench = name ? BENCHES[name] : undefined;
if (!bench) {
  process.stderr.write(
    `usage: npm run bench -- <name>\n${Object.entries(BENCHES)
      .map(([n, b]) => `  ${n.padEnd(10)} ${b.summary}`)
      .join("\n")}\n`,
  );
  process.exit(2);
}
await (await bench.load()).main(args);
