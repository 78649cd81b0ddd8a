import * as path from "node:path";
import { Router, type Request } from "express";
import { z } from "zod";
import { ApiError } from "./errors.js";
import { PROTOBUF_MEDIA_TYPE, cellAt, columnsToTable, encodeSegmentTable, type ColumnValues, type SegmentColumns } from "./proto.js";
import { NUMBER, SegmentTableCache, type LoadedTable } from "./segment-table.js";

/** Large enough that a panel can fetch a whole dataset's table (10^4-10^5 segments) in one request. */
export const MAX_LIMIT = 100_000;
export const DEFAULT_LIMIT = 100;
const CSV_PATH = "report/morphometrics.csv";

const integer = (what: string, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, `${what} must be a non-negative integer`)
    .transform(Number)
    .refine((n) => n <= max, `${what} must be at most ${max}`);

const SegmentsQuery = z.strictObject({
  offset: integer("offset", 1e9).optional(),
  limit: integer("limit", MAX_LIMIT).optional(),
  sort: z.string().min(1, "sort must name a column").optional(),
  class: z.string().min(1, "class must list class names").optional(),
  where: z.string().optional(),
});

export interface SegmentsParams {
  offset: number;
  limit: number;
  /** Column names, each with its direction; ties are always broken by ascending id. */
  sort: { column: string; descending: boolean }[];
  classes?: string[];
  where: Condition[];
}

const OPERATORS = [">=", "<=", "!=", ">", "<", "="] as const;
type Operator = (typeof OPERATORS)[number];
export interface Condition {
  column: string;
  op: Operator;
  /** The literal as written; typed against the column when applied, so the error can name both. */
  value: string;
}
/** Matched against a trimmed clause: a trailing `\s*$` after a lazy value would backtrack quadratically. */
const CONDITION = /^([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|>|<|=)\s*(.+)$/;

/** Validates a query string (Express' parsed `req.query`) into paging, sort and filter parameters; 400s name the problem. */
export function parseSegmentsQuery(query: unknown): SegmentsParams {
  const parsed = SegmentsQuery.safeParse(query);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw new ApiError(400, "bad_query", `${where}${issue?.message ?? "invalid query"}`);
  }
  const q = parsed.data;
  const sort = (q.sort ?? "id").split(",").map((key) => {
    const descending = key.startsWith("-");
    const column = descending ? key.slice(1) : key;
    if (column === "") throw new ApiError(400, "bad_query", `sort: empty column name in "${q.sort ?? ""}"`);
    return { column, descending };
  });
  const classes = q.class?.split(",").map((c) => c.trim());
  if (classes?.some((c) => c === "")) throw new ApiError(400, "bad_query", "class: empty class name");
  const where = (q.where ?? "")
    .split(";")
    .filter((clause) => clause.trim() !== "")
    .map((clause): Condition => {
      const m = CONDITION.exec(clause.trim());
      const [, column, op, value] = m ?? [];
      if (column === undefined || !isOperator(op) || value === undefined) {
        throw new ApiError(400, "bad_query", `where: cannot read "${clause}"; expected <column><op><value> with op one of ${OPERATORS.join(" ")}`);
      }
      return { column, op, value };
    });
  return { offset: q.offset ?? 0, limit: q.limit ?? DEFAULT_LIMIT, sort, classes, where };
}

function isOperator(op: string | undefined): op is Operator {
  return (OPERATORS as readonly (string | undefined)[]).includes(op);
}

function column(table: LoadedTable, name: string, where: string): ColumnValues {
  const c = table.byName.get(name);
  if (c === undefined) {
    throw new ApiError(400, "unknown_column", `${where}: unknown column "${name}"; columns are ${[...table.byName.keys()].join(", ")}`);
  }
  return c;
}

const BOOLEAN_LITERALS = new Map([
  ["true", 1],
  ["1", 1],
  ["false", 0],
  ["0", 0],
]);

type RowTest = (row: number) => boolean;

function conditionTest(table: LoadedTable, cond: Condition): RowTest {
  const c = column(table, cond.column, "where");
  const { op, value } = cond;
  if (value === "null") {
    if (op !== "=" && op !== "!=") throw new ApiError(400, "bad_query", `where: only = and != compare with null (${cond.column}${op}null)`);
    return op === "=" ? (r) => cellAt(c, r) === null : (r) => cellAt(c, r) !== null;
  }
  switch (c.type) {
    case "number": {
      const x = Number(value);
      if (!NUMBER.test(value) || !Number.isFinite(x)) {
        throw new ApiError(400, "bad_query", `where: ${cond.column} is numeric; "${value}" is not a number`);
      }
      // NaN (null) fails every comparison, so null cells never match a numeric constraint.
      return compare(c.values, op, x);
    }
    case "boolean": {
      const b = BOOLEAN_LITERALS.get(value.toLowerCase());
      if (b === undefined) throw new ApiError(400, "bad_query", `where: ${cond.column} is boolean; use true, false, 1 or 0, not "${value}"`);
      if (op !== "=" && op !== "!=") throw new ApiError(400, "bad_query", `where: ${cond.column} is boolean; only = and != apply`);
      const v = c.values;
      return op === "=" ? (r) => v[r] === b : (r) => v[r] === 1 - b;
    }
    case "string": {
      if (op !== "=" && op !== "!=") throw new ApiError(400, "bad_query", `where: ${cond.column} is text; only = and != apply`);
      const v = c.values;
      return op === "=" ? (r) => v[r] === value : (r) => v[r] !== null && v[r] !== value;
    }
  }
}

