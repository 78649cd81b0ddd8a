/**
 * The out-of-core run's tasks on a real Redis queue and a real S3-compatible server (issue 9):
 * - three `vemscope worker` processes, one of them SIGKILLed during the run, write the same bytes as the
 *   in-process executor (every file of the output folder);
 * - `run` with s3:// image, labels and output (s3rver on loopback) writes the same objects as the local run;
 * - sharded scales (a low threshold shards every scale of more than one chunk) read back as the in-memory run's
 *   unsharded layers, voxel for voxel;
 * - from an image alone (a small real EM stack), alignment and segmentation run as tasks on the workers too and
 *   give the in-process run's bytes.
 * Small phantom (160 x 160 x 16, blocks 64 x 64 x 8: 3 x 3 x 2 blocks; a budget that splits each pyramid into
 * one-level stages), so every stage has several tasks and faces to stitch.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { validateInfo } from "../precomputed/info.js";
import { readShardedRegion } from "../precomputed/sharding-volume.js";
import { LocalStorage, type Storage } from "../precomputed/storage.js";
import { readRegion } from "../precomputed/volume-io.js";
import { snapshot } from "../server/jobs/test-support.js";
import { generatePhantom } from "../server/pipeline/phantom/index.js";
import { runPipeline, type RunOptions } from "../server/pipeline/run.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { shiftedEmStack } from "./helpers/em-stack.js";
import { storageFor } from "../server/storage/index.js";
import { startRedis, startS3rver, type RunningS3, type RunningService } from "./helpers/services.js";

const SHAPE: Vec3 = [160, 160, 16];
const VOXEL: Vec3 = [5, 5, 45];
let dir: string;
let redis: RunningService;
let s3: RunningS3;
const workers: { proc: ChildProcess; out: () => string }[] = [];

const common = (): Omit<RunOptions, "out"> => ({
  image: path.join(dir, "image.tif"),
  labels: path.join(dir, "labels.tif"),
  voxelNm: VOXEL,
  blockwise: true,
  blockShape: [64, 64, 8],
  blockBudget: 2 ** 18,
  distanceCapNm: 100,
  shardAboveChunks: 1,
});

function startWorker(): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, ["--import", "tsx", "scripts/vemscope.ts", "worker", "--queue", redis.url, "--lock-ms", "2000"], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, VEMSCOPE_WORKERS: "0" },
  });
  let text = "";
  proc.stdout?.on("data", (b: Buffer) => (text += b.toString()));
  proc.stderr?.on("data", (b: Buffer) => (text += b.toString()));
  const w = { proc, out: () => text };
  return waitFor(w, /^worker pid /m, 60_000).then(() => w);
}

function waitFor(w: { proc: ChildProcess; out: () => string }, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      const m = w.out().match(pattern);
      if (m) return resolve(m);
      if (w.proc.exitCode !== null) return reject(new Error(`worker exited (${w.proc.exitCode}):\n${w.out()}`));
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${w.out()}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

beforeAll(async () => {
  process.env.VEMSCOPE_WORKERS = "0";
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-scale-out-"));
  const phantom = generatePhantom({ seed: 7, size: SHAPE, voxelNm: VOXEL });
  paintAcrossBlocks(phantom.labels.data);
  await writeTiffStack(path.join(dir, "image.tif"), phantom.image);
  await writeTiffStack(path.join(dir, "labels.tif"), phantom.labels);
  [redis, s3] = await Promise.all([startRedis(), startS3rver(["vem"])]);
  workers.push(...(await Promise.all([startWorker(), startWorker(), startWorker()])));
  const r = await runPipeline({ ...common(), out: path.join(dir, "in-process") });
  expect(r.mode).toBe("blockwise");
  expect(r.instances).toBeGreaterThan(5);
}, 240_000);

afterAll(async () => {
  for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill("SIGTERM");
  await Promise.all(workers.map((w) => (w.proc.exitCode === null && w.proc.signalCode === null ? new Promise((r) => w.proc.once("exit", r)) : undefined)));
  await redis?.stop();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Organelles and ER sheets across block faces, edges and corners (blocks are 64 x 64 x 8). */
function paintAcrossBlocks(labels: Uint8Array): void {
  const [nx, ny] = SHAPE;
  const box = (x0: number, x1: number, y0: number, y1: number, z0: number, z1: number, code: number): void => {
    for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) labels.fill(code, x0 + nx * (y + ny * z), x1 + nx * (y + ny * z));
  };
  box(10, 150, 20, 28, 3, 13, 2); // a mitochondrion across x = 64, 128 and z = 8
  box(10, 150, 29, 30, 3, 13, 1); // its ER sheet, 5 nm away
  box(54, 74, 54, 74, 4, 12, 3); // a droplet around the block corner (64, 64, 8)
  box(75, 76, 50, 80, 2, 14, 1);
  box(100, 140, 100, 104, 0, 16, 4); // a lysosome along y = 100..104, z through both layers
  box(100, 140, 110, 111, 0, 16, 1); // ER 30 nm away
  for (let k = 0; k < 6; k++) box(20 + 20 * k, 26 + 20 * k, 120, 126, 7, 10, 5); // peroxisomes on z = 8
  box(126, 130, 60, 68, 6, 9, 2); // a small mitochondrion on the (128, 64, 8) corner
}

async function sameObjects(got: Storage, want: Storage): Promise<number> {
  const keys = await want.list("");
  expect(await got.list("")).toEqual(keys);
  for (const k of keys) {
    const a = await got.get(k);
    const b = await want.get(k);
    expect(a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b)), k).toBe(true);
  }
  return keys.length;
}

