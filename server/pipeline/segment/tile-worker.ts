/** Pool worker: owns one TileEngine and answers tile requests from pool.ts, one at a time. */
import { parentPort, workerData } from "node:worker_threads";
import { TileEngine } from "./engine.js";

export interface WorkerInit {
  bytes: Uint8Array;
  threads: number;
  channels: number;
  softmax: boolean;
}

export interface TileRequest {
  id: number;
  tile: Float32Array;
  h: number;
  w: number;
}

export type WorkerReply =
  | { kind: "ready" }
  | { kind: "failed"; message: string }
  | { kind: "done"; id: number; probs: Float32Array }
  | { kind: "error"; id: number; message: string };

const port = parentPort;
if (!port) throw new Error("tile-worker.ts must run in a worker thread");
const init = workerData as WorkerInit;
const reply = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const engine = await TileEngine.create(init.bytes, { threads: init.threads, channels: init.channels, softmax: init.softmax });
  // Requests arrive one at a time (the pool waits for each answer), so runs never overlap here.
  port.on("message", (req: TileRequest) => {
    engine.run(req.tile, req.h, req.w).then(
      (probs) => reply({ kind: "done", id: req.id, probs }, [probs.buffer as ArrayBuffer]),
      (e: unknown) => reply({ kind: "error", id: req.id, message: e instanceof Error ? e.message : String(e) }),
    );
  });
  reply({ kind: "ready" });
} catch (e) {
  reply({ kind: "failed", message: e instanceof Error ? e.message : String(e) });
}