function compare(v: Float64Array, op: Operator, x: number): RowTest {
  switch (op) {
    case ">":
      return (r) => (v[r] ?? NaN) > x;
    case ">=":
      return (r) => (v[r] ?? NaN) >= x;
    case "<":
      return (r) => (v[r] ?? NaN) < x;
    case "<=":
      return (r) => (v[r] ?? NaN) <= x;
    case "=":
      return (r) => v[r] === x;
    case "!=":
      return (r) => {
        const y = v[r] ?? NaN;
        return !Number.isNaN(y) && y !== x;
      };
  }
}

/** -1/0/1 ordering of two rows by one column; nulls sort after every value whichever the direction. */
function columnComparator(c: ColumnValues, descending: boolean): (a: number, b: number) => number {
  const sign = descending ? -1 : 1;
  switch (c.type) {
    case "number":
    case "boolean": {
      const v = c.values;
      const isNull = c.type === "number" ? (x: number) => Number.isNaN(x) : (x: number) => x < 0;
      return (a, b) => {
        const x = v[a] ?? NaN;
        const y = v[b] ?? NaN;
        const nx = isNull(x);
        const ny = isNull(y);
        if (nx || ny) return nx === ny ? 0 : nx ? 1 : -1;
        return x === y ? 0 : (x < y ? -1 : 1) * sign;
      };
    }
    case "string": {
      const v = c.values;
      return (a, b) => {
        const x = v[a] ?? null;
        const y = v[b] ?? null;
        if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
        // Code-unit order, not localeCompare: the same on every server and fast enough for 10^5 rows.
        return x === y ? 0 : (x < y ? -1 : 1) * sign;
      };
    }
  }
}

function sortedOrder(table: LoadedTable, sort: SegmentsParams["sort"]): Uint32Array {
  const key = sort.map((s) => (s.descending ? "-" : "") + s.column).join(",");
  const cached = table.sortCache.get(key);
  if (cached) return cached;
  const comparators = sort.map((s) => columnComparator(column(table, s.column, "sort"), s.descending));
  const ids = table.ids;
  const order = Array.from({ length: table.rowCount }, (_, i) => i);
  order.sort((a, b) => {
    for (const cmp of comparators) {
      const d = cmp(a, b);
      if (d !== 0) return d;
    }
    return (ids[a] ?? 0) - (ids[b] ?? 0);
  });
  const result = Uint32Array.from(order);
  // A handful of sort keys per panel; forget them all rather than track use when a client cycles many.
  if (table.sortCache.size >= 32) table.sortCache.clear();
  table.sortCache.set(key, result);
  return result;
}

/** The page the query asks for, column by column (the JSON answer is built from the same page). */
export function selectSegments(table: LoadedTable, params: SegmentsParams): SegmentColumns {
  const tests: RowTest[] = params.where.map((c) => conditionTest(table, c));
  if (params.classes) {
    const classColumn = column(table, "class", "class");
    const wanted = new Set(params.classes);
    tests.push((r) => {
      const cls = cellAt(classColumn, r);
      return cls !== null && wanted.has(String(cls));
    });
  }
  const order = sortedOrder(table, params.sort);
  const matched = tests.length === 0 ? order : order.filter((r) => tests.every((t) => t(r)));
  const page = matched.subarray(Math.min(params.offset, matched.length), Math.min(params.offset + params.limit, matched.length));
  return {
    total: matched.length,
    offset: params.offset,
    limit: params.limit,
    ids: Uint32Array.from(page, (r) => table.ids[r] ?? 0),
    columns: table.columns.map((c): ColumnValues => {
      switch (c.type) {
        case "number":
          return { id: c.id, type: c.type, values: Float64Array.from(page, (r) => c.values[r] ?? NaN) };
        case "boolean":
          return { id: c.id, type: c.type, values: Int8Array.from(page, (r) => c.values[r] ?? -1) };
        case "string":
          return { id: c.id, type: c.type, values: Array.from(page, (r) => c.values[r] ?? null) };
      }
    }),
  };
}

function wantsProtobuf(req: Request): boolean {
  return req.accepts(["application/json", PROTOBUF_MEDIA_TYPE]) === PROTOBUF_MEDIA_TYPE;
}

/** `GET /api/segments`: the morphometrics table of `root`, paged, sorted and filtered; JSON or protobuf by `Accept`. */
export function segmentsRouter(root: string): Router {
  const cache = new SegmentTableCache(path.join(root, CSV_PATH), CSV_PATH);
  const router = Router();
  router
    .route("/api/segments")
    .get(async (req, res) => {
      const params = parseSegmentsQuery(req.query);
      const page = selectSegments(await cache.get(), params);
      res.vary("Accept");
      if (wantsProtobuf(req)) {
        res.type(PROTOBUF_MEDIA_TYPE).send(Buffer.from(encodeSegmentTable(page)));
        return;
      }
      res.json(columnsToTable(page));
    })
    .all((req, res) => {
      res.set("Allow", "GET, HEAD");
      throw new ApiError(405, "method_not_allowed", `${req.method} is not allowed on /api/segments`);
    });
  return router;
}
