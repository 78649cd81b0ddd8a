/**
 * The out-of-core threshold alone, in a module with no imports: run.ts decides between the in-memory and the
 * out-of-core path from it, and importing blockwise/run.ts for a constant would load the object-store client
 * (AWS SDK, ~0.5 s of CPU) into every in-memory run.
 */

/** Voxels: volumes above it run out of core (blockwise/run.ts), with blocks, crops and pyramid regions sized to it. */
export const DEFAULT_BLOCK_BUDGET = 64 * 2 ** 20;
