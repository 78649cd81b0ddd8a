import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import * as path from "node:path";
import express, { Router, type NextFunction, type Request, type Response } from "express";
import { z } from "zod";
import { EDITS_DB, EDITS_DIR, EditDb, type OpRecord } from "../edits/db.js";
import { Editor, type EditorOptions } from "../edits/editor.js";
import { FIGURES_PREFIX, VersionFigures } from "../edits/figures.js";
import type { EditRequest } from "../edits/plan.js";
import { openSession, readGate, requireRole, sessionCookie, whoAmI } from "./auth.js";
import { ApiError } from "./errors.js";
import { eventStream, pendingEventStream, type EditorOpened } from "./events.js";
import { contentType, fileServer } from "./files.js";
import { reviewRoutes, segmentsTable } from "./edits-review.js";

/** Edit bodies are a few ids and seed points; 64 KiB leaves room for ~1000 seeds. */
export const EDIT_BODY_LIMIT = 64 * 1024;

export interface EditsRouterOptions {
  root: string;
  /** Reads (layers, API) need a viewer token too. Default: open, or VEMSCOPE_AUTH_READS=1. */
  authReads?: boolean;
  editor?: EditorOptions;
}

const segmentId = z.number().int().min(1).max(0xffffffff);
const base = z.number().int().min(0);
const point = z.tuple([z.number().finite(), z.number().finite(), z.number().finite()]);
const MergeBody = z.strictObject({ base, segments: z.tuple([segmentId, segmentId]) });
const SplitBody = z.strictObject({
  base,
  segment: segmentId,
  seeds: z.array(z.strictObject({ point, group: z.union([z.string().min(1).max(64), z.number().int()]) })).min(2).max(1000),
});
const UndoBody = z.strictObject({ base, operation_id: z.number().int().min(1) });

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw new ApiError(400, "bad_body", `${where}${issue?.message ?? "invalid body"}`);
  }
  return parsed.data;
}

const json = express.json({ limit: EDIT_BODY_LIMIT, type: () => true });
export function readJson(req: Request, res: Response, next: NextFunction): void {
  json(req, res, (err?: unknown) => {
    if (err === undefined || err === null) {
      next();
      return;
    }
    const status = (err as { status?: unknown }).status;
    if (status === 413) next(new ApiError(413, "too_large", `an edit body may be at most ${EDIT_BODY_LIMIT} bytes`, { cause: err }));
    else next(new ApiError(400, "bad_json", `the body is not valid JSON: ${(err as Error).message}`, { cause: err }));
  });
}

function publicOp(op: OpRecord) {
  return { operation_id: op.id, kind: op.kind, user: op.user, time: op.time, base: op.base, version: op.version, params: op.params, inputs: op.inputs, outputs: op.outputs };
}

const integerParam = (s: string | undefined, what: string): number => {
  if (s === undefined || !/^\d{1,9}$/.test(s)) throw new ApiError(400, "bad_path", `${what} must be a non-negative integer`);
  return Number(s);
};

/**
 * Proofreading: versioned edits of the segmentation, their log and events, reviews, and the versioned
 * layer files (`/v/<n>/...`; `/precomputed/...` = the latest version, or `?v=<n>`). Mounted before the
 * plain file server, which answers whatever the versions do not hold.
 */
