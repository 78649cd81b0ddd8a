import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../../precomputed/array.js";
import { LocalStorage } from "../../../precomputed/storage.js";
import { builtinKinds, TaskKindRegistry } from "../../jobs/kinds.js";
import { runTasksInProcess } from "../../jobs/local-executor.js";
import { parseTask, type Task } from "../../jobs/tasks.js";
import { pendingTasks } from "../blockwise/resume.js";
import { blockOrigins } from "../blockwise/store.js";
import { WorkVolume, type WorkVolumeSpec } from "../blockwise/work-store.js";
import { removeSmallFragments } from "./cleanup.js";
import { DEFAULT_MODEL_PATH } from "./model.js";
import { segmentVolume } from "./segment.js";
import { cleanupOnTasks } from "./cleanup-tasks.js";
import { closeSegmentRunners, segmentKinds, segmentOnTasks, type SegmentRecord, type StageExecutor } from "./tasks.js";

const dir = mkdtempSync(path.join(tmpdir(), "vemscope-segment-tasks-"));
let registry: TaskKindRegistry;
beforeAll(async () => {
  // The builtins (which may already hold these kinds); a bare registry while another stage's kind module is missing.
  registry = await builtinKinds().catch(() => new TaskKindRegistry());
  for (const k of segmentKinds) if (!registry.names().includes(k.name)) registry.register(k);
});
afterAll(async () => {
  await closeSegmentRunners();
  rmSync(dir, { recursive: true, force: true });
});

let stores = 0;
function store(): { work: LocalStorage; workUrl: string } {
  const workUrl = path.join(dir, `work-${stores++}`);
  return { work: new LocalStorage(workUrl), workUrl };
}

interface ExecOptions {
  reverse?: boolean;
  /** Throw in the stage with this index (0-based, counting every call) after running half its tasks. */
  killAt?: number;
  /** Tasks run, per kind. */
  ran?: Map<string, number>;
}

/** The run's executor in miniature: skips tasks with done markers, runs the rest in process, throws on failures. */
function executor(work: LocalStorage, o: ExecOptions = {}): StageExecutor {
  let stage = 0;
  return async (name: string, all: Task[]) => {
    // Through JSON, as on a queue.
    let tasks = (await pendingTasks(work, all)).map((t) => parseTask(JSON.parse(JSON.stringify(t))));
    if (o.reverse) tasks = [...tasks].reverse();
    const kill = stage++ === o.killAt;
    if (kill) tasks = tasks.slice(0, Math.floor(tasks.length / 2));
    for (const t of tasks) o.ran?.set(t.kind, (o.ran.get(t.kind) ?? 0) + 1);
    const r = await runTasksInProcess(tasks, { registry, attempts: 1 });
    if (r.failed > 0) throw new Error(`${name}: ${r.deadLetters[0]?.taskId}: ${r.deadLetters[0]?.error}`);
    if (kill) throw new Error(`killed in ${name}`);
  };
}

function crop(v: Uint8Array, shape: Vec3, o: Vec3, e: Vec3): Uint8Array {
  const out = new Uint8Array(e[0] * e[1] * e[2]);
  for (let z = 0; z < e[2]; z++) {
    for (let y = 0; y < e[1]; y++) {
      const from = o[0] + shape[0] * (o[1] + y + shape[1] * (o[2] + z));
      out.set(v.subarray(from, from + e[0]), e[0] * (y + e[1] * z));
    }
  }
  return out;
}

async function writeVolume(work: LocalStorage, spec: WorkVolumeSpec, data: Uint8Array): Promise<void> {
  const vol = new WorkVolume<Uint8Array>(work, spec);
  for (const o of blockOrigins(spec.shape, spec.blockShape)) await vol.writeBlock(o, crop(data, spec.shape, o, vol.blockExtent(o)));
}

const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

const voxelNm: Vec3 = [5, 5, 45]; // 1125 nm^3 per voxel
const MIN = 10 * 1125; // fragments of fewer than 10 voxels are small

/**
 * Two large organelles (classes 2 and 3) side by side with specks: inside one, on the faces between them (a tie of
 * 2 against 3 votes goes to 2, the lower code), a chain of specks touching only specks (class 1 touches only class
 * 4, which touches 3: it needs a second pass), an isolated speck (-> background), and seeded sparse noise of
 * classes 1-5 (specks across every block face, ties, more chains).
 */
