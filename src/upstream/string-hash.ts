/**
 * A 53-bit string hash with cyrb53's mixing (two 32-bit lanes), fed incrementally from slices of
 * a string so nothing is copied. Deterministic across processes and versions: BESH replicas with
 * the same upstream list must place a prefix on the same server.
 */
export class StringHash {
  #h1 = 0;
  #h2 = 0;

  reset(seed = 0): this {
    this.#h1 = 0xdeadbeef ^ seed;
    this.#h2 = 0x41c6ce57 ^ seed;
    return this;
  }

  /** Feeds `s[start, end)`. */
  add(s: string, start = 0, end = s.length): this {
    let h1 = this.#h1;
    let h2 = this.#h2;
    for (let i = start; i < end; i++) {
      const ch = s.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    this.#h1 = h1;
    this.#h2 = h2;
    return this;
  }

  /** Feeds one code unit (a separator or a tag). */
  addCode(ch: number): this {
    this.#h1 = Math.imul(this.#h1 ^ ch, 2654435761);
    this.#h2 = Math.imul(this.#h2 ^ ch, 1597334677);
    return this;
  }

  /** The hash as a non-negative integer below 2^53. */
  digest(): number {
    let h1 = this.#h1;
    let h2 = this.#h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
    h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }
}

const shared = new StringHash();

/** 32 well-mixed bits of `s` (a point on the hash ring). */
export function hash32(s: string): number {
  return shared.reset().add(s).digest() % 4294967296;
}
