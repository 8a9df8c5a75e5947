import { describe, expect, it } from 'vitest';

import type { EngineClock } from '../../src/mock/engine-clock.js';
import { textPrompt } from '../../src/mock/prompt.js';
import { type JobSpec, StepEngine, type StepEngineConfig } from '../../src/mock/step-engine.js';

/** A clock whose time moves only when `run` fires the next timer: the engine runs without waiting. */
class VirtualClock implements EngineClock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Fires timers in time order until none is left (or time passes `until`). */
  run(until = Infinity): void {
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (next === undefined || e[1].at < next[1].at) next = e;
      if (next === undefined || next[1].at > until) {
        if (until !== Infinity) this.t = Math.max(this.t, until);
        return;
      }
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
  }
}

const config = (o: Partial<StepEngineConfig> = {}): StepEngineConfig => ({
  maxNumSeqs: 8,
  maxNumBatchedTokens: 8192,
  prefillMsPerToken: 0,
  decodeMsPerToken: 10,
  decodeGrowthPerSeq: 0,
  prefixCacheTokens: 0,
  kvCacheTokens: 1_000_000,
  schedulingPolicy: 'fcfs',
  ...o,
});

interface Done {
  name: string;
  at: number;
  cached: number;
}

function harness(o: Partial<StepEngineConfig> = {}) {
  const clock = new VirtualClock();
  const engine = new StepEngine(config(o), clock);
  const done: Done[] = [];
  const submit = (name: string, text: string, outputs: number[], extra: Partial<JobSpec> = {}) =>
    engine.submit({
      work: [{ prompt: textPrompt(text), outputs }],
      priority: 0,
      cacheSalt: 7,
      onDone: (r) => done.push({ name, at: clock.t, cached: r.cachedTokens }),
      ...extra,
    });
  return { clock, engine, done, submit };
}

/** A prompt of exactly `tokens` tokens (4 characters each), starting with `lead`. */
const promptOf = (tokens: number, lead = ''): string => (lead + 'x'.repeat(4 * tokens)).slice(0, 4 * tokens);

/** Makespan and output throughput of `n` equal requests arriving together. */
function load(n: number, o: Partial<StepEngineConfig>): { makespan: number; tokensPerMs: number; meanLatency: number } {
  const h = harness({ maxNumSeqs: 256, ...o });
  for (let i = 0; i < n; i++) h.submit(`r${i}`, promptOf(64, `r${i}`), [100]);
  h.clock.run();
  const makespan = Math.max(...h.done.map((d) => d.at));
  return { makespan, tokensPerMs: (n * 100) / makespan, meanLatency: h.done.reduce((a, d) => a + d.at, 0) / n };
}

