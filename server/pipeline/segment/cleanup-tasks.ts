/**
 * removeSmallFragments (cleanup.ts) as task kinds over a work store, and their coordinator (segment/tasks.ts runs
 * them after the section tasks; see its header for the kinds and how a pass and a rerun go).
 */
import { createHash } from "node:crypto";
import type { Vec3 } from "../../../precomputed/array.js";
import type { Storage } from "../../../precomputed/storage.js";
import type { TaskKind } from "../../jobs/kinds.js";
import { badTask, checkBlock, extentOf, isShape, optStrParam, storageParam, strParam, workVolumeParam } from "../../jobs/params.js";
import { createTasks, type JsonObject, type StageExecutor, type Task } from "../../jobs/tasks.js";
import { blockIndex, blockName, cclBlockTask, cclKeys, finalIdsOfBlock, finishLabels, gatherParts, gridOf, stitchBlockTask } from "../blockwise/ccl.js";
import { arrayOf, packArrays, unpackArrays } from "../blockwise/pack.js";
import { stepKey } from "../blockwise/resume.js";
import { blockKey, removePrefix, WorkVolume, type WorkVolumeSpec } from "../blockwise/work-store.js";
import { PipelineError } from "../errors.js";
import { DEFAULT_MIN_FRAGMENT_NM3 } from "./cleanup.js";


/** cleanup.ts's removeSmallFragments default. */
export const CLEANUP_PASSES = 3;

export interface CleanupOnTasksOptions {
  execute: StageExecutor;
  work: Storage;
  workUrl: string;
  /** Class codes before cleanup (uint8); kept unless dropInput. */
  input: WorkVolumeSpec;
  /** The cleaned classes: same shape as input, another name; another block shape costs one copy at the end. */
  output: WorkVolumeSpec;
  voxelNm: Vec3;
  minFragmentNm3?: number;
  /** Remove `input` once the first pass has consumed it (an intermediate volume of the caller). */
  dropInput?: boolean;
}

