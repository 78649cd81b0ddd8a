/**
 * The contacts/ annotation layer follows edits: after merges (organelles, ER) and a split, each version's
 * layer decodes to exactly the layer the pipeline writes for the edited labels (contacts.ts over the whole
 * volume, then writeContactLayer), every earlier version still reads as it was, and the rows' contact
 * columns match that analysis. A fresh `run --labels` of the edited labels would renumber instances by
 * connected components (undoing the merges and splits), so the reference is the pipeline's contact analysis and
 * layer writer on the edited instance labels themselves.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Vec3 } from "../precomputed/array.js";
import { annotationEncodingSpec, decodeAnnotationChunk, decodeSingleAnnotation, readAnnotationInfo } from "../precomputed/annotations.js";
import { LocalStorage, type Storage } from "../precomputed/storage.js";
import { classByName } from "../server/pipeline/classes.js";
import { applyContacts, writeContactLayer } from "../server/pipeline/contact-layer.js";
import { analyseContacts } from "../server/pipeline/contacts.js";
import type { InstanceRow } from "../server/pipeline/report.js";
import { runPipeline } from "../server/pipeline/run.js";
import { writeTiffStack } from "../server/pipeline/tiff.js";
import { EditDb } from "../server/edits/db.js";
import { Editor } from "../server/edits/editor.js";

const SHAPE: Vec3 = [80, 64, 8];
const VOXEL: Vec3 = [5, 5, 45];

/**
 * ER: two slabs (x 40-42) split at y 30-33, so an ER merge changes sites' partners. A dumbbell mitochondrion
 * along y whose balls come within 5 nm of the ER (the split case) and two peroxisomes across the ER (the merge
 * case): every one of them has sites.
 */
function classes(): Uint8Array {
  const [nx, ny, nz] = SHAPE;
  const c = new Uint8Array(nx * ny * nz);
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        const ball = (cx: number, cy: number, r: number) => Math.hypot((x - cx) * 5, (y - cy) * 5, (z - 4) * 45) <= r;
        if (x >= 40 && x < 43 && (y < 30 || y >= 34)) c[i] = 1;
        else if (ball(26, 12, 62) || ball(26, 50, 62) || (y > 12 && y < 50 && Math.hypot((x - 26) * 5, (z - 4) * 45) <= 15)) c[i] = 2;
        else if (ball(50, 15, 32) || ball(50, 45, 32)) c[i] = 5;
      }
  return c;
}

interface Site {
  id: string;
  a: number[];
  b: number[];
  props: Record<string, unknown>;
  organelle: string[];
  er: string[];
}

/** Every site of a layer: spatial chunks of every level, each completed by its by_id record (relationships). */
async function decodeLayer(storage: Storage): Promise<Site[]> {
  const info = await readAnnotationInfo(storage, "contacts");
  const spec = annotationEncodingSpec(info);
  const ids = new Set<bigint>();
  for (const level of info.spatial) {
    const [gx, gy, gz] = level.grid_shape;
    for (let i = 0; i < gx; i++)
      for (let j = 0; j < gy; j++)
        for (let k = 0; k < gz; k++) {
          const bytes = await storage.get(`contacts/${level.key}/${i}_${j}_${k}`);
          if (bytes) for (const a of decodeAnnotationChunk(bytes, spec)) ids.add(a.id);
        }
  }
  const out: Site[] = [];
  for (const id of [...ids].sort((x, y) => (x < y ? -1 : 1))) {
    const bytes = await storage.get(`contacts/by_id/${id}`);
    expect(bytes).toBeDefined();
    const a = decodeSingleAnnotation(bytes as Uint8Array, spec, id);
    out.push({ id: String(id), a: a.pointA ?? [], b: a.pointB ?? [], props: a.properties, organelle: (a.relationships?.organelle ?? []).map(String), er: (a.relationships?.er ?? []).map(String) });
  }
  return out;
}

let root: string;
let editor: Editor;
let db: EditDb;

beforeAll(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "vemscope-edits-contacts-"));
  const c = classes();
  await writeTiffStack(path.join(dir, "image.tif"), { data: Uint8Array.from(c, (k, i) => (k ? 60 + k * 20 : 180) + (i % 7)), shape: SHAPE });
  await writeTiffStack(path.join(dir, "labels.tif"), { data: c, shape: SHAPE });
  root = path.join(dir, "run");
  await runPipeline({ image: path.join(dir, "image.tif"), labels: path.join(dir, "labels.tif"), voxelNm: VOXEL, out: root });
  db = EditDb.at(root);
  editor = await Editor.open(root, db);
}, 120_000);

