import type { Vec3 } from "../../precomputed/array.js";
import { PipelineError } from "./errors.js";

/** `"5,5,45"` -> [5, 5, 45] (nm). */
export function parseVoxel(text: string): Vec3 {
  const parts = text.split(",").map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.length !== 3 || parts.some((p) => p === "") || nums.some((n) => !Number.isFinite(n) || n <= 0)) {
    throw new PipelineError("bad_argument", `expected three positive numbers in nm like 5,5,45, got '${text}'`, "--voxel");
  }
  return [nums[0], nums[1], nums[2]];
}

/** `"512,512,64"` -> [512, 512, 64] voxels. */
export function parseSize(text: string, option: string): Vec3 {
  const parts = text.split(",").map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.length !== 3 || nums.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new PipelineError("bad_argument", `expected three positive integers like 512,512,64, got '${text}'`, option);
  }
  return [nums[0], nums[1], nums[2]];
}
