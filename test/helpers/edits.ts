import type { Vec3 } from "../../precomputed/array.js";
import type { Storage } from "../../precomputed/storage.js";
import type { Box6 } from "../../server/edits/ops.js";
import type { PlanState } from "../../server/edits/plan.js";

/** A Map as storage; `under` is read where this one has no key (a version over its predecessor). */
export class MapStorage implements Storage {
  readonly files = new Map<string, Uint8Array>();
  constructor(private readonly under?: Storage) {}
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.files.get(key) ?? this.under?.get(key);
  }
  async put(key: string, data: Uint8Array | string): Promise<void> {
    this.files.set(key, typeof data === "string" ? new TextEncoder().encode(data) : data);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.files.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async delete(key: string): Promise<void> {
    this.files.delete(key);
  }
}

/** Runs (start, length, old, new) relabelling every voxel where `to` gives a new label, raster order. */
export function diffOf(labels: Uint32Array, to: (i: number) => number): Uint32Array {
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const v = to(i);
    if (v === labels[i]) continue;
    const k = out.length - 4;
    if (k >= 0 && out[k] + out[k + 1] === i && out[k + 2] === labels[i] && out[k + 3] === v) out[k + 1]++;
    else out.push(i, 1, labels[i], v);
  }
  return Uint32Array.from(out);
}

/** A planner's view of version 0 of `labels` where `segment` (box `box`) is a mitochondrion, with no log. */
export function mitoState(labels: Uint32Array, shape: Vec3, voxelNm: Vec3, segment: number, box: Box6): PlanState {
  return {
    labels,
    shape,
    voxelNm,
    version: 0,
    maxId: segment,
    classOf: (id) => (id === segment ? "mito" : undefined),
    boxOf: () => box,
    lastTouched: () => 0,
    op: () => undefined,
    lastUndoOf: () => undefined,
    diffOf: async () => new Uint32Array(),
  };
}
