import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Volume } from "../../precomputed/array.js";
import { PipelineError } from "./errors.js";
import { readLabels, readStack } from "./ingest.js";
import { createRng } from "./random.js";
import { decodeTiffPages, scanTiff, writeTiffStack } from "./tiff.js";

const dir = mkdtempSync(join(tmpdir(), "vemscope-tiff-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PY = "/usr/bin/python3";
const hasTifffile = spawnSync(PY, ["-c", "import tifffile, numpy"], { stdio: "ignore" }).status === 0;

function ramp<T extends Uint8Array | Uint16Array | Uint32Array>(ctor: new (n: number) => T, shape: [number, number, number], mod: number): Volume<T> {
  const [w, h, d] = shape;
  const data = new ctor(w * h * d);
  for (let z = 0; z < d; z++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[x + w * (y + h * z)] = (x * 7 + y * 131 + z * 1031 + 3) % mod;
  return { data, shape };
}

interface PageSpec {
  w: number;
  h: number;
  bits?: number;
  spp?: number;
  photometric?: number;
  sampleFormat?: number;
  fill?: number;
}

/** A minimal independent TIFF builder for shapes our writer never produces (RGB, mixed sizes, big-endian). */
function buildTiff(pages: PageSpec[], le = true): Buffer {
  const parts: Buffer[] = [];
  let pos = 8;
  const head = Buffer.alloc(8);
  head.write(le ? "II" : "MM", 0, "latin1");
  const u16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const u32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  u16(head, 42, 2);
  u32(head, 0, 4);
  parts.push(head);
  let prevNextField: { buf: Buffer; at: number } = { buf: head, at: 4 };
  for (const p of pages) {
    const bits = p.bits ?? 8;
    const spp = p.spp ?? 1;
    const bytesPer = bits / 8;
    const pix = Buffer.alloc(p.w * p.h * spp * bytesPer);
    for (let i = 0; i < p.w * p.h * spp; i++) {
      const v = (p.fill ?? i) % 2 ** Math.min(bits, 31);
      if (bytesPer === 1) pix[i] = v;
      else if (bytesPer === 2) u16(pix, v, i * 2);
      else u32(pix, v, i * 4);
    }
    const dataAt = pos;
    parts.push(pix);
    pos += pix.length + (pix.length % 2);
    if (pix.length % 2) parts.push(Buffer.alloc(1));
    const entries: [number, number, number, number][] = [
      [256, 4, 1, p.w],
      [257, 4, 1, p.h],
      [258, 3, spp, spp === 1 ? bits : -1],
      [259, 3, 1, 1],
      [262, 3, 1, p.photometric ?? (spp === 3 ? 2 : 1)],
      [273, 4, 1, dataAt],
      [277, 3, 1, spp],
      [278, 4, 1, p.h],
      [279, 4, 1, pix.length],
      [339, 3, 1, p.sampleFormat ?? 1],
    ];
    const ifd = Buffer.alloc(2 + 12 * entries.length + 4 + 2 * spp);
    const extra = 2 + 12 * entries.length + 4;
    u16(ifd, entries.length, 0);
    entries.forEach(([tag, type, count, value], i) => {
      const o = 2 + 12 * i;
      u16(ifd, tag, o);
      u16(ifd, type, o + 2);
      u32(ifd, count, o + 4);
      if (value === -1) {
        u32(ifd, pos + extra, o + 8);
        for (let s = 0; s < spp; s++) u16(ifd, bits, extra + 2 * s);
      } else if (type === 3) u16(ifd, value, o + 8);
      else u32(ifd, value, o + 8);
    });
    u32(prevNextField.buf, pos, prevNextField.at);
    prevNextField = { buf: ifd, at: 2 + 12 * entries.length };
    parts.push(ifd);
    pos += ifd.length;
  }
  return Buffer.concat(parts);
}

async function expectBadInput(p: Promise<unknown>, pattern?: RegExp): Promise<PipelineError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PipelineError);
  const pe = err as PipelineError;
  expect(pe.code).toBe("bad_input");
  expect(pe.message).not.toContain("\n");
  if (pattern) expect(pe.message).toMatch(pattern);
  return pe;
}

describe("writeTiffStack / readStack round trip", () => {
  it("round-trips 8-bit with odd sizes", async () => {
    const vol = ramp(Uint8Array, [13, 7, 5], 256);
    const f = join(dir, "rt8.tif");
    await writeTiffStack(f, vol, { voxelNm: [5, 5, 45] });
    const { volume, bitDepth } = await readStack(f);
    expect(bitDepth).toBe(8);
    expect(volume.shape).toEqual([13, 7, 5]);
    expect(volume.data).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(volume.data).equals(Buffer.from(vol.data))).toBe(true);
    expect(readdirSync(dir).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });

  it("round-trips 16-bit with odd sizes", async () => {
    const vol = ramp(Uint16Array, [9, 11, 3], 65536);
    const f = join(dir, "rt16.tif");
    await writeTiffStack(f, vol);
    const { volume, bitDepth } = await readStack(f);
    expect(bitDepth).toBe(16);
    expect(volume.shape).toEqual([9, 11, 3]);
    expect(Array.from(volume.data)).toEqual(Array.from(vol.data));
  });

  it("round-trips 32-bit labels (readStack refuses them as images)", async () => {
    const vol = ramp(Uint32Array, [5, 3, 7], 2 ** 32);
    vol.data[0] = 0xfffffffe;
    const f = join(dir, "rt32.tif");
    await writeTiffStack(f, vol);
    const labels = await readLabels(f);
    expect(labels.data).toBeInstanceOf(Uint32Array);
    expect(labels.shape).toEqual([5, 3, 7]);
    expect(Array.from(labels.data)).toEqual(Array.from(vol.data));
    await expectBadInput(readStack(f), /bit depth/);
  });

  it("writes a single-page 1x1 stack", async () => {
    const f = join(dir, "one.tif");
    await writeTiffStack(f, { data: new Uint8Array([42]), shape: [1, 1, 1] });
    const { volume } = await readStack(f);
    expect(Array.from(volume.data)).toEqual([42]);
  });

  it("reads big-endian files", async () => {
    const f = join(dir, "be16.tif");
    writeFileSync(f, buildTiff([{ w: 4, h: 3, bits: 16 }, { w: 4, h: 3, bits: 16 }], false));
    const { volume, bitDepth } = await readStack(f);
    expect(bitDepth).toBe(16);
    expect(volume.shape).toEqual([4, 3, 2]);
    expect(Array.from(volume.data.subarray(0, 12))).toEqual([...Array(12).keys()]);
  });

  it("inverts WhiteIsZero images", async () => {
    const f = join(dir, "wiz.tif");
    writeFileSync(f, buildTiff([{ w: 3, h: 1, photometric: 0 }]));
    const { volume } = await readStack(f);
    expect(Array.from(volume.data)).toEqual([255, 254, 253]);
  });
});

/** Sample i of buildStrippedTiff's page. */
const stripSample = (i: number, bits: number): number => (i * 2654435761) % 2 ** Math.min(bits, 31) % 2 ** bits;

/** One uncompressed page of `rowsPerStrip`-row strips (the last one short), padded strips, either byte order. */
function buildStrippedTiff(w: number, h: number, bits: 8 | 16 | 32, rowsPerStrip: number, le: boolean): Buffer {
  const bytes = bits / 8;
  const strips = Math.ceil(h / rowsPerStrip);
  const head = Buffer.alloc(8);
  head.write(le ? "II" : "MM", 0, "latin1");
  const u16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const u32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  u16(head, 42, 2);
  const parts: Buffer[] = [head];
  let pos = 8;
  const offsets: number[] = [];
  const counts: number[] = [];
  for (let s = 0; s < strips; s++) {
    const rows = Math.min(rowsPerStrip, h - s * rowsPerStrip);
    const strip = Buffer.alloc(rows * w * bytes + 4); // 4 bytes of padding the reader must skip
    for (let i = 0; i < rows * w; i++) {
      const v = stripSample(s * rowsPerStrip * w + i, bits);
      if (bytes === 1) strip[i] = v;
      else if (bytes === 2) u16(strip, v, 2 * i);
      else u32(strip, v, 4 * i);
    }
    offsets.push(pos);
    counts.push(strip.length);
    parts.push(strip);
    pos += strip.length;
  }
  const arrays = Buffer.alloc(8 * strips);
  offsets.forEach((o, i) => u32(arrays, o, 4 * i));
  counts.forEach((c, i) => u32(arrays, c, 4 * (strips + i)));
  parts.push(arrays);
  const arraysAt = pos;
  pos += arrays.length;
  const entries: [number, number, number, number][] = [
    [256, 4, 1, w],
    [257, 4, 1, h],
    [258, 3, 1, bits],
    [259, 3, 1, 1],
    [262, 3, 1, 1],
    [273, 4, strips, strips === 1 ? offsets[0] : arraysAt],
    [277, 3, 1, 1],
    [278, 4, 1, rowsPerStrip],
    [279, 4, strips, strips === 1 ? counts[0] : arraysAt + 4 * strips],
  ];
  const ifd = Buffer.alloc(2 + 12 * entries.length + 4);
  u16(ifd, entries.length, 0);
  entries.forEach(([tag, type, count, value], i) => {
    u16(ifd, tag, 2 + 12 * i);
    u16(ifd, type, 4 + 12 * i);
    u32(ifd, count, 6 + 12 * i);
    if (type === 3) u16(ifd, value, 10 + 12 * i);
    else u32(ifd, value, 10 + 12 * i);
  });
  u32(head, pos, 4);
  parts.push(ifd);
  return Buffer.concat(parts);
}

describe("uncompressed pages read without geotiff", () => {
  // geotiff 3.0.5 reads the out-of-line strip arrays of big-endian files as little-endian (DeferredArray) and so
  // decodes multi-strip big-endian pages as zeros or fails on them; the direct reader does not, so it is checked against the
  // samples written, and against geotiff where geotiff is right (little-endian, or one strip).
  it("read the samples written: strips, padding, both byte orders, 8/16/32-bit; as geotiff where it is right", async () => {
    for (const le of [true, false]) {
      for (const bits of [8, 16, 32] as const) {
        for (const rps of [1, 3, 7, 64]) {
          const [w, h] = [13, 7];
          const f = join(dir, `strips-${le}-${bits}-${rps}.tif`);
          writeFileSync(f, buildStrippedTiff(w, h, bits, rps, le));
          const { pages } = await scanTiff(f);
          expect(pages[0]?.raw).toBeDefined();
          const make = () => (bits === 8 ? new Uint8Array(w * h) : bits === 16 ? new Uint16Array(w * h) : new Uint32Array(w * h));
          const viaRaw = make();
          const viaGeotiff = make();
          await decodeTiffPages(f, pages, viaRaw, 0, w, h);
          expect(Array.from(viaRaw)).toEqual(Array.from({ length: w * h }, (_, i) => stripSample(i, bits)));
          if (le || rps >= h) {
            await decodeTiffPages(f, pages.map((p) => p.ifdIndex), viaGeotiff, 0, w, h);
            expect(Array.from(viaGeotiff)).toEqual(Array.from(viaRaw));
          }
        }
      }
    }
  });
});

describe.skipIf(!hasTifffile)("interoperability with python tifffile", () => {
  it("tifffile reads what we write (8/16/32-bit) with the same values", async () => {
    for (const [ctor, mod, name] of [
      [Uint8Array, 256, "uint8"],
      [Uint16Array, 65536, "uint16"],
      [Uint32Array, 2 ** 32, "uint32"],
    ] as const) {
      const vol = ramp(ctor as new (n: number) => Uint8Array | Uint16Array | Uint32Array, [11, 6, 4], mod);
      const f = join(dir, `py-${name}.tif`);
      await writeTiffStack(f, vol, { voxelNm: [5, 5, 45] });
      const out = execFileSync(PY, [
        "-c",
        "import sys,tifffile,numpy as np\n" +
          "a=tifffile.imread(sys.argv[1])\n" +
          "with tifffile.TiffFile(sys.argv[1]) as t: n=len(t.pages)\n" +
          "print(a.dtype, 'x'.join(map(str,a.shape)), n, int(a.astype(np.uint64).sum()), int(a[1,2,3]))",
        f,
      ]).toString();
      const [dtype, shape, pages, sum, probe] = out.trim().split(" ");
      let expectedSum = 0n;
      for (const v of vol.data) expectedSum += BigInt(v);
      expect(dtype).toBe(name);
      expect(shape).toBe("4x6x11");
      expect(pages).toBe("4");
      expect(sum).toBe(String(expectedSum));
      expect(probe).toBe(String(vol.data[3 + 11 * (2 + 6 * 1)]));
    }
  });

  it("we read what tifffile writes (uncompressed and deflate, 8/16-bit)", async () => {
    for (const [dtype, compression] of [
      ["uint8", "None"],
      ["uint16", "None"],
      ["uint16", "'zlib'"],
    ] as const) {
      const f = join(dir, `from-py-${dtype}-${compression.replace(/'/g, "")}.tif`);
      execFileSync(PY, [
        "-c",
        "import sys,tifffile,numpy as np\n" +
          `z,y,x=np.mgrid[0:5,0:9,0:7]\na=((x*7+y*131+z*1031+3)%${dtype === "uint8" ? 256 : 65536}).astype('${dtype}')\n` +
          `tifffile.imwrite(sys.argv[1], a, compression=${compression}, rowsperstrip=4)`,
        f,
      ]);
      const { volume, bitDepth } = await readStack(f);
      const ref = dtype === "uint8" ? ramp(Uint8Array, [7, 9, 5], 256) : ramp(Uint16Array, [7, 9, 5], 65536);
      expect(bitDepth).toBe(dtype === "uint8" ? 8 : 16);
      expect(volume.shape).toEqual([7, 9, 5]);
      expect(Array.from(volume.data)).toEqual(Array.from(ref.data));
    }
  });
});

describe("bad input is a one-line PipelineError naming the file", () => {
  it("missing file", async () => {
    const f = join(dir, "nope.tif");
    const e = await expectBadInput(readStack(f), /not found/);
    expect(e.file).toBe(f);
  });

  it("not a TIFF", async () => {
    const f = join(dir, "text.tif");
    writeFileSync(f, "hello, this is not an image at all");
    await expectBadInput(readStack(f), /not a TIFF/);
  });

  it("RGB", async () => {
    const f = join(dir, "rgb.tif");
    writeFileSync(f, buildTiff([{ w: 4, h: 4, spp: 3 }]));
    await expectBadInput(readStack(f), /RGB/);
  });

  it("pages of different sizes", async () => {
    const f = join(dir, "mixed.tif");
    const pages: PageSpec[] = Array.from({ length: 8 }, () => ({ w: 12, h: 12 }));
    pages[7] = { w: 12, h: 10 };
    writeFileSync(f, buildTiff(pages));
    const e = await expectBadInput(readStack(f));
    expect(e.message).toContain("page 7 is 12x10, page 0 is 12x12");
  });

  it("pages of different bit depths", async () => {
    const f = join(dir, "mixedbits.tif");
    writeFileSync(f, buildTiff([{ w: 4, h: 4 }, { w: 4, h: 4, bits: 16 }]));
    await expectBadInput(readStack(f), /page 1 is 16-bit, page 0 is 8-bit/);
  });

  it("float, signed and odd bit depths", async () => {
    const cases: [PageSpec, RegExp][] = [
      [{ w: 2, h: 2, bits: 32, sampleFormat: 3 }, /floating-point/],
      [{ w: 2, h: 2, bits: 16, sampleFormat: 2 }, /signed/],
      [{ w: 2, h: 2, bits: 32 }, /bit depth/],
    ];
    for (const [i, [spec, re]] of cases.entries()) {
      const f = join(dir, `odd${i}.tif`);
      writeFileSync(f, buildTiff([spec]));
      await expectBadInput(readStack(f), re);
    }
  });

  it("a truncated stack is refused, not read as black", async () => {
    const f = join(dir, "trunc-src.tif");
    writeFileSync(f, buildTiff([{ w: 20, h: 20 }, { w: 20, h: 20 }]));
    const bytes = readFileSync(f);
    const t = join(dir, "trunc.tif");
    writeFileSync(t, bytes.subarray(0, 500));
    await expectBadInput(readStack(t));
  });

  it("an IFD chain that loops is refused, not followed forever", async () => {
    const f = join(dir, "loop.tif");
    const bytes = buildTiff([{ w: 2, h: 2 }]);
    const first = bytes.readUInt32LE(4);
    const n = bytes.readUInt16LE(first);
    bytes.writeUInt32LE(first, first + 2 + 12 * n);
    writeFileSync(f, bytes);
    await expectBadInput(scanTiff(f), /loops/);
  });
});

describe("fuzzed TIFF files", () => {
  it("150 seeded corruptions: each is a PipelineError or a correct-shaped read, never a hang or another error", async () => {
    const rng = createRng(20240601);
    const bases: Buffer[] = [];
    for (const [i, vol] of [ramp(Uint8Array, [9, 7, 4], 256), ramp(Uint16Array, [6, 5, 3], 65536)].entries()) {
      const f = join(dir, `fuzzbase${i}.tif`);
      await writeTiffStack(f, vol as Volume<Uint8Array | Uint16Array>);
      bases.push(readFileSync(f));
    }
    bases.push(buildTiff([{ w: 5, h: 4 }, { w: 5, h: 4 }, { w: 5, h: 4 }]));
    let rejected = 0;
    let accepted = 0;
    for (let i = 0; i < 150; i++) {
      const base = rng.pick(bases);
      let bytes = Buffer.from(base);
      const kind = i % 3;
      if (kind === 0) {
        bytes = bytes.subarray(0, rng.int(0, bytes.length - 1));
      } else {
        // Most flips land in the header and IFDs, where they change structure rather than pixel values.
        const ifdAt = bytes.readUInt32LE(4) <= bytes.length ? Math.min(bytes.readUInt32LE(4), bytes.length - 1) : 8;
        const flips = rng.int(1, 8);
        for (let k = 0; k < flips; k++) {
          const at = rng.bool(0.15) ? rng.int(0, 7) : rng.bool(0.85) ? rng.int(ifdAt, bytes.length - 1) : rng.int(0, bytes.length - 1);
          bytes[at] = kind === 1 ? (bytes[at] as number) ^ (1 << rng.int(0, 7)) : rng.int(0, 255);
        }
      }
      const f = join(dir, `fuzz${i}.tif`);
      writeFileSync(f, bytes);
      let timer: NodeJS.Timeout | undefined;
      const hang = new Promise<"hang">((resolve) => {
        timer = setTimeout(() => resolve("hang"), 10_000);
      });
      const outcome: Awaited<ReturnType<typeof readStack>> | "hang" | Error = await Promise.race([
        readStack(f).then(
          (s) => s,
          (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
        ),
        hang,
      ]);
      clearTimeout(timer);
      expect(outcome, `case ${i}`).not.toBe("hang");
      if (outcome instanceof Error) {
        expect(outcome, `case ${i}: ${outcome.message}`).toBeInstanceOf(PipelineError);
        rejected++;
      } else if (outcome !== "hang") {
        const [w, h, d] = outcome.volume.shape;
        expect(outcome.volume.data.length).toBe(w * h * d);
        accepted++;
      }
    }
    expect(rejected + accepted).toBe(150);
    expect(rejected).toBeGreaterThanOrEqual(100);
  });
});
