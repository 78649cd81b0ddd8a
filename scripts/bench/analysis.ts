/**
 * The analysis kernels and the whole `vemscope run --labels` on one phantom, side by side with the reference
 * tools in the same run: `npm run bench -- analysis [--size 512,512,64] [--seed 1] [--reps 3] [--python /usr/bin/python3]`.
 *
 * 1. CCL: connectedComponents on the class volume (all classes in one pass, 26-connectivity) vs
 *    scipy.ndimage.label with a 3x3x3 structure, once per class code present (scipy labels binary images),
 *    times summed. The ratio is taken against label() alone; `classes == c` is timed too and shown. The
 *    component count per class must agree.
 * 2. Anisotropic EDT of the organelle mask (class >= 2): edtSquared at 5,5,45 nm vs
 *    distance_transform_edt(mask, sampling=(45,5,5)); sqrt(ours) must equal scipy's to 1e-6 nm.
 * 3. Surface: measureSurface (interpolated between sections) on every non-ER instance in its bounding box vs
 *    skimage marching_cubes(level 0.5, spacing (45,5,5)) + mesh_surface_area on each instance's padded crop.
 *    Skipped, with the reason, when server/pipeline/surface.ts offers no usable measureSurface.
 * 4. `vemscope run --labels` on the phantom written as TIFFs, in a child process: Mvox/s end to end, per
 *    progress stage, and peak RSS (process.resourceUsage via the analysis-rusage.mjs preload); the CLI starts
 *    as `npm run vemscope` starts it (scripts/cli.mjs: the bundled CLI), or through tsx for a baseline tree
 *    without that launcher. With
 *    `--baseline DIR` (another checkout of vemscope, e.g. `git archive` of an earlier commit with
 *    node_modules linked) that tree's run goes through the same input too, alternating with ours
 *    `--run-reps` times (default 1), best of each: before/after on the same machine load.
 *
 * Throughput is always the whole volume's voxels over the time taken. The machine is shared, so every time is
 * reported as wall clock and as CPU time of the process doing the work (process.cpuUsage here,
 * time.process_time in Python, which stays up for the whole bench and loads its inputs once, untimed). Ours and
 * the reference alternate repetition by repetition (see sideBySide), best of --reps after one untimed warm-up
 * on each side; scipy's EDT (~5 s a call at the default size) gets at most 2 repetitions and no warm-up.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Vec3 } from "../../precomputed/array.js";
import { CLASSES } from "../../server/pipeline/classes.js";
import { edtSquared, type Shape3 } from "../../server/pipeline/edt.js";
import { connectedComponents } from "../../server/pipeline/label.js";
import { generatePhantom } from "../../server/pipeline/phantom/index.js";
import { instanceStats } from "../../server/pipeline/stats.js";
import { writeTiffStack } from "../../server/pipeline/tiff.js";
import { startReference, type Reference, type ReferenceCommand, type ReferenceReply } from "./analysis-reference.js";

/** What analysis-rusage.mjs writes at the child's exit. */
export interface RusageReport {
  /** Peak resident set size, kilobytes (getrusage ru_maxrss). */
  maxRssKb: number;
  userCpuS: number;
  systemCpuS: number;
}

const SPACING: Vec3 = [5, 5, 45];
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TARGETS = { ccl: 1, edt: 5, surface: 1, runMvoxS: 2 };

interface Timing {
  wallS: number;
  cpuS: number;
}

interface Options {
  baseline?: string;
  runReps: number;
  size: Shape3;
  seed: number;
  reps: number;
  python: string;
}

function parseOptions(args: string[]): Options {
  const opt = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = args[i + 1];
    if (v === undefined) throw new Error(`--${name} needs a value`);
    return v;
  };
  const positive = (name: string, s: string): number => {
    const v = Number(s);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name}: expected a positive integer, got '${s}'`);
    return v;
  };
  const parts = opt("size", "512,512,64").split(",");
  if (parts.length !== 3) throw new Error(`--size: expected X,Y,Z`);
  const size: Shape3 = [positive("size", parts[0]), positive("size", parts[1]), positive("size", parts[2])];
  const seed = Number(opt("seed", "1"));
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed: expected a non-negative integer`);
  const baseline = opt("baseline", "");
  return {
    size,
    seed,
    reps: positive("reps", opt("reps", "3")),
    python: opt("python", "/usr/bin/python3"),
    baseline: baseline === "" ? undefined : path.resolve(baseline),
    runReps: positive("run-reps", opt("run-reps", "1")),
  };
}

