/**
 * Keeps the viewer on the server's newest segmentation version: listens to `GET /api/events`, and for
 * each new version updates the organelles layer's segment list (retired ids out, new ids in), points its
 * source at the version (`?v=<n>`, which also makes Neuroglancer refetch chunks and meshes), and refreshes
 * the segment table. With "follow" off, new versions are only announced until `catchUp()` is called (the
 * proofreading panel's Refresh), so a reviewer's view does not change under them.
 */
import { ORGANELLES_LAYER, type ViewerBridge } from "./bridge.js";
import { refreshSegmentTable } from "./data.js";
import { fetchOperations, getToken, sourceVersion, versionedSourceUrl, type EditResult, type ReviewStatus } from "./proofreading.js";

export type Connection = "connecting" | "live" | "reconnecting" | "unavailable";

export interface ReviewEvent {
  segment: number;
  status: ReviewStatus;
  comment: string;
  user: string;
}

export interface LiveState {
  /** The version the viewer shows (its segment list and source), null until known. */
  shown: number | null;
  /** The newest version the server has announced. */
  latest: number;
  connection: Connection;
  /** The last event that changed something, for the panel's status line. */
  lastEvent: string;
}

/** Pointing the organelles layer at a version waits for the layer this long at most (60 x 500 ms). */
const SOURCE_RETRIES = 60;
const SOURCE_RETRY_MS = 500;

/** Coalesces the table refetches of a burst of events (a replay after reconnecting, edits + measurement). */
const TABLE_REFRESH_MS = 150;

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

const ids = (x: unknown): number[] => (Array.isArray(x) ? x.filter((v): v is number => typeof v === "number") : []);

