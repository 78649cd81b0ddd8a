/**
 * Morphometrics table: every column of the report, sortable, filterable by class and by a numeric
 * range, virtualised (only rows in view are in the DOM) so tens of thousands of rows stay fluid.
 * Clicking a row selects that organelle in the viewer and centres the view on it.
 *
 * The histogram beside the table plots one numeric column of the rows that pass the class and
 * range filters. Dragging across it brushes a range: the table keeps only rows inside it, and the
 * organelles layer shows only those segments (others hidden, via Neuroglancer's temporary visible
 * set, so the saved segment list is untouched). A click on the histogram or "clear" ends the brush
 * and the viewer shows what it showed before; closing the panel does the same, reopening reapplies.
 * Hovering a segment in the 2D/3D views highlights its row and scrolls it into view.
 */
import type { ViewerBridge } from "../bridge.js";
import type { Column, SegmentRow, SegmentTable } from "../client.js";
import { onSegmentTableChanged, segmentTable } from "../data.js";
import { Settings, booleanOr, numberOr, stringOr } from "../settings.js";
import { extent, filterRows, formatCell, histogram, inRange, rowsToCsv, sortRows, type RangeFilter, type SortSpec, type TableQuery } from "../table.js";
import { Disposers, downloadText, el, errorText } from "./dom.js";
import { histogramView, type Brush } from "./histogram.js";

export interface MorphometricsSettings extends TableQuery {
  sort: SortSpec | null;
  hiddenClasses: string[];
  range: RangeFilter | null;
  /** Column plotted in the histogram; null = the default (volume, or the first numeric column). */
  histogramColumn: string | null;
  /** Brushed range on the histogram; its column is always the histogram's. */
  brush: RangeFilter | null;
  /** Review status to show only (the review queue); null = any. Needs the proofreading columns. */
  review: string | null;
}

const REVIEW_FILTERS = ["unreviewed", "ok", "needs-fix"];

export const ROW_HEIGHT = 20;
const HEADER_HEIGHT = 24;
/** Rows rendered beyond each edge of the view, so a fast scroll does not flash empty space. */
const OVERSCAN = 8;
/** Bins grow with √n (clamped), so eight organelles do not draw as eight hairlines in 40 slots. */
const histogramBins = (n: number): number => Math.min(40, Math.max(10, Math.ceil(Math.sqrt(n))));
/** Neuroglancer reports hover on every mouse move; the table follows once the pointer settles. */
const HOVER_DEBOUNCE_MS = 60;

function parseMorphometrics(json: Record<string, unknown>, defaults: MorphometricsSettings): MorphometricsSettings {
  const sortJson = json.sort;
  const sort =
    typeof sortJson === "object" && sortJson !== null && "column" in sortJson && typeof sortJson.column === "string"
      ? { column: sortJson.column, descending: booleanOr((sortJson as Record<string, unknown>).descending, false) }
      : sortJson === null
        ? null
        : defaults.sort;
  const hiddenClasses = Array.isArray(json.hiddenClasses) ? json.hiddenClasses.filter((c): c is string => typeof c === "string") : defaults.hiddenClasses;
  const rangeJson = json.range;
  let range = defaults.range;
  if (typeof rangeJson === "object" && rangeJson !== null && !Array.isArray(rangeJson)) {
    const r = rangeJson as Record<string, unknown>;
    const column = stringOr(r.column, null);
    if (column !== null) range = { column, min: numberOr(r.min, null), max: numberOr(r.max, null) };
  }
  const histogramColumn = stringOr(json.histogramColumn, defaults.histogramColumn);
  let brush = defaults.brush;
  const brushJson = json.brush;
  if (typeof brushJson === "object" && brushJson !== null && !Array.isArray(brushJson)) {
    const b = brushJson as Record<string, unknown>;
    const column = stringOr(b.column, null);
    if (column !== null) brush = { column, min: numberOr(b.min, null), max: numberOr(b.max, null) };
  }
  const review = typeof json.review === "string" && REVIEW_FILTERS.includes(json.review) ? json.review : defaults.review;
  return { sort, hiddenClasses, range, histogramColumn, brush, review };
}

export function morphometricsSettings(): Settings<MorphometricsSettings> {
  return new Settings<MorphometricsSettings>({ sort: null, hiddenClasses: [], range: null, histogramColumn: null, brush: null, review: null }, parseMorphometrics);
}

function columnWidth(column: Column): number {
  if (column.id === "id") return 56;
  if (column.id === "class") return 64;
  if (column.id === "bbox_voxels") return 150;
  return 104;
}

