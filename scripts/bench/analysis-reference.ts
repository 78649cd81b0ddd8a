/**
 * The reference side of the analysis bench: one long-lived Python process (scipy, scikit-image) that loads the
 * bench's volumes once from raw files and then runs one timed repetition per command read from stdin, answering
 * one JSON line each. The bench alternates our repetitions with these, so load from other processes on a
 * shared machine falls on both sides alike. Timing inside Python excludes loading and file writing.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";

/** What the bench writes beside classes.raw (and instances.raw when surfaces are measured). */
export interface ReferenceMeta {
  /** [nx, ny, nz]; the raw files are x fastest, so Python reshapes to (nz, ny, nx). */
  shape: readonly [number, number, number];
  /** nm, x y z. */
  spacing: readonly [number, number, number];
  /** Class codes to label one by one. */
  codes: number[];
  /** [id, x0, y0, z0, x1, y1, z1] per object whose surface is measured (bbox end exclusive). */
  objects: number[][];
}

export type ReferenceCommand = "ccl-label" | "ccl-masks" | "edt" | "surface";

export interface ReferenceReply {
  wallS: number;
  cpuS: number;
  /** ccl-*: components per class code. */
  counts?: Record<string, number>;
  /** surface: area per object, in `objects` order. */
  areas?: number[];
}

const PYTHON = String.raw`
import json, sys, time
import numpy as np
from scipy import ndimage as ndi
d = sys.argv[1]
meta = json.load(open(d + "/meta.json"))
nx, ny, nz = meta["shape"]; sx, sy, sz = meta["spacing"]
classes = np.fromfile(d + "/classes.raw", dtype=np.uint8).reshape(nz, ny, nx)
codes = meta["codes"]
# scipy labels a binary image: one label() per class, with the 3x3x3 structure for 26-connectivity.
st = np.ones((3, 3, 3), dtype=bool)
masks = [classes == c for c in codes]
organelles = (classes >= 2).astype(np.uint8)
inst = None
last_edt = None

def ccl_label():
    return {str(c): int(ndi.label(m, structure=st)[1]) for c, m in zip(codes, masks)}

def ccl_masks():
    return {str(c): int(ndi.label(classes == c, structure=st)[1]) for c in codes}

def edt():
    global last_edt
    last_edt = None
    last_edt = ndi.distance_transform_edt(organelles, sampling=(sz, sy, sx))

def surface():
    from skimage import measure
    areas = []
    for k, x0, y0, z0, x1, y1, z1 in meta["objects"]:
        crop = inst[max(z0 - 1, 0):z1 + 1, max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1]
        m = np.pad(crop == k, 1).astype(np.float32)  # background all round, so every mesh closes
        v, f, _, _ = measure.marching_cubes(m, 0.5, spacing=(sz, sy, sx))
        areas.append(float(measure.mesh_surface_area(v, f)))
    return areas

if meta["objects"]:
    inst = np.fromfile(d + "/instances.raw", dtype=np.uint32).reshape(nz, ny, nx)
    from skimage import measure  # imported before any timing
import scipy, skimage
print(json.dumps({"numpy": np.__version__, "scipy": scipy.__version__, "skimage": skimage.__version__}), flush=True)

for line in sys.stdin:
    cmd = line.strip()
    if cmd == "save-edt":
        last_edt.astype(np.float64).tofile(d + "/scipy_edt.raw")
        print("{}", flush=True)
        continue
    f = {"ccl-label": ccl_label, "ccl-masks": ccl_masks, "edt": edt, "surface": surface}[cmd]
    w0 = time.perf_counter(); c0 = time.process_time()
    r = f()
    reply = {"cpuS": time.process_time() - c0, "wallS": time.perf_counter() - w0}
    if cmd.startswith("ccl"): reply["counts"] = r
    if cmd == "surface": reply["areas"] = r
    print(json.dumps(reply), flush=True)
`;

export interface Reference {
  versions: Record<string, string>;
  run(cmd: ReferenceCommand): Promise<ReferenceReply>;
  /** Writes the last EDT as float64 to DIR/scipy_edt.raw, (nz, ny, nx) order. */
  saveEdt(): Promise<string>;
  close(): void;
}

/** The environment for Python: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some hosts) slow numpy; unset together here only. */
function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/** Starts the Python process on DIR (classes.raw and, with objects, instances.raw already written there). */
export async function startReference(dir: string, python: string, meta: ReferenceMeta): Promise<Reference> {
  writeFileSync(path.join(dir, "meta.json"), JSON.stringify(meta));
  writeFileSync(path.join(dir, "reference.py"), PYTHON);
  const proc: ChildProcessWithoutNullStreams = spawn(python, [path.join(dir, "reference.py"), dir], { env: pythonEnv() });
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (s: string) => {
    stderr = (stderr + s).slice(-4000);
  });
  const pending: { resolve(line: string): void; reject(e: Error): void }[] = [];
  let exited: Error | undefined;
  const fail = (e: Error): void => {
    exited = e;
    for (const p of pending.splice(0)) p.reject(e);
  };
  createInterface({ input: proc.stdout }).on("line", (line) => pending.shift()?.resolve(line));
  proc.on("error", (e) => fail(new Error(`cannot start ${python}: ${e.message}`)));
  proc.on("exit", (code) => fail(new Error(`reference process (${python}) exited with ${code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`)));
  const nextLine = (): Promise<string> =>
    exited ? Promise.reject(exited) : new Promise<string>((resolve, reject) => pending.push({ resolve, reject }));

  const versions = JSON.parse(await nextLine()) as Record<string, string>;
  const send = async (cmd: string): Promise<string> => {
    const line = nextLine();
    proc.stdin.write(`${cmd}\n`);
    return line;
  };
  return {
    versions,
    async run(cmd) {
      return JSON.parse(await send(cmd)) as ReferenceReply;
    },
    async saveEdt() {
      await send("save-edt");
      return path.join(dir, "scipy_edt.raw");
    },
    close() {
      proc.removeAllListeners("exit");
      proc.stdin.end();
      proc.kill();
    },
  };
}
