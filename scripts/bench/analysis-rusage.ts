/**
 * Preloaded into a child process by the analysis bench (`node --import tsx --import ./scripts/bench/analysis-rusage.ts ...`):
 * on exit, writes the process's peak RSS and CPU time (all threads) as JSON to $VEMSCOPE_BENCH_RUSAGE.
 * Portable stand-in for `/usr/bin/time -v`, which not every machine has.
 */
import { writeFileSync } from "node:fs";

export interface RusageReport {
  /** Peak resident set size, kilobytes (getrusage ru_maxrss). */
  maxRssKb: number;
  userCpuS: number;
  systemCpuS: number;
}

const target = process.env.VEMSCOPE_BENCH_RUSAGE;
if (target) {
  process.on("exit", () => {
    const r = process.resourceUsage();
    const report: RusageReport = { maxRssKb: r.maxRSS, userCpuS: r.userCPUTime / 1e6, systemCpuS: r.systemCPUTime / 1e6 };
    writeFileSync(target, JSON.stringify(report));
  });
}
