import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { finished } from 'node:stream/promises';

import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';

import { assertValidKey, assertValidPrefix } from './blob-key-rules.js';
import type { BlobPart, BlobStore, BlobUpload, SegmentWriter } from './blob-store.js';
import { decodeManifest, encodeManifest, type Manifest, MANIFEST_META, partRanges } from './s3-manifest.js';
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
  readonly composeByReference = true;
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
    return new S3Upload(this.client, this.bucket, this.#objectKey(key), this.#upload, () => this.#deleteObject(key));
  }

  openRead(key: string, opts: { start?: number; end?: number } = {}): Readable {
    assertValidKey(key); // here, not later in the stream
    return Readable.from(this.#read(key, opts.start ?? 0, opts.end), { objectMode: false });
  }

  async size(key: string): Promise<number | null> {
    const head = await this.#head(key);
    if (head === null) return null;
    const composed = head.Metadata?.[MANIFEST_META];
    return composed !== undefined ? Number(composed) : (head.ContentLength ?? 0);
  }

  /** A composed blob takes its parts with it (see `compose`). */
  async delete(key: string): Promise<void> {
    const head = await this.#head(key);
    if (head === null) return;
    if (head.Metadata?.[MANIFEST_META] !== undefined) {
      // Parts first: if this fails half-way, the manifest is still there for a retry to finish.
      const parts = (await this.#readManifest(key)).parts.map((p) => this.#objectKey(p.key));
      for (let i = 0; i < parts.length; i += this.#pageSize) await this.#deleteObjects(parts.slice(i, i + this.#pageSize), key);
    }
    await this.#deleteObject(key);
  }

  async deletePrefix(prefix: string, keep: ReadonlySet<string> = new Set()): Promise<number> {
    assertValidPrefix(prefix);
    let deleted = 0;
    for await (const page of this.#list(prefix)) {
      // Listed keys as they are: whatever else sits under the prefix goes too, valid blob key or not.
      const keys = page.flatMap((o) => (keep.has(o.key) ? [] : [this.prefix + o.key]));
      if (keys.length === 0) continue;
      await this.#deleteObjects(keys, prefix);
      deleted += keys.length;
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
      () => this.#deleteObject(key),
    );
  }

  /**
   * By reference: checks each part's size, then writes a manifest at `key` (s3-manifest.ts) that
   * reads resolve to the parts' bytes, so nothing is copied. The parts then belong to `key`, and
   * must be plain blobs (uploads or segments), not composed ones.
   */
  async compose(key: string, parts: readonly BlobPart[]): Promise<number> {
    assertValidKey(key);
    for (const p of parts) {
      assertValidKey(p.key);
      if (!Number.isSafeInteger(p.bytes) || p.bytes < 0) throw new Error(`Invalid byte count ${p.bytes} for part ${p.key}`);
    }
    const used = parts.filter((p) => p.bytes > 0);
    const sizes = await this.#sizesOf(used.map((p) => p.key));
    for (const p of used) {
      const size = sizes.get(p.key);
      if (size === undefined) throw noSuchBlob(p.key);
      if (size < p.bytes) throw new Error(`Part ${p.key} has ${size} bytes, fewer than the ${p.bytes} to compose`);
    }
    const { body, bytes } = encodeManifest(used);
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key), Body: body, ContentType: 'application/json', Metadata: { [MANIFEST_META]: String(bytes) } }),
    );
    return bytes;
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

  async *#read(key: string, start: number, end: number | undefined): AsyncGenerator<Buffer> {
    const res = await this.#get(key, start, end);
    if (res === null) {
      // Starts past the end: nothing, as on disk. Unless the key is a manifest shorter than `start`.
      const manifest = await this.#manifestOf(key);
      if (manifest !== null) yield* this.#readComposed(key, manifest, start, end);
      return;
    }
    if (res.Metadata?.[MANIFEST_META] !== undefined) {
      let manifest;
      if (isWhole(res)) {
        manifest = decodeManifest(await buffer(res.Body), key); // the range covered all of the manifest
      } else {
        await finished(res.Body.resume()); // a piece of the manifest: drain it, keep the socket
        manifest = await this.#readManifest(key);
      }
      yield* this.#readComposed(key, manifest, start, end);
      return;
    }
    yield* limited(res.Body, end === undefined ? Infinity : end - start + 1);
  }

  /** GetObject of [start, end]; null when the range starts past the end. `what` names the key in a missing-blob error. */
  async #get(key: string, start: number, end: number | undefined, what = key): Promise<GetResult | null> {
    const range = start === 0 && end === undefined ? undefined : `bytes=${start}-${end ?? ''}`;
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key), Range: range }));
    } catch (err) {
      if (s3Error(err, 'InvalidRange', 416)) return null;
      if (s3Error(err, 'NoSuchKey')) throw noSuchBlob(what, err);
      throw err;
    }
    if (!(res.Body instanceof Readable)) throw new Error(`GetObject ${key}: no body stream`);
    return res as GetResult;
  }

  /** Sizes of the existing keys among `keys`: one listing per folder they are in (1000 keys a page), not a HEAD each. */
  async #sizesOf(keys: readonly string[]): Promise<Map<string, number>> {
    const wanted = new Set(keys);
    const sizes = new Map<string, number>();
    for (const folder of new Set(keys.map((k) => k.slice(0, k.lastIndexOf('/') + 1)))) {
      for await (const page of this.#list(folder, '/')) for (const o of page) if (wanted.has(o.key)) sizes.set(o.key, o.size);
    }
    return sizes;
  }

  /** Pages of the blobs under `prefix` (only its direct children with `delimiter` '/'), as keys of this store. */
  async *#list(prefix: string, delimiter?: string): AsyncGenerator<Array<{ key: string; size: number }>> {
    const pages = paginateListObjectsV2({ client: this.client, pageSize: this.#pageSize }, { Bucket: this.bucket, Prefix: this.prefix + prefix, Delimiter: delimiter });
    for await (const page of pages) {
      yield (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 }]));
    }
  }

  async #head(key: string): Promise<HeadObjectCommandOutput | null> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) }));
    } catch (err) {
      if (s3Error(err, 'NotFound', 404)) return null;
      throw err;
    }
  }

  async #readManifest(key: string): Promise<Manifest> {
    const res = await this.#get(key, 0, undefined);
    if (res === null || res.Metadata?.[MANIFEST_META] === undefined) throw new Error(`Blob ${key} was replaced while it was read`);
    return decodeManifest(await buffer(res.Body), key);
  }

  async #manifestOf(key: string): Promise<Manifest | null> {
    const head = await this.#head(key);
    return head?.Metadata?.[MANIFEST_META] === undefined ? null : this.#readManifest(key);
  }

  /**
   * The range of a composed blob, part after part. Each GET costs a round trip before its first
   * byte, so the next READ_AHEAD parts' requests are sent while one streams (their responses wait
   * unread, a socket buffer each).
   */
  async *#readComposed(key: string, manifest: Manifest, start: number, end: number | undefined): AsyncGenerator<Buffer> {
    const pieces = [...partRanges(manifest, start, end ?? Infinity)];
    const request = (i: number): Promise<GetResult | null> => {
      const p = pieces[i]!;
      const res = this.#get(p.key, p.start, p.end, `${p.key} (part of ${key})`);
      res.catch(() => undefined); // awaited in turn below; never an unhandled rejection meanwhile
      return res;
    };
    const ahead: Array<Promise<GetResult | null>> = [];
    let sent = 0;
    try {
      for (let i = 0; i < pieces.length; i++) {
        while (sent < pieces.length && sent <= i + READ_AHEAD) ahead.push(request(sent++));
        const res = await ahead.shift()!;
        const want = pieces[i]!.end - pieces[i]!.start + 1;
        let got = 0;
        if (res !== null) {
          for await (const chunk of limited(res.Body, want)) {
            got += chunk.length;
            yield chunk;
          }
        }
        if (got !== want) throw new Error(`Part ${pieces[i]!.key} of ${key} has fewer bytes than its manifest says`);
      }
    } finally {
      // Ended early (an error, or the reader went away): the requests sent ahead must not hold their sockets.
      for (const p of ahead) void p.then((r) => r?.Body.destroy(), () => undefined);
    }
  }

  async #deleteObject(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) }));
  }

  /** One DeleteObjects of full object keys (at most 1000). */
  async #deleteObjects(objectKeys: readonly string[], what: string): Promise<void> {
    const res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: objectKeys.map((Key) => ({ Key })), Quiet: true } }));
    const failed = res.Errors ?? [];
    if (failed.length > 0) throw new Error(`Could not delete ${failed.length} blobs of ${what}: ${failed[0]!.Code} ${failed[0]!.Message}`);
  }

  #objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }
}

type GetResult = GetObjectCommandOutput & { Body: Readable };

const READ_AHEAD = 4;

/** The response holds the whole object: no Content-Range (a 200), or one from 0 to its last byte. */
function isWhole(res: GetResult): boolean {
  if (res.ContentRange === undefined) return true;
  const m = /^bytes 0-(\d+)\/(\d+)$/.exec(res.ContentRange);
  return m !== null && Number(m[1]) + 1 === Number(m[2]);
}

const noSuchBlob = (key: string, cause?: unknown): Error => Object.assign(new Error(`No such blob: ${key}`), { code: 'ENOENT', cause });

/** At most `left` bytes of `body` (some servers widen a range: s3rver answers bytes=0-0 with everything). */
async function* limited(body: AsyncIterable<Buffer>, left: number): AsyncGenerator<Buffer> {
  for await (const chunk of body) {
    if (chunk.length >= left) {
      if (left > 0) yield chunk.subarray(0, left);
      return;
    }
    left -= chunk.length;
    yield chunk;
  }
}

function s3Error(err: unknown, name: string, status?: number): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.name === name || (status !== undefined && err.$metadata.httpStatusCode === status);
}
