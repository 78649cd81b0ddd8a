import { figureIndexHtml } from "../pipeline/figures-job.js";
import { startFigures } from "../pipeline/report.js";
import { CSV_KEY, DEFAULT_CONTACT_NM, rowsFromCsv, sortedRows, SUMMARY_KEY } from "./table.js";
import { VersionStorage, type VersionIndex } from "./versions.js";

export const FIGURES_PREFIX = "report/figures/";
/** Tables whose figures are kept rendered (the latest measured one and a few a reviewer steps back to). */
const KEEP = 4;

/** A version's report/figures/ files by name (index.html, <panel>.svg). */
export type FigureFiles = ReadonlyMap<string, string>;

/**
 * The report's figure panels of edited versions, rendered on request from the version's own rows (its
 * morphometrics.csv) rather than written by each edit or measurement: Vega takes 1-2 s of CPU, which the
 * editor's queue would make the next edit wait for, and most versions' figures are never opened. Rendered on
 * a worker thread (the editor's thread keeps answering edits and reads), the same SVG text as `run` writes
 * for the same rows, and kept per table: versions that share one table share one rendering.
 */
export class VersionFigures {
  private readonly rendered = new Map<string, Promise<FigureFiles>>();

  constructor(private readonly index: VersionIndex) {}

  /**
   * `version`'s report/figures/ files, or undefined where its rows are the pipeline's (its figures are the
   * files on disk).
   */
  of(version: number): Promise<FigureFiles> | undefined {
    const at = this.index.resolve(version, CSV_KEY);
    if (at === undefined || "deleted" in at) return undefined;
    const key = at.dir;
    let files = this.rendered.get(key);
    if (files === undefined) {
      files = render(new VersionStorage(this.index, version));
      this.rendered.set(key, files);
      // A failed rendering is not kept: the next request tries again.
      files.catch(() => this.rendered.delete(key));
      while (this.rendered.size > KEEP) this.rendered.delete(this.rendered.keys().next().value as string);
    }
    return files;
  }
}

async function render(storage: VersionStorage): Promise<FigureFiles> {
  const csv = await storage.get(CSV_KEY);
  if (!csv) throw new Error(`${CSV_KEY} is missing from an edited version`);
  const summary = await storage.get(SUMMARY_KEY);
  const threshold = summary ? (JSON.parse(new TextDecoder().decode(summary)) as { contact_threshold_nm?: unknown }).contact_threshold_nm : undefined;
  const contactNm = typeof threshold === "number" ? threshold : DEFAULT_CONTACT_NM;
  // The run's own rendering path: on the process pool's worker thread (this thread keeps answering edits).
  const figures = await startFigures(sortedRows(rowsFromCsv(new TextDecoder().decode(csv))), contactNm)();
  return new Map([...figures.map((f) => [`${f.name}.svg`, f.svg] as const), ["index.html", figureIndexHtml(figures)]]);
}
