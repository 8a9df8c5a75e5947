/**
 * A set of strings kept as 64-bit fingerprints (two independent 32-bit hashes) in an
 * open-addressing table: 8 bytes a slot instead of a string and a Set entry each, so checking a
 * million custom_ids for duplicates takes ~16 MB instead of ~100 MB.
 *
 * It can say "seen" for a string it has not seen (two ids sharing 64 bits, ~3·10⁻⁸ for a million
 * ids), never the reverse. Callers that need certainty confirm a hit exactly (validate-input does a
 * second pass over the few suspect ids).
 */
export class FingerprintSet {
  #table: Uint32Array;
  #mask: number;
  #size = 0;

  constructor(initialCapacity = 1 << 16) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.#table = new Uint32Array(cap * 2);
    this.#mask = cap - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Adds `s`; false when its fingerprint was already there. */
  add(s: string): boolean {
    const [h1, h2] = fingerprint(s);
    if (this.#size * 2 >= this.#mask + 1) this.#grow();
    return this.#insert(h1, h2);
  }

  has(s: string): boolean {
    const [h1, h2] = fingerprint(s);
    const t = this.#table;
    for (let i = h1 & this.#mask; ; i = (i + 1) & this.#mask) {
      const a = t[i * 2]!;
      const b = t[i * 2 + 1]!;
      if (a === 0 && b === 0) return false;
      if (a === h1 && b === h2) return true;
    }
  }

  #insert(h1: number, h2: number): boolean {
    const t = this.#table;
    for (let i = h1 & this.#mask; ; i = (i + 1) & this.#mask) {
      const a = t[i * 2]!;
      const b = t[i * 2 + 1]!;
      if (a === 0 && b === 0) {
        t[i * 2] = h1;
        t[i * 2 + 1] = h2;
        this.#size++;
        return true;
      }
      if (a === h1 && b === h2) return false;
    }
  }

  #grow(): void {
    const old = this.#table;
    this.#table = new Uint32Array(old.length * 2);
    this.#mask = (this.#mask << 1) | 1;
    this.#size = 0;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] !== 0 || old[i + 1] !== 0) this.#insert(old[i]!, old[i + 1]!);
    }
  }
}

/** Two 32-bit hashes (FNV-1a and a murmur-style mix over UTF-16 units); (0,0) is reserved for empty. */
function fingerprint(s: string): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h1 >>>= 0;
  h2 = (Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35) ^ (h2 >>> 16)) >>> 0;
  return h1 === 0 && h2 === 0 ? [1, 0] : [h1, h2];
}
