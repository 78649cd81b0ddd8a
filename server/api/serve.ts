import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import * as path from "node:path";
import { buildApp } from "./app.js";
import { REPO_ROOT } from "../repo-root.js";

export const DEFAULT_VIEWER_DIR = path.join(REPO_ROOT, "dist", "plugin");

export interface ServeOptions {
  root: string;
  /** 0 = any free port. */
  port: number;
  host: string;
  viewerDir?: string;
  /** When the port is taken, try this many following ports before giving up (the demo sets it). */
  tryNextPorts?: number;
  /** Reads (layers and API) need a viewer token too (`serve --auth-reads`); default: open unless VEMSCOPE_AUTH_READS=1. */
  authReads?: boolean;
}

/** Listen and resolve with the viewer URL. */
export async function serve(opts: ServeOptions): Promise<{ url: string; server: Server }> {
  const app = buildApp({ root: opts.root, viewerDir: opts.viewerDir ?? DEFAULT_VIEWER_DIR, authReads: opts.authReads });
  for (let attempt = 0; ; attempt++) {
    const port = opts.port === 0 ? 0 : opts.port + attempt;
    try {
      const server = await new Promise<Server>((resolve, reject) => {
        const s = app.listen(port, opts.host);
        s.once("listening", () => resolve(s));
        s.once("error", reject);
      });
      const { port: bound } = server.address() as AddressInfo;
      return { url: `http://${opts.host}:${bound}/`, server };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= (opts.tryNextPorts ?? 0)) throw e;
    }
  }
}
