import type { NextFunction, Request, RequestHandler, Response, Router } from "express";
import { z } from "zod";
import type { EditDb, ReviewRecord, ReviewStatus } from "../edits/db.js";
import type { Editor } from "../edits/editor.js";
import { sortedRows } from "../edits/table.js";
import { toCsv, type InstanceRow } from "../pipeline/report.js";
import { ApiError } from "./errors.js";
import { PROTOBUF_MEDIA_TYPE, columnsToTable, encodeSegmentTable } from "./proto.js";
import { tableFromCsv, type LoadedTable } from "./segment-table.js";
import { parseSegmentsQuery, selectSegments } from "./segments.js";

export const REVIEW_STATUSES: readonly ReviewStatus[] = ["unreviewed", "ok", "needs-fix"];
const ReviewBody = z.strictObject({ status: z.enum(["unreviewed", "ok", "needs-fix"]), comment: z.string().max(4000).optional() });

type Middleware = (req: Request, res: Response, next: NextFunction) => void;

function publicReview(r: ReviewRecord) {
  return { segment: r.segment, status: r.status, comment: r.comment, user: r.user, time: r.time, version: r.version };
}

const segmentParam = (p: string | string[] | undefined): number => {
  const s = Array.isArray(p) ? p.join("/") : p;
  if (s === undefined || !/^\d{1,10}$/.test(s) || Number(s) < 1 || Number(s) > 0xffffffff) throw new ApiError(400, "bad_path", "segment ids are integers 1..2^32-1");
  return Number(s);
};

/** `GET /api/review[?status=]`, `GET /api/review/:segment` (with history), `PUT /api/review/:segment` {status, comment}. */
export function reviewRoutes(router: Router, editor: () => Promise<Editor>, db: () => EditDb, editorOnly: Middleware, readJson: RequestHandler): void {
  router.get("/api/review", async (req, res) => {
    const status = req.query.status;
    if (status !== undefined && !REVIEW_STATUSES.includes(String(status) as ReviewStatus)) {
      throw new ApiError(400, "bad_query", `status must be one of ${REVIEW_STATUSES.join(", ")}`);
    }
    const e = await editor();
    const latest = db().latestReviews();
    const reviews = [...latest.values()].filter((r) => e.rows.has(r.segment) && (status === undefined || r.status === status));
    res.json({ version: e.version, reviews: reviews.sort((a, b) => a.segment - b.segment).map(publicReview) });
  });
  router.get("/api/review/:segment", async (req, res) => {
    const segment = segmentParam(req.params.segment);
    const e = await editor();
    const history = db().reviewHistory(segment);
    if (!e.rows.has(segment) && history.length === 0) throw new ApiError(404, "unknown_segment", `no segment ${segment} in version ${e.version}`);
    const last = history.at(-1);
    res.json({
      ...(last ? publicReview(last) : { segment, status: "unreviewed", comment: "", user: null, time: null, version: null }),
      exists: e.rows.has(segment),
      history: history.map(publicReview),
    });
  });
  router.put("/api/review/:segment", editorOnly, readJson, async (req, res) => {
    const segment = segmentParam(req.params.segment);
    const parsed = ReviewBody.safeParse(req.body);
    if (!parsed.success) throw new ApiError(400, "bad_body", parsed.error.issues[0]?.message ?? "invalid body");
    const record = await (await editor()).review(segment, parsed.data.status, parsed.data.comment ?? "", req.vemscopeUser?.user ?? "anonymous");
    res.json(publicReview(record));
  });
}

/** The current version's table plus review columns, rebuilt only when rows or reviews changed. */
let cached: { rows: ReadonlyMap<number, InstanceRow>; reviews: string; table: LoadedTable } | undefined;

export async function segmentsTable(e: Editor, db: () => EditDb, req: Request, res: Response): Promise<void> {
  const params = parseSegmentsQuery(req.query);
  const latest = db().latestReviews();
  const reviewsKey = [...latest.values()].map((r) => `${r.segment}:${r.status}:${r.user}:${r.time}`).join(";");
  if (!cached || cached.rows !== e.rows || cached.reviews !== reviewsKey) {
    const rows = sortedRows(e.rows).map((r) => {
      const rv = latest.get(r.id);
      return { ...r, review_status: rv?.status ?? "unreviewed", review_user: rv?.user ?? null };
    });
    cached = { rows: e.rows, reviews: reviewsKey, table: tableFromCsv(toCsv(rows), "morphometrics") };
  }
  const page = selectSegments(cached.table, params);
  res.vary("Accept");
  res.set("X-Vemscope-Version", String(e.version));
  if (req.accepts(["application/json", PROTOBUF_MEDIA_TYPE]) === PROTOBUF_MEDIA_TYPE) {
    res.type(PROTOBUF_MEDIA_TYPE).send(Buffer.from(encodeSegmentTable(page)));
    return;
  }
  res.json({ version: e.version, ...columnsToTable(page) });
}
