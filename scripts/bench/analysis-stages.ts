/**
 * Per-stage CPU of `run --labels`'s in-memory work on one thread, for speed work: `npx tsx
 * scripts/bench/analysis-stages.ts LABELS.tif [ROOT] [--reps N]`, ROOT = another checkout (default this one)
 * whose kernels are timed instead. Prints CPU milliseconds per stage (process.cpuUsage, this thread only
 * running), best of N repetitions.
 */
import * as path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const repsAt = args.indexOf("--reps");
const reps = repsAt >= 0 ? Number(args.splice(repsAt, 2)[1]) : 1;
const [labelsFile, rootArg] = args;
if (labelsFile === undefined) throw new Error("usage: analysis-stages.ts LABELS.tif [ROOT] [--reps N]");
const root = path.resolve(rootArg ?? fileURLToPath(new URL("../..", import.meta.url)));
const load = async <T>(rel: string): Promise<T> => (await import(pathToFileURL(path.join(root, rel)).href)) as T;

type Vec3 = [number, number, number];
interface Components { labels: Uint32Array; classOf: Uint8Array; count: number }
interface Stats { voxels: Uint32Array | Float64Array; bbox: Uint32Array | Int32Array }

const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const best = new Map<string, number>();
function time<T>(name: string, f: () => T): T {
  const t0 = cpu();
  const r = f();
  const dt = cpu() - t0;
  best.set(name, Math.min(best.get(name) ?? Infinity, dt));
  return r;
}
async function timeAsync<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t0 = cpu();
  const r = await f();
  const dt = cpu() - t0;
  best.set(name, Math.min(best.get(name) ?? Infinity, dt));
  return r;
}

const voxelNm: Vec3 = [5, 5, 45];
const { readLabels } = await load<{ readLabels(f: string): Promise<{ data: Uint8Array; shape: Vec3 }> }>("server/pipeline/ingest.ts");
const { connectedComponents } = await load<{ connectedComponents(d: Uint8Array, s: Vec3): Components }>("server/pipeline/label.ts");
const { instanceStats } = await load<{ instanceStats(l: Uint32Array, s: Vec3, n: number): Stats }>("server/pipeline/stats.ts");
const { analyseContacts } = await load<{ analyseContacts(l: Uint32Array, c: Uint8Array, s: Vec3, v: Vec3, t: number): unknown }>("server/pipeline/contacts.ts");
const { measureSurface } = await load<{ measureSurface(l: Uint32Array, s: Vec3, v: Vec3, id: number, b: number[]): unknown }>("server/pipeline/surface.ts");
const { measureTube, feretMax } = await load<{ measureTube(m: Uint8Array, s: Vec3, v: Vec3): unknown; feretMax(m: Uint8Array, s: Vec3, v: Vec3): number }>("server/pipeline/skeleton.ts");
const { cropBox } = await load<{ cropBox(l: Uint32Array, s: Vec3, b: number[], id: number): { mask: Uint8Array; shape: Vec3 } }>("server/pipeline/stats.ts");
const { segmentMeshObjects } = await load<{ segmentMeshObjects(j: object): Promise<{ data: Uint8Array }[]> }>("server/pipeline/mesh-job.ts");

const classes = await readLabels(labelsFile);
const shape = classes.shape;
let bytes = 0;
for (let r = 0; r < reps; r++) {
  const comp = time("ccl", () => connectedComponents(classes.data, shape));
  const stats = time("stats", () => instanceStats(comp.labels, shape, comp.count));
  time("contacts", () => analyseContacts(comp.labels, comp.classOf, shape, voxelNm, 30));
  const ids: number[] = [];
  for (let id = 1; id <= comp.count; id++) if (stats.voxels[id] > 0) ids.push(id);
  const box = (id: number): number[] => Array.from(stats.bbox.subarray(6 * id, 6 * id + 6));
  time("surfaces", () => {
    for (const id of ids) if (comp.classOf[id] !== 1) measureSurface(comp.labels, shape, voxelNm, id, box(id));
  });
  const MITO = 2;
  time("tubes", () => {
    for (const id of ids) if (comp.classOf[id] === MITO) {
      const c = cropBox(comp.labels, shape, box(id), id);
      measureTube(c.mask, c.shape, voxelNm);
    }
  });
  time("feret", () => {
    for (const id of ids) if (comp.classOf[id] === MITO) {
      const c = cropBox(comp.labels, shape, box(id), id);
      feretMax(c.mask, c.shape, voxelNm);
    }
  });
  bytes = 0;
  await timeAsync("meshes", async () => {
    for (const id of ids) for (const o of await segmentMeshObjects({ labels: comp.labels, shape, voxelNm, id, bbox: box(id), meshPrefix: "m" })) bytes += o.data.length;
  });
}
console.log(`root ${root}, best of ${reps} (CPU ms):`, Object.fromEntries([...best].map(([k, v]) => [k, Math.round(v)])), "mesh bytes", bytes);
