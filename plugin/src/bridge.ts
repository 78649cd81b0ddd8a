/**
 * What the panels need from the viewer, in vemscope terms. Implemented in ng/bridge.ts, the only
 * side that knows Neuroglancer's classes; the panels stay testable and upgrade-proof.
 */
export const ORGANELLES_LAYER = "organelles";
export const CONTACTS_LAYER = "ER contacts";

export type Vec3 = readonly [number, number, number];

export interface ViewerBridge {
  /** Makes `id` the viewer's selected (pinned) segment of the organelles layer, and shows it. */
  selectSegment(id: number): void;
  /** Hover-style highlight of one segment (`null` clears it). */
  highlightSegment(id: number | null): void;
  /** Centres the view on a point given in nanometres. */
  moveToNm(pointNm: Vec3): void;
  /**
   * Sets segment colours (`#rrggbb`) of the organelles layer. Returns false when the layer is
   * not loaded yet; `onLayersChanged` fires when it may be.
   */
  setSegmentColors(colors: ReadonlyMap<number, string>): boolean;
  /**
   * Shows only `ids` of the organelles layer, as Neuroglancer's segment-list query does: a
   * temporary visible set that leaves the saved `segments` untouched, so `null` restores exactly
   * what was shown before. Returns false when the layer is not loaded yet.
   */
  showOnlySegments(ids: readonly number[] | null): boolean;
  /** Follows the segment under the mouse in the 2D/3D views (`null` when none). */
  onHoveredSegmentChanged(listener: (id: number | null) => void): () => void;
  layerVisible(name: string): boolean | undefined;
  setLayerVisible(name: string, visible: boolean): void;
  onLayersChanged(listener: () => void): () => void;
  /** The full viewer state as Neuroglancer serialises it (what a URL or shared state holds). */
  stateJSON(): unknown;
}
