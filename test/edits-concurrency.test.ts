/**
 * 20 editors at once over real HTTP on loopback: disjoint merges all land, each exactly once, as versions
 * 1..20 in the log, the served labels and the event stream; then 20 editors racing for the same pair from
 * the same base: one wins, 19 get 409 and nothing else changes. The log replays to the served labels.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LocalStorage } from "../precomputed/storage.js";
import { buildApp } from "../server/api/app.js";
import { EditDb } from "../server/edits/db.js";
import { replayLog } from "../server/edits/replay.js";
import { rowsFromCsv } from "../server/edits/table.js";
import { cachedSynthRun, copyRun, SYNTH_VOXEL } from "../server/edits/test-fixture.js";
import { httpStorage, readSegmentation } from "../server/edits/test-http.js";
import { createToken } from "../server/edits/tokens.js";

const EDITORS = 20;
let root: string;
let server: Server;
let url: string;
let tokens: string[];
const events: { event: string; data: { version?: number; segments?: number[] } }[] = [];
const abort = new AbortController();

beforeAll(async () => {
  root = copyRun(await cachedSynthRun());
  const db = EditDb.at(root);
  tokens = Array.from({ length: EDITORS }, (_, k) => createToken(db, `editor${k}`, "editor"));
  db.close();
  server = buildApp({ root }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await fetch(`${url}/api/events`, { signal: abort.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  void (async () => {
    let text = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) return;
      text += new TextDecoder().decode(value);
      let cut: number;
      while ((cut = text.indexOf("\n\n")) >= 0) {
        const block = text.slice(0, cut);
        text = text.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
    }
  })();
});

afterAll(async () => {
  abort.abort();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const merge = (k: number, base: number, segments: [number, number]) =>
  fetch(`${url}/api/edits/merge`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokens[k]}`, "Content-Type": "application/json" },
    body: JSON.stringify({ base, segments }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as { version: number; user: string; new_root_ids: number[] } }));

it("lands 20 concurrent disjoint merges exactly once each, and lets exactly one of 20 racing edits win", async () => {
  const start = rowsFromCsv(readFileSync(path.join(root, "report/morphometrics.csv"), "utf8"));
  const perox = [...start.values()].filter((r) => r.class === "perox").map((r) => r.id);
  expect(perox.length).toBeGreaterThanOrEqual(2 * EDITORS + 2);
  const pairs = Array.from({ length: EDITORS }, (_, k) => [perox[2 * k], perox[2 * k + 1]] as [number, number]);

  const results = await Promise.all(pairs.map((p, k) => merge(k, 0, p)));
  expect(results.map((r) => r.status)).toEqual(Array(EDITORS).fill(200));
  expect(results.map((r) => r.body.version).sort((x, y) => x - y)).toEqual(Array.from({ length: EDITORS }, (_, k) => k + 1));
  results.forEach((r, k) => {
    expect(r.body.user).toBe(`editor${k}`);
    expect(r.body.new_root_ids).toEqual([Math.min(...pairs[k])]);
  });

  const race: [number, number] = [perox[2 * EDITORS], perox[2 * EDITORS + 1]];
  const raced = await Promise.all(tokens.map((_, k) => merge(k, EDITORS, race)));
  expect(raced.filter((r) => r.status === 200)).toHaveLength(1);
  expect(raced.filter((r) => r.status === 409)).toHaveLength(EDITORS - 1);

  const db = EditDb.at(root);
  const ops = db.ops();
  db.close();
  expect(ops.map((o) => o.version)).toEqual(Array.from({ length: EDITORS + 1 }, (_, k) => k + 1));
  const logged = ops.slice(0, EDITORS).map((o) => `${o.user}:${(o.params as { segments: number[] }).segments.join(",")}`).sort();
  expect(logged).toEqual(pairs.map((p, k) => `editor${k}:${p.join(",")}`).sort());

  const original = await readSegmentation(new LocalStorage(root));
  const served = await readSegmentation(httpStorage(`${url}`, "/precomputed/"));
  const count = (labels: Uint32Array, id: number) => labels.reduce((n, v) => n + (v === id ? 1 : 0), 0);
  for (const [a, b] of [...pairs, race]) {
    expect(count(served.labels, Math.max(a, b))).toBe(0);
    expect(count(served.labels, Math.min(a, b))).toBe(count(original.labels, a) + count(original.labels, b));
  }
  const replayed = await replayLog(original.labels, original.shape, SYNTH_VOXEL, ops, (id) => start.get(id)?.class);
  expect(Buffer.compare(Buffer.from(replayed.buffer), Buffer.from(served.labels.buffer))).toBe(0);

  for (let i = 0; i < 50 && events.filter((e) => e.event === "version").length < EDITORS + 1; i++) await new Promise((r) => setTimeout(r, 100));
  const versions = events.filter((e) => e.event === "version").map((e) => e.data.version);
  expect(versions).toEqual(Array.from({ length: EDITORS + 1 }, (_, k) => k + 1));
});
