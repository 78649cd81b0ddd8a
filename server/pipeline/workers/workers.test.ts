/**
 * Work on other threads must not change a single number: analyseClasses with and without its helper thread,
 * the segmentation layer with and without the mesh pool, and the report's figures rendered on the pool or
 * here, on the same small cell.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Vec3, Volume } from "../../../precomputed/array.js";
import type { PutOptions, Storage } from "../../../precomputed/storage.js";
import { analyseClasses } from "../analyse.js";
import { startSegmentMeshes, writeSegmentationLayer } from "../layers.js";
import { segmentMeshObjects, type MeshJob } from "../mesh-job.js";
import { silentProgress } from "../progress.js";
import { startFigures, writeReport } from "../report.js";
import { KernelPool } from "./pool.js";

const SHAPE: Vec3 = [96, 80, 12];
const VOXEL: Vec3 = [5, 5, 45];

/** ER sheet (class 1) with a few spheres and a capsule of other classes at different gaps from it. */
function cell(): Volume<Uint8Array> {
  const [nx, ny, nz] = SHAPE;
  const data = new Uint8Array(nx * ny * nz);
  const set = (x: number, y: number, z: number, c: number): void => void (data[x + nx * (y + ny * z)] = c);
  for (let z = 0; z < nz; z++) for (let x = 0; x < nx; x++) for (let y = 38; y < 41; y++) set(x, y, z, 1);
  const balls: [number, number, number, number, number][] = [
    [20, 20, 6, 12, 2],
    [60, 22, 5, 9, 3],
    [30, 60, 6, 14, 4],
    [75, 62, 7, 8, 5],
  ];
  for (const [cx, cy, cz, r, c] of balls) {
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) if ((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 9) ** 2 <= r * r) set(x, y, z, c);
  }
  for (let z = 4; z < 8; z++) for (let y = 47; y < 53; y++) for (let x = 50; x < 90; x++) set(x, y, z, 2);
  return { data, shape: SHAPE };
}

