/**
 * Chunk-serving throughput and latency: `vemscope serve` against nginx serving the same folder (Debian nginx,
 * started here, one worker like our one Node process; gzip_static so both answer the stored .gz chunks).
 */
import { spawn, type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { LocalStorage } from "../../precomputed/storage.js";
import { load, type LoadResult } from "./http-load.js";
import { freePort, waitForHttp } from "./util.js";

export async function main(args: string[]): Promise<void> {
  const dir = path.resolve(args[0] ?? "data/demo/run");
  if (!existsSync(path.join(dir, "image", "info"))) {
    throw new Error(`${dir} has no image/info: run 'npm start' (or vemscope run) first, or pass a run folder`);
  }
  const keys = (await new LocalStorage(dir).list("")).filter((k) => /^(image|segmentation)\/[^/]+\/\d+-\d+_\d+-\d+_\d+-\d+$/.test(k));
  if (keys.length === 0) throw new Error(`${dir}: no chunks found`);
  const paths = keys.map((k) => `/precomputed/${k}`);
  const requests = Number(process.env.BENCH_REQUESTS ?? 20000);
  const concurrency = 16;
  const nginxBin = ["/usr/sbin/nginx", "/usr/bin/nginx"].find(existsSync);
  if (!nginxBin) throw new Error("nginx not installed: apt-get install -y nginx");

  const work = mkdtempSync(path.join(tmpdir(), "vemscope-bench-serve-"));
  const children: ChildProcess[] = [];
  try {
    const ourPort = await freePort();
    const ngxPort = await freePort();
    children.push(
      spawn(process.execPath, ["--no-concurrent-recompilation", "scripts/cli.mjs", "serve", dir, "--port", String(ourPort)], { stdio: "ignore" }),
    );
    const conf = path.join(work, "nginx.conf");
    writeFileSync(conf, nginxConf(dir, ngxPort, work));
    execFileSync(nginxBin, ["-t", "-c", conf, "-p", work], { stdio: "ignore" });
    children.push(spawn(nginxBin, ["-c", conf, "-p", work], { stdio: "ignore" }));
    await waitForHttp(`http://127.0.0.1:${ourPort}/api/health`);
    await waitForHttp(`http://127.0.0.1:${ngxPort}/precomputed/image/info`);

    const results: Record<string, LoadResult> = {};
    for (const [name, port] of [["nginx", ngxPort], ["vemscope", ourPort]] as const) {
      await load(`http://127.0.0.1:${port}`, paths, { requests: Math.min(2000, requests), concurrency, gzip: true }); // warm-up
      results[name] = await load(`http://127.0.0.1:${port}`, paths, { requests, concurrency, gzip: true });
    }
    const row = (n: string, r: LoadResult) =>
      `${n.padEnd(9)} ${(r.requests / r.seconds).toFixed(0).padStart(7)} req/s ${(r.bytes / r.seconds / 1e6).toFixed(1).padStart(7)} MB/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms  errors ${r.errors}`;
    process.stdout.write(`serve bench: ${keys.length} chunks from ${dir}, ${requests} requests, ${concurrency} connections\n`);
    process.stdout.write(`${row("nginx", results.nginx)}\n${row("vemscope", results.vemscope)}\n`);
    const ratio = results.vemscope.requests / results.vemscope.seconds / (results.nginx.requests / results.nginx.seconds);
    process.stdout.write(`ratio vemscope/nginx throughput: ${ratio.toFixed(2)}x; p99 ratio ${(results.vemscope.p99ms / results.nginx.p99ms).toFixed(2)}x\n`);
  } finally {
    for (const c of children) c.kill("SIGTERM");
    rmSync(work, { recursive: true, force: true });
  }
}

function nginxConf(root: string, port: number, work: string): string {
  return `daemon off;
worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${work}/nginx.pid;
error_log ${work}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${work}/body; proxy_temp_path ${work}/proxy; fastcgi_temp_path ${work}/fcgi;
  uwsgi_temp_path ${work}/uwsgi; scgi_temp_path ${work}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    location /precomputed/ {
      alias ${root}/;
      gzip_static on;
      add_header Access-Control-Allow-Origin *;
    }
  }
}
`;
}
