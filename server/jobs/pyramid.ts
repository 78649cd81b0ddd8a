import type { Vec3, Volume } from "../../precomputed/array.js";
import { joinKey } from "../../precomputed/keys.js";
import type { VolumeInfo } from "../../precomputed/info.js";
import type { Storage } from "../../precomputed/storage.js";
import { writeRegion } from "../../precomputed/volume-io.js";
import { JobError } from "./errors.js";
import { planDownsample } from "./kinds/downsample.js";
import { runTasksOnQueue, type QueueRunOptions, type QueueRunResult } from "./queue.js";

/**
 * A precomputed layer whose scale 0 is written here and whose coarser scales are built by `downsample` tasks
 * on a queue: what `vemscope run --queue` does for the image layer.
 *
 * The workers open the layer by `layerUrl`, so it must name the same place for them as `storage`/`prefix` does
 * here: an s3:// location, or a folder on a filesystem every worker mounts at the same absolute path.
 * Scale 0 is read back from storage, so with a lossy encoding (jpeg) the coarser scales are downsampled from the
 * decoded chunks rather than from the original voxels as writeVolume does (raw and compressed_segmentation
 * layers come out byte-identical to writeVolume's).
 */

export interface QueuedPyramidOptions extends Omit<QueueRunOptions, "runId"> {
  /** gzip raw / compressed_segmentation chunks, as writeVolume's option. Default true. */
  gzip?: boolean;
  /** Scale-0 block per task, rounded up to the alignment the pyramid needs. Default 256 x 256 x 32. */
  blockShape?: Vec3;
}

export async function writeLayerOnQueue(
  queueUrl: string,
  storage: Storage,
  prefix: string,
  layerUrl: string,
  info: VolumeInfo,
  volume: Volume,
  options: QueuedPyramidOptions = {},
): Promise<QueueRunResult | undefined> {
  const gzip = options.gzip !== false;
  await storage.put(joinKey(prefix, "info"), JSON.stringify(info, null, 1));
  await writeRegion(storage, prefix, info, 0, info.scales[0].voxel_offset, volume, { gzip });
  const levels = info.scales.length - 1;
  if (levels < 1) return undefined;
  const { tasks } = planDownsample(info, { layer: layerUrl, levels, gzip }, options.blockShape ?? [256, 256, 32]);
  const result = await runTasksOnQueue(queueUrl, tasks, options);
  if (result.failed > 0) {
    const first = result.deadLetters[0];
    throw new JobError(
      "task_failed",
      `${result.failed} of ${result.total} downsample tasks of ${layerUrl} failed (run ${result.runId}; first: ${first?.taskId}: ${first?.error}); ` +
        "see `vemscope worker --queue URL --dead-letters`",
    );
  }
  return result;
}
