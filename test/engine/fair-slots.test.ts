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

describe('FairSlots: groups (projects) first, then keys (batches) within a group', () => {
  /** Queues `n` waiters for `key` of `group`, each pushing its tag to `order` when granted. */
  const queue = (s: FairSlots, order: string[], key: string, group: string | undefined, n: number, signal?: AbortSignal): Array<Promise<void>> =>
    Array.from({ length: n }, (_, i) => s.acquire(key, signal, group).then(() => void order.push(`${key}#${i}`)));

  /** Releases one slot of `holder` and lets the granted waiter record itself. */
  const handOver = async (s: FairSlots, holder: string): Promise<void> => {
    s.release(holder);
    await tick();
  };

  const keyOf = (tag: string): string => tag.split('#')[0]!;

  it('freed slots alternate between groups, and go round-robin between the keys of a group', async () => {
    const s = new FairSlots(1);
    await s.acquire('a1', undefined, 'A');
    const order: string[] = [];
    // Project A queues three batches' worth of requests before project B's one batch shows up.
    const waits = [...queue(s, order, 'a1', 'A', 4), ...queue(s, order, 'a2', 'A', 4), ...queue(s, order, 'a3', 'A', 4), ...queue(s, order, 'b1', 'B', 4)];
    let holder = 'a1';
    for (let i = 0; i < 16; i++) {
      await handOver(s, holder);
      expect(order).toHaveLength(i + 1);
      expect(s.inUse).toBe(1);
      holder = keyOf(order[i]!);
    }
    await Promise.all(waits);
    expect(order.map(keyOf)).toEqual([
      // A and B alternate while B waits: B gets every other slot although A has three batches…
      'a1', 'b1', 'a2', 'b1', 'a3', 'b1', 'a1', 'b1',
      // …then A alone, still round-robin between its batches.
      'a2', 'a3', 'a1', 'a2', 'a3', 'a1', 'a2', 'a3',
    ]);
    // FIFO within a key.
    expect(order.filter((t) => keyOf(t) === 'b1')).toEqual(['b1#0', 'b1#1', 'b1#2', 'b1#3']);
    expect(order.filter((t) => keyOf(t) === 'a2')).toEqual(['a2#0', 'a2#1', 'a2#2', 'a2#3']);
    s.release(holder);
    expect(s.inUse).toBe(0);
    expect(s.heldByGroup('A')).toBe(0);
  });

  it('with N slots and steady demand, the one-batch group holds N/2 while the three-batch group splits the other half', async () => {
    const cap = 6;
    const s = new FairSlots(cap);
    /** Who holds each granted slot, oldest first (the next one to finish). */
    const holding: string[] = [];
    const grants = new Map<string, number>();
    const ask = (key: string, group: string, n: number): Array<Promise<void>> =>
      Array.from({ length: n }, () =>
        s.acquire(key, undefined, group).then(() => {
          holding.push(key);
          grants.set(key, (grants.get(key) ?? 0) + 1);
        }),
      );
    const waits = [...ask('a1', 'A', 60), ...ask('a2', 'A', 60), ...ask('a3', 'A', 60), ...ask('b1', 'B', 40)];
    await tick();
    // The first six asks were granted at once (nobody waited yet): all to a1.
    expect(holding).toEqual(['a1', 'a1', 'a1', 'a1', 'a1', 'a1']);
    expect(s.heldByGroup('A')).toBe(6);
    expect(s.heldByGroup('B')).toBe(0);

    const bShare: number[] = [];
    for (let step = 0; holding.length > 0; step++) {
      const done = holding.shift()!;
      s.release(done);
      await tick();
      const a = s.heldByGroup('A');
      const b = s.heldByGroup('B');
      // heldByGroup is the sum of the group's keys, and the groups together hold every slot in use.
      expect(a).toBe(s.heldBy('a1') + s.heldBy('a2') + s.heldBy('a3'));
      expect(b).toBe(s.heldBy('b1'));
      expect(a + b).toBe(s.inUse);
      expect(s.inUse).toBeLessThanOrEqual(cap);
      if (step >= cap && (grants.get('b1') ?? 0) < 40) bShare.push(b);
    }
    await Promise.all(waits);
    // Once the first six slots have turned over, and as long as B still asks, B holds exactly half.
    expect(bShare.length).toBeGreaterThan(40);
    expect(new Set(bShare)).toEqual(new Set([cap / 2]));
    // Within A the three batches were served evenly (6 of a1's grants were the initial burst).
    expect(grants.get('a1')).toBe(60);
    expect(grants.get('a2')).toBe(60);
    expect(grants.get('a3')).toBe(60);
    expect(grants.get('b1')).toBe(40);
    expect(s.inUse).toBe(0);
    expect(s.heldByGroup('A')).toBe(0);
    expect(s.heldByGroup('B')).toBe(0);
  });

  it('mid-run with 8 slots: B holds 4 and A\'s 4 are spread over its three batches', async () => {
    const s = new FairSlots(8);
    const holding: string[] = [];
    const ask = (key: string, group: string, n: number): void => {
      for (let i = 0; i < n; i++) void s.acquire(key, undefined, group).then(() => void holding.push(key));
    };
    ask('a1', 'A', 8);
    ask('a2', 'A', 100);
    ask('a3', 'A', 100);
    ask('a1', 'A', 100);
    ask('b1', 'B', 100);
    await tick();
    for (let i = 0; i < 64; i++) {
      s.release(holding.shift()!);
      await tick();
    }
    expect(s.heldByGroup('B')).toBe(4);
    expect(s.heldByGroup('A')).toBe(4);
    // A's four are spread over its three batches (2/1/1 in some order).
    const perKey = ['a1', 'a2', 'a3'].map((k) => s.heldBy(k)).sort();
    expect(perKey).toEqual([1, 1, 2]);
  });

  it('a key belongs to one group while it holds or waits, and may change group once idle', async () => {
    const s = new FairSlots(2);
    await s.acquire('k', undefined, 'A');
    expect(() => s.acquire('k', undefined, 'B')).toThrow(/belongs to group A/);
    // Without a group the key is its own group, which is not A either.
    expect(() => s.acquire('k')).toThrow(/belongs to group A/);
    expect(s.heldByGroup('A')).toBe(1);
    expect(s.heldByGroup('B')).toBe(0);
    s.release('k');
    await s.acquire('k', undefined, 'B');
    expect(s.heldByGroup('B')).toBe(1);
    expect(s.heldByGroup('A')).toBe(0);
    s.release('k');
    expect(s.inUse).toBe(0);
  });

  it('aborting a waiter of a group takes no slot and keeps both rings consistent', async () => {
    const s = new FairSlots(1);
    await s.acquire('x', undefined, 'X');
    const order: string[] = [];
    const acA2 = new AbortController();
    const acC = new AbortController();
    const a1 = queue(s, order, 'a1', 'A', 2);
    const a2 = queue(s, order, 'a2', 'A', 2, acA2.signal);
    const b1 = queue(s, order, 'b1', 'B', 2);
    const c1 = queue(s, order, 'c1', 'C', 1, acC.signal);
    const gone = new Error('batch cancelled');
    acA2.abort(gone); // both of a2's waiters: a2 leaves A's ring, A stays (a1 still waits)
    acC.abort(new Error('project gone')); // the only waiter of the only key of C: C leaves the group ring
    for (const p of a2) await expect(p).rejects.toBe(gone);
    await expect(c1[0]).rejects.toThrow('project gone');
    expect(s.inUse).toBe(1);
    expect(s.heldBy('a2')).toBe(0);
    expect(s.heldByGroup('C')).toBe(0);

    let holder = 'x';
    for (let i = 0; i < 4; i++) {
      await handOver(s, holder);
      expect(s.inUse).toBe(1);
      holder = keyOf(order[i]!);
    }
    await Promise.all([...a1, ...b1]);
    expect(order).toEqual(['a1#0', 'b1#0', 'a1#1', 'b1#1']);
    s.release(holder);
    // Nothing leaked: every slot is free, no group holds any, and the rings are empty so the
    // next acquire is granted synchronously (it would wait behind a stale entry otherwise).
    expect(s.inUse).toBe(0);
    for (const g of ['A', 'B', 'C', 'X']) expect(s.heldByGroup(g)).toBe(0);
    let got = false;
    void s.acquire('y', undefined, 'Y').then(() => (got = true));
    await Promise.resolve();
    expect(got).toBe(true);
    // An aborted key is forgotten: it may come back in another group.
    s.release('y');
    await s.acquire('a2', undefined, 'Z');
    expect(s.heldByGroup('Z')).toBe(1);
  });

  it('aborting one of several waiters of a key keeps the key in its group ring, FIFO for the rest', async () => {
    const s = new FairSlots(1);
    await s.acquire('b1', undefined, 'B');
    const order: string[] = [];
    const ac = new AbortController();
    const first = s.acquire('a1', undefined, 'A').then(() => void order.push('a1-first'));
    const middle = s.acquire('a1', ac.signal, 'A').then(() => void order.push('a1-aborted'));
    const last = s.acquire('a1', undefined, 'A').then(() => void order.push('a1-last'));
    const b = s.acquire('b1', undefined, 'B').then(() => void order.push('b1'));
    ac.abort(new Error('x'));
    await expect(middle).rejects.toThrow('x');
    await handOver(s, 'b1');
    await handOver(s, 'a1');
    await handOver(s, 'b1');
    await Promise.all([first, last, b]);
    expect(order).toEqual(['a1-first', 'b1', 'a1-last']);
    expect(s.heldBy('a1')).toBe(1);
    expect(s.heldByGroup('A')).toBe(1);
    s.release('a1');
    expect(s.inUse).toBe(0);
  });

  it('without a group each key is its own group: the per-key round-robin of before, heldByGroup(key) = heldBy(key)', async () => {
    const s = new FairSlots(1);
    await s.acquire('big');
    expect(s.heldByGroup('big')).toBe(1);
    const order: string[] = [];
    const waits = [
      ...queue(s, order, 'big', undefined, 3),
      ...queue(s, order, 'small', undefined, 2),
      // A named group with two keys counts as one party among the default groups.
      ...queue(s, order, 'g1', 'G', 2),
      ...queue(s, order, 'g2', 'G', 2),
    ];
    let holder = 'big';
    for (let i = 0; i < 9; i++) {
      await handOver(s, holder);
      holder = keyOf(order[i]!);
      expect(s.heldByGroup(holder === 'g1' || holder === 'g2' ? 'G' : holder)).toBe(1);
      expect(s.heldBy(holder)).toBe(1);
    }
    await Promise.all(waits);
    expect(order.map(keyOf)).toEqual(['big', 'small', 'g1', 'big', 'small', 'g2', 'big', 'g1', 'g2']);
    s.release(holder);
    expect(s.inUse).toBe(0);
  });

  it('setCapacity: growing hands the new slots to waiting groups in turn; shrinking waits for releases', async () => {
    const s = new FairSlots(1);
    await s.acquire('a1', undefined, 'A');
    const order: string[] = [];
    const waits = [...queue(s, order, 'a1', 'A', 3), ...queue(s, order, 'a2', 'A', 3), ...queue(s, order, 'a3', 'A', 3), ...queue(s, order, 'b1', 'B', 3)];
    s.setCapacity(5);
    await tick();
    // Four new slots: A, B, A, B.
    expect(order.map(keyOf)).toEqual(['a1', 'b1', 'a2', 'b1']);
    expect(s.capacity).toBe(5);
    expect(s.inUse).toBe(5);
    expect(s.heldByGroup('A')).toBe(3);
    expect(s.heldByGroup('B')).toBe(2);

    s.setCapacity(2);
    expect(s.capacity).toBe(2);
    expect(s.inUse).toBe(5); // nothing in flight is interrupted
    // Three releases only bring the use down to the new capacity: nobody is granted.
    s.release('b1');
    s.release('a1');
    s.release('a2');
    await tick();
    expect(order).toHaveLength(4);
    expect(s.inUse).toBe(2);
    // The next release is handed over again, to the group whose turn it is (A: a3).
    s.release('a1');
    await tick();
    expect(order.map(keyOf)).toEqual(['a1', 'b1', 'a2', 'b1', 'a3']);
    expect(s.inUse).toBe(2);
    expect(s.heldByGroup('A')).toBe(1);
    expect(s.heldByGroup('B')).toBe(1);
    expect(() => s.setCapacity(0)).toThrow(/not a positive integer/);
    expect(() => s.setCapacity(1.5)).toThrow(/not a positive integer/);
    // Growing again serves everyone left.
    s.setCapacity(100);
    await Promise.all(waits);
    expect(order).toHaveLength(12);
    expect(s.inUse).toBe(1 + 12 - 4); // held at the start + granted − released
  });
});
