/**
 * Test-only: load Neuroglancer's own (browser) modules under Node so our encoders can be checked against the
 * decoders the viewer really runs, rather than against our reading of the spec.
 *
 * Neuroglancer's npm package is built for a bundler: its modules import `.css` and `?raw` `.svg` files, and
 * some touch `window`, `document` or `WebGL2RenderingContext` at import time. Two shims make them loadable:
 *  - a Node module-loader hook that turns `.css` / `.svg` imports into empty modules;
 *  - inert stand-ins for the missing browser globals (every property read yields another stand-in; WebGL
 *    constants yield distinct numbers). The decoders we call are pure and never use them.
 * Vitest leaves node_modules to Node's own loader, so the hook applies to these imports.
 */
import { register } from "node:module";
import type { Storage } from "../storage.js";

const HOOK = `
export async function load(url, context, next) {
  if (/\\.(css|svg)(\\?.*)?$/.test(url)) return { format: "module", source: "export default '';", shortCircuit: true };
  return next(url, context);
}`;

const BROWSER_GLOBALS = [
  "window", "document", "navigator", "HTMLElement", "HTMLDivElement", "HTMLCanvasElement", "Element", "Node",
  "HTMLInputElement", "customElements", "localStorage", "sessionStorage", "location", "ResizeObserver",
  "MutationObserver", "IntersectionObserver", "HTMLSelectElement", "HTMLButtonElement", "HTMLAnchorElement",
  "HTMLLabelElement", "HTMLSpanElement", "HTMLTextAreaElement", "KeyboardEvent", "MouseEvent", "PointerEvent",
  "WheelEvent", "FocusEvent", "InputEvent", "requestAnimationFrame", "cancelAnimationFrame", "getComputedStyle",
  "DOMRect", "DOMParser", "Image", "ImageData", "OffscreenCanvas", "WebGLRenderingContext", "HTMLImageElement",
  "SVGElement", "HTMLTableElement", "HTMLOptionElement", "HTMLDetailsElement", "HTMLTableRowElement", "matchMedia",
  "screen", "history",
];

function inert(): unknown {
  const target = function () {};
  return new Proxy(target, {
    get(t, key) {
      if (key === "prototype") return t.prototype;
      if (key === Symbol.toPrimitive) return () => 0;
      if (key === Symbol.iterator) return function* () {};
      if (typeof key === "symbol" || key === "then") return undefined;
      return inert();
    },
    apply: () => inert(),
    construct: () => inert() as object,
    set: () => true,
  });
}

function installShims(): void {
  const g = globalThis as Record<string, unknown>;
  if (g.__vemscopeNgShims) return;
  g.__vemscopeNgShims = true;
  register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
  const consts = new Map<string, number>();
  g.WebGL2RenderingContext ??= new Proxy(function () {}, {
    get(t, key) {
      if (key === "prototype") return t.prototype;
      if (typeof key !== "string") return undefined;
      let v = consts.get(key);
      if (v === undefined) consts.set(key, (v = 0x1000 + consts.size));
      return v;
    },
  });
  for (const name of BROWSER_GLOBALS) if (!(name in g)) g[name] = inert();
}

/** The slice of a Neuroglancer kvstore read response our fake store has to provide. */
interface NgReadResponse {
  response: Response;
}
export interface NgKvStore {
  store: { read(key: string, options?: unknown): Promise<NgReadResponse | undefined> };
  path: string;
}

