/**
 * Resumable out-of-core runs with an s3:// output (issue 9), against a real s3rver on loopback: `vemscope run`
 * with s3:// image, labels and output in a child process is SIGKILLed once some of its tasks are done; the same
 * command run again continues from the work prefix (named by the inputs' S3 listings and the options), executes
 * fewer tasks than a whole run, and leaves the same objects, byte for byte, as an uninterrupted run, and no work
 * objects. Tasks are counted through VEMSCOPE_TASK_LOG (one line per task run, blockwise/resume.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { generatePhantom } from "../server/pipeline/phantom/index.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { S3Storage } from "../server/storage/index.js";
import { startS3rver, type RunningS3 } from "./helpers/services.js";
import { lines, startRun } from "./helpers/run-child.js";

/** As run-resume.test.ts: 256 x 256 x 32 at a budget of 2^18 voxels, 2 x 2 x 2 blocks, some 50 tasks in all. */
const SHAPE: Vec3 = [256, 256, 32];
const VOXEL: Vec3 = [5, 5, 45];
let dir: string;
let s3: RunningS3;
let env: NodeJS.ProcessEnv;
let bucket: S3Storage;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-s3-resume-"));
  s3 = await startS3rver(["vem"]);
  env = { ...process.env, VEMSCOPE_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, VEMSCOPE_WORKERS: "0" };
  bucket = new S3Storage("vem", "", { endpoint: s3.endpoint, credentials: s3.credentials });
  const phantom = generatePhantom({ seed: 3, size: SHAPE, voxelNm: VOXEL });
  await writeTiffStack(path.join(dir, "image.tif"), phantom.image);
  await writeTiffStack(path.join(dir, "labels.tif"), phantom.labels);
  for (const name of ["image.tif", "labels.tif"]) await bucket.put(`in/${name}`, readFileSync(path.join(dir, name)));
}, 120_000);
afterAll(async () => {
  bucket?.close();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `vemscope run` into s3://vem/<out> in a child process; `log` receives one line per task it runs. */
function runTo(out: string, log: string) {
  const args = ["--image", "s3://vem/in/image.tif", "--labels", "s3://vem/in/labels.tif", "--voxel", VOXEL.join(","), "--out", `s3://vem/${out}`, "--blockwise", "--block-budget", String(2 ** 18)];
  return startRun(args, log, env);
}

/** Task completion markers under the output's work prefixes (`<out>.work-<key>/done/`, steps excluded). */
async function doneTasks(out: string): Promise<number> {
  const keys = await bucket.list(`${out}.work-`);
  return keys.filter((k) => /^[^/]+\/done\//.test(k.slice(out.length)) && !k.includes("/done/step-")).length;
}

describe("resumable out-of-core run with an s3:// output", () => {
  it("a rerun after SIGKILL skips completed tasks and leaves the uninterrupted run's objects", async () => {
    const whole = runTo("whole", path.join(dir, "whole.log"));
    expect(await whole.exit, whole.output()).toBe(0);
    const total = lines(path.join(dir, "whole.log"));
    expect(total).toBeGreaterThan(20);

    const first = runTo("resumed", path.join(dir, "first.log"));
    // Kill once a good share of the tasks (past the instance stages) has completed, but well before the end.
    const killAt = Math.floor(total / 2);
    for (;;) {
      if (first.proc.exitCode !== null) throw new Error(`the run ended before it could be killed:\n${first.output()}`);
      if ((await doneTasks("resumed")) >= killAt) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    first.proc.kill("SIGKILL");
    expect(await first.exit).toBe("SIGKILL");
    expect(await bucket.get("resumed/state.json")).toBeUndefined();
    expect(await doneTasks("resumed")).toBeGreaterThanOrEqual(killAt);

    // The interrupted output (objects, no state.json) is this command's own: continued, not refused.
    const second = runTo("resumed", path.join(dir, "second.log"));
    expect(await second.exit, second.output()).toBe(0);
    const rerun = lines(path.join(dir, "second.log"));
    expect(rerun).toBeGreaterThan(0);
    expect(rerun).toBeLessThanOrEqual(total - killAt);

    const want = await bucket.list("whole/");
    const got = await bucket.list("resumed/");
    expect(got.map((k) => k.slice("resumed/".length))).toEqual(want.map((k) => k.slice("whole/".length)));
    for (const k of want) {
      const a = await bucket.get(k);
      const b = await bucket.get(`resumed/${k.slice("whole/".length)}`);
      expect(a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b)), k).toBe(true);
    }
    expect(want).toContain("whole/state.json");
    // Both runs' work prefixes are gone after success.
    expect((await bucket.list("")).filter((k) => k.includes(".work-"))).toEqual([]);
  }, 400_000);
});
