import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["precomputed/**/*.test.ts", "server/**/*.test.ts", "scripts/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores here: browser tests and CPU-heavy kernels must not starve each other.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
