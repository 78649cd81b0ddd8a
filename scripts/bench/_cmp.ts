import type { Vec3 } from "../../precomputed/array.js";
import * as A from "../../server/edits/_old_ops.js";
import * as B from "../../server/edits/ops.js";
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
let bad = 0;
for (let trial = 0; trial < 60; trial++) {
  const shape: Vec3 = [10 + Math.floor(rnd() * 30), 10 + Math.floor(rnd() * 30), 3 + Math.floor(rnd() * 12)];
  const n = shape[0] * shape[1] * shape[2];
  const labels = new Uint32Array(n);
  // random blobs of label 5 and 7
  for (let b = 0; b < 6; b++) {
    const c = shape.map((s) => Math.floor(rnd() * s));
    const r = 2 + rnd() * 6;
    const id = rnd() < 0.7 ? 5 : 7;
    for (let z = 0; z < shape[2]; z++) for (let y = 0; y < shape[1]; y++) for (let x = 0; x < shape[0]; x++)
      if ((x - c[0]) ** 2 + (y - c[1]) ** 2 + (3 * (z - c[2])) ** 2 < r * r) labels[x + shape[0] * (y + shape[1] * z)] = id;
  }
  for (let i = 0; i < n; i++) if (rnd() < 0.05) labels[i] = 5; // speckle: unreachable pieces
  const box = A.scanBox(labels, shape, new Set([5]));
  if (!box) continue;
  const vox: Vec3 = [5, 5, 45];
  const idx: number[] = [];
  for (let i = 0; i < n; i++) if (labels[i] === 5) idx.push(i);
  const k = 2 + Math.floor(rnd() * 4);
  const used = new Set<number>();
  const seeds = [];
  for (let s = 0; s < k; s++) {
    const i = idx[Math.floor(rnd() * idx.length)];
    if (used.has(i)) continue;
    used.add(i);
    seeds.push({ voxel: [i % shape[0], Math.floor(i / shape[0]) % shape[1], Math.floor(i / (shape[0] * shape[1]))] as Vec3, group: s % 3 });
  }
  const ids = [100, 101, 102];
  const a = A.splitDiff(labels, shape, vox, 5, box, seeds, ids);
  const b = B.splitDiff(labels, shape, vox, 5, box, seeds, ids);
  const same = a.runs.length === b.runs.length && a.runs.every((v, i) => v === b.runs[i]) && a.bbox.join() === b.bbox.join();
  const box7 = A.scanBox(labels, shape, new Set([7]));
  let msame = true;
  if (box7) {
    const ma = A.mergeDiff(labels, shape, 5, 7, box7);
    const mb = B.mergeDiff(labels, shape, 5, 7, box7);
    msame = ma.runs.length === mb.runs.length && ma.runs.every((v, i) => v === mb.runs[i]) && ma.bbox.join() === mb.bbox.join();
  }
  if (!same || !msame) { bad++; console.log("DIFF trial", trial, same, msame); }
}
console.log("bad", bad);
