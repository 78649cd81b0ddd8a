import { existsSync } from "node:fs";
import * as path from "node:path";
import { EditDb } from "./db.js";
import { createToken, isRole, ROLES } from "./tokens.js";

/** `vemscope token create DIR --user NAME --role viewer|editor|admin`: prints the token (stored only hashed). */
export function tokenCommand(action: string | undefined, dir: string | undefined, user: string | undefined, role: string | undefined): string {
  if (action !== "create") throw new Error(`expected 'token create DIR --user NAME --role ${ROLES.join("|")}'`);
  if (!dir) throw new Error("missing DIR (the served vemscope output folder)");
  if (!existsSync(path.join(dir, "state.json"))) throw new Error(`${dir}: not a vemscope output folder (no state.json)`);
  if (!user) throw new Error("missing --user");
  if (!role || !isRole(role)) throw new Error(`--role: expected one of ${ROLES.join(", ")}, got '${role ?? ""}'`);
  const db = EditDb.at(path.resolve(dir));
  try {
    return createToken(db, user, role);
  } finally {
    db.close();
  }
}
