import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { AnalyticsQueries, AnalyticsRecorder } from '../../src/analytics/index.js';
import { SqliteMetaStore } from '../../src/store/sqlite/sqlite-meta-store.js';

// 2023-11-14 22:13:20 UTC, a fixed clock so buckets are known exactly.
const T0 = 1_700_000_000;
let now = T0 * 1000;
let store: SqliteMetaStore;
let recorder: AnalyticsRecorder;
let queries: AnalyticsQueries;

beforeEach(() => {
  now = T0 * 1000;
  store = SqliteMetaStore.open(':memory:');
  recorder = new AnalyticsRecorder(store, { now: () => now });
  queries = new AnalyticsQueries(store, recorder, () => now);
});
afterEach(async () => {
  await recorder.stop();
  await store.close();
});

const usage = (i: number, o: number) => ({ inputTokens: i, outputTokens: o });

describe('analytics counters (recorder + store + queries)', () => {
  it('buffers per minute, flushes one additive row per minute, and rolls minutes up into 15-min buckets', async () => {
    recorder.requestDone({ project: 'a', ok: true, latencyMs: 100, usage: usage(10, 5) });
    recorder.requestDone({ project: 'a', ok: false, latencyMs: 300, usage: null });
    recorder.upload('a', 1000);
    recorder.requestDone({ project: 'b', ok: false, latencyMs: 50, usage: null });
    recorder.batchCreated('a', T0);
    expect(await store.listAnalyticsMinutes(0, T0 * 2)).toEqual([]); // nothing written before a flush…
    expect((await queries.summary()).requests_completed).toBe(1); // …yet the queries already see it
    expect((await queries.summary('b')).requests_failed).toBe(1);
    await recorder.flush();
    now += 20 * 60 * 1000; // 20 minutes later: another bucket
    recorder.requestDone({ project: 'a', ok: true, latencyMs: 200, usage: usage(1, 2) });
    recorder.batchFinished('a', 90);
    await recorder.flush();
    recorder.requestDone({ project: 'a', ok: true, latencyMs: 200, usage: usage(1, 2) }); // same minute, second flush adds
    await recorder.flush();

    const minutes = await store.listAnalyticsMinutes(0, T0 * 2, 'a');
    expect(minutes.map((m) => m.minute)).toEqual([T0 - (T0 % 60), T0 + 1200 - ((T0 + 1200) % 60)]);
    expect(minutes[1]).toMatchObject({ requestsCompleted: 2, inputTokens: 2, outputTokens: 4, batchesFinished: 1, batchSecondsSum: 90 });

    // Summed over every project: project b's failed request is in the first minute too.
    expect((await store.listAnalyticsMinutes(0, T0 * 2))[0]).toMatchObject({ project: '*', requestsFailed: 2 });
    expect(await store.listAnalyticsMinutes(0, T0 * 2, 'b')).toEqual([expect.objectContaining({ project: 'b', requestsFailed: 1, requestsCompleted: 0 })]);

    const tl = await queries.timeline(24, 'a');
    expect(tl.data).toHaveLength(96);
    const nonEmpty = tl.data.filter((b) => b.requests_completed + b.requests_failed + b.uploads > 0);
    expect(nonEmpty).toEqual([
      { timestamp: T0 - (T0 % 900), batches_created: 1, requests_completed: 1, requests_failed: 1, uploads: 1, upload_bytes: 1000 },
      { timestamp: T0 + 1200 - ((T0 + 1200) % 900), batches_created: 0, requests_completed: 2, requests_failed: 0, uploads: 0, upload_bytes: 0 },
    ]);
    const tokens = (await queries.tokens(24, 'a')).data.filter((b) => b.requests > 0);
    expect(tokens[0]).toMatchObject({ input_tokens: 10, output_tokens: 5, requests: 2, avg_latency_ms: 200 });
    expect(tokens[1]).toMatchObject({ input_tokens: 2, output_tokens: 4, batches_finished: 1, avg_batch_duration_seconds: 90 });

    const live = await queries.perMinute(60, 'a');
    expect(live.data).toHaveLength(60);
    expect(live.data.at(-1)).toMatchObject({ requests_completed: 2, requests_per_second: 0.03 });
    expect(live.data.reduce((a, m) => a + m.requests_completed, 0)).toBe(3);

    expect(await queries.summary()).toMatchObject({ requests_completed: 3, requests_failed: 2 });
    const s = await queries.summary('a');
    expect(s).toMatchObject({ requests_completed: 3, requests_failed: 1, error_rate: 0.25, input_tokens: 12, output_tokens: 9, uploads: 1, upload_bytes: 1000 });
  });
});

