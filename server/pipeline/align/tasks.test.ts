import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../../../precomputed/array.js";
import { LocalStorage } from "../../../precomputed/storage.js";
import { TaskKindRegistry } from "../../jobs/kinds.js";
import { runTasksInProcess } from "../../jobs/local-executor.js";
import { pendingTasks } from "../blockwise/resume.js";
import { blockOrigins } from "../blockwise/store.js";
import { WorkVolume, type WorkVolumeSpec } from "../blockwise/work-store.js";
import { PipelineError } from "../errors.js";
import { createRng } from "../random.js";
import { alignStack, type AlignOptions, type AlignReport, type Stack } from "./align.js";
import { DEFAULT_ELASTIC, StackMeasurer, type PairShifts } from "./elastic.js";
import { sectionView } from "./image.js";
import { makeGrid, type SectionMap } from "./map.js";
import { emNeighbour288 } from "./fixtures.js";
import { cropWarp, warpSection } from "./synth.js";
import { alignKinds, alignOnTasks, type StageExecutor } from "./tasks.js";

const S = 192;
const dir = mkdtempSync(path.join(tmpdir(), "vemscope-align-tasks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Only the alignment kinds: builtinKinds may hold them already.
const registry = new TaskKindRegistry();
for (const k of alignKinds) registry.register(k);

/** Real neighbouring sections, each crop shifted a little more, so that every pair has something to find. */
let sections: Uint8Array[] = [];
beforeAll(async () => {
  for (const z of [0, 1, 2, 3]) {
    const full = await emNeighbour288(z);
    for (const k of [0, 1]) {
      const c = cropWarp((full.width - S) / 2 + 3 * z + 2 * k, (full.height - S) / 2 - 2 * z - k);
      sections.push(warpSection(full.data, full.width, full.height, c, S, S).data as Uint8Array);
    }
  }
});

function stackOf(list: (Uint8Array | Uint16Array)[]): Stack {
  const data = list[0] instanceof Uint16Array ? new Uint16Array(S * S * list.length) : new Uint8Array(S * S * list.length);
  list.forEach((s, z) => data.set(s, z * S * S));
  return { data, shape: [S, S, list.length] };
}

function crop(v: Uint8Array | Uint16Array, shape: Vec3, o: Vec3, e: Vec3): Uint8Array | Uint16Array {
  const out = v instanceof Uint16Array ? new Uint16Array(e[0] * e[1] * e[2]) : new Uint8Array(e[0] * e[1] * e[2]);
  for (let z = 0; z < e[2]; z++) {
    for (let y = 0; y < e[1]; y++) {
      const from = o[0] + shape[0] * (o[1] + y + shape[1] * (o[2] + z));
      out.set(v.subarray(from, from + e[0]), e[0] * (y + e[1] * z));
    }
  }
  return out;
}

type Mode = "forward" | "reverse" | "twice" | "resume";

/** Runs each stage's tasks in process; `ran` collects the kinds of the tasks run. */
function executor(work: LocalStorage, mode: Mode, ran: string[], after?: (stage: string) => Promise<void>): StageExecutor {
  return async (stage, tasks) => {
    let list = mode === "resume" ? await pendingTasks(work, tasks) : tasks;
    if (mode === "reverse") list = [...list].reverse();
    for (let round = 0; round < (mode === "twice" ? 2 : 1); round++) {
      ran.push(...list.map((t) => t.kind));
      const r = await runTasksInProcess(list, { registry, attempts: 1 });
      if (r.failed > 0) throw new Error(`${stage}: ${r.deadLetters.map((d) => d.error).join("; ")}`);
    }
    await after?.(stage);
  };
}

interface Setup {
  work: LocalStorage;
  workUrl: string;
  raw: WorkVolumeSpec;
  aligned: WorkVolumeSpec;
}

let serial = 0;
async function setUp(stack: Stack, rawBlock: Vec3, alignedBlock: Vec3): Promise<Setup> {
  const workUrl = path.join(dir, `w${serial++}`);
  const work = new LocalStorage(workUrl);
  const type = stack.data instanceof Uint16Array ? "uint16" : "uint8";
  const raw: WorkVolumeSpec = { name: "raw", shape: stack.shape, blockShape: rawBlock, type };
  const aligned: WorkVolumeSpec = { name: "aligned", shape: stack.shape, blockShape: alignedBlock, type };
  const vol = new WorkVolume(work, raw);
  for (const o of blockOrigins(stack.shape, rawBlock)) await vol.writeBlock(o, crop(stack.data, stack.shape, o, vol.blockExtent(o)));
  return { work, workUrl, raw, aligned };
}

const timeless = (r: AlignReport): string => JSON.stringify({ ...r, seconds: null, megapixelsPerSecond: null });

interface Expected {
  bytes: Buffer;
  report: string;
}
const references = new Map<string, Expected>();
async function reference(name: string, stack: Stack, options: AlignOptions): Promise<Expected> {
  let e = references.get(name);
  if (!e) {
    const { aligned, report } = await alignStack(stack, options);
    e = { bytes: Buffer.from(aligned.data.buffer, aligned.data.byteOffset, aligned.data.byteLength), report: timeless(report) };
    references.set(name, e);
  }
  return e;
}

async function alignedBytes(s: Setup): Promise<Buffer> {
  const v = await new WorkVolume(s.work, s.aligned).readBox([0, 0, 0], s.aligned.shape);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** alignOnTasks vs alignStack: same aligned bytes, same report but the timings. */
async function expectSame(name: string, stack: Stack, options: AlignOptions, how: { per: number; rawBlock?: Vec3; alignedBlock?: Vec3; mode?: Mode }): Promise<{ setup: Setup; ran: string[]; report: AlignReport }> {
  const want = await reference(name, stack, options);
  const setup = await setUp(stack, how.rawBlock ?? [S, S, 1], how.alignedBlock ?? [S, S, 1]);
  const ran: string[] = [];
  const report = await alignOnTasks({ execute: executor(setup.work, how.mode ?? "forward", ran), work: setup.work, workUrl: setup.workUrl, raw: setup.raw, aligned: setup.aligned, options, sectionsPerTask: how.per });
  expect(timeless(report)).toBe(want.report);
  expect((await alignedBytes(setup)).equals(want.bytes)).toBe(true);
  return { setup, ran, report };
}

const ELASTIC: AlignOptions = { iterations: 2, reach: 2, correlation: { patch: 64 } };
const first = (n: number): Uint8Array[] => sections.slice(0, n);

describe("alignment as tasks over a work store", () => {
  it.each([
    [1, [S, S, 1], [S, S, 1]],
    [3, [96, 128, 2], [128, 96, 2]],
    [20, [S, S, 4], [64, 64, 3]],
  ] as [number, Vec3, Vec3][])("%i sections per task (raw blocks %j, aligned blocks %j): alignStack's bytes and report", async (per, rawBlock, alignedBlock) => {
    const { ran, report } = await expectSame("elastic", stackOf(first(6)), ELASTIC, { per, rawBlock, alignedBlock });
    // Several pairs measured and solved: the test is not about an empty mesh.
    expect(report.sections.slice(1).every((s) => s.elasticNodes > 0)).toBe(true);
    expect(ran.filter((k) => k === "align.measure")).toHaveLength(2 * Math.ceil(5 / per));
    expect(ran).not.toContain("align.pair");
  });

  it("a blank and an unmatchable section: follow-up pairs against the last good section, the same chain", async () => {
    const rng = createRng(5);
    const noise = Uint8Array.from({ length: S * S }, () => rng.int(0, 255));
    const blank = new Uint8Array(S * S).fill(117);
    const [a, b, c, d] = sections as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    const { ran, report } = await expectSame("bad", stackOf([a, noise, b, blank, c, d]), ELASTIC, { per: 2 });
    expect(report.sections.map((s) => s.status)).toEqual(["reference", "no_matches", "ok", "blank", "ok", "ok"]);
    expect(report.sections[2]?.matchedTo).toBe(0);
    expect(report.sections[4]?.matchedTo).toBe(2);
    expect(ran.filter((k) => k === "align.pair")).toHaveLength(2);
  });

  it("uint16 sections", async () => {
    const wide = first(5).map((s, z) => Uint16Array.from(s, (v) => v * 251 + z * 7));
    await expectSame("uint16", stackOf(wide), ELASTIC, { per: 3, alignedBlock: [S, S, 2] });
  });

  it("affine only (elastic false)", async () => {
    const { report } = await expectSame("affine", stackOf(first(5)), { elastic: false, interpolation: "linear", correlation: { patch: 64 } }, { per: 2 });
    expect(report.mode).toBe("affine");
  });

  it("tasks run in reverse order", async () => {
    await expectSame("elastic", stackOf(first(6)), ELASTIC, { per: 2, mode: "reverse" });
  });

  it("every stage run twice leaves the same bytes; a resumed run runs nothing and finds every result", async () => {
    const stack = stackOf(first(6));
    const { setup } = await expectSame("elastic", stack, ELASTIC, { per: 3, mode: "twice" });
    const ran: string[] = [];
    const report = await alignOnTasks({ execute: executor(setup.work, "resume", ran), work: setup.work, workUrl: setup.workUrl, raw: setup.raw, aligned: setup.aligned, options: ELASTIC, sectionsPerTask: 3 });
    expect(ran).toEqual([]);
    expect(timeless(report)).toBe((await reference("elastic", stack, ELASTIC)).report);
  });

  it("StackMeasurer.measureRange: any split of the chain gives the whole chain's pair shifts (3 gaps, joint mask, overlap norm)", () => {
    const stack = stackOf(first(7));
    // Each crop's offset from section 0's (see beforeAll) plus up to 18 px more: patches at the border nodes are
    // partly outside, and the content is left about 6 px apart from section to section.
    const maps: SectionMap[] = Array.from({ length: 7 }, (_, i) => {
      const z = i >> 1;
      const k = i & 1;
      return { affine: [1, 0, 3 * z + 2 * k + 6 * (i - 3), 0, 1, -2 * z - k - 6 * (i - 3)] };
    });
    const grid = makeGrid(S, S, 32);
    const options = { ...DEFAULT_ELASTIC, patch: 64, maxShift: 16, jointMask: true, overlapNorm: true };
    const chain = [0, 1, 2, 3, 4, 5, 6];
    const section = (z: number): Uint8Array => sectionView(stack.data as Uint8Array, S, S, z);
    const whole = new StackMeasurer(options).measure(stack.data, S, S, maps, chain, grid, undefined, 3);
    const bytes = (r: PairShifts): string => JSON.stringify([r.valid, ...[r.dx, r.dy, r.support, r.ok].map((a) => Buffer.from(a.buffer).toString("base64"))]);
    expect(whole[0]?.some((r) => r.valid > 0)).toBe(true);
    // Partly missing patches: the joint-mask pass and the overlap normalisation run.
    expect(whole.flat().some((r) => r.support.some((v) => v > 0 && v < 1))).toBe(true);
    for (const per of [1, 2, 3, 4]) {
      const got: PairShifts[][] = [[], [], []];
      for (let t0 = 1; t0 < chain.length; t0 += per) {
        const t1 = Math.min(chain.length, t0 + per);
        const [lo, hi] = StackMeasurer.window(chain.length, 3, t0, t1) ?? [0, 0];
        // Only the window's sections are readable.
        const only = (z: number): Uint8Array => {
          const p = chain.indexOf(z);
          if (p < lo || p >= hi) throw new Error(`section ${z} read outside the window [${lo}, ${hi})`);
          return section(z);
        };
        new StackMeasurer(options).measureRange(only, S, S, maps, chain, grid, 3, t0, t1).forEach((l, g) => got[g]?.push(...l));
      }
      expect(got.map((l) => l.map(bytes))).toEqual(whole.map((l) => l.map(bytes)));
    }
  });

  it("a missing result key is a PipelineError naming the key", async () => {
    const setup = await setUp(stackOf(first(3)), [S, S, 1], [S, S, 1]);
    const execute = executor(setup.work, "forward", [], async (stage) => {
      if (stage === "align: coarse") for (const key of await setup.work.list("align/")) if (key.includes("/coarse/")) await setup.work.delete(key);
    });
    const err = await alignOnTasks({ execute, work: setup.work, workUrl: setup.workUrl, raw: setup.raw, aligned: setup.aligned, options: ELASTIC, sectionsPerTask: 2, file: "stack.tif" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PipelineError);
    expect((err as PipelineError).message).toMatch(/^stack\.tif: alignment result align\/[0-9a-f]{16}\/coarse\/0-2\.json is missing/);
  });
});
