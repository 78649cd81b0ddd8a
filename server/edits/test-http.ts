import type { Express } from "express";
import request from "supertest";
import type { Vec3 } from "../../precomputed/array.js";
import { validateInfo, type VolumeInfo } from "../../precomputed/info.js";
import type { Storage } from "../../precomputed/storage.js";
import { readRegion } from "../../precomputed/volume-io.js";

/** Test helper: the layer files of one URL prefix (`/v/3/`, `/precomputed/`) as a read-only Storage over HTTP. */
export function httpStorage(app: Express | string, prefix: string, token?: string): Storage {
  return {
    async get(key: string) {
      let r = request(app).get(`${prefix}${key}`);
      if (token) r = r.set("Authorization", `Bearer ${token}`);
      const res = await r.buffer(true).parse((stream, done) => {
        const parts: Buffer[] = [];
        stream.on("data", (c: Buffer) => parts.push(c));
        stream.on("end", () => done(null, Buffer.concat(parts)));
      });
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw new Error(`GET ${prefix}${key}: ${res.status}`);
      return new Uint8Array(res.body as Buffer);
    },
    async put() {
      throw new Error("read-only");
    },
    async list() {
      return [];
    },
    async delete() {
      throw new Error("read-only");
    },
  };
}

export async function readSegmentation(storage: Storage, scale = 0): Promise<{ info: VolumeInfo; labels: Uint32Array; shape: Vec3 }> {
  const bytes = await storage.get("segmentation/info");
  if (!bytes) throw new Error("no segmentation/info");
  const info = validateInfo(JSON.parse(new TextDecoder().decode(bytes)));
  const s = info.scales[scale];
  const v = await readRegion(storage, "segmentation", info, scale, [0, 0, 0], s.size);
  return { info, labels: v.data as Uint32Array, shape: v.shape };
}
