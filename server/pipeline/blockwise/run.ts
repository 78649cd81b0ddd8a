/**
 * `run --labels` out of core: peak memory follows the block budget, not the volume. Passes, each over blocks:
 * 1. ingest: a few sections at a time from the TIFF/PNG stacks (codes checked per slab) into raw block stores;
 * 2. image layer: multiscale, region by region from the image store;
 * 3. instances: blockwise CCL (label-blocks.ts, same ids as the in-memory CCL) into a uint32 label store, with
 *    per-instance voxel counts, boxes and centroid sums gathered block by block;
 * 4. objects: surfaces, mito skeletons and display meshes on per-instance crops (objects.ts);
 * 5. ER contacts with a halo (contacts.ts); 6. segmentation layer, multiscale, from the label store;
 * 7. contact layer, report, state, as the in-memory run writes them.
 * The stores live in the staging folder and are removed before it is renamed onto the output.
 */
import { rmSync } from "node:fs";
import * as path from "node:path";
import type { Vec3 } from "../../../precomputed/array.js";
import { writeSegmentProperties } from "../../../precomputed/segment-properties.js";
import type { Storage } from "../../../precomputed/storage.js";
import { applyContacts, writeContactLayer } from "../contact-layer.js";
import { PipelineError } from "../errors.js";
import { openSlabInputs } from "../inputs.js";
import { connectedComponentsBlockwise } from "../label-blocks.js";
import { imageLayerInfoFor, LAYER_CHUNK, segmentationLayerInfo, segmentProperties } from "../layers.js";
import type { Progress } from "../progress.js";
import { instanceRows, writeReport } from "../report.js";
import { buildState } from "../state.js";
import { analyseContactsBlockwise, haloVoxels } from "./contacts.js";
import { measureObjects } from "./objects.js";
import { writePyramid } from "./pyramid.js";
import { BlockStore } from "./store.js";
import { BlockStats } from "./stats.js";

/** layers.ts's chunk: the blockwise layers use the same grid so their chunks are interchangeable. */
const CHUNK: Vec3 = LAYER_CHUNK;
export const DEFAULT_BLOCK_BUDGET = 64 * 2 ** 20;
/** Halo of the contact pass in nm: min_dist_er_nm is exact below it and reported as this value above it. */
export const DEFAULT_DISTANCE_CAP_NM = 300;

export interface BlockwiseOptions {
  image: string;
  labels: string;
  voxelNm: Vec3;
  contactNm: number;
  staging: string;
  storage: Storage;
  progress: Progress;
  /** Voxels: the largest block + halo of any pass, and the largest object box cut out whole. */
  budget: number;
  /** Processing block shape; default from the budget (planBlocks). */
  blockShape?: Vec3;
  capNm?: number;
}

export interface BlockPlan {
  blockShape: Vec3;
  region: Vec3;
  halo: Vec3;
}

/**
 * Blocks of whole chunks whose halo box fits the budget (the contact pass holds ~25 bytes per halo-box voxel),
 * largest first; pyramid regions of whole chunks within a quarter of it.
 */
export function planBlocks(shape: Vec3, voxelNm: Vec3, budget: number, capNm: number): BlockPlan {
  const halo = haloVoxels(capNm, voxelNm);
  const clip = (b: Vec3): Vec3 => b.map((v, d) => Math.min(v, shape[d])) as Vec3;
  const vox = (b: Vec3): number => b[0] * b[1] * b[2];
  let best: Vec3 = clip(CHUNK);
  let region: Vec3 = [...CHUNK];
  for (let a = 1; a <= 64; a++) {
    for (let c = 1; c <= 64; c++) {
      const b = clip([CHUNK[0] * a, CHUNK[1] * a, CHUNK[2] * c]);
      const box = clip(b.map((v, d) => v + 2 * halo[d]) as Vec3);
      if (vox(box) <= budget && vox(b) > vox(best)) best = b;
      const r: Vec3 = [CHUNK[0] * a, CHUNK[1] * a, CHUNK[2] * c];
      if (vox(r) <= budget / 4 && vox(clip(r)) > vox(clip(region))) region = r;
    }
  }
  return { blockShape: best, region, halo };
}

