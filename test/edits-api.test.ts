/**
 * Proofreading end to end through buildApp on a small phantom run: merge, split, undo, redo as versions;
 * every version readable at /v/<n>/, /precomputed/ = latest; the log replays to the served labels; 409 on
 * stale bases, 4xx on bad input with nothing changed; re-measured rows, meshes, reviews, tokens.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { downsampleMode } from "../precomputed/multiscale.js";
import { LocalStorage } from "../precomputed/storage.js";
import { buildApp } from "../server/api/app.js";
import { EditDb } from "../server/edits/db.js";
import { parseBox } from "../server/edits/ops.js";
import { replayLog } from "../server/edits/replay.js";
import { rowsFromCsv, sortedRows } from "../server/edits/table.js";
import { figureIndexHtml, renderFigureJob } from "../server/pipeline/figures-job.js";
import { cachedSynthRun, copyRun } from "../server/edits/test-fixture.js";
import { httpStorage, readSegmentation } from "../server/edits/test-http.js";
import { createToken } from "../server/edits/tokens.js";

let root: string;
let app: ReturnType<typeof buildApp>;
let editor: string;
let viewer: string;
let original: { labels: Uint32Array; shape: Vec3 };
const VOXEL: Vec3 = [5, 5, 45];
const rowsAtStart = () => rowsFromCsv(readFileSync(path.join(root, "report/morphometrics.csv"), "utf8"));

beforeAll(async () => {
  root = copyRun(await cachedSynthRun());
  const db = EditDb.at(root);
  editor = createToken(db, "alice", "editor");
  viewer = createToken(db, "bob", "viewer");
  db.close();
  original = await readSegmentation(new LocalStorage(root));
  app = buildApp({ root });
});

const post = (route: string, body: unknown, token = editor) => request(app).post(route).set("Authorization", `Bearer ${token}`).send(body as object);
const version = async () => (await request(app).get("/api/edits/version")).body as { version: number; measured_version: number; max_id: number };
const labelsAt = async (prefix: string) => (await readSegmentation(httpStorage(app, prefix))).labels;
/** vitest's deep equality walks typed arrays element by element (seconds per volume); bytes compare at once. */
const same = (x: Uint32Array, y: Uint32Array) => x.length === y.length && Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) === 0;
const count = (labels: Uint32Array, id: number) => labels.reduce((n, v) => n + (v === id ? 1 : 0), 0);

async function waitMeasured(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const v = await version();
    if (v.measured_version === v.version) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("measurement did not finish");
}

/** Two voxels of a segment far apart along its longest box axis, as nm points (voxel centres). */
function farSeeds(labels: Uint32Array, shape: Vec3, id: number): Vec3[] {
  const [nx, ny] = shape;
  const pts: Vec3[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === id) pts.push([i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))]);
  const span = (d: number) => pts.reduce((m, p) => Math.max(m, p[d]), 0) - pts.reduce((m, p) => Math.min(m, p[d]), Infinity);
  const axis = [0, 1, 2].reduce((best, k) => (span(k) * VOXEL[k] > span(best) * VOXEL[best] ? k : best), 0);
  pts.sort((p, q) => p[axis] - q[axis]);
  return [pts[0], pts[pts.length - 1]].map((p) => p.map((c, d) => (c + 0.5) * VOXEL[d]) as Vec3);
}

