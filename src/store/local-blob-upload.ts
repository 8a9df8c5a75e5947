import type { WriteStream } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { finished } from 'node:stream/promises';

import type { BlobUpload } from './blob-store.js';
import { syncDir } from './local-blob-fs.js';

/** An upload into a temp file that is fsynced and renamed to its target on commit. */
export class LocalUpload implements BlobUpload {
  readonly stream: WriteStream;
  readonly #tmp: string;
  readonly #target: string;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  #committing: Promise<void> | null = null;

  constructor(stream: WriteStream, tmp: string, target: string) {
    this.stream = stream;
    this.#tmp = tmp;
    this.#target = target;
    // A write error must not crash the process when nobody else listens; commit() reports it.
    stream.on('error', () => {});
  }

  /** Waits for the writer to end the stream (it does not end it), fsyncs and renames into place. */
  commit(): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(new Error(`Upload already ${this.#state}`));
    this.#state = 'committing';
    this.#committing = this.#commit().then(
      () => {
        this.#state = 'committed';
      },
      async (err: unknown) => {
        this.#state = 'aborted';
        await this.#discard();
        throw err;
      },
    );
    return this.#committing;
  }

  async #commit(): Promise<void> {
    await finished(this.stream); // rejects on a stream error or a destroy before 'finish'
    await this.#closed();
    const fh = await open(this.#tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dir = dirname(this.#target);
    await mkdir(dir, { recursive: true });
    await rename(this.#tmp, this.#target);
    await syncDir(dir);
  }

  /** Removes the temp file. Never throws; a no-op after a successful commit. */
  async abort(): Promise<void> {
    if (this.#state === 'committing') await this.#committing?.catch(() => {});
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    await this.#discard();
  }

  async #discard(): Promise<void> {
    this.stream.destroy();
    // The file may still be being opened: unlink only once the stream has released it.
    await this.#closed();
    await unlink(this.#tmp).catch(() => {});
  }

  async #closed(): Promise<void> {
    if (this.stream.closed) return;
    await new Promise<void>((done) => this.stream.once('close', () => done()));
  }
}
