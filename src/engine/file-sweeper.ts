import { type FileRecord, nowSeconds } from '../domain/index.js';
import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore } from '../store/meta-store.js';
import type { Logger } from './engine-context.js';

export interface FileSweeperDeps {
  store: MetaStore;
  blobs: BlobStore;
  log: Logger;
  intervalMs: number;
  /** Called after each file removed (metrics). */
  onDeleted?: (file: FileRecord) => void;
}

const PAGE = 200;

/**
 * Deletes expired files (row, then bytes) every `intervalMs`. A file that an unfinished batch
 * reads is never removed: the store checks that in the same write as the delete, so a batch
 * created meanwhile keeps its input; the file goes at the first sweep after the batch ends.
 * Output/error files only exist once their batch is finished, so nothing running needs them.
 */
export class FileSweeper {
  readonly #deps: FileSweeperDeps;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;
  #stopped = false;

  constructor(deps: FileSweeperDeps) {
    this.#deps = deps;
  }

  start(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => void this.sweep(), this.#deps.intervalMs);
    this.#timer.unref();
    void this.sweep();
  }

  /** One pass (never two at once); resolves to the number of files removed. Never rejects. */
  sweep(): Promise<number> {
    if (this.#stopped) return Promise.resolve(0);
    this.#running ??= this.#sweep()
      .catch((err: unknown) => {
        this.#deps.log.error({ err }, 'file sweep failed');
        return 0;
      })
      .finally(() => {
        this.#running = null;
      });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  async #sweep(): Promise<number> {
    const { store, blobs, log, onDeleted } = this.#deps;
    const now = nowSeconds();
    let removed = 0;
    for (;;) {
      const page = await store.listExpiredFiles(now, PAGE);
      let progress = 0;
      for (const f of page) {
        if (this.#stopped) return removed;
        if (!(await store.deleteExpiredFile(f.id, now))) continue; // taken by a batch meanwhile
        progress++;
        try {
          await blobs.delete(f.blobKey);
        } catch (err) {
          log.warn({ err, fileId: f.id }, 'expired file: row removed but its bytes could not be deleted');
        }
        removed++;
        log.info({ fileId: f.id, purpose: f.purpose, bytes: f.bytes, expiresAt: f.expiresAt }, 'file expired and deleted');
        onDeleted?.(f);
      }
      if (page.length < PAGE || progress === 0) return removed;
    }
  }
}
