// Generated from vemscope.proto by `npx tsx server/api/proto-gen.ts`; do not edit by hand.
// A TypeScript module rather than a .json file so that Node ESM, Vite and both tsconfigs import it
// without JSON import attributes or resolveJsonModule.
import type { INamespace } from "protobufjs/light.js";

export const descriptor: INamespace = {
  "nested": {
    "vemscope": {
      "nested": {
        "SegmentTable": {
          "fields": {
            "total": {
              "type": "uint32",
              "id": 1
            },
            "offset": {
              "type": "uint32",
              "id": 2
            },
            "limit": {
              "type": "uint32",
              "id": 3
            },
            "ids": {
              "rule": "repeated",
              "type": "uint32",
              "id": 4
            },
            "columns": {
              "rule": "repeated",
              "type": "Column",
              "id": 5
            }
          }
        },
        "ColumnType": {
          "values": {
            "NUMBER": 0,
            "STRING": 1,
            "BOOLEAN": 2
          }
        },
        "Column": {
          "fields": {
            "id": {
              "type": "string",
              "id": 1
            },
            "type": {
              "type": "ColumnType",
              "id": 2
            },
            "numbers": {
              "rule": "repeated",
              "type": "double",
              "id": 3
            },
            "strings": {
              "rule": "repeated",
              "type": "string",
              "id": 4
            },
            "booleans": {
              "rule": "repeated",
              "type": "sint32",
              "id": 5
            }
          }
        }
      }
    }
  }
};
