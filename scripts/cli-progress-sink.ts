import cliProgress from "cli-progress";
import type { Progress } from "../server/pipeline/progress.js";

/**
 * Progress bars on a terminal; one line per finished stage otherwise (CI logs, pipes), so long work is
 * visible without flooding a log.
 */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let stage = "";
  let total = 0;
  let unit = "";
  let started = 0;
  return {
    start(name, n, u = "") {
      this.end();
      stage = name;
      total = n;
      unit = u;
      started = performance.now();
      if (tty) {
        bar = new cliProgress.SingleBar(
          { stream, format: `${name.padEnd(14)} [{bar}] {percentage}% {value}/{total} ${u} {eta_formatted}`, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(1, n), 0);
      }
    },
    update(done) {
      bar?.update(Math.min(done, Math.max(1, total)));
    },
    end() {
      if (!stage) return;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (bar) {
        bar.update(Math.max(1, total));
        bar.stop();
        bar = undefined;
      } else {
        stream.write(`${stage}: ${total} ${unit} in ${seconds} s\n`);
      }
      stage = "";
    },
  };
}
