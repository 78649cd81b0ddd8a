import type { Vec3 } from "../../precomputed/array.js";
import type { OpRecord } from "./db.js";
import { applyDiff } from "./diff.js";
import { scanBox } from "./ops.js";
import { planEdit, type EditRequest } from "./plan.js";

/**
 * Replays a log from the original labels with nothing but the log's parameters: merges and splits are
 * recomputed, undo/redo use the diffs this replay itself produced (never the stored ones). The result must
 * equal the served segmentation voxel for voxel; the tests check it.
 */
export async function replayLog(original: Uint32Array, shape: Vec3, voxelNm: Vec3, ops: readonly OpRecord[], classOf: (id: number) => string | undefined): Promise<Uint32Array> {
  const labels = original.slice();
  const diffs = new Map<number, Uint32Array>();
  const touched = new Map<number, number>();
  const undos = new Map<number, OpRecord>();
  const classes = new Map<number, string>();
  let maxId = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > maxId) maxId = labels[i];
  const exists = (id: number) => scanBox(labels, shape, new Set([id])) !== undefined;
  const byId = new Map(ops.map((o) => [o.id, o]));
  let version = 0;
  for (const op of ops) {
    const p = op.params as { segments?: [number, number]; segment?: number; seeds?: { point: Vec3; group: string | number }[]; grid?: Vec3; operation?: number };
    const req: EditRequest =
      op.kind === "merge"
        ? { kind: "merge", base: version, segments: p.segments as [number, number] }
        : op.kind === "split"
          ? { kind: "split", base: version, segment: p.segment as number, seeds: p.seeds ?? [], grid: p.grid ?? [1, 1, 1] }
          : { kind: op.kind, base: version, operation: p.operation as number };
    const plan = await planEdit(
      {
        labels,
        shape,
        voxelNm,
        version,
        maxId,
        classOf: (id) => (exists(id) ? (classes.get(id) ?? classOf(id)) : undefined),
        boxOf: (id) => scanBox(labels, shape, new Set([id])) ?? [0, 0, 0, 0, 0, 0],
        lastTouched: (id) => touched.get(id) ?? 0,
        op: (id) => byId.get(id),
        lastUndoOf: (id) => undos.get(id),
        diffOf: async (o) => {
          const d = diffs.get(o.id);
          if (!d) throw new Error(`replay: operation ${o.id} has no diff yet`);
          return d;
        },
      },
      req,
    );
    if (!applyDiff(labels, plan.diff.runs, "forward")) throw new Error(`replay: operation ${op.id} does not apply`);
    version++;
    if (version !== op.version) throw new Error(`replay: operation ${op.id} is version ${op.version}, replay reached ${version}`);
    const cls = classes.get(plan.inputs[0]) ?? classOf(plan.inputs[0]);
    for (const id of plan.outputs) if (cls !== undefined && !classes.has(id)) classes.set(id, cls);
    diffs.set(op.id, plan.diff.runs);
    for (const id of [...plan.inputs, ...plan.outputs]) touched.set(id, version);
    if (op.kind === "undo") undos.set(p.operation as number, op);
    maxId = plan.maxId;
  }
  return labels;
}
