import type { ErrorRequestHandler, Response } from "express";

/** The API's one error type: a stable code and the HTTP status it answers with. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function sendError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/** Last handler: every failure leaves as `{error: {code, message}}`; unexpected ones as 500 without internals. */
export const errorHandler: ErrorRequestHandler = (err: unknown, _req, res, next) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  if (err instanceof ApiError) {
    sendError(res, err.status, err.code, err.message);
    return;
  }
  // body-parser and friends mark client errors with a 4xx `status`.
  const status = (err as { status?: unknown }).status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    const type = (err as { type?: unknown }).type;
    sendError(res, status, typeof type === "string" ? type : "bad_request", (err as Error).message);
    return;
  }
  sendError(res, 500, "internal", "internal server error");
};
