import { mkdtempSync, mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Stream } from "node:stream";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toCsv } from "../pipeline/report.js";
import { buildApp } from "./app.js";
import { PROTOBUF_MEDIA_TYPE, decodeSegmentColumns, decodeSegmentTable, type SegmentTable } from "./proto.js";

let base: string;
let root: string;
const csvFile = () => path.join(root, "report", "morphometrics.csv");

/** A small table with every kind of cell: nulls in numbers, booleans and text, a quoted comma, ties. */
const ROWS = [
  { id: 1, class: "mito", volume_nm3: 5000, length_nm: 1500, branched: false, in_contact: true, note: "plain" },
  { id: 2, class: "ld", volume_nm3: 9000, length_nm: null, branched: null, in_contact: false, note: "a, quoted" },
  { id: 3, class: "mito", volume_nm3: 5000, length_nm: 800, branched: true, in_contact: true, note: null },
  { id: 4, class: "lyso", volume_nm3: null, length_nm: 2500, branched: false, in_contact: null, note: "x" },
  { id: 5, class: "ld", volume_nm3: 12000, length_nm: 3000, branched: false, in_contact: true, note: "y" },
  { id: 6, class: "mito", volume_nm3: 700, length_nm: 1200, branched: true, in_contact: false, note: "z" },
  { id: 7, class: "er", volume_nm3: 1e9, length_nm: null, branched: null, in_contact: null, note: null },
];

beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), "vemscope-segments-"));
  root = path.join(base, "run");
  mkdirSync(path.join(root, "report"), { recursive: true });
  writeFileSync(csvFile(), toCsv(ROWS));
  writeFileSync(path.join(root, "report", "summary.json"), JSON.stringify({ voxel_nm: [5, 5, 45], classes: { mito: { count: 3 } } }));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const get = (query: string) => request(buildApp({ root })).get(`/api/segments${query}`);
const ids = (body: SegmentTable) => body.rows.map((r) => r.id);

/** supertest leaves unknown binary types unread; this keeps the bytes. */
function binary(res: Stream, done: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on("data", (c: Buffer) => chunks.push(c));
  res.on("end", () => done(null, Buffer.concat(chunks)));
}

