/**
 * A FIFO gate of `capacity` slots, like a GPU's batch slots: a request holds one while it is
 * "generated", the rest wait in arrival order. Callback-based so the uncontended path allocates
 * nothing. A waiter that gives up (client gone) leaves the queue with `cancel`.
 */
export type Grant = () => void;

export class CapacityGate {
  private active = 0;
  private peakActive = 0;
  private peakQueued = 0;
  /** Insertion-ordered, O(1) removal: a FIFO queue that waiters can leave. */
  private readonly waiting = new Set<Grant>();

  /** @param capacity slots; 0 = unlimited. */
  constructor(private readonly capacity: number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.size;
  }

  get maxInFlight(): number {
    return this.peakActive;
  }

  get maxQueued(): number {
    return this.peakQueued;
  }

  /** Takes a slot if one is free, without waiting. Pair with `release`. */
  tryAcquire(): boolean {
    if (this.capacity !== 0 && (this.active >= this.capacity || this.waiting.size > 0)) return false;
    if (++this.active > this.peakActive) this.peakActive = this.active;
    return true;
  }

  /** Waits in line; `grant` runs (synchronously, from `release`) once it holds a slot. */
  enqueue(grant: Grant): void {
    this.waiting.add(grant);
    if (this.waiting.size > this.peakQueued) this.peakQueued = this.waiting.size;
  }

  /** Leaves the line; false when `grant` was not waiting (already granted). */
  cancel(grant: Grant): boolean {
    return this.waiting.delete(grant);
  }

  /** Frees a slot, handing it straight to the longest waiter. */
  release(): void {
    for (const next of this.waiting) {
      this.waiting.delete(next);
      next(); // the slot passes on: `active` is unchanged
      return;
    }
    this.active--;
  }

  /** Peaks restart from the current levels. */
  resetPeaks(): void {
    this.peakActive = this.active;
    this.peakQueued = this.waiting.size;
  }
}
