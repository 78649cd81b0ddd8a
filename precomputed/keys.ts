import { PrecomputedError } from "./errors.js";
import type { Storage } from "./storage.js";

/** `prefix/part/...`, tolerating a trailing slash or an empty prefix. */
export function joinKey(prefix: string, ...parts: string[]): string {
  const p = prefix.replace(/\/+$/, "");
  return [...(p === "" ? [] : [p]), ...parts].join("/");
}

/** A segment id as Neuroglancer writes it in file names and JSON: decimal uint64. */
export function segmentIdString(id: number | bigint): string {
  if (typeof id === "bigint" ? id < 0n || id >= 1n << 64n : !Number.isSafeInteger(id) || id < 0) {
    throw new PrecomputedError("invalid_argument", `segment id ${String(id)} is not a uint64`, "id");
  }
  return String(id);
}

/** Reads `key` as JSON; `what` names the object in the not-found message. */
export async function readStoredJson(storage: Storage, key: string, what: string): Promise<unknown> {
  const bytes = await storage.get(key);
  if (bytes === undefined) throw new PrecomputedError("not_found", `no ${what}`, key);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new PrecomputedError("invalid_info", "not valid JSON", key, { cause: e });
  }
}
