import type { Request } from "express";

/** scheme://host as the client reached this server, for URLs the client must fetch back (layer sources, shared states). */
export function originOf(req: Request): string {
  return `${req.protocol}://${req.get("host") ?? "localhost"}`;
}
