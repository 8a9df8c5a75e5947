import { BLOCK_TOKENS } from './prompt.js';

/**
 * vLLM-style automatic prefix caching over chained block keys (see `blockKeys`). A block used by a
 * running sequence is referenced and cannot be evicted; unreferenced blocks stay cached and are
 * evicted least recently used first when room is needed. As vLLM's block pool does, a sequence
 * frees its blocks last-to-first, so a prompt's leading blocks are evicted after its tail.
 */
export class PrefixCache {
  /** Every cached block → its reference count. */
  private readonly refs = new Map<number, number>();
  /** Unreferenced blocks, least recently used first (a Map iterates in insertion order). */
  private readonly evictable = new Map<number, true>();
  private referenced = 0;
  private readonly capacityBlocks: number;

  constructor(capacityTokens: number) {
    this.capacityBlocks = Math.floor(capacityTokens / BLOCK_TOKENS);
  }

  /** Blocks referenced by running sequences. */
  get referencedBlocks(): number {
    return this.referenced;
  }

  get cachedBlocks(): number {
    return this.refs.size;
  }

  /** How many of `keys` (at most `max`) are cached as a leading run; no side effect. */
  peekHits(keys: readonly number[], max: number): number {
    let n = 0;
    while (n < max && this.refs.has(keys[n]!)) n++;
    return n;
  }

  /**
   * References the cached leading run of `keys` (at most `maxHit` blocks count as hits), then
   * inserts the rest of `keys` as referenced blocks while room can be made. Returns the blocks hit,
   * the blocks inserted, and the blocks now referenced in all; stops inserting at the first block
   * that does not fit, as a block without its parent could never be hit.
   */
  acquire(keys: readonly number[], maxHit: number): { hit: number; inserted: number; held: number } {
    const hit = this.peekHits(keys, maxHit);
    let inserted = 0;
    let held = 0;
    for (; held < keys.length; held++) {
      const key = keys[held]!;
      const count = this.refs.get(key);
      if (count !== undefined) {
        this.ref(key, count);
        continue;
      }
      if (!this.makeRoom()) break;
      this.refs.set(key, 1);
      this.referenced++;
      inserted++;
    }
    return { hit, inserted, held };
  }

  /** Drops the references `acquire` took on the first `held` blocks of `keys`. */
  release(keys: readonly number[], held: number): void {
    for (let i = held - 1; i >= 0; i--) {
      const key = keys[i]!;
      const count = this.refs.get(key);
      if (count === undefined) continue;
      if (count > 1) {
        this.refs.set(key, count - 1);
      } else {
        this.refs.set(key, 0);
        this.referenced--;
        this.evictable.set(key, true);
      }
    }
  }

  private ref(key: number, count: number): void {
    if (count === 0) {
      this.evictable.delete(key);
      this.referenced++;
    }
    this.refs.set(key, count + 1);
  }

  private makeRoom(): boolean {
    if (this.refs.size < this.capacityBlocks) return true;
    for (const key of this.evictable.keys()) {
      this.evictable.delete(key);
      this.refs.delete(key);
      return true;
    }
    return false;
  }
}
