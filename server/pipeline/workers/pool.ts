/**
 * A pool of worker threads running the kernels of kernels.ts, for per-object work that is independent
 * (meshes, surfaces): the main thread keeps doing its own stage meanwhile. Requests are queued and handed
 * to the first idle worker; workers start loading at once, and messages wait in their port until they are up.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { PipelineError } from "../errors.js";
import type { KernelInput, KernelName, KernelOutput, KernelReply, KernelRequest } from "./kernels.js";

interface Pending {
  req: KernelRequest;
  transfer: ArrayBuffer[];
  resolve(output: unknown): void;
  reject(e: unknown): void;
}

/**
 * Workers for `cores` cores: one fewer than the cores, since the main thread works too (it encodes chunks
 * meanwhile, then drains the queue), and each worker costs its own start (loading the TypeScript modules).
 */
export function defaultPoolSize(cores = availableParallelism()): number {
  return Math.max(0, Math.min(cores - 1, 8));
}

export class KernelPool {
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly busy = new Map<Worker, Pending>();
  private readonly workers: Worker[] = [];
  private broken: PipelineError | undefined;
  private seq = 0;

  constructor(size = defaultPoolSize()) {
    const entry = new URL("./entry.mjs", import.meta.url);
    for (let i = 0; i < size; i++) {
      const w = new Worker(entry);
      w.on("message", (m: KernelReply) => this.onReply(w, m));
      w.on("error", (e) => this.fail(new PipelineError("stage_failed", `worker thread crashed: ${e.message}`, undefined, { cause: e })));
      w.on("exit", (code) => {
        if (code !== 0) this.fail(new PipelineError("stage_failed", `worker thread exited with code ${code}`));
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Runs one kernel; `transfer` lists input buffers the caller gives up (moved, not copied). */
  run<K extends KernelName>(kind: K, input: KernelInput<K>, transfer: ArrayBuffer[] = []): Promise<KernelOutput<K>> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<KernelOutput<K>>((resolve, reject) => {
      this.queue.push({ req: { seq: this.seq++, kind, input }, transfer, resolve: (o) => resolve(o as KernelOutput<K>), reject });
      this.dispatch();
    });
  }

  /**
   * Runs requests still waiting for a worker on this thread instead, through `local` (the same kernels),
   * for a caller that has finished its own work: nothing waits for a worker while this thread idles.
   */
  async drainHere(local: (kind: KernelName, input: unknown) => Promise<unknown>): Promise<void> {
    for (let p = this.queue.shift(); p !== undefined; p = this.queue.shift()) {
      try {
        p.resolve(await local(p.req.kind, p.req.input));
      } catch (e) {
        p.reject(e);
      }
    }
  }

  async close(): Promise<void> {
    this.broken ??= new PipelineError("stage_failed", "worker pool closed");
    for (const p of [...this.busy.values(), ...this.queue.splice(0)]) p.reject(this.broken);
    this.busy.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop() as Worker;
      const p = this.queue.shift() as Pending;
      this.busy.set(w, p);
      w.postMessage(p.req, p.transfer);
    }
  }

  private onReply(w: Worker, m: KernelReply): void {
    const p = this.busy.get(w);
    if (!p || p.req.seq !== m.seq) return;
    this.busy.delete(w);
    this.idle.push(w);
    if (m.ok) p.resolve(m.output);
    else p.reject(new PipelineError("stage_failed", `${p.req.kind} kernel failed on a worker: ${m.message}`));
    this.dispatch();
  }

  private fail(e: PipelineError): void {
    if (this.broken) return;
    this.broken = e;
    for (const p of [...this.busy.values(), ...this.queue.splice(0)]) p.reject(e);
    this.busy.clear();
  }
}
