import type { Request, Response } from "express";
import type { Editor, EditResult } from "../edits/editor.js";
import type { ReviewRecord } from "../edits/db.js";

/** Comment lines keep proxies and browsers from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

function send(res: Response, event: string, data: unknown, id?: string): void {
  res.write(`${id !== undefined ? `id: ${id}\n` : ""}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

export function versionEvent(r: EditResult) {
  return { version: r.version, op: r.kind, operation_id: r.operation_id, user: r.user, time: r.time, base: r.base, inputs: r.inputs, segments: r.outputs };
}

/**
 * `GET /api/events`: server-sent events. `version` for each committed edit (id = the version, so a browser
 * reconnecting with Last-Event-ID, or a client passing `?since=`, first receives the versions it missed from
 * the log), `measured` when edited segments have new rows and meshes, `review` for review changes.
 */
export function eventStream(editor: Editor) {
  return (req: Request, res: Response): void => {
    const sinceRaw = req.get("Last-Event-ID") ?? (typeof req.query.since === "string" ? req.query.since : undefined);
    const since = sinceRaw !== undefined && /^\d{1,9}$/.test(sinceRaw) ? Number(sinceRaw) : editor.version;
    res.status(200);
    res.set({ "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache, no-transform", Connection: "keep-alive", "X-Accel-Buffering": "no" });
    res.flushHeaders();
    res.write(`retry: 2000\n\n`);
    send(res, "hello", { version: editor.version, measured_version: editor.measuredVersion });
    for (const op of editor.ops(since)) {
      send(res, "version", { version: op.version, op: op.kind, operation_id: op.id, user: op.user, time: op.time, base: op.base, inputs: op.inputs, segments: op.outputs }, String(op.version));
    }
    const onVersion = (r: EditResult) => send(res, "version", versionEvent(r), String(r.version));
    const onMeasured = (m: { version: number; segments: number[] }) => send(res, "measured", m);
    const onReview = (r: ReviewRecord) => send(res, "review", { version: r.version, op: "review", segments: [r.segment], segment: r.segment, status: r.status, comment: r.comment, user: r.user, time: r.time });
    editor.on("version", onVersion);
    editor.on("measured", onMeasured);
    editor.on("review", onReview);
    const beat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
    beat.unref();
    req.on("close", () => {
      clearInterval(beat);
      editor.off("version", onVersion);
      editor.off("measured", onMeasured);
      editor.off("review", onReview);
    });
  };
}
