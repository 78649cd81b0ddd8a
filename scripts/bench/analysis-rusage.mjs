// @ts-check
/**
 * Preloaded into a child process by the analysis bench (`node --import ./scripts/bench/analysis-rusage.mjs ...`):
 * on exit, writes the process's peak RSS and CPU time (all threads) as JSON to $VEMSCOPE_BENCH_RUSAGE
 * (`{ maxRssKb, userCpuS, systemCpuS }`, analysis.ts's RusageReport). Portable stand-in for `/usr/bin/time -v`,
 * which not every machine has. Plain JavaScript: the CLI it measures runs without a TypeScript loader.
 */
import { writeFileSync } from "node:fs";

const target = process.env.VEMSCOPE_BENCH_RUSAGE;
if (target) {
  process.on("exit", () => {
    const r = process.resourceUsage();
    writeFileSync(target, JSON.stringify({ maxRssKb: r.maxRSS, userCpuS: r.userCPUTime / 1e6, systemCpuS: r.systemCPUTime / 1e6 }));
  });
}
