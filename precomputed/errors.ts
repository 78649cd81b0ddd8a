/** The one error type of the precomputed library: a stable code, a JSON path or key where one applies, and a cause. */
export type PrecomputedErrorCode =
  | "invalid_info"
  | "invalid_chunk"
  | "invalid_argument"
  | "unsupported"
  | "not_found"
  | "invalid_key"
  | "io";

export class PrecomputedError extends Error {
  override readonly name = "PrecomputedError";
  constructor(
    readonly code: PrecomputedErrorCode,
    message: string,
    /** JSON path (e.g. `scales[1].chunk_sizes`) or storage key the error is about. */
    readonly path?: string,
    options?: { cause?: unknown },
  ) {
    super(path ? `${path}: ${message}` : message, options);
  }
}
