import { describe, expect, it } from "vitest";
import { classByName } from "./classes.js";
import { FIGURES, figureIndexHtml, renderFigures, type RenderedFigure } from "./figures.js";
import { classSummaries } from "./summary.js";
import { createRng } from "./random.js";
import { measuredRow, type InstanceRow } from "./report.js";

let nextId = 0;
function row(cls: string, extra: Partial<InstanceRow> = {}): InstanceRow {
  return measuredRow({
    id: ++nextId,
    class: cls,
    voxels: 1,
    volume_nm3: 1e9,
    centroid_x_nm: 0,
    centroid_y_nm: 0,
    centroid_z_nm: 0,
    bbox_voxels: "0 0 0 1 1 1",
    ...extra,
  });
}

/** Capsule mitochondria and spherical small organelles, about half of them within 30 nm of the ER. */
function synthRows(seed: number, skip: readonly string[] = []): InstanceRow[] {
  const rng = createRng(seed);
  const rows: InstanceRow[] = [];
  const distance = () => (rng.bool(0.45) ? 5 * rng.int(0, 6) : rng.uniform(31, 3000));
  const contact = (d: number) => ({
    min_dist_er_nm: d,
    in_contact: d <= 30,
    contact_in_plane: d <= 30 ? rng.bool() : null,
    contact_area_nm2: d <= 30 ? rng.uniform(1e3, 2e5) : 0,
    contact_sites: d <= 30 ? 1 : 0,
  });
  const shape = (V: number, A: number) => ({
    volume_nm3: V,
    surface_nm2: A,
    vsa_nm: V / A,
    sphericity: (Math.PI ** (1 / 3) * (6 * V) ** (2 / 3)) / A,
  });
  rows.push(row("er", { volume_nm3: 5e10 }), row("er", { volume_nm3: 2e9 }), row("nucleus", { volume_nm3: 3e11 }));
  for (let i = 0; i < 40; i++) {
    // Alternate so both groups are always present whatever the seed.
    const branched = i % 4 === 0;
    const w = rng.uniform(500, 1000);
    const r = w / 2;
    const L = Math.max(w, 1800 * Math.exp(0.45 * rng.normal())) * (branched ? 1.8 : 1);
    const V = Math.PI * r * r * (L - 2 * r) + (4 / 3) * Math.PI * r ** 3;
    const A = 2 * Math.PI * r * (L - 2 * r) + 4 * Math.PI * r * r;
    rows.push(row("mito", { ...shape(V, A), length_nm: L, width_nm: w, feret_max_nm: L, branched, branch_count: branched ? 1 : 0, ...contact(distance()) }));
  }
  const spheres: [string, number, number, number][] = [
    ["ld", 20, 150, 1500],
    ["lyso", 15, 150, 450],
    ["perox", 12, 100, 300],
  ];
  for (const [cls, n, rlo, rhi] of spheres) {
    if (skip.includes(cls)) continue;
    for (let i = 0; i < n; i++) {
      const r = rng.uniform(rlo, rhi);
      rows.push(row(cls, { ...shape((4 / 3) * Math.PI * r ** 3, 4 * Math.PI * r * r * rng.uniform(1, 1.2)), ...contact(distance()) }));
    }
  }
  return rows;
}

const xml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Tags balance and every `&` starts an entity: enough to catch broken or unescaped output. */
function expectWellFormed(svg: string): void {
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, selfClose] = m;
    if (selfClose) continue;
    if (close) expect(stack.pop()).toBe(name);
    else stack.push(name);
  }
  expect(stack).toEqual([]);
  expect(svg).not.toMatch(/&(?!amp;|lt;|gt;|quot;|#\d+;|#x[0-9a-f]+;)/i);
}

/** Every x/y axis title in a (possibly layered or concatenated) spec. */
function axisTitles(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const n of node) axisTitles(n, out);
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "encoding" && value !== null && typeof value === "object") {
        for (const ch of ["x", "y"]) {
          const def: unknown = (value as Record<string, unknown>)[ch];
          if (def !== null && typeof def === "object" && "title" in def && typeof def.title === "string") out.push(def.title);
        }
      } else {
        axisTitles(value, out);
      }
    }
  }
  return out;
}