export class Live {
  readonly state: LiveState = { shown: null, latest: 0, connection: "connecting", lastEvent: "" };
  private readonly listeners = new Set<() => void>();
  private readonly reviewListeners = new Set<(r: ReviewEvent) => void>();
  private source: EventSource | undefined;
  /** Re-measurements seen at the shown version: part of the source URL, so meshes are refetched. */
  private remeasured = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private tableTimer: ReturnType<typeof setTimeout> | undefined;
  private sourceRetry: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly bridge: ViewerBridge,
    private readonly follow: () => boolean,
  ) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onReview(listener: (r: ReviewEvent) => void): () => void {
    this.reviewListeners.add(listener);
    return () => this.reviewListeners.delete(listener);
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Opens the event stream. Call once the initial state's layers have loaded. */
  start(): void {
    if (this.source) return;
    const token = getToken();
    // EventSource cannot send headers; `?token=` is what a server with --auth-reads accepts for reads.
    const url = token === null ? "api/events" : `api/events?token=${encodeURIComponent(token)}`;
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => this.setConnection("live");
    source.onerror = () => this.setConnection(source.readyState === EventSource.CLOSED ? "unavailable" : "reconnecting");
    source.addEventListener("hello", (e) => this.onHello(e.data));
    source.addEventListener("version", (e) => this.onVersion(e.data));
    source.addEventListener("measured", (e) => this.onMeasured(e.data));
    source.addEventListener("review", (e) => this.onReviewEvent(e.data));
  }

  stop(): void {
    this.source?.close();
    this.source = undefined;
    clearTimeout(this.tableTimer);
  }

  private setConnection(c: Connection): void {
    if (this.state.connection === c) return;
    this.state.connection = c;
    this.notify();
  }

  private parse(data: unknown): Record<string, unknown> | undefined {
    try {
      const x: unknown = JSON.parse(String(data));
      return isRecord(x) ? x : undefined;
    } catch {
      return undefined;
    }
  }

  /** The version the page's state shows: its `?v=`, or 0 (state.json lists version 0's segments). */
  private initialShown(): number {
    const url = this.bridge.layerSourceUrl(ORGANELLES_LAYER);
    return (url === undefined ? null : sourceVersion(url)) ?? 0;
  }

  private onHello(data: unknown): void {
    const x = this.parse(data);
    if (!x || typeof x.version !== "number") return;
    this.state.latest = Math.max(this.state.latest, x.version);
    this.state.shown ??= this.initialShown();
    this.notify();
    if (this.state.latest > this.state.shown && this.follow()) this.catchUpQuietly();
  }

  private onVersion(data: unknown): void {
    const x = this.parse(data);
    if (!x || typeof x.version !== "number") return;
    const event: EditResult = {
      version: x.version,
      operation_id: typeof x.operation_id === "number" ? x.operation_id : 0,
      kind: x.op === "merge" || x.op === "split" || x.op === "undo" || x.op === "redo" ? x.op : "merge",
      user: typeof x.user === "string" ? x.user : "",
      time: typeof x.time === "string" ? x.time : "",
      base: typeof x.base === "number" ? x.base : 0,
      inputs: ids(x.inputs),
      outputs: ids(x.segments),
    };
    this.state.latest = Math.max(this.state.latest, event.version);
    this.state.lastEvent = `v${event.version}: ${event.kind} by ${event.user}`;
    this.notify();
    if (this.follow()) this.catchUpQuietly([event]);
  }

  private onMeasured(data: unknown): void {
    const x = this.parse(data);
    if (!x || typeof x.version !== "number") return;
    const version = x.version;
    const segments = ids(x.segments);
    // Queued behind the catch-up of the version it measured (that version's event came first), so the
    // check below sees the version shown once that catch-up is done.
    void this.enqueue(async () => {
      const shown = this.state.shown;
      // A measurement at or below the shown version changed files the shown version reads (meshes, rows).
      if (shown === null || version > shown) return;
      this.state.lastEvent = `v${version}: re-measured ${segments.join(", ")}`;
      this.remeasured++;
      this.reloadSource();
      this.scheduleTable();
      this.notify();
    });
  }

  private onReviewEvent(data: unknown): void {
    const x = this.parse(data);
    if (!x || typeof x.segment !== "number") return;
    const status = x.status === "ok" || x.status === "needs-fix" ? x.status : "unreviewed";
    const review: ReviewEvent = { segment: x.segment, status, comment: typeof x.comment === "string" ? x.comment : "", user: typeof x.user === "string" ? x.user : "" };
    this.state.lastEvent = `segment ${review.segment} marked ${review.status} by ${review.user}`;
    for (const l of [...this.reviewListeners]) l(review);
    this.scheduleTable();
    this.notify();
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work, work);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Brings the viewer to the newest version: applies each version's segment changes in order (from
   * `known` when it continues the shown version without a gap, else from the log), then reloads the
   * source and the table. Edits are serialised, so overlapping calls never apply a version twice.
   */
  catchUp(known: readonly EditResult[] = []): Promise<void> {
    return this.enqueue(async () => {
      const shown = (this.state.shown ??= this.initialShown());
      let ops = [...known].filter((op) => op.version > shown).sort((a, b) => a.version - b.version);
      const contiguous = ops.every((op, i) => op.version === shown + 1 + i);
      if (ops.length === 0 || !contiguous) {
        if (known.length > 0 && ops.length === 0) return;
        ops = (await fetchOperations(shown)).filter((op) => op.version > shown).sort((a, b) => a.version - b.version);
      }
      if (ops.length === 0) return;
      for (const op of ops) this.bridge.applyEditToSegments(op.inputs, op.outputs);
      const last = ops[ops.length - 1];
      this.state.shown = last?.version ?? shown;
      this.state.latest = Math.max(this.state.latest, this.state.shown);
      this.remeasured = 0;
      this.reloadSource();
      this.scheduleTable(0);
      this.notify();
    });
  }

  /** For event handlers: a failed catch-up (server gone) is retried by the next event or Refresh. */
  private catchUpQuietly(known: readonly EditResult[] = []): void {
    this.catchUp(known).catch((error: unknown) => console.warn("vemscope: could not load the newest version", error));
  }

  private reloadSource(tries = 0): void {
    clearTimeout(this.sourceRetry);
    const shown = this.state.shown;
    if (shown === null) return;
    const url = this.bridge.layerSourceUrl(ORGANELLES_LAYER);
    if (url !== undefined && this.bridge.setLayerSourceUrl(ORGANELLES_LAYER, versionedSourceUrl(url, shown, this.remeasured))) return;
    // The layer or its source is not there yet (the state is still being restored): try again shortly rather than
    // leave the layer on an older version than `shown` says.
    if (tries < SOURCE_RETRIES) this.sourceRetry = setTimeout(() => this.reloadSource(tries + 1), SOURCE_RETRY_MS);
  }

  private scheduleTable(delayMs = TABLE_REFRESH_MS): void {
    clearTimeout(this.tableTimer);
    this.tableTimer = setTimeout(() => {
      refreshSegmentTable().catch((error: unknown) => console.warn("vemscope: could not refresh the segment table", error));
    }, delayMs);
  }
}
