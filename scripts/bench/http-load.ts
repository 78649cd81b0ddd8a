import http from "node:http";

export interface LoadResult {
  requests: number;
  seconds: number;
  bytes: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

/**
 * A closed-loop load generator: `concurrency` keep-alive connections, each sending its next request as soon as
 * the last answer arrives, cycling over `paths`. The same client measures both servers, so the ratio is fair.
 */
export async function load(origin: string, paths: string[], opts: { requests: number; concurrency: number; gzip: boolean }): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const latencies = new Float64Array(opts.requests);
  let issued = 0;
  let bytes = 0;
  let errors = 0;
  const one = (p: string): Promise<void> =>
    new Promise((resolve) => {
      const t = performance.now();
      const i = issued - 1;
      const req = http.get(`${origin}${p}`, { agent, headers: opts.gzip ? { "accept-encoding": "gzip" } : {} }, (res) => {
        res.on("data", (d: Buffer) => (bytes += d.length));
        res.on("end", () => {
          if (res.statusCode !== 200) errors++;
          latencies[i] = performance.now() - t;
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        latencies[i] = performance.now() - t;
        resolve();
      });
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (issued < opts.requests) {
        const p = paths[issued % paths.length];
        issued++;
        await one(p);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  return {
    requests: opts.requests,
    seconds,
    bytes,
    p50ms: sorted[Math.floor(sorted.length * 0.5)],
    p99ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))],
    errors,
  };
}