describe("out-of-core run on workers and object storage", () => {
  it("three queue workers, one killed during the run, write the in-process run's bytes", async () => {
    const run = runPipeline({ ...common(), out: path.join(dir, "queued"), queue: redis.url });
    const victim = workers[0];
    await waitFor(victim, /^started blockwise\.objects\//m, 120_000);
    victim.proc.kill("SIGKILL");
    const r = await run;
    expect(r.mode).toBe("blockwise");
    const want = await snapshot(path.join(dir, "in-process"));
    const got = await snapshot(path.join(dir, "queued"));
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, bytes] of want) expect(got.get(k)?.equals(bytes), k).toBe(true);
    // Every stage ran on the workers, and both survivors took part.
    for (const kind of ["ccl", "stitch", "relabel", "objects", "contacts", "pyramid", "shard"]) {
      expect(workers.some((w) => new RegExp(`^completed blockwise\\.${kind}/`, "m").test(w.out())), kind).toBe(true);
    }
    expect(workers.slice(1).every((w) => /^completed /m.test(w.out()))).toBe(true);
  }, 300_000);

  it("reads s3:// inputs and writes an s3:// output identical to the local run, leaving no work objects", async () => {
    process.env.VEMSCOPE_S3_ENDPOINT = s3.endpoint;
    process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
    const bucket = storageFor("s3://vem");
    await bucket.put("in/image.tif", readFileSync(path.join(dir, "image.tif")));
    await bucket.put("in/labels.tif", readFileSync(path.join(dir, "labels.tif")));
    const r = await runPipeline({ ...common(), image: "s3://vem/in/image.tif", labels: "s3://vem/in/labels.tif", out: "s3://vem/runs/a" });
    expect(r).toMatchObject({ mode: "blockwise", out: "s3://vem/runs/a" });
    const n = await sameObjects(storageFor("s3://vem/runs/a"), new LocalStorage(path.join(dir, "in-process")));
    expect(n).toBeGreaterThan(20);
    expect((await bucket.list("")).filter((k) => !k.startsWith("in/") && !k.startsWith("runs/a/"))).toEqual([]);
    // A prefix holding something else is refused; an earlier output is replaced.
    await bucket.put("other/x", "x");
    await expect(runPipeline({ ...common(), out: "s3://vem/other" })).rejects.toThrow(/not a vemscope output/);
    await runPipeline({ ...common(), out: "s3://vem/runs/a" });
    expect(await storageFor("s3://vem/runs/a").get("state.json")).toBeDefined();
  }, 300_000);

  it("from an image alone: alignment and segmentation tasks on the workers write the in-process run's bytes", async () => {
    const image = path.join(dir, "em.tif");
    await writeTiffStack(image, await shiftedEmStack());
    const options = { image, voxelNm: VOXEL, blockwise: true, blockShape: [96, 96, 4] as Vec3, blockBudget: 2 ** 18, distanceCapNm: 100 };
    const local = await runPipeline({ ...options, out: path.join(dir, "em-in-process") });
    const queued = await runPipeline({ ...options, out: path.join(dir, "em-queued"), queue: redis.url });
    expect(queued.instances).toBe(local.instances);
    const want = await snapshot(path.join(dir, "em-in-process"));
    const got = await snapshot(path.join(dir, "em-queued"));
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    // The reports' timings are the only difference a run may make.
    for (const [k, bytes] of want) if (k !== "report/alignment.json") expect(got.get(k)?.equals(bytes), k).toBe(true);
    const timeless = (b: Buffer | undefined) => ({ ...(JSON.parse(b?.toString("utf8") ?? "{}") as object), seconds: 0, megapixelsPerSecond: 0 });
    expect(timeless(got.get("report/alignment.json"))).toEqual(timeless(want.get("report/alignment.json")));
    for (const kind of ["align.coarse", "align.measure", "align.render", "segment.sections", "segment.cleanup-votes", "segment.cleanup-apply"]) {
      expect(workers.some((w) => new RegExp(`^completed ${kind.replace(".", "\\.")}/`, "m").test(w.out())), kind).toBe(true);
    }
  }, 300_000);

  it("sharded scales hold the in-memory run's voxels", async () => {
    const mem = path.join(dir, "memory");
    await runPipeline({ image: path.join(dir, "image.tif"), labels: path.join(dir, "labels.tif"), voxelNm: VOXEL, out: mem });
    const a = new LocalStorage(mem);
    const b = new LocalStorage(path.join(dir, "in-process"));
    for (const layer of ["segmentation", "image"]) {
      const ia = validateInfo(JSON.parse(new TextDecoder().decode(await a.get(`${layer}/info`))));
      const ib = validateInfo(JSON.parse(new TextDecoder().decode(await b.get(`${layer}/info`))));
      expect(ib.scales.length).toBe(ia.scales.length);
      expect(ib.scales.filter((s) => s.sharding).length).toBeGreaterThan(0);
      for (let s = 0; s < ia.scales.length; s++) {
        const end = ia.scales[s].size;
        const va = await readRegion(a, layer, ia, s, [0, 0, 0], end);
        const vb = ib.scales[s].sharding ? await readShardedRegion(b, layer, ib, s, [0, 0, 0], end) : await readRegion(b, layer, ib, s, [0, 0, 0], end);
        // JPEG scales: identical encoder input gives identical bytes, hence identical decoded voxels.
        expect(Buffer.from(vb.data.buffer).equals(Buffer.from(va.data.buffer)), `${layer} scale ${s}`).toBe(true);
      }
    }
    expect(readFileSync(path.join(dir, "in-process", "report", "morphometrics.csv"), "utf8").split("\n").length).toBe(
      readFileSync(path.join(mem, "report", "morphometrics.csv"), "utf8").split("\n").length,
    );
  }, 120_000);
});
