/**
 * Tiles of a section inferred on another grid (segment.ts `inferenceGrid`), cut as the grid is made: the grid's
 * rows come from a RowResampler fed 64-row bands of the z-scored section, and rows no later tile reads are dropped,
 * so a section in flight holds about one row of tiles of its grid (4 bytes a grid pixel) instead of all of it. The
 * values are those of resampling the whole z-scored section at once (RowResampler is exact whatever the bands).
 */
import { zscored } from "./normalise.js";
import { RowResampler } from "./resample.js";
import { extractTile, reflectIndex, type Tile } from "./tiling.js";

const BAND = 64;

/** The lowest and one past the highest grid row a tile reads (reflection past the bottom edge included). */
function rowsRead(t: Tile, height: number): [number, number] {
  let lo = Infinity;
  let hi = -1;
  for (let y = t.y0; y < t.y0 + t.h; y++) {
    const r = reflectIndex(y, height);
    if (r < lo) lo = r;
    if (r > hi) hi = r;
  }
  return [lo, hi + 1];
}

export class ResampledTiles {
  /** Grid rows [first, end), row r at (r - first) * gw. */
  private rows = new Float32Array(0);
  private first = 0;
  private end = 0;
  /** Section rows fed to the resampler. */
  private fed = 0;
  /** Tiles cut so far: they must be asked for in `tiles` order. */
  private next = 0;
  /** Per tile: one past the highest grid row it reads. */
  private readonly readsTo: number[];
  /** Per tile: the lowest grid row it or any later tile reads (what must stay once the tiles before it are cut). */
  private readonly keepFrom: number[];
  private readonly mean: number;
  private readonly inv: number;
  private readonly resampler: RowResampler;
  private readonly band: Float32Array;

  constructor(
    private readonly section: Uint8Array | Uint16Array,
    private readonly W: number,
    private readonly H: number,
    private readonly gw: number,
    private readonly gh: number,
    private readonly tiles: readonly Tile[],
  ) {
    ({ mean: this.mean, inv: this.inv } = zscored(section));
    this.resampler = new RowResampler(1, W, H, gw, gh);
    this.band = new Float32Array(BAND * W);
    const spans = tiles.map((t) => rowsRead(t, gh));
    this.readsTo = spans.map(([, hi]) => hi);
    this.keepFrom = new Array<number>(tiles.length);
    let lowest = gh;
    for (let i = tiles.length - 1; i >= 0; i--) {
      lowest = Math.min(lowest, (spans[i] as [number, number])[0]);
      this.keepFrom[i] = lowest;
    }
  }

  /** The next tile's network input (tiles in plan order: segment.ts cuts them so, one limiter slot each in turn). */
  cut(t: Tile): Float32Array {
    if (t !== this.tiles[this.next]) throw new Error(`ResampledTiles: tile ${t.index} asked for before tile ${this.tiles[this.next]?.index}`);
    const hi = this.readsTo[this.next] as number;
    while (this.end < hi) this.feed();
    const tile = extractTile({ data: this.rows, mean: 0, inv: 1, firstRow: this.first }, this.gw, this.gh, t);
    this.next++;
    this.dropBelow(this.next < this.tiles.length ? (this.keepFrom[this.next] as number) : this.end);
    return tile;
  }

  /** Grid rows held now (for tests of the bound). */
  get heldRows(): number {
    return this.end - this.first;
  }

  private feed(): void {
    const { W, H, section, mean, inv } = this;
    const n = Math.min(BAND, H - this.fed);
    for (let i = 0, j = this.fed * W; i < n * W; i++, j++) this.band[i] = ((section[j] as number) - mean) * inv;
    this.fed += n;
    const r = this.resampler.push(this.band, n, BAND * W);
    const held = (this.end - this.first) * this.gw;
    if (held + r.data.length > this.rows.length) {
      const grown = new Float32Array(held + r.data.length);
      grown.set(this.rows.subarray(0, held));
      this.rows = grown;
    }
    this.rows.set(r.data, held);
    this.end += r.rows;
  }

  private dropBelow(row: number): void {
    if (row <= this.first) return;
    const drop = Math.min(row, this.end) - this.first;
    this.rows.copyWithin(0, drop * this.gw, (this.end - this.first) * this.gw);
    this.first += drop;
  }
}
