import { gunzipSync, gzipSync } from "node:zlib";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { PrecomputedError } from "../../precomputed/errors.js";
import { checkKey, checkRange, type PutOptions, type Storage } from "../../precomputed/storage.js";

/**
 * Storage on S3 or an S3-compatible server (MinIO, Ceph, s3rver) for `s3://bucket/prefix`.
 * An S3 PUT replaces an object in one step, so writes are atomic as LocalStorage's are. gzip objects keep
 * their key and carry `Content-Encoding: gzip` (cloud-volume's layout), so an HTTP front can serve them as is.
 */

export interface S3StorageOptions {
  /** e.g. http://127.0.0.1:9000; default $VEMSCOPE_S3_ENDPOINT, else AWS. */
  endpoint?: string;
  /** Path-style URLs (bucket in the path): what self-hosted servers need. Default: on when an endpoint is set. */
  forcePathStyle?: boolean;
  region?: string;
  credentials?: S3ClientConfig["credentials"];
  /** A client to share (connection reuse across many storages). */
  client?: S3Client;
  /** Keys per ListObjects page (S3's maximum and default is 1000). */
  listPageSize?: number;
}

/** Options from the environment: VEMSCOPE_S3_ENDPOINT (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), VEMSCOPE_S3_FORCE_PATH_STYLE=0|1, AWS_REGION; keys via the SDK's usual chain. */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): S3StorageOptions {
  // The AWS SDK's own variables for a custom endpoint are honoured too (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL).
  const endpoint = env.VEMSCOPE_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const fps = env.VEMSCOPE_S3_FORCE_PATH_STYLE;
  return {
    endpoint,
    forcePathStyle: fps === undefined || fps === "" ? endpoint !== undefined : fps !== "0" && fps.toLowerCase() !== "false",
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
  };
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw new PrecomputedError("invalid_argument", "expected s3://bucket[/prefix] with a valid bucket name", url);
  }
  return { bucket: m[1], prefix: m[2].replace(/\/+$/, "") };
}

interface S3Failure {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}
const status = (e: unknown): number | undefined => (e as S3Failure).$metadata?.httpStatusCode;
const isMissing = (e: unknown): boolean => status(e) === 404 || (e as S3Failure).name === "NoSuchKey";

export class S3Storage implements Storage {
  readonly client: S3Client;
  private readonly listPageSize: number | undefined;
  constructor(
    readonly bucket: string,
    /** Key prefix inside the bucket, without trailing slash; "" for the bucket root. */
    readonly prefix: string,
    options: S3StorageOptions = s3OptionsFromEnv(),
  ) {
    this.listPageSize = options.listPageSize;
    this.client =
      options.client ??
      new S3Client({
        endpoint: options.endpoint,
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
        region: options.region ?? "us-east-1",
        ...(options.credentials ? { credentials: options.credentials } : {}),
      });
  }

  static fromUrl(url: string, options?: S3StorageOptions): S3Storage {
    const { bucket, prefix } = parseS3Url(url);
    return new S3Storage(bucket, prefix, options);
  }

  get url(): string {
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
  }

  private objectKey(key: string): string {
    checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private fail(what: string, key: string, e: unknown): never {
    throw new PrecomputedError("io", `cannot ${what} ${this.url}/${key}: ${(e as Error).message}`, key, { cause: e });
  }

  private async fetch(key: string, range?: string): Promise<GetObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Range: range }));
    } catch (e) {
      if (e instanceof PrecomputedError) throw e;
      if (isMissing(e)) return undefined;
      if (range && status(e) === 416) return undefined;
      return this.fail("read", key, e);
    }
  }

  private async body(res: GetObjectCommandOutput, key: string): Promise<Uint8Array> {
    try {
      const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
      return res.ContentEncoding === "gzip" ? new Uint8Array(gunzipSync(bytes)) : bytes;
    } catch (e) {
      return this.fail("read", key, e);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const res = await this.fetch(key);
    return res && this.body(res, key);
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined> {
    checkRange(start, end, key);
    if (start === end) return (await this.get(key)) && new Uint8Array(0);
    const res = await this.fetch(key, `bytes=${start}-${end - 1}`);
    // 416 (start past the stored bytes) needs a whole read: the object may be gzip, its plain bytes longer.
    if (res === undefined) return (await this.get(key))?.slice(start, end);
    // A range of a gzip object is a range of its compressed bytes; ranges are over the plain bytes.
    if (res.ContentEncoding === "gzip") return (await this.get(key))?.slice(start, end);
    return this.body(res, key);
  }

  async put(key: string, data: Uint8Array | string, options: PutOptions = {}): Promise<void> {
    const plain = typeof data === "string" ? Buffer.from(data) : data;
    const gzip = options.contentEncoding === "gzip";
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          Body: gzip ? gzipSync(plain) : plain,
          ContentType: typeof data === "string" ? "application/json" : "application/octet-stream",
          ...(gzip ? { ContentEncoding: "gzip" } : {}),
        }),
      );
    } catch (e) {
      if (e instanceof PrecomputedError) throw e;
      this.fail("write", key, e);
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listObjects(prefix)).map((o) => o.key);
  }

  /**
   * Keys under `prefix` (relative to this storage, sorted) with their sizes and ETags: what identifies an
   * object's content without reading it (resumable runs fingerprint s3:// inputs with it).
   */
  async listObjects(prefix: string): Promise<{ key: string; size: number; etag: string }[]> {
    const base = this.prefix ? `${this.prefix}/` : "";
    const out: { key: string; size: number; etag: string }[] = [];
    // ListObjects (v1) paged by Marker = last key seen: every S3-compatible server has it, while v2's
    // continuation tokens break on s3rver (it encrypts them with DES, which OpenSSL 3 no longer offers).
    let after: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: base + prefix, Marker: after, MaxKeys: this.listPageSize }));
      } catch (e) {
        return this.fail("list", prefix || ".", e);
      }
      const objects = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ key: o.Key, size: o.Size ?? 0, etag: o.ETag ?? "" }] : []));
      for (const o of objects) out.push({ ...o, key: o.key.slice(base.length) });
      if (!page.IsTruncated || objects.length === 0) break;
      after = objects[objects.length - 1].key;
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (e) {
      if (e instanceof PrecomputedError) throw e;
      if (!isMissing(e)) this.fail("delete", key, e);
    }
  }

  /** Closes the client's sockets (only call when the client is not shared). */
  close(): void {
    this.client.destroy();
  }
}