describe("GET /api/segments", () => {
  it("answers the whole table, typed, in id order, with nulls", async () => {
    const res = await get("");
    expect(res.status).toBe(200);
    const body = res.body as SegmentTable;
    expect(body.total).toBe(7);
    expect(body.offset).toBe(0);
    expect(body.limit).toBe(100);
    expect(body.columns).toEqual([
      { id: "id", type: "number" },
      { id: "class", type: "string" },
      { id: "volume_nm3", type: "number" },
      { id: "length_nm", type: "number" },
      { id: "branched", type: "boolean" },
      { id: "in_contact", type: "boolean" },
      { id: "note", type: "string" },
    ]);
    expect(body.rows).toEqual(ROWS);
  });

  it("sorts descending with nulls last and ties broken by ascending id", async () => {
    expect(ids((await get("?sort=-volume_nm3")).body)).toEqual([7, 5, 2, 1, 3, 6, 4]);
    expect(ids((await get("?sort=volume_nm3")).body)).toEqual([6, 1, 3, 2, 5, 7, 4]);
    expect(ids((await get("?sort=length_nm")).body)).toEqual([3, 6, 1, 4, 5, 2, 7]);
    expect(ids((await get("?sort=-length_nm")).body)).toEqual([5, 4, 1, 6, 3, 2, 7]);
    expect(ids((await get("?sort=-branched")).body)).toEqual([3, 6, 1, 4, 5, 2, 7]);
    expect(ids((await get("?sort=note")).body)).toEqual([2, 1, 4, 5, 6, 3, 7]);
    expect(ids((await get("?sort=class,-volume_nm3")).body)).toEqual([7, 5, 2, 4, 1, 3, 6]);
  });

  it("filters by class and by numeric, boolean, text and null constraints", async () => {
    expect(ids((await get("?class=mito,ld")).body)).toEqual([1, 2, 3, 5, 6]);
    const both = (await get("?class=mito,ld&where=length_nm>1000;in_contact=1")).body as SegmentTable;
    expect(ids(both)).toEqual([1, 5]);
    expect(both.total).toBe(2);
    expect(ids((await get("?where=length_nm>=1500;length_nm<3000")).body)).toEqual([1, 4]);
    expect(ids((await get("?where=volume_nm3=5000")).body)).toEqual([1, 3]);
    expect(ids((await get("?where=volume_nm3!=5000")).body)).toEqual([2, 5, 6, 7]);
    expect(ids((await get("?where=in_contact=false")).body)).toEqual([2, 6]);
    expect(ids((await get("?where=in_contact!=true")).body)).toEqual([2, 6]);
    expect(ids((await get("?where=length_nm=null")).body)).toEqual([2, 7]);
    expect(ids((await get("?where=branched!=null;note=z")).body)).toEqual([6]);
    expect(ids((await get(`?where=${encodeURIComponent("volume_nm3 > 1e+4;")}`)).body)).toEqual([5, 7]);
    expect(ids((await get("?class=nucleus")).body)).toEqual([]);
  });

  it("pages after filtering and sorting; total counts every match", async () => {
    const res = await get("?sort=-volume_nm3&offset=2&limit=3");
    expect(ids(res.body)).toEqual([2, 1, 3]);
    expect(res.body.total).toBe(7);
    expect((await get("?offset=50")).body.rows).toEqual([]);
    const none = await get("?limit=0");
    expect(none.body.rows).toEqual([]);
    expect(none.body.total).toBe(7);
    expect((await get("?limit=100000")).status).toBe(200);
  });

  it("answers bad parameters with 400 and a code; an unknown column is named", async () => {
    for (const [query, code] of [
      ["?limit=abc", "bad_query"],
      ["?limit=100001", "bad_query"],
      ["?offset=-1", "bad_query"],
      ["?limit=1&limit=2", "bad_query"],
      ["?sortby=id", "bad_query"],
      ["?sort=", "bad_query"],
      ["?sort=-", "bad_query"],
      ["?class=mito,", "bad_query"],
      ["?where=length_nm>abc", "bad_query"],
      ["?where=length_nm>>3", "bad_query"],
      ["?where=class>3", "bad_query"],
      ["?where=in_contact=maybe", "bad_query"],
      ["?where=in_contact>0", "bad_query"],
      ["?where=length_nm>null", "bad_query"],
      ["?where=justaword", "bad_query"],
    ] as const) {
      const res = await get(query);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code, query).toBe(code);
    }
    for (const [query, name] of [
      ["?sort=-nope", "nope"],
      ["?where=girth_nm>3", "girth_nm"],
      ["?sort=id,Volume_nm3", "Volume_nm3"],
    ] as const) {
      const res = await get(query);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe("unknown_column");
      expect(res.body.error.message).toContain(`"${name}"`);
    }
  });

  it("is read-only", async () => {
    const res = await request(buildApp({ root })).post("/api/segments").send({});
    expect(res.status).toBe(405);
    expect(res.body.error.code).toBe("method_not_allowed");
  });

  it("re-reads the CSV when it changes, not before", async () => {
    const other = path.join(base, "changing");
    mkdirSync(path.join(other, "report"), { recursive: true });
    const file = path.join(other, "report", "morphometrics.csv");
    writeFileSync(file, "id,class\n1,mito\n");
    const app = buildApp({ root: other });
    expect((await request(app).get("/api/segments")).body.total).toBe(1);
    writeFileSync(file, "id,class\n1,mito\n2,ld\n3,er\n");
    const later = new Date(Date.now() + 5000);
    utimesSync(file, later, later);
    const res = await request(app).get("/api/segments");
    expect(res.body.total).toBe(3);
    expect(res.body.rows[2]).toEqual({ id: 3, class: "er" });
  });

  it("404 JSON when the run has no table; 500 bad_dataset for a table without ids", async () => {
    const empty = path.join(base, "empty");
    mkdirSync(path.join(empty, "report"), { recursive: true });
    const app = buildApp({ root: empty });
    const res = await request(app).get("/api/segments");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    writeFileSync(path.join(empty, "report", "morphometrics.csv"), "class,x\nmito,1\n");
    const bad = await request(app).get("/api/segments");
    expect(bad.status).toBe(500);
    expect(bad.body.error.code).toBe("bad_dataset");
  });

  it("answers protobuf for Accept: application/x-protobuf, equal to the JSON answer and smaller, for 10,000 rows", async () => {
    const big = path.join(base, "big");
    mkdirSync(path.join(big, "report"), { recursive: true });
    const classes = ["mito", "ld", "lyso", "perox", "er"];
    const rows = Array.from({ length: 10_000 }, (_, i) => ({
      id: i + 1,
      class: classes[i % classes.length],
      voxels: 100 + ((i * 7919) % 5000),
      volume_nm3: i % 97 === 0 ? null : ((i * 7919) % 100_000) * 1125.5,
      sphericity: i % 13 === 0 ? null : ((i * 31) % 1000) / 1000,
      length_nm: i % 5 === 0 ? ((i * 17) % 5000) + 0.25 : null,
      branched: i % 7 === 0 ? null : i % 3 === 0,
      in_contact: i % 2 === 0,
      bbox_voxels: `${i} ${i + 1} 0 ${i + 9} ${i + 10} 4`,
    }));
    writeFileSync(path.join(big, "report", "morphometrics.csv"), toCsv(rows));
    const app = buildApp({ root: big });
    const query = "/api/segments?limit=100000&sort=-volume_nm3&where=voxels>=100";
    const json = await request(app).get(query).set("Accept", "application/json");
    expect(json.status).toBe(200);
    expect(json.body.rows).toHaveLength(10_000);
    const proto = await request(app).get(query).set("Accept", PROTOBUF_MEDIA_TYPE).buffer(true).parse(binary);
    expect(proto.status).toBe(200);
    expect(proto.headers["content-type"]).toMatch(/application\/x-protobuf/);
    expect(proto.headers.vary).toMatch(/Accept/);
    const bytes = new Uint8Array(proto.body as Buffer);
    expect(decodeSegmentTable(bytes)).toEqual(json.body);
    expect(bytes.length).toBeLessThan(json.text.length / 2);
    const columns = decodeSegmentColumns(bytes);
    expect(columns.ids).toHaveLength(10_000);
    const volume = columns.columns.find((c) => c.id === "volume_nm3");
    expect(volume?.values).toBeInstanceOf(Float64Array);
  });

  it("fuzz: 200 random malformed query strings get 4xx, never 5xx", async () => {
    const app = buildApp({ root });
    let seed = 424242;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const keys = ["offset", "limit", "sort", "class", "where", "wher", "", "limit[]", "sort[a]", "__proto__", "constructor", "%zz"];
    const values = [
      "-1", "1e3", "0x10", "999999999999", "abc", "", "-", ",", ",,", "-nope", "length_nm>", ">3", "length_nm>>1",
      "in_contact=2", "class<mito", "a;b;c", "%", "%00", "%ff%fe", "length_nm>NaN", "length_nm>Infinity", "volume_nm3<1e999",
      "note>a", "toString", "constructor", "__proto__", "id,,id", "id>1;;;x", "branched>=true", "=", "!=", "null", "id=null;id>null",
    ];
    let clientErrors = 0;
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(rand() * 3);
      const parts = Array.from({ length: n }, () => `${pick(keys)}=${pick(values)}`);
      const q = parts.join(rand() < 0.9 ? "&" : ";");
      const res = await request(app).get(`/api/segments?${q}`);
      expect(res.status, q).toBeLessThan(500);
      if (res.status >= 400) {
        clientErrors++;
        expect(typeof res.body.error.code, q).toBe("string");
      }
    }
    // A few picks are valid by chance (`class=` any name matches nothing, an empty `where`); the rest are refused.
    expect(clientErrors).toBeGreaterThan(180);
  });
});

describe("GET /api/summary", () => {
  it("answers report/summary.json, or 404 JSON without one", async () => {
    const res = await request(buildApp({ root })).get("/api/summary");
    expect(res.status).toBe(200);
    expect(res.body.voxel_nm).toEqual([5, 5, 45]);
    const empty = path.join(base, "nosummary");
    mkdirSync(empty, { recursive: true });
    const missing = await request(buildApp({ root: empty })).get("/api/summary");
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("not_found");
  });
});