interface SideBySide<T> {
  ours: Timing & { result: T };
  ref: Map<ReferenceCommand, Timing & { reply: ReferenceReply }>;
}

/**
 * Our kernel and the reference commands, repetition by repetition in alternation (the order flipping each
 * time), after one untimed warm-up of each; wall and CPU minima taken independently per side. Alternating
 * puts both sides under the same background load on a shared machine.
 */
async function sideBySide<T>(
  plan: { reps: number; refReps: number; refWarmUp: boolean },
  ours: () => T,
  reference: Reference,
  commands: ReferenceCommand[],
): Promise<SideBySide<T>> {
  let result = ours();
  if (plan.refWarmUp) for (const c of commands) await reference.run(c);
  let wallS = Infinity;
  let cpuS = Infinity;
  const ref = new Map<ReferenceCommand, Timing & { reply: ReferenceReply }>();
  const runOurs = (): void => {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    result = ours();
    const w = (performance.now() - w0) / 1000;
    const c = process.cpuUsage(c0);
    wallS = Math.min(wallS, w);
    cpuS = Math.min(cpuS, (c.user + c.system) / 1e6);
  };
  const runRef = async (): Promise<void> => {
    for (const c of commands) {
      const reply = await reference.run(c);
      const prev = ref.get(c);
      ref.set(c, { wallS: Math.min(prev?.wallS ?? Infinity, reply.wallS), cpuS: Math.min(prev?.cpuS ?? Infinity, reply.cpuS), reply });
    }
  };
  for (let r = 0; r < Math.max(plan.reps, plan.refReps); r++) {
    if (r % 2 === 0 && r < plan.reps) runOurs();
    if (r < plan.refReps) await runRef();
    if (r % 2 === 1 && r < plan.reps) runOurs();
  }
  return { ours: { wallS, cpuS, result }, ref };
}

function refTiming(s: SideBySide<unknown>, c: ReferenceCommand): Timing & { reply: ReferenceReply } {
  const t = s.ref.get(c);
  if (!t) throw new Error(`no reference timing for ${c}`);
  return t;
}

type SurfaceFn = (labels: Uint32Array, shape: Shape3, spacingNm: Vec3, id: number, bbox: Int32Array) => number;

/**
 * measureSurface from server/pipeline/surface.ts, checked at run time: that module is still being written by
 * someone else, so a missing file or a changed export skips the surface row instead of breaking the bench.
 */
async function loadSurface(): Promise<SurfaceFn | string> {
  const spec = "../../server/pipeline/surface.js"; // a variable, so tsc does not pin the module's current API
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (e) {
    return `server/pipeline/surface.ts does not load (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`;
  }
  const f = mod.measureSurface;
  if (typeof f !== "function") return "server/pipeline/surface.ts exports no measureSurface";
  const call = f as (...a: unknown[]) => unknown;
  return (labels, shape, spacingNm, id, bbox) => {
    const r = call(labels, shape, spacingNm, id, bbox);
    const area = typeof r === "object" && r !== null ? (r as Record<string, unknown>).surface_nm2 : undefined;
    if (typeof area !== "number") throw new Error("measureSurface returned no numeric surface_nm2");
    return area;
  };
}

interface RunMeasure {
  instances: number;
  pipelineS: number;
  processWallS: number;
  rusage: RusageReport;
  stages: { name: string; seconds: number }[];
}

