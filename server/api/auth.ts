import type { NextFunction, Request, Response } from "express";
import type { EditDb, Role } from "../edits/db.js";
import { lookupToken, roleAtLeast, type TokenUser } from "../edits/tokens.js";
import { ApiError } from "./errors.js";

/**
 * Bearer tokens (`vemscope token create`). Reads are open unless `authReads`; edits and reviews always need
 * an editor (or admin) token, and are attributed to the token's user, never to a name the client sends.
 * `?token=` is accepted for reads only: Neuroglancer cannot add headers to its chunk requests, but a query
 * string on a precomputed URL is carried onto every file under it. So is the session cookie (below): the
 * bundled viewer presents its stored token once (`POST /api/auth/session`) and the browser then sends it
 * with every same-origin request, Neuroglancer's chunk and mesh fetches included, without the token ever
 * entering a layer URL (URLs end up in the viewer state, and the state in share links).
 */
export interface AuthOptions {
  authReads: boolean;
}

declare module "express-serve-static-core" {
  interface Request {
    vemscopeUser?: TokenUser;
  }
}

function bearer(req: Request): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  if (!m) throw new ApiError(401, "bad_token", "Authorization must be 'Bearer <token>'");
  return m[1];
}

/** Cookie holding a token for reads: HttpOnly (page scripts cannot read it), SameSite=Strict (other sites' pages cannot make the browser send it). */
export const SESSION_COOKIE = "vemscope_token";

function cookieToken(req: Request): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(value) || undefined;
      } catch {
        return value || undefined;
      }
    }
  }
  return undefined;
}

/** The cookie outlives the page, as the stored token does, so a share link opened later (its layers load before any script runs) reads too. */
const SESSION_MAX_AGE_S = 30 * 24 * 3600;

/** Set-Cookie value for a session of `token`; `undefined` clears it. Secure only over https (a plain-http server on a LAN must work too). */
export function sessionCookie(token: string | undefined, secure: boolean): string {
  const attrs = `Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
  return token === undefined ? `${SESSION_COOKIE}=; ${attrs}; Max-Age=0` : `${SESSION_COOKIE}=${encodeURIComponent(token)}; ${attrs}; Max-Age=${SESSION_MAX_AGE_S}`;
}

/**
 * The token of a read (`reads`: header, `?token=`, then the session cookie) or of a write (the header
 * only: a cookie on a write would let any page the user visits forge edits in their name).
 */
function identify(db: () => EditDb, req: Request, reads: boolean): TokenUser | undefined {
  const query = reads && typeof req.query.token === "string" ? req.query.token : undefined;
  const token = bearer(req) ?? query ?? (reads ? cookieToken(req) : undefined);
  if (token === undefined) return undefined;
  const user = lookupToken(db(), token);
  if (!user) throw new ApiError(401, "bad_token", "unknown or revoked token");
  return user;
}

/** Paths that carry data: with authReads they need a viewer token; the viewer's own assets and /api/health stay open. */
const DATA_PATH = /^\/(api\/(?!health$)|precomputed\/|v\/|s\/)/;

/** First middleware of the edits router: identifies the caller and, with authReads, closes data reads to strangers. */
export function readGate(db: () => EditDb, options: AuthOptions) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const isRead = req.method === "GET" || req.method === "HEAD";
    if (!isRead || !options.authReads || !DATA_PATH.test(req.path)) {
      next();
      return;
    }
    const user = identify(db, req, true);
    if (!user) throw new ApiError(401, "token_required", "this server needs a token to read (Authorization: Bearer <token>, ?token=, or the session cookie of POST /api/auth/session)");
    req.vemscopeUser = user;
    next();
  };
}

/** Route guard for writes: 401 without a valid token, 403 when its role is too low. */
export function requireRole(db: () => EditDb, role: Role) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const user = identify(db, req, false);
    if (!user) throw new ApiError(401, "token_required", `this needs an ${role} token (Authorization: Bearer <token>)`);
    if (!roleAtLeast(user.role, role)) throw new ApiError(403, "forbidden", `user ${user.user} is a ${user.role}; this needs ${role}`);
    req.vemscopeUser = user;
    next();
  };
}

/** `GET /api/auth/me`: the caller's user and role; 401 without a token or with an unknown one. */
export function whoAmI(db: () => EditDb, req: Request): TokenUser {
  const user = identify(db, req, false);
  if (!user) throw new ApiError(401, "token_required", "send a token (Authorization: Bearer <token>)");
  return user;
}

/**
 * `POST /api/auth/session` (Authorization: Bearer <token>): checks the token like /api/auth/me and answers
 * with a cookie carrying it, which the server accepts for reads (never for edits) under --auth-reads.
 */
export function openSession(db: () => EditDb, req: Request, res: Response): TokenUser {
  const user = whoAmI(db, req);
  res.setHeader("Set-Cookie", sessionCookie(bearer(req), req.secure));
  res.setHeader("Cache-Control", "no-store");
  return user;
}
