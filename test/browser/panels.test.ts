/**
 * vemscope's Neuroglancer panels in a real browser: the demo phantom goes through the pipeline, is
 * served by `serve()`, and the morphometrics, ER-contact and share panels are driven like a user would.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDemoServer, type DemoServer } from "./demo-server.js";
import { CHROMIUM_PATH, chromiumAvailable, collectConsoleErrors, launchBrowser, saveArtifact, type LaunchedBrowser } from "./harness.js";

/** The page-side objects the tests read, typed just enough for `page.evaluate`. */
interface PageWindow {
  vemscope?: {
    ready: Promise<void>;
    viewer: {
      isReady(): boolean;
      state: { toJSON(): Record<string, unknown> };
      position: { value: Float32Array };
      layerManager: { getLayerByName(name: string): { layer: OrganellesLayer | null } | undefined };
    };
    panels: Map<string, { open(): void; close(): void; isOpen(): boolean }>;
  };
}

/** The parts of Neuroglancer's SegmentationUserLayer the tests read or drive. */
interface OrganellesLayer {
  displayState: {
    segmentSelectionState: { set(id: bigint | null): void };
    segmentationGroupState: {
      value: { temporaryVisibleSegments: { size: number; has(id: bigint): boolean }; useTemporaryVisibleSegments: { value: boolean } };
    };
  };
}

const VOXEL_NM = [5, 5, 45] as const;

/** Sets the hovered segment as Neuroglancer does when the mouse is over it in a view. */
async function hoverSegment(page: Page, id: number | null): Promise<void> {
  await page.evaluate((id) => {
    const layer = (window as unknown as PageWindow).vemscope?.viewer.layerManager.getLayerByName("organelles")?.layer;
    layer?.displayState.segmentSelectionState.set(id === null ? null : BigInt(id));
  }, id);
}

/** The organelles layer's temporary visible set: whether it is in use, its size, and which of `ids` it holds. */
async function viewerSegmentSet(page: Page, ids: readonly number[]): Promise<{ active: boolean; size: number; holds: boolean[] }> {
  return page.evaluate((ids) => {
    const layer = (window as unknown as PageWindow).vemscope?.viewer.layerManager.getLayerByName("organelles")?.layer;
    const group = layer?.displayState.segmentationGroupState.value;
    return {
      active: group?.useTemporaryVisibleSegments.value ?? false,
      size: group?.temporaryVisibleSegments.size ?? -1,
      holds: ids.map((id) => group?.temporaryVisibleSegments.has(BigInt(id)) ?? false),
    };
  }, ids);
}