export function editsRouter(options: EditsRouterOptions): Router {
  const root = path.resolve(options.root);
  const dbFile = path.join(root, EDITS_DIR, EDITS_DB);
  let db: EditDb | undefined;
  const getDb = () => (db ??= new EditDb(dbFile));
  let opening: Promise<Editor> | undefined;
  // Event streams of a never-edited folder wait on this instead of opening (creating) the database.
  const opened: EditorOpened = new EventEmitter();
  opened.setMaxListeners(0);
  const editor = (): Promise<Editor> => {
    if (opening === undefined) {
      const p = Editor.open(root, getDb(), options.editor);
      opening = p;
      p.then(
        (e) => opened.emit("open", e),
        () => {
          if (opening === p) opening = undefined;
        },
      );
    }
    return opening;
  };
  // Folders that were never edited are served as they are, without opening (or creating) the database.
  const edited = () => opening !== undefined || existsSync(dbFile);
  if (existsSync(dbFile)) editor().catch(() => undefined);

  const authReads = options.authReads ?? process.env.VEMSCOPE_AUTH_READS === "1";
  const editorOnly = requireRole(getDb, "editor");
  const router = Router();
  router.use(readGate(getDb, { authReads }));

  router.get("/api/edits/version", async (_req, res) => {
    const e = await editor();
    res.json({ version: e.version, measured_version: e.measuredVersion, max_id: e.maxId });
  });
  router.get("/api/edits", async (req, res) => {
    const since = req.query.since === undefined ? 0 : integerParam(String(req.query.since), "since");
    const e = await editor();
    res.json({ version: e.version, operations: e.ops(since).map(publicOp) });
  });
  router.get("/api/edits/:id", async (req, res) => {
    const id = integerParam(req.params.id, "operation id");
    const op = getDb().op(id);
    if (!op) throw new ApiError(404, "unknown_operation", `no operation ${id}`);
    res.json(publicOp(op));
  });

  const submit = async (req: Request, res: Response, edit: EditRequest) => {
    const user = req.vemscopeUser?.user ?? "anonymous";
    const result = await (await editor()).edit(edit, user);
    res.status(200).json(result);
  };
  router.post("/api/edits/merge", editorOnly, readJson, async (req, res) => {
    const b = parseBody(MergeBody, req.body);
    await submit(req, res, { kind: "merge", base: b.base, segments: b.segments });
  });
  router.post("/api/edits/split", editorOnly, readJson, async (req, res) => {
    const b = parseBody(SplitBody, req.body);
    await submit(req, res, { kind: "split", base: b.base, segment: b.segment, seeds: b.seeds });
  });
  for (const kind of ["undo", "redo"] as const) {
    router.post(`/api/edits/${kind}`, editorOnly, readJson, async (req, res) => {
      const b = parseBody(UndoBody, req.body);
      await submit(req, res, { kind, base: b.base, operation: b.operation_id });
    });
  }

  // graphene's shapes (Neuroglancer's graphene source): merge [[id,x,y,z],[id,x,y,z]], split {sources, sinks}.
  // graphene sends no base version: `?base=` may add one; without it the edit applies to the current version.
  const grapheneBase = async (req: Request) => (req.query.base !== undefined ? integerParam(String(req.query.base), "base") : (await editor()).version);
  const graphenePoint = z.tuple([z.union([z.string().regex(/^\d{1,10}$/), segmentId]), z.number(), z.number(), z.number()]);
  router.post("/api/graphene/merge", editorOnly, readJson, async (req, res) => {
    const [a, b] = parseBody(z.tuple([graphenePoint, graphenePoint]), req.body);
    await submit(req, res, { kind: "merge", base: await grapheneBase(req), segments: [Number(a[0]), Number(b[0])] });
  });
  router.post("/api/graphene/split", editorOnly, readJson, async (req, res) => {
    const b = parseBody(z.strictObject({ sources: z.array(graphenePoint).min(1).max(500), sinks: z.array(graphenePoint).min(1).max(500) }), req.body);
    const ids = new Set([...b.sources, ...b.sinks].map((p) => Number(p[0])));
    if (ids.size !== 1) throw new ApiError(400, "bad_body", "sources and sinks must all lie on one segment");
    const seeds = [...b.sources.map((p) => ({ point: [p[1], p[2], p[3]] as [number, number, number], group: "sources" })), ...b.sinks.map((p) => ({ point: [p[1], p[2], p[3]] as [number, number, number], group: "sinks" }))];
    await submit(req, res, { kind: "split", base: await grapheneBase(req), segment: [...ids][0], seeds });
  });

  router.get("/api/events", async (req, res) => {
    if (edited()) eventStream(await editor())(req, res);
    else pendingEventStream(opened)(req, res);
  });
  // Lets the viewer check a pasted token (and show whose it is) before the first edit.
  router.get("/api/auth/me", (req, res) => {
    // No database yet means no token exists; opening one here would create it in a folder only looked at.
    if (!edited()) throw new ApiError(401, "bad_token", "this folder has no tokens yet (vemscope token create)");
    res.json(whoAmI(getDb, req));
  });
  // The viewer's reads under --auth-reads: Neuroglancer's chunk and mesh requests cannot carry a header, so
  // the viewer trades its token for a cookie the browser then sends (server/api/auth.ts).
  router.post("/api/auth/session", (req, res) => {
    if (!edited()) throw new ApiError(401, "bad_token", "this folder has no tokens yet (vemscope token create)");
    res.json(openSession(getDb, req, res));
  });
  router.delete("/api/auth/session", (req, res) => {
    res.setHeader("Set-Cookie", sessionCookie(undefined, req.secure));
    res.status(204).end();
  });

  reviewRoutes(router, editor, getDb, editorOnly, readJson);

  router.get("/api/segments", async (req, res, next) => {
    if (!edited()) {
      next();
      return;
    }
    await segmentsTable(await editor(), getDb, req, res);
  });

  const servers = new Map<string, ReturnType<typeof fileServer>>();
  const serverFor = (dir: string) => {
    let s = servers.get(dir);
    if (!s) {
      s = fileServer(dir);
      servers.set(dir, s);
    }
    return s;
  };
  const figures = new WeakMap<Editor, VersionFigures>();
  /** report/figures/<name> of an edited version, rendered from its rows (edits/figures.ts); false where they are the run's. */
  const serveFigure = async (res: Response, e: Editor, version: number, name: string): Promise<boolean> => {
    let f = figures.get(e);
    if (!f) figures.set(e, (f = new VersionFigures(e.index)));
    const files = f.of(version);
    if (files === undefined) return false;
    const text = (await files).get(name);
    if (text === undefined) throw new ApiError(404, "not_found", `no such file in version ${version}: ${FIGURES_PREFIX}${name}`);
    res.setHeader("Content-Type", contentType(name));
    res.setHeader("Cache-Control", "no-cache");
    res.send(text);
    return true;
  };
  /** Serves `key` as it was in `version`; `fallback` (undefined) when the version holds no copy of its own. */
  const serveVersioned = async (req: Request, res: Response, e: Editor, version: number, key: string): Promise<boolean> => {
    if (key.startsWith(FIGURES_PREFIX) && !key.slice(FIGURES_PREFIX.length).includes("/")) return serveFigure(res, e, version, key.slice(FIGURES_PREFIX.length));
    const resolved = e.index.resolve(version, key);
    if (resolved === undefined) return false;
    if ("deleted" in resolved) throw new ApiError(404, "not_found", `no such file in version ${version}: ${key}`);
    req.url = `/${key.split("/").map(encodeURIComponent).join("/")}`;
    await serverFor(resolved.dir)(req, res);
    return true;
  };
  const keyOf = (rest: string[] | string | undefined) => (Array.isArray(rest) ? rest.join("/") : (rest ?? ""));

  // The summary follows the measured edits (server/edits/table.ts writeSummary); unedited, the file's own.
  router.get("/api/summary", async (req, res, next) => {
    if (!edited()) {
      next();
      return;
    }
    const e = await editor();
    if (!(await serveVersioned(req, res, e, e.version, "report/summary.json"))) next();
  });

  router.get("/v/:version/{*rest}", async (req, res) => {
    const e = await editor();
    const version = integerParam(req.params.version, "version");
    if (version > e.version) throw new ApiError(404, "unknown_version", `no version ${version}; the latest is ${e.version}`);
    const key = keyOf(req.params.rest);
    if (await serveVersioned(req, res, e, version, key)) return;
    req.url = `/${key.split("/").map(encodeURIComponent).join("/")}`;
    await serverFor(root)(req, res);
  });
  router.get("/precomputed/{*rest}", async (req, res, next) => {
    if (!edited()) {
      next();
      return;
    }
    const e = await editor();
    const v = req.query.v;
    const version = typeof v === "string" && /^\d{1,9}$/.test(v) ? Math.min(Number(v), e.version) : e.version;
    if (!(await serveVersioned(req, res, e, version, keyOf(req.params.rest)))) next();
  });
  return router;
}
