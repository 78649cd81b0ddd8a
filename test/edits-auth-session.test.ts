/**
 * `serve --auth-reads` with the bundled viewer: Neuroglancer's own chunk and mesh requests carry no header,
 * so the viewer trades its token for an HttpOnly session cookie (POST /api/auth/session) that the browser
 * sends with them. Over real HTTP (supertest listens on a port): the cookie opens reads of every kind and
 * never writes; a wrong or cleared cookie reads nothing.
 */
import { readdirSync } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import { beforeAll, describe, expect, it } from "vitest";
import { validateInfo } from "../precomputed/info.js";
import { buildApp } from "../server/api/app.js";
import { SESSION_COOKIE } from "../server/api/auth.js";
import { EditDb } from "../server/edits/db.js";
import { cachedSynthRun, copyRun } from "../server/edits/test-fixture.js";
import { createToken } from "../server/edits/tokens.js";

let app: ReturnType<typeof buildApp>;
let root: string;
let editor: string;
let viewer: string;
/** A scale-0 chunk key and a mesh file of the run, as Neuroglancer fetches them. */
let chunkPath: string;
let meshPath: string;

beforeAll(async () => {
  root = copyRun(await cachedSynthRun());
  const db = EditDb.at(root);
  editor = createToken(db, "alice", "editor");
  viewer = createToken(db, "bob", "viewer");
  db.close();
  app = buildApp({ root, authReads: true });
  const info = validateInfo(JSON.parse((await request(app).get("/precomputed/segmentation/info").set("Authorization", `Bearer ${viewer}`)).text));
  const key = info.scales[0].key;
  chunkPath = `segmentation/${key}/${readdirSync(path.join(root, "segmentation", key))[0].replace(/\.gz$/, "")}`;
  // Multi-resolution meshes: `<id>.index` and its fragment file `<id>`.
  const mesh = readdirSync(path.join(root, "segmentation", "mesh")).find((f) => /^\d+\.index(\.gz)?$/.test(f));
  meshPath = `segmentation/mesh/${mesh?.replace(/\.gz$/, "")}`;
});

const cookieOf = (res: request.Response): string => {
  const set = res.headers["set-cookie"] as unknown as string[] | undefined;
  const line = set?.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (!line) throw new Error("no session cookie set");
  return line;
};

describe("auth-reads session cookie", () => {
  it("trades a token for an HttpOnly, SameSite=Strict cookie that opens the viewer's reads", async () => {
    expect((await request(app).get(`/precomputed/${chunkPath}`)).status).toBe(401);
    const session = await request(app).post("/api/auth/session").set("Authorization", `Bearer ${viewer}`);
    expect(session.status).toBe(200);
    expect(session.body).toEqual({ user: "bob", role: "viewer" });
    const line = cookieOf(session);
    expect(line).toMatch(/HttpOnly/);
    expect(line).toMatch(/SameSite=Strict/);
    expect(line).toMatch(/Path=\//);
    // A browser-like client: it keeps the cookie and sends it, nothing else, with every later request.
    const browser = request.agent(app);
    await browser.post("/api/auth/session").set("Authorization", `Bearer ${viewer}`).expect(200);
    for (const url of ["/api/state", "/api/segments", `/precomputed/${chunkPath}`, `/precomputed/${meshPath}`, `/v/0/${chunkPath}`, `/v/0/${meshPath}`, "/precomputed/segmentation/info?v=0"]) {
      const res = await browser.get(url);
      expect(res.status, url).toBe(200);
    }
    // The state's layer sources carry no token: the cookie does the work, so share links stay clean.
    expect((await browser.get("/api/state")).text).not.toContain("token");
  });

  it("never lets the cookie write, and reads nothing with a wrong or cleared cookie", async () => {
    const browser = request.agent(app);
    // An editor's cookie: reads pass, an edit without the header is refused (a cookie would let another site forge edits).
    await browser.post("/api/auth/session").set("Authorization", `Bearer ${editor}`).expect(200);
    expect((await browser.get(`/precomputed/${chunkPath}`)).status).toBe(200);
    const merge = await browser.post("/api/edits/merge").send({ base: 0, segments: [1, 2] });
    expect(merge.status).toBe(401);
    expect((await browser.put("/api/review/1").send({ status: "ok" })).status).toBe(401);
    // Forgetting the token clears the cookie.
    const cleared = await browser.delete("/api/auth/session");
    expect(cleared.status).toBe(204);
    expect(cookieOf(cleared)).toMatch(/Max-Age=0/);
    expect((await browser.get(`/precomputed/${chunkPath}`)).status).toBe(401);
    // A cookie of a token the server does not know.
    expect((await request(app).get(`/precomputed/${chunkPath}`).set("Cookie", `${SESSION_COOKIE}=vst_wrong`)).status).toBe(401);
    // No session for a bad token; nothing set.
    const bad = await request(app).post("/api/auth/session").set("Authorization", "Bearer vst_wrong");
    expect(bad.status).toBe(401);
    expect(bad.headers["set-cookie"]).toBeUndefined();
    expect((await request(app).post("/api/auth/session")).status).toBe(401);
  });
});
