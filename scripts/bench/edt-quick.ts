/**
 * Quick EDT throughput check against scipy.ndimage.distance_transform_edt on the same volume.
 * `npx tsx scripts/bench/edt-quick.ts [--nx 512 --ny 512 --nz 64] [--reps 3]`
 * Prints Mvox/s for vemscope's transforms, scipy's time, the ratio, and the largest disagreement.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Vec3 } from "../../precomputed/array.js";
import { contactSurfaceVoxels, edtSquared, edtToFeature, minDistanceToFeature, type Shape3 } from "../../server/pipeline/edt.js";
import { connectedComponents } from "../../server/pipeline/label.js";
import { createRng } from "../../server/pipeline/random.js";

const SPACING: Vec3 = [5, 5, 45];

function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

/** A cell-like class volume: ER as thin random sheets, organelles as ellipsoids (seeded). */
function phantom([nx, ny, nz]: Shape3): Uint8Array {
  const rng = createRng("edt-quick");
  const c = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < (nx * ny * nz) / 40_000; k++) {
    const cx = rng.uniform(0, nx), cy = rng.uniform(0, ny), cz = rng.uniform(0, nz);
    const rx = rng.uniform(8, 40), ry = rng.uniform(8, 40), rz = rng.uniform(1, 5);
    const cls = rng.int(2, 5);
    for (let z = Math.max(0, Math.floor(cz - rz)); z < Math.min(nz, cz + rz); z++)
      for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(ny, cy + ry); y++)
        for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(nx, cx + rx); x++) {
          if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1) c[x + nx * (y + ny * z)] = cls;
        }
  }
  for (let k = 0; k < (nx * ny * nz) / 20_000; k++) {
    // ER sheet segments: short random walks, 2 voxels thick in-plane, one section tall.
    let x = rng.uniform(0, nx), y = rng.uniform(0, ny);
    const z = rng.int(0, nz - 1);
    let a = rng.uniform(0, 2 * Math.PI);
    for (let step = 0; step < 60; step++) {
      a += rng.normal() * 0.3;
      x += Math.cos(a);
      y += Math.sin(a);
      for (let d = 0; d < 2; d++) {
        const xi = Math.floor(x) + d, yi = Math.floor(y);
        if (xi >= 0 && yi >= 0 && xi < nx && yi < ny && c[xi + nx * (yi + ny * z)] === 0) c[xi + nx * (yi + ny * z)] = 1;
      }
    }
  }
  return c;
}

/**
 * Best of reps after a warm-up, wall clock and CPU time of this process. Both are reported because the
 * machines this runs on are often shared: CPU time is the steadier measure there, and scipy is timed alike.
 */
function best<T>(reps: number, f: () => T): { ms: number; cpuMs: number; result: T } {
  let ms = Infinity;
  let cpuMs = Infinity;
  let result = f();
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    const c = process.cpuUsage();
    result = f();
    const used = process.cpuUsage(c);
    ms = Math.min(ms, performance.now() - t);
    cpuMs = Math.min(cpuMs, (used.user + used.system) / 1000);
  }
  return { ms, cpuMs, result };
}

