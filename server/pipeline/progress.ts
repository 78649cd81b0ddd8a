/** How long-running kernels and stages report progress; the CLI draws bars, the server streams events. */
export interface Progress {
  /** A new stage (or sub-task) with a known amount of work, in `unit`s. */
  start(stage: string, total: number, unit?: string): void;
  /** Work done so far in the current stage. */
  update(done: number): void;
  end(): void;
}

export const silentProgress: Progress = {
  start() {},
  update() {},
  end() {},
};
