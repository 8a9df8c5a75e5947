import { Readable } from 'node:stream';

import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';

import { assertValidKey, assertValidPrefix } from './blob-key-rules.js';
import type { BlobPart, BlobStore, BlobUpload, SegmentWriter } from './blob-store.js';
import { composeParts } from './compose-parts.js';
import { S3SegmentWriter } from './s3-segment-writer.js';
import { S3Upload, type S3UploadOptions } from './s3-upload.js';
import { normalizeS3Prefix } from './s3-url.js';

export interface S3BlobStoreOptions {
  /** e.g. `http://127.0.0.1:9000` for MinIO; unset for AWS S3. */
  endpoint?: string;
  region: string;
  /** Both or neither; neither uses the SDK's default credential chain (env, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `endpoint/bucket/key` URLs instead of `bucket.endpoint/key`; default: when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes (at least 5 MiB); default 8 MiB. */
  partSize?: number;
  /** Parts uploaded at once per upload; default 2. Memory per upload ≈ partSize × (queueSize + 1). */
  queueSize?: number;
  /** Most parts per upload; default 10,000 (S3's limit; 78 GiB at 8 MiB parts). */
  maxParts?: number;
  /** Keys per ListObjectsV2 / DeleteObjects page in `deletePrefix` (at most 1000, the default). */
  pageSize?: number;
}

/**
 * BlobStore on an S3-compatible bucket; a blob key is an object key under `prefix`. Appends are
 * not durable before `seal()` (see blob-store.ts). There are no temp files: an interrupted upload
 * is an incomplete multipart upload, invisible to readers, which only a bucket lifecycle rule
 * (AbortIncompleteMultipartUpload) removes — configure one.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly durableAppend = false;
  readonly bucket: string;
  /** '' or ending with '/'. */
  readonly prefix: string;
  readonly client: S3Client;
  readonly #upload: S3UploadOptions;
  readonly #pageSize: number;

  constructor(bucket: string, prefix: string, opts: S3BlobStoreOptions) {
    if ((opts.accessKeyId === undefined) !== (opts.secretAccessKey === undefined)) {
      throw new Error('S3BlobStore: give both accessKeyId and secretAccessKey, or neither');
    }
    this.bucket = bucket;
    this.prefix = normalizeS3Prefix(prefix);
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      credentials:
        opts.accessKeyId !== undefined && opts.secretAccessKey !== undefined
          ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }
          : undefined,
      // The SDK's default flexible checksums (x-amz-checksum-crc32 on every PUT, since 3.729) are
      // refused by several S3-compatible services (aws-sdk-js-v3#6810); SigV4 and TLS remain.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.#upload = { partSize: opts.partSize ?? 8 * 1024 * 1024, queueSize: opts.queueSize ?? 2, maxParts: opts.maxParts };
    this.#pageSize = opts.pageSize ?? 1000;
  }

  createUpload(key: string): BlobUpload {
    return new S3Upload(this.client, this.bucket, this.#objectKey(key), this.#upload, () => this.delete(key));
  }

  openRead(key: string, opts: { start?: number; end?: number } = {}): Readable {
    const params = { Bucket: this.bucket, Key: this.#objectKey(key) };
    const { start, end } = opts;
    const range = start === undefined && end === undefined ? undefined : `bytes=${start ?? 0}-${end ?? ''}`;
    const client = this.client;
    async function* body(): AsyncGenerator<Buffer> {
      let res;
      try {
        res = await client.send(new GetObjectCommand({ ...params, Range: range }));
      } catch (err) {
        if (s3Error(err, 'InvalidRange', 416)) return; // starts past the end: nothing, as on disk
        if (s3Error(err, 'NoSuchKey')) throw Object.assign(new Error(`No such blob: ${key}`), { code: 'ENOENT', cause: err });
        throw err;
      }
      if (!(res.Body instanceof Readable)) throw new Error(`GetObject ${key}: no body stream`);
      // Some servers widen a range (s3rver answers bytes=0-0 with everything): never hand out more.
      let left = end === undefined ? Infinity : end - (start ?? 0) + 1;
      for await (const chunk of res.Body as AsyncIterable<Buffer>) {
        if (chunk.length >= left) {
          if (left > 0) yield chunk.subarray(0, left);
          return;
        }
        left -= chunk.length;
        yield chunk;
      }
    }
    return Readable.from(body(), { objectMode: false });
  }

  async size(key: string): Promise<number | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) }));
      return res.ContentLength ?? 0;
    } catch (err) {
      if (s3Error(err, 'NotFound', 404)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) }));
  }

  async deletePrefix(prefix: string): Promise<number> {
    assertValidPrefix(prefix);
    let deleted = 0;
    const pages = paginateListObjectsV2({ client: this.client, pageSize: this.#pageSize }, { Bucket: this.bucket, Prefix: this.prefix + prefix });
    for await (const page of pages) {
      const objects = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
      if (objects.length === 0) continue;
      const res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: objects, Quiet: true } }));
      const failed = res.Errors ?? [];
      if (failed.length > 0) throw new Error(`Could not delete ${failed.length} blobs under ${prefix}: ${failed[0]!.Code} ${failed[0]!.Message}`);
      deleted += objects.length;
    }
    return deleted;
  }

  openSegment(key: string): SegmentWriter {
    const Key = this.#objectKey(key);
    return new S3SegmentWriter(
      key,
      async (body) => {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body }));
      },
      () => this.delete(key),
    );
  }

  compose(key: string, parts: readonly BlobPart[]): Promise<number> {
    return composeParts(this, key, parts);
  }

  /** S3 has no bound to report. */
  freeBytes(): Promise<null> {
    return Promise.resolve(null);
  }

  /** S3 has no temp files (see the class comment); always 0. */
  cleanTemp(_olderThanMs: number): Promise<number> {
    return Promise.resolve(0);
  }

  /** Closes the client's sockets. */
  async close(): Promise<void> {
    this.client.destroy();
  }

  #objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }
}

function s3Error(err: unknown, name: string, status?: number): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === name || (status !== undefined && err.$metadata.httpStatusCode === status);
}
