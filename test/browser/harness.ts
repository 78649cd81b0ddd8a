/**
 * Headless Chromium for browser tests. Playwright's bundled browsers cannot be downloaded here,
 * so tests drive Debian's /usr/bin/chromium through playwright-core; WebGL2 comes from SwiftShader.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import sharp from "sharp";

export const CHROMIUM_PATH = process.env.VEMSCOPE_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACT_DIR = resolve(fileURLToPath(new URL("../..", import.meta.url)), "test-artifacts");

/** Flags known to give a working WebGL2 context in this environment (see shared/ENVIRONMENT.md). */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless=new",
  "--no-sandbox",
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export interface LaunchedBrowser {
  context: BrowserContext;
  newPage(): Promise<Page>;
  /** Closes the browser and deletes its profile directory. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  viewport?: { width: number; height: number };
}

/**
 * A persistent context is the only way playwright accepts an explicit user-data dir; a fresh one
 * per launch keeps caches (Chrome caches precomputed chunks) from leaking between tests.
 */
export async function launchBrowser(options: LaunchOptions = {}): Promise<LaunchedBrowser> {
  const userDataDir = await mkdtemp(join(tmpdir(), "vemscope-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      // Swapped for the explicit `--headless=new` in CHROMIUM_ARGS: the combination verified to
      // render WebGL with SwiftShader in shared/ENVIRONMENT.md.
      ignoreDefaultArgs: ["--headless"],
      args: [...CHROMIUM_ARGS],
      viewport: options.viewport ?? { width: 1280, height: 800 },
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    context,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Live list of console errors and uncaught page exceptions; read it at the end of a test so that
 * errors from late-arriving chunks are included.
 */
export function collectConsoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const { url, lineNumber } = message.location();
    errors.push(url ? `${message.text()} (${url}:${lineNumber})` : message.text());
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.stack ?? error.message}`));
  return errors;
}

/**
 * PNG of the first WebGL canvas as composited on screen; reading it through the compositor avoids
 * needing `preserveDrawingBuffer`, which Neuroglancer does not set.
 */
export async function canvasScreenshot(page: Page): Promise<Buffer> {
  return page.locator("canvas").first().screenshot();
}

export interface PixelStats {
  width: number;
  height: number;
  /** Largest per-channel standard deviation over R, G, B. */
  maxStdev: number;
}

export async function pixelStats(png: Buffer): Promise<PixelStats> {
  const image = sharp(png).removeAlpha();
  const [{ width, height }, stats] = await Promise.all([image.metadata(), image.stats()]);
  return {
    width: width ?? 0,
    height: height ?? 0,
    maxStdev: Math.max(...stats.channels.slice(0, 3).map((channel) => channel.stdev)),
  };
}

/**
 * True when the canvas shows more than a flat fill. A viewer whose chunk worker failed paints a
 * uniform background, so a small stdev threshold separates "nothing rendered" from "data".
 */
export async function canvasIsNonBlank(page: Page, minStdev = 4): Promise<boolean> {
  const { maxStdev, width, height } = await pixelStats(await canvasScreenshot(page));
  return width > 0 && height > 0 && maxStdev >= minStdev;
}

export interface PixelMatch {
  count: number;
  /** Mean column / row of the matching pixels (NaN when none match). */
  meanX: number;
  meanY: number;
}

/** Finds the pixels of a PNG for which `predicate(r, g, b)` holds: how many, and where on average. */
export async function findPixels(
  png: Buffer,
  predicate: (r: number, g: number, b: number) => boolean,
): Promise<PixelMatch> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let count = 0;
  let sumX = 0;
  let sumY = 0;
  for (let i = 0, p = 0; i + 2 < data.length; i += info.channels, p++) {
    if (!predicate(data[i] ?? 0, data[i + 1] ?? 0, data[i + 2] ?? 0)) continue;
    count++;
    sumX += p % info.width;
    sumY += Math.floor(p / info.width);
  }
  return { count, meanX: sumX / count, meanY: sumY / count };
}

/** Saves a full-page screenshot under test-artifacts/ (gitignored) and returns its path. */
export async function saveArtifact(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACT_DIR, { recursive: true });
  const path = join(ARTIFACT_DIR, `${name.replace(/[^\w.-]+/g, "_")}.png`);
  await writeFile(path, await page.screenshot());
  return path;
}
