import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrecomputedError } from "./errors.js";
import {
  buildSegmentProperties,
  readSegmentProperties,
  validateSegmentProperties,
  writeSegmentProperties,
  type SegmentPropertiesInfo,
} from "./segment-properties.js";
import { LocalStorage } from "./storage.js";
import { loadNeuroglancer, type NeuroglancerModules } from "./testing/neuroglancer-node.js";
import { mulberry32 } from "./testing/random.js";

let ng: NeuroglancerModules;
beforeAll(async () => {
  ng = await loadNeuroglancer();
});

const sample = () =>
  buildSegmentProperties({
    ids: [30, 10n, 2n ** 60n + 1n, 20],
    label: ["mito 30", "er 10", "big", "ld 20"],
    description: ["a", "b", "c", "d"],
    tags: { names: ["mito", "er", "ld", "contact"], descriptions: ["M", "E", "L", "C"], values: [[3, 0], [1], [], [2]] },
    numbers: [
      { id: "volume_nm3", type: "float32", description: "volume", values: [1.5e6, 2.5e7, 0.25, 9e5] },
      { id: "n_contacts", type: "uint16", values: [3, 0, 65535, 1] },
      { id: "offset", type: "int8", values: [-128, 127, 0, -1] },
    ],
    strings: [{ id: "class_name", values: ["mito", "er", "x", "ld"] }],
  });

describe("buildSegmentProperties", () => {
  it("sorts ids, permutes every column with them and writes ids as decimal strings", () => {
    const info = sample();
    expect(info["@type"]).toBe("neuroglancer_segment_properties");
    expect(info.inline?.ids).toEqual(["10", "20", "30", (2n ** 60n + 1n).toString()]);
    const byId = Object.fromEntries((info.inline?.properties ?? []).map((p) => [p.id, p]));
    expect(byId.label.values).toEqual(["er 10", "ld 20", "mito 30", "big"]);
    expect(byId.n_contacts.values).toEqual([0, 1, 3, 65535]);
    // tag indices are emitted increasing, as the spec requires
    expect(byId.tags.values).toEqual([[1], [2], [0, 3], []]);
  });

  it("round-trips through Neuroglancer's own parser with the same values", () => {
    const info = JSON.parse(JSON.stringify(sample())) as unknown;
    const map = ng.getSegmentPropertyMap(info);
    const inline = map.inlineProperties;
    if (!inline) throw new Error("no inline properties");
    expect([...inline.ids]).toEqual([10n, 20n, 30n, 2n ** 60n + 1n]);
    const byId = Object.fromEntries(inline.properties.map((p) => [p.id, p]));
    expect(byId.label.type).toBe("label");
    expect([...(byId.label.values as string[])]).toEqual(["er 10", "ld 20", "mito 30", "big"]);
    expect(byId.volume_nm3.values).toBeInstanceOf(Float32Array);
    expect([...(byId.volume_nm3.values as Float32Array)]).toEqual([2.5e7, 9e5, 1.5e6, 0.25]);
    expect(byId.offset.values).toBeInstanceOf(Int8Array);
    expect([...(byId.offset.values as Int8Array)]).toEqual([127, -1, -128, 0]);
    expect(byId.tags.tags).toEqual(["mito", "er", "ld", "contact"]);
    expect(byId.tags.tagDescriptions).toEqual(["M", "E", "L", "C"]);
    // Neuroglancer packs each id's tag indices into a string of char codes.
    expect(byId.tags.values).toEqual(["\u0001", "\u0002", "\u0000\u0003", ""]);
  });

  it("rejects bad input with invalid_argument", () => {
    const bad = [
      () => buildSegmentProperties({ ids: [1, 1] }),
      () => buildSegmentProperties({ ids: [-1] }),
      () => buildSegmentProperties({ ids: [1.5] }),
      () => buildSegmentProperties({ ids: [2n ** 64n] }),
      () => buildSegmentProperties({ ids: [1, 2], label: ["a"] }),
      () => buildSegmentProperties({ ids: [1], numbers: [{ id: "v", type: "uint8", values: [256] }] }),
      () => buildSegmentProperties({ ids: [1], numbers: [{ id: "v", type: "float32", values: [Number.NaN] }] }),
      () => buildSegmentProperties({ ids: [1], numbers: [{ id: "has space", type: "float32", values: [1] }] }),
      () => buildSegmentProperties({ ids: [1], numbers: [{ id: "label", type: "float32", values: [1] }] }),
      () => buildSegmentProperties({ ids: [1], tags: { names: ["a"], values: [[1]] } }),
      () => buildSegmentProperties({ ids: [1], tags: { names: ["#a"], values: [[0]] } }),
      () => buildSegmentProperties({ ids: [1], tags: { names: ["a", "A"], values: [[0]] } }),
    ];
    for (const f of bad) {
      expect(f).toThrow(PrecomputedError);
      try {
        f();
      } catch (e) {
        expect((e as PrecomputedError).code).toBe("invalid_argument");
      }
    }
  });
});

