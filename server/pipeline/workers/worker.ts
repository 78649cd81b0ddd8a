/**
 * Worker thread body. Either a pool worker (pool.ts): runs named kernels one request at a time; or a
 * shared-jobs helper (shared-jobs.ts): claims jobs from the shared counter until none are left.
 */
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { KERNELS, SYNC_KERNELS, transferables, type KernelReply, type KernelRequest, type SyncKernelName } from "./kernels.js";

interface SharedData {
  kind: SyncKernelName;
  inputs: unknown[];
  counter: Int32Array;
  port: MessagePort;
}

const shared = (workerData as { shared?: SharedData } | null)?.shared;
if (shared) runShared(shared);
else servePool();

function runShared({ kind, inputs, counter, port }: SharedData): void {
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
    const kernel = KERNELS[req.kind] as ((input: unknown) => unknown) | undefined;
    const reply = (r: KernelReply, transfer: ArrayBuffer[] = []): void => port.postMessage(r, transfer);
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
