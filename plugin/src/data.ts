/** One shared load of the segment table: several panels read it, none should refetch on reopen. */
import { fetchSegments, type SegmentTable } from "./client.js";

let pending: Promise<SegmentTable> | undefined;
const listeners = new Set<(table: SegmentTable) => void>();

export function segmentTable(): Promise<SegmentTable> {
  pending ??= fetchSegments().catch((error: unknown) => {
    // A failed load must be retryable (reopening the panel), not cached forever.
    pending = undefined;
    throw error;
  });
  return pending;
}

let generation = 0;

/**
 * Refetches the table after the segmentation changed (an edit, a re-measurement, a review) and hands the
 * new one to every subscriber. Overlapping refreshes deliver only the newest answer.
 */
export async function refreshSegmentTable(): Promise<SegmentTable> {
  const mine = ++generation;
  pending = undefined;
  const table = await segmentTable();
  if (mine === generation) for (const listener of [...listeners]) listener(table);
  return table;
}

/** Called with each refreshed table (not the first load, which `segmentTable()` gives). */
export function onSegmentTableChanged(listener: (table: SegmentTable) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
