import { Prng } from './hash.js';
import type { MockOptions } from './mock-options.js';

export type Fault = 'drop' | 500 | 429 | null;

/**
 * Decides which fault, if any, an arriving request gets: a seeded PRNG draws against each rate in
 * turn (drop, then 500, then 429), and a request key never gets more than `maxFaultsPerRequest`.
 */
export class FaultInjector {
  private prng: Prng;
  private readonly active: boolean;
  private readonly bounded: boolean;
  private faultsByKey = new Map<string, number>();

  constructor(private readonly opts: MockOptions) {
    this.prng = new Prng(opts.seed);
    this.active = opts.dropRate > 0 || opts.fail500Rate > 0 || opts.fail429Rate > 0;
    this.bounded = opts.maxFaultsPerRequest !== Infinity;
  }

  decide(key: string): Fault {
    if (!this.active) return null;
    const o = this.opts;
    let seen = 0;
    if (this.bounded) {
      seen = this.faultsByKey.get(key) ?? 0;
      if (seen >= o.maxFaultsPerRequest) return null;
    }
    let fault: Fault = null;
    if (o.dropRate > 0 && this.prng.next() < o.dropRate) fault = 'drop';
    else if (o.fail500Rate > 0 && this.prng.next() < o.fail500Rate) fault = 500;
    else if (o.fail429Rate > 0 && this.prng.next() < o.fail429Rate) fault = 429;
    if (fault !== null && this.bounded) this.faultsByKey.set(key, seen + 1);
    return fault;
  }

  /** Forgets the per-request fault counts and restarts the PRNG from the seed. */
  reset(): void {
    this.faultsByKey = new Map();
    this.prng = new Prng(this.opts.seed);
  }
}