export function mountMorphometrics(body: HTMLElement, settings: Settings<MorphometricsSettings>, bridge: ViewerBridge): { dispose(): void } {
  const disposers = new Disposers();
  body.classList.add("vemscope-morphometrics-body");

  const status = el("span", { className: "vemscope-status", textContent: "loading segments…" });
  const classBox = el("div", { className: "vemscope-classes" });
  const rangeColumn = el("select", { className: "vemscope-range-column", title: "Column for the numeric range filter" });
  const rangeMin = el("input", { className: "vemscope-range-min", type: "number", title: "Minimum (inclusive)" });
  const rangeMax = el("input", { className: "vemscope-range-max", type: "number", title: "Maximum (inclusive)" });
  rangeMin.placeholder = "min";
  rangeMax.placeholder = "max";
  const exportButton = el("button", { className: "vemscope-export", textContent: "Export CSV", title: "Download the filtered rows as CSV" });
  // Shown once the table has review columns (a folder being proofread): the review queue.
  const reviewFilter = el("select", { className: "vemscope-review-filter", title: "Show only segments with this review status" });
  reviewFilter.append(el("option", { textContent: "any review" }), ...REVIEW_FILTERS.map((r) => el("option", { textContent: r })));
  const anyReview = reviewFilter.options[0];
  if (anyReview) anyReview.value = "";
  reviewFilter.hidden = true;
  const toolbar = el("div", { className: "vemscope-toolbar" }, [
    classBox,
    reviewFilter,
    el("label", { className: "vemscope-range" }, ["range ", rangeColumn, rangeMin, "–", rangeMax]),
    exportButton,
    status,
  ]);
  const histogramColumn = el("select", { className: "vemscope-histogram-column", title: "Column plotted in the histogram" });
  const clearBrush = el("button", { className: "vemscope-brush-clear", textContent: "clear", title: "Clear the brushed range" });
  const brushLabel = el("span", { className: "vemscope-brush-label" });
  const hist = histogramView((brush: Brush | null) => {
    const column = plottedColumn();
    settings.update({ brush: brush === null || column === null ? null : { column, min: brush.min, max: brush.max } });
  });
  const histogramBox = el("div", { className: "vemscope-histogram-box" }, [
    el("div", { className: "vemscope-row-control" }, [histogramColumn, clearBrush]),
    hist.element,
    brushLabel,
  ]);
  disposers.add(() => hist.dispose());
  const viewport = el("div", { className: "vemscope-table-viewport" });
  const canvas = el("div", { className: "vemscope-table-canvas" });
  const header = el("div", { className: "vemscope-table-header" });
  const rowsLayer = el("div", { className: "vemscope-table-rows" });
  canvas.append(header, rowsLayer);
  viewport.append(canvas);
  body.append(toolbar, el("div", { className: "vemscope-morphometrics-main" }, [histogramBox, viewport]));

  let table: SegmentTable | undefined;
  let shown: SegmentRow[] = [];
  let selectedId: number | undefined;
  let hoveredId: number | null = null;
  let gridTemplate = "";
  let domain: { column: string; min: number; max: number } | null = null;
  /** Whether this panel has replaced the viewer's visible set, so only then is there one to restore. */
  let viewerFiltered = false;

  const plottedColumn = (): string | null => {
    if (!table) return null;
    const numeric = table.columns.filter((c) => c.type === "number" && c.id !== "id").map((c) => c.id);
    const chosen = settings.value.histogramColumn;
    if (chosen !== null && numeric.includes(chosen)) return chosen;
    return numeric.includes("volume_nm3") ? "volume_nm3" : (numeric[0] ?? null);
  };
  /** The brush only counts while it is on the plotted column; a stale one from a URL is ignored. */
  const activeBrush = (): RangeFilter | null => {
    const { brush } = settings.value;
    return brush !== null && brush.column === plottedColumn() ? brush : null;
  };

  const renderHeader = (): void => {
    if (!table) return;
    const { sort } = settings.value;
    header.replaceChildren(
      ...table.columns.map((c) => {
        const arrow = sort?.column === c.id ? (sort.descending ? " ▼" : " ▲") : "";
        const cell = el("div", { className: "vemscope-th", textContent: c.id + arrow, title: `Sort by ${c.id}` });
        cell.dataset.column = c.id;
        return cell;
      }),
    );
  };

  const renderRows = (): void => {
    if (!table) return;
    const { columns } = table;
    const top = Math.max(0, viewport.scrollTop - HEADER_HEIGHT);
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((top + viewport.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const row = shown[i];
      if (!row) continue;
      const line = el("div", { className: "vemscope-row" });
      if (row.id === selectedId) line.classList.add("selected");
      if (row.id === hoveredId) line.classList.add("hovered");
      line.dataset.id = String(row.id);
      line.style.top = `${HEADER_HEIGHT + i * ROW_HEIGHT}px`;
      line.style.gridTemplateColumns = gridTemplate;
      for (const c of columns) line.append(el("div", { className: `vemscope-td ${c.type}`, textContent: formatCell(row[c.id]) }));
      fragment.append(line);
    }
    rowsLayer.replaceChildren(fragment);
  };

  let frame = 0;
  const scheduleRows = (): void => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderRows();
    });
  };
  disposers.add(() => cancelAnimationFrame(frame));

  const syncControls = (): void => {
    if (!table) return;
    const { hiddenClasses, range } = settings.value;
    for (const box of classBox.querySelectorAll<HTMLInputElement>("input[type=checkbox]")) {
      box.checked = !hiddenClasses.includes(box.value);
    }
    rangeColumn.value = range?.column ?? "";
    reviewFilter.value = settings.value.review ?? "";
    histogramColumn.value = plottedColumn() ?? "";
    const asText = (v: number | null | undefined): string => (v === null || v === undefined ? "" : String(v));
    // Rewriting a focused input would move the caret while the user types.
    if (document.activeElement !== rangeMin) rangeMin.value = asText(range?.min);
    if (document.activeElement !== rangeMax) rangeMax.value = asText(range?.max);
  };

  const renderHistogram = (unbrushed: readonly SegmentRow[]): void => {
    const column = plottedColumn();
    if (!table || column === null) {
      hist.render(null, null);
      return;
    }
    if (domain?.column !== column) {
      const e = extent(table.rows, column);
      domain = e ? { column, ...e } : null;
    }
    const brush = activeBrush();
    hist.render(
      domain ? histogram(unbrushed, column, histogramBins(table.rows.length), domain) : null,
      brush ? { min: brush.min ?? domain?.min ?? 0, max: brush.max ?? domain?.max ?? 0 } : null,
    );
    brushLabel.textContent = brush ? `brushed ${formatCell(brush.min)} – ${formatCell(brush.max)}` : "drag to brush a range";
    clearBrush.disabled = brush === null;
  };

  const applyToViewer = (): void => {
    const brush = activeBrush();
    if (brush !== null) viewerFiltered = bridge.showOnlySegments(shown.map((r) => r.id));
    else if (viewerFiltered) viewerFiltered = !bridge.showOnlySegments(null);
  };

  const refresh = (): void => {
    if (!table) return;
    // A review filter from a URL means nothing for a folder without review columns.
    const query: TableQuery = { ...settings.value, brush: null, review: reviewFilter.hidden ? null : settings.value.review };
    const unbrushed = filterRows(table.rows, query);
    const brush = activeBrush();
    shown = sortRows(brush ? unbrushed.filter((r) => inRange(r, brush)) : unbrushed, settings.value.sort);
    status.textContent = `${shown.length.toLocaleString()} of ${table.rows.length.toLocaleString()} segments`;
    canvas.style.height = `${HEADER_HEIGHT + shown.length * ROW_HEIGHT}px`;
    renderHeader();
    syncControls();
    renderHistogram(unbrushed);
    renderRows();
    applyToViewer();
  };

  const build = (loaded: SegmentTable): void => {
    table = loaded;
    const widths = loaded.columns.map(columnWidth);
    gridTemplate = widths.map((w) => `${w}px`).join(" ");
    const totalWidth = widths.reduce((a, b) => a + b, 0);
    canvas.style.width = `${totalWidth}px`;
    header.style.gridTemplateColumns = gridTemplate;
    header.style.height = `${HEADER_HEIGHT}px`;
    reviewFilter.hidden = !loaded.columns.some((c) => c.id === "review_status");
    const classes = [...new Set(loaded.rows.map((r) => r.class))].sort();
    classBox.replaceChildren(
      ...classes.map((name) => {
        const box = el("input", { type: "checkbox" });
        box.value = name;
        box.dataset.class = name;
        return el("label", { className: "vemscope-class-toggle" }, [box, name]);
      }),
    );
    rangeColumn.replaceChildren(
      el("option", { textContent: "(none)" }),
      ...loaded.columns.filter((c) => c.type === "number").map((c) => el("option", { textContent: c.id })),
    );
    histogramColumn.replaceChildren(...loaded.columns.filter((c) => c.type === "number" && c.id !== "id").map((c) => el("option", { textContent: c.id })));
    // The "(none)" option's value must be "" so an unset range round-trips through the select.
    const none = rangeColumn.options[0];
    if (none) none.value = "";
    refresh();
  };

  const readRange = (): void => {
    const column = rangeColumn.value;
    const num = (input: HTMLInputElement): number | null => (input.value.trim() === "" || !Number.isFinite(input.valueAsNumber) ? null : input.valueAsNumber);
    settings.update({ range: column === "" ? null : { column, min: num(rangeMin), max: num(rangeMax) } });
  };

  disposers.listen(rangeColumn, "change", readRange);
  disposers.listen(reviewFilter, "change", () => settings.update({ review: reviewFilter.value === "" ? null : reviewFilter.value }));
  disposers.listen(histogramColumn, "change", () => {
    // A brush is a range of one column; carrying it over to another would filter by nonsense.
    settings.update({ histogramColumn: histogramColumn.value, brush: null });
  });
  disposers.listen(clearBrush, "click", () => settings.update({ brush: null }));
  disposers.listen(rangeMin, "input", readRange);
  disposers.listen(rangeMax, "input", readRange);
  disposers.listen(classBox, "change", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement)) return;
    const hidden = new Set(settings.value.hiddenClasses);
    if (box.checked) hidden.delete(box.value);
    else hidden.add(box.value);
    settings.update({ hiddenClasses: [...hidden].sort() });
  });
  disposers.listen(header, "click", (event) => {
    const target = event.target instanceof Element ? event.target.closest<HTMLElement>(".vemscope-th") : null;
    const column = target?.dataset.column;
    if (!column) return;
    const { sort } = settings.value;
    settings.update({ sort: { column, descending: sort?.column === column ? !sort.descending : false } });
  });
  const rowOf = (event: Event): SegmentRow | undefined => {
    const line = event.target instanceof Element ? event.target.closest<HTMLElement>(".vemscope-row") : null;
    const id = Number(line?.dataset.id);
    return Number.isFinite(id) ? shown.find((r) => r.id === id) : undefined;
  };
  disposers.listen(rowsLayer, "click", (event) => {
    const row = rowOf(event);
    if (!row) return;
    selectedId = row.id;
    bridge.selectSegment(row.id);
    const { centroid_x_nm: x, centroid_y_nm: y, centroid_z_nm: z } = row;
    if (typeof x === "number" && typeof y === "number" && typeof z === "number") bridge.moveToNm([x, y, z]);
    renderRows();
  });
  disposers.listen(rowsLayer, "mouseover", (event) => {
    const row = rowOf(event);
    if (row) bridge.highlightSegment(row.id);
  });
  disposers.listen(rowsLayer, "mouseleave", () => bridge.highlightSegment(null));
  disposers.listen(viewport, "scroll", scheduleRows);
  const resize = new ResizeObserver(scheduleRows);
  resize.observe(viewport);
  disposers.add(() => resize.disconnect());
  disposers.listen(exportButton, "click", () => {
    if (!table) return;
    downloadText("morphometrics-filtered.csv", rowsToCsv(table.columns, shown));
  });
  disposers.add(settings.subscribe(refresh));
  // The organelles layer may load after the table; a brush from the URL must still reach it.
  disposers.add(
    bridge.onLayersChanged(() => {
      if (activeBrush() !== null) applyToViewer();
    }),
  );
  disposers.add(() => {
    if (viewerFiltered) bridge.showOnlySegments(null);
  });

  const showHovered = (id: number | null): void => {
    hoveredId = id;
    if (id !== null) {
      const index = shown.findIndex((r) => r.id === id);
      if (index >= 0) {
        const top = HEADER_HEIGHT + index * ROW_HEIGHT;
        const visibleTop = viewport.scrollTop + HEADER_HEIGHT;
        const visibleBottom = viewport.scrollTop + viewport.clientHeight - ROW_HEIGHT;
        // Only an off-screen row scrolls: moving rows under a user reading the table is disorienting.
        if (top < visibleTop || top > visibleBottom) viewport.scrollTop = top - HEADER_HEIGHT - (viewport.clientHeight - HEADER_HEIGHT - ROW_HEIGHT) / 2;
      }
    }
    renderRows();
  };
  let hoverTimer: ReturnType<typeof setTimeout> | undefined;
  disposers.add(
    bridge.onHoveredSegmentChanged((id) => {
      clearTimeout(hoverTimer);
      hoverTimer = setTimeout(() => showHovered(id), HOVER_DEBOUNCE_MS);
    }),
  );
  disposers.add(() => clearTimeout(hoverTimer));

  let alive = true;
  disposers.add(() => (alive = false));
  // After an edit or re-measurement the rows change (ids retire, new ones appear): rebuild in place.
  disposers.add(
    onSegmentTableChanged((loaded) => {
      domain = null;
      build(loaded);
    }),
  );
  segmentTable().then(
    (loaded) => {
      if (alive) build(loaded);
    },
    (error: unknown) => {
      if (alive) status.textContent = `could not load segments: ${errorText(error)}`;
    },
  );
  return { dispose: () => disposers.dispose() };
}
