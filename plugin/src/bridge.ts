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

  // Proofreading (panels/proofreading.ts, live.ts)

  /** The data source URL of layer `name` (its first source), undefined while the layer is missing. */
  layerSourceUrl(name: string): string | undefined;
  /**
   * Points layer `name` at another source URL, keeping its transform, segments, colours and display
   * settings: Neuroglancer reloads the data (and meshes). False when the layer is missing.
   */
  setLayerSourceUrl(name: string, url: string): boolean;
  /**
   * After an edit consumed `inputs` and left `outputs`: retired ids leave the organelles layer's
   * segment list, and new ids join it (with the colour of the segment they came from) when any input
   * was listed, so a split does not make the object vanish from the views.
   */
  applyEditToSegments(inputs: readonly number[], outputs: readonly number[]): void;
  /** Follows the viewer's pinned selection in the organelles layer (table row click, ctrl+right-click). */
  onSelectedSegmentChanged(listener: (id: number | null) => void): () => void;
  /** The segment under the mouse (or pinned), null when none. */
  hoveredSegment(): number | null;
  /**
   * While active, a plain left click in a 2D/3D view does not pan: it reports the point under the mouse
   * in nm (and the segment there, when known) instead. Returns the function that ends the tool.
   */
  startPointTool(onPoint: (pointNm: Vec3, segment: number | null) => void): () => void;
}
