import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { PipelineError } from "./errors.js";
import { naturalCompare, readLabels, readStack } from "./ingest.js";
import { writeTiffStack } from "./tiff.js";

const dir = mkdtempSync(join(tmpdir(), "vemscope-ingest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const W = 7;
const H = 5;
const value = (x: number, y: number, z: number, mod: number) => (x * 3 + y * 17 + z * 29 + 1) % mod;

async function writePng(file: string, z: number, bits: 8 | 16, w = W, h = H, channels: 1 | 3 = 1): Promise<void> {
  if (bits === 16) {
    const px = new Uint16Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[x + w * y] = value(x, y, z, 65536) * 37;
    await sharp(px, { raw: { width: w, height: h, channels: 1 } }).toColourspace("grey16").png().toFile(file);
    return;
  }
  const px = new Uint8Array(w * h * channels);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < channels; c++) px[i * channels + c] = value(i % w, Math.floor(i / w), z, 256) + c * (channels - 1);
  const img = sharp(px, { raw: { width: w, height: h, channels } });
  await (channels === 1 ? img.toColourspace("b-w") : img).png().toFile(file);
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<PipelineError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PipelineError);
  const pe = e as PipelineError;
  expect(pe.code).toBe("bad_input");
  expect(pe.message).toMatch(re);
  return pe;
}

describe("folders of slices", () => {
  it("reads 8-bit PNG slices in natural order (s2 before s10)", async () => {
    const d = join(dir, "png8");
    mkdirSync(d);
    for (let z = 0; z < 12; z++) await writePng(join(d, `s${z + 1}.png`), z, 8);
    writeFileSync(join(d, "notes.txt"), "ignored");
    writeFileSync(join(d, ".hidden.png"), "ignored");
    const { volume, bitDepth } = await readStack(d);
    expect(bitDepth).toBe(8);
    expect(volume.shape).toEqual([W, H, 12]);
    for (let z = 0; z < 12; z++) {
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) expect(volume.data[x + W * (y + H * z)]).toBe(value(x, y, z, 256));
    }
  });

  it("reads 16-bit PNG slices with full precision", async () => {
    const d = join(dir, "png16");
    mkdirSync(d);
    for (let z = 0; z < 3; z++) await writePng(join(d, `slice_${String(z).padStart(3, "0")}.png`), z, 16);
    const { volume, bitDepth } = await readStack(d);
    expect(bitDepth).toBe(16);
    expect(volume.data).toBeInstanceOf(Uint16Array);
    expect(volume.data[2 + W * (3 + H * 2)]).toBe(value(2, 3, 2, 65536) * 37);
  });

  it("reads a folder of single-page TIFF slices, and a single PNG file", async () => {
    const d = join(dir, "tifs");
    mkdirSync(d);
    for (let z = 0; z < 4; z++) {
      const data = new Uint8Array(W * H).map((_, i) => value(i % W, Math.floor(i / W), z, 256));
      await writeTiffStack(join(d, `t${z}.tif`), { data, shape: [W, H, 1] });
    }
    const { volume } = await readStack(d);
    expect(volume.shape).toEqual([W, H, 4]);
    expect(volume.data[1 + W * (1 + H * 3)]).toBe(value(1, 1, 3, 256));
    const single = await readStack(join(d, "..", "png8", "s1.png"));
    expect(single.volume.shape).toEqual([W, H, 1]);
  });

  it("refuses an empty folder, a size mismatch (naming the slice) and RGB slices", async () => {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    await rejects(readStack(empty), /no PNG or TIFF slices/);

    const mixed = join(dir, "mixed");
    mkdirSync(mixed);
    await writePng(join(mixed, "a1.png"), 0, 8);
    await writePng(join(mixed, "a2.png"), 1, 8, W, H - 1);
    const e = await rejects(readStack(mixed), /slice 1 \(a2\.png\) is 7x4, slice 0 \(a1\.png\) is 7x5/);
    expect(e.file).toBe(join(mixed, "a2.png"));

    const rgb = join(dir, "rgb");
    mkdirSync(rgb);
    await writePng(join(rgb, "c.png"), 0, 8, W, H, 3);
    await rejects(readStack(rgb), /RGB/);

    const corrupt = join(dir, "corrupt");
    mkdirSync(corrupt);
    writeFileSync(join(corrupt, "x.png"), Buffer.from("\x89PNG\r\n\x1a\n garbage"));
    await rejects(readStack(corrupt), /cannot/);
  });

  it("refuses mixed bit depths across slices", async () => {
    const d = join(dir, "mixbits");
    mkdirSync(d);
    await writePng(join(d, "1.png"), 0, 8);
    await writePng(join(d, "2.png"), 1, 16);
    await rejects(readStack(d), /16-bit/);
  });

  it("reads uint8 and uint16 label TIFFs", async () => {
    const f = join(dir, "labels16.tif");
    const data = new Uint16Array(W * H * 2).map((_, i) => i * 300);
    await writeTiffStack(f, { data, shape: [W, H, 2] });
    const labels = await readLabels(f);
    expect(labels.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(labels.data)).toEqual(Array.from(data));
  });
});

describe("naturalCompare", () => {
  it("orders digit runs by value", () => {
    expect(["s10.png", "s2.png", "s1.png", "a.png", "s02.png"].sort(naturalCompare)).toEqual(["a.png", "s1.png", "s2.png", "s02.png", "s10.png"]);
  });
});
