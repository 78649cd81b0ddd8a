/**
 * Worker thread body: a pool worker (pool.ts) runs named kernels one request at a time; a "shared" request is a
 * batch of synchronous jobs (shared-jobs.ts) whose jobs it claims from the batch's counter until none are left.
 */
import { parentPort } from "node:worker_threads";
import { KERNELS, SYNC_KERNELS, transferables, type KernelReply, type KernelRequest, type SharedBatch } from "./kernels.js";

servePool();

function runShared({ kind, inputs, counter, port }: SharedBatch): void {
  const kernel = SYNC_KERNELS[kind] as (input: unknown) => unknown;
  for (let i = Atomics.add(counter, 0, 1); i < inputs.length; i = Atomics.add(counter, 0, 1)) {
    try {
      const output = kernel(inputs[i]);
      port.postMessage({ index: i, output }, transferables(output));
    } catch (e) {
      port.postMessage({ index: i, error: e instanceof Error ? e.message : String(e) });
    }
    Atomics.add(counter, 1, 1);
    Atomics.notify(counter, 1);
  }
  port.close();
}

function servePool(): void {
  const port = parentPort;
  if (port === null) throw new Error("workers/worker.ts must run on a worker thread");
  port.on("message", (req: KernelRequest) => {
    const reply = (r: KernelReply, transfer: ArrayBuffer[] = []): void => port.postMessage(r, transfer);
    if (req.kind === "shared") {
      try {
        runShared(req.input);
        reply({ seq: req.seq, ok: true, output: null });
      } catch (e) {
        reply({ seq: req.seq, ok: false, message: e instanceof Error ? e.message : String(e) });
      }
      return;
    }
    const kernel = KERNELS[req.kind] as ((input: unknown) => unknown) | undefined;
    if (kernel === undefined) {
      reply({ seq: req.seq, ok: false, message: `unknown kernel '${String(req.kind)}'` });
      return;
    }
    Promise.resolve()
      .then(() => kernel(req.input))
      .then(
        (output) => reply({ seq: req.seq, ok: true, output }, transferables(output)),
        (e: unknown) => reply({ seq: req.seq, ok: false, message: e instanceof Error ? e.message : String(e) }),
      );
  });
}
