import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

/**
 * `vemscope run` with these arguments in a child process (node with tsx loaded directly, so a SIGKILL reaches the
 * run itself, not a wrapper); `VEMSCOPE_TASK_LOG=log` makes it write one line per task it runs.
 */
export function startRun(runArgs: string[], log: string, env: NodeJS.ProcessEnv = process.env) {
  const args = ["--import", "tsx", "scripts/vemscope.ts", "run", ...runArgs];
  const proc = spawn(process.execPath, args, { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"], env: { ...env, VEMSCOPE_TASK_LOG: log } });
  let text = "";
  proc.stdout.on("data", (b: Buffer) => (text += b.toString()));
  proc.stderr.on("data", (b: Buffer) => (text += b.toString()));
  const exit = new Promise<number | NodeJS.Signals | null>((resolve) => proc.once("exit", (code, signal) => resolve(signal ?? code)));
  return { proc, exit, output: () => text };
}

/** Lines in a task log (0 when the run has not written it yet). */
export const lines = (file: string): number => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).length : 0);