export interface CleanupTotals {
  fragments: number;
  voxels: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Task parameters.

export const specJson = (s: WorkVolumeSpec): JsonObject => ({ name: s.name, shape: [...s.shape], blockShape: [...s.blockShape], type: s.type, ...(s.codec ? { codec: s.codec } : {}) });

function sameGrid(task: Task, a: WorkVolumeSpec, b: WorkVolumeSpec): void {
  if (a.shape.some((v, d) => v !== b.shape[d]) || a.blockShape.some((v, d) => v !== b.blockShape[d])) {
    badTask(task, `${a.name} and ${b.name} must have the same shape and block shape`);
  }
}

async function need(storage: Storage, key: string): Promise<Uint8Array> {
  const bytes = await storage.get(key);
  if (!bytes) throw new PipelineError("stage_failed", "work object missing (did the previous stage finish?)", key);
  return bytes;
}

/** Index of `v` in the sorted `a`, or -1. */
function indexOf(a: Uint32Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo < a.length && a[lo] === v ? lo : -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Kinds.

export const cleanupCclKind: TaskKind = {
  name: "segment.cleanup-ccl",
  summary: "local 26-connected components of one block of a cleanup pass's classes",
  async run(task, ctx) {
    const input = workVolumeParam(task, "input", ["uint8"]);
    checkBlock(task, input);
    return { outputs: await cclBlockTask(storageParam(task, ctx), input, task.bbox.start, extentOf(task), cclKeys(strParam(task, "ccl"))) };
  },
};

export const cleanupStitchKind: TaskKind = {
  name: "segment.cleanup-stitch",
  summary: "component pairs joined across one block's low faces, for a cleanup pass",
  async run(task, ctx) {
    const input = workVolumeParam(task, "input", ["uint8"]);
    checkBlock(task, input);
    return { outputs: await stitchBlockTask(storageParam(task, ctx), input, task.bbox.start, extentOf(task), cclKeys(strParam(task, "ccl"))) };
  },
};

/** Reads the block with a 1-voxel halo (clipped at the volume): returns the halo box and the block cut from it. */
async function blockWithHalo(vol: WorkVolume<Uint8Array>, origin: Vec3, extent: Vec3): Promise<{ halo: Uint8Array; lo: Vec3; hs: Vec3; block: Uint8Array }> {
  const shape = vol.spec.shape;
  const lo = origin.map((o) => Math.max(0, o - 1)) as Vec3;
  const hi = origin.map((o, d) => Math.min(shape[d], o + extent[d] + 1)) as Vec3;
  const hs = hi.map((h, d) => h - lo[d]) as Vec3;
  const halo = await vol.readBox(lo, hs);
  const block = new Uint8Array(extent[0] * extent[1] * extent[2]);
  for (let z = 0; z < extent[2]; z++) {
    for (let y = 0; y < extent[1]; y++) {
      const from = origin[0] - lo[0] + hs[0] * (origin[1] - lo[1] + y + hs[1] * (origin[2] - lo[2] + z));
      block.set(halo.subarray(from, from + extent[0]), extent[0] * (y + extent[1] * z));
    }
  }
  return { halo, lo, hs, block };
}

export const cleanupVotesKind: TaskKind = {
  name: "segment.cleanup-votes",
  summary: "face-neighbour class votes of the small fragments' voxels in one block",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const input = workVolumeParam(task, "input", ["uint8"]);
    checkBlock(task, input);
    const origin = task.bbox.start;
    const extent = extentOf(task);
    const smallKey = strParam(task, "small");
    const small = arrayOf(unpackArrays(await need(store, smallKey), smallKey), "ids", Uint32Array, smallKey);
    const { halo, lo, hs, block: classes } = await blockWithHalo(new WorkVolume<Uint8Array>(store, input), origin, extent);
    const { block, finalOf } = await finalIdsOfBlock(store, input, classes, origin, extent, cclKeys(strParam(task, "ccl")));
    // Local id -> final id of a small fragment (0: not small). Several local ids may share a final id.
    const smallFinal = new Uint32Array(block.count + 1);
    let any = false;
    for (let l = 1; l <= block.count; l++) {
      const f = finalOf[l - 1];
      if (indexOf(small, f) >= 0) {
        smallFinal[l] = f;
        any = true;
      }
    }
    // (final id * 256 + class) -> votes: only the classes a fragment actually touches.
    const votes = new Map<number, number>();
    if (any) {
      const [sx, sy, sz] = extent;
      const [nx, ny, nz] = input.shape;
      const [hx, hy] = hs;
      const hxy = hx * hy;
      const labels = block.labels;
      for (let z = 0, i = 0; z < sz; z++) {
        const gz = origin[2] + z;
        for (let y = 0; y < sy; y++) {
          const gy = origin[1] + y;
          for (let x = 0; x < sx; x++, i++) {
            const f = smallFinal[labels[i]];
            if (f === 0) continue;
            const gx = origin[0] + x;
            const c = classes[i];
            const h = gx - lo[0] + hx * (gy - lo[1]) + hxy * (gz - lo[2]);
            // A face neighbour of the same class is in the same component; any other class is another one.
            const vote = (j: number): void => {
              const cj = halo[j];
              if (cj === c) return;
              const key = f * 256 + cj;
              votes.set(key, (votes.get(key) ?? 0) + 1);
            };
            if (gx > 0) vote(h - 1);
            if (gx < nx - 1) vote(h + 1);
            if (gy > 0) vote(h - hx);
            if (gy < ny - 1) vote(h + hx);
            if (gz > 0) vote(h - hxy);
            if (gz < nz - 1) vote(h + hxy);
          }
        }
      }
    }
    const keys = [...votes.keys()].sort((a, b) => a - b);
    const ids = new Uint32Array(keys.length);
    const cls = new Uint8Array(keys.length);
    const counts = new Float64Array(keys.length);
    keys.forEach((k, n) => {
      ids[n] = Math.floor(k / 256);
      cls[n] = k % 256;
      counts[n] = votes.get(k) as number;
    });
    const key = `${strParam(task, "votes")}/${blockName(blockIndex(input, origin))}`;
    await store.put(key, packArrays({ ids, cls, counts }));
    return { outputs: [key] };
  },
};

export const cleanupApplyKind: TaskKind = {
  name: "segment.cleanup-apply",
  summary: "one block of a cleanup pass's output: small fragments take their target class (a copy without targets)",
  async run(task, ctx) {
    const store = storageParam(task, ctx);
    const input = workVolumeParam(task, "input", ["uint8"]);
    const output = workVolumeParam(task, "output", ["uint8"]);
    const targetsKey = optStrParam(task, "targets");
    // A copy (no targets) may change the block grid: it is planned over the output's blocks and reads any box.
    if (targetsKey === undefined) {
      checkBlock(task, output);
      if (input.shape.some((v, d) => v !== output.shape[d])) badTask(task, `${input.name} and ${output.name} must have the same shape`);
    } else {
      checkBlock(task, input);
      sameGrid(task, input, output);
    }
    if (input.name === output.name) badTask(task, "a pass must not write its own input");
    const origin = task.bbox.start;
    const extent = extentOf(task);
    const classes = await new WorkVolume<Uint8Array>(store, input).readBox(origin, extent);
    if (targetsKey !== undefined) {
      const u = unpackArrays(await need(store, targetsKey), targetsKey);
      const ids = arrayOf(u, "ids", Uint32Array, targetsKey);
      const targets = arrayOf(u, "targets", Uint8Array, targetsKey);
      const { block, finalOf } = await finalIdsOfBlock(store, input, classes, origin, extent, cclKeys(strParam(task, "ccl")));
      // Local id -> target class + 1 (0: keep).
      const to = new Uint16Array(block.count + 1);
      let any = false;
      for (let l = 1; l <= block.count; l++) {
        const s = indexOf(ids, finalOf[l - 1]);
        if (s >= 0) {
          to[l] = targets[s] + 1;
          any = true;
        }
      }
      if (any) {
        const labels = block.labels;
        for (let i = 0; i < classes.length; i++) {
          const t = to[labels[i]];
          if (t !== 0) classes[i] = t - 1;
        }
      }
    }
    await new WorkVolume<Uint8Array>(store, output).writeBlock(origin, classes);
    return { outputs: [blockKey(output, origin)] };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Coordinator.

/** Names intermediate volumes and keys by the options that made them (a rerun with others does not reuse them). */
export const digest = (v: unknown): string => createHash("sha256").update(JSON.stringify(v)).digest("hex").slice(0, 12);

export function checkSpec(s: WorkVolumeSpec, what: string, types: readonly string[]): void {
  if (!types.includes(s.type)) throw new PipelineError("bad_argument", `${what} (${s.name}) must be ${types.join(" or ")}, not ${s.type}`);
  if (!isShape(s.shape) || !isShape(s.blockShape)) throw new PipelineError("bad_argument", `${what} (${s.name}) needs positive integer shape and block shape`);
}

/**
 * removeSmallFragments (cleanup.ts) out of core: the same bytes in `output` and the same counts. Each pass's
 * CCL, votes and targets live under their own keys; a finished pass leaves a result marker.
 */
export async function cleanupOnTasks(o: CleanupOnTasksOptions): Promise<CleanupTotals> {
  const { execute, work, workUrl, input, output, voxelNm } = o;
  const minNm3 = o.minFragmentNm3 ?? DEFAULT_MIN_FRAGMENT_NM3;
  checkSpec(input, "cleanup input", ["uint8"]);
  checkSpec(output, "cleanup output", ["uint8"]);
  if (input.shape.some((v, d) => v !== output.shape[d]) || input.name === output.name) {
    throw new PipelineError("bad_argument", `cleanup output ${output.name} must have ${input.name}'s shape under another name`);
  }
  const sameBlocks = input.blockShape.every((v, d) => v === output.blockShape[d]);
  const d = digest({ v: 1, input: specJson(input), output: specJson(output), voxelNm, minNm3 });
  const root = `segment-cleanup/${d}`;
  const doneMarker = stepKey(`segment-cleanup-${d}`);
  const finished = await work.get(doneMarker);
  if (finished) {
    await removePrefix(work, `${root}/`);
    return JSON.parse(new TextDecoder().decode(finished)) as CleanupTotals;
  }
  const minVoxels = minNm3 / (voxelNm[0] * voxelNm[1] * voxelNm[2]);
  // Passes run on the input's blocks; the last one writes the output itself when the grids agree.
  const volumeOf = (p: number): WorkVolumeSpec => (p === CLEANUP_PASSES && sameBlocks ? output : { ...input, name: `${output.name}-pass${p}-${d}` });
  const blockTasks = (kind: string, spec: WorkVolumeSpec, params: JsonObject): Task[] => createTasks(kind, spec.shape, spec.blockShape, { work: workUrl, ...params });
  const total: CleanupTotals = { fragments: 0, voxels: 0 };
  let current = input;
  // Every fragment has at least one voxel: below a minimum of 1 voxel nothing is small, and no pass changes anything.
  for (let p = 1; p <= CLEANUP_PASSES && minVoxels > 1; p++) {
    const next = volumeOf(p);
    const resultKey = `${root}/result/pass${p}`;
    let result: CleanupTotals;
    const stored = await work.get(resultKey);
    if (stored) result = JSON.parse(new TextDecoder().decode(stored)) as CleanupTotals;
    else {
      result = await cleanupPass({ execute, work, blockTasks, input: current, output: next, minVoxels, pass: p, prefix: `${root}/pass${p}` });
      await work.put(resultKey, JSON.stringify(result));
    }
    if (result.fragments === 0) break;
    total.fragments += result.fragments;
    total.voxels += result.voxels;
    // The pass's keys and its input are no longer needed (a rerun skips the pass on its result marker).
    await removePrefix(work, `${root}/pass${p}/`);
    if (current !== input || o.dropInput === true) await new WorkVolume(work, current).remove();
    current = next;
  }
  if (current !== output) {
    // Stopped before the last pass: the last pass's output (or the input) is the result.
    await execute("small fragments: final classes", blockTasks("segment.cleanup-apply", output, { input: specJson(current), output: specJson(output), targets: null, ccl: null, pass: 0 }));
    if (current !== input || o.dropInput === true) await new WorkVolume(work, current).remove();
  }
  await work.put(doneMarker, JSON.stringify(total));
  await removePrefix(work, `${root}/`);
  return total;
}

interface PassOptions {
  execute: StageExecutor;
  work: Storage;
  blockTasks: (kind: string, spec: WorkVolumeSpec, params: JsonObject) => Task[];
  input: WorkVolumeSpec;
  output: WorkVolumeSpec;
  minVoxels: number;
  pass: number;
  prefix: string;
}

/** One pass of cleanup.ts's onePass: CCL, small fragments, votes, targets, apply. */
async function cleanupPass(o: PassOptions): Promise<CleanupTotals> {
  const { execute, work, input, pass, prefix } = o;
  const cclPrefix = `${prefix}/ccl`;
  const keys = cclKeys(cclPrefix);
  const label = `small fragments ${pass}`;
  const common: JsonObject = { input: specJson(input), ccl: cclPrefix, pass };
  await execute(`${label}: blocks`, o.blockTasks("segment.cleanup-ccl", input, common));
  const { parts } = await gatherParts(work, input, keys);
  await execute(`${label}: faces`, o.blockTasks("segment.cleanup-stitch", input, common));
  const cc = await finishLabels(work, input, parts, keys);
  let n = 0;
  let voxels = 0;
  for (let id = 1; id <= cc.count; id++) {
    if (cc.classOf[id] !== 0 && cc.voxels[id] < o.minVoxels) {
      n++;
      voxels += cc.voxels[id];
    }
  }
  if (n === 0) return { fragments: 0, voxels: 0 };
  // Final ids in increasing order: tasks look theirs up by binary search.
  const small = new Uint32Array(n);
  for (let id = 1, s = 0; id <= cc.count; id++) if (cc.classOf[id] !== 0 && cc.voxels[id] < o.minVoxels) small[s++] = id;
  const smallKey = `${prefix}/small`;
  await work.put(smallKey, packArrays({ ids: small }));
  const votesPrefix = `${prefix}/votes`;
  await execute(`${label}: votes`, o.blockTasks("segment.cleanup-votes", input, { ...common, small: smallKey, votes: votesPrefix }));
  // cleanup.ts: the class (code >= 1) with the most votes, the lowest code on a tie; background without any.
  const best = new Uint8Array(n);
  const bestVotes = new Float64Array(n);
  const sums = new Map<number, number>();
  const grid = gridOf(input);
  for (let k = 0; k < grid[2]; k++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let i = 0; i < grid[0]; i++) {
        const key = `${votesPrefix}/${blockName([i, j, k])}`;
        const u = unpackArrays(await need(work, key), key);
        const ids = arrayOf(u, "ids", Uint32Array, key);
        const cls = arrayOf(u, "cls", Uint8Array, key);
        const counts = arrayOf(u, "counts", Float64Array, key);
        for (let v = 0; v < ids.length; v++) {
          if (cls[v] === 0) continue;
          const s = indexOf(small, ids[v]);
          if (s < 0) throw new PipelineError("stage_failed", `votes for fragment ${ids[v]}, which is not small`, key);
          const sk = s * 256 + cls[v];
          sums.set(sk, (sums.get(sk) ?? 0) + counts[v]);
        }
      }
    }
  }
  for (const [sk, v] of sums) {
    const s = Math.floor(sk / 256);
    const c = sk % 256;
    if (v > bestVotes[s] || (v === bestVotes[s] && c < best[s])) {
      best[s] = c;
      bestVotes[s] = v;
    }
  }
  const targetsKey = `${prefix}/targets`;
  await work.put(targetsKey, packArrays({ ids: small, targets: best }));
  await execute(`${label}: classes`, o.blockTasks("segment.cleanup-apply", input, { ...common, output: specJson(o.output), targets: targetsKey }));
  return { fragments: n, voxels };
}
