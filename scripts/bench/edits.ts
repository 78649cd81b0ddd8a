/**
 * Proofreading latency, `npm run bench -- edits [RUN_DIR] [--big MVOX]`: merges, splits and undos over HTTP
 * on loopback against a copy of a run folder (default data/demo/run, the demo-size phantom), each timed
 * from the request to the new version being visible (the answer plus one changed chunk fetched from
 * /v/<n>/), and separately to its re-measurement (rows + meshes, the `measured` event). `--big N` adds a
 * synthetic folder with two slabs of N/2 Mvoxel each: merged into one N Mvoxel object, then split again
 * (measuring off there: surfaces and meshes of 10^8 voxels take minutes and run after the edit anyway),
 * with the server's CPU time per phase of each edit (plan, apply, pyramid, rows, chunks, tables, commit),
 * `--repeat N` rounds of it (default 3); `--big-only` skips the run folder.
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Vec3 } from "../../precomputed/array.js";
import { chunkKey, validateInfo, type VolumeInfo } from "../../precomputed/info.js";
import { LocalStorage } from "../../precomputed/storage.js";
import { makeInfo, readRegion, writeVolume } from "../../precomputed/volume-io.js";
import { buildApp } from "../../server/api/app.js";
import { EditDb } from "../../server/edits/db.js";
import { rowFacts } from "../../server/edits/measure.js";
import { sortedRows, writeTables } from "../../server/edits/table.js";
import { createToken } from "../../server/edits/tokens.js";
import type { InstanceRow } from "../../server/pipeline/report.js";

interface Session {
  url: string;
  token: string;
  info: VolumeInfo;
  labels: Uint32Array;
  shape: Vec3;
  rows: InstanceRow[];
  measured: Map<number, number>;
  close(): Promise<void>;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (xs: number[]) => (xs.length === 0 ? "n/a" : `p50 ${pct(xs, 50).toFixed(0)} ms, p95 ${pct(xs, 95).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (n=${xs.length})`);

/** Per-phase CPU ms of the server's edits, printed by benchBig. */
const phaseLog: string[] = [];

