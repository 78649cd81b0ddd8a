/** The one error type of the job system: a stable code and a cause. */
export type JobErrorCode =
  | "invalid_argument"
  | "invalid_task"
  | "unknown_kind"
  | "task_failed"
  | "queue";

export class JobError extends Error {
  override readonly name = "JobError";
  constructor(
    readonly code: JobErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
