/**
 * The report's figure panels as a self-contained job (rows in, SVG text out), so that they can be rendered on a
 * worker thread while the main thread writes the layers, and the index page. Kept apart from figures.ts so that
 * importing this module loads no Vega.
 */
import type { RenderedFigure } from "./figures.js";
import type { InstanceRow } from "./report.js";

export type { RenderedFigure };

export interface FigureJob {
  rows: readonly InstanceRow[];
  contactNm: number;
}

export async function renderFigureJob(job: FigureJob): Promise<RenderedFigure[]> {
  const { renderFigures } = await import("./figures.js");
  return renderFigures(job.rows, { contactNm: job.contactNm });
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A standalone page (inline SVG, no scripts or external assets) for report/figures/index.html. */
export function figureIndexHtml(figures: readonly RenderedFigure[]): string {
  const body = figures.length
    ? figures
        .map(
          (f) => `<section id="${escapeHtml(f.name)}">
<h2>${escapeHtml(f.title)}</h2>
<p class="caption">${escapeHtml(f.caption)} <a href="${escapeHtml(f.name)}.svg">${escapeHtml(f.name)}.svg</a></p>
<figure>${f.svg}</figure>
</section>`,
        )
        .join("\n")
    : `<p class="empty">No panels: none of the measurements they need are present in this run.</p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vemscope — figure panels</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-bottom: 0.2rem; }
.caption { color: #444; margin-top: 0; } figure { margin: 0.5rem 0 2rem; } figure svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>Figure panels regenerated from this dataset</h1>
<p>Quantities of Jiang et al. 2021 (J Mol Cell Biol 13(9):636), Fig 3E-G, 4C-F and 5E-G, computed from report/morphometrics.csv. These are not the paper's images.</p>
${body}
</body>
</html>
`;
}
