import { Writable } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

import type { BlobUpload } from './blob-store.js';
import { PartBuffers } from './part-buffers.js';

export interface S3UploadOptions {
  partSize: number;
  /** Parts sent at once (at least 1). */
  queueSize: number;
  /** Most parts of one upload; default S3's limit, 10,000. */
  maxParts?: number;
}

/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;

/**
 * An upload streamed into an S3 multipart upload (one PutObject when it fits in a part). Written
 * bytes are copied at once into one of `queueSize + 1` part buffers that every part reuses, so
 * memory is `partSize × (queueSize + 1)` whatever the size, and the writer's chunks are garbage as
 * soon as they are copied. (lib-storage's `Upload` keeps every chunk until its part is full, then
 * concatenates them into a new buffer per part, which raised a 172 MB upload's peak RSS by ~30 MB.)
 * Up to `queueSize` parts are sent at once; the SDK retries each from its buffer. The object
 * appears only when the writer ends the stream, which sends the last part and completes the
 * upload before 'finish'; `commit()` waits for that.
 */
export class S3Upload implements BlobUpload {
  readonly stream: Writable;
  /** The upload's outcome: null when the object landed. Never rejects. */
  readonly #outcome: Promise<Error | null>;
  readonly #remove: () => Promise<void>;
  readonly #client: S3Client;
  readonly #target: { Bucket: string; Key: string };
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #maxParts: number;
  readonly #buffers: PartBuffers;
  /** The part being filled, and how many of its bytes are. */
  #current: Buffer | null = null;
  #filled = 0;
  #partsSent = 0;
  readonly #etags: string[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #uploadId: Promise<string> | null = null;
  #completed = false;
  #failure: Error | null = null;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  #committing: Promise<void> | null = null;

  constructor(client: S3Client, bucket: string, objectKey: string, opts: S3UploadOptions, remove: () => Promise<void>) {
    this.#client = client;
    this.#target = { Bucket: bucket, Key: objectKey };
    this.#partSize = opts.partSize;
    if (!Number.isSafeInteger(opts.queueSize) || opts.queueSize < 1) throw new Error(`Invalid upload queue size ${opts.queueSize}`);
    this.#queueSize = opts.queueSize;
    this.#maxParts = opts.maxParts ?? MAX_PARTS;
    this.#buffers = new PartBuffers(opts.partSize, opts.queueSize + 1);
    this.#remove = remove;
    this.stream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.#write(chunk).then(() => callback(), callback);
      },
      final: (callback) => {
        this.#finish().then(() => callback(), callback);
      },
      destroy: (err, callback) => {
        this.#abandon().then(
          () => callback(err),
          () => callback(err),
        );
      },
    });
    // A write error must not crash the process when nobody else listens; commit() reports it.
    this.stream.on('error', () => {});
    this.#outcome = new Promise((resolve) => {
      this.stream.once('close', () => {
        if (this.stream.writableFinished) resolve(null);
        else resolve(this.stream.errored ?? this.#failure ?? new Error('Upload stream closed before it finished'));
      });
    });
  }

  /** Waits for the writer to end the stream and for the upload to complete. */
  commit(): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(new Error(`Upload already ${this.#state}`));
    this.#state = 'committing';
    this.#committing = this.#outcome.then((err) => {
      this.#state = err === null ? 'committed' : 'aborted';
      if (err !== null) throw err;
    });
    return this.#committing;
  }

  /**
   * Fails the stream, which aborts the multipart upload. Never throws; a no-op after a successful
   * commit. Servers without AbortMultipartUpload keep the uploaded parts until a bucket lifecycle
   * rule removes them; they never become an object.
   */
  async abort(): Promise<void> {
    if (this.#state === 'committing') await this.#committing?.catch(() => {});
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    this.stream.destroy(Object.assign(new Error('Upload aborted'), { name: 'AbortError' }));
    // The writer may have ended the stream already, so the object may have landed meanwhile.
    if ((await this.#outcome) === null) await this.#remove().catch(() => {});
  }

  async #write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      // A full part is sent only once more bytes follow: an upload of one part is one PutObject.
      if (this.#filled === this.#partSize) await this.#sendWhenFree();
      this.#current ??= this.#buffers.take();
      const copied = chunk.copy(this.#current, this.#filled, offset);
      this.#filled += copied;
      offset += copied;
    }
  }

  async #finish(): Promise<void> {
    this.#throwIfFailed();
    if (this.#partsSent === 0) {
      const body = this.#current?.subarray(0, this.#filled) ?? Buffer.alloc(0);
      await this.#client.send(new PutObjectCommand({ ...this.#target, Body: body }));
      this.#completed = true;
      return;
    }
    if (this.#filled > 0) await this.#sendWhenFree();
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    this.#throwIfFailed();
    const UploadId = await this.#uploadId!;
    const Parts = this.#etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 }));
    await this.#client.send(new CompleteMultipartUploadCommand({ ...this.#target, UploadId, MultipartUpload: { Parts } }));
    this.#completed = true;
  }

  /** Waits until fewer than `queueSize` parts are in flight, then sends the current one. */
  async #sendWhenFree(): Promise<void> {
    while (this.#inFlight.size >= this.#queueSize) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
    if (this.stream.destroyed) throw new Error('Upload aborted');
    this.#sendPart();
  }

  /** Sends the current part in the background; its buffer goes back to the pool when it is done. */
  #sendPart(): void {
    const buf = this.#current!;
    const bytes = this.#filled;
    this.#current = null;
    this.#filled = 0;
    const PartNumber = ++this.#partsSent;
    if (PartNumber > this.#maxParts) {
      this.#buffers.give(buf);
      const limit = (this.#maxParts * this.#partSize) / 1024 ** 3;
      this.#fail(new Error(`The blob is larger than ${this.#maxParts} parts of ${this.#partSize} bytes (${limit.toFixed(2)} GiB), the multipart limit`));
      return;
    }
    this.#uploadId ??= this.#client.send(new CreateMultipartUploadCommand(this.#target)).then((res) => {
      if (res.UploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
      return res.UploadId;
    });
    const sent = (async () => {
      const UploadId = await this.#uploadId!;
      const res = await this.#client.send(new UploadPartCommand({ ...this.#target, UploadId, PartNumber, Body: buf.subarray(0, bytes) }));
      if (res.ETag === undefined) throw new Error(`UploadPart ${PartNumber} returned no ETag`);
      this.#etags[PartNumber - 1] = res.ETag;
    })()
      .catch((err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.#inFlight.delete(sent);
        this.#buffers.give(buf);
      });
    this.#inFlight.add(sent);
  }

  #throwIfFailed(): void {
    if (this.#failure !== null) throw this.#failure;
  }

  /** Keeps the first failure and fails the stream with it, so a writer waiting on it is not left blocked. */
  #fail(err: Error): void {
    this.#failure ??= err;
    this.stream.destroy(this.#failure);
  }

  /** On destroy: waits for parts in flight, then aborts the multipart upload unless it completed. */
  async #abandon(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    if (this.#completed || this.#uploadId === null) return;
    const UploadId = await this.#uploadId.catch(() => null);
    if (UploadId === null) return;
    await this.#client.send(new AbortMultipartUploadCommand({ ...this.#target, UploadId })).catch(() => {});
  }
}
