/** The pipeline's one error type: bad input or a stage failure, with the file it concerns. */
export type PipelineErrorCode =
  | "bad_input" // unreadable or malformed input file
  | "bad_argument" // a malformed option (e.g. --voxel)
  | "shape_mismatch" // labels and image disagree
  | "stage_failed";

export class PipelineError extends Error {
  override readonly name = "PipelineError";
  constructor(
    readonly code: PipelineErrorCode,
    message: string,
    /** The file or option the error is about; the CLI prints `file: message`. */
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super(file ? `${file}: ${message}` : message, options);
  }
}
