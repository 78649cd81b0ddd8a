/**
 * `npm run bench -- align [--sections 8] [--patches 400]`: whole alignment throughput on real EM
 * (Lucchi, 1024 x 768) and the patch correlation kernel against a numpy reference on the same patches.
 * The reference is skimage.registration.phase_cross_correlation's algorithm (whitened cross-power,
 * inverse FFT, arg-max; upsample_factor 1) written in numpy, because skimage is not installed here; our
 * kernel additionally windows, tapers and fits the peak sub-pixel. Wall and CPU times are both printed:
 * the machine is shared, and CPU time is the steadier measure of the two.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readStack } from "../../server/pipeline/ingest.js";
import { alignStack } from "../../server/pipeline/align/align.js";
import { PhaseCorrelator } from "../../server/pipeline/align/correlate.js";
import { createRng } from "../../server/pipeline/random.js";

const DATA = fileURLToPath(new URL("../../../shared/data/lucchi_train/image", import.meta.url));

function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

const PY = `
import sys, time, numpy as np
n, p = int(sys.argv[2]), int(sys.argv[3])
d = np.fromfile(sys.argv[1], dtype=np.float64).reshape(n, 2, p, p)
def pcc(a, b):
    fa = np.fft.fft2(a); fb = np.fft.fft2(b)
    x = fa * fb.conj(); x /= np.abs(x) + 1e-12
    c = np.abs(np.fft.ifft2(x))
    return np.unravel_index(np.argmax(c), c.shape)
for i in range(min(n, 20)): pcc(d[i,0], d[i,1])
w0 = time.perf_counter(); c0 = time.process_time()
for i in range(n): pcc(d[i,0], d[i,1])
print(time.perf_counter() - w0, time.process_time() - c0)
`;

export async function main(args: string[]): Promise<void> {
  const sections = arg(args, "sections", 8);
  const patches = arg(args, "patches", 400);
  const { volume } = await readStack(DATA);
  const [w, h] = volume.shape;
  const sub = { data: volume.data.subarray(0, w * h * sections), shape: [w, h, sections] as [number, number, number] };

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { report } = await alignStack(sub);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0).user / 1e6;
  const mpx = (w * h * sections) / 1e6;
  process.stdout.write(
    `align ${sections} sections ${w}x${h}: wall ${wall.toFixed(1)} s (${(mpx / wall).toFixed(3)} Mpx/s), CPU ${cpu.toFixed(1)} s (${(mpx / cpu).toFixed(3)} Mpx/s); ` +
      `coarse ${report.seconds.coarse.toFixed(1)} s, elastic ${report.seconds.elastic.toFixed(1)} s, render ${report.seconds.render.toFixed(1)} s; peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB\n`,
  );

  // Same patch pairs for both kernels: 128 px, neighbouring sections, random places.
  const P = 128;
  const rng = createRng("bench-align");
  const pairs = new Float64Array(patches * 2 * P * P);
  for (let k = 0; k < patches; k++) {
    const z = rng.int(0, sections - 2);
    const x0 = rng.int(0, w - P);
    const y0 = rng.int(0, h - P);
    for (let s = 0; s < 2; s++) {
      for (let y = 0; y < P; y++) {
        for (let x = 0; x < P; x++) pairs[((k * 2 + s) * P + y) * P + x] = volume.data[(z + s) * w * h + (y0 + y) * w + x0 + x] as number;
      }
    }
  }
  const corr = new PhaseCorrelator(P);
  for (let k = 0; k < 20; k++) corr.correlate(pairs.subarray(0, P * P), pairs.subarray(P * P, 2 * P * P));
  const c1 = process.cpuUsage();
  const t1 = performance.now();
  for (let k = 0; k < patches; k++) corr.correlate(pairs.subarray(2 * k * P * P, (2 * k + 1) * P * P), pairs.subarray((2 * k + 1) * P * P, (2 * k + 2) * P * P));
  const oursWall = (performance.now() - t1) / 1000;
  const oursCpu = process.cpuUsage(c1).user / 1e6;
  const dir = mkdtempSync(join(tmpdir(), "vemscope-bench-align-"));
  try {
    const file = join(dir, "pairs.f64");
    writeFileSync(file, Buffer.from(pairs.buffer));
    const py = spawnSync("/usr/bin/python3", ["-c", PY, file, String(patches), String(P)], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" } });
    const line = `correlation ${patches} pairs of ${P} px: vemscope ${(patches / oursWall).toFixed(0)} pairs/s wall, ${(patches / oursCpu).toFixed(0)} CPU`;
    if (py.status !== 0) {
      process.stdout.write(`${line}; numpy reference did not run: ${py.stderr.trim().split("\n").pop() ?? ""}\n`);
      return;
    }
    const [refWall, refCpu] = py.stdout.trim().split(/\s+/).map(Number) as [number, number];
    process.stdout.write(
      `${line}; numpy phase_cross_correlation ${(patches / refWall).toFixed(0)} wall, ${(patches / refCpu).toFixed(0)} CPU; ` +
        `ratio (ours / numpy) ${(refWall / oursWall).toFixed(2)}x wall, ${(refCpu / oursCpu).toFixed(2)}x CPU (ours also windows, tapers and fits sub-pixel)\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
