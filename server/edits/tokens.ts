import { createHash, randomBytes } from "node:crypto";
import type { EditDb, Role } from "./db.js";

export const ROLES: readonly Role[] = ["viewer", "editor", "admin"];
const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function roleAtLeast(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

/** 256 random bits: a plain SHA-256 is then enough to store them (no password-style stretching needed). */
function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

export interface TokenUser {
  user: string;
  role: Role;
}

/** Creates a token; only its hash is stored, so the returned string is the one chance to copy it. */
export function createToken(db: EditDb, user: string, role: Role): string {
  if (!USER_NAME.test(user)) throw new Error(`user names are 1-64 letters, digits or . _ @ -; got '${user}'`);
  const token = `vst_${randomBytes(32).toString("base64url")}`;
  db.db.prepare("INSERT INTO tokens (hash, user, role, created_at) VALUES (?, ?, ?, ?)").run(hashToken(token), user, role, new Date().toISOString());
  return token;
}

export function lookupToken(db: EditDb, token: string): TokenUser | undefined {
  if (token.length > 200) return undefined;
  const row = db.db.prepare<[string], { user: string; role: string }>("SELECT user, role FROM tokens WHERE hash = ?").get(hashToken(token));
  if (!row || !isRole(row.role)) return undefined;
  return { user: row.user, role: row.role };
}
