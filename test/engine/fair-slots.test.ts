import { describe, expect, it } from 'vitest';

import { FairSlots } from '../../src/engine/fair-slots.js';

/** Lets every pending promise callback run. */
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FairSlots', () => {
  it('grants at once while slots are free and counts what each key holds', async () => {
    const s = new FairSlots(3);
    await s.acquire('a');
    await s.acquire('a');
    await s.acquire('b');
    expect(s.inUse).toBe(3);
    expect(s.heldBy('a')).toBe(2);
    expect(s.heldBy('b')).toBe(1);
    s.release('a');
    expect(s.inUse).toBe(2);
    expect(s.heldBy('a')).toBe(1);
    expect(() => s.release('c')).toThrow(/holds no slot/);
    s.release('a');
    s.release('b');
    expect(s.inUse).toBe(0);
    expect(() => s.release('a')).toThrow(/holds no slot/);
  });

  it('hands freed slots round-robin between waiting keys, FIFO within a key', async () => {
    const s = new FairSlots(1);
    await s.acquire('big');
    const order: string[] = [];
    const wait = (key: string, tag: string): Promise<void> => s.acquire(key).then(() => void order.push(tag));
    // The big batch queues many requests before the small one shows up.
    const waits = [wait('big', 'big1'), wait('big', 'big2'), wait('big', 'big3'), wait('small', 'small1'), wait('small', 'small2'), wait('third', 'third1')];
    for (let i = 0; i < 6; i++) {
      const holder = i === 0 ? 'big' : order[i - 1]!.replace(/\d+$/, '');
      s.release(holder);
      await tick();
      expect(order).toHaveLength(i + 1);
      expect(s.inUse).toBe(1);
    }
    await Promise.all(waits);
    // big is first in the ring, then small, then third; then back to big…
    expect(order).toEqual(['big1', 'small1', 'third1', 'big2', 'small2', 'big3']);
  });

  it('a key that keeps asking one slot at a time (as a runner does) cannot starve a newcomer', async () => {
    const cap = 4;
    const s = new FairSlots(cap);
    const grants: string[] = [];
    let stop = false;
    // A runner: acquire, "send" (hold for a tick), release, repeat.
    const runner = async (key: string, n: number): Promise<void> => {
      const inFlight: Array<Promise<void>> = [];
      for (let i = 0; i < n && !stop; i++) {
        await s.acquire(key);
        grants.push(key);
        expect(s.inUse).toBeLessThanOrEqual(cap);
        inFlight.push(
          (async () => {
            await tick();
            s.release(key);
          })(),
        );
      }
      await Promise.all(inFlight);
    };
    const big = runner('big', 400);
    await tick();
    await tick();
    const small = runner('small', 20);
    await small;
    const bigBeforeSmallDone = grants.filter((k) => k === 'big').length;
    stop = true;
    await big;
    // The small runner finished its 20 while the big one had taken far fewer than its 400.
    expect(bigBeforeSmallDone).toBeLessThan(100);
    expect(s.inUse).toBe(0);
  });

  it('capacity is never exceeded under a random workload', async () => {
    const cap = 5;
    const s = new FairSlots(cap);
    let held = 0;
    let peak = 0;
    let seed = 42;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 300; i++) {
      const key = `k${Math.floor(rand() * 4)}`;
      const holdTicks = 1 + Math.floor(rand() * 3);
      jobs.push(
        (async () => {
          await s.acquire(key);
          held++;
          peak = Math.max(peak, held);
          // Granted slots are taken synchronously; their holders run a microtask later.
          expect(held).toBeLessThanOrEqual(s.inUse);
          expect(s.inUse).toBeLessThanOrEqual(cap);
          for (let t = 0; t < holdTicks; t++) await tick();
          held--;
          s.release(key);
        })(),
      );
    }
    await Promise.all(jobs);
    expect(peak).toBe(cap);
    expect(s.inUse).toBe(0);
  });

  it('aborting a waiter rejects it with the reason, takes no slot and keeps the others waiting in order', async () => {
    const s = new FairSlots(1);
    await s.acquire('a');
    const ac = new AbortController();
    let bGot = false;
    const b = s.acquire('b', ac.signal).then(() => (bGot = true));
    const c = s.acquire('c');
    const reason = new Error('batch cancel');
    ac.abort(reason);
    await expect(b).rejects.toBe(reason);
    expect(s.inUse).toBe(1);
    expect(s.heldBy('b')).toBe(0);
    s.release('a');
    await c; // the slot went to c, not to the aborted b
    expect(bGot).toBe(false);
    expect(s.heldBy('c')).toBe(1);
    expect(s.heldBy('b')).toBe(0);
    expect(s.inUse).toBe(1);
    s.release('c');
    expect(s.inUse).toBe(0);
    // Nothing left over: the next acquire is immediate.
    await s.acquire('d');
    expect(s.heldBy('d')).toBe(1);
  });

  it('aborting the only waiter of a key removes the key from the ring', async () => {
    const s = new FairSlots(1);
    await s.acquire('a');
    const ac = new AbortController();
    const b = s.acquire('b', ac.signal);
    ac.abort(new Error('stop'));
    await expect(b).rejects.toThrow('stop');
    s.release('a');
    expect(s.inUse).toBe(0);
    // With the ring empty a free slot is taken synchronously again.
    let got = false;
    void s.acquire('x').then(() => (got = true));
    await Promise.resolve();
    expect(got).toBe(true);
    expect(s.inUse).toBe(1);
  });

  it('an already-aborted signal rejects without taking a slot, even when slots are free', async () => {
    const s = new FairSlots(2);
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    await expect(s.acquire('a', ac.signal)).rejects.toThrow('gone');
    expect(s.inUse).toBe(0);
    expect(s.heldBy('a')).toBe(0);
  });

  it('an abort after the grant changes nothing', async () => {
    const s = new FairSlots(1);
    await s.acquire('a');
    const ac = new AbortController();
    const b = s.acquire('b', ac.signal);
    s.release('a');
    await b;
    ac.abort(new Error('late'));
    await tick();
    expect(s.heldBy('b')).toBe(1);
    expect(s.inUse).toBe(1);
    s.release('b');
    expect(s.inUse).toBe(0);
  });
});
