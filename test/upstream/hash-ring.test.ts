import { describe, expect, it } from 'vitest';

import { HashRing, underBound } from '../../src/upstream/hash-ring.js';

const urls = ['http://gpu0:8000/v1', 'http://gpu1:8000/v1', 'http://gpu2:8000/v1', 'http://gpu3:8000/v1'];
const keys = Array.from({ length: 20_000 }, (_, i) => `key-${i}`);

describe('HashRing', () => {
  it('is sticky: a key always has the same owner, in every ring built from the same names', () => {
    const a = new HashRing(urls);
    const b = new HashRing([...urls]);
    for (const k of keys.slice(0, 2000)) {
      expect(a.owner(k)).toBe(a.owner(k));
      expect(b.owner(k)).toBe(a.owner(k));
    }
  });

  it('spreads keys over the members (each within ±20 % of an even share)', () => {
    const ring = new HashRing(urls);
    const counts = [0, 0, 0, 0];
    for (const k of keys) counts[ring.owner(k)]!++;
    for (const n of counts) {
      expect(n).toBeGreaterThan(0.8 * (keys.length / 4));
      expect(n).toBeLessThan(1.2 * (keys.length / 4));
    }
  });

  it('removing a member moves only its keys; adding one takes keys only for itself', () => {
    const full = new HashRing(urls);
    const without2 = new HashRing(urls.filter((_, i) => i !== 2));
    const name = (ring: HashRing, names: string[], k: string): string => names[ring.owner(k)]!;
    const rest = urls.filter((_, i) => i !== 2);
    let moved = 0;
    for (const k of keys) {
      const before = name(full, urls, k);
      const after = name(without2, rest, k);
      if (before === urls[2]) moved++;
      else expect(after).toBe(before); // keys of the others stay put…
    }
    expect(moved).toBeGreaterThan(keys.length / 8); // …and gpu2 did own a share
    // Adding gpu4: a key changes owner only to gpu4.
    const plus = [...urls, 'http://gpu4:8000/v1'];
    const grown = new HashRing(plus);
    let taken = 0;
    for (const k of keys) {
      const after = name(grown, plus, k);
      if (after !== name(full, urls, k)) {
        expect(after).toBe('http://gpu4:8000/v1');
        taken++;
      }
    }
    expect(taken / keys.length).toBeGreaterThan(0.12);
    expect(taken / keys.length).toBeLessThan(0.28);
  });

  it('walks every member once, in ring order from the key; skipping a member is the same as removing it', () => {
    const ring = new HashRing(urls);
    const without1 = new HashRing(urls.filter((_, i) => i !== 1));
    const rest = urls.filter((_, i) => i !== 1);
    for (const k of keys.slice(0, 2000)) {
      const order: number[] = [];
      for (let m = ring.first(k); m >= 0; m = ring.next()) order.push(m);
      expect(order.sort()).toEqual([0, 1, 2, 3]);
      let firstNot1 = ring.first(k);
      while (firstNot1 === 1) firstNot1 = ring.next();
      expect(urls[firstNot1]).toBe(rest[without1.owner(k)]);
    }
  });

  it('works with one member', () => {
    const ring = new HashRing(['only']);
    expect(ring.owner('x')).toBe(0);
    expect(ring.first('x')).toBe(0);
    expect(ring.next()).toBe(-1);
  });
});

describe('underBound (bounded load)', () => {
  it('lets a member take one more while it stays within ⌈c × (total + 1) × its share⌉', () => {
    // 4 equal members, 40 in flight: cap ⌈1.25 × 41 / 4⌉ = 13.
    expect(underBound(12, 64, 40, 256, 1.25)).toBe(true);
    expect(underBound(13, 64, 40, 256, 1.25)).toBe(false);
    // Nothing in flight: the owner may always take the first one.
    expect(underBound(0, 64, 0, 256, 1.25)).toBe(true);
    // Weighted by limit: a member with half the pool's limit may hold 1.25 × half.
    expect(underBound(62, 100, 99, 200, 1.25)).toBe(true);
    expect(underBound(63, 100, 99, 200, 1.25)).toBe(false);
  });

  it('keeps every member within the bound when one key floods the ring', () => {
    const ring = new HashRing(urls);
    const load = [0, 0, 0, 0];
    let total = 0;
    for (let r = 0; r < 400; r++) {
      let chosen = -1;
      for (let m = ring.first('one-system-prompt'); m >= 0; m = ring.next()) {
        if (underBound(load[m]!, 1, total, 4, 1.25)) {
          chosen = m;
          break;
        }
      }
      expect(chosen).toBeGreaterThanOrEqual(0); // someone is always under the bound
      load[chosen]!++;
      total++;
      expect(Math.max(...load)).toBeLessThanOrEqual(Math.ceil((1.25 * total) / 4));
    }
    // The key's owner is full to the bound; the overflow went to the next members on the ring.
    expect(load[ring.owner('one-system-prompt')]).toBe(Math.ceil((1.25 * 400) / 4));
  });
});
