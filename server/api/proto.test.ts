import { readFileSync } from "node:fs";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { columnsToTable, decodeSegmentColumns, decodeSegmentTable, encodeSegmentTable, type ColumnValues, type SegmentColumns } from "./proto.js";
import { DESCRIPTOR_FILE, PROTO_FILE, descriptorModule } from "./proto-gen.js";

const page: SegmentColumns = {
  total: 10,
  offset: 4,
  limit: 3,
  ids: Uint32Array.from([7, 3, 4_000_000_000]),
  columns: [
    { id: "id", type: "number", values: Float64Array.from([7, 3, 4_000_000_000]) },
    { id: "class", type: "string", values: ["mito", null, "ld, ü"] },
    { id: "volume_nm3", type: "number", values: Float64Array.from([1.5e9, NaN, -0.125]) },
    { id: "branched", type: "boolean", values: Int8Array.from([1, -1, 0]) },
  ],
};

describe("vemscope.proto", () => {
  it("proto-descriptor.ts is generated from the current vemscope.proto (run `npx tsx server/api/proto-gen.ts`)", () => {
    expect(readFileSync(DESCRIPTOR_FILE, "utf8")).toBe(descriptorModule(readFileSync(PROTO_FILE, "utf8")));
  });

  it("round-trips a page with nulls of every type", () => {
    const bytes = encodeSegmentTable(page);
    expect(decodeSegmentColumns(bytes)).toEqual(page);
    expect(decodeSegmentTable(bytes)).toEqual({
      total: 10,
      offset: 4,
      limit: 3,
      columns: [
        { id: "id", type: "number" },
        { id: "class", type: "string" },
        { id: "volume_nm3", type: "number" },
        { id: "branched", type: "boolean" },
      ],
      rows: [
        { id: 7, class: "mito", volume_nm3: 1.5e9, branched: true },
        { id: 3, class: null, volume_nm3: null, branched: null },
        { id: 4_000_000_000, class: "ld, ü", volume_nm3: -0.125, branched: false },
      ],
    });
    expect(columnsToTable(page)).toEqual(decodeSegmentTable(bytes));
  });

  it("encodes what the .proto itself decodes, columns packed", () => {
    const bytes = encodeSegmentTable(page);
    const fromProto = protobuf.parse(readFileSync(PROTO_FILE, "utf8"), { keepCase: true }).root.lookupType("vemscope.SegmentTable");
    const message: unknown = fromProto.toObject(fromProto.decode(bytes), { arrays: true, defaults: true, enums: String });
    expect(message).toMatchObject({
      total: 10,
      ids: [7, 3, 4_000_000_000],
      columns: [
        { id: "id", type: "NUMBER", numbers: [] },
        { id: "class", type: "STRING", strings: ["mito", "", "ld, ü"] },
        { id: "volume_nm3", type: "NUMBER", numbers: [1.5e9, NaN, -0.125] },
        { id: "branched", type: "BOOLEAN", booleans: [1, -1, 0] },
      ],
    });
    // Three doubles packed: tag + length + 24 bytes, not three tagged fields.
    const many = encodeSegmentTable({ ...page, ids: new Uint32Array(1000), columns: [{ id: "x", type: "number", values: new Float64Array(1000) }] });
    expect(many.length).toBeLessThan(8 * 1000 + 1000 + 32);
  });

  it("an empty page decodes to empty columns", () => {
    const emptyColumn = (c: ColumnValues): ColumnValues => {
      switch (c.type) {
        case "number":
          return { ...c, values: new Float64Array(0) };
        case "boolean":
          return { ...c, values: new Int8Array(0) };
        case "string":
          return { ...c, values: [] };
      }
    };
    const empty: SegmentColumns = { total: 0, offset: 0, limit: 100, ids: new Uint32Array(0), columns: page.columns.map(emptyColumn) };
    expect(decodeSegmentColumns(encodeSegmentTable(empty))).toEqual(empty);
  });

  it("rejects bytes that are not a SegmentTable", () => {
    expect(() => decodeSegmentColumns(Uint8Array.from([0xff, 0xff, 0xff]))).toThrow();
  });
});
