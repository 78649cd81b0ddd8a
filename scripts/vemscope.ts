#!/usr/bin/env node
/** vemscope's command line (DESIGN.md's contract). Commands are a registry; each parses its own options. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { PipelineError } from "../server/pipeline/errors.js";
import { PrecomputedError } from "../precomputed/errors.js";
import { parseVoxel } from "../server/pipeline/voxel.js";
import { terminalProgress } from "./cli-progress-sink.js";

interface Command {
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  run(values: Values, positionals: string[]): Promise<number | void>;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

class UsageError extends Error {}

function required(values: Values, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v.length === 0) throw new UsageError(`missing --${name}`);
  return v;
}

const COMMANDS: Record<string, Command> = {
  run: {
    usage: "run --image IMG --voxel X,Y,Z --out DIR [--labels LABELS] [--model M.onnx] [--no-align] [--export-tiff] [--contact-nm 30]",
    summary: "whole pipeline into DIR",
    options: {
      image: { type: "string" },
      voxel: { type: "string" },
      out: { type: "string" },
      labels: { type: "string" },
      model: { type: "string" },
      "no-align": { type: "boolean" },
      "export-tiff": { type: "boolean" },
      "contact-nm": { type: "string" },
    },
    async run(v) {
      const { runPipeline } = await import("../server/pipeline/run.js");
      const contact = v["contact-nm"];
      const contactNm = typeof contact === "string" ? Number(contact) : 30;
      if (!Number.isFinite(contactNm) || contactNm < 0) throw new UsageError(`--contact-nm: expected a non-negative number, got '${String(contact)}'`);
      const out = required(v, "out");
      const result = await runPipeline({
        image: required(v, "image"),
        labels: typeof v.labels === "string" ? v.labels : undefined,
        model: typeof v.model === "string" ? v.model : undefined,
        voxelNm: parseVoxel(required(v, "voxel")),
        out,
        align: v["no-align"] !== true,
        exportTiff: v["export-tiff"] === true,
        contactNm,
        progress: terminalProgress(),
      });
      process.stdout.write(`${result.instances} instances written to ${path.resolve(out)} in ${result.seconds.toFixed(1)} s\n`);
    },
  },
  phantom: {
    usage: "phantom --out DIR [--seed N] [--size X,Y,Z]",
    summary: "synthetic cell volume with analytic ground truth",
    options: { out: { type: "string" }, seed: { type: "string" }, size: { type: "string" } },
    async run(v) {
      const { makePhantom } = await import("../server/pipeline/phantom-command.js");
      const seed = typeof v.seed === "string" ? Number(v.seed) : 1;
      if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected a non-negative integer, got '${String(v.seed)}'`);
      const out = required(v, "out");
      const summary = await makePhantom({ out, seed, size: typeof v.size === "string" ? v.size : undefined, progress: terminalProgress() });
      process.stdout.write(`${summary}\n`);
    },
  },
  serve: {
    usage: "serve DIR [--port 8080] [--host 127.0.0.1]",
    summary: "serve DIR's layers, the viewer and the API",
    options: { port: { type: "string" }, host: { type: "string" } },
    async run(v, positionals) {
      const dir = positionals[0];
      if (!dir) throw new UsageError("missing DIR");
      const port = typeof v.port === "string" ? Number(v.port) : 8080;
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0-65535, got '${String(v.port)}'`);
      const { serve } = await import("../server/api/serve.js");
      const host = typeof v.host === "string" ? v.host : "127.0.0.1";
      if (!existsSync(path.join(dir, "state.json"))) throw new UsageError(`${dir}: not a vemscope output folder (no state.json); run 'vemscope run' first`);
      const { url } = await serve({ root: dir, port, host }).catch((e: NodeJS.ErrnoException) => {
        throw e.code === "EADDRINUSE" ? new UsageError(`--port: ${host}:${port} is already in use; pass another --port`) : e;
      });
      process.stdout.write(`vemscope serving ${path.resolve(dir)}\nviewer: ${url}\n`);
      return new Promise<number>(() => {}); // serve until interrupted
    },
  },
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([, c]) => `  ${c.usage}\n      ${c.summary}`);
  return `usage: npm run --silent vemscope -- <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(help());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`vemscope: unknown command '${name}'\n${help()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    return (await command.run(values, positionals)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`vemscope ${name}: ${(e as Error).message}\nusage: vemscope ${command.usage}\n`);
      return 2;
    }
    if (e instanceof PipelineError || e instanceof PrecomputedError) {
      process.stderr.write(`vemscope ${name}: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`vemscope ${name}: unexpected failure: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
