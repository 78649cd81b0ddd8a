/**
 * Crash safety: the server (a child process) is SIGKILLed in the middle of an edit, with the version's
 * chunks already on disk and its log row not yet written, and once at a random moment while edits stream
 * in. After a restart the last committed version is intact and readable at every scale, the uncommitted
 * folder is gone, and the next edit takes the next version number.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, expect, it } from "vitest";
import { EditDb } from "../server/edits/db.js";
import { replayLog } from "../server/edits/replay.js";
import { rowsFromCsv } from "../server/edits/table.js";
import { cachedSynthRun, copyRun, SYNTH_VOXEL } from "../server/edits/test-fixture.js";
import { httpStorage, readSegmentation } from "../server/edits/test-http.js";
import { createToken } from "../server/edits/tokens.js";
import { LocalStorage } from "../precomputed/storage.js";
import { VERSIONS_DIR } from "../server/edits/versions.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const children: ChildProcess[] = [];
let template: string;

beforeAll(async () => {
  template = await cachedSynthRun();
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** Starts the child server; resolves with its URL and a waiter for a line it prints. */
async function startServer(root: string, pauseAt?: number): Promise<{ url: string; child: ChildProcess; saw: (prefix: string) => Promise<string> }> {
  // node itself with tsx as a loader, not the tsx CLI: the CLI runs the script in a grandchild, which a
  // SIGKILL of the CLI leaves running (orphaned servers went on editing after the "crash").
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repo, "server/edits/crash-server.ts"), root, ...(pauseAt ? [String(pauseAt)] : [])], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  const waiters: { prefix: string; resolve: (line: string) => void }[] = [];
  const check = () => {
    for (const line of out.split("\n")) {
      for (const w of waiters.splice(0)) {
        if (line.startsWith(w.prefix)) w.resolve(line);
        else waiters.push(w);
      }
    }
  };
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    check();
  });
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const saw = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      waiters.push({ prefix, resolve });
      check();
      child.once("exit", (code) => reject(new Error(`child exited (${code}) before '${prefix}': ${err}`)));
    });
  const line = await saw("LISTENING ");
  return { url: `http://127.0.0.1:${line.split(" ")[1]}`, child, saw };
}

const kill = (child: ChildProcess) => new Promise((r) => {
  child.once("exit", r);
  child.kill("SIGKILL");
});

function post(url: string, token: string, route: string, body: unknown): Promise<Response> {
  return fetch(`${url}${route}`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function setup(): { root: string; token: string; perox: number[] } {
  const root = copyRun(template);
  const db = EditDb.at(root);
  const token = createToken(db, "crash", "editor");
  db.close();
  const rows = rowsFromCsv(readFileSync(path.join(root, "report/morphometrics.csv"), "utf8"));
  return { root, token, perox: [...rows.values()].filter((r) => r.class === "perox").map((r) => r.id) };
}

/** Every committed version reads back (all scales decode) and the latest equals a replay of the log. */
async function checkIntact(url: string, root: string): Promise<number> {
  const db = EditDb.at(root);
  const ops = db.ops();
  db.close();
  const version = ops.at(-1)?.version ?? 0;
  const original = await readSegmentation(new LocalStorage(root));
  // Chunks decode: each version's scale 0 and every scale of the latest (all scales of all versions would
  // take this test past a minute; the coarse chunks are written by the same atomic path).
  for (let v = 0; v < version; v++) await readSegmentation(httpStorage(url, `/v/${v}/`), 0);
  const latest = await readSegmentation(httpStorage(url, `/v/${version}/`), 0);
  for (let s = 1; s < latest.info.scales.length; s++) await readSegmentation(httpStorage(url, `/v/${version}/`), s);
  const start = rowsFromCsv(readFileSync(path.join(root, "report/morphometrics.csv"), "utf8"));
  const replayed = await replayLog(original.labels, original.shape, SYNTH_VOXEL, ops, (id) => start.get(id)?.class);
  const served = await readSegmentation(httpStorage(url, "/precomputed/"));
  expect(Buffer.compare(Buffer.from(replayed.buffer), Buffer.from(served.labels.buffer))).toBe(0);
  return version;
}

it("SIGKILL after the chunks are written and before the log row: the last committed version survives", async () => {
  const { root, token, perox } = setup();
  const first = await startServer(root, 2);
  expect((await post(first.url, token, "/api/edits/merge", { base: 0, segments: [perox[0], perox[1]] })).status).toBe(200);
  void post(first.url, token, "/api/edits/merge", { base: 1, segments: [perox[2], perox[3]] }).catch(() => undefined);
  await first.saw("PAUSED 2");
  // The torn state on disk: version 2's folder is complete but not committed.
  expect(existsSync(path.join(root, VERSIONS_DIR, "2", "edit", "segmentation"))).toBe(true);
  await kill(first.child);

  const second = await startServer(root);
  const version = await checkIntact(second.url, root);
  expect(version).toBe(1);
  expect(existsSync(path.join(root, VERSIONS_DIR, "2"))).toBe(false);
  const next = await post(second.url, token, "/api/edits/merge", { base: 1, segments: [perox[2], perox[3]] });
  expect(next.status).toBe(200);
  expect(((await next.json()) as { version: number }).version).toBe(2);
  await checkIntact(second.url, root);
});

it("SIGKILL at a random moment while edits stream in: no torn chunk, the log and the data agree", async () => {
  const { root, token, perox } = setup();
  const first = await startServer(root);
  let base = 0;
  const edits = (async () => {
    for (let k = 0; k + 1 < perox.length; k += 2) {
      const r = await post(first.url, token, "/api/edits/merge", { base, segments: [perox[k], perox[k + 1]] }).catch(() => undefined);
      if (!r || r.status !== 200) return;
      base = ((await r.json()) as { version: number }).version;
    }
  })();
  await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
  await kill(first.child);
  await edits;
  const second = await startServer(root);
  const version = await checkIntact(second.url, root);
  expect(version).toBeGreaterThanOrEqual(base);
});