describe("validateSegmentProperties", () => {
  it("names the JSON path of the problem", () => {
    const info = JSON.parse(JSON.stringify(sample())) as { inline: { properties: { values: unknown[] }[] } };
    info.inline.properties[3].values[2] = "x";
    expect(() => validateSegmentProperties(info)).toThrowError(/inline\.properties\[3\]\.values\[2\]/);
  });

  it("accepts a bare @type without inline properties", () => {
    expect(validateSegmentProperties({ "@type": "neuroglancer_segment_properties" })).toEqual({
      "@type": "neuroglancer_segment_properties",
    });
  });

  it("fuzz: malformed JSON gives PrecomputedError, and whatever Neuroglancer rejects we reject", () => {
    const rand = mulberry32(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const junk: unknown[] = [null, 1, -1, 1.5, "x", "", [], {}, [1], ["1"], [[0]], true, { a: 1 }, "#t", 2 ** 70];
    let rejected = 0;
    let ngRejected = 0;
    for (let trial = 0; trial < 400; ++trial) {
      const json = JSON.parse(JSON.stringify(sample())) as Record<string, unknown>;
      // mutate 1-3 random locations in the tree
      for (let m = 1 + Math.floor(rand() * 3); m > 0; --m) mutate(json, rand, pick, junk);
      let ours: unknown;
      try {
        validateSegmentProperties(json);
        ours = "ok";
      } catch (e) {
        ours = e;
      }
      if (ours !== "ok") {
        expect(ours).toBeInstanceOf(PrecomputedError);
        ++rejected;
      }
      let ngOk = true;
      try {
        ng.getSegmentPropertyMap(json);
      } catch {
        ngOk = false;
      }
      if (!ngOk) {
        ++ngRejected;
        expect(ours, JSON.stringify(json)).not.toBe("ok");
      }
    }
    expect(rejected).toBeGreaterThanOrEqual(100);
    expect(ngRejected).toBeGreaterThanOrEqual(50);
    for (const j of junk) expect(() => validateSegmentProperties(j)).toThrow(PrecomputedError);
  });
});

function mutate(
  node: unknown,
  rand: () => number,
  pick: <T>(xs: readonly T[]) => T,
  junk: unknown[],
): void {
  // Walk down a random path, then replace, delete or truncate what is there.
  let cur = node;
  for (;;) {
    const container = cur as Record<string, unknown> | unknown[];
    const keys: (string | number)[] = Array.isArray(container) ? container.map((_, i) => i) : Object.keys(container);
    if (keys.length === 0) return;
    const key = pick(keys) as string & number;
    const child = (container as Record<string, unknown>)[key];
    const descend = typeof child === "object" && child !== null && rand() < 0.6;
    if (descend) {
      cur = child;
      continue;
    }
    const action = rand();
    if (action < 0.2 && !Array.isArray(container)) delete container[key];
    else if (action < 0.35 && Array.isArray(child)) child.pop();
    else (container as Record<string, unknown>)[key] = structuredClone(pick(junk));
    return;
  }
}

describe("storage", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "segprops-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes <prefix>/info and reads it back", async () => {
    const storage = new LocalStorage(dir);
    const info = sample();
    await writeSegmentProperties(storage, "seg/segment_properties/", info);
    expect(await storage.list("seg/")).toEqual(["seg/segment_properties/info"]);
    const back: SegmentPropertiesInfo = await readSegmentProperties(storage, "seg/segment_properties");
    expect(back).toEqual(JSON.parse(JSON.stringify(info)));
    await storage.put("bad/info", "{not json");
    await expect(readSegmentProperties(storage, "bad")).rejects.toBeInstanceOf(PrecomputedError);
    await expect(readSegmentProperties(storage, "missing")).rejects.toMatchObject({ code: "not_found" });
  });
});
