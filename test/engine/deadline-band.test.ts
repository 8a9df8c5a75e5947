import { describe, expect, it } from 'vitest';

import { deadlineBand } from '../../src/engine/deadline-band.js';
import { FairSlots } from '../../src/engine/fair-slots.js';

const now = 1_800_000_000;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('deadlineBand', () => {
  it('counts deadlines of the same order as equal, and a much nearer one as more urgent', () => {
    // Two 24 h batches submitted 10 minutes apart, and 20 h against 23 h left: equal.
    expect(deadlineBand(now + 86_400, now)).toBe(deadlineBand(now + 86_400 - 600, now));
    expect(deadlineBand(now + 20 * 3600, now)).toBe(deadlineBand(now + 23 * 3600, now));
    // 30 s left against a day: more urgent.
    expect(deadlineBand(now + 30, now)).toBeLessThan(deadlineBand(now + 86_400, now));
    // Past or at the deadline: the most urgent band.
    expect(deadlineBand(now - 5, now)).toBe(0);
    expect(deadlineBand(now + 1, now)).toBe(0);
  });

  it('with FairSlots: two 24 h batches of one project share the slots; a 30 s one goes first', async () => {
    const s = new FairSlots(1);
    await s.acquire('holder', undefined, 'p');
    const order: string[] = [];
    const wait = (key: string, expiresAt: number): void => void s.acquire(key, undefined, 'p', deadlineBand(expiresAt, now)).then(() => void order.push(key));
    for (let i = 0; i < 2; i++) {
      wait('big-first', now + 86_400 - 600);
      wait('small-later', now + 86_400);
    }
    wait('urgent', now + 30);
    for (let i = 0; i < 5; i++) {
      s.release(order.at(-1) ?? 'holder');
      await tick();
    }
    expect(order).toEqual(['urgent', 'big-first', 'small-later', 'big-first', 'small-later']);
  });
});
