import { describe, expect, it } from 'vitest';

import { FairSlots } from '../../src/engine/fair-slots.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Frees `n` slots one by one, each to the next waiter; returns the keys granted, in order. */
async function drain(s: FairSlots, order: string[], n: number): Promise<string[]> {
  for (let i = 0; i < n; i++) {
    s.release(order.at(-1) ?? 'holder');
    await tick();
  }
  return order;
}

describe('FairSlots: earliest deadline first within a group, round-robin between groups', () => {
  it("a project's batch due sooner gets the freed slots before the project's other batches", async () => {
    const s = new FairSlots(1);
    await s.acquire('holder', undefined, 'p');
    const order: string[] = [];
    const wait = (key: string, deadline: number): void => void s.acquire(key, undefined, 'p', deadline).then(() => void order.push(key));
    for (let i = 0; i < 3; i++) wait('long', 1_000);
    for (let i = 0; i < 3; i++) wait('short', 10);
    expect(await drain(s, order, 6)).toEqual(['short', 'short', 'short', 'long', 'long', 'long']);
  });

  it('a project cannot take more than its turn by submitting short windows', async () => {
    const s = new FairSlots(1);
    await s.acquire('holder', undefined, 'p');
    const order: string[] = [];
    const wait = (key: string, group: string, deadline: number): void => void s.acquire(key, undefined, group, deadline).then(() => void order.push(key));
    for (let i = 0; i < 3; i++) wait('urgent', 'greedy', 1);
    for (let i = 0; i < 3; i++) wait('relaxed', 'other', 1_000_000);
    // Projects alternate whatever their deadlines.
    expect(await drain(s, order, 6)).toEqual(['urgent', 'relaxed', 'urgent', 'relaxed', 'urgent', 'relaxed']);
  });

  it('equal deadlines (or none) keep the round-robin between a project\'s batches', async () => {
    const s = new FairSlots(1);
    await s.acquire('holder', undefined, 'p');
    const order: string[] = [];
    const wait = (key: string): void => void s.acquire(key, undefined, 'p').then(() => void order.push(key));
    for (let i = 0; i < 2; i++) {
      wait('a');
      wait('b');
    }
    expect(await drain(s, order, 4)).toEqual(['a', 'b', 'a', 'b']);
  });
});
