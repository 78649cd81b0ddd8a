/**
 * Encode/decode of the bulk messages in vemscope.proto, shared by the server and the plugin bundle.
 * Browser-safe on purpose: only protobufjs' light build and the generated descriptor, no node: imports.
 */
import protobuf from "protobufjs/light.js";
import { descriptor } from "./proto-descriptor.js";

export const PROTOBUF_MEDIA_TYPE = "application/x-protobuf";

export type ColumnType = "number" | "string" | "boolean";
export type Cell = number | string | boolean | null;
export interface ColumnSpec {
  id: string;
  type: ColumnType;
}
export type SegmentRow = Record<string, Cell>;

/** The JSON answer of GET /api/segments; `decodeSegmentTable` returns exactly this from the protobuf answer. */
export interface SegmentTable {
  total: number;
  offset: number;
  limit: number;
  columns: ColumnSpec[];
  rows: SegmentRow[];
}

/** One column of a page, as typed arrays: NaN = null for numbers, -1 = null for booleans (0 false, 1 true). */
export type ColumnValues =
  | { id: string; type: "number"; values: Float64Array }
  | { id: string; type: "string"; values: (string | null)[] }
  | { id: string; type: "boolean"; values: Int8Array };

/** A page column by column: what panels that plot or colour 10^5 segments should use instead of row objects. */
export interface SegmentColumns {
  total: number;
  offset: number;
  limit: number;
  ids: Uint32Array;
  /** Every column in table order; the `id` column repeats `ids` as numbers so lookups by name need no special case. */
  columns: ColumnValues[];
}

const TYPE_CODES: Record<ColumnType, number> = { number: 0, string: 1, boolean: 2 };
const TYPE_NAMES: readonly ColumnType[] = ["number", "string", "boolean"];
const ID_COLUMN = "id";

let types: { table: protobuf.Type } | undefined;
function messageTypes(): { table: protobuf.Type } {
  types ??= { table: protobuf.Root.fromJSON(descriptor).lookupType("vemscope.SegmentTable") };
  return types;
}

export function encodeSegmentTable(page: SegmentColumns): Uint8Array {
  const { table } = messageTypes();
  const message = {
    total: page.total,
    offset: page.offset,
    limit: page.limit,
    ids: page.ids,
    columns: page.columns.map((c) => {
      // The id column's values travel once, as varint `ids`, not again as doubles.
      if (c.id === ID_COLUMN) return { id: c.id, type: TYPE_CODES[c.type] };
      switch (c.type) {
        case "number":
          return { id: c.id, type: TYPE_CODES.number, numbers: c.values };
        case "string":
          return { id: c.id, type: TYPE_CODES.string, strings: c.values.map((s) => s ?? "") };
        case "boolean":
          return { id: c.id, type: TYPE_CODES.boolean, booleans: c.values };
      }
    }),
  };
  // protobufjs' encoder indexes arrays by position, so typed arrays go in without copying to plain arrays.
  return table.encode(message).finish();
}

export function decodeSegmentColumns(bytes: Uint8Array): SegmentColumns {
  const { table } = messageTypes();
  // Fields are read off the decoded message (defaults sit on its prototype) rather than through
  // `toObject`, which copies every array again and doubled the decode time of 10^5-row tables.
  const raw = table.decode(bytes);
  const ids = Uint32Array.from(numberArray(field(raw, "ids"), "ids"));
  const columnsRaw = field(raw, "columns");
  if (!Array.isArray(columnsRaw)) throw new Error("SegmentTable.columns is not a list");
  const columns = columnsRaw.map((col: unknown): ColumnValues => {
    const idRaw = field(col, "id");
    const id = typeof idRaw === "string" ? idRaw : "";
    const typeCode = field(col, "type");
    const type = TYPE_NAMES[typeof typeCode === "number" ? typeCode : -1];
    if (type === undefined) throw new Error(`column ${id}: unknown type ${String(typeCode)}`);
    if (id === ID_COLUMN) return { id, type: "number", values: Float64Array.from(ids) };
    switch (type) {
      case "number":
        return { id, type, values: Float64Array.from(numberArray(field(col, "numbers"), id)) };
      case "string":
        return { id, type, values: stringArray(field(col, "strings"), id).map((s) => (s === "" ? null : s)) };
      case "boolean":
        return { id, type, values: Int8Array.from(numberArray(field(col, "booleans"), id)) };
    }
  });
  for (const c of columns) {
    if (c.values.length !== ids.length) throw new Error(`column ${c.id}: ${c.values.length} values for ${ids.length} rows`);
  }
  return { total: num(field(raw, "total")), offset: num(field(raw, "offset")), limit: num(field(raw, "limit")), ids, columns };
}

function field(message: unknown, name: string): unknown {
  if (typeof message !== "object" || message === null) throw new Error(`expected a message with field ${name}`);
  return Reflect.get(message, name);
}

/** The protobuf answer decoded into the JSON answer's shape (row objects). */
export function decodeSegmentTable(bytes: Uint8Array): SegmentTable {
  return columnsToTable(decodeSegmentColumns(bytes));
}

export function columnsToTable(page: SegmentColumns): SegmentTable {
  const rows: SegmentRow[] = new Array<SegmentRow>(page.ids.length);
  for (let r = 0; r < rows.length; r++) {
    const row: SegmentRow = {};
    for (const c of page.columns) row[c.id] = cellAt(c, r);
    rows[r] = row;
  }
  return {
    total: page.total,
    offset: page.offset,
    limit: page.limit,
    columns: page.columns.map((c) => ({ id: c.id, type: c.type })),
    rows,
  };
}

export function cellAt(column: ColumnValues, row: number): Cell {
  switch (column.type) {
    case "number": {
      const v = column.values[row];
      return v === undefined || Number.isNaN(v) ? null : v;
    }
    case "string":
      return column.values[row] ?? null;
    case "boolean": {
      const v = column.values[row];
      return v === 1 ? true : v === 0 ? false : null;
    }
  }
}

function num(v: unknown): number {
  return typeof v === "number" ? v : 0;
}

function numberArray(v: unknown, what: string): number[] {
  const values: unknown[] = Array.isArray(v) ? v : [];
  if (!Array.isArray(v) || !values.every((x): x is number => typeof x === "number")) throw new Error(`${what}: expected numbers`);
  return values;
}

function stringArray(v: unknown, what: string): string[] {
  const values: unknown[] = Array.isArray(v) ? v : [];
  if (!Array.isArray(v) || !values.every((x): x is string => typeof x === "string")) throw new Error(`${what}: expected strings`);
  return values;
}