/** `vemscope run --labels` in a child process, with the rusage preload; stage times from the CLI's non-TTY progress lines. */
function runCli(dir: string, root = ROOT, outName = "run-out"): RunMeasure {
  const rusagePath = path.join(dir, "rusage.json");
  const out = path.join(dir, outName);
  const args = [
    // As package.json's `vemscope` script: on 2 cores V8's concurrent TurboFan threads cost ~3-4 s of CPU a run
    // against ~0.7 s for the same optimisations done in place (session 8, per-thread CPU from /proc).
    "--no-concurrent-recompilation",
    "--import", pathToFileURL(path.join(ROOT, "scripts/bench/analysis-rusage.mjs")).href,
    ...(existsSync(path.join(root, "scripts/cli.mjs")) ? [path.join(root, "scripts/cli.mjs")] : ["--import", "tsx", path.join(root, "scripts/vemscope.ts")]),
    "run", "--image", path.join(dir, "image.tif"), "--labels", path.join(dir, "labels.tif"), "--voxel", SPACING.join(","), "--out", out,
  ];
  const w0 = performance.now();
  const r = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 1 << 26,
    env: { ...process.env, VEMSCOPE_BENCH_RUSAGE: rusagePath },
  });
  const processWallS = (performance.now() - w0) / 1000;
  if (r.status !== 0) throw new Error(`vemscope run failed (exit ${r.status}): ${r.stderr.trim().split("\n").slice(-5).join(" | ")}`);
  const done = /^(\d+) instances written to .* in ([\d.]+) s$/m.exec(r.stdout);
  if (!done) throw new Error(`vemscope run printed no summary line: ${r.stdout.trim()}`);
  const stages: { name: string; seconds: number }[] = [];
  for (const line of r.stderr.split("\n")) {
    const m = /^(.+?): \d+ .*?in (\d+(?:\.\d+)?) s$/.exec(line.trim());
    if (m) stages.push({ name: m[1], seconds: Number(m[2]) });
  }
  const rusage = JSON.parse(readFileSync(rusagePath, "utf8")) as RusageReport;
  return { instances: Number(done[1]), pipelineS: Number(done[2]), processWallS, rusage, stages };
}