async function open(root: string, measure: boolean): Promise<Session> {
  const db = EditDb.at(root);
  const token = createToken(db, "bench", "editor");
  db.close();
  const onPhases = (kind: string, phases: Record<string, number>) => {
    phaseLog.push(`${kind}: ${Object.entries(phases).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ")} (CPU ms)`);
  };
  const server = buildApp({ root, edits: { measure, onPhases } }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const t0 = performance.now();
  await fetch(`${url}/api/edits/version`).then((r) => r.json());
  process.stdout.write(`  server opened the segmentation for editing in ${(performance.now() - t0).toFixed(0)} ms\n`);
  const storage = new LocalStorage(root);
  const info = validateInfo(JSON.parse(new TextDecoder().decode((await storage.get("segmentation/info")) as Uint8Array)));
  const vol = await readRegion(storage, "segmentation", info, 0, [0, 0, 0], info.scales[0].size);
  const table = (await fetch(`${url}/api/segments?limit=100000`).then((r) => r.json())) as { rows: InstanceRow[] };
  const measured = new Map<number, number>();
  const abort = new AbortController();
  void fetch(`${url}/api/events`, { signal: abort.signal })
    .then(async (res) => {
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
        for (const m of text.matchAll(/event: measured\ndata: (.*)\n\n/g)) measured.set((JSON.parse(m[1]) as { version: number }).version, performance.now());
        text = text.slice(text.lastIndexOf("\n\n") + 2);
      }
    })
    .catch(() => undefined);
  return {
    url,
    token,
    info,
    labels: vol.data as Uint32Array,
    shape: vol.shape,
    rows: table.rows,
    measured,
    async close() {
      abort.abort();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** POST, then fetch the scale-0 chunk holding `at` from the new version: the edit is then visible to a viewer. */
async function timedEdit(s: Session, route: string, body: object, at: Vec3): Promise<{ ms: number; cpuMs: number; version: number; operation: number; t0: number }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const res = await fetch(`${s.url}${route}`, { method: "POST", headers: { Authorization: `Bearer ${s.token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const out = (await res.json()) as { version: number; operation_id: number; error?: { message: string } };
  if (res.status !== 200) throw new Error(`${route} ${JSON.stringify(body).slice(0, 200)}: ${res.status} ${out.error?.message}`);
  const scale = s.info.scales[0];
  const c = scale.chunk_sizes[0];
  const lo = [0, 1, 2].map((d) => Math.floor(at[d] / c[d]) * c[d]) as Vec3;
  const hi = [0, 1, 2].map((d) => Math.min(scale.size[d], lo[d] + c[d])) as Vec3;
  const chunk = await fetch(`${s.url}/v/${out.version}/segmentation/${chunkKey(scale, lo, hi)}`);
  await chunk.arrayBuffer();
  if (chunk.status !== 200) throw new Error(`chunk of version ${out.version}: ${chunk.status}`);
  const used = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (used.user + used.system) / 1000, version: out.version, operation: out.operation_id, t0 };
}

async function waitMeasured(s: Session, version: number, t0: number): Promise<number | undefined> {
  for (let i = 0; i < 1200; i++) {
    const t = s.measured.get(version);
    if (t !== undefined) return t - t0;
    await new Promise((r) => setTimeout(r, 25));
  }
  return undefined;
}

/** Two voxels of `id` far apart along its longest axis (nm, voxel centres), and one voxel of it. */
function seedsOf(s: Session, id: number, box: number[]): { seeds: Vec3[]; at: Vec3 } {
  const [nx, ny] = s.shape;
  const vox = s.info.scales[0].resolution;
  const ext = [0, 1, 2].map((d) => (box[d + 3] - box[d]) * vox[d]);
  const axis = ext.indexOf(Math.max(...ext));
  const found: Vec3[] = [];
  for (const target of [box[axis], box[axis + 3] - 1]) {
    const lo = box.slice(0, 3);
    const hi = box.slice(3);
    lo[axis] = target;
    hi[axis] = target + 1;
    search: for (let z = lo[2]; z < hi[2]; z++)
      for (let y = lo[1]; y < hi[1]; y++)
        for (let x = lo[0]; x < hi[0]; x++)
          if (s.labels[x + nx * (y + ny * z)] === id) {
            found.push([x, y, z]);
            break search;
          }
  }
  return { seeds: found.map((v) => v.map((c, d) => (c + 0.5) * vox[d]) as Vec3), at: found[0] };
}

async function benchFolder(dir: string, opts: { merges: number; splits: number; measure: boolean }): Promise<void> {
  const s = await open(dir, opts.measure);
  const version = async () => ((await fetch(`${s.url}/api/edits/version`).then((r) => r.json())) as { version: number }).version;
  const merges: number[] = [];
  const splits: number[] = [];
  const undos: number[] = [];
  const cpu = { merge: [] as number[], split: [] as number[], undo: [] as number[] };
  const measured: number[] = [];
  const sizes: number[] = [];
  const boxOf = (r: InstanceRow) => String(r.bbox_voxels).split(" ").map(Number);
  const byClass = new Map<string, InstanceRow[]>();
  for (const r of s.rows) byClass.set(r.class, [...(byClass.get(r.class) ?? []), r]);
  const pairs = [...byClass.values()].flatMap((rs) => {
    const sorted = rs.sort((a, b) => b.voxels - a.voxels);
    return Array.from({ length: Math.floor(sorted.length / 2) }, (_, k) => [sorted[2 * k], sorted[2 * k + 1]]);
  });
  pairs.sort((p, q) => q[0].voxels + q[1].voxels - p[0].voxels - p[1].voxels);
  for (const [a, b] of pairs.slice(0, opts.merges)) {
    const keep = a.id < b.id ? a : b;
    const box = boxOf(keep);
    const m = await timedEdit(s, "/api/edits/merge", { base: await version(), segments: [a.id, b.id] }, [box[0], box[1], box[2]].map((v, d) => Math.floor((v + box[d + 3]) / 2)) as Vec3);
    merges.push(m.ms);
    cpu.merge.push(m.cpuMs);
    sizes.push(a.voxels + b.voxels);
    if (opts.measure) {
      const t = await waitMeasured(s, m.version, m.t0);
      if (t !== undefined) measured.push(t);
    }
    const list = (await fetch(`${s.url}/api/edits?since=${m.version - 1}`).then((r) => r.json())) as { operations: { operation_id: number }[] };
    const u = await timedEdit(s, "/api/edits/undo", { base: m.version, operation_id: list.operations[0].operation_id }, [box[0], box[1], box[2]] as Vec3);
    undos.push(u.ms);
    cpu.undo.push(u.cpuMs);
    if (opts.measure) await waitMeasured(s, u.version, u.t0);
  }
  const largest = [...s.rows].sort((a, b) => b.voxels - a.voxels).slice(0, opts.splits);
  for (const r of largest) {
    const { seeds, at } = seedsOf(s, r.id, boxOf(r));
    if (seeds.length < 2) continue;
    const m = await timedEdit(s, "/api/edits/split", { base: await version(), segment: r.id, seeds: [{ point: seeds[0], group: 1 }, { point: seeds[1], group: 2 }] }, at);
    splits.push(m.ms);
    cpu.split.push(m.cpuMs);
    sizes.push(r.voxels);
    if (opts.measure) {
      const t = await waitMeasured(s, m.version, m.t0);
      if (t !== undefined) measured.push(t);
    }
    const list = (await fetch(`${s.url}/api/edits?since=${m.version - 1}`).then((r2) => r2.json())) as { operations: { operation_id: number }[] };
    const u = await timedEdit(s, "/api/edits/undo", { base: m.version, operation_id: list.operations[0].operation_id }, at);
    undos.push(u.ms);
    cpu.undo.push(u.cpuMs);
    if (opts.measure) await waitMeasured(s, u.version, u.t0);
  }
  await s.close();
  process.stdout.write(
    `  wall time, request -> new version visible:\n    merge ${fmt(merges)}\n    split ${fmt(splits)}\n    undo  ${fmt(undos)}\n` +
      `  CPU time of the same (server and client share this process; the edit path is single-threaded, so this is\n  its latency on an otherwise idle machine):\n    merge ${fmt(cpu.merge)}\n    split ${fmt(cpu.split)}\n    undo  ${fmt(cpu.undo)}\n` +
      (opts.measure ? `  re-measured (rows + meshes of the edited segments, from the request): ${fmt(measured)}\n` : "") +
      `  largest object edited: ${(Math.max(...sizes) / 1e6).toFixed(2)} Mvoxel\n`,
  );
}

/**
 * Merge the two slabs, split them again, undo both: `repeat` times over (each round ends where it began), so the
 * latencies come with their spread (one round on a shared VM says little: the same edit took 0.7-1.5 s).
 */
async function benchBig(dir: string, repeat: number): Promise<void> {
  const s = await open(dir, false);
  phaseLog.length = 0;
  const [a, b] = s.rows;
  const at = (r: InstanceRow): Vec3 => {
    const box = String(r.bbox_voxels).split(" ").map(Number);
    return [0, 1, 2].map((d) => Math.floor((box[d] + box[d + 3]) / 2)) as Vec3;
  };
  const vox = s.info.scales[0].resolution;
  const nm = (v: Vec3) => v.map((c, d) => (c + 0.5) * vox[d]) as Vec3;
  const times: Record<"merge" | "split" | "undo split" | "undo merge", { ms: number; cpuMs: number }[]> = { merge: [], split: [], "undo split": [], "undo merge": [] };
  let version = 0;
  for (let round = 0; round < repeat; round++) {
    const m = await timedEdit(s, "/api/edits/merge", { base: version, segments: [a.id, b.id] }, at(a));
    const sp = await timedEdit(s, "/api/edits/split", { base: m.version, segment: Math.min(a.id, b.id), seeds: [{ point: nm(at(a)), group: 1 }, { point: nm(at(b)), group: 2 }] }, at(b));
    const u1 = await timedEdit(s, "/api/edits/undo", { base: sp.version, operation_id: sp.operation }, at(a));
    const u2 = await timedEdit(s, "/api/edits/undo", { base: u1.version, operation_id: m.operation }, at(a));
    version = u2.version;
    times.merge.push(m);
    times.split.push(sp);
    times["undo split"].push(u1);
    times["undo merge"].push(u2);
  }
  await s.close();
  const mv = ((a.voxels + b.voxels) / 1e6).toFixed(1);
  const line = (xs: { ms: number; cpuMs: number }[]) => `${xs.map((x) => x.ms.toFixed(0)).join(" / ")} ms (CPU ${xs.map((x) => x.cpuMs.toFixed(0)).join(" / ")})`;
  process.stdout.write(
    `  ${mv} Mvoxel object, ${repeat} round${repeat > 1 ? "s" : ""}, visible after:\n` +
      Object.entries(times).map(([k, xs]) => `    ${k.padEnd(10)} ${line(xs)}; median ${pct(xs.map((x) => x.ms), 50).toFixed(0)} ms\n`).join("") +
      phaseLog.map((l) => `    ${l}\n`).join(""),
  );
}

/** Two slabs of one class side by side (separate objects), N Mvoxel together, as a minimal editable folder. */
async function bigFolder(mvox: number): Promise<string> {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), "vemscope-bench-edits-big-")), "run");
  const nz = 100;
  const side = Math.ceil(Math.sqrt((mvox * 1e6) / nz) / 16) * 16 + 32;
  const shape: Vec3 = [side, side, nz];
  const voxelNm: Vec3 = [5, 5, 45];
  const labels = new Uint32Array(side * side * nz);
  const half = side >> 1;
  for (let z = 0; z < nz; z++)
    for (let y = 16; y < side - 16; y++) {
      const row = side * (y + side * z);
      labels.fill(1, row + 16, row + half - 1);
      labels.fill(2, row + half + 1, row + side - 16);
    }
  const storage = new LocalStorage(dir);
  const info = makeInfo({ type: "segmentation", dataType: "uint32", size: shape, resolution: voxelNm, chunkSize: [128, 128, 16], encoding: "compressed_segmentation", mesh: "mesh", segmentProperties: "segment_properties" });
  await writeVolume(storage, "segmentation", info, { data: labels, shape }, { gzip: true });
  const rows = rowFacts(labels, shape, voxelNm, new Map([[1, "mito"], [2, "mito"]]), [0, 0, 0, side, side, nz]);
  await writeTables(storage, new Map(sortedRows(rows).map((r) => [r.id, r])));
  return dir;
}

export async function main(args: string[]): Promise<void> {
  const bigAt = args.indexOf("--big");
  const big = bigAt >= 0 ? Number(args[bigAt + 1] ?? 100) : undefined;
  const repeatAt = args.indexOf("--repeat");
  const repeat = repeatAt >= 0 ? Number(args[repeatAt + 1]) : 3;
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: expected a positive integer, got ${args[repeatAt + 1]}`);
  const positional = args.filter((a, i) => !a.startsWith("--") && (bigAt < 0 || i !== bigAt + 1) && (repeatAt < 0 || i !== repeatAt + 1));
  const src = path.resolve(positional[0] ?? "data/demo/run");
  if (big !== undefined && args.includes("--big-only")) {
    // The synthetic object alone (the demo folder's 20 edits with re-measurement take a minute or more).
    process.stdout.write(`synthetic ${big} Mvoxel object (two slabs merged, then split), measuring off:\n`);
    const dir = await bigFolder(big);
    try {
      await benchBig(dir, repeat);
    } finally {
      rmSync(path.dirname(dir), { recursive: true, force: true });
    }
    return;
  }
  if (!existsSync(path.join(src, "segmentation", "info"))) throw new Error(`${src} has no segmentation/info: run 'npm start' (or vemscope run) first, or pass a run folder`);
  const work = mkdtempSync(path.join(tmpdir(), "vemscope-bench-edits-"));
  try {
    const copy = path.join(work, "run");
    // Never edit the source folder: the bench works on a copy without its edit history.
    cpSync(src, copy, { recursive: true, filter: (p) => !p.split(path.sep).includes(".vemscope") });
    process.stdout.write(`edits on ${src} (copy), 2 cores shared with other jobs:\n`);
    await benchFolder(copy, { merges: 10, splits: 10, measure: true });
    if (big !== undefined) {
      process.stdout.write(`synthetic ${big} Mvoxel object (two slabs merged, then split), measuring off:\n`);
      const dir = await bigFolder(big);
      await benchBig(dir, repeat);
      rmSync(path.dirname(dir), { recursive: true, force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
