import { PassThrough } from 'node:stream';

import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

import type { BlobUpload } from './blob-store.js';

export interface S3UploadOptions {
  partSize: number;
  queueSize: number;
}

/**
 * An upload streamed into an S3 multipart upload (lib-storage `Upload`; one PutObject when it is
 * smaller than a part). Memory is about `partSize × (queueSize + 1)`, whatever the size. The
 * object appears only when the upload completes, which the writer's end of the stream triggers;
 * `commit()` waits for that.
 */
export class S3Upload implements BlobUpload {
  readonly stream = new PassThrough();
  /** The upload's outcome: null when the object landed. Never rejects. */
  readonly #outcome: Promise<Error | null>;
  readonly #remove: () => Promise<void>;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  #committing: Promise<void> | null = null;

  constructor(client: S3Client, bucket: string, objectKey: string, opts: S3UploadOptions, remove: () => Promise<void>) {
    this.#remove = remove;
    // A write error must not crash the process when nobody else listens; commit() reports it.
    this.stream.on('error', () => {});
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: objectKey, Body: this.stream },
      partSize: opts.partSize,
      queueSize: opts.queueSize,
    });
    this.#outcome = upload.done().then(
      () => null,
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        // Nobody reads the stream any more: fail the writer instead of leaving it blocked.
        this.stream.destroy(error);
        return error;
      },
    );
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
   * Fails the stream, which makes lib-storage abort the multipart upload. Never throws; a no-op
   * after a successful commit. Servers without AbortMultipartUpload keep the uploaded parts until
   * a bucket lifecycle rule removes them; they never become an object.
   */
  async abort(): Promise<void> {
    if (this.#state === 'committing') await this.#committing?.catch(() => {});
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    this.stream.destroy(Object.assign(new Error('Upload aborted'), { name: 'AbortError' }));
    // The writer may have ended the stream already, so the object may have landed meanwhile.
    if ((await this.#outcome) === null) await this.#remove().catch(() => {});
  }
}