/** A Neuroglancer-shaped kvstore over our Storage, rooted at `prefix` (with trailing slash, as Neuroglancer joins). */
export function ngKvStore(storage: Storage, prefix: string): NgKvStore {
  return {
    path: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`,
    store: {
      async read(key: string) {
        const bytes = await storage.get(key);
        return bytes === undefined ? undefined : { response: new Response(new Uint8Array(bytes)) };
      },
    },
  };
}

export interface NgInlineProperty {
  id: string;
  type: string;
  description?: string;
  values: ArrayLike<number> | string[];
  tags?: string[];
  tagDescriptions?: string[];
  dataType?: number;
}
export interface NgSegmentPropertyMap {
  inlineProperties?: { ids: BigUint64Array; properties: NgInlineProperty[] };
}
export interface NgAnnotation {
  id: string;
  point?: Float32Array;
  pointA?: Float32Array;
  pointB?: Float32Array;
  properties: number[];
  relatedSegments?: BigUint64Array[];
}
export interface NgAnnotationGeometryData {
  data: Uint8Array;
  typeToIds: string[][];
  typeToSize: number[];
}
export interface NgPropertySpec {
  id: string;
  type: string;
}
export interface NgPropertySerializer {
  serializedBytes: number;
  propertyGroupBytes: number[];
  deserialize(dv: DataView, offset: number, index: number, count: number, le: boolean, out: number[]): void;
}
export interface NgTypeHandler {
  serializedBytes(rank: number): number;
  deserialize(dv: DataView, offset: number, le: boolean, rank: number, id: string): NgAnnotation;
}
interface NgMethod<Args extends unknown[]> {
  call(self: object, ...args: Args): Promise<void>;
}
export interface NeuroglancerModules {
  getSegmentPropertyMap(json: unknown): NgSegmentPropertyMap;
  AnnotationType: Record<string, number>;
  annotationTypeHandlers: NgTypeHandler[];
  parseAnnotationPropertySpecs(json: unknown): NgPropertySpec[];
  AnnotationPropertySerializer: new (rank: number, geometryBytes: number, specs: NgPropertySpec[]) => NgPropertySerializer;
  coordinateSpaceFromJson(json: unknown): { rank: number; names: string[]; scales: Float64Array; units: string[] };
  /** `PrecomputedAnnotationSpatialIndexSourceBackend.prototype.download`: reads one spatial-index cell. */
  spatialDownload: NgMethod<[chunk: { chunkGridPosition: number[]; data?: NgAnnotationGeometryData }, signal: AbortSignal]>;
  /** `PrecomputedAnnotationSourceBackend.prototype.downloadMetadata`: reads one `by_id` entry. */
  byIdDownload: NgMethod<[chunk: { key: string; annotation?: NgAnnotation | null }, signal: AbortSignal]>;
  /** `PrecomputedAnnotationSourceBackend.prototype.downloadSegmentFilteredGeometry`: reads one relationship index entry. */
  relationshipDownload: NgMethod<
    [chunk: { objectId: bigint; data?: NgAnnotationGeometryData }, relationshipIndex: number, signal: AbortSignal]
  >;
  /** `PrecomputedMeshSource.prototype.download` / `downloadFragment`: legacy mesh manifest and fragment. */
  meshManifestDownload: NgMethod<[chunk: { objectId: bigint; fragmentIds?: string[] }, signal: AbortSignal]>;
  meshFragmentDownload: NgMethod<
    [chunk: { fragmentId: string; meshData?: { vertexPositions: Float32Array; indices: Uint32Array } }, signal: AbortSignal]
  >;
  decodeTriangleVertexPositionsAndIndices(
    data: ArrayBuffer,
    endianness: number,
    vertexByteOffset: number,
    numVertices: number,
  ): { vertexPositions: Float32Array; indices: Uint32Array };
}

type Module = Record<string, unknown>;

async function load(spec: string): Promise<Module> {
  return (await import(spec)) as Module;
}

function member<T>(mod: Module, name: string): T {
  const v = mod[name];
  if (v === undefined) throw new Error(`neuroglancer module lacks ${name}`);
  return v as T;
}

function proto(mod: Module, className: string, method: string): NgMethod<never[]> {
  const cls = member<{ prototype: Record<string, unknown> }>(mod, className);
  const fn = cls.prototype[method];
  if (typeof fn !== "function") throw new Error(`neuroglancer ${className} lacks ${method}`);
  return fn as NgMethod<never[]>;
}

let cached: Promise<NeuroglancerModules> | undefined;

export function loadNeuroglancer(): Promise<NeuroglancerModules> {
  cached ??= (async () => {
    installShims();
    const ng = "neuroglancer/unstable/";
    const frontend = await load(`${ng}datasource/precomputed/frontend.js`);
    const backend = await load(`${ng}datasource/precomputed/backend.js`);
    const annotation = await load(`${ng}annotation/index.js`);
    const coords = await load(`${ng}coordinate_transform.js`);
    const mesh = await load(`${ng}mesh/backend.js`);
    return {
      getSegmentPropertyMap: member(frontend, "getSegmentPropertyMap"),
      AnnotationType: member(annotation, "AnnotationType"),
      annotationTypeHandlers: member(annotation, "annotationTypeHandlers"),
      parseAnnotationPropertySpecs: member(annotation, "parseAnnotationPropertySpecs"),
      AnnotationPropertySerializer: member(annotation, "AnnotationPropertySerializer"),
      coordinateSpaceFromJson: member(coords, "coordinateSpaceFromJson"),
      spatialDownload: proto(backend, "PrecomputedAnnotationSpatialIndexSourceBackend", "download"),
      byIdDownload: proto(backend, "PrecomputedAnnotationSourceBackend", "downloadMetadata"),
      relationshipDownload: proto(backend, "PrecomputedAnnotationSourceBackend", "downloadSegmentFilteredGeometry"),
      meshManifestDownload: proto(backend, "PrecomputedMeshSource", "download"),
      meshFragmentDownload: proto(backend, "PrecomputedMeshSource", "downloadFragment"),
      decodeTriangleVertexPositionsAndIndices: member(mesh, "decodeTriangleVertexPositionsAndIndices"),
    } as NeuroglancerModules;
  })();
  return cached;
}