/** Times scipy on the same mask (best of reps, inside Python) and checks it agrees with ours. */
function scipy(mask: Uint8Array, shape: Shape3, reps: number, ours: Float64Array, out: string[]): { ms: number; cpuMs: number } {
  const n = mask.length;
  const dir = mkdtempSync(join(tmpdir(), "edt-quick-"));
  try {
    writeFileSync(join(dir, "mask.raw"), mask);
    const py = [
      "import sys, time, numpy as np",
      "from scipy import ndimage as ndi",
      `m = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(${shape[2]}, ${shape[1]}, ${shape[0]})`,
      "ts, cs = [], []",
      `for _ in range(${Math.min(reps, 2)}):`,
      `    t = time.perf_counter(); c = time.process_time()`,
      `    d = ndi.distance_transform_edt(m, sampling=(${SPACING[2]}, ${SPACING[1]}, ${SPACING[0]}))`,
      "    ts.append(time.perf_counter() - t); cs.append(time.process_time() - c)",
      "d.astype(np.float64).tofile(sys.argv[2])",
      "print(min(ts) * 1000, min(cs) * 1000)",
    ].join("\n");
    const r = spawnSync("/usr/bin/python3", ["-c", py, join(dir, "mask.raw"), join(dir, "scipy.raw")], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`scipy run failed: ${r.stderr}`);
    const [ms, cpuMs] = r.stdout.trim().split(/\s+/).map(Number);
    const ref = new Float64Array(readFileSync(join(dir, "scipy.raw")).buffer.slice(0));
    let maxDiff = 0;
    for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(Math.sqrt(ours[i]) - ref[i]));
    out.push(`  max |sqrt(edtSquared) - scipy| = ${maxDiff.toExponential(2)} nm`);
    return { ms, cpuMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(args: string[]): Promise<void> {
  const shape: Shape3 = [arg(args, "nx", 512), arg(args, "ny", 512), arg(args, "nz", 64)];
  const reps = arg(args, "reps", 3);
  const n = shape[0] * shape[1] * shape[2];
  const classes = phantom(shape);
  // scipy's input: organelles (not ER, not background) as foreground; distance from each to the nearest 0.
  const mask = classes.map((c) => (c >= 2 ? 1 : 0));
  const er = classes.map((c) => (c === 1 ? 1 : 0));
  let fg = 0;
  for (let i = 0; i < n; i++) fg += mask[i];
  const mvox = n / 1e6;
  const out: string[] = [`volume ${shape.join("x")} (${mvox.toFixed(1)} Mvox), spacing ${SPACING.join(",")} nm, foreground ${((100 * fg) / n).toFixed(1)}%`];
  const rate = (t: { ms: number; cpuMs: number }): string =>
    `${t.ms.toFixed(0).padStart(5)} ms wall (${(mvox / (t.ms / 1000)).toFixed(1).padStart(5)} Mvox/s), ${t.cpuMs.toFixed(0).padStart(5)} ms CPU (${(mvox / (t.cpuMs / 1000)).toFixed(1).padStart(5)} Mvox/s)`;

  // A second, denser mask: half foreground in random runs, so few lines are all background.
  const rng = createRng("edt-quick-dense");
  const dense = new Uint8Array(n);
  for (let i = 0, on = 0; i < n; i++) {
    if (rng.next() < 0.02) on ^= 1;
    dense[i] = on;
  }
  for (const [name, m] of [["phantom organelles", mask], ["dense random runs", dense]] as const) {
    const f64 = best(reps, () => edtSquared(m, shape, SPACING));
    const f32 = best(reps, () => edtSquared(m, shape, SPACING, { output: "float32" }));
    const ref = scipy(m, shape, reps, f64.result, out);
    out.push(`[${name}] edtSquared float64  ${rate(f64)}`);
    out.push(`[${name}] edtSquared float32  ${rate(f32)}`);
    out.push(`[${name}] scipy               ${rate(ref)}`);
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(1)}x`;
    out.push(
      `[${name}] speed-up vs scipy: float64 ${ratio(ref.ms, f64.ms)} wall / ${ratio(ref.cpuMs, f64.cpuMs)} CPU, ` +
        `float32 ${ratio(ref.ms, f32.ms)} wall / ${ratio(ref.cpuMs, f32.cpuMs)} CPU`,
    );
  }
  const erFace = best(reps, () => edtToFeature(er, shape, SPACING, { metric: "face" }));
  out.push(`edtToFeature(ER) face          ${rate(erFace)}`);
  const erCap = best(reps, () => edtToFeature(er, shape, SPACING, { metric: "face", maxDistanceNm: 100 }));
  out.push(`edtToFeature(ER) face <=100nm  ${rate(erCap)}`);
  const { labels, count } = connectedComponents(classes.map((c) => (c >= 2 ? c : 0)), shape);
  const md = best(reps, () => minDistanceToFeature(labels, er, shape, SPACING));
  out.push(`minDistanceToFeature           ${rate(md)}  (${count} instances)`);
  const cs = best(reps, () => contactSurfaceVoxels(labels, er, shape, SPACING, 30));
  out.push(`contactSurfaceVoxels 30 nm     ${rate(cs)}  (${cs.result.voxel.length} contact voxels)`);

  process.stdout.write(out.join("\n") + "\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main(process.argv.slice(2));
