import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStorage } from "../../precomputed/storage.js";
import { writeVolume } from "../../precomputed/volume-io.js";
import { JobError } from "./errors.js";
import { builtinKinds, TaskKindRegistry } from "./kinds.js";
import { downsampleAlignment, planDownsample } from "./kinds/downsample.js";
import { runTasksInProcess } from "./local-executor.js";
import { runIdFor } from "./queue.js";
import { createTasks, parseTask, readBox } from "./tasks.js";
import { layerInfo, snapshot, syntheticVolume, writeScaleZero } from "./test-support.js";

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-jobs-"));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe("task model", () => {
  it("plans blocks that tile the volume exactly once, with clipped edges and deterministic ids", () => {
    const tasks = createTasks("downsample", [100, 64, 10], [32, 32, 4], { layer: "x" }, { halo: [2, 2, 1], origin: [10, 0, -4] });
    expect(tasks).toHaveLength(4 * 2 * 3);
    expect(tasks[0]).toEqual({ id: "downsample/10_0_-4-42_32_0", kind: "downsample", bbox: { start: [10, 0, -4], end: [42, 32, 0] }, halo: [2, 2, 1], params: { layer: "x" } });
    expect(tasks[tasks.length - 1].bbox).toEqual({ start: [106, 32, 4], end: [110, 64, 6] });
    const voxels = tasks.reduce((n, t) => n + t.bbox.end.reduce((m, e, d) => m * (e - t.bbox.start[d]), 1), 0);
    expect(voxels).toBe(100 * 64 * 10);
    expect(new Set(tasks.map((t) => t.id)).size).toBe(tasks.length);
    expect(readBox(tasks[0], { start: [10, 0, -4], end: [110, 64, 6] })).toEqual({ start: [10, 0, -4], end: [44, 34, 1] });
    // JSON round trip is the identity (tasks travel through Redis as JSON).
    for (const t of tasks) expect(parseTask(JSON.parse(JSON.stringify(t)))).toEqual(t);
    expect(runIdFor(tasks)).toBe(runIdFor(createTasks("downsample", [100, 64, 10], [32, 32, 4], { layer: "x" }, { halo: [2, 2, 1], origin: [10, 0, -4] })));
    expect(runIdFor(tasks)).not.toBe(runIdFor(tasks.slice(1)));
  });

  it("rejects malformed tasks and plans with a JobError", () => {
    expect(() => createTasks("Bad Kind", [1, 1, 1], [1, 1, 1])).toThrow(JobError);
    expect(() => createTasks("k", [0, 1, 1], [1, 1, 1])).toThrow(/volumeShape/);
    expect(() => parseTask({ kind: "k", bbox: { start: [0, 0, 0], end: [0, 1, 1] }, halo: [0, 0, 0], params: {} })).toThrow(/empty/);
    expect(() => parseTask({ id: "other", kind: "k", bbox: { start: [0, 0, 0], end: [1, 1, 1] }, halo: [0, 0, 0], params: {} })).toThrow(/does not match/);
    expect(() => parseTask({ kind: "k", bbox: { start: [0, 0, 0], end: [1, 1, 1] }, halo: [-1, 0, 0], params: {} })).toThrow(/halo/);
  });
});

describe("in-process executor", () => {
  for (const kind of ["image", "segmentation"] as const) {
    it(`${kind}: downsample tasks rebuild writeVolume's pyramid byte for byte, and a re-run changes nothing`, async () => {
      const info = layerInfo(kind, [100, 72, 20], [8, 8, 4], 4);
      expect(info.scales.length).toBeGreaterThanOrEqual(3);
      const volume = syntheticVolume(kind, [100, 72, 20], 7);
      const reference = path.join(dir, `${kind}-ref`);
      await writeVolume(new LocalStorage(reference), "", info, volume, { gzip: true });
      const layer = path.join(dir, `${kind}-tasks`);
      await writeScaleZero(new LocalStorage(layer), info, volume);
      const levels = info.scales.length - 1;
      const { tasks, blockShape } = planDownsample(info, { layer, levels }, [32, 32, 8]);
      expect(blockShape.every((b, d) => b % downsampleAlignment(info, 0, levels)[d] === 0)).toBe(true);
      expect(tasks.length).toBeGreaterThan(1);
      const seen: number[] = [];
      const result = await runTasksInProcess(tasks, { concurrency: 2, onProgress: (p) => seen.push(p.done) });
      expect(result).toMatchObject({ total: tasks.length, done: tasks.length, failed: 0, deadLetters: [] });
      expect(seen[seen.length - 1]).toBe(tasks.length);
      const want = await snapshot(reference);
      const got = await snapshot(layer);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [k, bytes] of want) expect(got.get(k)?.equals(bytes), k).toBe(true);
      await runTasksInProcess(tasks.slice().reverse());
      const again = await snapshot(layer);
      for (const [k, bytes] of want) expect(again.get(k)?.equals(bytes), k).toBe(true);
    });
  }

  it("retries with backoff, then dead-letters a task that keeps failing; bad tasks fail at once", async () => {
    let calls = 0;
    const registry = new TaskKindRegistry()
      .register({ name: "flaky", summary: "fails twice", async run() { if (++calls < 3) throw new Error(`flake ${calls}`); return { outputs: [] }; } })
      .register({ name: "broken", summary: "always fails", async run(t) { throw new Error(`broken ${t.id}`); } });
    const tasks = [
      ...createTasks("flaky", [1, 1, 1], [1, 1, 1]),
      ...createTasks("broken", [1, 1, 1], [1, 1, 1]),
      ...createTasks("missing-kind", [1, 1, 1], [1, 1, 1]),
    ];
    const r = await runTasksInProcess(tasks, { registry, attempts: 3, backoffMs: 5 });
    expect(r.done).toBe(1);
    expect(r.failed).toBe(2);
    expect(r.deadLetters.map((d) => [d.taskId, d.attempts, d.error])).toEqual([
      ["broken/0_0_0-1_1_1", 3, "broken broken/0_0_0-1_1_1"],
      ["missing-kind/0_0_0-1_1_1", 1, expect.stringMatching(/JobError: no task kind "missing-kind"/)],
    ]);
  });

  it("refuses a downsample block that is off the alignment grid, without retrying", async () => {
    const info = layerInfo("image", [64, 64, 16], [16, 16, 8], 2);
    const layer = path.join(dir, "misaligned");
    await writeScaleZero(new LocalStorage(layer), info, syntheticVolume("image", [64, 64, 16]));
    const tasks = createTasks("downsample", [64, 64, 16], [16, 16, 16], { layer, levels: 1 });
    const r = await runTasksInProcess(tasks, { registry: await builtinKinds(), backoffMs: 1 });
    expect(r.failed).toBe(tasks.length - r.done);
    expect(r.deadLetters[0]).toMatchObject({ attempts: 1, error: expect.stringMatching(/grid/) });
  });
});