describe.skipIf(!chromiumAvailable())(`vemscope panels in headless Chromium (${CHROMIUM_PATH})`, () => {
  let demo: DemoServer | undefined;
  let url = "";
  let browser: LaunchedBrowser | undefined;

  beforeAll(async () => {
    demo = await startDemoServer("panels");
    url = demo.url;
    browser = await launchBrowser({ viewport: { width: 1400, height: 900 } });
  });

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
  });

  async function openViewer(target = url): Promise<{ page: Page; errors: string[]; log: string[] }> {
    if (!browser) throw new Error("setup failed");
    const page = await browser.newPage();
    const errors = collectConsoleErrors(page);
    // Every console message, for failure reports.
    const log: string[] = [];
    page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
    await page.goto(target);
    await page.evaluate(async () => {
      await (window as unknown as PageWindow).vemscope?.ready;
    });
    await page.waitForFunction(() => (window as unknown as PageWindow).vemscope?.viewer.isReady() === true, null, { timeout: 60_000, polling: 200 });
    return { page, errors, log };
  }

  const stateOf = (page: Page) => page.evaluate(() => (window as unknown as PageWindow).vemscope?.viewer.state.toJSON() ?? {});
  const rowIds = (page: Page) =>
    page.$$eval("#vemscope-morphometrics .vemscope-row", (rows) => rows.map((r) => Number((r as HTMLElement).dataset.id)));
  const frames = (page: Page) => page.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));

  it("opens each panel from its top-bar toggle, keeps it in the URL state, and restores it on reload", async () => {
    const { page, errors } = await openViewer();
    for (const id of ["vemscope-morphometrics", "vemscope-contacts", "vemscope-share"]) {
      await expect(page.locator(`#${id}`).count()).resolves.toBe(0);
      await page.click(`#${id}-toggle`);
      await page.locator(`#${id}`).waitFor({ state: "visible" });
    }
    await page.locator("#vemscope-morphometrics .vemscope-row").first().waitFor();
    await page.locator("#vemscope-contacts .vemscope-counts tbody tr").first().waitFor();
    await frames(page);
    console.log(await saveArtifact(page, "panels-all-open"));
    const state = await stateOf(page);
    expect(state.vemscope).toMatchObject({ morphometrics: { visible: true }, contacts: { visible: true }, share: { visible: true } });
    // Neuroglancer writes the state into the hash (throttled); the reloaded page must reopen the panels.
    await page.waitForFunction(() => window.location.hash.includes("vemscope"), null, { timeout: 10_000 });
    await page.reload();
    await page.waitForFunction(() => (window as unknown as PageWindow).vemscope?.viewer.isReady() === true, null, { timeout: 60_000, polling: 200 });
    for (const id of ["vemscope-morphometrics", "vemscope-contacts", "vemscope-share"]) {
      await page.locator(`#${id}`).waitFor({ state: "visible" });
    }
    await page.click("#vemscope-share-toggle");
    await page.locator("#vemscope-share").waitFor({ state: "detached" });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("morphometrics: header click sorts, row click selects the segment and moves to its centroid", async () => {
    const { page, errors } = await openViewer();
    await page.click("#vemscope-morphometrics-toggle");
    await page.locator("#vemscope-morphometrics .vemscope-row").first().waitFor();
    const before = await rowIds(page);
    expect(before.length).toBeGreaterThan(3);
    const volumeHeader = page.locator('#vemscope-morphometrics .vemscope-th[data-column="volume_nm3"]');
    await volumeHeader.click();
    await frames(page);
    const ascending = await rowIds(page);
    await volumeHeader.click();
    await frames(page);
    const descending = await rowIds(page);
    expect(ascending).not.toEqual(before);
    expect(descending).toEqual([...ascending].reverse());
    const sortState = await stateOf(page);
    expect(sortState.vemscope).toMatchObject({ morphometrics: { settings: { sort: { column: "volume_nm3", descending: true } } } });
    console.log(await saveArtifact(page, "panels-morphometrics-sorted"));

    // Pick a row whose centroid is away from the start position, so the move is observable.
    const target = await page.evaluate(() => {
      const rows = [...document.querySelectorAll<HTMLElement>("#vemscope-morphometrics .vemscope-row")];
      return rows.map((r) => Number(r.dataset.id)).at(-1) ?? -1;
    });
    const positionBefore = await page.evaluate(() => [...((window as unknown as PageWindow).vemscope?.viewer.position.value ?? [])]);
    await page.click(`#vemscope-morphometrics .vemscope-row[data-id="${target}"]`);
    await frames(page);
    const selectedIn = (st: Record<string, unknown>) => (st.selection as { layers?: Record<string, { value?: string }> } | undefined)?.layers?.organelles?.value;
    // The selection reaches the viewer state a few frames after the click; on a loaded machine that can take seconds.
    await expect.poll(async () => selectedIn(await stateOf(page)), { timeout: 30_000, interval: 200 }).toBe(String(target));
    const after = await stateOf(page);
    expect(selectedIn(after)).toBe(String(target));
    const layers = after.layers as { name: string; segments?: string[] }[];
    expect(layers.find((l) => l.name === "organelles")?.segments).toContain(String(target));
    const positionAfter = await page.evaluate(() => [...((window as unknown as PageWindow).vemscope?.viewer.position.value ?? [])]);
    expect(positionAfter).not.toEqual(positionBefore);
    const centroid = await page.$$eval(
      `#vemscope-morphometrics .vemscope-row[data-id="${target}"] .vemscope-td`,
      (cells) => cells.map((c) => c.textContent ?? ""),
    );
    const headers = await page.$$eval("#vemscope-morphometrics .vemscope-th", (cells) => cells.map((c) => (c as HTMLElement).dataset.column ?? ""));
    const cx = Number(centroid[headers.indexOf("centroid_x_nm")]);
    const cy = Number(centroid[headers.indexOf("centroid_y_nm")]);
    expect(positionAfter[0]).toBeCloseTo(cx / VOXEL_NM[0], 0);
    expect(positionAfter[1]).toBeCloseTo(cy / VOXEL_NM[1], 0);
    console.log(await saveArtifact(page, "panels-morphometrics-row-selected"));

    // Class filter and range filter shrink the table; the export holds exactly the filtered rows.
    await page.uncheck('#vemscope-morphometrics input[data-class="er"]');
    await frames(page);
    const noEr = await rowIds(page);
    expect(noEr.length).toBeLessThan(descending.length);
    await page.selectOption("#vemscope-morphometrics .vemscope-range-column", "volume_nm3");
    await page.fill("#vemscope-morphometrics .vemscope-range-min", "30000000");
    await frames(page);
    const large = await rowIds(page);
    expect(large.length).toBeGreaterThan(0);
    expect(large.length).toBeLessThan(noEr.length);
    expect((await stateOf(page)).vemscope).toMatchObject({ morphometrics: { settings: { range: { column: "volume_nm3", min: 30_000_000 } } } });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#vemscope-morphometrics .vemscope-export")]);
    const csv = await download.createReadStream().then(async (stream) => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    });
    const lines = csv.trim().split("\n");
    expect(lines[0]?.startsWith("id,class,")).toBe(true);
    expect(lines.length - 1).toBe(large.length);
    expect(lines.slice(1).every((l) => l.split(",")[1] !== "er")).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("morphometrics: brushing the histogram filters the table and the viewer's segments; viewer hover highlights the row", async () => {
    const { page, errors } = await openViewer();
    const segments = page.waitForResponse((r) => r.url().includes("/api/segments"));
    await page.click("#vemscope-morphometrics-toggle");
    // DESIGN: bulk tables travel as protobuf; the JSON answer is only for clients that ask for it.
    expect((await segments).headers()["content-type"]).toContain("application/x-protobuf");
    await page.locator("#vemscope-morphometrics .vemscope-row").first().waitFor();
    await page.locator("#vemscope-morphometrics .vemscope-hist-bar").first().waitFor();
    const status = () => page.locator("#vemscope-morphometrics .vemscope-status").textContent();
    const countOf = (text: string | null) => Number((text ?? "").split(" of ")[0]?.replace(/,/g, ""));
    const total = countOf(await status());
    expect(await page.inputValue("#vemscope-morphometrics .vemscope-histogram-column")).toBe("volume_nm3");

    const box = await page.locator("#vemscope-morphometrics .vemscope-histogram").boundingBox();
    if (!box) throw new Error("histogram not laid out");
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width * 0.02, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.2, y, { steps: 4 });
    await page.mouse.up();
    await frames(page);
    const settings = ((await stateOf(page)).vemscope as { morphometrics?: { settings?: { brush?: { column: string; min: number; max: number } } } })
      .morphometrics?.settings;
    const brush = settings?.brush;
    expect(brush?.column).toBe("volume_nm3");
    if (!brush) throw new Error("no brush in the state");
    const brushed = countOf(await status());
    expect(brushed).toBeGreaterThan(0);
    expect(brushed).toBeLessThan(total);
    const headers = await page.$$eval("#vemscope-morphometrics .vemscope-th", (cells) => cells.map((c) => (c as HTMLElement).dataset.column ?? ""));
    const volumeAt = headers.indexOf("volume_nm3");
    const rows = await page.$$eval("#vemscope-morphometrics .vemscope-row", (lines) =>
      lines.map((l) => ({ id: Number((l as HTMLElement).dataset.id), cells: [...l.children].map((c) => c.textContent ?? "") })),
    );
    expect(rows.length).toBeLessThanOrEqual(brushed);
    for (const row of rows) {
      const v = Number(row.cells[volumeAt]);
      // Cells show 4 significant digits; the brush compares exact values.
      expect(v).toBeGreaterThanOrEqual(brush.min * 0.999);
      expect(v).toBeLessThanOrEqual(brush.max * 1.001);
    }
    // On a loaded machine the organelles layer can still be (re)loading when the brush lands; the panel re-applies
    // it once the layer is there, so the viewer's set is polled rather than read once.
    await expect
      .poll(() => viewerSegmentSet(page, rows.map((r) => r.id)), { timeout: 30_000, interval: 200 })
      .toEqual({ active: true, size: brushed, holds: rows.map(() => true) });
    console.log(await saveArtifact(page, "panels-morphometrics-brushed"));

    // Hover in the views: the row of the hovered segment is highlighted.
    const target = rows.at(-1)?.id ?? -1;
    await hoverSegment(page, target);
    await page.locator(`#vemscope-morphometrics .vemscope-row.hovered[data-id="${target}"]`).waitFor({ timeout: 5_000 });
    expect(await page.locator("#vemscope-morphometrics .vemscope-row.hovered").count()).toBe(1);
    await hoverSegment(page, null);
    await page.locator("#vemscope-morphometrics .vemscope-row.hovered").waitFor({ state: "detached", timeout: 5_000 });

    // A click without a drag clears the brush: every row and the viewer's own segment set come back.
    await page.mouse.click(box.x + box.width / 2, y);
    await frames(page);
    expect(countOf(await status())).toBe(total);
    await expect.poll(() => viewerSegmentSet(page, []), { timeout: 30_000, interval: 200 }).toEqual({ active: false, size: 0, holds: [] });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("ER contacts: the distance slider changes the highlighted set and the per-class counts", async () => {
    const { page, errors } = await openViewer();
    await page.click("#vemscope-contacts-toggle");
    await page.locator("#vemscope-contacts .vemscope-counts tbody tr").first().waitFor();
    const colours = async () => {
      const layers = (await stateOf(page)).layers as { name: string; segmentColors?: Record<string, string> }[];
      return layers.find((l) => l.name === "organelles")?.segmentColors ?? {};
    };
    const counts = () => page.$$eval("#vemscope-contacts .vemscope-counts tbody tr", (rows) => rows.map((r) => r.textContent ?? "").join("|"));
    const setThreshold = async (nm: number) => {
      await page.locator("#vemscope-contacts .vemscope-threshold").fill(String(nm));
      await frames(page);
    };
    const greys = async () => Object.values(await colours()).filter((c) => c === "#5a5a5a").length;
    // The colours land in the viewer once the organelles layer is loaded (late on a loaded machine): polled.
    const poll = { timeout: 30_000, interval: 200 };
    await setThreshold(0);
    await expect.poll(greys, poll).toBeGreaterThan(0);
    const grey0 = await greys();
    const counts0 = await counts();
    await setThreshold(200);
    await expect.poll(greys, poll).toBeLessThan(grey0);
    const counts200 = await counts();
    expect(counts200).not.toEqual(counts0);
    expect(await page.locator("#vemscope-contacts .vemscope-threshold-value").textContent()).toContain("200 nm");
    expect((await stateOf(page)).vemscope).toMatchObject({ contacts: { settings: { thresholdNm: 200 } } });
    await setThreshold(30);
    console.log(await saveArtifact(page, "panels-contacts"));
    // Closing the panel gives the organelles their class colours back.
    await page.click("#vemscope-contacts-toggle");
    await expect.poll(async () => Object.values(await colours()), poll).not.toContain("#5a5a5a");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("morphometrics stays virtualised and responsive with 10,000 rows", async () => {
    if (!browser) throw new Error("setup failed");
    const page = await browser.newPage();
    const errors = collectConsoleErrors(page);
    const classes = ["mito", "ld", "lyso", "perox"];
    const rows = Array.from({ length: 10_000 }, (_, i) => ({
      id: i + 1,
      class: classes[i % classes.length],
      volume_nm3: ((i * 7919) % 10_000) * 1000,
      min_dist_er_nm: (i * 31) % 250,
      in_contact: (i * 31) % 250 <= 30,
      contact_in_plane: i % 3 !== 0,
      centroid_x_nm: 640,
      centroid_y_nm: 640,
      centroid_z_nm: 720,
    }));
    const columns = Object.keys(rows[0] ?? {}).map((id) => ({ id, type: id === "class" ? "string" : typeof rows[0]?.[id as keyof (typeof rows)[0]] }));
    await page.route("**/api/segments?**", (route) =>
      route.fulfill({ contentType: "application/json", body: JSON.stringify({ total: rows.length, offset: 0, limit: 100_000, columns, rows }) }),
    );
    await page.goto(url);
    await page.evaluate(async () => {
      await (window as unknown as PageWindow).vemscope?.ready;
    });
    await page.click("#vemscope-morphometrics-toggle");
    await page.locator("#vemscope-morphometrics .vemscope-row").first().waitFor();
    expect(await page.locator("#vemscope-morphometrics .vemscope-status").textContent()).toContain("10,000 of 10,000");
    expect(await page.locator("#vemscope-morphometrics .vemscope-row").count()).toBeLessThan(100);
    const sortMs = await page.evaluate(async () => {
      const header = document.querySelector<HTMLElement>('#vemscope-morphometrics .vemscope-th[data-column="volume_nm3"]');
      // The sort and the re-render of visible rows happen synchronously in the click handler. Waiting
      // for a frame would also time Neuroglancer's software-rendered (SwiftShader) views.
      const t0 = performance.now();
      header?.click();
      return performance.now() - t0;
    });
    // Timed and reported, never asserted: wall-clock limits flake on a loaded machine (virtualisation is asserted).
    console.log(`sorting 10,000 rows took ${sortMs.toFixed(1)} ms`);
    await page.evaluate(() => {
      const viewport = document.querySelector("#vemscope-morphometrics .vemscope-table-viewport");
      if (viewport) viewport.scrollTop = viewport.scrollHeight;
    });
    await frames(page);
    expect(await page.locator("#vemscope-morphometrics .vemscope-row").count()).toBeLessThan(100);
    const lastIds = await rowIds(page);
    // Ascending by volume: the largest volume (9999 * 1000) is in the last rendered row.
    const lastVolume = await page.locator("#vemscope-morphometrics .vemscope-row").last().locator(".vemscope-td").nth(2).textContent();
    expect(lastIds.length).toBeGreaterThan(0);
    expect(Number(lastVolume)).toBe(9_999_000);
    // Hovering segment 1 (volume 0: the first row, now scrolled far out of view) brings its row back into view.
    await hoverSegment(page, 1);
    await page.locator('#vemscope-morphometrics .vemscope-row.hovered[data-id="1"]').waitFor({ timeout: 5_000 });
    const inView = await page.evaluate(() => {
      const viewport = document.querySelector("#vemscope-morphometrics .vemscope-table-viewport")?.getBoundingClientRect();
      const row = document.querySelector('#vemscope-morphometrics .vemscope-row.hovered[data-id="1"]')?.getBoundingClientRect();
      return viewport !== undefined && row !== undefined && row.top >= viewport.top && row.bottom <= viewport.bottom;
    });
    expect(inView).toBe(true);
    console.log(await saveArtifact(page, "panels-morphometrics-10k"));
    expect(errors).toEqual([]);
    await page.close();
  });

  // One retry: under CI load the reopened viewer sometimes lacks the EM layer for good (2 of 6 CI runs in session 6,
  // not reproduced by hand; README "Known limits"). The assertions are unchanged; the cause is still to be found.
  it("share: the short link reopens the same layers, position, selection and panels", { retry: 1 }, async (ctx) => {
    const probe = await fetch(new URL("api/states", url), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    if (probe.status === 404 || probe.status === 405) ctx.skip();
    const { page, errors } = await openViewer();
    await page.click("#vemscope-share-toggle");
    await page.click("#vemscope-morphometrics-toggle");
    // Select a segment through the table, then move away: both must travel in the link.
    await page.locator("#vemscope-morphometrics .vemscope-row").first().waitFor();
    const picked = await page.evaluate(() => document.querySelector<HTMLElement>("#vemscope-morphometrics .vemscope-row")?.dataset.id ?? "");
    await page.click(`#vemscope-morphometrics .vemscope-row[data-id="${picked}"]`);
    await frames(page);
    const selected = (st: Record<string, unknown>) => (st.selection as { layers?: Record<string, { value?: string }> } | undefined)?.layers?.organelles?.value;
    // The selection reaches the viewer state a few frames after the click; on a loaded machine that can take seconds.
    await expect.poll(async () => selected(await stateOf(page)), { timeout: 15_000, interval: 200 }).toBe(picked);
    await page.evaluate(() => {
      const v = (window as unknown as PageWindow).vemscope?.viewer;
      if (v) v.position.value = Float32Array.from([40.5, 60.5, 10.5]);
    });
    const original = await stateOf(page);
    expect(selected(original)).toBe(picked);
    await page.click("#vemscope-share .vemscope-share-button");
    await page.waitForFunction(() => (document.querySelector<HTMLInputElement>("#vemscope-share .vemscope-share-url")?.value ?? "").startsWith("http"), null, { timeout: 10_000 });
    const link = await page.locator("#vemscope-share .vemscope-share-url").inputValue();
    console.log(await saveArtifact(page, "panels-share"));
    expect(link).toMatch(/\/s\/[\w-]+$/);
    const reopened = await openViewer(link);
    const names = (s: Record<string, unknown>) => ((s.layers ?? []) as { name: string }[]).map((l) => l.name);
    // Neuroglancer leaves a layer out of its state until the layer is created (its source read); on a loaded
    // machine that can come after isReady(), so the layer list is polled.
    try {
      await expect.poll(async () => names(await stateOf(reopened.page)), { timeout: 30_000, interval: 200 }).toEqual(names(original));
    } catch (e) {
      // The intermittent missing-layer failure (README "Known limits"): say what each side held, to find the cause.
      const stored = (await (await fetch(new URL(`api/states/${link.split("/").at(-1)}`, url))).json()) as Record<string, unknown>;
      const status = await reopened.page.evaluate(() => [...document.querySelectorAll(".neuroglancer-status")].map((n) => n.textContent).join(" | "));
      const detail = {
        original: names(original),
        posted: names(stored),
        postedLayers: ((stored.layers ?? []) as { name: string; type?: string; source?: unknown }[]).map(({ name, type, source }) => ({ name, type, source })),
        reopened: names(await stateOf(reopened.page)),
        sharedPageNow: names(await stateOf(page)),
        hash: await reopened.page.evaluate(() => window.location.hash.slice(0, 300)),
        status,
        console: reopened.log.slice(-30),
      };
      throw new Error(`${(e as Error).message}\nshare diagnostics: ${JSON.stringify(detail, null, 1)}`);
    }
    const restored = await stateOf(reopened.page);
    expect(restored.position).toEqual(original.position);
    expect(selected(restored)).toBe(picked);
    expect(restored.vemscope).toMatchObject({ morphometrics: { visible: true }, share: { visible: true } });
    expect([...errors, ...reopened.errors]).toEqual([]);
    await reopened.page.close();
    await page.close();
  });
});
