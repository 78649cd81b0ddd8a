import { promises as fs, type Stats } from "node:fs";
import * as path from "node:path";
import type { Request, Response } from "express";
import { ApiError } from "./errors.js";

/**
 * Serves a folder of precomputed files the way Neuroglancer needs them: CORS, JSON vs binary content types,
 * `<key>.gz` answered for `<key>` with `Content-Encoding: gzip` (cloud-volume's layout), byte ranges for
 * plain files (sharded layers), and 404 for a missing chunk (Neuroglancer reads that as "empty").
 * Nothing outside the root is reachable: `..` and encoded variants are refused, symlinks are resolved and
 * checked against the root's real path. The server's private folder (`.vemscope/`: shared states) and any
 * `hidden` file are answered 404 like a missing file, however they are reached.
 */
export function fileServer(root: string, options: { hidden?: readonly string[] } = {}) {
  let realRoot: string | undefined;
  const dirs = new RealDirCache();
  return async (req: Request, res: Response): Promise<void> => {
    realRoot ??= await fs.realpath(root);
    const segments = splitPath(req.path);
    const missing = () => new ApiError(404, "not_found", `no such file: ${segments.join("/")}`);
    if (segments.some(isPrivateName)) throw missing();
    const target = await resolveInside(realRoot, segments, dirs);
    if (!target) throw missing();
    // Symlinks can lead into the private folder or onto a hidden file under an innocent name.
    if (path.relative(realRoot, target.file).split(path.sep).some(isPrivateName)) throw missing();
    if (await isHidden(target.file, options.hidden ?? [], dirs)) throw missing();
    const name = segments[segments.length - 1] ?? "";
    res.setHeader("Content-Type", contentType(name));
    res.setHeader("Cache-Control", "no-cache");
    if (target.gzip) res.setHeader("Content-Encoding", "gzip");
    // A gzipped body must never be cut by a range: the client could not decode a slice of it.
    if (!target.gzip) res.setHeader("Accept-Ranges", "bytes");
    if (req.headers.range !== undefined && !target.gzip) {
      await sendWithRanges(res, target.file);
      return;
    }
    // Whole small files straight from a buffer: chunks are KBs to a few MB, and skipping `send`'s
    // stream machinery roughly doubles throughput here (see `npm run bench -- serve`).
    const etag = `W/"${target.stat.size.toString(16)}-${Math.floor(target.stat.mtimeMs).toString(16)}"`;
    res.setHeader("ETag", etag);
    res.setHeader("Last-Modified", target.stat.mtime.toUTCString());
    if (req.headers["if-none-match"] === etag) {
      res.status(304).end();
      return;
    }
    res.setHeader("Content-Length", target.stat.size);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    res.end(await fs.readFile(target.file));
  };
}

/** Where the server keeps its own files inside a served folder (the shared-states SQLite by default). */
export const PRIVATE_DIR = ".vemscope";

/** Case-insensitive: on macOS and Windows `.VEMSCOPE` opens the same folder. */
function isPrivateName(segment: string): boolean {
  return segment.toLowerCase() === PRIVATE_DIR;
}

/** A hidden file and its SQLite companions (`-wal`, `-shm`, `-journal`). */
async function isHidden(realFile: string, hidden: readonly string[], dirs: RealDirCache): Promise<boolean> {
  const file = realFile.toLowerCase();
  for (const h of hidden) {
    const realDir = (await dirs.get(path.dirname(h))) ?? path.dirname(h);
    const base = path.join(realDir, path.basename(h)).toLowerCase();
    if (file === base || file.startsWith(`${base}-`)) return true;
  }
  return false;
}

function sendWithRanges(res: Response, file: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    res.sendFile(file, { acceptRanges: true, dotfiles: "allow", cacheControl: false, etag: true, lastModified: true }, (err) =>
      err && !res.headersSent ? reject(err) : resolve(),
    );
  });
}

/**
 * Real paths of directories, remembered for a few seconds: resolving every path component on every
 * request dominated serving time, and layer directories do not move while being served.
 */
class RealDirCache {
  private readonly cache = new Map<string, { real: string; at: number }>();
  async get(dir: string): Promise<string | undefined> {
    const hit = this.cache.get(dir);
    const now = Date.now();
    if (hit && now - hit.at < 5000) return hit.real;
    let real: string;
    try {
      real = await fs.realpath(dir);
    } catch {
      return undefined;
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(dir, { real, at: now });
    return real;
  }
}

export const corsHeaders = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
  "Access-Control-Allow-Headers": "Range, Content-Type, Authorization",
  "Access-Control-Expose-Headers": "Content-Range, Content-Encoding, Content-Length, Accept-Ranges, ETag",
};

function splitPath(urlPath: string): string[] {
  const raw = urlPath.split("/").filter((s) => s.length > 0);
  if (raw.length === 0) throw new ApiError(404, "not_found", "no file named");
  return raw.map((s) => {
    let seg: string;
    try {
      seg = decodeURIComponent(s);
    } catch {
      throw new ApiError(400, "bad_path", "malformed percent-encoding in path");
    }
    if (seg === "." || seg === ".." || /[/\\\0]/.test(seg)) {
      throw new ApiError(400, "bad_path", "path segments may not be '.', '..' or contain slashes");
    }
    return seg;
  });
}

function inside(realRoot: string, real: string): boolean {
  return real === realRoot || real.startsWith(realRoot + path.sep);
}

async function resolveInside(
  realRoot: string,
  segments: string[],
  dirs: RealDirCache,
): Promise<{ file: string; gzip: boolean; stat: Stats } | undefined> {
  const realDir = await dirs.get(path.join(realRoot, ...segments.slice(0, -1)));
  if (realDir === undefined) return undefined;
  if (!inside(realRoot, realDir)) throw new ApiError(403, "forbidden", "path leaves the served folder");
  const base = path.join(realDir, segments[segments.length - 1] ?? "");
  for (const [candidate, gzip] of [
    [base, false],
    [`${base}.gz`, true],
  ] as const) {
    let stat: Stats;
    let file = candidate;
    try {
      stat = await fs.lstat(candidate);
      if (stat.isSymbolicLink()) {
        file = await fs.realpath(candidate);
        if (!inside(realRoot, file)) throw new ApiError(403, "forbidden", "path leaves the served folder");
        stat = await fs.stat(file);
      }
    } catch (e) {
      if (e instanceof ApiError) throw e;
      continue;
    }
    if (stat.isFile()) return { file, gzip, stat };
  }
  return undefined;
}

const JSON_NAME = /^(info|.*\.json|\d+:\d+)$/;

/** Report files open in a browser tab; everything else is JSON or opaque chunk bytes. */
const BY_EXTENSION: Record<string, string> = {
  ".svg": "image/svg+xml",
  ".html": "text/html; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
};

export function contentType(name: string): string {
  if (JSON_NAME.test(name)) return "application/json";
  return BY_EXTENSION[path.extname(name)] ?? "application/octet-stream";
}
