import { hash32 } from './string-hash.js';

/**
 * Points per member. Each member's share of the ring has a relative spread of ~1/√160 ≈ 8 %
 * (Ketama's choice); the bounded-load walk evens out the rest.
 */
export const DEFAULT_VNODES = 160;

/**
 * A consistent-hash ring over member names (upstream base URLs). A member's points depend only on
 * its own name, so removing or adding one moves only the keys whose point it owns or takes over,
 * and every BESH replica with the same names builds the same ring. Taking a member out of
 * rotation is a skip during the walk, which is the same as removing it from the ring.
 */
export class HashRing {
  readonly #points: Uint32Array;
  readonly #owners: Uint16Array;
  readonly #n: number;
  readonly #seen: Uint32Array;
  #stamp = 0;
  #at = 0;
  #left = 0;

  constructor(members: readonly string[], vnodes = DEFAULT_VNODES) {
    if (members.length === 0 || members.length > 65535) throw new Error('HashRing needs 1 to 65535 members');
    this.#n = members.length;
    const entries: Array<[number, number]> = [];
    members.forEach((m, i) => {
      for (let v = 0; v < vnodes; v++) entries.push([hash32(`${m}#${v}`), i]);
    });
    // Ties (vanishingly rare) break by member index, so the order never depends on input order quirks.
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.#points = Uint32Array.from(entries, (e) => e[0]);
    this.#owners = Uint16Array.from(entries, (e) => e[1]);
    this.#seen = new Uint32Array(this.#n);
  }

  /** The member owning `key`: the first point clockwise from the key's hash. */
  owner(key: string): number {
    return this.#owners[this.#startOf(hash32(key))]!;
  }

  /**
   * Members in ring order from `key`'s point, each once: `first(key)`, then `next()` until -1.
   * One walk at a time (the state is the ring's), which is what a synchronous pick needs.
   */
  first(key: string): number {
    if (++this.#stamp === 0xffffffff) {
      this.#seen.fill(0);
      this.#stamp = 1;
    }
    this.#at = this.#startOf(hash32(key));
    this.#left = this.#n;
    return this.next();
  }

  next(): number {
    const points = this.#owners.length;
    while (this.#left > 0) {
      const m = this.#owners[this.#at]!;
      this.#at = this.#at + 1 === points ? 0 : this.#at + 1;
      if (this.#seen[m] !== this.#stamp) {
        this.#seen[m] = this.#stamp;
        this.#left--;
        return m;
      }
    }
    return -1;
  }

  #startOf(h: number): number {
    const p = this.#points;
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (p[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === p.length ? 0 : lo;
  }
}

/**
 * Mirrokni, Thorup and Zadimoghaddam's bound ("Consistent Hashing with Bounded Loads", 2018, as
 * HAProxy's `hash-balance-factor` and Vimeo use it), weighted by each member's limit: with `total`
 * requests in flight on the eligible members and `totalLimit` their summed limits, a member may
 * take one more while it would hold at most ⌈c × (total + 1) × limit / totalLimit⌉.
 */
export function underBound(inFlight: number, limit: number, total: number, totalLimit: number, c: number): boolean {
  return inFlight + 1 <= Math.ceil((c * (total + 1) * limit) / totalLimit);
}
