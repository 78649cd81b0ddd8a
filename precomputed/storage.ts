import { promises as fs } from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { PrecomputedError } from "./errors.js";

export interface PutOptions {
  /**
   * Store the object gzip-compressed. Callers always pass and receive plain bytes; the storage compresses.
   * A local folder keeps such objects as `<key>.gz` (cloud-volume's convention), and the server answers a
   * request for `<key>` with those bytes and `Content-Encoding: gzip`.
   */
  contentEncoding?: "gzip";
}

/** Key/value storage for precomputed layers. Keys are `/`-separated relative paths, never absolute, never `..`. */
export interface Storage {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, data: Uint8Array | string, options?: PutOptions): Promise<void>;
  /** Keys (as passed to put, without `.gz`) starting with prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /**
   * Bytes [start, end) of the object (fewer if it is shorter), undefined if it does not exist. Optional:
   * sharded reads use it where present and fall back to get + slice (precomputed/sharding.ts readRange).
   */
  getRange?(key: string, start: number, end: number): Promise<Uint8Array | undefined>;
}

export function checkKey(key: string): string {
  if (key.length === 0 || key.startsWith("/") || key.includes("\\") || key.includes("\0")) {
    throw new PrecomputedError("invalid_key", "storage key must be a non-empty relative path", key);
  }
  for (const part of key.split("/")) {
    if (part === "" || part === "." || part === "..") {
      throw new PrecomputedError("invalid_key", "storage key has an empty, '.' or '..' segment", key);
    }
  }
  return key;
}

export function checkRange(start: number, end: number, key: string): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new PrecomputedError("invalid_argument", `byte range [${start}, ${end}) is not 0 <= start <= end`, key);
  }
}

const TMP_MARK = ".tmp-";

/** A local folder. Writes are atomic (temp file + rename) so a reader never sees a torn object. */
export class LocalStorage implements Storage {
  constructor(readonly root: string) {}

  file(key: string): string {
    return path.join(this.root, ...checkKey(key).split("/"));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const file = this.file(key);
    const plain = await readIfExists(file, key);
    if (plain) return plain;
    const gz = await readIfExists(`${file}.gz`, key);
    if (!gz) return undefined;
    try {
      return new Uint8Array(gunzipSync(gz));
    } catch (e) {
      throw new PrecomputedError("invalid_chunk", "stored .gz object is not valid gzip", key, { cause: e });
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined> {
    checkRange(start, end, key);
    const file = this.file(key);
    let handle;
    try {
      handle = await fs.open(file, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw new PrecomputedError("io", `cannot read: ${(e as Error).message}`, key, { cause: e });
      // A gzip-stored object has no byte addressing on disk: ranges are over its decompressed bytes.
      return (await this.get(key))?.slice(start, end);
    }
    try {
      const size = (await handle.stat()).size;
      const length = Math.max(0, Math.min(end, size) - start);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === length ? out : out.subarray(0, done);
    } catch (e) {
      throw new PrecomputedError("io", `cannot read: ${(e as Error).message}`, key, { cause: e });
    } finally {
      await handle.close();
    }
  }

  async put(key: string, data: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    const file = this.file(key);
    const gzip = options.contentEncoding === "gzip";
    const bytes = gzip ? gzipSync(typeof data === "string" ? Buffer.from(data) : data) : data;
    const target = gzip ? `${file}.gz` : file;
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${target}${TMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, target);
      // A key is stored one way only: drop the other spelling left by an earlier write.
      await fs.rm(gzip ? file : `${file}.gz`, { force: true });
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw new PrecomputedError("io", `cannot write: ${(e as Error).message}`, key, { cause: e });
    }
  }

  async list(prefix: string): Promise<string[]> {
    const out = new Set<string>();
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw new PrecomputedError("io", `cannot list: ${(e as Error).message}`, rel || ".", { cause: e });
      }
      for (const ent of entries) {
        const r = rel ? `${rel}/${ent.name}` : ent.name;
        if (ent.isDirectory()) await walk(path.join(dir, ent.name), r);
        else if (ent.isFile() && !ent.name.includes(TMP_MARK)) out.add(r.endsWith(".gz") ? r.slice(0, -3) : r);
      }
    };
    await walk(this.root, "");
    return [...out].filter((k) => k.startsWith(prefix)).sort();
  }

  async delete(key: string): Promise<void> {
    const file = this.file(key);
    await fs.rm(file, { force: true });
    await fs.rm(`${file}.gz`, { force: true });
  }
}

async function readIfExists(file: string, key: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new PrecomputedError("io", `cannot read: ${(e as Error).message}`, key, { cause: e });
  }
}
