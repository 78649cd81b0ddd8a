/** `npm run bench -- <name> [options]`: benchmarks side by side with a reference tool, reported as ratios. */
const BENCHES: Record<string, { summary: string; load: () => Promise<{ main(args: string[]): Promise<void> }> }> = {
  serve: { summary: "chunk serving vs nginx on the same folder", load: () => import("./serve.js") },
  surface: { summary: "surface area vs skimage marching cubes", load: () => import("./surface-quick.js") },
  edt: { summary: "anisotropic EDT vs scipy.ndimage.distance_transform_edt", load: () => import("./edt-quick.js") },
  analysis: { summary: "CCL, EDT, surface vs scipy/skimage and the whole run --labels", load: () => import("./analysis.js") },
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
