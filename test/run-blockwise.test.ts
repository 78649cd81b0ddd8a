/**
 * The out-of-core run (blockwise/) against the in-memory run, its oracle, on a small phantom cut into small
 * blocks (96 x 96 x 8 voxels; organelles painted across block faces and a block corner): the same
 * segmentation at every scale, the same image chunks, the same morphometrics rows (min_dist_er_nm equal below the distance cap, the cap above
 * it) and the same contact-site annotations, byte for byte.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { readMultiresMeshManifest } from "../precomputed/mesh-multires.js";
import { LocalStorage } from "../precomputed/storage.js";
import { readRegion } from "../precomputed/volume-io.js";
import { generatePhantom } from "../server/pipeline/phantom/index.js";
import { runPipeline } from "../server/pipeline/run.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { csvRows, files, infoOf } from "./helpers/outputs.js";

const SHAPE: Vec3 = [192, 192, 24];
/** A narrower halo than the default keeps the small blocks cheap; the phantom has gaps on both sides of it. */
const CAP_NM = 100;
const VOXEL: Vec3 = [5, 5, 45];
let dir: string;
const memOut = () => path.join(dir, "memory");
const blkOut = () => path.join(dir, "blockwise");

beforeAll(async () => {
  // Meshes on this thread: worker start-up costs more than these few small meshes.
  process.env.VEMSCOPE_WORKERS = "0";
  dir = mkdtempSync(path.join(tmpdir(), "vemscope-blockwise-"));
  const phantom = generatePhantom({ seed: 5, size: SHAPE, voxelNm: VOXEL });
  paintStraddlingContacts(phantom.labels.data);
  await writeTiffStack(path.join(dir, "image.tif"), phantom.image);
  await writeTiffStack(path.join(dir, "labels.tif"), phantom.labels);
  const common = { image: path.join(dir, "image.tif"), labels: path.join(dir, "labels.tif"), voxelNm: VOXEL };
  const a = await runPipeline({ ...common, out: memOut() });
  expect(a.mode).toBe("memory");
  const b = await runPipeline({ ...common, out: blkOut(), blockwise: true, blockShape: [96, 96, 8], distanceCapNm: CAP_NM });
  expect(b.mode).toBe("blockwise");
  expect(b.instances).toBe(a.instances);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Organelles lying along ER sheets one empty voxel away (5 nm), across several block faces and a block corner,
 * so that contact sites must be stitched across blocks.
 */
function paintStraddlingContacts(labels: Uint8Array): void {
  const [nx, ny] = SHAPE;
  const box = (x0: number, x1: number, y0: number, y1: number, z0: number, z1: number, code: number): void => {
    for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) labels.fill(code, x0 + nx * (y + ny * z), x1 + nx * (y + ny * z));
  };
  box(20, 170, 150, 160, 5, 12, 2); // a long mitochondrion crossing x = 96 and z = 8
  box(30, 160, 160, 161, 5, 12, 0);
  box(30, 160, 161, 162, 5, 12, 1); // its ER sheet
  box(80, 110, 80, 110, 2, 14, 3); // a droplet around the block corner (96, 96, 8)
  box(110, 111, 70, 120, 0, 16, 0);
  box(111, 112, 70, 120, 0, 16, 1);
}

describe("out-of-core run vs in-memory run", () => {
  it("leaves no block stores or staging folders behind", () => {
    expect(readdirSync(dir).filter((n) => !n.includes("small") && !n.includes("bad")).sort()).toEqual(["blockwise", "image.tif", "labels.tif", "memory"]);
    expect(files(blkOut(), ".").some((f) => f.includes(".blocks") || f.includes(".tmp-"))).toBe(false);
  });

  it("writes the same segmentation at every scale and the same image chunks", async () => {
    const a = new LocalStorage(memOut());
    const b = new LocalStorage(blkOut());
    for (const layer of ["segmentation", "image"]) {
      const ia = await infoOf(a, layer);
      const ib = await infoOf(b, layer);
      expect(ib).toEqual(ia);
      for (let s = 0; s < ia.scales.length; s++) {
        const end = ia.scales[s].size;
        const va = await readRegion(a, layer, ia, s, [0, 0, 0], end);
        const vb = await readRegion(b, layer, ib, s, [0, 0, 0], end);
        expect(Buffer.from(vb.data.buffer).equals(Buffer.from(va.data.buffer)), `${layer} scale ${s}`).toBe(true);
      }
      const chunks = (root: string) => files(root, path.join(layer, ia.scales[0].key));
      expect(chunks(blkOut())).toEqual(chunks(memOut()));
    }
  });

  it("gives the same morphometrics rows; min_dist_er_nm equal below the cap, the cap above it", () => {
    const ra = csvRows(memOut());
    const rb = csvRows(blkOut());
    expect(rb.length).toBe(ra.length);
    expect(Object.keys(rb[0])).toEqual(Object.keys(ra[0]));
    let capped = 0;
    let compared = 0;
    ra.forEach((a, k) => {
      const b = rb[k];
      const far = a.min_dist_er_nm !== "" && Number(a.min_dist_er_nm) >= CAP_NM;
      for (const col of Object.keys(a)) {
        const what = `row ${a.id} ${col}`;
        if (far && col === "min_dist_er_nm") {
          expect(Number(b[col]), what).toBe(CAP_NM);
          capped++;
        } else if (far && col === "contact_in_plane") {
          expect(b[col], what).toBe("");
        } else if (["id", "class", "voxels", "volume_nm3", "bbox_voxels", "branched", "in_contact", "contact_sites", "contact_in_plane"].includes(col) || a[col] === "" || b[col] === a[col]) {
          expect(b[col], what).toBe(a[col]);
        } else {
          expect(Math.abs(Number(b[col]) - Number(a[col])), what).toBeLessThanOrEqual(1e-9 * Math.abs(Number(a[col])));
        }
        if (col === "min_dist_er_nm" && !far && a[col] !== "") compared++;
      }
    });
    expect(compared).toBeGreaterThanOrEqual(2);
    expect(ra.filter((r) => r.class === "mito").every((r) => r.length_nm !== "")).toBe(true);
    expect(capped + compared).toBe(ra.filter((r) => r.min_dist_er_nm !== "").length);
  });

  it("writes the same contact sites and a mesh for every instance", async () => {
    const fa = files(memOut(), "contacts");
    expect(fa.length).toBeGreaterThan(2);
    expect(files(blkOut(), "contacts")).toEqual(fa);
    for (const f of fa) expect(readFileSync(path.join(blkOut(), f)).equals(readFileSync(path.join(memOut(), f))), f).toBe(true);
    const sites = csvRows(memOut()).reduce((n, r) => n + Number(r.contact_sites || 0), 0);
    expect(sites).toBeGreaterThan(3);
    const b = new LocalStorage(blkOut());
    for (const row of csvRows(blkOut())) {
      const m = await readMultiresMeshManifest(b, "segmentation/mesh", Number(row.id));
      expect(m.lods[0].fragmentSizes.reduce((x, y) => x + y, 0), `mesh ${row.id}`).toBeGreaterThan(0);
    }
  });
});

describe("out-of-core path selection and input checks", () => {
  const small: Vec3 = [40, 30, 12];
  const write = async (name: string, bad?: [number, number, number]): Promise<string> => {
    const c = new Uint8Array(small[0] * small[1] * small[2]);
    for (let z = 2; z < 9; z++) for (let y = 5; y < 20; y++) c.fill(2, 5 + small[0] * (y + small[1] * z), 25 + small[0] * (y + small[1] * z));
    if (bad) c[bad[0] + small[0] * (bad[1] + small[1] * bad[2])] = 9;
    const file = path.join(dir, name);
    await writeTiffStack(file, { data: c, shape: small });
    return file;
  };

  it("runs out of core when the volume exceeds --block-budget", async () => {
    const labels = await write("small-labels.tif");
    const r = await runPipeline({ image: labels, labels, voxelNm: VOXEL, out: path.join(dir, "small"), blockBudget: 4000 });
    expect(r.mode).toBe("blockwise");
    expect(r.instances).toBe(1);
    const r2 = await runPipeline({ image: labels, labels, voxelNm: VOXEL, out: path.join(dir, "small2") });
    expect(r2.mode).toBe("memory");
    expect(readFileSync(path.join(dir, "small", "report", "morphometrics.csv"), "utf8")).toBe(readFileSync(path.join(dir, "small2", "report", "morphometrics.csv"), "utf8"));
  });

  it("never cuts out an object whose box exceeds the budget: no surface or skeleton, a coarse display mesh", async () => {
    const labels = await write("small-labels.tif");
    const out = path.join(dir, "small3");
    // The mitochondrion's box is 20 x 15 x 7 = 2100 voxels.
    await runPipeline({ image: labels, labels, voxelNm: VOXEL, out, blockBudget: 2000 });
    const [row] = csvRows(out);
    expect([row.class, row.voxels, row.surface_nm2, row.length_nm]).toEqual(["mito", "2100", "", ""]);
    expect(JSON.parse(readFileSync(path.join(out, "report", "blockwise.json"), "utf8")).oversized_ids).toEqual([1]);
    const m = await readMultiresMeshManifest(new LocalStorage(out), "segmentation/mesh", 1);
    expect(m.lods[0].fragmentSizes.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
  });

  it("checks class codes slab by slab with the in-memory message, in stack coordinates, and leaves nothing behind", async () => {
    const labels = await write("bad-labels.tif", [3, 4, 10]);
    const out = path.join(dir, "bad");
    await expect(runPipeline({ image: labels, labels, voxelNm: VOXEL, out, blockwise: true })).rejects.toThrow(/bad-labels\.tif: class code 9 at voxel \(3,4,10\) is not one of 0-6/);
    expect(readdirSync(dir).filter((n) => n.startsWith("bad") && n !== "bad-labels.tif")).toEqual([]);
  });
});