/** Heights of the bars in the layer named "bars" (Vega writes each as `M x,y h w v height h -w Z`). */
function barHeights(svg: string): number[] {
  const group = /<g class="mark-rect role-mark bars_marks"[^>]*>(.*?)<\/g>/.exec(svg);
  if (!group) return [];
  return [...group[1].matchAll(/<path[^>]* d="M[-\d.]+,[-\d.]+h[-\d.]+v([-\d.]+)h/g)].map((m) => Number(m[1]));
}

function byName(figs: readonly RenderedFigure[], name: string): RenderedFigure {
  const f = figs.find((g) => g.name === name);
  if (!f) throw new Error(`panel ${name} was not rendered`);
  return f;
}

describe("classSummaries", () => {
  const rows = [
    row("mito", { volume_nm3: 1e9, surface_nm2: 6e6, sphericity: 0.8, length_nm: 2000, width_nm: 1000, branched: false, min_dist_er_nm: 10 }),
    row("mito", { volume_nm3: 3e9, surface_nm2: 8e6, sphericity: 0.6, length_nm: 3000, width_nm: 1000, branched: true, min_dist_er_nm: 50 }),
    row("mito", { volume_nm3: 2e9, surface_nm2: null, sphericity: null, length_nm: 1000, width_nm: 250, branched: false, min_dist_er_nm: null }),
    row("mito", { volume_nm3: 4e9, surface_nm2: 10e6, sphericity: 0.7, branched: null, min_dist_er_nm: 30 }),
    row("ld", { volume_nm3: 1e6, min_dist_er_nm: 0 }),
    row("ld", { volume_nm3: 3e6, min_dist_er_nm: Number.NaN }),
    row("er", { volume_nm3: 7e9 }),
    row("class9", { volume_nm3: 1 }),
  ];
  const get = (s: ReturnType<typeof classSummaries>, name: string) => {
    const c = s.find((x) => x.class === name);
    if (!c) throw new Error(`no summary for ${name}`);
    return c;
  };

  it("matches hand-computed per-class numbers", () => {
    const s = classSummaries(rows, 30);
    expect(s.map((c) => c.class)).toEqual(["er", "mito", "ld", "lyso", "perox", "nucleus"]);
    const mito = get(s, "mito");
    expect(mito).toMatchObject({ count: 4, mean_volume_nm3: 2.5e9, median_volume_nm3: 2.5e9, mean_surface_nm2: 8e6, median_surface_nm2: 8e6 });
    expect(mito.mean_sphericity).toBeCloseTo(0.7, 12);
    expect(mito.median_sphericity).toBeCloseTo(0.7, 12);
    // Distances 10, 50, 30 (one unmeasured): 10 and 30 are within 30 nm, the threshold itself included.
    expect(mito).toMatchObject({ mean_min_dist_er_nm: 30, contact_measured: 3, contact_count: 2 });
    expect(mito.contact_percent).toBeCloseTo(200 / 3, 10);
    expect(mito.mito?.branch_measured).toBe(3);
    expect(mito.mito?.branched_count).toBe(1);
    expect(mito.mito?.branched_percent).toBeCloseTo(100 / 3, 10);
    expect(mito.mito?.unbranched_count).toBe(2);
    expect(mito.mito?.unbranched_mean_length_nm).toBe(1500);
    // Mean of ratios (2000/1000, 1000/250) = 3, not 1500 / 625 = 2.4.
    expect(mito.mito?.unbranched_mean_length_width).toBe(3);
    expect(mito.mito?.contact_percent_branched).toBe(0);
    expect(mito.mito?.contact_percent_unbranched).toBe(100);

    const ld = get(s, "ld");
    expect(ld).toMatchObject({ count: 2, mean_volume_nm3: 2e6, median_volume_nm3: 2e6, contact_measured: 1, contact_count: 1, contact_percent: 100 });
    expect(ld.mean_surface_nm2).toBeNull();
    expect(ld.mito).toBeUndefined();
    expect(get(s, "er")).toMatchObject({ count: 1, contact_measured: 0, contact_percent: null, mean_min_dist_er_nm: null });
    expect(get(s, "perox")).toMatchObject({ count: 0, mean_volume_nm3: null, median_volume_nm3: null, contact_percent: null });
  });

  it("follows the threshold it is given", () => {
    const mito = get(classSummaries(rows, 5), "mito");
    expect(mito.contact_count).toBe(0);
    expect(get(classSummaries(rows, 10), "mito").contact_count).toBe(1);
  });

  it("takes the middle of an odd count as the median", () => {
    const s = classSummaries([row("lyso", { volume_nm3: 5 }), row("lyso", { volume_nm3: 1 }), row("lyso", { volume_nm3: 100 })], 30);
    expect(get(s, "lyso").median_volume_nm3).toBe(5);
  });

  it("handles empty input and rejects a bad threshold", () => {
    const s = classSummaries([], 30);
    expect(s.every((c) => c.count === 0 && c.mean_volume_nm3 === null && c.contact_percent === null)).toBe(true);
    expect(get(s, "mito").mito?.branched_percent).toBeNull();
    expect(() => classSummaries([], -1)).toThrow(RangeError);
    expect(() => classSummaries([], Number.NaN)).toThrow(RangeError);
  });
});

describe("renderFigures", () => {
  const rows = synthRows(11);
  const opts = { contactNm: 30 };
  const rendered = renderFigures(rows, opts);

  it("renders every registry panel as well-formed SVG with its title and axis titles", async () => {
    const figs = await rendered;
    expect(figs.map((f) => f.name)).toEqual(FIGURES.map((p) => p.name));
    expect(new Set(figs.map((f) => f.name)).size).toBe(figs.length);
    for (const panel of FIGURES) {
      const f = byName(figs, panel.name);
      expectWellFormed(f.svg);
      expect(f.title).toMatch(/^Fig [345][C-G] — /);
      expect(f.svg).toContain(xml(f.title));
      expect(f.caption.length).toBeGreaterThan(20);
      const spec = panel.build(rows, opts);
      expect(spec).toBeDefined();
      const titles = axisTitles(spec);
      expect(titles.length).toBeGreaterThan(0);
      for (const t of titles) expect(f.svg, `${panel.name}: axis title ${t}`).toContain(xml(t));
    }
  });

  it("uses µm units for volume and surface and log axes where values span decades", async () => {
    const figs = await rendered;
    expect(byName(figs, "fig3e-mito-volume").svg).toContain("volume (µm³)");
    expect(byName(figs, "fig4d-surface").svg).toContain("surface area (µm²)");
    // Lipid droplets (r 150-1500 nm) and peroxisomes (r 100-300 nm) span more than two decades of volume.
    expect(byName(figs, "fig4c-volume").svg).toContain("log axis");
    expect(byName(figs, "fig4e-vsa").svg).not.toContain("log axis");
  });

  it("draws one bar per class with data, heights equal to the contact percentages", async () => {
    const figs = await rendered;
    const summaries = classSummaries(rows, opts.contactNm).filter((s) => classByName(s.class)?.measuresContacts && s.contact_percent !== null);
    expect(summaries).toHaveLength(4);
    const svg = byName(figs, "fig5f-contact-percent").svg;
    const heights = barHeights(svg);
    expect(heights).toHaveLength(summaries.length);
    // Fixed 0-100 % axis over the plot height (240 px).
    summaries.forEach((s, i) => expect(heights[i]).toBeCloseTo(((s.contact_percent ?? NaN) / 100) * 240, 1));
    for (const s of summaries) expect(svg).toContain(`${(s.contact_percent ?? NaN).toFixed(1)}% (${s.contact_count}/${s.contact_measured})`);

    // The spec carries the same numbers.
    const spec = FIGURES.find((p) => p.name === "fig5f-contact-percent")?.build(rows, opts);
    const data: unknown = spec && "data" in spec ? spec.data : undefined;
    const values = (data as { values: { percent: number }[] } | undefined)?.values ?? [];
    expect(values.map((v) => v.percent)).toEqual(summaries.map((s) => s.contact_percent));

    const mito = summaries.find((s) => s.class === "mito")?.mito;
    const branchedHeights = barHeights(byName(figs, "fig5g-mito-contact-branched").svg);
    expect(branchedHeights).toHaveLength(2);
    expect(branchedHeights[0]).toBeCloseTo(((mito?.contact_percent_unbranched ?? NaN) / 100) * 240, 1);
    expect(branchedHeights[1]).toBeCloseTo(((mito?.contact_percent_branched ?? NaN) / 100) * 240, 1);
  });

  it("shows the paper's percentages only at the paper's 30 nm threshold", async () => {
    const at30 = byName(await rendered, "fig5f-contact-percent").svg;
    expect(at30).toContain("paper_marks");
    const at20 = byName(await renderFigures(rows, { contactNm: 20 }), "fig5f-contact-percent").svg;
    expect(at20).not.toContain("paper_marks");
    expect(at20).toContain("&lt;= 20 nm");
  });

  it("leaves out classes without data", async () => {
    const figs = await renderFigures(synthRows(11, ["perox"]), opts);
    expect(barHeights(byName(figs, "fig5f-contact-percent").svg)).toHaveLength(3);
    expect(byName(figs, "fig4c-volume").svg).not.toContain("peroxisome");
  });

  it("is deterministic", async () => {
    const again = await renderFigures(synthRows(11), opts);
    expect(again).toEqual(await rendered);
  });

  it("renders nothing, without throwing, when there is nothing to plot", async () => {
    expect(await renderFigures([], opts)).toEqual([]);
    const unmeasured = [row("mito", { volume_nm3: Number.NaN }), row("ld", { volume_nm3: Number.NaN }), row("er"), row("nucleus")];
    expect(await renderFigures(unmeasured, opts)).toEqual([]);
    // Straight out of labelling only volumes exist: only the volume panels appear.
    const volumesOnly = [row("mito", { volume_nm3: 2e9 }), row("mito", { volume_nm3: 1e9 }), row("lyso", { volume_nm3: 1e8 })];
    expect((await renderFigures(volumesOnly, opts)).map((f) => f.name)).toEqual(["fig3e-mito-volume", "fig4c-volume"]);
  });

  it("renders a single organelle (degenerate histogram and box plot)", async () => {
    const one = [row("mito", { volume_nm3: 1e9, surface_nm2: 5e6, sphericity: 0.9, length_nm: 1500, width_nm: 700, branched: false, min_dist_er_nm: 0, contact_area_nm2: 1e4 })];
    const figs = await renderFigures(one, opts);
    for (const f of figs) expectWellFormed(f.svg);
    expect(barHeights(byName(figs, "fig5f-contact-percent").svg)).toEqual([240]);
  });

  it("every panel's build copes with empty input", () => {
    for (const p of FIGURES) expect(p.build([], opts)).toBeUndefined();
  });

  it("rejects a bad threshold", async () => {
    await expect(renderFigures(rows, { contactNm: -5 })).rejects.toThrow(RangeError);
  });
});

describe("figureIndexHtml", () => {
  it("lists every panel with title, caption and inline SVG", async () => {
    const figs = await renderFigures(synthRows(3), { contactNm: 30 });
    const html = figureIndexHtml(figs);
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html.match(/<svg /g)).toHaveLength(figs.length);
    for (const f of figs) {
      expect(html).toContain(`<h2>${xml(f.title)}</h2>`);
      expect(html).toContain(xml(f.caption));
      expect(html).toContain(`href="${f.name}.svg"`);
    }
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it("says so when there are no panels", () => {
    const html = figureIndexHtml([]);
    expect(html).toContain("No panels");
    expect(html).not.toContain("<svg");
  });

  it("escapes text", () => {
    const html = figureIndexHtml([{ name: "x", title: "a <b> & c", caption: "d < e", svg: "<svg></svg>" }]);
    expect(html).toContain("a &lt;b&gt; &amp; c");
    expect(html).toContain("d &lt; e");
  });
});
