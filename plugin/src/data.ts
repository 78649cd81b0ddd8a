/** One shared load of the segment table: several panels read it, none should refetch on reopen. */
import { fetchSegments, type SegmentTable } from "./client.js";

let pending: Promise<SegmentTable> | undefined;

export function segmentTable(): Promise<SegmentTable> {
  pending ??= fetchSegments().catch((error: unknown) => {
    // A failed load must be retryable (reopening the panel), not cached forever.
    pending = undefined;
    throw error;
  });
  return pending;
}
