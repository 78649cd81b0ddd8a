/**
 * Synthetic EM-like training sections for the classes without public annotations here (ER, lipid droplets,
 * lysosomes, peroxisomes, nuclei): phantoms rendered with a style varied by seed (contrast, membrane width,
 * blur, noise...). Usage: tsx scripts/train/synth.ts OUT_DIR [COUNT] [FIRST_SEED]
 * Writes OUT_DIR/seed-N/{image,labels}.tif (+ truth.json last, so a folder with truth.json is complete).
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { generatePhantom, variedEmStyle, writePhantom } from "../../server/pipeline/phantom/index.js";

export async function writeSyntheticSet(outDir: string, count: number, firstSeed: number): Promise<string[]> {
  const dirs: string[] = [];
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const dir = path.join(outDir, `seed-${seed}`);
    dirs.push(dir);
    if (existsSync(path.join(dir, "truth.json"))) continue;
    await writePhantom(dir, generatePhantom({ seed, style: variedEmStyle(seed) }));
  }
  return dirs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [out, count = "6", first = "1001"] = process.argv.slice(2);
  if (!out) {
    console.error("usage: tsx scripts/train/synth.ts OUT_DIR [COUNT] [FIRST_SEED]");
    process.exit(2);
  }
  const dirs = await writeSyntheticSet(out, Number(count), Number(first));
  console.log(dirs.join("\n"));
}
