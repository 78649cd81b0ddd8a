/**
 * Real EM crops for the alignment tests. They live in the repository (test/fixtures/align/, provenance
 * and licence in its README) so that the tests run wherever the repository is cloned, CI included; the
 * larger shared training data (../shared/data) is only used by align-eval and the bench.
 */
import { fileURLToPath } from "node:url";
import sharp from "sharp";

export const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/align/", import.meta.url));

export interface EmSection {
  data: Uint8Array;
  width: number;
  height: number;
}

async function load(file: string): Promise<EmSection> {
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

/** CDeep3M SBEM section 20 of its sample, centre 512 x 512 crop: room for warps of a 320-px crop. */
export function emSection512(): Promise<EmSection> {
  return load(`${FIXTURES}cdeep3m-0010-512.png`);
}

/**
 * Four consecutive real SBEM sections (index 0-3): centre 576 x 576 px binned 2 x 2 to 288 x 288. At full
 * resolution 40-nm neighbours share too few features in a crop this small for the coarse stage (10-15
 * inliers); binned they share 25-50, like the thinner sections the tests were written for.
 */
export function emNeighbour288(index: number): Promise<EmSection> {
  if (!(Number.isInteger(index) && index >= 0 && index < 4)) throw new RangeError(`fixture section ${index} is not one of 0-3`);
  return load(`${FIXTURES}cdeep3m-${String(10 + index).padStart(4, "0")}-bin2-288.png`);
}
