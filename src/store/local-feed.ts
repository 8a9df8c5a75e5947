import type { StoreEvent } from './meta-store.js';

/**
 * The change feed of a store used by one process: listeners are called synchronously after each
 * write. A throwing listener is reported and never breaks the write that emitted.
 */
export class LocalFeed {
  readonly #listeners = new Set<(e: StoreEvent) => void>();

  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(e: StoreEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch (err) {
        process.emitWarning(`Store feed listener threw on ${e.type}: ${String(err)}`);
      }
    }
  }
}
