/**
 * Where tiles run: one in-process onnxruntime session, or a pool of worker threads with one session each.
 * onnxruntime-node's `run` blocks the calling thread, so in-process inference also stalls normalisation
 * and blending; workers let the main thread prepare and blend tiles while others are inferred.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { PipelineError } from "../errors.js";
import { TileEngine } from "./engine.js";
import type { ModelInfo } from "./model.js";
import type { TileRequest, WorkerInit, WorkerReply } from "./tile-worker.js";

export interface RunnerOptions {
  /** 0 = in-process session; n >= 1 = n worker threads. */
  workers: number;
  /** Intra-op threads per session. */
  threads: number;
  /**
   * Workers do not keep the process alive while no tile is in flight: for a runner kept for the life of the
   * process (segment/tasks.ts) that is never closed. Default false.
   */
  unrefIdle?: boolean;
}

export interface TileRunner {
  /** Tiles that can be in flight at once (more are queued). */
  readonly slots: number;
  readonly description: string;
  /** Channel-major softmax probabilities [channels, h, w] of one normalised tile. */
  run(tile: Float32Array, h: number, w: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/**
 * One single-threaded worker per core for multi-tile jobs. On 2 heavily shared cores `npm run bench --
 * segment` (3 sections of 1024 x 768, 18 tiles) measured 2 workers x 1 thread at 0.076-0.077 Mpx/s and
 * 0.24-0.30 Mpx per CPU-second, 1 session x 2 threads at 0.071-0.073 and 0.24-0.28, 1 worker x 2 threads
 * at 0.055-0.064: a small margin for workers (they also overlap inference with the main thread's
 * normalising and blending, which an in-process run blocks), at the price of memory (peak RSS ~740 MiB vs
 * ~450 MiB: one session per worker).
 */
export function defaultRunnerOptions(cores = availableParallelism(), tiles = Infinity): RunnerOptions {
  // Starting a worker (tsx loader, onnxruntime, session) costs ~0.8 CPU-s, about 3 tiles' worth of
  // inference; below that a single in-process session finishes first.
  if (tiles <= SMALL_JOB_TILES || cores < 2) return { workers: 0, threads: Math.max(1, cores) };
  return { workers: Math.min(cores, 8), threads: 1 };
}

/** Jobs of at most this many tiles run in-process (see defaultRunnerOptions). */
export const SMALL_JOB_TILES = 6;

export async function createRunner(model: ModelInfo, options: RunnerOptions): Promise<TileRunner> {
  if (!Number.isInteger(options.workers) || options.workers < 0) throw new PipelineError("bad_argument", `expected a non-negative integer, got ${options.workers}`, "--workers");
  if (!Number.isInteger(options.threads) || options.threads < 1) throw new PipelineError("bad_argument", `expected a positive integer, got ${options.threads}`, "--threads");
  return options.workers === 0 ? inProcess(model, options.threads) : WorkerPool.start(model, options);
}

async function inProcess(model: ModelInfo, threads: number): Promise<TileRunner> {
  let engine: TileEngine;
  try {
    engine = await TileEngine.create(model.bytes, { threads, channels: model.codes.length, softmax: !model.probabilities });
  } catch (e) {
    throw new PipelineError("bad_input", `onnxruntime cannot load the model: ${e instanceof Error ? e.message : String(e)}`, model.path, { cause: e });
  }
  let chain: Promise<unknown> = Promise.resolve();
  return {
    slots: 1,
    description: `1 session x ${threads} thread${threads > 1 ? "s" : ""}`,
    run(tile, h, w) {
      const p = chain.then(() => engine.run(tile, h, w)).catch((e: unknown) => {
        throw new PipelineError("stage_failed", `inference failed: ${e instanceof Error ? e.message : String(e)}`, model.path, { cause: e });
      });
      chain = p.catch(() => undefined);
      return p;
    },
    close: () => engine.close(),
  };
}

interface Job {
  req: TileRequest;
  resolve(probs: Float32Array): void;
  reject(e: unknown): void;
}

class WorkerPool implements TileRunner {
  readonly slots: number;
  readonly description: string;
  private readonly idle: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly busy = new Map<Worker, Job>();
  private nextId = 0;
  private broken: PipelineError | undefined;
  private closing = false;

  private constructor(
    private readonly model: ModelInfo,
    private readonly workers: Worker[],
    threads: number,
    private readonly unrefIdle: boolean,
  ) {
    this.slots = workers.length;
    this.description = `${workers.length} worker${workers.length > 1 ? "s" : ""} x ${threads} thread${threads > 1 ? "s" : ""}`;
  }

  static async start(model: ModelInfo, options: RunnerOptions): Promise<WorkerPool> {
    const init: WorkerInit = { bytes: model.bytes, threads: options.threads, channels: model.codes.length, softmax: !model.probabilities };
    const entry = new URL("./tile-worker.mjs", import.meta.url);
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < options.workers; i++) workers.push(new Worker(entry, { workerData: init }));
      await Promise.all(workers.map((w) => ready(w, model.path)));
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    const pool = new WorkerPool(model, workers, options.threads, options.unrefIdle === true);
    for (const w of workers) {
      w.on("message", (m: WorkerReply) => pool.onReply(w, m));
      w.on("error", (e) => pool.fail(new PipelineError("stage_failed", `inference worker crashed: ${e.message}`, model.path, { cause: e })));
      // A worker killed without an exception (out of memory in native code) must not leave tiles waiting forever.
      w.on("exit", (code) => {
        if (!pool.closing) pool.fail(new PipelineError("stage_failed", `inference worker exited unexpectedly (code ${code})`, model.path));
      });
      pool.idle.push(w);
      if (pool.unrefIdle) w.unref();
    }
    return pool;
  }

  run(tile: Float32Array, h: number, w: number): Promise<Float32Array> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.queue.push({ req: { id: this.nextId++, tile, h, w }, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.fail(new PipelineError("stage_failed", "inference pool closed", this.model.path));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop() as Worker;
      const job = this.queue.shift() as Job;
      this.busy.set(w, job);
      // A busy worker keeps the process alive: its reply is awaited (an idle one may be unref'd).
      if (this.unrefIdle) w.ref();
      // Transferred, not copied: the caller never touches a tile again once submitted.
      w.postMessage(job.req, [job.req.tile.buffer as ArrayBuffer]);
    }
  }

  private onReply(w: Worker, m: WorkerReply): void {
    const job = this.busy.get(w);
    if (!job || (m.kind !== "done" && m.kind !== "error")) return;
    this.busy.delete(w);
    this.idle.push(w);
    if (this.unrefIdle) w.unref();
    if (m.kind === "done") job.resolve(m.probs);
    else job.reject(new PipelineError("stage_failed", `inference failed: ${m.message}`, this.model.path));
    this.dispatch();
  }

  private fail(e: PipelineError): void {
    this.broken ??= e;
    for (const job of [...this.busy.values(), ...this.queue.splice(0)]) job.reject(e);
    this.busy.clear();
  }
}

function ready(w: Worker, modelPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: WorkerReply) => {
      cleanup();
      if (m.kind === "ready") resolve();
      else reject(new PipelineError("bad_input", `onnxruntime cannot load the model: ${m.kind === "failed" ? m.message : m.kind}`, modelPath));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new PipelineError("stage_failed", `inference worker failed to start: ${e.message}`, modelPath, { cause: e }));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new PipelineError("stage_failed", `inference worker exited with code ${code} before it was ready`, modelPath));
    };
    const cleanup = () => {
      w.off("message", onMessage);
      w.off("error", onError);
      w.off("exit", onExit);
    };
    w.on("message", onMessage);
    w.on("error", onError);
    w.on("exit", onExit);
  });
}
