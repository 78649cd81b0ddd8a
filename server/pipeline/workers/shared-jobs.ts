/**
 * Synchronous work sharing with one helper thread, for stages that must stay synchronous (analyseClasses
 * returns its result, it does not await): a worker of the process pool (pool.ts) starts on a list of jobs
 * while this thread does its own work, then this thread joins in. Both claim jobs from one shared counter
 * (Atomics), so neither waits for the other while jobs are left; results come back through a MessagePort read
 * with receiveMessageOnPort. If no worker is free (or it is slow to start), this thread simply claims every
 * job itself.
 */
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { PipelineError } from "../errors.js";
import { SYNC_KERNELS, type SyncKernelName, type SyncKernelInput, type SyncKernelOutput } from "./kernels.js";
import { processPool } from "./pool.js";

/** Slots of the shared Int32Array: next job to claim, jobs the helper finished. */
const NEXT = 0;
const DONE = 1;
/** A helper that makes no progress for this long is taken for dead. */
const STALL_MS = 120_000;

export interface SharedRun<K extends SyncKernelName> {
  /** Blocks until every job has a result (this thread claims what is left), in job order. */
  finish(): SyncKernelOutput<K>[];
}

/** Starts the helper on `inputs`; with `helper` false everything runs on this thread in finish(). */
export function startSharedJobs<K extends SyncKernelName>(kind: K, inputs: SyncKernelInput<K>[], helper: boolean): SharedRun<K> {
  const n = inputs.length;
  const counter = new Int32Array(new SharedArrayBuffer(8));
  const results: (SyncKernelOutput<K> | undefined)[] = Array.from({ length: n }, () => undefined);
  const kernel = SYNC_KERNELS[kind] as (input: SyncKernelInput<K>) => SyncKernelOutput<K>;
  const channel = new MessageChannel();
  if (helper && n > 1) {
    // A worker that fails claims nothing more: this thread then does the remaining jobs.
    processPool(1)
      .runShared({ kind, inputs, counter, port: channel.port2 })
      .catch(() => undefined);
  }
  return {
    finish() {
      try {
        for (let i = Atomics.add(counter, NEXT, 1); i < n; i = Atomics.add(counter, NEXT, 1)) results[i] = kernel(inputs[i]);
        let missing = 0;
        for (let i = 0; i < n; i++) if (results[i] === undefined) missing++;
        let lastProgress = performance.now();
        while (missing > 0) {
          const done = Atomics.load(counter, DONE);
          for (let m = receiveMessageOnPort(channel.port1); m !== undefined; m = receiveMessageOnPort(channel.port1)) {
            const reply = m.message as { index: number; output?: SyncKernelOutput<K>; error?: string };
            if (reply.error !== undefined) throw new PipelineError("stage_failed", `${kind} job ${reply.index} failed on the helper thread: ${reply.error}`);
            if (results[reply.index] === undefined) missing--;
            results[reply.index] = reply.output;
            lastProgress = performance.now();
          }
          if (missing === 0) break;
          if (performance.now() - lastProgress > STALL_MS) throw new PipelineError("stage_failed", `the ${kind} helper thread stopped responding`);
          Atomics.wait(counter, DONE, done, 50);
        }
        return results as SyncKernelOutput<K>[];
      } finally {
        channel.port1.close();
      }
    },
  };
}
