/**
 * Proofreading on the client: the edit API (server/api/edits.ts, edits-review.ts), the editor token, the
 * undo/redo history derived from the operation log, and versioned source URLs. No DOM beyond fetch and
 * localStorage, no Neuroglancer.
 */

export type OpKind = "merge" | "split" | "undo" | "redo";
export type ReviewStatus = "unreviewed" | "ok" | "needs-fix";
export const REVIEW_STATUSES: readonly ReviewStatus[] = ["unreviewed", "ok", "needs-fix"];

/** What every edit route answers (server/edits/editor.ts EditResult). */
export interface EditResult {
  operation_id: number;
  version: number;
  kind: OpKind;
  user: string;
  time: string;
  base: number;
  inputs: number[];
  outputs: number[];
}

/** One row of `GET /api/edits`. */
export interface Operation extends EditResult {
  params: unknown;
}

export interface VersionInfo {
  version: number;
  measured_version: number;
  max_id: number;
}

export interface Review {
  segment: number;
  status: ReviewStatus;
  comment: string;
  user: string | null;
  time: string | null;
  version: number | null;
}

export interface Seed {
  /** Voxel-centre-free nm coordinates, as the server's split takes them. */
  point: [number, number, number];
  group: string;
}

/** An API answer other than 2xx: `status` 409 is a conflict (the base version is stale). */
export class EditError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  get isConflict(): boolean {
    return this.status === 409;
  }
}

// ---------------------------------------------------------------------------------------------
// Token: localStorage, never the viewer state (which travels in share links, and links are read-only).

const TOKEN_KEY = "vemscope-token";

function storage(): Storage | undefined {
  try {
    return window.localStorage;
  } catch {
    // Storage can be disabled (privacy settings, sandboxed frames); the token then lives for the page only.
    return undefined;
  }
}

let memoryToken: string | null = null;

export function getToken(): string | null {
  return storage()?.getItem(TOKEN_KEY) ?? memoryToken;
}

export function setToken(token: string | null): void {
  const t = token?.trim() || null;
  memoryToken = t;
  const s = storage();
  if (!s) return;
  if (t === null) s.removeItem(TOKEN_KEY);
  else s.setItem(TOKEN_KEY, t);
}

/**
 * Under `serve --auth-reads` Neuroglancer's own requests (chunks, meshes, the state) carry no header: the
 * server trades the stored token for an HttpOnly cookie that the browser sends with them (same origin), so
 * the token never enters a layer URL, and the viewer state and share links stay free of it. Called before
 * the initial state loads and whenever the token changes; failures are left to the reads to report (a
 * server with open reads, or without tokens, needs no session).
 */
export async function openSession(): Promise<void> {
  const token = getToken();
  if (token === null) return;
  try {
    await fetch("api/auth/session", { method: "POST", headers: { authorization: `Bearer ${token}`, accept: "application/json" } });
  } catch (error) {
    console.warn("vemscope: could not open a read session", error);
  }
}

/** Drops the read session's cookie (Forget). */
export async function closeSession(): Promise<void> {
  try {
    await fetch("api/auth/session", { method: "DELETE" });
  } catch (error) {
    console.warn("vemscope: could not close the read session", error);
  }
}

/**
 * `?token=` in the page URL (e.g. a link an admin hands out) is stored and then removed from the address
 * bar, so it is not copied along with the view. Returns whether one was taken.
 */
export function takeTokenFromUrl(location: Location, history: History): boolean {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token === null) return false;
  setToken(token);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  return true;
}

// ---------------------------------------------------------------------------------------------
// API

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

const numbers = (x: unknown): number[] => (Array.isArray(x) ? x.filter((v): v is number => typeof v === "number") : []);

