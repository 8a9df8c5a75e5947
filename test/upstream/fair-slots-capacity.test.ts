import { describe, expect, it } from 'vitest';

import { FairSlots } from '../../src/engine/fair-slots.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FairSlots.setCapacity', () => {
  it('growing hands the new slots to waiters at once, round-robin', async () => {
    const s = new FairSlots(1);
    await s.acquire('a');
    const got: string[] = [];
    for (const k of ['a', 'a', 'b', 'b']) void s.acquire(k).then(() => got.push(k));
    await tick();
    expect(got).toEqual([]);
    s.setCapacity(4);
    await tick();
    expect(s.capacity).toBe(4);
    expect(s.inUse).toBe(4);
    expect(got.sort()).toEqual(['a', 'a', 'b']);
    s.release('a');
    await tick();
    expect(got).toHaveLength(4);
  });

  it('shrinking interrupts nothing: new grants wait until enough slots are released', async () => {
    const s = new FairSlots(4);
    for (let i = 0; i < 4; i++) await s.acquire('a');
    s.setCapacity(2);
    expect(s.capacity).toBe(2);
    expect(s.inUse).toBe(4);
    let granted = false;
    void s.acquire('b').then(() => (granted = true));
    s.release('a');
    s.release('a');
    await tick();
    expect(granted).toBe(false); // 2 in use = capacity
    s.release('a');
    await tick();
    expect(granted).toBe(true);
    expect(s.inUse).toBe(2);
    // A free slot is taken at once again.
    s.release('a');
    s.release('b');
    expect(s.inUse).toBe(0);
    await s.acquire('c');
    await s.acquire('c');
    expect(s.inUse).toBe(2);
  });

  it('refuses a capacity below 1', () => {
    const s = new FairSlots(2);
    expect(() => s.setCapacity(0)).toThrow(/positive integer/);
    expect(() => s.setCapacity(1.5)).toThrow(/positive integer/);
  });
});
