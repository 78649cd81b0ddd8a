/**
 * A pool of worker threads running the kernels of kernels.ts, for per-object work that is independent
 * (meshes, surfaces, figures): the main thread keeps doing its own stage meanwhile. Requests are queued and
 * handed to the least busy worker (up to `depth` at a time each); workers start loading at once, and messages
 * wait in their port until they are up.
 *
 * One pool serves a whole run (`processPool`): starting a worker costs ~0.9 s of CPU (loading the TypeScript
 * modules), so the analysis's helper thread, the display meshes and the figures share the same workers instead
 * of each starting their own. Idle workers do not keep the process alive, and a pool left idle closes itself.
 */
import { availableParallelism } from "node:os";
import { Worker, type MessagePort } from "node:worker_threads";
import { PipelineError } from "../errors.js";
import type { KernelInput, KernelName, KernelOutput, KernelReply, KernelRequest, SharedBatch } from "./kernels.js";

interface Pending {
  req: KernelRequest;
  transfer: (ArrayBuffer | MessagePort)[];
  /** Requests of one caller, so that it can withdraw those no worker has taken yet. */
  group?: object;
  resolve(output: unknown): void;
  reject(e: unknown): void;
}

/** A process pool idle this long closes (its workers exit); the next caller starts a fresh one. */
const IDLE_CLOSE_MS = 30_000;

/**
 * Workers for `cores` cores: one fewer than the cores, since the main thread works too (it encodes chunks
 * meanwhile, then drains the queue), and each worker costs its own start (loading the TypeScript modules).
 */
export function defaultPoolSize(cores = availableParallelism()): number {
  return Math.max(0, Math.min(cores - 1, 8));
}

export interface PoolOptions {
  /** Idle workers do not keep the process alive, and the pool closes after IDLE_CLOSE_MS without work. */
  background?: boolean;
  /** A background pool that stays up when idle (the editor's: a worker started again costs ~1 s of CPU). */
  keepIdle?: boolean;
  /**
   * Requests handed to one worker at a time (default 1). With 2, a worker holds its next request while it runs
   * one, and starts it the moment it is done: the reply that would hand it the next one is only read when the
   * calling thread gets back to its event loop, which a synchronous stage there (the ER contacts, a mesh drained
   * there) can hold off for seconds. Requests handed over can no longer be withdrawn or drained here.
   */
  depth?: number;
}

