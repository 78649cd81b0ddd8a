/**
 * End-to-end check of the plugin bundle: Debian Chromium loads dist/plugin, the viewer fetches
 * api/state, reads a hand-made precomputed dataset over HTTP and paints image + segments.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensurePluginBuilt, pluginDistDir } from "../../scripts/build-plugin-if-needed.js";
import { buildApp } from "../../server/api/app.js";
import { RELATIVE_SOURCE } from "../../server/api/state-sources.js";
import {
  CHROMIUM_PATH,
  canvasIsNonBlank,
  canvasScreenshot,
  chromiumAvailable,
  collectConsoleErrors,
  findPixels,
  launchBrowser,
  saveArtifact,
  type LaunchedBrowser,
} from "./harness.js";

// ---------------------------------------------------------------------------------------------
// A tiny precomputed dataset, written by hand so this test does not depend on precomputed/.

const SIZE = [64, 64, 16] as const;
const CHUNK = [32, 32, 8] as const;
const RESOLUTION_NM = [8, 8, 40] as const;

/** Blocky labels (half-open voxel boxes [x0,x1) x [y0,y1), all z) and their display colours. */
const SEGMENTS = [
  { id: 1, box: [4, 28, 4, 28], color: "#ff0000" }, // top-left
  { id: 2, box: [36, 60, 4, 28], color: "#00ff00" }, // top-right
  { id: 3, box: [8, 56, 36, 60], color: "#0000ff" }, // bottom
] as const;
/** Present in the data but not listed as visible: must not be drawn. */
const HIDDEN_SEGMENT = { id: 4, box: [30, 34, 30, 34] } as const;

/** 4-voxel checkerboard, dark 40 / bright 200: any decoding or axis-order slip breaks the pattern. */
function imageValue(x: number, y: number): number {
  return ((x >> 2) + (y >> 2)) % 2 === 0 ? 40 : 200;
}

function labelValue(x: number, y: number): number {
  for (const { id, box } of [...SEGMENTS, HIDDEN_SEGMENT]) {
    if (x >= box[0] && x < box[1] && y >= box[2] && y < box[3]) return id;
  }
  return 0;
}

async function writeLayer(
  dir: string,
  type: "image" | "segmentation",
  dataType: "uint8" | "uint32",
  value: (x: number, y: number, z: number) => number,
): Promise<void> {
  const key = RESOLUTION_NM.join("_");
  await mkdir(join(dir, key), { recursive: true });
  const info = {
    "@type": "neuroglancer_multiscale_volume",
    type,
    data_type: dataType,
    num_channels: 1,
    scales: [
      {
        key,
        size: [...SIZE],
        resolution: [...RESOLUTION_NM],
        voxel_offset: [0, 0, 0],
        chunk_sizes: [[...CHUNK]],
        encoding: "raw",
      },
    ],
  };
  await writeFile(join(dir, "info"), JSON.stringify(info));
  const bytesPerVoxel = dataType === "uint8" ? 1 : 4;
  for (let z0 = 0; z0 < SIZE[2]; z0 += CHUNK[2]) {
    for (let y0 = 0; y0 < SIZE[1]; y0 += CHUNK[1]) {
      for (let x0 = 0; x0 < SIZE[0]; x0 += CHUNK[0]) {
        const [x1, y1, z1] = [x0 + CHUNK[0], y0 + CHUNK[1], z0 + CHUNK[2]];
        const bytes = Buffer.alloc(CHUNK[0] * CHUNK[1] * CHUNK[2] * bytesPerVoxel);
        let offset = 0;
        // Raw encoding is x-fastest, then y, then z, little-endian.
        for (let z = z0; z < z1; z++) {
          for (let y = y0; y < y1; y++) {
            for (let x = x0; x < x1; x++) {
              if (bytesPerVoxel === 1) bytes.writeUInt8(value(x, y, z), offset);
              else bytes.writeUInt32LE(value(x, y, z), offset);
              offset += bytesPerVoxel;
            }
          }
        }
        await writeFile(join(dir, key, `${x0}-${x1}_${y0}-${y1}_${z0}-${z1}`), bytes);
      }
    }
  }
}

