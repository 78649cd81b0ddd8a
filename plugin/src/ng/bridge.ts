/** ViewerBridge over Neuroglancer's layer manager, segmentation display state and navigation. */
import { packColor, parseRGBColorSpecification } from "neuroglancer/unstable/util/color.js";
import type { ManagedUserLayer } from "neuroglancer/unstable/layer/index.js";
import { ORGANELLES_LAYER, type Vec3, type ViewerBridge } from "../bridge.js";
import type { NgViewer } from "./viewer.js";

/**
 * The parts of SegmentationUserLayer (layer/segmentation/index.js ships without .d.ts) that the
 * bridge touches, checked structurally at run time before use.
 */
interface BigintSet {
  add(x: bigint): void;
  has(x: bigint): boolean;
  delete(x: bigint): void;
  clear(): void;
}
interface BigintMap {
  get(key: bigint): bigint | undefined;
  set(key: bigint, value: bigint): void;
  delete(key: bigint): void;
}
interface SegmentationLayerLike {
  selectSegment(id: bigint, pin: boolean | "toggle"): void;
  displayState: {
    segmentationGroupState: {
      value: {
        selectedSegments: BigintSet;
        visibleSegments: BigintSet;
        temporaryVisibleSegments: BigintSet;
        useTemporaryVisibleSegments: { value: boolean };
      };
    };
    segmentStatedColors: { value: BigintMap };
    segmentSelectionState: {
      set(id: bigint | null): void;
      readonly value: bigint | undefined;
      changed: { add(listener: () => void): () => void };
    };
  };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

function isSegmentationLayer(layer: unknown): layer is SegmentationLayerLike {
  if (!isObject(layer) || typeof layer.selectSegment !== "function") return false;
  const display = layer.displayState;
  return (
    isObject(display) &&
    isObject(display.segmentationGroupState) &&
    isObject(display.segmentStatedColors) &&
    isObject(display.segmentSelectionState)
  );
}

/** packColor's RGB packing, as the layer's own `segmentColors` JSON is parsed (layer/segmentation). */
function packHex(hex: string): bigint {
  return BigInt(packColor(parseRGBColorSpecification(hex)));
}

/** Global coordinates (units of each dimension's scale, metres per voxel here) to nm along x, y, z. */
function globalToNm(viewer: NgViewer, position: Float32Array): Vec3 | undefined {
  const { names, scales } = viewer.coordinateSpace.value;
  const out: number[] = [NaN, NaN, NaN];
  names.forEach((name, i) => {
    const axis = ["x", "y", "z"].indexOf(name);
    const scale = scales[i];
    const p = position[i];
    if (axis >= 0 && scale !== undefined && p !== undefined) out[axis] = p * scale * 1e9;
  });
  return out.every(Number.isFinite) ? [out[0] ?? 0, out[1] ?? 0, out[2] ?? 0] : undefined;
}

const toId = (x: unknown): number | null => (typeof x === "bigint" || typeof x === "number" ? Number(x) : null);

export function makeBridge(viewer: NgViewer): ViewerBridge {
  const managed = (name: string): ManagedUserLayer | undefined => viewer.layerManager.getLayerByName(name);
  const organelles = (): SegmentationLayerLike | undefined => {
    const layer = managed(ORGANELLES_LAYER)?.layer;
    return isSegmentationLayer(layer) ? layer : undefined;
  };
  const packed = new Map<string, bigint>();
  const pack = (hex: string): bigint => {
    let v = packed.get(hex);
    if (v === undefined) packed.set(hex, (v = packHex(hex)));
    return v;
  };

  const select = (id: number): boolean => {
    const layer = organelles();
    if (!layer) return false;
    const segment = BigInt(id);
    const { selectedSegments, visibleSegments } = layer.displayState.segmentationGroupState.value;
    // A segment outside the visible set would be "selected" yet invisible in the views.
    if (!selectedSegments.has(segment)) selectedSegments.add(segment);
    if (!visibleSegments.has(segment)) visibleSegments.add(segment);
    layer.selectSegment(segment, true);
    layer.displayState.segmentSelectionState.set(segment);
    return true;
  };
  // A row clicked while the organelles layer is still loading (a slow machine, or its source being switched to a
  // new version after an edit) is selected once the layer is there, instead of the click being lost.
  let pendingSelection: number | undefined;
  const retrySelection = () => {
    if (pendingSelection !== undefined && select(pendingSelection)) pendingSelection = undefined;
  };
  viewer.layerManager.layersChanged.add(retrySelection);
  viewer.layerManager.readyStateChanged.add(retrySelection);

  return {
    selectSegment(id) {
      pendingSelection = select(id) ? undefined : id;
    },
    highlightSegment(id) {
      organelles()?.displayState.segmentSelectionState.set(id === null ? null : BigInt(id));
    },
    moveToNm(pointNm: Vec3) {
      const { names, scales, rank } = viewer.coordinateSpace.value;
      const position = Float32Array.from(viewer.position.value);
      if (position.length !== rank) return;
      const axes: Record<string, number> = { x: pointNm[0], y: pointNm[1], z: pointNm[2] };
      names.forEach((name, i) => {
        const nm = axes[name];
        const scale = scales[i];
        // Global coordinates are in units of the dimension's scale (metres per voxel here).
        if (nm !== undefined && scale !== undefined && scale > 0) position[i] = (nm * 1e-9) / scale;
      });
      viewer.position.value = position;
    },
    setSegmentColors(colors) {
      const layer = organelles();
      if (!layer) return false;
      const map = layer.displayState.segmentStatedColors.value;
      for (const [id, hex] of colors) {
        const key = BigInt(id);
        const value = pack(hex);
        // Each change signals a redraw and a state change; skipping no-ops keeps slider drags cheap.
        const current = map.get(key);
        if (current === value) continue;
        // Uint64Map.set only inserts: an existing entry must be removed before it can change.
        if (current !== undefined) map.delete(key);
        map.set(key, value);
      }
      return true;
    },
    showOnlySegments(ids) {
      const layer = organelles();
      if (!layer) return false;
      const group = layer.displayState.segmentationGroupState.value;
      group.temporaryVisibleSegments.clear();
      if (ids === null) {
        group.useTemporaryVisibleSegments.value = false;
        return true;
      }
      for (const id of ids) group.temporaryVisibleSegments.add(BigInt(id));
      group.useTemporaryVisibleSegments.value = true;
      return true;
    },
    onHoveredSegmentChanged(listener) {
      // The organelles layer may load (or be replaced) after the panel subscribes, so the signal
      // is re-attached whenever the layer list changes.
      let attached: SegmentationLayerLike | undefined;
      let detach = (): void => {};
      const attach = (): void => {
        const layer = organelles();
        if (layer === attached) return;
        detach();
        attached = layer;
        if (!layer) {
          detach = () => {};
          return;
        }
        const selection = layer.displayState.segmentSelectionState;
        detach = selection.changed.add(() => {
          const id = selection.value;
          listener(id === undefined ? null : Number(id));
        });
      };
      attach();
      const { layerManager } = viewer;
      const a = layerManager.layersChanged.add(attach);
      const b = layerManager.readyStateChanged.add(attach);
      return () => {
        a();
        b();
        detach();
      };
    },
    layerVisible(name) {
      return managed(name)?.visible;
    },
    setLayerVisible(name, visible) {
      managed(name)?.setVisible(visible);
    },
    onLayersChanged(listener) {
      const { layerManager } = viewer;
      const a = layerManager.layersChanged.add(listener);
      const b = layerManager.readyStateChanged.add(listener);
      return () => {
        a();
        b();
      };
    },
    stateJSON() {
      return viewer.state.toJSON();
    },
    layerSourceUrl(name) {
      return managed(name)?.layer?.dataSources[0]?.spec.url;
    },
    setLayerSourceUrl(name, url) {
      const source = managed(name)?.layer?.dataSources[0];
      if (!source) return false;
      const spec = source.spec;
      if (spec.url === url) return true;
      // What the Source tab does when a URL is edited: the spec keeps transform and subsource choices.
      source.spec = { ...spec, url };
      return true;
    },
    applyEditToSegments(inputs, outputs) {
      const layer = organelles();
      if (!layer) return;
      const group = layer.displayState.segmentationGroupState.value;
      const colors = layer.displayState.segmentStatedColors.value;
      const keep = new Set(outputs);
      const listed = inputs.some((id) => group.selectedSegments.has(BigInt(id)));
      const visible = inputs.some((id) => group.visibleSegments.has(BigInt(id)));
      let color: bigint | undefined;
      for (const id of inputs) color ??= colors.get(BigInt(id));
      for (const id of inputs) {
        if (keep.has(id)) continue;
        const key = BigInt(id);
        group.visibleSegments.delete(key);
        group.selectedSegments.delete(key);
      }
      for (const id of outputs) {
        const key = BigInt(id);
        if (listed && !group.selectedSegments.has(key)) group.selectedSegments.add(key);
        if (visible && !group.visibleSegments.has(key)) group.visibleSegments.add(key);
        if (color !== undefined && colors.get(key) === undefined) colors.set(key, color);
      }
    },
    onSelectedSegmentChanged(listener) {
      const state = viewer.selectionDetailsState;
      let last: number | null | undefined;
      return state.changed.add(() => {
        const layer = managed(ORGANELLES_LAYER)?.layer;
        const entry = state.value?.layers.find((l) => l.layer === layer);
        const id = toId(entry?.state.value);
        if (id === last) return;
        last = id;
        listener(id);
      });
    },
    hoveredSegment() {
      return toId(organelles()?.displayState.segmentSelectionState.value);
    },
    startPointTool(onPoint) {
      const root = viewer.element;
      const onMouseDown = (event: MouseEvent): void => {
        if (event.button !== 0 || event.ctrlKey || event.altKey || event.metaKey) return;
        const target = event.target instanceof Element ? event.target : null;
        if (!target?.closest(".neuroglancer-rendered-data-panel")) return;
        // Neuroglancer would start a drag (pan/rotate); the click belongs to the tool.
        event.stopPropagation();
        event.preventDefault();
        const { mouseState } = viewer;
        // The position follows the last mousemove lazily; force it for this click.
        mouseState.updateUnconditionally();
        if (!mouseState.active) return;
        const nm = globalToNm(viewer, mouseState.position);
        if (nm) onPoint(nm, toId(organelles()?.displayState.segmentSelectionState.value));
      };
      root.addEventListener("mousedown", onMouseDown, true);
      root.classList.add("vemscope-point-tool");
      return () => {
        root.removeEventListener("mousedown", onMouseDown, true);
        root.classList.remove("vemscope-point-tool");
      };
    },
  };
}
