import type { NextFunction, Request, Response } from "express";
import type { EditDb, Role } from "../edits/db.js";
import { lookupToken, roleAtLeast, type TokenUser } from "../edits/tokens.js";
import { ApiError } from "./errors.js";

/**
 * Bearer tokens (`vemscope token create`). Reads are open unless `authReads`; edits and reviews always need
 * an editor (or admin) token, and are attributed to the token's user, never to a name the client sends.
 * `?token=` is accepted for reads only: Neuroglancer cannot add headers to its chunk requests, but a query
 * string on a precomputed URL is carried onto every file under it.
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

function identify(db: () => EditDb, req: Request, allowQuery: boolean): TokenUser | undefined {
  const query = allowQuery && typeof req.query.token === "string" ? req.query.token : undefined;
  const token = bearer(req) ?? query;
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
    if (!user) throw new ApiError(401, "token_required", "this server needs a token to read (Authorization: Bearer <token> or ?token=)");
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