async function writeDataset(root: string): Promise<void> {
  await writeLayer(join(root, "image"), "image", "uint8", (x, y) => imageValue(x, y));
  await writeLayer(join(root, "segmentation"), "segmentation", "uint32", (x, y) => labelValue(x, y));
}

function viewerState(source: (layer: string) => string): object {
  return {
    dimensions: {
      x: [RESOLUTION_NM[0] * 1e-9, "m"],
      y: [RESOLUTION_NM[1] * 1e-9, "m"],
      z: [RESOLUTION_NM[2] * 1e-9, "m"],
    },
    // Voxel centres sit at integer + 0.5.
    position: [SIZE[0] / 2, SIZE[1] / 2, SIZE[2] / 2 + 0.5],
    // Global units per screen pixel: 64 voxels span ~530 px, so the whole slice is on screen.
    crossSectionScale: 0.12,
    layers: [
      { type: "image", name: "image", source: source("image") },
      {
        type: "segmentation",
        name: "segmentation",
        source: source("segmentation"),
        segments: SEGMENTS.map(({ id }) => String(id)),
        segmentColors: Object.fromEntries(SEGMENTS.map(({ id, color }) => [String(id), color])),
        selectedAlpha: 0.6,
      },
    ],
    selectedLayer: { visible: false },
    layout: "xy",
  };
}

// ---------------------------------------------------------------------------------------------
// The product's server.

interface TestServer {
  origin: string;
  stateRequests(): number;
  close(): Promise<void>;
}

/** The product's server (buildApp) over the dataset, with a counter of api/state requests in front. */
async function startTestServer(distDir: string, datasetDir: string): Promise<TestServer> {
  await writeFile(join(datasetDir, "state.json"), JSON.stringify(viewerState((layer) => `${RELATIVE_SOURCE}${layer}`)));
  const app = express();
  let stateRequests = 0;
  app.use((req, _res, next) => {
    if (req.path === "/api/state") stateRequests++;
    next();
  });
  app.use(buildApp({ root: datasetDir, viewerDir: distDir }));
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error(`unexpected listen address ${String(address)}`);
  const { port } = address;
  return {
    origin: `http://127.0.0.1:${port}`,
    stateRequests: () => stateRequests,
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}

// ---------------------------------------------------------------------------------------------

/** The slice of the page's `window.vemscope` the test touches (the bundle's types live in plugin/). */
interface PageWindow {
  vemscope?: {
    ready: Promise<void>;
    viewer: {
      isReady(): boolean;
      layerManager: { managedLayers: { name: string }[] };
    };
  };
}

/**
 * Console errors that say nothing about vemscope. Empty on purpose: the only noise seen so far,
 * Chrome's favicon.ico 404, is prevented by the `data:` icon in plugin/index.html. Add patterns
 * here only with a note on where they come from.
 */
const HARMLESS_CONSOLE_ERRORS: readonly RegExp[] = [];

function unexpected(errors: readonly string[]): string[] {
  return errors.filter((error) => !HARMLESS_CONSOLE_ERRORS.some((pattern) => pattern.test(error)));
}

async function waitForViewer(page: Page): Promise<void> {
  await page.evaluate(async () => {
    const handle = (window as unknown as PageWindow).vemscope;
    if (handle === undefined) throw new Error("window.vemscope is not set");
    await handle.ready;
  });
  // isReady() is true once every visible chunk is on the GPU (Neuroglancer's screenshot tool uses it).
  try {
    await page.waitForFunction(() => (window as unknown as PageWindow).vemscope?.viewer.isReady() === true, null, {
      timeout: 30_000,
      polling: 100,
    });
  } catch (error) {
    const artifact = await saveArtifact(page, "viewer-not-ready");
    // Seen when the chunk worker fails to start (e.g. the Vite 8 webpackChunkName trap): no console
    // error, just a grey canvas forever.
    throw new Error(`viewer never finished loading its visible chunks; screenshot: ${artifact}`, { cause: error });
  }
  // Two more frames so the last uploaded chunks are also drawn.
  await page.evaluate(
    () => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))),
  );
}