function synthetic(shape: Vec3, seed: number, noise = 0.06, chain = true): Uint8Array {
  const [nx, ny, nz] = shape;
  const v = new Uint8Array(nx * ny * nz);
  const at = (x: number, y: number, z: number): number => x + nx * (y + ny * z);
  const box = (c: number, a: Vec3, b: Vec3): void => {
    for (let z = a[2]; z < Math.min(b[2], nz); z++) for (let y = a[1]; y < Math.min(b[1], ny); y++) for (let x = a[0]; x < Math.min(b[0], nx); x++) v[at(x, y, z)] = c;
  };
  box(2, [1, 1, 1], [11, 17, 9]);
  box(3, [11, 1, 1], [20, 17, 9]);
  box(5, [4, 4, 3], [6, 6, 5]); // inside 2
  box(6, [10, 8, 4], [12, 9, 5]); // straddles 2|3: 2 x-faces... and ties
  box(4, [14, 17, 2], [16, 18, 4]); // on 3's +y face
  if (chain) box(1, [14, 18, 2], [16, 19, 3]); // touches only the class-4 speck (and background): pass 2
  box(5, [21, 20, 9], [22, 21, 10]); // isolated
  let s = seed >>> 0;
  const rnd = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < v.length; i++) if (rnd() < noise) v[i] = 1 + Math.floor(rnd() * 5);
  return v;
}

