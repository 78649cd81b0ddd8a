import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import Database from "better-sqlite3";
import express, { Router, type NextFunction, type Request, type Response } from "express";
import { ApiError } from "./errors.js";
import { originOf } from "./origin.js";

/** Neuroglancer states are a few KB to a few hundred KB; anything near a MiB is a mistake or abuse. */
export const STATE_LIMIT_BYTES = 1024 * 1024;
const ID_LENGTH = 10;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const STATE_ID = /^[0-9A-Za-z]{10}$/;

/** 10 base62 characters from the CSPRNG: ~59.5 bits, so ids cannot be enumerated, yet short enough to read out. */
export function newStateId(): string {
  let id = "";
  while (id.length < ID_LENGTH) {
    for (const byte of randomBytes(ID_LENGTH * 2)) {
      // 248 = 4 * 62: rejecting the top 8 byte values keeps every character equally likely.
      if (byte < 248 && id.length < ID_LENGTH) id += ALPHABET[byte % 62];
    }
  }
  return id;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS states (
  id TEXT PRIMARY KEY,
  body BLOB NOT NULL,
  sha256 TEXT NOT NULL UNIQUE,
  bytes INTEGER NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
-- Shared links must keep meaning what they meant when shared.
CREATE TRIGGER IF NOT EXISTS states_no_update BEFORE UPDATE ON states BEGIN SELECT RAISE(ABORT, 'states are immutable'); END;
CREATE TRIGGER IF NOT EXISTS states_no_delete BEFORE DELETE ON states BEGIN SELECT RAISE(ABORT, 'states are immutable'); END;
`;

export interface StoredState {
  body: Buffer;
  createdAt: string;
}

/**
 * Immutable Neuroglancer states in SQLite. The database is opened on first use, and created only by a
 * write, so serving a dataset nobody shares from leaves its folder untouched (and works read-only).
 */
export class StateStore {
  private db: Database.Database | undefined;
  constructor(readonly file: string) {}

  private open(create: boolean): Database.Database | undefined {
    if (this.db) return this.db;
    if (!create && !existsSync(this.file)) return undefined;
    try {
      mkdirSync(path.dirname(this.file), { recursive: true });
      const db = new Database(this.file);
      // WAL: readers (viewers opening links) never wait for a writer (someone sharing).
      db.pragma("journal_mode = WAL");
      db.exec(SCHEMA);
      this.db = db;
      return db;
    } catch (e) {
      throw new ApiError(500, "state_store", "the state store cannot be opened", { cause: e });
    }
  }

  /** Stores `body` (already validated) and returns its id; an identical state already stored keeps its id. */
  put(body: Buffer): { id: string; created: boolean } {
    const db = this.open(true);
    if (!db) throw new ApiError(500, "state_store", "the state store cannot be opened");
    const sha256 = createHash("sha256").update(body).digest("hex");
    const insert = db.prepare("INSERT INTO states (id, body, sha256, bytes, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
    const bySha = db.prepare<[string], { id: string }>("SELECT id FROM states WHERE sha256 = ?");
    // An id collision (1 in ~10^17 per pair) inserts nothing and finds nothing: draw again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = newStateId();
      insert.run(id, body, sha256, body.length, new Date().toISOString());
      const row = bySha.get(sha256);
      if (row) return { id: row.id, created: row.id === id };
    }
    throw new ApiError(500, "state_store", "could not allocate a state id");
  }

  get(id: string): StoredState | undefined {
    const db = this.open(false);
    if (!db) return undefined;
    const row = db
      .prepare<[string], { body: Buffer; created_at: string }>("SELECT body, created_at FROM states WHERE id = ?")
      .get(id);
    return row && { body: row.body, createdAt: row.created_at };
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }
}

function checkId(id: string | undefined): string {
  if (id === undefined || !STATE_ID.test(id)) {
    throw new ApiError(400, "bad_state_id", `state ids are ${ID_LENGTH} letters or digits`);
  }
  return id;
}

/** Rejects what Neuroglancer could not restore: bytes that are not UTF-8 JSON, or JSON that is not an object. */
export function checkStateBody(body: unknown): Buffer {
  if (!Buffer.isBuffer(body) || body.length === 0) throw new ApiError(400, "bad_json", "the request body must be a JSON object");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (e) {
    throw new ApiError(400, "bad_json", `the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ApiError(400, "not_object", `a Neuroglancer state is a JSON object, not ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`);
  }
  return body;
}

/** Any content type: Neuroglancer and `fetch(url, {body: string})` send text/plain, curl sends form encoding. */
const rawBody = express.raw({ type: () => true, limit: STATE_LIMIT_BYTES });
function readBody(req: Request, res: Response, next: NextFunction): void {
  rawBody(req, res, (err?: unknown) => {
    if (err === undefined || err === null) {
      next();
      return;
    }
    const status = (err as { status?: unknown }).status;
    if (status === 413) {
      next(new ApiError(413, "too_large", `a state may be at most ${STATE_LIMIT_BYTES} bytes`, { cause: err }));
      return;
    }
    next(err);
  });
}

function methodNotAllowed(allow: string) {
  return (req: Request, res: Response) => {
    res.set("Allow", allow);
    throw new ApiError(405, "method_not_allowed", `${req.method} is not allowed on ${req.path}: stored states are immutable`);
  };
}

/**
 * `POST /api/states`, `GET /api/states/:id`, and the short link `GET /s/:id`, which opens the viewer
 * on the stored state: Neuroglancer reads `#!<url>` (a scheme followed by ://) as "fetch the state
 * JSON from <url>" (ui/url_hash_binding.js), so the link needs no plugin code.
 */
export function statesRouter(store: StateStore): Router {
  const router = Router();
  router
    .route("/api/states")
    .post(readBody, (req, res) => {
      const body = checkStateBody(req.body);
      const { id, created } = store.put(body);
      res.status(created ? 201 : 200).location(`/api/states/${id}`).json({ id, url: `/s/${id}` });
    })
    .all(methodNotAllowed("POST"));
  router
    .route("/api/states/:id")
    .get((req, res) => {
      const id = checkId(req.params.id);
      const state = store.get(id);
      if (!state) throw new ApiError(404, "not_found", `no state ${id}`);
      res.set("Cache-Control", "public, max-age=31536000, immutable");
      res.set("Last-Modified", new Date(state.createdAt).toUTCString());
      res.type("application/json").send(state.body);
    })
    .all(methodNotAllowed("GET, HEAD"));
  router
    .route("/s/:id")
    .get((req, res) => {
      const id = checkId(req.params.id);
      if (!store.get(id)) throw new ApiError(404, "not_found", `no state ${id}`);
      res.redirect(302, `/#!${originOf(req)}/api/states/${id}`);
    })
    .all(methodNotAllowed("GET, HEAD"));
  return router;
}
