import type { EventEmitter } from "node:events";
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

/** Fired once by the edits router when it first opens the folder's editor (the first edit, review or token use). */
export type EditorOpened = EventEmitter<{ open: [Editor] }>;

function sinceOf(req: Request): number | undefined {
  const raw = req.get("Last-Event-ID") ?? (typeof req.query.since === "string" ? req.query.since : undefined);
  return raw !== undefined && /^\d{1,9}$/.test(raw) ? Number(raw) : undefined;
}

function startStream(req: Request, res: Response): { closed: () => boolean; onClose: (f: () => void) => void } {
  res.status(200);
  res.set({ "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache, no-transform", Connection: "keep-alive", "X-Accel-Buffering": "no" });
  res.flushHeaders();
  res.write(`retry: 2000\n\n`);
  const beat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
  beat.unref();
  let closed = false;
  const cleanups: (() => void)[] = [() => clearInterval(beat)];
  req.on("close", () => {
    closed = true;
    for (const f of cleanups.splice(0)) f();
  });
  return { closed: () => closed, onClose: (f) => (closed ? f() : cleanups.push(f)) };
}

/** Replays versions after `since` from the log, then forwards the editor's live events until the client leaves. */
function attach(editor: Editor, res: Response, since: number, onClose: (f: () => void) => void): void {
  for (const op of editor.ops(since)) {
    send(res, "version", { version: op.version, op: op.kind, operation_id: op.id, user: op.user, time: op.time, base: op.base, inputs: op.inputs, segments: op.outputs }, String(op.version));
  }
  const onVersion = (r: EditResult) => send(res, "version", versionEvent(r), String(r.version));
  const onMeasured = (m: { version: number; segments: number[] }) => send(res, "measured", m);
  const onReview = (r: ReviewRecord) => send(res, "review", { version: r.version, op: "review", segments: [r.segment], segment: r.segment, status: r.status, comment: r.comment, user: r.user, time: r.time });
  editor.on("version", onVersion);
  editor.on("measured", onMeasured);
  editor.on("review", onReview);
  onClose(() => {
    editor.off("version", onVersion);
    editor.off("measured", onMeasured);
    editor.off("review", onReview);
  });
}

/**
 * `GET /api/events`: server-sent events. `version` for each committed edit (id = the version, so a browser
 * reconnecting with Last-Event-ID, or a client passing `?since=`, first receives the versions it missed from
 * the log), `measured` when edited segments have new rows and meshes, `review` for review changes.
 */
export function eventStream(editor: Editor) {
  return (req: Request, res: Response): void => {
    const since = sinceOf(req) ?? editor.version;
    const stream = startStream(req, res);
    send(res, "hello", { version: editor.version, measured_version: editor.measuredVersion });
    attach(editor, res, since, stream.onClose);
  };
}

/**
 * The stream for a folder that has never been edited: every viewer opens one, and opening the editor here
 * would create a proofreading database in any folder merely looked at. It says version 0 and attaches once
 * something else opens the editor, replaying from version 0 so the first edit is not missed.
 */
export function pendingEventStream(opened: EditorOpened) {
  return (req: Request, res: Response): void => {
    const since = sinceOf(req) ?? 0;
    const stream = startStream(req, res);
    send(res, "hello", { version: 0, measured_version: 0 });
    const onOpen = (editor: Editor) => {
      if (!stream.closed()) attach(editor, res, since, stream.onClose);
    };
    opened.once("open", onOpen);
    stream.onClose(() => opened.off("open", onOpen));
  };
}
