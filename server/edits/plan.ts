import type { Vec3 } from "../../precomputed/array.js";
import { ApiError } from "../api/errors.js";
import type { OpKind, OpRecord } from "./db.js";
import type { KnownBlocks, LabelDiff } from "./diff.js";
import { finerGrid, mergeDiff, splitDiff, splitDiffCoarse, splitDiffRefined, splitGrid, type Box6, type VoxelSeed } from "./ops.js";

/** What a client asks for; `base` is the version the client saw when it decided. */
export type EditRequest =
  | { kind: "merge"; base: number; segments: [number, number] }
  | {
      kind: "split";
      base: number;
      segment: number;
      seeds: { point: Vec3; group: string | number }[];
      /** The grid the split ran on (replay passes the logged one; a client's split leaves it to the size rule). */
      grid?: Vec3;
    }
  | { kind: "undo" | "redo"; base: number; operation: number };

export interface Plan {
  kind: OpKind;
  params: unknown;
  inputs: number[];
  outputs: number[];
  diff: LabelDiff;
  maxId: number;
}

/** What planning reads of the current state; the editor and the replay both provide it. */
export interface PlanState {
  labels: Uint32Array;
  shape: Vec3;
  voxelNm: Vec3;
  version: number;
  maxId: number;
  /** Class name of an existing segment, undefined when the id does not exist (now). */
  classOf(id: number): string | undefined;
  boxOf(id: number): Box6;
  /** Version of the last committed op that touched the segment (0: never edited). */
  lastTouched(id: number): number;
  op(id: number): OpRecord | undefined;
  /** The latest undo of an op, if any. */
  lastUndoOf(id: number): OpRecord | undefined;
  diffOf(op: OpRecord): Promise<Uint32Array>;
  /** The labels' block index, in step with them, where the caller keeps one (planning then skips uniform blocks). */
  known?: KnownBlocks;
}

const conflict = (state: PlanState, ids: readonly number[], base: number) => {
  const changed = ids.filter((id) => state.lastTouched(id) > base);
  if (changed.length > 0) {
    throw new ApiError(409, "conflict", `segment(s) ${changed.join(", ")} changed after version ${base}; the current version is ${state.version}`);
  }
};

const mustExist = (state: PlanState, ids: readonly number[]) => {
  for (const id of ids) if (state.classOf(id) === undefined) throw new ApiError(404, "unknown_segment", `no segment ${id} in version ${state.version}`);
};

/** nm point -> voxel; 400 outside the volume. */
export function voxelOf(point: Vec3, shape: Vec3, voxelNm: Vec3, what: string): Vec3 {
  const v = [0, 1, 2].map((d) => Math.floor(point[d] / voxelNm[d])) as Vec3;
  if (v.some((c, d) => !(c >= 0 && c < shape[d]))) {
    throw new ApiError(400, "outside_volume", `${what} [${point.join(", ")}] nm lies outside the volume (0..${shape.map((s, d) => s * voxelNm[d]).join(" x ")} nm)`);
  }
  return v;
}

/** Seeds to voxel seeds with group indices in order of first appearance (so replay numbers them the same). */
export function splitSeeds(state: Pick<PlanState, "labels" | "shape" | "voxelNm">, segment: number, seeds: { point: Vec3; group: string | number }[]): VoxelSeed[] {
  const groups = new Map<string, number>();
  const taken = new Map<number, number>();
  const [nx, ny] = state.shape;
  const out = seeds.map((s, k) => {
    const voxel = voxelOf(s.point, state.shape, state.voxelNm, `seed ${k}`);
    const index = voxel[0] + nx * (voxel[1] + ny * voxel[2]);
    const found = state.labels[index];
    if (found !== segment) throw new ApiError(400, "seed_outside_segment", `seed ${k} at [${s.point.join(", ")}] nm is in ${found === 0 ? "background" : `segment ${found}`}, not in segment ${segment}`);
    const key = String(s.group);
    const group = groups.get(key) ?? groups.size;
    groups.set(key, group);
    if ((taken.get(index) ?? group) !== group) throw new ApiError(400, "seed_clash", `seed ${k} lies in the same voxel as a seed of another group`);
    taken.set(index, group);
    return { voxel, group };
  });
  if (groups.size < 2) throw new ApiError(400, "one_group", "a split needs seeds in at least two groups");
  return out;
}

