import { existsSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "./app.js";
import { STATE_ID, STATE_LIMIT_BYTES, newStateId } from "./states.js";

let base: string;
let root: string;
const dbFile = () => path.join(root, ".vemscope", "states.sqlite");

beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), "vemscope-states-"));
  root = path.join(base, "run");
  mkdirSync(path.join(root, "image"), { recursive: true });
  writeFileSync(path.join(root, "image", "info"), "{}");
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Deliberately odd formatting and non-ASCII: "exactly" means the bytes, not an equivalent JSON value. */
const STATE = '{ "layers" : [ {"type":"image","source":"precomputed://http://h/precomputed/image","name":"EM — ü"} ],\n  "position": [1.50, 2, 3e0] }';

async function share(app: ReturnType<typeof buildApp>, body: string) {
  return request(app).post("/api/states").set("Content-Type", "application/json").send(body);
}

describe("shared states", () => {
  it("ids are 10 base62 characters, all different", () => {
    const ids = new Set(Array.from({ length: 2000 }, newStateId));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(STATE_ID);
  });

  it("GET before any share creates nothing", async () => {
    const app = buildApp({ root });
    expect((await request(app).get("/api/states/AAAAAAAAAA")).status).toBe(404);
    expect(existsSync(path.join(root, ".vemscope"))).toBe(false);
  });

  it("POST stores the state and GET returns the exact bytes", async () => {
    const app = buildApp({ root });
    const res = await share(app, STATE);
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(STATE_ID);
    expect(res.body.url).toBe(`/s/${res.body.id}`);
    expect(res.headers.location).toBe(`/api/states/${res.body.id}`);
    const back = await request(app).get(`/api/states/${res.body.id}`).buffer(true).parse((r, done) => {
      const chunks: Buffer[] = [];
      r.on("data", (c: Buffer) => chunks.push(c));
      r.on("end", () => done(null, Buffer.concat(chunks)));
    });
    expect(back.status).toBe(200);
    expect(back.headers["content-type"]).toMatch(/application\/json/);
    expect(back.headers["cache-control"]).toMatch(/immutable/);
    expect(Buffer.isBuffer(back.body) && back.body.equals(Buffer.from(STATE, "utf8"))).toBe(true);
  });

  it("records size and creation time in SQLite with WAL", async () => {
    const app = buildApp({ root });
    const { body } = await share(app, '{"recorded":true}');
    const db = new Database(dbFile(), { readonly: true });
    try {
      const row = db.prepare<[string], { bytes: number; created_at: string }>("SELECT bytes, created_at FROM states WHERE id = ?").get(body.id);
      expect(row?.bytes).toBe(17);
      expect(Date.now() - Date.parse(row?.created_at ?? "")).toBeLessThan(60_000);
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      db.close();
    }
  });

  it("is immutable: another state gets another id, the same state its old id, and nothing updates or deletes", async () => {
    const app = buildApp({ root });
    const a = await share(app, '{"layers":[],"v":1}');
    const b = await share(app, '{"layers":[],"v":2}');
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body.id).not.toBe(a.body.id);
    const again = await share(app, '{"layers":[],"v":1}');
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(a.body.id);
    for (const method of ["put", "delete", "patch", "post"] as const) {
      const res = await request(app)[method](`/api/states/${a.body.id}`).send({ v: 3 });
      expect(res.status, method).toBe(405);
      expect(res.body.error.code).toBe("method_not_allowed");
      expect(res.headers.allow).toBe("GET, HEAD");
    }
    for (const method of ["put", "delete", "get"] as const) {
      expect((await request(app)[method]("/api/states")).status, method).toBe(405);
    }
    expect((await request(app).get(`/api/states/${a.body.id}`)).text).toBe('{"layers":[],"v":1}');
  });

  it("persists across app instances on the same database file", async () => {
    const stateDb = path.join(base, "elsewhere", "shared.sqlite");
    const first = buildApp({ root, stateDb });
    const { body } = await share(first, STATE);
    const second = buildApp({ root, stateDb });
    expect((await request(second).get(`/api/states/${body.id}`)).text).toBe(STATE);
    expect(existsSync(stateDb)).toBe(true);
  });

  it("refuses bodies over 1 MiB with 413, malformed JSON and non-objects with 400", async () => {
    const app = buildApp({ root });
    const big = JSON.stringify({ pad: "x".repeat(STATE_LIMIT_BYTES) });
    const tooLarge = await share(app, big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error.code).toBe("too_large");
    const justFits = JSON.stringify({ pad: "x".repeat(STATE_LIMIT_BYTES - 20) });
    expect((await share(app, justFits)).status).toBe(201);
    for (const [body, code] of [
      ['{"layers": [', "bad_json"],
      ["", "bad_json"],
      ["{'single': 1}", "bad_json"],
      ["[]", "not_object"],
      ["null", "not_object"],
      ['"a string"', "not_object"],
      ["42", "not_object"],
    ] as const) {
      const res = await share(app, body);
      expect(res.status, body).toBe(400);
      expect(res.body.error.code, body).toBe(code);
    }
    // superagent would JSON-encode a Buffer sent as application/json; octet-stream sends the bytes.
    const latin1 = await request(app).post("/api/states").set("Content-Type", "application/octet-stream").send(Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]));
    expect(latin1.status).toBe(400);
  });

  it("accepts the text/plain body that fetch sends for a string", async () => {
    const res = await request(buildApp({ root })).post("/api/states").set("Content-Type", "text/plain;charset=UTF-8").send('{"plain":1}');
    expect(res.status).toBe(201);
  });

  it("unknown ids are 404, malformed ids 400", async () => {
    const app = buildApp({ root });
    expect((await request(app).get("/api/states/ZZZZZZZZZZ")).status).toBe(404);
    for (const id of ["short", "ABCDEFGHIJK", "ABCDE-GHIJ", "..%2f..%2fx", "%00AAAAAAAAA"]) {
      const res = await request(app).get(`/api/states/${id}`);
      expect(res.status, id).toBe(400);
      expect(res.body.error.code).toBe("bad_state_id");
    }
  });

  it("/s/<id> redirects to the viewer with a #! URL that Neuroglancer fetches the state from", async () => {
    const app = buildApp({ root });
    const { body } = await share(app, STATE);
    const res = await request(app).get(`/s/${body.id}`).set("Host", "example.org:9000");
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(`/#!http://example.org:9000/api/states/${body.id}`);
    // What ui/url_hash_binding.js does with location.hash: a `#!` followed by scheme:// is a state URL.
    const hash = new URL(res.headers.location ?? "", "http://example.org:9000").hash;
    expect(hash).toMatch(/^#!([a-z][a-z\d+-.]*):\/\//);
    const stateUrl = new URL(hash.substring(2));
    expect((await request(app).get(stateUrl.pathname)).text).toBe(STATE);
    expect((await request(app).get("/s/ZZZZZZZZZZ")).status).toBe(404);
    expect((await request(app).get("/s/nope")).status).toBe(400);
    expect((await request(app).delete(`/s/${body.id}`)).status).toBe(405);
  });

  it("the file server never serves .vemscope/ or the state database, however named", async () => {
    const app = buildApp({ root });
    await share(app, STATE);
    expect(existsSync(dbFile())).toBe(true);
    symlinkSync(path.join(root, ".vemscope"), path.join(root, "innocent-dir"));
    symlinkSync(dbFile(), path.join(root, "image", "innocent"));
    for (const p of [
      "/precomputed/.vemscope/states.sqlite",
      "/precomputed/.vemscope/states.sqlite-wal",
      "/precomputed/%2evemscope/states.sqlite",
      "/precomputed/.VEMSCOPE/states.sqlite",
      "/precomputed/image/..%2f.vemscope/states.sqlite",
      "/precomputed/innocent-dir/states.sqlite",
      "/precomputed/image/innocent",
    ]) {
      const res = await request(app).get(p);
      expect(res.status, p).toBeGreaterThanOrEqual(400);
      expect(res.status, p).toBeLessThan(500);
      expect(res.text, p).not.toContain("SQLite format");
    }
    expect((await request(app).get("/precomputed/image/info")).status).toBe(200);
  });

  it("a state database configured inside the served folder is hidden too", async () => {
    const stateDb = path.join(root, "states.db");
    const app = buildApp({ root, stateDb });
    await share(app, STATE);
    expect(existsSync(stateDb)).toBe(true);
    expect((await request(app).get("/precomputed/states.db")).status).toBe(404);
    expect((await request(app).get("/precomputed/states.db-wal")).status).toBe(404);
  });
});
