/**
 * One onnxruntime session that turns a normalised tile into per-class probabilities. Used in-process and
 * inside each pool worker (tile-worker.ts), so both paths compute exactly the same numbers.
 */
import * as ort from "onnxruntime-node";

export interface EngineOptions {
  /** Intra-op threads of this session. */
  threads: number;
  /** Output channels the model metadata promised (checked against what the graph returns). */
  channels: number;
  /** The graph outputs logits (softmax here) rather than probabilities (model.ts ModelInfo.probabilities). */
  softmax: boolean;
}

/** onnxruntime's options for one tile session (also the segment bench's bare sessions, to compare like with like). */
export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    // A memory pattern (one block planned per input shape) held ~170 MB more per worker at 1024^2 tiles
    // (cdeep3m, 2 workers: peak 1.36 vs 0.95 GB) for the same time and bytes (session 11).
    enableMemPattern: false,
  };
}

export class TileEngine {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly input: string,
    private readonly output: string,
    private readonly channels: number,
    private readonly softmax: boolean,
  ) {}

  static async create(bytes: Uint8Array, options: EngineOptions): Promise<TileEngine> {
    const session = await ort.InferenceSession.create(bytes, sessionOptions(options.threads));
    const input = session.inputNames[0];
    const output = session.outputNames[0];
    if (session.inputNames.length !== 1 || input === undefined || output === undefined) {
      throw new Error(`expected one input and at least one output, found inputs [${session.inputNames.join(", ")}]`);
    }
    return new TileEngine(session, input, output, options.channels, options.softmax);
  }

  /** Softmax probabilities, channel-major [channels, h, w], for one z-scored h x w tile. */
  async run(tile: Float32Array, h: number, w: number): Promise<Float32Array> {
    const result = await this.session.run({ [this.input]: new ort.Tensor("float32", tile, [1, 1, h, w]) });
    const t = result[this.output];
    if (!t || t.type !== "float32") throw new Error(`output '${this.output}' is not a float32 tensor`);
    const dims = t.dims;
    if (dims.length !== 4 || dims[1] !== this.channels || dims[2] !== h || dims[3] !== w) {
      throw new Error(`output shape [${dims.join(", ")}] is not [1, ${this.channels}, ${h}, ${w}] (classes in the metadata vs the graph)`);
    }
    const values = t.data as Float32Array;
    if (this.softmax) softmaxChannels(values, this.channels, h * w);
    return values;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** In-place softmax over channels of a channel-major [c, n] array, channel-outer loops for locality. */
export function softmaxChannels(a: Float32Array, c: number, n: number): void {
  const max = a.slice(0, n);
  for (let k = 1; k < c; k++) {
    const o = k * n;
    for (let i = 0; i < n; i++) {
      const v = a[o + i] as number;
      if (v > (max[i] as number)) max[i] = v;
    }
  }
  const sum = new Float32Array(n);
  for (let k = 0; k < c; k++) {
    const o = k * n;
    for (let i = 0; i < n; i++) {
      const e = Math.exp((a[o + i] as number) - (max[i] as number));
      a[o + i] = e;
      sum[i] = (sum[i] as number) + e;
    }
  }
  for (let k = 0; k < c; k++) {
    const o = k * n;
    for (let i = 0; i < n; i++) a[o + i] = (a[o + i] as number) / (sum[i] as number);
  }
}