export async function runBlockwise(o: BlockwiseOptions): Promise<{ instances: number; plan: BlockPlan }> {
  const inputs = await openSlabInputs(o.image, o.labels);
  const shape = inputs.shape;
  const capNm = o.capNm ?? DEFAULT_DISTANCE_CAP_NM;
  if (!(o.contactNm < capNm)) throw new PipelineError("bad_argument", `the contact threshold must stay below the ${capNm} nm distance cap of out-of-core runs`, "--contact-nm");
  const plan = planBlocks(shape, o.voxelNm, o.budget, capNm);
  if (o.blockShape) plan.blockShape = o.blockShape.map((v, d) => Math.min(v, shape[d])) as Vec3;
  const tmp = path.join(o.staging, ".blocks");
  const { progress, storage, voxelNm } = o;
  try {
    // 1. ingest
    const bits = inputs.image.bits;
    const classStore = new BlockStore<Uint8Array>(path.join(tmp, "classes"), shape, plan.blockShape, "uint8");
    const imageStore = new BlockStore<Uint8Array | Uint16Array>(path.join(tmp, "image"), shape, plan.region, bits === 8 ? "uint8" : "uint16");
    const plane = shape[0] * shape[1];
    const perRead = Math.max(1, Math.min(64, Math.floor(o.budget / 8 / plane)));
    progress.start("read slabs", shape[2], "sections");
    for (let z0 = 0; z0 < shape[2]; z0 += perRead) {
      const z1 = Math.min(shape[2], z0 + perRead);
      const classes = await inputs.readClasses(z0, z1);
      const image = await inputs.image.read(z0, z1);
      for (let z = z0; z < z1; z++) {
        classStore.appendSection(z, classes.subarray((z - z0) * plane, (z - z0 + 1) * plane));
        imageStore.appendSection(z, image.subarray((z - z0) * plane, (z - z0 + 1) * plane));
      }
      progress.update(z1);
    }
    progress.end();

    // 2. image layer
    const uint8 = bits === 8;
    const { info: imageInfo, gzip: imageGzip } = imageLayerInfoFor(uint8, shape, voxelNm);
    await writePyramid(storage, "image", imageInfo, (org, ext) => imageStore.readBox(org, ext), {
      region: plan.region,
      tmpDir: path.join(tmp, "image-scales"),
      gzip: imageGzip,
      onProgress: stageProgress(progress, "image layer"),
    });
    imageStore.remove();
    progress.end();

    // 3. instances
    const labelStore = new BlockStore<Uint32Array>(path.join(tmp, "labels"), shape, plan.blockShape, "uint32");
    const stats = new BlockStats(shape);
    const nBlocks = plan.blockShape.reduce((n, b, d) => n * Math.ceil(shape[d] / b), 1);
    progress.start("instances", 2 * nBlocks, "blocks");
    let seen = 0;
    const cc = await connectedComponentsBlockwise(
      (org, ext) => {
        progress.update(++seen);
        return classStore.readBox([...org], [...ext]);
      },
      shape,
      plan.blockShape,
      (org, ext, labels) => {
        labelStore.writeBlock([...org], labels);
        stats.add(labels, org, ext);
      },
    );
    classStore.remove();
    progress.end();
    const instanceStats = stats.finish(cc.count);
    const components = { labels: new Uint32Array(0), count: cc.count, classOf: cc.classOf, voxels: cc.voxels };
    const rows = instanceRows(components, shape, voxelNm, instanceStats);

    // 4. objects
    const { oversized } = await measureObjects(labelStore, rows, instanceStats.bbox, voxelNm, storage, { cropBudget: o.budget, meshPrefix: "segmentation/mesh", progress });

    // 5. contacts
    progress.start("ER contacts", nBlocks, "blocks");
    const contacts = await analyseContactsBlockwise(labelStore, cc.classOf, voxelNm, {
      thresholdNm: o.contactNm,
      capNm,
      blockShape: plan.blockShape,
      onBlock: (d) => progress.update(d),
    });
    applyContacts(rows, contacts);
    progress.end();

    // 6. segmentation layer
    const segInfo = segmentationLayerInfo(shape, voxelNm);
    await writePyramid(storage, "segmentation", segInfo, (org, ext) => labelStore.readBox(org, ext), {
      region: plan.region,
      tmpDir: path.join(tmp, "segmentation-scales"),
      gzip: true,
      onProgress: stageProgress(progress, "segmentation"),
    });
    progress.end();
    labelStore.remove();
    await writeSegmentProperties(storage, "segmentation/segment_properties", segmentProperties(rows));

    // 7. contact layer, report, state
    await writeContactLayer(storage, "contacts", contacts, voxelNm, shape);
    await writeReport(storage, rows, shape, voxelNm, o.contactNm);
    await storage.put(
      "report/blockwise.json",
      JSON.stringify(
        {
          block_shape_voxels: plan.blockShape,
          halo_voxels: plan.halo,
          min_dist_er_cap_nm: capNm,
          min_dist_er_note: `min_dist_er_nm is exact below ${capNm} nm; a value of ${capNm} means "at least ${capNm} nm" (contact_in_plane is then empty)`,
          oversized_ids: oversized,
          oversized_note: "boxes larger than the crop budget: no surface or skeleton columns; display mesh from an in-plane coarsened mask",
          budget_voxels: o.budget,
        },
        null,
        1,
      ),
    );
    const state = buildState({ voxelNm, size: shape, classOf: cc.classOf, annotationLayers: [{ name: "ER contacts", folder: "contacts" }] });
    await storage.put("state.json", JSON.stringify(state, null, 1));
    return { instances: cc.count, plan };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A (done, total) callback that opens its progress stage on the first call, when the total is known. */
function stageProgress(progress: Progress, name: string): (done: number, total: number) => void {
  let started = false;
  return (done, total) => {
    if (!started) {
      progress.start(name, total, "regions");
      started = true;
    }
    progress.update(done);
  };
}