async function call(method: "GET" | "POST" | "PUT", url: string, body?: unknown, auth = false): Promise<unknown> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const token = getToken();
  // Reads are open unless the server runs with --auth-reads; a token on them then lets them through.
  if (token !== null) headers.authorization = `Bearer ${token}`;
  else if (auth) throw new EditError(401, "token_required", "enter an editor token first (Proofreading panel, Token)");
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json: unknown = null;
  try {
    json = await response.json();
  } catch {
    // Non-JSON answers (a proxy's error page) are reported by their status line.
  }
  if (!response.ok) {
    const err = isRecord(json) && isRecord(json.error) ? json.error : {};
    const message = typeof err.message === "string" ? err.message : `${response.status} ${response.statusText}`;
    throw new EditError(response.status, typeof err.code === "string" ? err.code : "http_error", message);
  }
  return json;
}

function toResult(x: unknown): EditResult {
  if (!isRecord(x) || typeof x.version !== "number" || typeof x.operation_id !== "number") throw new Error("the edit API answered without {operation_id, version}");
  return {
    operation_id: x.operation_id,
    version: x.version,
    kind: x.kind === "merge" || x.kind === "split" || x.kind === "undo" || x.kind === "redo" ? x.kind : "merge",
    user: typeof x.user === "string" ? x.user : "",
    time: typeof x.time === "string" ? x.time : "",
    base: typeof x.base === "number" ? x.base : 0,
    inputs: numbers(x.inputs),
    outputs: numbers(x.outputs),
  };
}

export async function fetchVersion(): Promise<VersionInfo> {
  const x = await call("GET", "api/edits/version");
  if (!isRecord(x) || typeof x.version !== "number") throw new Error("api/edits/version answered without a version");
  return { version: x.version, measured_version: typeof x.measured_version === "number" ? x.measured_version : x.version, max_id: typeof x.max_id === "number" ? x.max_id : 0 };
}

export async function fetchOperations(since = 0): Promise<Operation[]> {
  const x = await call("GET", `api/edits?since=${since}`);
  const ops = isRecord(x) && Array.isArray(x.operations) ? x.operations : [];
  return ops.map((o: unknown) => ({ ...toResult(o), params: isRecord(o) ? o.params : null }));
}

export async function whoAmI(): Promise<{ user: string; role: string }> {
  const x = await call("GET", "api/auth/me", undefined, true);
  if (!isRecord(x) || typeof x.user !== "string") throw new Error("api/auth/me answered without a user");
  return { user: x.user, role: typeof x.role === "string" ? x.role : "" };
}

export async function merge(base: number, a: number, b: number): Promise<EditResult> {
  return toResult(await call("POST", "api/edits/merge", { base, segments: [a, b] }, true));
}

export async function split(base: number, segment: number, seeds: readonly Seed[]): Promise<EditResult> {
  return toResult(await call("POST", "api/edits/split", { base, segment, seeds }, true));
}

export async function undoRedo(kind: "undo" | "redo", base: number, operation: number): Promise<EditResult> {
  return toResult(await call("POST", `api/edits/${kind}`, { base, operation_id: operation }, true));
}

function toReview(x: unknown, segment: number): Review {
  const r = isRecord(x) ? x : {};
  const status = REVIEW_STATUSES.find((s) => s === r.status) ?? "unreviewed";
  return {
    segment,
    status,
    comment: typeof r.comment === "string" ? r.comment : "",
    user: typeof r.user === "string" ? r.user : null,
    time: typeof r.time === "string" ? r.time : null,
    version: typeof r.version === "number" ? r.version : null,
  };
}

export async function fetchReview(segment: number): Promise<Review> {
  return toReview(await call("GET", `api/review/${segment}`), segment);
}

export async function putReview(segment: number, status: ReviewStatus, comment: string): Promise<Review> {
  return toReview(await call("PUT", `api/review/${segment}`, { status, comment }, true), segment);
}

// ---------------------------------------------------------------------------------------------
// History: which operations are undone, and what Undo / Redo act on.

export interface HistoryEntry {
  op: Operation;
  /** For merges and splits: whether the latest undo/redo of it left it undone. */
  undone: boolean;
}

/**
 * Newest first. An undo of X marks X undone, a redo of X marks it done again; undo/redo rows themselves
 * are listed (they are operations in the log) but are acted on through the operation they name.
 */
