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

  return {
    selectSegment(id) {
      const layer = organelles();
      if (!layer) return;
      const segment = BigInt(id);
      const { selectedSegments, visibleSegments } = layer.displayState.segmentationGroupState.value;
      // A segment outside the visible set would be "selected" yet invisible in the views.
      if (!selectedSegments.has(segment)) selectedSegments.add(segment);
      if (!visibleSegments.has(segment)) visibleSegments.add(segment);
      layer.selectSegment(segment, true);
      layer.displayState.segmentSelectionState.set(segment);
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
  };
}
