/** Segmentation (issue 5): what the pipeline and the CLI use. */
export { DEFAULT_MODEL_PATH, loadModelInfo, type ModelInfo } from "./model.js";
export { DEFAULT_OVERLAP, DEFAULT_TILE, segmentVolume, type ClassProbabilities, type SegmentOptions, type SegmentResult, type SegmentStats } from "./segment.js";
export { defaultRunnerOptions, type RunnerOptions } from "./pool.js";
export { evaluate, type EvalReport } from "./eval.js";
