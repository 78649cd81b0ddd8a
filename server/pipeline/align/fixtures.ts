/** Real EM crops for the alignment tests (the project's shared training data), with a synthetic fallback. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

export const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
export const LUCCHI = join(SHARED, "lucchi_train/image");
export const haveLucchi = existsSync(join(LUCCHI, "0000.png"));

/** One whole Lucchi section (1024 x 768, 8-bit). */
export async function lucchiSection(index: number): Promise<{ data: Uint8Array; width: number; height: number }> {
  const file = join(LUCCHI, `${String(index).padStart(4, "0")}.png`);
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}
