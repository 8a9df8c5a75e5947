import type { PrefixCache } from './prefix-cache.js';
import { BLOCK_TOKENS } from './prompt.js';
import type { Sequence } from './sequence.js';

/**
 * The KV cache of the running sequences and the prefix cache's counters. A sequence is admitted
 * only when its whole final length (prompt not served from the cache + every token it will
 * generate) fits beside the others' reservations, so the engine never has to preempt. Usage is
 * counted as vLLM's `kv_cache_usage_perc` counts blocks: tokens held by running sequences, shared
 * cached blocks once; cached blocks no running sequence uses are free (evictable) memory.
 */
export class KvLedger {
  private reserved = 0;
  private privatePrompt = 0;
  /** Prompt tokens looked up in the prefix cache, and those found (vLLM's prefix_cache_queries / _hits). */
  queries = 0;
  hits = 0;

  constructor(
    private readonly capacityTokens: number,
    private readonly cache: PrefixCache | null,
  ) {}

  /** Whether `seq` may start now beside `running` sequences. */
  fits(seq: Sequence, running: number): boolean {
    if (running === 0) return true; // a sequence larger than the cache still runs, alone
    return this.reserved + this.need(seq, this.cachedNow(seq)) <= this.capacityTokens;
  }

  /** Takes `seq`'s cache blocks and KV reservation; returns the prompt tokens it must compute. */
  admit(seq: Sequence): number {
    if (this.cache !== null && seq.keys !== null) {
      const { hit, inserted, held } = this.cache.acquire(seq.keys, maxHitBlocks(seq));
      seq.cached = hit * BLOCK_TOKENS;
      seq.held = held;
      if (seq.first) seq.job.cachedTokens += seq.cached;
      seq.job.cacheWriteTokens += inserted * BLOCK_TOKENS;
      this.queries += seq.prompt.tokens;
      this.hits += seq.cached;
    }
    seq.reserved = this.need(seq, seq.cached);
    this.reserved += seq.reserved;
    this.privatePrompt += seq.privatePromptTokens;
    return Math.max(1, seq.prompt.tokens - seq.cached);
  }

  release(seq: Sequence): void {
    this.reserved -= seq.reserved;
    this.privatePrompt -= seq.privatePromptTokens;
    if (this.cache !== null && seq.keys !== null) this.cache.release(seq.keys, seq.held);
    seq.held = 0;
  }

  /** Fraction of the KV cache in use, given the tokens the running sequences generated so far. */
  usage(generatedTokens: number): number {
    const shared = this.cache === null ? 0 : this.cache.referencedBlocks * BLOCK_TOKENS;
    return Math.min(1, (shared + this.privatePrompt + generatedTokens) / this.capacityTokens);
  }

  resetCounters(): void {
    this.queries = 0;
    this.hits = 0;
  }

  private need(seq: Sequence, cached: number): number {
    return seq.prompt.tokens - cached + seq.outputTokens;
  }

  private cachedNow(seq: Sequence): number {
    if (this.cache === null || seq.keys === null) return 0;
    return this.cache.peekHits(seq.keys, maxHitBlocks(seq)) * BLOCK_TOKENS;
  }
}

/** vLLM recomputes at least the last prompt token (it needs its logits), so a hit stops before it. */
const maxHitBlocks = (seq: Sequence): number => Math.floor(Math.max(0, seq.prompt.tokens - 1) / BLOCK_TOKENS);