export async function main(args: string[]): Promise<void> {
  const o = parseOptions(args);
  const [nx, ny, nz] = o.size;
  const n = nx * ny * nz;
  const mvox = n / 1e6;
  const say = (s: string): void => void process.stderr.write(`${s}\n`);
  const lines: string[] = [];
  let failed = false;

  say(`analysis bench: phantom seed ${o.seed}, ${o.size.join("x")} ...`);
  const phantom = generatePhantom({ seed: o.seed, size: [nx, ny, nz], voxelNm: SPACING });
  const classes = phantom.labels.data;
  const present = CLASSES.filter((c) => classes.includes(c.code));
  const mask = new Uint8Array(n);
  let fg = 0;
  for (let i = 0; i < n; i++) fg += mask[i] = classes[i] >= 2 ? 1 : 0;
  // Instances and boxes for the surface objects (computed once, untimed: both sides get the same boxes).
  const comps = connectedComponents(classes, o.size);
  const stats = instanceStats(comps.labels, o.size, comps.count);
  const objectIds: number[] = [];
  for (let id = 1; id <= comps.count; id++) if (comps.classOf[id] !== 1) objectIds.push(id);
  const box = (id: number): Int32Array => stats.bbox.subarray(6 * id, 6 * id + 6);
  const loaded = await loadSurface();
  let surfaceFn: SurfaceFn | undefined;
  let surfaceSkip = typeof loaded === "string" ? loaded : objectIds.length === 0 ? "no non-ER objects" : "";
  if (typeof loaded !== "string" && objectIds.length > 0) {
    try {
      loaded(comps.labels, o.size, SPACING, objectIds[0], box(objectIds[0]));
      surfaceFn = loaded;
    } catch (e) {
      surfaceSkip = `measureSurface failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-bench-analysis-"));
  let reference: Reference | undefined;
  try {
    writeFileSync(path.join(dir, "classes.raw"), classes);
    if (surfaceFn) writeFileSync(path.join(dir, "instances.raw"), new Uint8Array(comps.labels.buffer, comps.labels.byteOffset, comps.labels.byteLength));
    say(`reference: starting ${o.python} ...`);
    reference = await startReference(dir, o.python, {
      shape: o.size,
      spacing: SPACING,
      codes: present.map((c) => c.code),
      objects: surfaceFn ? objectIds.map((id) => [id, ...box(id)]) : [],
    });
    const versions = reference.versions;
    const same = { reps: o.reps, refReps: o.reps, refWarmUp: true };

    say("CCL: connectedComponents vs ndimage.label per class ...");
    const ccl = await sideBySide(same, () => connectedComponents(classes, o.size), reference, ["ccl-label", "ccl-masks"]);
    say("EDT: edtSquared vs distance_transform_edt ...");
    const edtReps = Math.min(o.reps, 2);
    const edt64 = await sideBySide({ reps: o.reps, refReps: edtReps, refWarmUp: false }, () => edtSquared(mask, o.size, SPACING), reference, ["edt"]);
    const scipyEdt = new Float64Array(readFileSync(await reference.saveEdt()).buffer.slice(0));
    const edt32 = await sideBySide({ reps: o.reps, refReps: 0, refWarmUp: false }, () => edtSquared(mask, o.size, SPACING, { output: "float32" }), reference, []);
    let surface: SideBySide<number[]> | undefined;
    if (surfaceFn) {
      const f = surfaceFn;
      say(`surface: ${objectIds.length} objects, measureSurface vs marching_cubes ...`);
      surface = await sideBySide(same, () => objectIds.map((id) => f(comps.labels, o.size, SPACING, id, box(id))), reference, ["surface"]);
    }
    reference.close();
    reference = undefined;

    // Agreement.
    const ourCounts = new Map<number, number>();
    for (let id = 1; id <= ccl.ours.result.count; id++) {
      const c = ccl.ours.result.classOf[id];
      ourCounts.set(c, (ourCounts.get(c) ?? 0) + 1);
    }
    const refCounts = refTiming(ccl, "ccl-label").reply.counts ?? {};
    const countLine = present.map((c) => {
      const ours = ourCounts.get(c.code) ?? 0;
      const theirs = refCounts[String(c.code)];
      if (ours !== theirs) failed = true;
      return `${c.name} ${ours}/${theirs}${ours === theirs ? "" : " MISMATCH"}`;
    });
    let max64 = 0;
    let max32 = 0;
    for (let i = 0; i < n; i++) {
      max64 = Math.max(max64, Math.abs(Math.sqrt(edt64.ours.result[i]) - scipyEdt[i]));
      max32 = Math.max(max32, Math.abs(Math.sqrt(edt32.ours.result[i]) - scipyEdt[i]));
    }
    const edtOk = max64 <= 1e-6;
    if (!edtOk) failed = true;

    // Table.
    const rate = (s: number): string => (mvox / s).toFixed(1);
    const x = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
    lines.push(
      `analysis bench: phantom seed ${o.seed}, ${o.size.join("x")} = ${mvox.toFixed(1)} Mvox at ${SPACING.join(",")} nm; ` +
        `organelle foreground ${((100 * fg) / n).toFixed(1)}%; ${comps.count} instances; best of ${o.reps} (scipy EDT ${edtReps}), ` +
        `ours and reference alternating; numpy ${versions.numpy}, scipy ${versions.scipy}, skimage ${versions.skimage}`,
      "Mvox/s = whole-volume voxels / time. ratio = reference time / our time (> 1: ours faster), on CPU time and on wall time; " +
        "the target is judged on CPU time (the machine is shared).",
      "",
      "| kernel | ours CPU s | ours wall s | ref CPU s | ref wall s | ours Mvox/s CPU (wall) | ref Mvox/s CPU (wall) | ratio CPU | ratio wall | target | |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    const row = (name: string, ours: Timing, theirs: Timing, target: number): void => {
      lines.push(
        `| ${name} | ${ours.cpuS.toFixed(3)} | ${ours.wallS.toFixed(3)} | ${theirs.cpuS.toFixed(3)} | ${theirs.wallS.toFixed(3)} | ` +
          `${rate(ours.cpuS)} (${rate(ours.wallS)}) | ${rate(theirs.cpuS)} (${rate(theirs.wallS)}) | ${x(theirs.cpuS, ours.cpuS)} | ` +
          `${x(theirs.wallS, ours.wallS)} | >= ${target}x | ${theirs.cpuS / ours.cpuS >= target ? "met" : "BELOW"} |`,
      );
    };
    row(`CCL 26-conn vs ndimage.label x${present.length} classes`, ccl.ours, refTiming(ccl, "ccl-label"), TARGETS.ccl);
    row("(CCL; scipy incl. classes == c)", ccl.ours, refTiming(ccl, "ccl-masks"), TARGETS.ccl);
    row("EDT float64 vs distance_transform_edt", edt64.ours, refTiming(edt64, "edt"), TARGETS.edt);
    row("(EDT float32 output)", edt32.ours, refTiming(edt64, "edt"), TARGETS.edt);
    if (surface) row(`surface x${objectIds.length} objects vs marching_cubes`, surface.ours, refTiming(surface, "surface"), TARGETS.surface);
    else lines.push(`| surface: skipped (${surfaceSkip}) | | | | | | | | | >= ${TARGETS.surface}x | |`);

    lines.push("", `CCL components per class, ours/scipy: ${countLine.join(", ")}`);
    lines.push(
      `EDT max |sqrt(ours) - scipy|: float64 ${max64.toExponential(2)} nm ${edtOk ? "(equal, <= 1e-6)" : "MISMATCH (> 1e-6 nm)"}, ` +
        `float32 ${max32.toExponential(2)} nm`,
    );
    if (surface) {
      const theirs = refTiming(surface, "surface").reply.areas ?? [];
      const q = surface.ours.result.map((a, k) => a / (theirs[k] ?? Number.NaN));
      lines.push(
        `surface area ours/skimage: mean ${(q.reduce((s, e) => s + e, 0) / q.length).toFixed(3)}, ` +
          `range ${Math.min(...q).toFixed(3)}..${Math.max(...q).toFixed(3)} ` +
          "(expected < 1: ours interpolates between sections, raw marching cubes follows the 45 nm terraces)",
      );
    }

    // The whole run, in a child process.
    say("whole run: writing TIFFs, vemscope run --labels ...");
    await writeTiffStack(path.join(dir, "image.tif"), phantom.image, { voxelNm: SPACING });
    await writeTiffStack(path.join(dir, "labels.tif"), phantom.labels, { voxelNm: SPACING });
    // Alternating with the baseline tree (if any), best pipeline time of each.
    let run: RunMeasure | undefined;
    let base: RunMeasure | undefined;
    for (let r = 0; r < o.runReps; r++) {
      for (const which of r % 2 === 0 ? ["ours", "base"] : ["base", "ours"]) {
        if (which === "base") {
          if (o.baseline === undefined) continue;
          say(`whole run: baseline ${o.baseline} ...`);
          const m = runCli(dir, o.baseline, "run-base");
          if (base === undefined || m.pipelineS < base.pipelineS) base = m;
        } else {
          const m = runCli(dir);
          if (run === undefined || m.pipelineS < run.pipelineS) run = m;
        }
      }
    }
    if (run === undefined) throw new Error("no run measured");
    const describeRun = (title: string, m: RunMeasure): void => {
      const cpuS = m.rusage.userCpuS + m.rusage.systemCpuS;
      const runRate = mvox / m.pipelineS;
      lines.push(
        "",
        `${title} (child process, ${m.instances} instances): pipeline ${m.pipelineS.toFixed(1)} s wall = ` +
          `${runRate.toFixed(2)} Mvox/s (target >= ${TARGETS.runMvoxS}: ${runRate >= TARGETS.runMvoxS ? "met" : "BELOW"}); ` +
          `process ${m.processWallS.toFixed(1)} s wall incl. startup, ${cpuS.toFixed(1)} s CPU all threads = ${(mvox / cpuS).toFixed(2)} Mvox/s CPU; ` +
          `peak RSS ${(m.rusage.maxRssKb / 1024).toFixed(0)} MiB`,
        "| stage (progress) | wall s | Mvox/s |",
        "| --- | --- | --- |",
      );
      let staged = 0;
      for (const s of m.stages) {
        staged += s.seconds;
        lines.push(`| ${s.name} | ${s.seconds.toFixed(1)} | ${s.seconds > 0 ? rate(s.seconds) : "-"} |`);
      }
      const rest = Math.max(0, m.pipelineS - staged);
      lines.push(`| other (ingest, contact layer, report, state, rename) | ${rest.toFixed(1)} | ${rest > 0 ? rate(rest) : "-"} |`);
    };
    const reps = o.runReps > 1 ? `, best of ${o.runReps}` : "";
    describeRun(`vemscope run --labels${reps}`, run);
    if (base !== undefined) {
      describeRun(`baseline ${o.baseline} run --labels, same input, alternating with ours${reps}`, base);
      lines.push("", `whole run speed-up over the baseline (pipeline wall time, same machine load): ${(base.pipelineS / run.pipelineS).toFixed(2)}x`);
    }
  } finally {
    reference?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(lines.join("\n") + "\n");
  if (failed) {
    process.stderr.write("analysis bench: results disagree with the reference (see MISMATCH above)\n");
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main(process.argv.slice(2));
