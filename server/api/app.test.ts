import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { gzipSync } from "node:zlib";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "./app.js";

let root: string;
let outside: string;
const chunk = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) % 256);

beforeAll(() => {
  const base = mkdtempSync(path.join(tmpdir(), "vemscope-api-"));
  root = path.join(base, "dataset");
  outside = path.join(base, "secret");
  mkdirSync(path.join(root, "image", "5_5_45"), { recursive: true });
  mkdirSync(path.join(root, "segmentation", "mesh"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, "passwd"), "top secret");
  writeFileSync(path.join(root, "image", "info"), JSON.stringify({ "@type": "neuroglancer_multiscale_volume" }));
  writeFileSync(path.join(root, "image", "5_5_45", "0-64_0-64_0-1"), chunk);
  writeFileSync(path.join(root, "image", "5_5_45", "64-128_0-64_0-1.gz"), gzipSync(chunk));
  writeFileSync(path.join(root, "segmentation", "info"), "{}");
  writeFileSync(path.join(root, "segmentation", "mesh", "7:0"), JSON.stringify({ fragments: ["7:0:1"] }));
  symlinkSync(path.join(outside, "passwd"), path.join(root, "image", "escape"));
  symlinkSync(outside, path.join(root, "escape-dir"));
  writeFileSync(
    path.join(root, "state.json"),
    JSON.stringify({ layers: [{ name: "image", source: "precomputed://./image" }, { name: "x", source: "precomputed://gs://a/b" }] }),
  );
});
afterAll(() => rmSync(path.dirname(root), { recursive: true, force: true }));

describe("buildApp: precomputed files", () => {
  it("serves a chunk with CORS and binary type", async () => {
    const app = buildApp({ root });
    const res = await request(app).get("/precomputed/image/5_5_45/0-64_0-64_0-1").buffer(true);
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBe("*");
    expect(res.headers["content-type"]).toMatch(/application\/octet-stream/);
    expect(new Uint8Array(res.body as Buffer)).toEqual(chunk);
  });

  it("serves info and mesh manifests as JSON", async () => {
    const app = buildApp({ root });
    const info = await request(app).get("/precomputed/image/info");
    expect(info.headers["content-type"]).toMatch(/application\/json/);
    expect(info.body["@type"]).toBe("neuroglancer_multiscale_volume");
    const manifest = await request(app).get("/precomputed/segmentation/mesh/7:0");
    expect(manifest.headers["content-type"]).toMatch(/application\/json/);
  });

  it("answers a stored .gz chunk with Content-Encoding: gzip and no ranges", async () => {
    const app = buildApp({ root });
    const res = await request(app)
      .get("/precomputed/image/5_5_45/64-128_0-64_0-1")
      .buffer(true);
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBe("gzip");
    expect(res.headers["accept-ranges"]).not.toBe("bytes");
    // superagent inflates as a browser does: the decoded body is the original chunk.
    expect(new Uint8Array(res.body as Buffer)).toEqual(chunk);
    expect(res.headers["content-length"]).toBe(String(gzipSync(chunk).length));
  });

  it("supports byte ranges on plain files", async () => {
    const app = buildApp({ root });
    const res = await request(app).get("/precomputed/image/5_5_45/0-64_0-64_0-1").set("Range", "bytes=10-19").buffer(true);
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes 10-19/${chunk.length}`);
    expect(new Uint8Array(res.body as Buffer)).toEqual(chunk.slice(10, 20));
    expect(res.headers["access-control-expose-headers"]).toMatch(/Content-Range/);
    const bad = await request(app).get("/precomputed/image/5_5_45/0-64_0-64_0-1").set("Range", "bytes=99999-");
    expect(bad.status).toBe(416);
  });

  it("answers 404 JSON for a missing chunk", async () => {
    const app = buildApp({ root });
    const res = await request(app).get("/precomputed/image/5_5_45/128-192_0-64_0-1");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });

  it("refuses traversal, encoded traversal and symlinks out of the root", async () => {
    const app = buildApp({ root });
    for (const p of [
      "/precomputed/../secret/passwd",
      "/precomputed/%2e%2e/secret/passwd",
      "/precomputed/image/%2e%2e/%2e%2e/secret/passwd",
      "/precomputed/..%2fsecret%2fpasswd",
      "/precomputed/image%2f..%2f..%2fsecret/passwd",
      "/precomputed/image/..%5c..%5csecret%5cpasswd",
      "/precomputed/%00/passwd",
      "/precomputed/image/escape",
      "/precomputed/escape-dir/passwd",
    ]) {
      const res = await request(app).get(p);
      expect(res.status, p).toBeGreaterThanOrEqual(400);
      expect(res.status, p).toBeLessThan(500);
      expect(res.text, p).not.toContain("top secret");
    }
  });

  it("fuzz: 200 malformed or hostile paths get a 4xx, never a 5xx or a file outside root", async () => {
    const app = buildApp({ root });
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pieces = ["..", "%2e", "%2E%2e", "%", "%zz", "%c0%ae", "\\", "%5c", "%2f", "%00", "image", "info", "a b", ".", "~", "::", "%ff", "escape", "secret", "passwd"];
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(rand() * 5);
      const segs = Array.from({ length: n }, () => pieces[Math.floor(rand() * pieces.length)]);
      const p = "/precomputed/" + segs.join(rand() < 0.8 ? "/" : "");
      const res = await request(app).get(p.replace(/ /g, "%20"));
      expect(res.status, p).not.toBeGreaterThanOrEqual(500);
      expect(res.text, p).not.toContain("top secret");
    }
  });

  it("serves report figures and tables with browser content types", async () => {
    mkdirSync(path.join(root, "report", "figures"), { recursive: true });
    writeFileSync(path.join(root, "report", "figures", "a.svg"), "<svg></svg>");
    writeFileSync(path.join(root, "report", "morphometrics.csv"), "id,class\n");
    const app = buildApp({ root });
    expect((await request(app).get("/precomputed/report/figures/a.svg")).headers["content-type"]).toMatch(/image\/svg\+xml/);
    expect((await request(app).get("/precomputed/report/morphometrics.csv")).headers["content-type"]).toMatch(/text\/csv/);
  });

  it("is read-only", async () => {
    const res = await request(buildApp({ root })).put("/precomputed/image/info").send("x");
    expect(res.status).toBe(405);
  });
});

describe("buildApp: API", () => {
  it("health and datasets", async () => {
    const app = buildApp({ root });
    expect((await request(app).get("/api/health")).body.ok).toBe(true);
    const ds = await request(app).get("/api/datasets");
    expect(ds.body.datasets[0].layers).toEqual(["image", "segmentation"]);
    expect(ds.body.datasets[0].state).toBe("/api/state");
  });

  it("state with relative sources resolved against the request's host", async () => {
    const res = await request(buildApp({ root })).get("/api/state").set("Host", "example.org:9000");
    expect(res.body.layers[0].source).toBe("precomputed://http://example.org:9000/precomputed/image");
    expect(res.body.layers[1].source).toBe("precomputed://gs://a/b");
  });

  it("unknown API route is a JSON 404; CORS preflight is 204", async () => {
    const app = buildApp({ root });
    const res = await request(app).get("/api/nope");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    const pre = await request(app).options("/precomputed/image/info");
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-headers"]).toMatch(/Range/);
  });
});
