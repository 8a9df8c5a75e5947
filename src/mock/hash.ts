/**
 * Cheap deterministic numbers: a string hash for "same request → same answer" and a seeded PRNG
 * for fault injection and generated content. Nothing here is cryptographic.
 */

/** 32-bit FNV-1a of a string's UTF-16 code units, finalised with `seed`. */
export function hashString(s: string, seed: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix(h, seed);
}

/** Combines a hash with an integer into a well-spread 32-bit hash (murmur3 finaliser). */
export function mix(h: number, n: number): number {
  let x = (h ^ Math.imul((n | 0) + 0x632be5ab, 0x9e3779b1)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** mulberry32: small, fast, seeded. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
}

/** A seeded uniform [0, 1) source as a plain function (the same sequence on every run). */
export function seededRandom(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
}
