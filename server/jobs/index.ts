/** vemscope's job system: tasks over bounding boxes, run in-process or on a Redis queue by many workers. */
export { JobError, type JobErrorCode } from "./errors.js";
export { createTasks, parseTask, readBox, taskId, voxelsOf, type BBox, type CreateTasksOptions, type Json, type JsonObject, type Task } from "./tasks.js";
export { builtinKinds, defaultContext, TaskKindRegistry, type TaskContext, type TaskKind, type TaskOutcome } from "./kinds.js";
export { runTasksInProcess, type DeadLetter, type LocalRunOptions, type RetryPolicy, type RunProgress, type RunResult } from "./local-executor.js";
export { DEFAULT_QUEUE, listDeadLetters, runIdFor, runTasksOnQueue, type QueueRunOptions, type QueueRunResult } from "./queue.js";
export { startWorker, type RunningWorker, type StartWorkerOptions, type WorkerEvent } from "./worker.js";
export { downsampleAlignment, downsampleKind, planDownsample, type DownsampleParams } from "./kinds/downsample.js";
export { writeLayerOnQueue, type QueuedPyramidOptions } from "./pyramid.js";
