/**
 * Morphometrics table: every column of the report, sortable, filterable by class and by a numeric
 * range, virtualised (only rows in view are in the DOM) so tens of thousands of rows stay fluid.
 * Clicking a row selects that organelle in the viewer and centres the view on it.
 */
import type { ViewerBridge } from "../bridge.js";
import type { Column, SegmentRow, SegmentTable } from "../client.js";
import { segmentTable } from "../data.js";
import { Settings, booleanOr, numberOr, stringOr } from "../settings.js";
import { formatCell, queryRows, rowsToCsv, type RangeFilter, type SortSpec, type TableQuery } from "../table.js";
import { Disposers, downloadText, el, errorText } from "./dom.js";

export interface MorphometricsSettings extends TableQuery {
  sort: SortSpec | null;
  hiddenClasses: string[];
  range: RangeFilter | null;
}

export const ROW_HEIGHT = 20;
const HEADER_HEIGHT = 24;
/** Rows rendered beyond each edge of the view, so a fast scroll does not flash empty space. */
const OVERSCAN = 8;

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
  return { sort, hiddenClasses, range };
}

export function morphometricsSettings(): Settings<MorphometricsSettings> {
  return new Settings<MorphometricsSettings>({ sort: null, hiddenClasses: [], range: null }, parseMorphometrics);
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
  const toolbar = el("div", { className: "vemscope-toolbar" }, [
    classBox,
    el("label", { className: "vemscope-range" }, ["range ", rangeColumn, rangeMin, "–", rangeMax]),
    exportButton,
    status,
  ]);
  const viewport = el("div", { className: "vemscope-table-viewport" });
  const canvas = el("div", { className: "vemscope-table-canvas" });
  const header = el("div", { className: "vemscope-table-header" });
  const rowsLayer = el("div", { className: "vemscope-table-rows" });
  canvas.append(header, rowsLayer);
  viewport.append(canvas);
  body.append(toolbar, viewport);

  let table: SegmentTable | undefined;
  let shown: SegmentRow[] = [];
  let selectedId: number | undefined;
  let gridTemplate = "";

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
      const line = el("div", { className: row.id === selectedId ? "vemscope-row selected" : "vemscope-row" });
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
    const asText = (v: number | null | undefined): string => (v === null || v === undefined ? "" : String(v));
    // Rewriting a focused input would move the caret while the user types.
    if (document.activeElement !== rangeMin) rangeMin.value = asText(range?.min);
    if (document.activeElement !== rangeMax) rangeMax.value = asText(range?.max);
  };

  const refresh = (): void => {
    if (!table) return;
    shown = queryRows(table.rows, settings.value);
    status.textContent = `${shown.length.toLocaleString()} of ${table.rows.length.toLocaleString()} segments`;
    canvas.style.height = `${HEADER_HEIGHT + shown.length * ROW_HEIGHT}px`;
    renderHeader();
    syncControls();
    renderRows();
  };

  const build = (loaded: SegmentTable): void => {
    table = loaded;
    const widths = loaded.columns.map(columnWidth);
    gridTemplate = widths.map((w) => `${w}px`).join(" ");
    const totalWidth = widths.reduce((a, b) => a + b, 0);
    canvas.style.width = `${totalWidth}px`;
    header.style.gridTemplateColumns = gridTemplate;
    header.style.height = `${HEADER_HEIGHT}px`;
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

  let alive = true;
  disposers.add(() => (alive = false));
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