describe("small-fragment cleanup as tasks", () => {
  const shape: Vec3 = [23, 21, 11];
  // A third shape: the output's blocks differ from the input's (segmentOnTasks' thin raw blocks), one copy at the end.
  it.each([
    [[8, 7, 5], false, undefined],
    [[23, 21, 11], false, undefined],
    [[9, 6, 4], true, undefined],
    [[10, 21, 2], true, undefined],
    [[8, 7, 2], true, [8, 7, 5]],
    [[9, 6, 3], false, [23, 21, 11]],
  ] as [Vec3, boolean, Vec3 | undefined][])("blocks %j (reverse order: %s, output blocks %j): removeSmallFragments' bytes and counts", async (blockShape, reverse, outBlocks) => {
    const classes = synthetic(shape, 11 + blockShape[0]);
    const want = classes.slice();
    const wantCounts = removeSmallFragments(want, shape, voxelNm, MIN);
    expect(wantCounts.fragments).toBeGreaterThan(20);
    // Pass 2 has work: the cleanup must not stop after one pass.
    const once = classes.slice();
    const first = removeSmallFragments(once, shape, voxelNm, MIN, 1);
    expect(first.fragments).toBeLessThan(wantCounts.fragments);

    const { work, workUrl } = store();
    const input: WorkVolumeSpec = { name: "raw", shape, blockShape, type: "uint8" };
    const output: WorkVolumeSpec = { name: "classes", shape, blockShape: outBlocks ?? blockShape, type: "uint8" };
    await writeVolume(work, input, classes);
    const got = await cleanupOnTasks({ execute: executor(work, { reverse }), work, workUrl, input, output, voxelNm, minFragmentNm3: MIN });
    expect(got).toEqual(wantCounts);
    expect(same(await new WorkVolume<Uint8Array>(work, output).readBox([0, 0, 0], shape), want)).toBe(true);
    // Intermediate volumes and per-pass keys are gone; the input is the caller's and stays.
    const left = new Set((await work.list("")).map((k) => k.split("/")[0]));
    expect([...left].sort()).toEqual(["classes", "done", "raw"]);
  });

  // Without noise the passes end early: the last pass's output is copied into the classes.
  it.each([
    [true, 2],
    [false, 1],
  ])("specks only (chain %s: %i passes with work), blocks that do not divide the volume", async (chain, passes) => {
    const blockShape: Vec3 = [9, 8, 4];
    const classes = synthetic(shape, 1, 0, chain);
    const want = classes.slice();
    const wantCounts = removeSmallFragments(want, shape, voxelNm, MIN);
    const upTo = (p: number) => removeSmallFragments(classes.slice(), shape, voxelNm, MIN, p);
    expect(upTo(passes - 1).fragments).toBeLessThan(wantCounts.fragments);
    expect(upTo(passes)).toEqual(wantCounts);
    const { work, workUrl } = store();
    const input: WorkVolumeSpec = { name: "raw", shape, blockShape, type: "uint8" };
    const output: WorkVolumeSpec = { name: "classes", shape, blockShape, type: "uint8" };
    await writeVolume(work, input, classes);
    const got = await cleanupOnTasks({ execute: executor(work, { reverse: chain }), work, workUrl, input, output, voxelNm, minFragmentNm3: MIN });
    expect(got).toEqual(wantCounts);
    const out = await new WorkVolume<Uint8Array>(work, output).readBox([0, 0, 0], shape);
    expect(same(out, want)).toBe(true);
    // The scene's own checks: the tie between 2 and 3 went to 2, the isolated speck to background.
    const at = (x: number, y: number, z: number): number => x + shape[0] * (y + shape[1] * z);
    expect([out[at(10, 8, 4)], out[at(11, 8, 4)], out[at(21, 20, 9)], out[at(4, 4, 3)], out[at(14, 17, 2)]]).toEqual([2, 2, 0, 2, 3]);
    if (chain) expect(out[at(14, 18, 2)]).toBe(3);
    expect([...new Set((await work.list("")).map((k) => k.split("/")[0]))].sort()).toEqual(["classes", "done", "raw"]);
  });

  it("a run killed in the middle of a pass, rerun, gives the same bytes and redoes only what was missing", async () => {
    const blockShape: Vec3 = [8, 7, 4];
    const classes = synthetic(shape, 5);
    const want = classes.slice();
    const wantCounts = removeSmallFragments(want, shape, voxelNm, MIN);
    // All three passes have work, so an uninterrupted run runs each kind once per block and pass.
    expect(removeSmallFragments(classes.slice(), shape, voxelNm, MIN, 2).fragments).toBeLessThan(wantCounts.fragments);
    const blocks = 3 * 3 * 3;
    const input: WorkVolumeSpec = { name: "raw", shape, blockShape, type: "uint8" };
    const output: WorkVolumeSpec = { name: "classes", shape, blockShape, type: "uint8" };
    const { work, workUrl } = store();
    await writeVolume(work, input, classes);
    // Stages: pass 1 ccl, stitch, votes, apply (3), pass 2 ccl (4), stitch (5), votes (6): killed in pass 2's votes.
    const ran = new Map<string, number>();
    await expect(cleanupOnTasks({ execute: executor(work, { killAt: 6, ran }), work, workUrl, input, output, voxelNm, minFragmentNm3: MIN })).rejects.toThrow(/killed/);
    expect(ran.get("segment.cleanup-votes")).toBe(blocks + Math.floor(blocks / 2));
    const got = await cleanupOnTasks({ execute: executor(work, { ran }), work, workUrl, input, output, voxelNm, minFragmentNm3: MIN });
    expect(got).toEqual(wantCounts);
    expect(same(await new WorkVolume<Uint8Array>(work, output).readBox([0, 0, 0], shape), want)).toBe(true);
    const each = 3 * blocks;
    expect(Object.fromEntries(ran)).toEqual({ "segment.cleanup-ccl": each, "segment.cleanup-stitch": each, "segment.cleanup-votes": each, "segment.cleanup-apply": each });
    // A rerun of a finished cleanup returns its counts without running anything.
    const none = new Map<string, number>();
    expect(await cleanupOnTasks({ execute: executor(work, { ran: none }), work, workUrl, input, output, voxelNm, minFragmentNm3: MIN })).toEqual(wantCounts);
    expect(none.size).toBe(0);
  });

  it("with a minimum of 0 copies the classes unchanged", async () => {
    const blockShape: Vec3 = [8, 7, 5];
    const classes = synthetic(shape, 3);
    const { work, workUrl } = store();
    const input: WorkVolumeSpec = { name: "raw", shape, blockShape, type: "uint8" };
    const output: WorkVolumeSpec = { name: "classes", shape, blockShape, type: "uint8" };
    await writeVolume(work, input, classes);
    expect(await cleanupOnTasks({ execute: executor(work), work, workUrl, input, output, voxelNm, minFragmentNm3: 0 })).toEqual({ fragments: 0, voxels: 0 });
    expect(same(await new WorkVolume<Uint8Array>(work, output).readBox([0, 0, 0], shape), classes)).toBe(true);
  });
});

// Real EM (the shared training data's ssTEM sections), or a smooth synthetic pattern without it.
const SHARED = fileURLToPath(new URL("../../../../shared/data/vnc_train/image/", import.meta.url));
const haveModel = existsSync(DEFAULT_MODEL_PATH);

