/**
 * custom_id lookups on a 1,000,000-line batch: the index names the request's shard, and only that
 * shard's lines are read — while the batch runs (its segments) and once it is finalized (its range
 * of the composed files). Timed against a full scan of the same results in the same run, and the
 * bytes read are checked through the answer's x-besh-bytes-read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { customIdOf, getResults } from './results-helpers.js';

const N = 1_000_000;
const SHARD_LINES = 5000;
/** Requests done before the live lookups: a few shards finished, most of the batch not started. */
const LIVE_AFTER = 12_000;

/** N short chat requests (custom ids m-0 … m-999999), ~110 bytes a line. */
function millionLines(): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < N; i++) parts.push(`{"custom_id":"m-${i}","method":"POST","url":"/v1/chat/completions","body":{"model":"mock","messages":[{"role":"user","content":"q${i}"}]}}\n`);
  return Buffer.from(parts.join(''));
}

describe('custom_id lookup on a 1,000,000-line batch', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 0 });
    dir = tempDir('besh-results-1m-');
    besh = await startBesh(
      { OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: '128', BESH_SHARD_LINES: String(SHARD_LINES), BESH_PROGRESS_FLUSH_MS: '200', LOG_LEVEL: 'warn' },
      { dataDir: dir.path },
    );
  });
  afterAll(async () => {
    await besh?.kill();
    await mock?.close();
    dir?.remove();
  });

  const lookup = async (id: string, cid: string) => {
    const t0 = performance.now();
    const r = await getResults(besh.baseURL, id, { custom_id: cid });
    return { ...r, ms: performance.now() - t0, bytesRead: Number(r.headers.get('x-besh-bytes-read') ?? NaN) };
  };

  it('answers from one shard, live and finalized, in a small fraction of a full scan', async () => {
    const t = { start: performance.now(), uploaded: 0, validated: 0, live: 0, finalized: 0 };
    const client = besh.client;
    const fileId = await upload(client, millionLines(), 'million.jsonl');
    t.uploaded = performance.now();
    const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(client, b.id, (x) => x.status !== 'validating', 60_000);
    t.validated = performance.now();
    const running = await waitFor(client, b.id, (x) => (x.request_counts?.completed ?? 0) >= LIVE_AFTER, 60_000);
    t.live = performance.now();
    expect(running.status).toBe('in_progress');

    // Live: lines of finished shards, from their segments.
    const live: Array<Awaited<ReturnType<typeof lookup>>> = [];
    for (const i of [0, 1, 4_999, 5_000, 7_777, 9_999]) {
      const r = await lookup(b.id, `m-${i}`);
      expect(r.status, r.text).toBe(200);
      expect(customIdOf(r.text)).toBe(`m-${i}`);
      expect(r.headers.get('x-besh-result-kind')).toBe('output');
      live.push(r);
    }
    // A line not written yet (the last shard has not started), and ids the batch does not have.
    const notReady = await lookup(b.id, `m-${N - 1}`);
    expect(notReady.status).toBe(404);
    expect(notReady.body.error.code).toBe('result_not_ready');
    for (const cid of ['m--1', `m-${N}`, 'nothing-like-it']) {
      const r = await lookup(b.id, cid);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('custom_id_not_found');
      // Only the index was read (a few KiB of its 8 MB).
      expect(r.bytesRead).toBeLessThan(64 * 1024);
    }

    // Finalized: cancel (the rest are written as batch_cancelled, no upstream calls), then look again.
    await client.batches.cancel(b.id);
    const done = await waitDone(client, b.id, 120_000);
    t.finalized = performance.now();
    expect(done.status).toBe('cancelled');
    expect(done.request_counts!.completed + done.request_counts!.failed).toBe(N);

    // The full scan: every result line of the batch, read and searched for one id.
    const target = `m-${N - 3}`;
    const s0 = performance.now();
    const res = await fetch(`${besh.baseURL}/batches/${b.id}/results`);
    let scanned = 0;
    let tail = '';
    let hit: string | null = null;
    const needle = `"custom_id":"${target}"`;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      scanned += chunk.length;
      const text = tail + Buffer.from(chunk).toString('utf8');
      const lines = text.split('\n');
      tail = lines.pop()!;
      hit ??= lines.find((l) => l.includes(needle)) ?? null;
    }
    const scanMs = performance.now() - s0;
    expect(hit).not.toBeNull();
    const totalBytes = Number(res.headers.get('content-length'));
    expect(scanned).toBe(totalBytes);

    const finalLookups: Array<Awaited<ReturnType<typeof lookup>>> = [];
    for (const [i, kind] of [
      [N - 3, 'error'],
      [0, 'output'],
      [12_345, 'output'],
      [500_000, 'error'],
    ] as const) {
      const r = await lookup(b.id, `m-${i}`);
      expect(r.status, r.text).toBe(200);
      expect(customIdOf(r.text)).toBe(`m-${i}`);
      expect(r.headers.get('x-besh-result-kind')).toBe(kind);
      finalLookups.push(r);
    }
    expect(finalLookups[0]!.text.slice(0, -1)).toBe(hit);
    const slowest = Math.max(...finalLookups.map((r) => r.ms));
    const mostBytes = Math.max(...[...live, ...finalLookups].map((r) => r.bytesRead));
    const report = {
      phases_s: {
        upload: (t.uploaded - t.start) / 1000,
        validate: (t.validated - t.uploaded) / 1000,
        run_to_live: (t.live - t.validated) / 1000,
        cancel_and_finalize: (t.finalized - t.live) / 1000,
      },
      full_scan: { ms: Math.round(scanMs), bytes: totalBytes },
      live_lookups_ms: live.map((r) => Math.round(r.ms)),
      final_lookups_ms: finalLookups.map((r) => Math.round(r.ms)),
      bytes_read: [...live, ...finalLookups].map((r) => r.bytesRead),
    };
    console.log(`results-million: ${JSON.stringify(report)}`);
    // One shard's lines (≤ 5,000 of 1,000,000) and a few index pages: well under 2% of the bytes, and of the time.
    expect(mostBytes).toBeLessThan(totalBytes / 50);
    expect(slowest).toBeLessThan(scanMs / 10);
    // ~45 s on this 2-core machine alone; over 60 s with one more busy core.
  }, 180_000);
});