describe("edits: merge, split, undo, redo as versions", () => {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  let big = 0;
  let splitOp = 0;

  it("picks segments", () => {
    const rows = [...rowsAtStart().values()].filter((r) => r.class !== "er");
    const byClass = new Map<string, number[]>();
    for (const r of rows) byClass.set(r.class, [...(byClass.get(r.class) ?? []), r.id]);
    const pairs = [...byClass.values()].filter((ids) => ids.length >= 2);
    expect(pairs.length).toBeGreaterThanOrEqual(1);
    const flat = pairs.flatMap((ids) => ids.slice(0, 2 * Math.floor(ids.length / 2)));
    expect(flat.length).toBeGreaterThanOrEqual(4);
    [a, b, c, d] = flat;
    big = rows.filter((r) => r.class === "mito" && ![a, b, c, d].includes(r.id)).sort((x, y) => y.voxels - x.voxels)[0]?.id ?? 0;
    expect(big).toBeGreaterThan(0);
  });

  it("refuses edits without an editor token, nothing changed", async () => {
    expect((await request(app).post("/api/edits/merge").send({ base: 0, segments: [a, b] })).status).toBe(401);
    expect((await post("/api/edits/merge", { base: 0, segments: [a, b] }, "vst_nope")).status).toBe(401);
    expect((await post("/api/edits/merge", { base: 0, segments: [a, b] }, viewer)).status).toBe(403);
    expect((await request(app).post("/api/edits/merge").set("Authorization", "Basic x").send({})).status).toBe(401);
    expect((await version()).version).toBe(0);
  });

  it("merges: the smaller id survives, the new version is served, the old one stays readable", async () => {
    const res = await post("/api/edits/merge", { base: 0, segments: [b, a] });
    expect(res.status).toBe(200);
    const keep = Math.min(a, b);
    const drop = Math.max(a, b);
    expect(res.body).toMatchObject({ version: 1, kind: "merge", user: "alice", base: 0, new_root_ids: [keep] });
    const v1 = await labelsAt("/v/1/");
    const latest = await labelsAt("/precomputed/");
    expect(same(latest, v1)).toBe(true);
    expect(count(v1, drop)).toBe(0);
    expect(count(v1, keep)).toBe(count(original.labels, a) + count(original.labels, b));
    expect(same(await labelsAt("/v/0/"), original.labels)).toBe(true);
    expect((await request(app).get(`/precomputed/segmentation/mesh/${drop}.index`)).status).toBe(404);
    expect((await request(app).get(`/v/0/segmentation/mesh/${drop}.index`)).status).toBe(200);
    const table = await request(app).get("/api/segments?limit=100000");
    expect(table.body.version).toBe(1);
    const ids = (table.body.rows as { id: number; voxels: number }[]).map((r) => r.id);
    expect(ids).not.toContain(drop);
  });

  it("answers 409 for a stale base touching changed segments, and applies a non-overlapping one", async () => {
    const stale = await post("/api/edits/merge", { base: 0, segments: [a, c] });
    expect(stale.status).toBe(409);
    expect(stale.body.error.message).toContain("current version is 1");
    const ok = await post("/api/edits/merge", { base: 0, segments: [c, d] });
    expect(ok.status).toBe(200);
    expect(ok.body.version).toBe(2);
  });

  it("rejects bad input with clear 4xx and changes nothing", async () => {
    const before = await labelsAt("/precomputed/");
    const cases: [string, unknown, number][] = [
      ["/api/edits/merge", { base: 2, segments: [big, 4_000_000] }, 404],
      ["/api/edits/merge", { base: 2, segments: [big, big] }, 400],
      ["/api/edits/merge", { base: 9, segments: [a, c] }, 400],
      ["/api/edits/merge", { base: 2, segments: [a] }, 400],
      ["/api/edits/merge", { base: 2, segments: [a, c], extra: 1 }, 400],
      ["/api/edits/split", { base: 2, segment: big, seeds: [{ point: [-5, 10, 10], group: 1 }, { point: [10, 10, 10], group: 2 }] }, 400],
      ["/api/edits/split", { base: 2, segment: big, seeds: [{ point: [1e9, 10, 10], group: 1 }, { point: [10, 10, 10], group: 2 }] }, 400],
      ["/api/edits/split", { base: 2, segment: 4_000_000, seeds: [{ point: [10, 10, 10], group: 1 }, { point: [10, 10, 10], group: 2 }] }, 404],
      ["/api/edits/undo", { base: 2, operation_id: 999 }, 404],
      ["/api/edits/redo", { base: 2, operation_id: 1 }, 409],
    ];
    for (const [route, body, status] of cases) {
      const res = await post(route, body);
      expect([route, JSON.stringify(body), res.status]).toEqual([route, JSON.stringify(body), status]);
      expect(res.body.error.code).toEqual(expect.any(String));
    }
    const seeds = farSeeds(original.labels, original.shape, big);
    const sameGroup = await post("/api/edits/split", { base: 2, segment: big, seeds: seeds.map((p) => ({ point: p, group: "x" })) });
    expect(sameGroup.status).toBe(400);
    const wrongSegment = await post("/api/edits/split", { base: 2, segment: big, seeds: [{ point: seeds[0], group: 1 }, { point: [0, 0, 0], group: 2 }] });
    expect(wrongSegment.status).toBe(400);
    const malformed = await request(app).post("/api/edits/merge").set("Authorization", `Bearer ${editor}`).set("Content-Type", "application/json").send("{nope");
    expect(malformed.status).toBe(400);
    const huge = await post("/api/edits/split", { base: 2, segment: big, seeds: Array.from({ length: 3000 }, () => ({ point: [1.123456789, 2.123456789, 3.123456789], group: "a-long-group-name" })) });
    expect(huge.status).toBe(413);
    expect((await version()).version).toBe(2);
    expect(same(await labelsAt("/precomputed/"), before)).toBe(true);
  });

  it("splits by seeded watershed into new ids above the maximum", async () => {
    const { max_id } = await version();
    const seeds = farSeeds(original.labels, original.shape, big);
    const res = await post("/api/edits/split", { base: 2, segment: big, seeds: [{ point: seeds[0], group: "left" }, { point: seeds[1], group: "right" }] });
    expect(res.status).toBe(200);
    expect(res.body.new_root_ids).toEqual([max_id + 1, max_id + 2]);
    splitOp = res.body.operation_id;
    const v3 = await labelsAt("/v/3/");
    expect(count(v3, big)).toBe(0);
    const n1 = count(v3, max_id + 1);
    const n2 = count(v3, max_id + 2);
    expect(n1).toBeGreaterThan(0);
    expect(n2).toBeGreaterThan(0);
    expect(n1 + n2).toBe(count(original.labels, big));
    // The dumbbell's two balls are equal: a cut at the neck halves it.
    expect(Math.abs(n1 - n2) / (n1 + n2)).toBeLessThan(0.2);
  });

  it("undoes and redoes: the labels return to the earlier versions exactly", async () => {
    const v2 = await labelsAt("/v/2/");
    const v3 = await labelsAt("/v/3/");
    const undo = await post("/api/edits/undo", { base: 3, operation_id: splitOp });
    expect(undo.status).toBe(200);
    expect(undo.body.new_root_ids).toEqual([big]);
    expect(same(await labelsAt("/precomputed/"), v2)).toBe(true);
    expect((await post("/api/edits/undo", { base: 4, operation_id: splitOp })).status).toBe(409);
    const redo = await post("/api/edits/redo", { base: 4, operation_id: splitOp });
    expect(redo.status).toBe(200);
    expect(same(await labelsAt("/precomputed/"), v3)).toBe(true);
    expect(same(await labelsAt("/v/4/"), v2)).toBe(true);
  });

  it("replays the log from the original to exactly the served segmentation, every scale consistent", async () => {
    const db = EditDb.at(root);
    const ops = db.ops();
    db.close();
    expect(ops.map((o) => o.kind)).toEqual(["merge", "merge", "split", "undo", "redo"]);
    const start = rowsAtStart();
    const replayed = await replayLog(original.labels, original.shape, VOXEL, ops, (id) => start.get(id)?.class);
    const served = await readSegmentation(httpStorage(app, "/precomputed/"), 0);
    expect(same(replayed, served.labels)).toBe(true);
    let prev = { data: served.labels, shape: served.shape };
    for (let s = 1; s < served.info.scales.length; s++) {
      const step = [0, 1, 2].map((k) => Math.round(served.info.scales[s].resolution[k] / served.info.scales[s - 1].resolution[k])) as Vec3;
      const expected = downsampleMode(prev, step);
      const got = await readSegmentation(httpStorage(app, "/precomputed/"), s);
      expect(same(got.labels, expected.data as Uint32Array)).toBe(true);
      prev = expected as { data: Uint32Array; shape: Vec3 };
    }
  });

  it("re-measures edited segments: rows, segment properties and meshes of the new version", async () => {
    await waitMeasured();
    const keep = Math.min(a, b);
    const table = await request(app).get("/api/segments?limit=100000");
    const rows = new Map((table.body.rows as Record<string, number | string | null>[]).map((r) => [r.id as number, r]));
    const merged = rows.get(keep);
    expect(merged?.voxels).toBe(count(original.labels, a) + count(original.labels, b));
    expect(merged?.surface_nm2).toEqual(expect.any(Number));
    expect(merged?.min_dist_er_nm === null || typeof merged?.min_dist_er_nm === "number").toBe(true);
    const start = rowsAtStart();
    // An untouched segment keeps its row; a split part has a full row of its own.
    const untouched = [...start.values()].find((r) => ![a, b, c, d, big].includes(r.id) && r.class !== "er");
    if (untouched) expect(rows.get(untouched.id)?.surface_nm2).toBeCloseTo(untouched.surface_nm2 ?? NaN, 3);
    const props = await request(app).get("/precomputed/segmentation/segment_properties/info");
    expect(props.body.inline.ids).toContain(String(keep));
    expect(props.body.inline.ids).not.toContain(String(Math.max(a, b)));
    const mesh = await request(app).get(`/precomputed/segmentation/mesh/${keep}.index`);
    const old = await request(app).get(`/v/0/segmentation/mesh/${keep}.index`);
    expect(mesh.status).toBe(200);
    expect(Buffer.compare(mesh.body as Buffer, old.body as Buffer)).not.toBe(0);
    const box = parseBox(String(merged?.bbox_voxels));
    expect(box).toBeDefined();
    // The summary follows the measured edits: its per-class counts are those of the current table.
    const summary = (await request(app).get("/api/summary")).body as { classes: Record<string, { count: number }> };
    const cls = String(merged?.class);
    expect(summary.classes[cls]?.count).toBe([...rows.values()].filter((r) => r.class === cls).length);
    expect(summary.classes[cls]?.count).toBe([...start.values()].filter((r) => r.class === cls).length - 1);
  });

  it("renders the report's figures from the edited version's rows; version 0 keeps the run's", async () => {
    await waitMeasured();
    const v = (await version()).version;
    const text = (r: request.Response) => (Buffer.isBuffer(r.body) ? r.body.toString("utf8") : r.text);
    const get = (route: string) => request(app).get(route).buffer(true).parse((res, done) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => done(null, Buffer.concat(parts)));
    });
    const rows = sortedRows(rowsFromCsv(text(await get(`/v/${v}/report/morphometrics.csv`))));
    const expected = await renderFigureJob({ rows, contactNm: 30 });
    expect(expected.length).toBeGreaterThan(0);
    const index = await get("/precomputed/report/figures/index.html");
    expect(index.status).toBe(200);
    expect(index.headers["content-type"]).toMatch(/^text\/html/);
    expect(text(index)).toBe(figureIndexHtml(expected));
    const svg = await get(`/v/${v}/report/figures/${expected[0].name}.svg`);
    expect(svg.headers["content-type"]).toMatch(/^image\/svg\+xml/);
    expect(text(svg)).toBe(expected[0].svg);
    // The merge took one segment away: the figures of the run are not those of the edited table.
    const original = await get("/v/0/report/figures/index.html");
    expect(text(original)).toBe(readFileSync(path.join(root, "report/figures/index.html"), "utf8"));
    expect(text(original)).not.toBe(text(index));
    expect((await get(`/v/${v}/report/figures/nope.svg`)).status).toBe(404);
  });

  it("tells a token's user and role to the viewer, 401 otherwise", async () => {
    expect((await request(app).get("/api/auth/me").set("Authorization", `Bearer ${editor}`)).body).toEqual({ user: "alice", role: "editor" });
    expect((await request(app).get("/api/auth/me").set("Authorization", `Bearer ${viewer}`)).body).toEqual({ user: "bob", role: "viewer" });
    expect((await request(app).get("/api/auth/me")).status).toBe(401);
    expect((await request(app).get("/api/auth/me").set("Authorization", "Bearer vst_wrong")).status).toBe(401);
  });

  it("keeps review status per segment, with user and history, in the segments table", async () => {
    const keep = Math.min(a, b);
    expect((await request(app).put(`/api/review/${keep}`).send({ status: "ok" })).status).toBe(401);
    const put = await request(app).put(`/api/review/${keep}`).set("Authorization", `Bearer ${editor}`).send({ status: "needs-fix", comment: "tail missing" });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ segment: keep, status: "needs-fix", user: "alice", comment: "tail missing" });
    expect((await request(app).put(`/api/review/${keep}`).set("Authorization", `Bearer ${editor}`).send({ status: "great" })).status).toBe(400);
    expect((await request(app).put("/api/review/4000000").set("Authorization", `Bearer ${editor}`).send({ status: "ok" })).status).toBe(404);
    const got = await request(app).get(`/api/review/${keep}`);
    expect(got.body).toMatchObject({ status: "needs-fix", history: [expect.objectContaining({ status: "needs-fix" })] });
    const list = await request(app).get("/api/review?status=needs-fix");
    expect(list.body.reviews.map((r: { segment: number }) => r.segment)).toEqual([keep]);
    const table = await request(app).get(`/api/segments?where=review_status=needs-fix`);
    expect(table.body.rows.map((r: { id: number }) => r.id)).toEqual([keep]);
  });

  it("restarts onto the last committed version", async () => {
    const again = buildApp({ root });
    const v = (await request(again).get("/api/edits/version")).body;
    expect(v.version).toBe(5);
    expect(same((await readSegmentation(httpStorage(again, "/precomputed/"))).labels, await labelsAt("/precomputed/"))).toBe(true);
  });
});

describe("edits: reads behind tokens", () => {
  let closed: ReturnType<typeof buildApp>;
  let dir: string;
  beforeAll(() => {
    dir = copyRun(root);
    closed = buildApp({ root: dir, authReads: true });
  });
  afterAll(() => undefined);

  it("needs a viewer token for data and API reads, not for health", async () => {
    expect((await request(closed).get("/api/health")).status).toBe(200);
    expect((await request(closed).get("/precomputed/segmentation/info")).status).toBe(401);
    expect((await request(closed).get("/api/segments")).status).toBe(401);
    expect((await request(closed).get("/precomputed/segmentation/info").set("Authorization", `Bearer ${viewer}`)).status).toBe(200);
    expect((await request(closed).get(`/precomputed/segmentation/info?token=${viewer}`)).status).toBe(200);
    expect((await request(closed).get("/precomputed/segmentation/info?token=vst_wrong")).status).toBe(401);
  });
});