async function emStack(W: number, H: number, D: number): Promise<Uint8Array> {
  const out = new Uint8Array(W * H * D);
  for (let z = 0; z < D; z++) {
    const file = path.join(SHARED, `${String(z).padStart(4, "0")}.png`);
    if (existsSync(file)) {
      const { data } = await sharp(file).extract({ left: 300, top: 200, width: W, height: H }).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
      out.set(data, z * W * H);
    } else {
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[z * W * H + y * W + x] = 128 + 60 * Math.sin((x + 5 * z) / 9) * Math.cos(y / 13) + ((x * 7 + y * 3) % 11);
    }
  }
  return out;
}

describe.skipIf(!haveModel)("segmentation stage as tasks", () => {
  const shape: Vec3 = [176, 144, 4];
  const vnm: Vec3 = [4.6, 4.6, 45];
  let image: Uint8Array;
  let raw: Uint8Array;
  let want: Uint8Array;
  let wantRecord: SegmentRecord;

  beforeAll(async () => {
    image = await emStack(...shape);
    // What run.ts's in-memory "segment" stage does.
    const result = await segmentVolume({ data: image, shape }, { pixelNm: [vnm[0], vnm[1]] });
    raw = result.classes.data.slice();
    want = result.classes.data;
    const cleaned = removeSmallFragments(want, shape, vnm, 1e6);
    wantRecord = { model: result.stats.model, tta: result.stats.tta, thresholds: result.stats.thresholds, min_area_nm2: result.stats.minAreaNm2, min_fragment_nm3: 1e6, fragments_reassigned: cleaned.fragments, voxels_reassigned: cleaned.voxels };
  });

  it.each([
    [[64, 64, 3], [100, 60, 1]],
    [[176, 144, 1], [64, 96, 3]],
  ] as [Vec3, Vec3][])("image blocks %j, class blocks %j: segmentVolume + removeSmallFragments, byte for byte", async (imageBlocks, classBlocks) => {
    expect(wantRecord.fragments_reassigned).toBeGreaterThan(0);
    expect(wantRecord.min_area_nm2).toEqual({ mito: 12500 }); // the tasks get the pixel size too (the default model's area)
    const { work, workUrl } = store();
    const imageSpec: WorkVolumeSpec = { name: "image", shape, blockShape: imageBlocks, type: "uint8" };
    const classes: WorkVolumeSpec = { name: "classes", shape, blockShape: classBlocks, type: "uint8" };
    await writeVolume(work, imageSpec, image);
    const ran = new Map<string, number>();
    const record = await segmentOnTasks({ execute: executor(work, { ran }), work, workUrl, image: imageSpec, classes, voxelNm: vnm });
    expect(record).toEqual(wantRecord);
    expect(ran.get("segment.sections")).toBe(Math.ceil(shape[2] / classBlocks[2]));
    expect(same(await new WorkVolume<Uint8Array>(work, classes).readBox([0, 0, 0], shape), want)).toBe(true);
    const left = new Set((await work.list("")).map((k) => k.split("/")[0]));
    expect([...left].sort()).toEqual(["classes", "done", "image"]);
  });

  it("--resample none reaches the section tasks: at 8 nm (outside the model's pixel sizes) they infer as given, as segmentVolume does", async () => {
    const px8: Vec3 = [8, 8, 45];
    const direct = await segmentVolume({ data: image, shape }, { pixelNm: [8, 8], resample: "none" });
    const resampled = await segmentVolume({ data: image, shape }, { pixelNm: [8, 8] });
    expect(resampled.stats.resampledTo).toBeDefined();
    expect(direct.stats.resampledTo).toBeUndefined();
    expect(same(direct.classes.data, resampled.classes.data)).toBe(false);
    const { work, workUrl } = store();
    const imageSpec: WorkVolumeSpec = { name: "image", shape, blockShape: [88, 144, 2], type: "uint8" };
    const classes: WorkVolumeSpec = { name: "classes", shape, blockShape: [176, 144, 2], type: "uint8" };
    await writeVolume(work, imageSpec, image);
    const record = await segmentOnTasks({ execute: executor(work), work, workUrl, image: imageSpec, classes, voxelNm: px8, minFragmentNm3: 0, resample: "none" });
    expect(record.inferred_pixel_nm).toBeUndefined();
    expect(same(await new WorkVolume<Uint8Array>(work, classes).readBox([0, 0, 0], shape), direct.classes.data)).toBe(true);
  });

  it("a process that ran section tasks on a worker pool exits without closing it", async () => {
    const { workUrl } = store();
    const mod = (rel: string): string => JSON.stringify(pathToFileURL(fileURLToPath(new URL(rel, import.meta.url))).href);
    const script = path.join(dir, "exit-check.mts");
    writeFileSync(
      script,
      `import { LocalStorage } from ${mod("../../../precomputed/storage.ts")};
import { TaskKindRegistry } from ${mod("../../jobs/kinds.ts")};
import { runTasksInProcess } from ${mod("../../jobs/local-executor.ts")};
import { createTasks } from ${mod("../../jobs/tasks.ts")};
import { WorkVolume } from ${mod("../blockwise/work-store.ts")};
import { configureSegmentRunner, segmentKinds } from ${mod("./tasks.ts")};
const work = new LocalStorage(${JSON.stringify(workUrl)});
const shape = [96, 80, 3];
const image = { name: "image", shape, blockShape: shape, type: "uint8" };
await new WorkVolume(work, image).writeBlock([0, 0, 0], new Uint8Array(96 * 80 * 3).map((_, i) => (i * 37) % 251));
const registry = new TaskKindRegistry();
for (const k of segmentKinds) registry.register(k);
await configureSegmentRunner({ workers: 2, threads: 1 });
const tasks = createTasks("segment.sections", shape, [96, 80, 1], { work: ${JSON.stringify(workUrl)}, image, output: { ...image, name: "c", blockShape: [50, 50, 1] }, model: null });
const r = await runTasksInProcess(tasks, { registry, attempts: 1 });
console.log("done", r.done, r.deadLetters[0]?.error ?? "");
`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    clearTimeout(timer);
    expect(out).toContain("done 3");
    expect(code).toBe(0);
  });

  it("with a minimum of 0 writes segmentVolume's classes unchanged, straight into the class volume", async () => {
    const { work, workUrl } = store();
    const imageSpec: WorkVolumeSpec = { name: "image", shape, blockShape: [80, 80, 4], type: "uint8" };
    const classes: WorkVolumeSpec = { name: "classes", shape, blockShape: [176, 144, 2], type: "uint8" };
    await writeVolume(work, imageSpec, image);
    const ran = new Map<string, number>();
    const record = await segmentOnTasks({ execute: executor(work, { ran }), work, workUrl, image: imageSpec, classes, voxelNm: vnm, minFragmentNm3: 0 });
    expect(record).toEqual({ ...wantRecord, min_fragment_nm3: 0, fragments_reassigned: 0, voxels_reassigned: 0 });
    expect([...ran.keys()]).toEqual(["segment.sections"]);
    expect(same(await new WorkVolume<Uint8Array>(work, classes).readBox([0, 0, 0], shape), raw)).toBe(true);
  });

  it("a run killed during the cleanup, rerun, segments nothing again and gives the same bytes; a finished one returns its record", async () => {
    const { work, workUrl } = store();
    const imageSpec: WorkVolumeSpec = { name: "image", shape, blockShape: [176, 144, 4], type: "uint8" };
    const classes: WorkVolumeSpec = { name: "classes", shape, blockShape: [88, 72, 2], type: "uint8" };
    await writeVolume(work, imageSpec, image);
    const ran = new Map<string, number>();
    // Stages: segment (0), pass 1 ccl (1), stitch (2), votes (3): killed there.
    await expect(segmentOnTasks({ execute: executor(work, { ran, killAt: 3 }), work, workUrl, image: imageSpec, classes, voxelNm: vnm })).rejects.toThrow(/killed/);
    expect(ran.get("segment.sections")).toBe(2);
    const record = await segmentOnTasks({ execute: executor(work, { ran }), work, workUrl, image: imageSpec, classes, voxelNm: vnm });
    expect(record).toEqual(wantRecord);
    expect(ran.get("segment.sections")).toBe(2);
    // 8 class blocks: no block task of a pass ran twice.
    for (const [kind, n] of ran) if (kind !== "segment.sections") expect(n % 8, kind).toBe(0);
    expect(same(await new WorkVolume<Uint8Array>(work, classes).readBox([0, 0, 0], shape), want)).toBe(true);
    const none = new Map<string, number>();
    expect(await segmentOnTasks({ execute: executor(work, { ran: none }), work, workUrl, image: imageSpec, classes, voxelNm: vnm })).toEqual(wantRecord);
    expect(none.size).toBe(0);
  });
});
