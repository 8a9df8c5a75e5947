import { describe, expect, it } from 'vitest';

import { FingerprintSet } from '../../src/jsonl/index.js';

describe('FingerprintSet', () => {
  it('reports new and repeated strings across growth', () => {
    const s = new FingerprintSet(4);
    for (let i = 0; i < 200_000; i++) expect(s.add(`request-${i}`)).toBe(true);
    expect(s.size).toBe(200_000);
    for (let i = 0; i < 200_000; i += 997) {
      expect(s.has(`request-${i}`)).toBe(true);
      expect(s.add(`request-${i}`)).toBe(false);
    }
    expect(s.size).toBe(200_000);
  });

  it('has no false positives among distinct ids that differ only slightly', () => {
    const s = new FingerprintSet();
    for (let i = 0; i < 100_000; i++) s.add(`id-${i}`);
    let hits = 0;
    for (let i = 100_000; i < 300_000; i++) if (s.has(`id-${i}`)) hits++;
    for (const id of ['', 'ID-1', 'id-1 ', 'id–1', '😀', 'a'.repeat(512)]) if (s.has(id)) hits++;
    expect(hits).toBe(0);
  });

  it('treats the empty string and unicode as ordinary members', () => {
    const s = new FingerprintSet();
    expect(s.add('')).toBe(true);
    expect(s.add('')).toBe(false);
    expect(s.add('😀')).toBe(true);
    expect(s.has('😀')).toBe(true);
  });
});
