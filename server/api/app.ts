import { existsSync, promises as fs } from "node:fs";
import * as path from "node:path";
import express, { type Express } from "express";
import { ApiError, errorHandler } from "./errors.js";
import { editsRouter } from "./edits.js";
import type { EditorOptions } from "../edits/editor.js";
import { corsHeaders, fileServer } from "./files.js";
import { originOf } from "./origin.js";
import { segmentsRouter } from "./segments.js";
import { RELATIVE_SOURCE } from "./state-sources.js";
import { StateStore, statesRouter } from "./states.js";

export interface AppOptions {
  /** A vemscope output folder (DESIGN.md's `DIR/`): precomputed layers, state.json, report/. */
  root: string;
  /** The built viewer (dist/plugin); served at `/` when present. */
  viewerDir?: string;
  /** SQLite file of shared states; default `<root>/.vemscope/states.sqlite`, created on the first share. */
  stateDb?: string;
  /** Proofreading: reads (layers and API) need a viewer token too (`serve --auth-reads`; default open). */
  authReads?: boolean;
  /** Proofreading editor hooks (tests, bench). */
  edits?: EditorOptions;
}


/** The Express app, without `listen`, so tests drive it through supertest. */
export function buildApp(options: AppOptions): Express {
  const root = path.resolve(options.root);
  if (!existsSync(root)) throw new ApiError(500, "no_root", `served folder does not exist: ${root}`);
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", "strong");

  app.use((req, res, next) => {
    res.set(corsHeaders);
    if (req.method === "OPTIONS") {
      res.status(204).end();
      return;
    }
    next();
  });

  app.use(editsRouter({ root, authReads: options.authReads, editor: options.edits }));

  app.get("/api/health", (_req, res) => {
    res.json({ ok: true, version: process.env.npm_package_version ?? "dev" });
  });

  app.get("/api/datasets", async (_req, res) => {
    res.json({ datasets: [await describeDataset(root)] });
  });

  app.get("/api/state", async (req, res) => {
    res.json(await resolvedState(root, originOf(req)));
  });

  app.get("/api/summary", async (_req, res) => {
    res.json(await readJson(path.join(root, "report", "summary.json")));
  });

  app.use(segmentsRouter(root));
  const stateDb = path.resolve(options.stateDb ?? path.join(root, ".vemscope", "states.sqlite"));
  app.use(statesRouter(new StateStore(stateDb)));

  app.all("/api/{*rest}", (req) => {
    throw new ApiError(404, "not_found", `no API route ${req.method} ${req.path}`);
  });

  // The state database may sit inside the served folder (it does by default); it is never a layer file.
  const files = fileServer(root, { hidden: [stateDb] });
  app.use("/precomputed", (req, res, next) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      next(new ApiError(405, "method_not_allowed", "precomputed files are read-only"));
      return;
    }
    files(req, res).catch(next);
  });

  if (options.viewerDir && existsSync(options.viewerDir)) {
    app.use(express.static(options.viewerDir, { index: "index.html" }));
  }

  app.use((req, _res, next) => next(new ApiError(404, "not_found", `not found: ${req.path}`)));
  app.use(errorHandler);
  return app;
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (e) {
    throw new ApiError(404, "not_found", `${path.basename(file)} is missing from the dataset`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(500, "bad_dataset", `${path.basename(file)} is not valid JSON`, { cause: e });
  }
}

/** state.json with relative layer sources made absolute for this server, so any Neuroglancer can open it. */
export async function resolvedState(root: string, origin: string): Promise<unknown> {
  const state = await readJson(path.join(root, "state.json"));
  const base = `precomputed://${origin}/precomputed/`;
  return JSON.parse(JSON.stringify(state), (_key, value: unknown) =>
    typeof value === "string" && value.startsWith(RELATIVE_SOURCE) ? base + value.slice(RELATIVE_SOURCE.length) : value,
  );
}

async function describeDataset(root: string) {
  const entries = await fs.readdir(root, { withFileTypes: true });
  const layers = entries
    .filter((e) => e.isDirectory() && existsSync(path.join(root, e.name, "info")))
    .map((e) => e.name)
    .sort();
  return {
    name: path.basename(root),
    layers,
    state: existsSync(path.join(root, "state.json")) ? "/api/state" : null,
    summary: existsSync(path.join(root, "report", "summary.json")) ? "/api/summary" : null,
    figures: existsSync(path.join(root, "report", "figures", "index.html")) ? "/precomputed/report/figures/index.html" : null,
  };
}
