/**
 * A histogram in plain SVG with a drag-to-select range (a "brush"). It only reports ranges; what a
 * range means (filter, viewer set, URL state) is the morphometrics panel's business.
 */
import { formatCell, type Histogram } from "../table.js";
import { Disposers } from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";
export const HIST_WIDTH = 240;
export const HIST_HEIGHT = 110;
const PAD = 4;
const AXIS = 14;
/** A press that moves less than this is a click, and a click clears the brush. */
const CLICK_PX = 3;

export interface Brush {
  min: number;
  max: number;
}

export interface HistogramView {
  element: SVGSVGElement;
  render(histogram: Histogram | null, brush: Brush | null): void;
  dispose(): void;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, className?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) e.setAttribute(key, String(value));
  if (className) e.setAttribute("class", className);
  return e;
}

export function histogramView(onBrush: (brush: Brush | null) => void): HistogramView {
  const disposers = new Disposers();
  const element = svg("svg", { width: HIST_WIDTH, height: HIST_HEIGHT, viewBox: `0 0 ${HIST_WIDTH} ${HIST_HEIGHT}` }, "vemscope-histogram");
  const bars = svg("g", {}, "vemscope-hist-bars");
  const brushRect = svg("rect", { x: 0, y: PAD, width: 0, height: HIST_HEIGHT - PAD - AXIS }, "vemscope-hist-brush");
  const minLabel = svg("text", { x: PAD, y: HIST_HEIGHT - 3 }, "vemscope-hist-label");
  const maxLabel = svg("text", { x: HIST_WIDTH - PAD, y: HIST_HEIGHT - 3, "text-anchor": "end" }, "vemscope-hist-label");
  element.append(bars, brushRect, minLabel, maxLabel);

  let current: Histogram | null = null;
  const plotWidth = HIST_WIDTH - 2 * PAD;
  const toX = (value: number): number => {
    if (!current) return PAD;
    const span = current.max - current.min;
    return PAD + (span > 0 ? ((value - current.min) / span) * plotWidth : 0);
  };
  const toValue = (x: number): number => {
    if (!current) return 0;
    const t = Math.min(1, Math.max(0, (x - PAD) / plotWidth));
    return current.min + t * (current.max - current.min);
  };
  const showBrush = (x0: number, x1: number): void => {
    brushRect.setAttribute("x", String(Math.min(x0, x1)));
    brushRect.setAttribute("width", String(Math.abs(x1 - x0)));
    brushRect.style.display = x0 === x1 ? "none" : "";
  };

  const render = (histogram: Histogram | null, brush: Brush | null): void => {
    current = histogram;
    bars.replaceChildren();
    if (!histogram) {
      minLabel.textContent = maxLabel.textContent = "";
      showBrush(0, 0);
      return;
    }
    const peak = Math.max(1, ...histogram.counts);
    const n = histogram.counts.length;
    const binWidth = plotWidth / n;
    const plotHeight = HIST_HEIGHT - PAD - AXIS;
    const binSpan = (histogram.max - histogram.min) / n;
    histogram.counts.forEach((count, i) => {
      const lo = histogram.min + i * binSpan;
      const hi = lo + binSpan;
      const inBrush = brush === null || (hi >= brush.min && lo <= brush.max);
      const h = (count / peak) * plotHeight;
      const bar = svg(
        "rect",
        { x: PAD + i * binWidth + 0.5, y: PAD + plotHeight - h, width: Math.max(0.5, binWidth - 1), height: h },
        inBrush ? "vemscope-hist-bar" : "vemscope-hist-bar outside",
      );
      const title = svg("title", {});
      title.textContent = `${formatCell(lo)} – ${formatCell(hi)}: ${count}`;
      bar.append(title);
      bars.append(bar);
    });
    minLabel.textContent = formatCell(histogram.min);
    maxLabel.textContent = formatCell(histogram.max);
    if (brush) showBrush(toX(brush.min), toX(brush.max));
    else showBrush(0, 0);
  };

  const localX = (event: PointerEvent): number => {
    const rect = element.getBoundingClientRect();
    return rect.width > 0 ? ((event.clientX - rect.left) * HIST_WIDTH) / rect.width : 0;
  };
  let dragStart: number | null = null;
  const onDown = (event: PointerEvent): void => {
    if (!current || event.button !== 0) return;
    dragStart = localX(event);
    // Capture keeps the drag alive when the pointer leaves the small plot mid-gesture.
    element.setPointerCapture(event.pointerId);
    event.preventDefault();
  };
  const onMove = (event: PointerEvent): void => {
    if (dragStart !== null) showBrush(dragStart, Math.min(HIST_WIDTH - PAD, Math.max(PAD, localX(event))));
  };
  const onUp = (event: PointerEvent): void => {
    if (dragStart === null) return;
    const start = dragStart;
    dragStart = null;
    const end = localX(event);
    if (Math.abs(end - start) < CLICK_PX) onBrush(null);
    else onBrush({ min: toValue(Math.min(start, end)), max: toValue(Math.max(start, end)) });
  };
  element.addEventListener("pointerdown", onDown);
  element.addEventListener("pointermove", onMove);
  element.addEventListener("pointerup", onUp);
  disposers.add(() => {
    element.removeEventListener("pointerdown", onDown);
    element.removeEventListener("pointermove", onMove);
    element.removeEventListener("pointerup", onUp);
  });
  return { element, render, dispose: () => disposers.dispose() };
}