describe('StepEngine (virtual time)', () => {
  it('times one request as one prefill step (that samples the first token) and a decode step per further token', () => {
    const h = harness({ prefillMsPerToken: 0.5, decodeMsPerToken: 10 });
    h.submit('a', promptOf(100), [10]);
    h.clock.run();
    // prefill: 10 + 0.5 × 100 = 60 ms; then 9 decode steps of 10 ms.
    expect(h.done).toEqual([{ name: 'a', at: 150, cached: 0 }]);
  });

  it('runs at most maxNumSeqs sequences; the rest wait and start as slots free, FIFO', () => {
    const h = harness({ maxNumSeqs: 2 });
    h.submit('a', promptOf(8), [5]);
    h.submit('b', promptOf(8), [10]);
    h.submit('c', promptOf(8), [5]);
    h.submit('d', promptOf(8), [1]);
    expect(h.engine.levels()).toMatchObject({ running: 0, waiting: 4 }); // planned once this turn is over
    h.clock.run(0);
    expect(h.engine.levels()).toMatchObject({ running: 2, waiting: 2 });
    h.clock.run();
    // a ends at step 5 (50 ms), c starts at 50 and ends at 100 with b; d then needs one step.
    expect(h.done.map((d) => [d.name, d.at])).toEqual([
      ['a', 50],
      ['b', 100],
      ['c', 100],
      ['d', 110],
    ]);
    expect(h.engine.maxInFlight).toBe(2);
    expect(h.engine.maxQueued).toBe(4);
    expect(h.engine.levels()).toMatchObject({ running: 0, waiting: 0, kvCacheUsage: 0 });
  });

  it('slows every decode step by the growth per running sequence', () => {
    const h = harness({ decodeMsPerToken: 10, decodeGrowthPerSeq: 0.5 });
    h.submit('a', promptOf(8), [3]);
    h.submit('b', promptOf(8), [3]);
    h.clock.run();
    // First step: both prefill (no decode yet) = 10 ms; then 2 steps with 2 decoding = 15 ms each.
    expect(h.done.map((d) => d.at)).toEqual([40, 40]);
  });

  it('gains throughput with the running batch up to a saturation point, and latency with it', () => {
    const o = { decodeMsPerToken: 6.5, decodeGrowthPerSeq: 0.03, prefillMsPerToken: 0.03 };
    const runs = [1, 8, 64, 256].map((n) => load(n, o));
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.tokensPerMs).toBeGreaterThan(runs[i - 1]!.tokensPerMs);
      expect(runs[i]!.meanLatency).toBeGreaterThan(runs[i - 1]!.meanLatency);
    }
    const saturation = 1 / (o.decodeMsPerToken * o.decodeGrowthPerSeq); // tokens per ms as the batch → ∞
    expect(runs[3]!.tokensPerMs).toBeLessThan(saturation);
    expect(runs[3]!.tokensPerMs).toBeGreaterThan(0.75 * saturation);
    // Past max-num-seqs the batch stops growing: 512 requests take twice as long as 256.
    const twice = load(512, o);
    expect(twice.tokensPerMs).toBeCloseTo(runs[3]!.tokensPerMs, 1);
  });

  it('spends a step’s token budget on decodes first, then on prefill chunks', () => {
    const h = harness({ maxNumBatchedTokens: 100, prefillMsPerToken: 1, decodeMsPerToken: 10 });
    h.submit('long', promptOf(250), [1]);
    h.clock.run();
    // 250 prompt tokens in chunks of 100, 100, 50: three steps of 10 + chunk ms.
    expect(h.done.map((d) => d.at)).toEqual([110 + 110 + 60]);
  });

  it('serves a shared prefix from the cache: fewer prefill tokens, reported as cached', () => {
    const h = harness({ prefixCacheTokens: 10_000, prefillMsPerToken: 1, decodeMsPerToken: 10 });
    const system = promptOf(200, 'system prompt');
    h.submit('first', `${system}${promptOf(20, 'question one')}`, [1]);
    h.clock.run();
    const t0 = h.clock.t;
    h.submit('second', `${system}${promptOf(20, 'question two')}`, [1]);
    h.submit('unrelated', promptOf(220, 'something else'), [1]);
    h.clock.run();
    const [first, second, unrelated] = h.done;
    expect(first).toMatchObject({ name: 'first', at: 10 + 220, cached: 0 });
    expect(second!.cached).toBe(192); // 12 whole blocks of the 200-token system prompt
    expect(unrelated!.cached).toBe(0);
    // Both ran in one step with 28 + 220 uncached prompt tokens.
    expect(second!.at - t0).toBe(10 + 28 + 220);
    expect(h.engine.levels()).toMatchObject({ prefixCacheQueries: 220 * 3, prefixCacheHits: 192 });
  });

  it('matches only a prefix: equal blocks after a different start do not hit', () => {
    const h = harness({ prefixCacheTokens: 10_000 });
    const tail = promptOf(64, 'common tail');
    h.submit('a', `${promptOf(16, 'start A')}${tail}`, [1]);
    h.clock.run();
    h.submit('b', `${promptOf(16, 'start B')}${tail}`, [1]);
    h.submit('a-again', `${promptOf(16, 'start A')}${tail}`, [1]);
    h.clock.run();
    expect(h.done.map((d) => [d.name, d.cached])).toEqual([
      ['a', 0],
      ['b', 0],
      ['a-again', 64], // 80 tokens: the last block is recomputed, as vLLM does
    ]);
  });

  it('evicts least recently used blocks when the prefix cache is full, a prompt’s tail before its head', () => {
    const h = harness({ prefixCacheTokens: 96 }); // 6 blocks
    h.submit('a', promptOf(65, 'aaaa'), [1]); // 4 blocks
    h.clock.run();
    h.submit('b', promptOf(65, 'bbbb'), [1]); // 4 blocks: 2 fit, 2 evict a's last two
    h.clock.run();
    h.submit('a2', promptOf(65, 'aaaa'), [1]);
    h.clock.run();
    expect(h.done.map((d) => d.cached)).toEqual([0, 0, 32]);
    h.submit('b2', promptOf(65, 'bbbb'), [1]); // a2 re-inserted its tail over b's least recent blocks
    h.clock.run();
    expect(h.done[3]!.cached).toBe(32);
  });

  it('orders the waiting queue by priority (lower first), then arrival, with the priority policy', () => {
    const h = harness({ maxNumSeqs: 1, schedulingPolicy: 'priority' });
    h.submit('running', promptOf(8), [5]);
    h.clock.run(0);
    for (const [name, priority] of [['p5', 5], ['p1', 1], ['p0', 0], ['p1-later', 1], ['p-neg', -3]] as const) {
      h.submit(name, promptOf(8), [1], { priority });
    }
    h.clock.run();
    expect(h.done.map((d) => d.name)).toEqual(['running', 'p-neg', 'p0', 'p1', 'p1-later', 'p5']);
  });

  it('admits only what fits in the KV cache, and reports its usage', () => {
    const h = harness({ kvCacheTokens: 100 });
    h.submit('a', promptOf(40), [20]); // reserves 60
    h.submit('b', promptOf(40), [20]); // 120 > 100: waits for a
    h.clock.run(0);
    expect(h.engine.levels()).toMatchObject({ running: 1, waiting: 1 });
    h.clock.run(55); // a: prefill step + 5 decode steps
    const usage = h.engine.levels().kvCacheUsage;
    expect(usage).toBeGreaterThan(0.4); // 40 prompt + 6 generated tokens of 100
    expect(usage).toBeLessThanOrEqual(0.6);
    h.clock.run();
    expect(h.done.map((d) => [d.name, d.at])).toEqual([
      ['a', 200],
      ['b', 400],
    ]);
  });

  it('frees the place of a cancelled request at once', () => {
    const h = harness({ maxNumSeqs: 1 });
    const a = h.submit('a', promptOf(8), [100]);
    h.submit('b', promptOf(8), [2]);
    h.clock.run(35);
    h.engine.cancel(a);
    expect(h.engine.levels()).toMatchObject({ running: 0, waiting: 1 });
    h.clock.run();
    // The step under way at 35 ends at 40; b then takes two steps.
    expect(h.done).toEqual([{ name: 'b', at: 60, cached: 0 }]);
  });

  it('is deterministic: the same arrivals give the same schedule', () => {
    const once = (): string => {
      const h = harness({ maxNumSeqs: 3, prefixCacheTokens: 256, prefillMsPerToken: 0.3, decodeGrowthPerSeq: 0.2 });
      for (let i = 0; i < 20; i++) h.submit(`r${i}`, promptOf(20 + ((i * 7) % 50), `p${i % 3}`), [1 + ((i * 13) % 17)]);
      h.clock.run();
      return JSON.stringify(h.done);
    };
    expect(once()).toBe(once());
  });
});
