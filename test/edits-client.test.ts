/**
 * The proofreading panel's pure logic (plugin/src/proofreading.ts): which operation Undo and Redo act on,
 * derived from the log, and the versioned source URLs that make Neuroglancer read a version.
 */
import { describe, expect, it } from "vitest";
import { historyEntries, redoCandidate, sourceVersion, undoCandidate, versionedSourceUrl, type Operation } from "../plugin/src/proofreading.js";

const op = (version: number, kind: Operation["kind"], params: unknown = null, inputs: number[] = [], outputs: number[] = []): Operation => ({
  operation_id: version,
  version,
  kind,
  user: "alice",
  time: "",
  base: version - 1,
  inputs,
  outputs,
  params,
});

describe("proofreading client: history", () => {
  it("undo takes the newest edit not undone; redo the newest undone one", () => {
    const log = [op(1, "merge", { segments: [2, 3] }, [2, 3], [2]), op(2, "split", { segment: 8 }, [8], [10, 11])];
    let entries = historyEntries(log);
    expect(entries.map((e) => e.op.version)).toEqual([2, 1]);
    expect(undoCandidate(entries)?.operation_id).toBe(2);
    expect(redoCandidate(entries)).toBeUndefined();

    log.push(op(3, "undo", { operation: 2 }, [10, 11], [8]));
    entries = historyEntries(log);
    expect(entries.find((e) => e.op.operation_id === 2)?.undone).toBe(true);
    expect(undoCandidate(entries)?.operation_id).toBe(1);
    expect(redoCandidate(entries)?.operation_id).toBe(2);

    log.push(op(4, "undo", { operation: 1 }, [2], [2, 3]));
    entries = historyEntries(log);
    expect(undoCandidate(entries)).toBeUndefined();
    // The newest undo names operation 1: that is what Redo brings back first.
    expect(redoCandidate(entries)?.operation_id).toBe(1);

    log.push(op(5, "redo", { operation: 1 }, [2, 3], [2]));
    entries = historyEntries(log);
    expect(entries.find((e) => e.op.operation_id === 1)?.undone).toBe(false);
    expect(undoCandidate(entries)?.operation_id).toBe(1);
    expect(redoCandidate(entries)?.operation_id).toBe(2);
  });
});

describe("proofreading client: versioned sources", () => {
  it("writes the version into the kvstore part of the URL, where Neuroglancer keeps a query", () => {
    const legacy = "precomputed://http://127.0.0.1:8080/precomputed/segmentation";
    const v3 = versionedSourceUrl(legacy, 3);
    // `precomputed://X?q` becomes `X|neuroglancer-precomputed:?q`, whose query Neuroglancer refuses.
    expect(v3).toBe("http://127.0.0.1:8080/precomputed/segmentation/?v=3|neuroglancer-precomputed:");
    expect(sourceVersion(v3)).toBe(3);
    expect(sourceVersion(legacy)).toBeNull();
    const remeasured = versionedSourceUrl(v3, 3, 2);
    expect(remeasured).toBe("http://127.0.0.1:8080/precomputed/segmentation/?v=3&r=2|neuroglancer-precomputed:");
    // A new version drops the re-measurement counter and keeps other parameters (a read token).
    expect(versionedSourceUrl("http://h/precomputed/segmentation/?token=t&v=3&r=2|neuroglancer-precomputed:", 4)).toBe(
      "http://h/precomputed/segmentation/?token=t&v=4|neuroglancer-precomputed:",
    );
  });
});