export class KernelPool {
  private readonly queue: Pending[] = [];
  /** Requests handed to each worker and not answered yet (none: not in the map). */
  private readonly busy = new Map<Worker, Pending[]>();
  private readonly workers: Worker[] = [];
  private broken: PipelineError | undefined;
  private seq = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    size = defaultPoolSize(),
    private readonly options: PoolOptions = {},
  ) {
    this.grow(size);
    this.whenIdle();
  }

  get size(): number {
    return this.workers.length;
  }

  /** Closed, or failed: no further request runs. */
  get closed(): boolean {
    return this.broken !== undefined;
  }

  /** Starts workers until there are `size`. */
  grow(size: number): void {
    const entry = new URL("./entry.mjs", import.meta.url);
    while (this.workers.length < size && !this.broken) {
      const w = new Worker(entry);
      w.on("message", (m: KernelReply) => this.onReply(w, m));
      w.on("error", (e) => this.fail(new PipelineError("stage_failed", `worker thread crashed: ${e.message}`, undefined, { cause: e })));
      w.on("exit", (code) => {
        if (code !== 0) this.fail(new PipelineError("stage_failed", `worker thread exited with code ${code}`));
      });
      if (this.options.background) w.unref();
      this.workers.push(w);
    }
  }

  /**
   * Runs one kernel; `transfer` lists input buffers the caller gives up (moved, not copied). `first`: ahead of the
   * requests already waiting (work someone will soon wait on, queued behind a long batch of others).
   */
  run<K extends KernelName>(kind: K, input: KernelInput<K>, transfer: ArrayBuffer[] = [], group?: object, first = false): Promise<KernelOutput<K>> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<KernelOutput<K>>((resolve, reject) => {
      const p: Pending = { req: { seq: this.seq++, kind, input }, transfer, group, resolve: (o) => resolve(o as KernelOutput<K>), reject };
      if (first) this.queue.unshift(p);
      else this.queue.push(p);
      this.dispatch();
    });
  }

  /**
   * Queues a batch of synchronous jobs (workers/shared-jobs.ts): the worker that takes it claims jobs from the
   * batch's shared counter until none are left, posting each result to the batch's port. Resolves when that
   * worker is done; a batch still queued when its caller has claimed every job itself is simply a no-op.
   */
  runShared(batch: SharedBatch): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ req: { seq: this.seq++, kind: "shared", input: batch }, transfer: [batch.port], resolve: () => resolve(), reject });
      this.dispatch();
    });
  }

  /** Withdraws the requests of `group` that no worker has taken yet (they reject). */
  cancel(group: object): void {
    const cancelled = new PipelineError("stage_failed", "request withdrawn");
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const p = this.queue[i];
      if (p.group !== group) continue;
      this.queue.splice(i, 1);
      p.reject(cancelled);
    }
    this.whenIdle();
  }

  /**
   * Runs requests of `group` (all requests without one) still waiting for a worker on this thread instead,
   * through `local` (the same kernels), for a caller that has finished its own work: nothing waits for a worker
   * while this thread idles.
   */
  async drainHere(local: (kind: KernelName, input: unknown) => Promise<unknown>, group?: object): Promise<void> {
    for (;;) {
      const i = this.queue.findIndex((p) => (group === undefined || p.group === group) && p.req.kind !== "shared");
      if (i < 0) break;
      const [p] = this.queue.splice(i, 1);
      if (p.req.kind === "shared") continue;
      try {
        p.resolve(await local(p.req.kind, p.req.input));
      } catch (e) {
        p.reject(e);
      }
      // A local job resolves through microtasks only, which never let the event loop run: without this yield a
      // worker's reply (and with it the worker's next request) would wait until the whole queue was drained here.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.whenIdle();
  }

  async close(): Promise<void> {
    this.broken ??= new PipelineError("stage_failed", "worker pool closed");
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    for (const p of [...[...this.busy.values()].flat(), ...this.queue.splice(0)]) p.reject(this.broken);
    this.busy.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    if (this.idleTimer !== undefined) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
    const depth = this.options.depth ?? 1;
    while (this.queue.length > 0 && !this.broken) {
      // The least loaded worker: idle ones first, then those that can take one more.
      let w: Worker | undefined;
      for (const c of this.workers) if ((this.busy.get(c)?.length ?? 0) < (w === undefined ? depth : (this.busy.get(w)?.length ?? 0))) w = c;
      if (w === undefined) break;
      const p = this.queue.shift() as Pending;
      const held = this.busy.get(w);
      if (held === undefined) {
        this.busy.set(w, [p]);
        // A busy worker keeps the process alive until its answer is in.
        if (this.options.background) w.ref();
      } else held.push(p);
      w.postMessage(p.req, p.transfer);
    }
    this.whenIdle();
  }

  /** A background pool with nothing to do closes after a while. */
  private whenIdle(): void {
    if (!this.options.background || this.options.keepIdle || this.broken || this.busy.size > 0 || this.queue.length > 0 || this.idleTimer !== undefined) return;
    this.idleTimer = setTimeout(() => void this.close(), IDLE_CLOSE_MS);
    this.idleTimer.unref();
  }

  private onReply(w: Worker, m: KernelReply): void {
    const held = this.busy.get(w);
    // Async kernels may answer out of order.
    const i = held?.findIndex((h) => h.req.seq === m.seq) ?? -1;
    if (held === undefined || i < 0) return;
    const [p] = held.splice(i, 1);
    if (held.length === 0) this.busy.delete(w);
    if (this.options.background && held.length === 0) w.unref();
    if (m.ok) p.resolve(m.output);
    else p.reject(new PipelineError("stage_failed", `${p.req.kind} kernel failed on a worker: ${m.message}`));
    this.dispatch();
  }

  private fail(e: PipelineError): void {
    if (this.broken) return;
    this.broken = e;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    for (const p of [...[...this.busy.values()].flat(), ...this.queue.splice(0)]) p.reject(e);
    this.busy.clear();
  }
}

let shared: KernelPool | undefined;

/**
 * The process's pool, with at least `size` workers (started now if missing). Pass 0 to get the pool without
 * starting any. Idle workers never hold the process, and the pool closes after a while without work.
 */
export function processPool(size: number): KernelPool {
  // Depth 2: the run's synchronous stages (ER contacts, meshes drained on the main thread) would otherwise leave
  // the worker idle between its requests until that stage ends.
  if (shared === undefined || shared.closed) shared = new KernelPool(0, { background: true, depth: 2 });
  shared.grow(size);
  return shared;
}

/**
 * Worker threads to use: VEMSCOPE_WORKERS when set (0 = none: everything on the calling thread), else one
 * fewer than the cores.
 */
export function requestedWorkers(): number {
  const env = process.env.VEMSCOPE_WORKERS;
  const requested = env === undefined || env === "" ? defaultPoolSize() : Number(env);
  if (!Number.isInteger(requested) || requested < 0) throw new PipelineError("bad_argument", `VEMSCOPE_WORKERS must be a non-negative integer, got '${env}'`);
  return requested;
}

/**
 * Starts the run's worker threads now, so that they load their modules while this thread reads the input
 * (a worker takes ~1 s to come up); no-op with VEMSCOPE_WORKERS=0 or on one core.
 */
export function warmWorkers(): void {
  const n = requestedWorkers();
  if (n > 0) processPool(n);
}
