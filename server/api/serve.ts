import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildApp } from "./app.js";

export const DEFAULT_VIEWER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dist/plugin");

/** Listen on host:port (0 = any free port) and resolve with the viewer URL. */
export async function serve(opts: { root: string; port: number; host: string; viewerDir?: string }): Promise<{ url: string; server: Server }> {
  const app = buildApp({ root: opts.root, viewerDir: opts.viewerDir ?? DEFAULT_VIEWER_DIR });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.port, opts.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://${opts.host}:${port}/`, server };
}
