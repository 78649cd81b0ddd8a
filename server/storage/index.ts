import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { PrecomputedError } from "../../precomputed/errors.js";
import { LocalStorage, type Storage } from "../../precomputed/storage.js";
import { S3Storage, type S3StorageOptions } from "./s3-storage.js";

export { S3Storage, parseS3Url, s3OptionsFromEnv, type S3StorageOptions } from "./s3-storage.js";

/**
 * The Storage for a location: `s3://bucket/prefix` (S3 or, with VEMSCOPE_S3_ENDPOINT, any S3-compatible
 * server), `file:///abs/path`, or a plain local path (resolved against the working directory).
 */
export function storageFor(url: string, s3?: S3StorageOptions): Storage {
  if (url.startsWith("s3://")) return S3Storage.fromUrl(url, s3);
  if (url.startsWith("file://")) return new LocalStorage(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new PrecomputedError("unsupported", "storage URLs are s3://bucket/prefix, file:///path or a local path", url);
  }
  if (url.length === 0) throw new PrecomputedError("invalid_argument", "empty storage location");
  return new LocalStorage(path.resolve(url));
}