class RecordingStorage implements Storage {
  readonly objects = new Map<string, Uint8Array>();
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.objects.get(key);
  }
  async put(key: string, data: Uint8Array | string, _options?: PutOptions): Promise<void> {
    this.objects.set(key, typeof data === "string" ? new TextEncoder().encode(data) : data);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

const saved = process.env.VEMSCOPE_WORKERS;
afterEach(() => {
  if (saved === undefined) delete process.env.VEMSCOPE_WORKERS;
  else process.env.VEMSCOPE_WORKERS = saved;
});

describe("threads change no result", () => {
  it("analyseClasses: helper thread on and off give identical rows and contacts", () => {
    const classes = cell();
    const on = analyseClasses(classes, VOXEL, { helperThread: true });
    const off = analyseClasses(classes, VOXEL, { helperThread: false });
    expect(on.rows.length).toBeGreaterThan(4);
    expect(on.rows.some((r) => typeof r.length_nm === "number")).toBe(true);
    expect(on.rows).toEqual(off.rows);
    expect(on.contacts.sites).toEqual(off.contacts.sites);
  }, 60_000);

  it("segmentation layer: mesh pool and in-process meshing write the same objects", async () => {
    const classes = cell();
    const a = analyseClasses(classes, VOXEL, { helperThread: false });
    const write = async (workers: string): Promise<Map<string, Uint8Array>> => {
      process.env.VEMSCOPE_WORKERS = workers;
      const storage = new RecordingStorage();
      await writeSegmentationLayer(storage, "seg", a.components, a.rows, SHAPE, VOXEL, silentProgress);
      return storage.objects;
    };
    const pooled = await write("2");
    const local = await write("0");
    expect([...pooled.keys()].sort()).toEqual([...local.keys()].sort());
    expect([...pooled.keys()].filter((k) => k.startsWith("seg/mesh/") && k.endsWith(".index")).length).toBe(a.rows.length);
    for (const [k, v] of local) expect(Buffer.from(pooled.get(k) ?? new Uint8Array(0)).equals(Buffer.from(v)), k).toBe(true);
    // Meshes started before the writer (as run.ts does, before the ER contacts) write the same objects.
    process.env.VEMSCOPE_WORKERS = "1";
    const early = new RecordingStorage();
    const meshes = startSegmentMeshes(a.components, a.stats, SHAPE, VOXEL, "seg/mesh");
    await writeSegmentationLayer(early, "seg", a.components, a.rows, SHAPE, VOXEL, silentProgress, { stats: a.stats, meshes });
    expect([...early.objects.keys()].sort()).toEqual([...local.keys()].sort());
    for (const [k, v] of local) expect(Buffer.from(early.objects.get(k) ?? new Uint8Array(0)).equals(Buffer.from(v)), k).toBe(true);
    // Meshes started for another layer are refused, not written under the wrong prefix.
    const other = startSegmentMeshes(a.components, a.stats, SHAPE, VOXEL, "other/mesh");
    await expect(writeSegmentationLayer(new RecordingStorage(), "seg", a.components, a.rows, SHAPE, VOXEL, silentProgress, { meshes: other })).rejects.toThrow(/other\/mesh/);
  }, 120_000);

  it("report: figures rendered on the pool (started early) and on this thread write the same files", async () => {
    const classes = cell();
    const a = analyseClasses(classes, VOXEL, { helperThread: false });
    const write = async (workers: string): Promise<Map<string, Uint8Array>> => {
      process.env.VEMSCOPE_WORKERS = workers;
      const storage = new RecordingStorage();
      const figures = startFigures(a.rows, 30);
      await writeReport(storage, a.rows, SHAPE, VOXEL, 30, figures);
      return storage.objects;
    };
    const pooled = await write("1");
    const local = await write("0");
    expect([...pooled.keys()].filter((k) => k.endsWith(".svg")).length).toBeGreaterThan(0);
    expect([...pooled.keys()].sort()).toEqual([...local.keys()].sort());
    for (const [k, v] of local) expect(Buffer.from(pooled.get(k) ?? new Uint8Array(0)).equals(Buffer.from(v)), k).toBe(true);
  }, 120_000);
});

/** Mesh jobs for `n` small cubes side by side (ids 1..n) in one label volume. */
function cubeJobs(n: number): MeshJob[] {
  const shape: Vec3 = [10 * n, 10, 8];
  const labels = new Uint32Array(shape[0] * shape[1] * shape[2]);
  for (let id = 1; id <= n; id++) {
    for (let z = 2; z < 6; z++) for (let y = 2; y < 8; y++) for (let x = 10 * (id - 1) + 2; x < 10 * id - 2; x++) labels[x + shape[0] * (y + shape[1] * z)] = id;
  }
  return Array.from({ length: n }, (_, k) => ({ labels, shape, voxelNm: VOXEL, id: k + 1, bbox: [10 * k + 2, 2, 2, 10 * k + 8, 8, 6], meshPrefix: "m" }));
}

describe("worker pool scheduling", () => {
  it("depth 2: a worker holds two requests at once, and every answer reaches its caller", async () => {
    const pool = new KernelPool(1, { depth: 2 });
    try {
      const jobs = cubeJobs(6);
      const pooled = await Promise.all(jobs.map((j) => pool.run("mesh", j)));
      const here = await Promise.all(jobs.map((j) => segmentMeshObjects(j)));
      expect(pooled.map((o) => o.length)).toEqual(here.map((o) => o.length));
      pooled.forEach((objects, k) => objects.forEach((o, i) => expect(Buffer.from(o.data).equals(Buffer.from(here[k][i].data)), o.key).toBe(true)));
    } finally {
      await pool.close();
    }
  }, 60_000);

  it("`first` runs a request ahead of those already waiting", async () => {
    const pool = new KernelPool(1);
    try {
      const jobs = cubeJobs(4);
      const order: number[] = [];
      const runs = [pool.run("mesh", jobs[0]), pool.run("mesh", jobs[1]), pool.run("mesh", jobs[2]), pool.run("mesh", jobs[3], [], undefined, true)];
      await Promise.all(runs.map((r, k) => r.then(() => order.push(k))));
      expect(order).toEqual([0, 3, 1, 2]);
    } finally {
      await pool.close();
    }
  }, 60_000);

  it("drainHere: the worker goes on taking requests while this thread runs others", async () => {
    const pool = new KernelPool(1);
    try {
      const jobs = cubeJobs(12);
      await pool.run("mesh", jobs[0]); // the worker is up and warm
      const group = {};
      const results = jobs.map((j) => pool.run("mesh", j, [], group));
      let here = 0;
      await pool.drainHere(async (_kind, input) => {
        here++;
        // A synchronous stretch, as a mesh is: the worker's answers can only be read between jobs.
        for (const t = performance.now(); performance.now() - t < 100; );
        return segmentMeshObjects(input as MeshJob);
      }, group);
      await Promise.all(results);
      // Without reading the worker's answers between jobs, this thread ran all but the one or two handed over first.
      expect(here).toBeLessThanOrEqual(jobs.length - 4);
    } finally {
      await pool.close();
    }
  }, 60_000);
});
