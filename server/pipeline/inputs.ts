import type { Vec3, Volume } from "../../precomputed/array.js";
import { MAX_CLASS_CODE } from "./classes.js";
import { PipelineError } from "./errors.js";
import { openStack, readLabels, readStack, type StackReader } from "./ingest.js";

export async function readImage(file: string): Promise<Volume<Uint8Array | Uint16Array>> {
  return (await readStack(file)).volume;
}

/** A class volume matching the image voxel for voxel, with codes 0..6 only (DESIGN.md). */
export async function readLabelsChecked(file: string, image: Volume): Promise<Volume<Uint8Array>> {
  const labels = await readLabels(file);
  checkSameShape(file, labels.shape, image.shape);
  return { data: checkedClassCodes(labels.data, labels.shape, 0, file), shape: labels.shape };
}

export interface SlabInputs {
  image: StackReader;
  labels: StackReader;
  shape: Vec3;
  /** Class codes of sections [z0, z1), checked like readLabelsChecked (same messages, global voxel coordinates). */
  readClasses(z0: number, z1: number): Promise<Uint8Array>;
}

/** Both stacks opened from their headers only: shapes are compared before any section is decoded. */
export async function openSlabInputs(imageFile: string, labelsFile: string): Promise<SlabInputs> {
  const image = await openStack(imageFile, "image");
  const labels = await openStack(labelsFile, "labels");
  checkSameShape(labelsFile, labels.shape, image.shape);
  const shape: Vec3 = [...image.shape];
  return {
    image,
    labels,
    shape,
    readClasses: async (z0, z1) => checkedClassCodes(await labels.read(z0, z1), [shape[0], shape[1], z1 - z0], z0, labelsFile),
  };
}

function checkSameShape(file: string, a: readonly number[], b: readonly number[]): void {
  if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2]) {
    throw new PipelineError("shape_mismatch", `labels are ${a.join("x")} voxels but the image is ${b.join("x")}`, file);
  }
}

/** `data` holds sections z0.. of a stack `shape[0]` x `shape[1]` wide; voxels are named in stack coordinates. */
function checkedClassCodes(data: Uint8Array | Uint16Array | Uint32Array, shape: readonly number[], z0: number, file: string): Uint8Array {
  for (let i = 0; i < data.length; i++) {
    if (data[i] > MAX_CLASS_CODE) {
      const x = i % shape[0];
      const y = Math.floor(i / shape[0]) % shape[1];
      const z = Math.floor(i / (shape[0] * shape[1])) + z0;
      throw new PipelineError(
        "bad_input",
        `class code ${data[i]} at voxel (${x},${y},${z}) is not one of 0-${MAX_CLASS_CODE} (0 bg, 1 er, 2 mito, 3 ld, 4 lyso, 5 perox, 6 nucleus)`,
        file,
      );
    }
  }
  return data instanceof Uint8Array ? data : Uint8Array.from(data);
}
