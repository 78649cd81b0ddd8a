import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Request, Response } from "express";
import { ApiError } from "./errors.js";

/**
 * Serves a folder of precomputed files the way Neuroglancer needs them: CORS, JSON vs binary content types,
 * `<key>.gz` answered for `<key>` with `Content-Encoding: gzip` (cloud-volume's layout), byte ranges for
 * plain files (sharded layers), and 404 for a missing chunk (Neuroglancer reads that as "empty").
 * Nothing outside the root is reachable: `..` and encoded variants are refused, symlinks are resolved and
 * checked against the root's real path.
 */
export function fileServer(root: string) {
  let realRoot: string | undefined;
  return async (req: Request, res: Response): Promise<void> => {
    realRoot ??= await fs.realpath(root);
    const segments = splitPath(req.path);
    const target = await resolveInside(realRoot, segments);
    if (!target) throw new ApiError(404, "not_found", `no such file: ${segments.join("/")}`);
    const name = segments[segments.length - 1] ?? "";
    res.setHeader("Content-Type", contentType(name));
    res.setHeader("Cache-Control", "no-cache");
    if (target.gzip) res.setHeader("Content-Encoding", "gzip");
    await new Promise<void>((resolve, reject) => {
      res.sendFile(
        target.file,
        // A gzipped body must never be cut by a range: the client could not decode a slice of it.
        { acceptRanges: !target.gzip, dotfiles: "allow", cacheControl: false, etag: true, lastModified: true },
        (err) => (err && !res.headersSent ? reject(err) : resolve()),
      );
    });
  };
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

async function resolveInside(realRoot: string, segments: string[]): Promise<{ file: string; gzip: boolean } | undefined> {
  const joined = path.join(realRoot, ...segments);
  for (const [candidate, gzip] of [
    [joined, false],
    [`${joined}.gz`, true],
  ] as const) {
    let real: string;
    try {
      real = await fs.realpath(candidate);
    } catch {
      continue;
    }
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
      throw new ApiError(403, "forbidden", "path leaves the served folder");
    }
    const stat = await fs.stat(real);
    if (stat.isFile()) return { file: real, gzip };
  }
  return undefined;
}

const JSON_NAME = /^(info|.*\.json|\d+:\d+)$/;

function contentType(name: string): string {
  return JSON_NAME.test(name) ? "application/json" : "application/octet-stream";
}