export function historyEntries(ops: readonly Operation[]): HistoryEntry[] {
  const undone = new Map<number, boolean>();
  const sorted = [...ops].sort((a, b) => a.version - b.version);
  for (const op of sorted) {
    const target = targetOf(op);
    if (target !== undefined) undone.set(target, op.kind === "undo");
  }
  return sorted.reverse().map((op) => ({ op, undone: op.kind === "merge" || op.kind === "split" ? (undone.get(op.operation_id) ?? false) : false }));
}

export function targetOf(op: Operation): number | undefined {
  if (op.kind !== "undo" && op.kind !== "redo") return undefined;
  const p = op.params;
  return isRecord(p) && typeof p.operation === "number" ? p.operation : undefined;
}

/** The newest merge/split that is not undone: what "Undo" undoes. */
export function undoCandidate(entries: readonly HistoryEntry[]): Operation | undefined {
  return entries.find((e) => (e.op.kind === "merge" || e.op.kind === "split") && !e.undone)?.op;
}

/** The operation named by the newest undo whose target is still undone: what "Redo" redoes. */
export function redoCandidate(entries: readonly HistoryEntry[]): Operation | undefined {
  const byId = new Map(entries.map((e) => [e.op.operation_id, e]));
  for (const e of entries) {
    if (e.op.kind !== "undo") continue;
    const target = targetOf(e.op);
    const t = target === undefined ? undefined : byId.get(target);
    if (t?.undone) return t.op;
  }
  return undefined;
}

export function describeOp(op: Operation): string {
  const ids = (xs: readonly number[]) => xs.join(", ");
  switch (op.kind) {
    case "merge":
      return `merge ${ids(op.inputs)} → ${ids(op.outputs)}`;
    case "split":
      return `split ${ids(op.inputs)} → ${ids(op.outputs)}`;
    case "undo":
    case "redo":
      return `${op.kind} #${targetOf(op) ?? "?"} (${ids(op.inputs)} → ${ids(op.outputs)})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Versioned source URLs

const LEGACY_SCHEME = "precomputed://";
const PIPELINE_SUFFIX = "|neuroglancer-precomputed:";

/** Splits a source URL into its kvstore part (`http://host/path?query`) and the pipeline after it. */
function splitSource(url: string): { store: string; pipeline: string } {
  // Neuroglancer rewrites `precomputed://X?q` to `X|neuroglancer-precomputed:?q` and then refuses the query
  // on the format; only the kvstore part may carry one, so legacy URLs are written in the pipeline form.
  if (url.startsWith(LEGACY_SCHEME)) return { store: url.slice(LEGACY_SCHEME.length), pipeline: PIPELINE_SUFFIX };
  const bar = url.indexOf("|");
  return bar < 0 ? { store: url, pipeline: "" } : { store: url.slice(0, bar), pipeline: url.slice(bar) };
}

/**
 * `precomputed://http://host/precomputed/segmentation` -> `http://host/precomputed/segmentation/?v=5&r=2|neuroglancer-precomputed:`.
 * The kvstore's query is carried onto every file Neuroglancer reads under the source (VIEWER-NOTES), so it
 * selects the version on the server and, being a new URL, bypasses Neuroglancer's chunk cache. `r` changes
 * when a version's meshes and rows are re-measured (same version, new files). Other parameters (a read
 * token) are kept.
 */
export function versionedSourceUrl(url: string, version: number, remeasured = 0): string {
  const { store, pipeline } = splitSource(url);
  const q = store.indexOf("?");
  const path = q < 0 ? store : store.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : store.slice(q + 1));
  params.set("v", String(version));
  if (remeasured > 0) params.set("r", String(remeasured));
  else params.delete("r");
  return `${path.endsWith("/") ? path : `${path}/`}?${params.toString()}${pipeline}`;
}

/** The `v` a source URL pins, or null when it shows the latest version. */
export function sourceVersion(url: string): number | null {
  const { store } = splitSource(url);
  const q = store.indexOf("?");
  if (q < 0) return null;
  const v = new URLSearchParams(store.slice(q + 1)).get("v");
  return v !== null && /^\d+$/.test(v) ? Number(v) : null;
}
