/**
 * Surface-area kernel vs scikit-image on the same binary masks: a seeded 512 x 512 x 64 label volume at
 * 5 x 5 x 45 nm holding ~40 non-overlapping spheres and capsules (any orientation), each measured in its
 * bounding box by our measureSurface and by skimage.measure.marching_cubes(level 0.5) + mesh_surface_area.
 * Reports throughput (volume voxels / total time, CPU time and wall time), the ratio, and both methods'
 * area errors against the analytic areas.
 *
 * Run: `npx tsx scripts/bench/surface-quick.ts [--seed N] [--reps N] [--substeps N] [--python /usr/bin/python3]`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type { Vec3 } from "../../precomputed/array.js";
import { createRng } from "../../server/pipeline/random.js";
import { measureSurface, type SurfaceOptions } from "../../server/pipeline/surface.js";

export const SHAPE: [number, number, number] = [512, 512, 64];
export const SPACING: Vec3 = [5, 5, 45];

interface Body {
  kind: "sphere" | "capsule";
  centre: Vec3;
  axis: Vec3;
  r: number;
  L: number;
  area: number;
  volume: number;
}

export function place(seed: number, want: number): Body[] {
  const rng = createRng(seed);
  const ext = SHAPE.map((n, a) => n * SPACING[a]);
  const bodies: Body[] = [];
  for (let tries = 0; bodies.length < want && tries < 20000; tries++) {
    const sphere = bodies.length % 2 === 0; // alternate, or the larger capsules would rarely fit
    const r = sphere ? rng.uniform(150, 400) : rng.uniform(120, 250);
    const L = sphere ? 0 : rng.uniform(300, 1200);
    const az = rng.uniform(0, 2 * Math.PI);
    const el = rng.bool(0.5) ? 0 : rng.uniform(-Math.PI / 3, Math.PI / 3);
    const axis: Vec3 = [Math.cos(el) * Math.cos(az), Math.cos(el) * Math.sin(az), Math.sin(el)];
    const reach = [0, 1, 2].map((a) => (Math.abs(axis[a]) * L) / 2 + r + 2 * SPACING[a]);
    const centre = [0, 1, 2].map((a) => rng.uniform(reach[a], ext[a] - reach[a])) as Vec3;
    if (reach.some((v, a) => 2 * v >= ext[a])) continue;
    // Bounding spheres apart by 3 pixels, so every label is exactly its analytic body.
    const bound = r + L / 2;
    const clear = bodies.every((b) => Math.hypot(...[0, 1, 2].map((a) => b.centre[a] - centre[a])) > bound + b.r + b.L / 2 + 15);
    if (!clear) continue;
    bodies.push({
      kind: sphere ? "sphere" : "capsule",
      centre,
      axis,
      r,
      L,
      area: 2 * Math.PI * r * L + 4 * Math.PI * r * r,
      volume: Math.PI * r * r * L + (4 / 3) * Math.PI * r ** 3,
    });
  }
  return bodies;
}

export function voxelise(bodies: Body[]): Uint32Array {
  const [nx, ny, nz] = SHAPE;
  const labels = new Uint32Array(nx * ny * nz);
  bodies.forEach((b, k) => {
    const reach = [0, 1, 2].map((a) => (Math.abs(b.axis[a]) * b.L) / 2 + b.r);
    const lo = [0, 1, 2].map((a) => Math.max(0, Math.floor((b.centre[a] - reach[a]) / SPACING[a]) - 1));
    const hi = [0, 1, 2].map((a) => Math.min(SHAPE[a], Math.ceil((b.centre[a] + reach[a]) / SPACING[a]) + 1));
    for (let z = lo[2]; z < hi[2]; z++)
      for (let y = lo[1]; y < hi[1]; y++)
        for (let x = lo[0]; x < hi[0]; x++) {
          const p = [(x + 0.5) * SPACING[0] - b.centre[0], (y + 0.5) * SPACING[1] - b.centre[1], (z + 0.5) * SPACING[2] - b.centre[2]];
          const t = Math.max(-b.L / 2, Math.min(b.L / 2, p[0] * b.axis[0] + p[1] * b.axis[1] + p[2] * b.axis[2]));
          const d2 = (p[0] - t * b.axis[0]) ** 2 + (p[1] - t * b.axis[1]) ** 2 + (p[2] - t * b.axis[2]) ** 2;
          if (d2 <= b.r * b.r) labels[x + nx * (y + ny * z)] = k + 1;
        }
  });
  return labels;
}

export function boxes(labels: Uint32Array, count: number): Int32Array {
  const [nx, ny, nz] = SHAPE;
  const bbox = new Int32Array(6 * (count + 1));
  for (let id = 0; id <= count; id++) bbox.set([nx, ny, nz, 0, 0, 0], 6 * id);
  for (let z = 0, i = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++, i++) {
        const b = 6 * labels[i];
        if (b === 0) continue;
        bbox[b] = Math.min(bbox[b], x);
        bbox[b + 1] = Math.min(bbox[b + 1], y);
        bbox[b + 2] = Math.min(bbox[b + 2], z);
        bbox[b + 3] = Math.max(bbox[b + 3], x + 1);
        bbox[b + 4] = Math.max(bbox[b + 4], y + 1);
        bbox[b + 5] = Math.max(bbox[b + 5], z + 1);
      }
  return bbox;
}

const PYTHON = String.raw`
import json, sys, time
import numpy as np
from skimage import measure
raw, meta, reps = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
nx, ny, nz = meta["shape"]; sx, sy, sz = meta["spacing"]
labels = np.fromfile(raw, dtype=np.uint32).reshape(nz, ny, nx)
best = None
for _ in range(reps):
    c0, w0 = time.process_time(), time.perf_counter()
    areas = []
    for k, (x0, y0, z0, x1, y1, z1) in enumerate(meta["bbox"]):
        # One voxel of background around the box so that the mesh closes, as our kernel does.
        crop = labels[max(z0-1,0):z1+1, max(y0-1,0):y1+1, max(x0-1,0):x1+1]
        mask = np.pad(crop == k + 1, 1).astype(np.float32)
        v, f, _, _ = measure.marching_cubes(mask, 0.5, spacing=(sz, sy, sx))
        areas.append(float(measure.mesh_surface_area(v, f)))
    t = (time.process_time() - c0, time.perf_counter() - w0)
    if best is None or t[0] < best[0]: best = t
print(json.dumps({"cpu_s": best[0], "wall_s": best[1], "areas": areas}))
`;

export async function main(args: string[]): Promise<void> {
  const opt = (name: string, dflt: string): string => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
  };
  const seed = Number(opt("seed", "1"));
  const reps = Number(opt("reps", "3"));
  const python = opt("python", "/usr/bin/python3");
  const substeps = opt("substeps", "");
  const options: SurfaceOptions = substeps ? { zSubsteps: Number(substeps) } : {};
  const bodies = place(seed, 40);
  const labels = voxelise(bodies);
  const bbox = boxes(labels, bodies.length);
  const voxels = SHAPE[0] * SHAPE[1] * SHAPE[2];
  let boxVoxels = 0;
  for (let k = 1; k <= bodies.length; k++) {
    const b = bbox.subarray(6 * k, 6 * k + 6);
    boxVoxels += (b[3] - b[0]) * (b[4] - b[1]) * (b[5] - b[2]);
  }

  let ours = { cpu: Infinity, wall: Infinity };
  let areas: number[] = [];
  let volumes: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const ms = bodies.map((_, k) => measureSurface(labels, SHAPE, SPACING, k + 1, bbox.subarray(6 * (k + 1), 6 * (k + 2)), options));
    const wall = (performance.now() - w0) / 1000;
    const u = process.cpuUsage(c0);
    areas = ms.map((m) => m.surface_nm2);
    volumes = ms.map((m) => m.volume_nm3);
    const cpu = (u.user + u.system) / 1e6;
    if (cpu < ours.cpu) ours = { cpu, wall };
  }

  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-bench-surface-"));
  let ref: { cpu_s: number; wall_s: number; areas: number[] };
  try {
    writeFileSync(path.join(dir, "labels.raw"), new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
    const bb = bodies.map((_, k) => Array.from(bbox.subarray(6 * (k + 1), 6 * (k + 2))));
    writeFileSync(path.join(dir, "meta.json"), JSON.stringify({ shape: SHAPE, spacing: SPACING, bbox: bb }));
    writeFileSync(path.join(dir, "ref.py"), PYTHON);
    const out = execFileSync(python, [path.join(dir, "ref.py"), path.join(dir, "labels.raw"), path.join(dir, "meta.json"), String(reps)], {
      encoding: "utf8",
      maxBuffer: 1 << 24,
    });
    ref = JSON.parse(out) as typeof ref;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const err = (a: number[], truth: (b: Body) => number = (b) => b.area): { mean: number; worst: number } => {
    const e = a.map((v, k) => v / truth(bodies[k]) - 1);
    const worst = e.reduce((w, v) => (Math.abs(v) > Math.abs(w) ? v : w), 0);
    return { mean: e.reduce((s, v) => s + v, 0) / e.length, worst };
  };
  const pct = (v: number): string => `${v >= 0 ? "+" : ""}${(100 * v).toFixed(1)}%`;
  const mv = (s: number): string => (voxels / s / 1e6).toFixed(1);
  const eo = err(areas);
  const er = err(ref.areas);
  const ev = err(volumes, (b) => b.volume);
  const spheres = bodies.filter((b) => b.kind === "sphere").length;
  const row = (name: string, cpu: number, wall: number, e: { mean: number; worst: number }): string =>
    `| ${name} | ${cpu.toFixed(2)} | ${mv(cpu)} | ${wall.toFixed(2)} | ${mv(wall)} | ${pct(e.mean)} | ${pct(e.worst)} |`;
  const lines = [
    `surface-quick: ${bodies.length} bodies (${spheres} spheres) in ${SHAPE.join("x")} at ${SPACING.join("x")} nm, seed ${seed}; ` +
      `bbox voxels ${(boxVoxels / 1e6).toFixed(1)} M; best of ${reps}`,
    `| method | CPU s | Mvox/s (CPU) | wall s | Mvox/s (wall) | area err mean | area err worst |`,
    `| --- | --- | --- | --- | --- | --- | --- |`,
    row(`vemscope measureSurface${substeps ? ` (${substeps} sub-steps)` : ""}`, ours.cpu, ours.wall, eo),
    row("skimage marching_cubes + mesh_surface_area", ref.cpu_s, ref.wall_s, er),
    `ratio (ours / skimage throughput): CPU ${(ref.cpu_s / ours.cpu).toFixed(2)}x, wall ${(ref.wall_s / ours.wall).toFixed(2)}x`,
    `our enclosed volume vs analytic: mean ${pct(ev.mean)}, worst ${pct(ev.worst)}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main(process.argv.slice(2));
}