const hasChromium = chromiumAvailable();
if (!hasChromium) {
  console.warn(`viewer browser test skipped: ${CHROMIUM_PATH} not found (apt-get install -y chromium)`);
}

describe.skipIf(!hasChromium)(`viewer in headless Chromium (${CHROMIUM_PATH})`, () => {
  let datasetDir = "";
  let server: TestServer | undefined;
  let browser: LaunchedBrowser | undefined;

  beforeAll(async () => {
    await ensurePluginBuilt();
    datasetDir = await mkdtemp(join(tmpdir(), "vemscope-precomputed-"));
    await writeDataset(datasetDir);
    server = await startTestServer(pluginDistDir, datasetDir);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (datasetDir) await rm(datasetDir, { recursive: true, force: true });
  });

  it("loads api/state and renders the image with coloured segments", async () => {
    if (server === undefined || browser === undefined) throw new Error("setup failed");
    const page = await browser.newPage();
    const errors = collectConsoleErrors(page);
    await page.goto(`${server.origin}/`);
    await waitForViewer(page);
    const artifact = await saveArtifact(page, "viewer-default-state");

    expect(server.stateRequests()).toBe(1);
    expect(await canvasIsNonBlank(page)).toBe(true);

    const png = await canvasScreenshot(page);
    const minPixels = 2000; // each segment covers >= 24x24 voxels at ~8 px per voxel
    const red = await findPixels(png, (r, g, b) => r - Math.max(g, b) > 80);
    const green = await findPixels(png, (r, g, b) => g - Math.max(r, b) > 80);
    const blue = await findPixels(png, (r, g, b) => b - Math.max(r, g) > 80);
    const dark = await findPixels(png, (r, g, b) => r === g && g === b && r > 20 && r < 60);
    const bright = await findPixels(png, (r, g, b) => r === g && g === b && r > 180 && r < 220);
    const summary = { artifact, red, green, blue, dark: dark.count, bright: bright.count };
    expect(red.count, JSON.stringify(summary)).toBeGreaterThan(minPixels);
    expect(green.count, JSON.stringify(summary)).toBeGreaterThan(minPixels);
    expect(blue.count, JSON.stringify(summary)).toBeGreaterThan(minPixels);
    // The layout in data space survives encoding and display: x to the right, y downwards.
    expect(red.meanX).toBeLessThan(green.meanX);
    expect(blue.meanY).toBeGreaterThan(red.meanY);
    expect(blue.meanY).toBeGreaterThan(green.meanY);
    // The checkerboard shows through where there are no segments.
    expect(dark.count).toBeGreaterThan(minPixels);
    expect(bright.count).toBeGreaterThan(minPixels);

    expect(unexpected(errors)).toEqual([]);
    await page.close();
  });

  it("keeps a state carried in the URL hash instead of fetching api/state", async () => {
    if (server === undefined || browser === undefined) throw new Error("setup failed");
    const page = await browser.newPage();
    const errors = collectConsoleErrors(page);
    const before = server.stateRequests();
    const origin = server.origin;
    const state = viewerState((layer) => `precomputed://${origin}/precomputed/${layer}`) as { layers: unknown[] };
    const imageOnly = { ...state, layers: state.layers.slice(0, 1) };
    await page.goto(`${server.origin}/#!${encodeURIComponent(JSON.stringify(imageOnly))}`);
    await waitForViewer(page);

    const names = await page.evaluate(() =>
      (window as unknown as PageWindow).vemscope?.viewer.layerManager.managedLayers.map((layer) => layer.name),
    );
    expect(names).toEqual(["image"]);
    expect(server.stateRequests()).toBe(before);
    expect(await canvasIsNonBlank(page)).toBe(true);
    expect(unexpected(errors)).toEqual([]);
    await page.close();
  });
});
