/**
 * Resumable out-of-core runs (issue 9): `vemscope run --blockwise` in a child process is SIGKILLed once some of
 * its tasks are done; the same command run again continues in the same staging folder, executes fewer tasks
 * than a whole run, and writes the same bytes as an uninterrupted run (every file of the output folder).
 * Tasks are counted through VEMSCOPE_TASK_LOG (one line per task run, blockwise/resume.ts).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { snapshot } from "../server/jobs/test-support.js";
import { generatePhantom } from "../server/pipeline/phantom/index.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { lines, startRun } from "./helpers/run-child.js";

/** 256 x 256 x 32 at a budget of 2^18 voxels: 2 x 2 x 2 blocks of 128 x 128 x 16, some 50 tasks in all. */
const SHAPE: Vec3 = [256, 256, 32];
const VOXEL: Vec3 = [5, 5, 45];
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-resume-"));
  const phantom = generatePhantom({ seed: 3, size: SHAPE, voxelNm: VOXEL });
  await writeTiffStack(path.join(dir, "image.tif"), phantom.image);
  await writeTiffStack(path.join(dir, "labels.tif"), phantom.labels);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `vemscope run` in a child process; `log` receives one line per task it runs. */
function runTo(out: string, log: string) {
  const args = ["--image", path.join(dir, "image.tif"), "--labels", path.join(dir, "labels.tif"), "--voxel", VOXEL.join(","), "--out", out, "--blockwise", "--block-budget", String(2 ** 18)];
  return startRun(args, log, { ...process.env, VEMSCOPE_WORKERS: "0" });
}

/**
 * Completion markers in the run's staging folder(s) beside `out` (`<out>.partial-<key>/.blocks/done/`). A marker's
 * put in flight shows as `<key>.tmp-<pid>-<hex>` (LocalStorage's atomic write) and is no marker yet: counting it
 * let a kill land one task early (CI, session 7: the rerun ran 21 tasks of the 20 the test allowed).
 */
function doneTasks(out: string): number {
  let n = 0;
  for (const name of readdirSync(path.dirname(out))) {
    if (!name.startsWith(`${path.basename(out)}.partial-`)) continue;
    const done = path.join(path.dirname(out), name, ".blocks", "done");
    if (existsSync(done)) n += readdirSync(done).filter((f) => !f.startsWith("step-") && !f.includes(".tmp-")).length;
  }
  return n;
}

describe("resumable out-of-core run", () => {
  it("a rerun after SIGKILL skips completed tasks and writes the uninterrupted run's bytes", async () => {
    const whole = runTo(path.join(dir, "whole"), path.join(dir, "whole.log"));
    expect(await whole.exit, whole.output()).toBe(0);
    const total = lines(path.join(dir, "whole.log"));
    expect(total).toBeGreaterThan(20);

    const out = path.join(dir, "resumed");
    const first = runTo(out, path.join(dir, "first.log"));
    // Kill once a good share of the tasks (past the instance stages) has completed, but well before the end.
    const killAt = Math.floor(total / 2);
    await new Promise<void>((resolve, reject) => {
      const tick = (): void => {
        if (first.proc.exitCode !== null) return reject(new Error(`the run ended before it could be killed:\n${first.output()}`));
        if (doneTasks(out) >= killAt) return resolve();
        setTimeout(tick, 10);
      };
      tick();
    });
    first.proc.kill("SIGKILL");
    expect(await first.exit).toBe("SIGKILL");
    expect(existsSync(out)).toBe(false);
    expect(doneTasks(out)).toBeGreaterThanOrEqual(killAt);

    const second = runTo(out, path.join(dir, "second.log"));
    expect(await second.exit, second.output()).toBe(0);
    const rerun = lines(path.join(dir, "second.log"));
    expect(rerun).toBeGreaterThan(0);
    expect(rerun).toBeLessThanOrEqual(total - killAt);

    const want = await snapshot(path.join(dir, "whole"));
    const got = await snapshot(out);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, bytes] of want) expect(got.get(k)?.equals(bytes), k).toBe(true);
    // The staging folder (work store included) is gone after the successful rerun.
    expect(readdirSync(dir).filter((f) => f.includes(".partial-"))).toEqual([]);
  }, 300_000);
});
