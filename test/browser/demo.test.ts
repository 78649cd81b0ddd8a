/**
 * The product end to end in a real browser: a small phantom goes through `vemscope run --labels`, is served by
 * `serve()`, and Neuroglancer shows the EM image and the organelles in their class colours.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classByName } from "../../server/pipeline/classes.js";
import { startDemoServer, type DemoServer } from "./demo-server.js";
import { CHROMIUM_PATH, canvasIsNonBlank, canvasScreenshot, chromiumAvailable, collectConsoleErrors, findPixels, launchBrowser, saveArtifact, type LaunchedBrowser } from "./harness.js";

interface PageWindow {
  vemscope?: { ready: Promise<void>; viewer: { isReady(): boolean } };
}

function rgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

describe.skipIf(!chromiumAvailable())(`demo pipeline in headless Chromium (${CHROMIUM_PATH})`, () => {
  let demo: DemoServer | undefined;
  let url = "";
  let browser: LaunchedBrowser | undefined;

  beforeAll(async () => {
    demo = await startDemoServer("demo");
    url = demo.url;
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
  });

  it("shows the EM image and class-coloured organelles, without console errors", async () => {
    if (!browser) throw new Error("setup failed");
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1200, height: 800 });
    const errors = collectConsoleErrors(page);
    await page.goto(url);
    await page.evaluate(async () => {
      await (window as unknown as PageWindow).vemscope?.ready;
    });
    await page.waitForFunction(() => (window as unknown as PageWindow).vemscope?.viewer.isReady() === true, null, { timeout: 60_000, polling: 200 });
    await page.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    const artifact = await saveArtifact(page, "demo-pipeline");
    expect(await canvasIsNonBlank(page)).toBe(true);
    const png = await canvasScreenshot(page);
    // Segments are drawn blended over the image, so look for pixels leaning towards each class colour.
    const near = (hex: string) => {
      const [R, G, B] = rgb(hex);
      return (r: number, g: number, b: number) => {
        const dr = r - 128, dg = g - 128, db = b - 128;
        const tr = R - 128, tg = G - 128, tb = B - 128;
        const cos = (dr * tr + dg * tg + db * tb) / (Math.hypot(dr, dg, db) * Math.hypot(tr, tg, tb) + 1e-9);
        return cos > 0.9 && Math.hypot(dr, dg, db) > 40;
      };
    };
    for (const cls of ["mito", "er"]) {
      const color = classByName(cls)?.color ?? "#000000";
      const found = await findPixels(png, near(color));
      expect(found.count, `${cls} pixels in ${artifact}`).toBeGreaterThan(200);
    }
    const grey = await findPixels(png, (r, g, b) => Math.abs(r - g) < 6 && Math.abs(g - b) < 6 && r > 60 && r < 230);
    expect(grey.count, `EM grey pixels in ${artifact}`).toBeGreaterThan(5000);
    expect(errors).toEqual([]);
    await page.close();
  });
});
