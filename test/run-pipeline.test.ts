/**
 * `vemscope run --labels` end to end on a small hand-made volume: the output folder has DESIGN.md's layout,
 * and what it holds decodes back to the instances the kernel found. Bad input exits non-zero with one line
 * naming the file, and leaves nothing behind.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStorage } from "../precomputed/storage.js";
import { readRegion } from "../precomputed/volume-io.js";
import { validateInfo } from "../precomputed/info.js";
import { readSegmentProperties } from "../precomputed/segment-properties.js";
import { readMultiresMeshManifest } from "../precomputed/mesh-multires.js";
import { connectedComponents } from "../server/pipeline/label.js";
import { runPipeline } from "../server/pipeline/run.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";

const run = promisify(execFile);
const SHAPE: [number, number, number] = [96, 80, 12];
const VOXEL: [number, number, number] = [5, 5, 45];

let dir: string;
let classes: Uint8Array;

/** Balls of each class, an ER slab touching one mito, two separate ER pieces. */
function makeClasses(): Uint8Array {
  const [nx, ny, nz] = SHAPE;
  const c = new Uint8Array(nx * ny * nz);
  const ball = (cx: number, cy: number, cz: number, rNm: number, code: number) => {
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) {
          const d = Math.hypot((x + 0.5 - cx) * VOXEL[0], (y + 0.5 - cy) * VOXEL[1], (z + 0.5 - cz) * VOXEL[2]);
          if (d <= rNm) c[x + nx * (y + ny * z)] = code;
        }
  };
  ball(20, 20, 6, 80, 2);
  ball(60, 20, 6, 70, 3);
  ball(20, 60, 6, 60, 4);
  ball(60, 60, 6, 50, 5);
  ball(85, 40, 6, 40, 2);
  for (let z = 1; z < nz - 1; z++)
    for (let y = 5; y < 35; y++) {
      c[37 + nx * (y + ny * z)] = 1; // ER sheet beside the first mito
      c[90 + nx * (y + ny * z)] = 1; // a second, separate ER piece
    }
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-run-"));
  classes = makeClasses();
  const image = Uint8Array.from(classes, (v, i) => (v ? 60 + v * 20 : 180) + (i % 7));
  await writeTiffStack(path.join(dir, "image.tif"), { data: image, shape: SHAPE });
  await writeTiffStack(path.join(dir, "labels.tif"), { data: classes, shape: SHAPE });
  await runPipeline({ image: path.join(dir, "image.tif"), labels: path.join(dir, "labels.tif"), voxelNm: VOXEL, out: path.join(dir, "out") });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("run --labels output", () => {
  it("has DESIGN.md's layout and no staging folders left", () => {
    const out = path.join(dir, "out");
    for (const f of ["report/figures/index.html", "report/figures/fig5f-contact-percent.svg", "image/info", "segmentation/info", "segmentation/segment_properties/info", "segmentation/mesh/info", "state.json", "report/morphometrics.csv", "report/summary.json"]) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(readdirSync(dir).filter((n) => n.includes(".partial-") || n.includes(".old-"))).toEqual([]);
  });

  it("segmentation decodes to the 26-connected instances, at every scale's base", async () => {
    const storage = new LocalStorage(path.join(dir, "out"));
    const info = validateInfo(JSON.parse(new TextDecoder().decode(await storage.get("segmentation/info"))));
    expect(info.type).toBe("segmentation");
    expect(info.scales[0].resolution).toEqual(VOXEL);
    const got = await readRegion(storage, "segmentation", info, 0, [0, 0, 0], SHAPE);
    const want = connectedComponents(classes, SHAPE);
    expect(want.count).toBe(7);
    expect(got.data).toEqual(want.labels);
  });

  it("image layer keeps the data within JPEG tolerance", async () => {
    const storage = new LocalStorage(path.join(dir, "out"));
    const info = validateInfo(JSON.parse(new TextDecoder().decode(await storage.get("image/info"))));
    expect(info.scales[0].encoding).toBe("jpeg");
    const img = await readRegion(storage, "image", info, 0, [0, 0, 0], SHAPE);
    const meanBg = img.data[0 + 5 * SHAPE[0]];
    expect(Math.abs(Number(meanBg) - 185)).toBeLessThan(15);
  });

  it("segment properties carry class tags and numbers for every instance; multi-resolution meshes exist", async () => {
    const storage = new LocalStorage(path.join(dir, "out"));
    const props = await readSegmentProperties(storage, "segmentation/segment_properties");
    const inline = props.inline;
    if (!inline) throw new Error("no inline properties");
    expect(inline.ids).toEqual(["1", "2", "3", "4", "5", "6", "7"]);
    const tags = inline.properties.find((p) => p.type === "tags");
    expect(tags && "tags" in tags ? tags.tags : []).toContain("mito");
    const volume = inline.properties.find((p) => p.id === "volume_nm3");
    expect(volume?.type).toBe("number");
    for (const id of [1, 2, 3]) {
      const manifest = await readMultiresMeshManifest(storage, "segmentation/mesh", id);
      expect(manifest.lods.length).toBeGreaterThan(0);
      expect(manifest.lods[0].fragmentSizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    }
  });

  it("report rows and summary agree with the instances", () => {
    const csv = readFileSync(path.join(dir, "out", "report", "morphometrics.csv"), "utf8").trim().split("\n");
    expect(csv[0].split(",").slice(0, 3)).toEqual(["id", "class", "voxels"]);
    expect(csv.length - 1).toBe(7);
    const summary = JSON.parse(readFileSync(path.join(dir, "out", "report", "summary.json"), "utf8"));
    expect(summary.voxel_nm).toEqual(VOXEL);
    expect(summary.classes.mito.count).toBe(2);
    expect(summary.classes.er.count).toBe(2);
    const erVoxels = classes.reduce((s, v) => s + (v === 1 ? 1 : 0), 0);
    expect(summary.classes.er.volume_fraction).toBeCloseTo(erVoxels / classes.length, 10);
    expect(summary.contact_threshold_nm).toBe(30);
    // Both mitochondria touch or nearly touch the ER (0 and 10 nm); the droplet is 45 nm away.
    expect(summary.classes.mito.contact_fraction_30nm).toBe(1);
    expect(summary.classes.ld.contact_fraction_30nm).toBe(0);
  });

  it("state.json opens image, segmentation and contact layers with relative sources", () => {
    const state = JSON.parse(readFileSync(path.join(dir, "out", "state.json"), "utf8"));
    expect(state.layers.map((l: { source: string }) => l.source)).toEqual(["precomputed://./image", "precomputed://./segmentation", "precomputed://./contacts"]);
    expect(state.dimensions.z[0]).toBeCloseTo(45e-9, 15);
  });
});

describe("ER contacts in the report and the annotation layer", () => {
  const rows = () => {
    const [head, ...lines] = readFileSync(path.join(dir, "out", "report", "morphometrics.csv"), "utf8").trim().split("\n");
    const cols = head.split(",");
    return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
  };

  // The r = 80 nm ball's widest sections sit 22.5 nm off its centre (76.8 nm in-plane radius), so its last
  // voxel is x = 34 and two empty voxels (35, 36) separate it from the ER at x = 37; the r = 70 nm droplet's
  // first voxel is x = 47, nine empty voxels away.
  it("face-to-face gaps: two empty voxels in x = 10 nm (contact), nine = 45 nm (none), overlap = 0", () => {
    const r = rows();
    const mitoNear = r.find((x) => x.class === "mito" && Math.abs(Number(x.centroid_x_nm) - 102.5) < 5);
    const mitoTouch = r.find((x) => x.class === "mito" && Math.abs(Number(x.centroid_x_nm) - 427.5) < 10);
    const ld = r.find((x) => x.class === "ld");
    expect(mitoNear?.min_dist_er_nm).toBe("10");
    expect(mitoNear?.in_contact).toBe("true");
    expect(mitoNear?.contact_in_plane).toBe("true");
    expect(mitoTouch?.min_dist_er_nm).toBe("0");
    expect(ld?.min_dist_er_nm).toBe("45");
    expect(ld?.in_contact).toBe("false");
    expect(Number(ld?.contact_area_nm2)).toBe(0);
    expect(Number(mitoNear?.contact_area_nm2)).toBeGreaterThan(0);
    // The ER itself and the nucleus are not measured against the ER.
    expect(r.filter((x) => x.class === "er").every((x) => x.min_dist_er_nm === "")).toBe(true);
  });

  it("writes contact sites as annotations related to organelle and ER segments", async () => {
    const info = JSON.parse(readFileSync(path.join(dir, "out", "contacts", "info"), "utf8"));
    expect(info["@type"]).toBe("neuroglancer_annotations_v1");
    expect(info.annotation_type).toBe("LINE");
    expect(info.relationships.map((r: { id: string }) => r.id)).toEqual(["organelle", "er"]);
    const sites = rows().reduce((s, r) => s + Number(r.contact_sites || 0), 0);
    expect(sites).toBeGreaterThanOrEqual(2);
    expect(readdirSync(path.join(dir, "out", "contacts", "by_id")).length).toBe(sites);
  });
});

describe("CLI contract on bad input", () => {
  const cli = async (...args: string[]) => {
    try {
      // As `npm run vemscope` starts it (package.json): the launcher and the bundled CLI.
      const r = await run(process.execPath, ["scripts/cli.mjs", ...args], { cwd: process.cwd() });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  it("each bad input exits non-zero with one line naming the file or option, and writes nothing", async () => {
    const out = path.join(dir, "bad-out");
    writeFileSync(path.join(dir, "garbage.tif"), "this is not a tiff");
    const small = new Uint8Array(10 * 10 * 2);
    await writeTiffStack(path.join(dir, "small.tif"), { data: small, shape: [10, 10, 2] });
    const badCodes = new Uint8Array(SHAPE[0] * SHAPE[1] * SHAPE[2]);
    badCodes[123] = 9;
    await writeTiffStack(path.join(dir, "badcodes.tif"), { data: badCodes, shape: SHAPE });
    const img = path.join(dir, "image.tif");
    const cases: [string[], RegExp][] = [
      [["run", "--image", path.join(dir, "missing.tif"), "--labels", img, "--voxel", "5,5,45", "--out", out], /missing\.tif/],
      [["run", "--image", path.join(dir, "garbage.tif"), "--labels", img, "--voxel", "5,5,45", "--out", out], /garbage\.tif/],
      [["run", "--image", img, "--labels", path.join(dir, "small.tif"), "--voxel", "5,5,45", "--out", out], /small\.tif.*10x10x2.*96x80x12/],
      [["run", "--image", img, "--labels", path.join(dir, "badcodes.tif"), "--voxel", "5,5,45", "--out", out], /badcodes\.tif.*class code 9/],
      [["run", "--image", img, "--labels", img, "--voxel", "5,5", "--out", out], /--voxel/],
      [["run", "--image", img, "--labels", img, "--voxel", "5,-5,45", "--out", out], /--voxel/],
      [["run", "--image", img, "--voxel", "5,5,45"], /--out/],
      [["nonsense"], /unknown command/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(...args)));
    results.forEach((r, i) => {
      expect(r.code, cases[i][0].join(" ")).not.toBe(0);
      expect(r.stderr, cases[i][0].join(" ")).toMatch(cases[i][1]);
      expect(r.stderr.split("\n")[0]).not.toMatch(/at .*\.m?[tj]s:\d+/);
    });
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.startsWith("bad-out"))).toEqual([]);
  });

  it("refuses to replace a folder that is not a vemscope output", async () => {
    const foreign = path.join(dir, "foreign");
    rmSync(foreign, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(foreign));
    writeFileSync(path.join(foreign, "thesis.docx"), "precious");
    const r = await cli("run", "--image", path.join(dir, "image.tif"), "--labels", path.join(dir, "labels.tif"), "--voxel", "5,5,45", "--out", foreign);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not a vemscope output/);
    expect(readFileSync(path.join(foreign, "thesis.docx"), "utf8")).toBe("precious");
  });
});
