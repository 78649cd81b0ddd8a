/** Reading back run outputs in tests: file lists, the morphometrics table, a layer's validated info. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { validateInfo } from "../../precomputed/info.js";
import type { LocalStorage } from "../../precomputed/storage.js";

export async function infoOf(storage: LocalStorage, layer: string) {
  return validateInfo(JSON.parse(new TextDecoder().decode(await storage.get(`${layer}/info`))));
}

/** Every file under root/sub, as paths relative to root, sorted. */
export function files(root: string, sub: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(root, rel))) {
      const r = path.join(rel, name);
      if (statSync(path.join(root, r)).isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk(sub);
  return out.sort();
}

/** report/morphometrics.csv of an output folder as one record per row (values as written). */
export function csvRows(out: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(path.join(out, "report", "morphometrics.csv"), "utf8").trim().split("\n");
  const cols = head.split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
}
