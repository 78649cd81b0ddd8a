/**
 * Real services for tests, on loopback, in temp folders, stopped afterwards: a redis-server (no persistence)
 * and an s3rver. A missing redis-server is an error, not a skip: CI installs it (.ci/run), so its absence
 * means a broken machine, and silently skipped queue tests would hide that.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, promises as fs } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import S3rver from "s3rver";

export interface RunningService {
  url: string;
  stop(): Promise<void>;
}

/** REDIS_SERVER, else the Debian path, else PATH. */
export function findRedisServer(): string {
  const candidates = [process.env.REDIS_SERVER, "/usr/bin/redis-server", "/usr/local/bin/redis-server"];
  for (const c of candidates) if (c && existsSync(c)) return c;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const c = path.join(dir, "redis-server");
    if (dir && existsSync(c)) return c;
  }
  throw new Error("redis-server not found (looked at $REDIS_SERVER, /usr/bin/redis-server and PATH): apt-get install redis-server, as .ci/run does");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms:\n${seen}`)), timeoutMs);
    const onData = (b: Buffer) => {
      seen += b.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before it was ready:\n${seen}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 5000).unref();
  });
}

/** A throwaway redis-server on a free loopback port; `url` is redis://127.0.0.1:PORT. */
export async function startRedis(): Promise<RunningService> {
  const bin = findRedisServer();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-redis-"));
  // The port is free when chosen but another process could take it before redis binds: retry a few times.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      await waitForLine(child, /Ready to accept connections/, "redis-server", 20_000);
    } catch (e) {
      await stopChild(child);
      if (attempt < 3) continue;
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
    child.stdout?.resume();
    child.stderr?.resume();
    return {
      url: `redis://127.0.0.1:${port}`,
      async stop() {
        await stopChild(child);
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  }
}

export interface RunningS3 extends RunningService {
  /** http://127.0.0.1:PORT, for VEMSCOPE_S3_ENDPOINT. */
  endpoint: string;
  /** s3rver's fixed credentials. */
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** An s3rver on a free loopback port with the given buckets, its files in a temp folder. */
export async function startS3rver(buckets: string[]): Promise<RunningS3> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "vemscope-s3rver-"));
  const server = new S3rver({ address: "127.0.0.1", port: 0, directory: dir, silent: true, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    url: endpoint,
    endpoint,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    async stop() {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
