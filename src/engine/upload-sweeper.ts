import { nowSeconds } from '../domain/index.js';
import { uploadPrefix } from '../store/blob-keys.js';
import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore } from '../store/meta-store.js';
import type { Logger } from './engine-context.js';

export interface UploadSweeperDeps {
  store: MetaStore;
  blobs: BlobStore;
  log: Logger;
  intervalMs: number;
  /** Seconds since the epoch (tests). */
  now?: () => number;
}

const PAGE = 200;

/**
 * Housekeeping of the Uploads API, every `intervalMs` on every replica: an upload still pending
 * at its `expires_at` becomes `expired` (a compare-and-set, so in a cluster exactly one replica
 * does it, and never while a completion holds its claim), and its parts' blobs are removed, then
 * their rows. Uploads that left pending with parts still recorded — a completion or cancel
 * whose cleanup was interrupted — are cleaned up the same way.
 */
export class UploadSweeper {
  readonly #deps: UploadSweeperDeps;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;
  #stopped = false;

  constructor(deps: UploadSweeperDeps) {
    this.#deps = deps;
  }

  start(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => void this.sweep(), this.#deps.intervalMs);
    this.#timer.unref();
    void this.sweep();
  }

  /** One pass (never two at once); resolves to the number of uploads this replica expired. Never rejects. */
  sweep(): Promise<number> {
    if (this.#stopped) return Promise.resolve(0);
    this.#running ??= this.#sweep()
      .catch((err: unknown) => {
        this.#deps.log.error({ err }, 'upload sweep failed');
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
    const { store, log } = this.#deps;
    const now = (this.#deps.now ?? nowSeconds)();
    let expired = 0;
    for (;;) {
      const page = await store.uploads.listExpired(now, PAGE);
      let progress = 0;
      for (const u of page) {
        if (this.#stopped) return expired;
        if (!(await store.uploads.expire(u.id, now))) continue; // completed, cancelled or claimed meanwhile, or another replica was first
        progress++;
        expired++;
        log.info({ uploadId: u.id, project: u.project, bytes: u.bytes, expiresAt: u.expiresAt }, 'upload expired');
        await this.#removeParts(u.id);
      }
      if (page.length < PAGE || progress === 0) break;
    }
    for (;;) {
      const ids = await store.uploads.listUnswept(PAGE);
      let progress = 0;
      for (const id of ids) {
        if (this.#stopped) return expired;
        if (await this.#removeParts(id)) progress++;
      }
      if (ids.length < PAGE || progress === 0) break;
    }
    return expired;
  }

  /** Blobs first, then rows: rows left behind mean blobs may still be there (and the next sweep retries). */
  async #removeParts(uploadId: string): Promise<boolean> {
    try {
      await this.#deps.blobs.deletePrefix(uploadPrefix(uploadId));
      await this.#deps.store.uploads.deleteParts(uploadId);
      return true;
    } catch (err) {
      this.#deps.log.warn({ err, uploadId }, 'upload: parts not removed yet (the next sweep retries)');
      return false;
    }
  }
}
