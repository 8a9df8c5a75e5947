/**
 * MAX_WORKERS upstream slots shared fairly: between groups (projects) first, then between the
 * keys (batches) of a group.
 *
 * A batch asks for one slot per request it wants to send. When slots are free and nobody waits,
 * the caller gets one at once; otherwise it waits in its batch's own FIFO. A freed slot goes to
 * the next group in round-robin order among groups that are waiting, and within that group to
 * the batch of that group with the earliest deadline (round-robin among equal ones). So one
 * project's million-line batch (or its fifty batches) gets no more slots per turn than another
 * project's ten-line batch; within a project a batch due sooner goes first, and a project cannot
 * take more than its share by submitting short windows; a 10-line batch is never stuck behind a
 * 50,000-line one of its own project with the same deadline.
 */
export class FairSlots {
  #free: number;
  #capacity: number;
  /** Groups with waiters, in round-robin order. */
  readonly #groupRing: string[] = [];
  /** Per group: its keys with waiters, in round-robin order. */
  readonly #keyRings = new Map<string, string[]>();
  readonly #waiters = new Map<string, Array<() => void>>();
  readonly #held = new Map<string, number>();
  readonly #groupOf = new Map<string, string>();
  readonly #heldByGroup = new Map<string, number>();
  /** When each key's work is due (ms or any monotone unit); keys without one rank last. */
  readonly #deadlines = new Map<string, number>();

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

  /** Slots held by all keys of a group. */
  heldByGroup(group: string): number {
    return this.#heldByGroup.get(group) ?? 0;
  }

  /**
   * Resolves when a slot is held by `key` (of `group`; by default each key is its own group);
   * rejects with `signal.reason` if aborted first. `deadline` ranks the key within its group
   * (earliest first).
   */
  acquire(key: string, signal?: AbortSignal, group: string = key, deadline = Infinity): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const known = this.#groupOf.get(key);
    if (known !== undefined && known !== group) throw new Error(`FairSlots.acquire: ${key} belongs to group ${known}, not ${group}`);
    this.#groupOf.set(key, group);
    if (deadline !== Infinity) this.#deadlines.set(key, deadline);
    if (this.#free > 0 && this.#groupRing.length === 0) {
      this.#take(key, group);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let queue = this.#waiters.get(key);
      if (!queue) {
        queue = [];
        this.#waiters.set(key, queue);
        let keys = this.#keyRings.get(group);
        if (!keys) {
          keys = [];
          this.#keyRings.set(group, keys);
          this.#groupRing.push(group);
        }
        keys.push(key);
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
          if (q.length === 0) this.#dropKey(key, group);
        }
        this.#forgetIfIdle(key);
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
    const group = this.#groupOf.get(key)!;
    if (held === 1) this.#held.delete(key);
    else this.#held.set(key, held - 1);
    const g = this.#heldByGroup.get(group)! - 1;
    if (g === 0) this.#heldByGroup.delete(group);
    else this.#heldByGroup.set(group, g);
    this.#forgetIfIdle(key);
    this.#free++;
    this.#dispatch();
  }

  #take(key: string, group: string): void {
    this.#free--;
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    this.#heldByGroup.set(group, (this.#heldByGroup.get(group) ?? 0) + 1);
  }

  #dispatch(): void {
    while (this.#free > 0 && this.#groupRing.length > 0) {
      const group = this.#groupRing.shift()!;
      const keys = this.#keyRings.get(group)!;
      const [key] = keys.splice(this.#earliest(keys), 1) as [string];
      const queue = this.#waiters.get(key)!;
      const grant = queue.shift()!;
      if (queue.length === 0) this.#waiters.delete(key);
      else keys.push(key);
      if (keys.length === 0) this.#keyRings.delete(group);
      else this.#groupRing.push(group);
      this.#take(key, group);
      grant();
    }
  }

  /** Index of the key due first, the first in ring order among equals (0 when none has a deadline). */
  #earliest(keys: readonly string[]): number {
    let best = 0;
    let due = this.#deadlines.get(keys[0]!) ?? Infinity;
    for (let i = 1; i < keys.length; i++) {
      const d = this.#deadlines.get(keys[i]!) ?? Infinity;
      if (d < due) [best, due] = [i, d];
    }
    return best;
  }

  #dropKey(key: string, group: string): void {
    this.#waiters.delete(key);
    const keys = this.#keyRings.get(group);
    if (!keys) return;
    const i = keys.indexOf(key);
    if (i >= 0) keys.splice(i, 1);
    if (keys.length === 0) {
      this.#keyRings.delete(group);
      const g = this.#groupRing.indexOf(group);
      if (g >= 0) this.#groupRing.splice(g, 1);
    }
  }

  #forgetIfIdle(key: string): void {
    if (!this.#held.has(key) && !this.#waiters.has(key)) {
      this.#groupOf.delete(key);
      this.#deadlines.delete(key);
    }
  }
}