export async function planEdit(state: PlanState, req: EditRequest): Promise<Plan> {
  if (!Number.isSafeInteger(req.base) || req.base < 0 || req.base > state.version) {
    throw new ApiError(400, "bad_version", `base version ${req.base} does not exist; the current version is ${state.version}`);
  }
  switch (req.kind) {
    case "merge": {
      const [a, b] = req.segments;
      if (a === b) throw new ApiError(400, "same_segment", `cannot merge segment ${a} with itself`);
      conflict(state, [a, b], req.base);
      mustExist(state, [a, b]);
      const [ca, cb] = [state.classOf(a), state.classOf(b)];
      if (ca !== cb) throw new ApiError(400, "class_mismatch", `segment ${a} is ${ca}, segment ${b} is ${cb}: only segments of one class merge`);
      // The smaller id survives: ids of the pipeline are in raster order, so the survivor is the earlier object.
      const keep = Math.min(a, b);
      const drop = Math.max(a, b);
      const diff = mergeDiff(state.labels, state.shape, keep, drop, state.boxOf(drop), state.known);
      return { kind: "merge", params: { segments: [a, b] }, inputs: [keep, drop], outputs: [keep], diff, maxId: state.maxId };
    }
    case "split": {
      const s = req.segment;
      conflict(state, [s], req.base);
      mustExist(state, [s]);
      const seeds = splitSeeds(state, s, req.seeds);
      const groups = new Set(seeds.map((x) => x.group)).size;
      const newIds = Array.from({ length: groups }, (_, g) => state.maxId + 1 + g);
      const box = state.boxOf(s);
      // Big objects split on cells refined along the cut (ops.ts splitDiffRefined); the grid used is logged,
      // so a replay reruns exactly this split whatever the size rule says then (logs without one were full
      // resolution; logged grids of one section per cell are splits made before the refinement: splitDiffCoarse).
      const wanted = req.grid ?? splitGrid(box);
      let coarse = wanted;
      let coarseDiff: LabelDiff | undefined;
      if (wanted[2] === 1 && wanted.some((f) => f > 1)) coarseDiff = splitDiffCoarse(state.labels, state.shape, state.voxelNm, s, box, seeds, newIds, wanted);
      else if (wanted.some((f) => f > 1)) {
        // Seeds of two groups in one cell: the next finer grid (logged, so a replay needs no retry).
        for (let g: Vec3 | undefined = wanted; g && !coarseDiff; g = finerGrid(g)) {
          coarseDiff = splitDiffRefined(state.labels, state.shape, state.voxelNm, s, box, seeds, newIds, g, state.known);
          coarse = g;
        }
      }
      const diff = coarseDiff ?? splitDiff(state.labels, state.shape, state.voxelNm, s, box, seeds, newIds);
      const params = { segment: s, seeds: req.seeds.map((x) => ({ point: x.point, group: x.group })), ...(coarseDiff ? { grid: coarse } : {}) };
      return { kind: "split", params, inputs: [s], outputs: newIds, diff, maxId: state.maxId + groups };
    }
    case "undo":
    case "redo": {
      const target = state.op(req.operation);
      if (!target) throw new ApiError(404, "unknown_operation", `no operation ${req.operation}`);
      const touched = [...new Set([...target.inputs, ...target.outputs])];
      conflict(state, touched, req.base);
      // Redo needs an undo to redo. Beyond that, undo/redo apply only if every voxel the operation changed
      // still holds what they expect (checked when applied: 409 otherwise), so undoing a later operation
      // first makes an earlier one undoable again.
      if (req.kind === "redo" && !state.lastUndoOf(target.id)) throw new ApiError(409, "not_undone", `operation ${target.id} has not been undone`);
      const runs = await state.diffOf(target);
      const swapped = runs.slice();
      for (let k = 0; k < swapped.length; k += 4) [swapped[k + 2], swapped[k + 3]] = [runs[k + 3], runs[k + 2]];
      const forward = req.kind === "redo";
      const diff = { runs: forward ? runs : swapped, bbox: bboxOfRuns(runs, state.shape) };
      return {
        kind: req.kind,
        params: { operation: target.id },
        inputs: forward ? target.inputs : target.outputs,
        outputs: forward ? target.outputs : target.inputs,
        diff,
        maxId: state.maxId,
      };
    }
  }
}

function bboxOfRuns(runs: Uint32Array, shape: Vec3): Box6 {
  const [nx, ny] = shape;
  const b: Box6 = [shape[0], shape[1], shape[2], 0, 0, 0];
  const at = (i: number): Vec3 => [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
  for (let k = 0; k < runs.length; k += 4) {
    const s = at(runs[k]);
    const e = at(runs[k] + runs[k + 1] - 1);
    // A run may wrap onto the next row (or plane): then it covers whole rows (planes) between.
    const lo: Vec3 = [s[2] !== e[2] || s[1] !== e[1] ? 0 : s[0], s[2] !== e[2] ? 0 : s[1], s[2]];
    const hi: Vec3 = [s[2] !== e[2] || s[1] !== e[1] ? nx : e[0] + 1, s[2] !== e[2] ? ny : e[1] + 1, e[2] + 1];
    for (let d = 0; d < 3; d++) {
      b[d] = Math.min(b[d], lo[d]);
      b[d + 3] = Math.max(b[d + 3], hi[d]);
    }
  }
  return runs.length === 0 ? [0, 0, 0, 0, 0, 0] : b;
}
