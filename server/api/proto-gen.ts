import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import protobuf from "protobufjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const PROTO_FILE = path.join(here, "vemscope.proto");
export const DESCRIPTOR_FILE = path.join(here, "proto-descriptor.ts");

/** The protobufjs JSON form of a .proto source: what the browser can load without a .proto parser or fs. */
export function descriptorOf(protoSource: string): protobuf.INamespace {
  return protobuf.parse(protoSource, { keepCase: true }).root.toJSON();
}

/** proto-descriptor.ts as it must read for the given .proto source; a test compares it with the checked-in file. */
export function descriptorModule(protoSource: string): string {
  return [
    "// Generated from vemscope.proto by `npx tsx server/api/proto-gen.ts`; do not edit by hand.",
    "// A TypeScript module rather than a .json file so that Node ESM, Vite and both tsconfigs import it",
    "// without JSON import attributes or resolveJsonModule.",
    'import type { INamespace } from "protobufjs/light.js";',
    "",
    `export const descriptor: INamespace = ${JSON.stringify(descriptorOf(protoSource), null, 2)};`,
    "",
  ].join("\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(DESCRIPTOR_FILE, descriptorModule(readFileSync(PROTO_FILE, "utf8")));
}