afterAll(() => db.close());

/** The pipeline's layer and contact columns for the editor's current labels and classes. */
async function reference(): Promise<{ sites: Site[]; rows: InstanceRow[] }> {
  const classOf = new Uint8Array(editor.maxId + 1);
  for (const [id, row] of editor.rows) classOf[id] = classByName(row.class)?.code ?? 0;
  const contacts = analyseContacts(editor.labels, classOf, SHAPE, VOXEL, 30);
  const storage = new LocalStorage(mkdtempSync(path.join(tmpdir(), "vemscope-contacts-ref-")));
  await writeContactLayer(storage, "contacts", contacts, VOXEL, SHAPE);
  const rows = [...editor.rows.values()].map((r) => ({ ...r }));
  applyContacts(rows, contacts);
  return { sites: await decodeLayer(storage), rows };
}

const CONTACT_COLUMNS = ["min_dist_er_nm", "in_contact", "contact_in_plane", "contact_area_nm2", "contact_sites"] as const;

describe("contacts layer after edits", () => {
  it("equals the pipeline's layer for the edited labels at every version, and earlier versions stay as they were", async () => {
    const idsOf = (cls: string) => [...editor.rows.values()].filter((r) => r.class === cls).map((r) => r.id).sort((a, b) => a - b);
    const layers = new Map<number, Site[]>();
    const check = async () => {
      await editor.idle();
      expect(editor.measuredVersion).toBe(editor.version);
      const ref = await reference();
      const got = await decodeLayer(editor.storageAt(editor.version));
      expect(got.length).toBeGreaterThan(0);
      expect(got).toEqual(ref.sites);
      for (const r of ref.rows) {
        const row = editor.rows.get(r.id) as InstanceRow;
        for (const col of CONTACT_COLUMNS) {
          const want = r[col];
          const have = row[col];
          // Rows read back from morphometrics.csv carry 2 decimals; re-measured ones full precision.
          if (typeof want === "number" && typeof have === "number") expect(Math.abs(have - want), `${r.id} ${col}`).toBeLessThanOrEqual(0.01 + 1e-9 * Math.abs(want));
          else expect([r.id, col, have]).toEqual([r.id, col, want]);
        }
      }
      layers.set(editor.version, got);
      return got;
    };
    const organelles = (sites: Site[]) => new Set(sites.flatMap((x) => x.organelle));
    const partners = (sites: Site[]) => new Set(sites.flatMap((x) => x.er));
    await check();
    const [mito] = idsOf("mito");
    const perox = idsOf("perox");
    const er = idsOf("er");
    expect([perox.length, er.length]).toEqual([2, 2]);

    expect(organelles(await decodeLayer(editor.storageAt(0))).has(String(perox[1]))).toBe(true);
    await editor.edit({ kind: "merge", base: editor.version, segments: [perox[0], perox[1]] }, "alice");
    expect(organelles(await check()).has(String(perox[1]))).toBe(false);
    const centre = (x: number, y: number): Vec3 => [(x + 0.5) * VOXEL[0], (y + 0.5) * VOXEL[1], 4.5 * VOXEL[2]];
    await editor.edit({ kind: "split", base: editor.version, segment: mito, seeds: [{ point: centre(26, 12), group: 0 }, { point: centre(26, 50), group: 1 }] }, "alice");
    expect(organelles(await check()).has(String(mito))).toBe(false);
    await editor.edit({ kind: "merge", base: editor.version, segments: [er[0], er[1]] }, "alice");
    expect([...partners(await check())]).toEqual([String(er[0])]);
    const split = editor.ops().at(-2);
    expect(split?.kind).toBe("split");
    await editor.edit({ kind: "undo", base: editor.version, operation: (split as { id: number }).id }, "alice");
    expect(organelles(await check()).has(String(mito))).toBe(true);

    // Copy-on-write: every version still reads as its own layer.
    for (const [v, sites] of layers) expect(await decodeLayer(editor.storageAt(v))).toEqual(sites);
  }, 120_000);
});
