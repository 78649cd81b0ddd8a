/** Layer sources in `state.json` are written relative (`precomputed://./image`) so a dataset folder can move. */
export const RELATIVE_SOURCE = "precomputed://./";
