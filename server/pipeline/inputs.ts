import type { Volume } from "../../precomputed/array.js";
import { MAX_CLASS_CODE } from "./classes.js";
import { PipelineError } from "./errors.js";
import { readLabels, readStack } from "./ingest.js";

export async function readImage(file: string): Promise<Volume<Uint8Array | Uint16Array>> {
  return (await readStack(file)).volume;
}

/** A class volume matching the image voxel for voxel, with codes 0..6 only (DESIGN.md). */
export async function readLabelsChecked(file: string, image: Volume): Promise<Volume<Uint8Array>> {
  const labels = await readLabels(file);
  const [a, b] = [labels.shape, image.shape];
  if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2]) {
    throw new PipelineError("shape_mismatch", `labels are ${a.join("x")} voxels but the image is ${b.join("x")}`, file);
  }
  const data = labels.data;
  for (let i = 0; i < data.length; i++) {
    if (data[i] > MAX_CLASS_CODE) {
      const x = i % a[0];
      const y = Math.floor(i / a[0]) % a[1];
      const z = Math.floor(i / (a[0] * a[1]));
      throw new PipelineError(
        "bad_input",
        `class code ${data[i]} at voxel (${x},${y},${z}) is not one of 0-${MAX_CLASS_CODE} (0 bg, 1 er, 2 mito, 3 ld, 4 lyso, 5 perox, 6 nucleus)`,
        file,
      );
    }
  }
  return { data: data instanceof Uint8Array ? data : Uint8Array.from(data), shape: a };
}
