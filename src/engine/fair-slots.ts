/**
 * MAX_WORKERS upstream slots shared fairly between batches.
 *
 * A batch asks for one slot per request it wants to send. When slots are free the caller gets one
 * at once; otherwise it waits in its batch's own FIFO. A freed slot goes to the next batch in
 * round-robin order among batches that are waiting, so a 10-line batch gets as many slots per
 * turn as a 50,000-line one and is never stuck behind it.
 */
export class FairSlots {
  #free: number;
  #capacity: number;
  /** Batches with waiters, in round-robin order. */
  readonly #ring: string[] = [];
  readonly #waiters = new Map<string, Array<() => void>>();
  readonly #held = new Map<string, number>();

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#free = capacity;
  }

  get capacity(): number {
    return this.#capacity;
  }

  get inUse(): number {
    return this.#capacity - this.#free;
  }

  /**
   * Changes the number of slots (MAX_WORKERS=auto follows the upstreams' limits). Growing hands
   * the new slots to waiters at once; shrinking takes effect as held slots are released (nothing
   * in flight is interrupted), so `inUse` may exceed `capacity` for a while.
   */
  setCapacity(capacity: number): void {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`FairSlots.setCapacity: ${capacity} is not a positive integer`);
    this.#free += capacity - this.#capacity;
    this.#capacity = capacity;
    this.#dispatch();
  }

  heldBy(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /** Resolves when a slot is held by `key`; rejects with `signal.reason` if aborted first. */
  acquire(key: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.#free > 0 && this.#ring.length === 0) {
      this.#take(key);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let queue = this.#waiters.get(key);
      if (!queue) {
        queue = [];
        this.#waiters.set(key, queue);
        this.#ring.push(key);
      }
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const q = this.#waiters.get(key);
        const i = q ? q.indexOf(grant) : -1;
        if (q && i >= 0) {
          q.splice(i, 1);
          if (q.length === 0) this.#dropKey(key);
        }
        reject(signal!.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(grant);
      this.#dispatch();
    });
  }

  release(key: string): void {
    const held = this.#held.get(key) ?? 0;
    if (held <= 0) throw new Error(`FairSlots.release: ${key} holds no slot`);
    if (held === 1) this.#held.delete(key);
    else this.#held.set(key, held - 1);
    this.#free++;
    this.#dispatch();
  }

  #take(key: string): void {
    this.#free--;
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
  }

  #dispatch(): void {
    while (this.#free > 0 && this.#ring.length > 0) {
      const key = this.#ring.shift()!;
      const queue = this.#waiters.get(key)!;
      const grant = queue.shift()!;
      if (queue.length === 0) this.#waiters.delete(key);
      else this.#ring.push(key);
      this.#take(key);
      grant();
    }
  }

  #dropKey(key: string): void {
    this.#waiters.delete(key);
    const i = this.#ring.indexOf(key);
    if (i >= 0) this.#ring.splice(i, 1);
  }
}
