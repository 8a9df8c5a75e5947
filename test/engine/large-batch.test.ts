import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const N = 100_000;
const RSS_BOUND_MB = 250;

/** VmRSS of a process in MB, or null once it is gone. */
function rssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

describe('engine: a 100,000-line batch', () => {
  let mock: MockServer;
  let besh: BeshProcess;
  let inputFileId: string;

  it('completes at latency 0 with 64 workers in bounded memory', async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 0 });
    cleanups.push(() => mock.close());
    const dir = tempDir('besh-engine-large-');
    cleanups.push(() => dir.remove());
    const work = tempDir('besh-engine-large-input-');
    cleanups.push(() => work.remove());
    besh = await startBesh(
      { OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: '64', BESH_PROGRESS_FLUSH_MS: '100', LOG_LEVEL: 'warn' },
      { dataDir: dir.path },
    );
    cleanups.push(() => besh.kill());
    const { client } = besh;
    const pid = besh.child.pid!;

    const inputPath = join(work.path, 'large.jsonl');
    writeFileSync(inputPath, chatLines(N, { prefix: 'L' }));

    const samples: number[] = [];
    const idle = rssMb(pid)!;
    const sampler = setInterval(() => {
      const v = rssMb(pid);
      if (v !== null) samples.push(v);
    }, 200);
    cleanups.push(() => clearInterval(sampler));

    const file = await client.files.create({ file: createReadStream(inputPath), purpose: 'batch' });
    inputFileId = file.id;
    expect(file.bytes).toBeGreaterThan(N * 100);
    const b = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const running = await waitFor(client, b.id, (x) => x.status === 'in_progress' || x.status === 'completed' || x.status === 'failed', 60_000);
    const t0 = Date.now();
    const c0 = running.request_counts?.completed ?? 0;
    const done = await waitDone(client, b.id, 150_000);
    const seconds = (Date.now() - t0) / 1000;
    clearInterval(sampler);

    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
    expect(done.error_file_id).toBeNull();

    // Every line exactly once, read as a stream-sized check on the output file.
    const text = await (await client.files.content(done.output_file_id!)).text();
    const ids = new Set<string>();
    let lines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      lines++;
      const m = /"custom_id":"([^"]+)"/.exec(line);
      if (m) ids.add(m[1]!);
    }
    expect(lines).toBe(N);
    expect(ids.size).toBe(N);
    expect(mock.stats().total_requests).toBe(N);
    expect(mock.stats().max_in_flight).toBeLessThanOrEqual(64);

    const peak = Math.max(...samples);
    const throughput = (N - c0) / seconds;
    console.log(
      `large batch: ${N} lines in ${seconds.toFixed(1)} s (${throughput.toFixed(0)} req/s); RSS idle ${idle.toFixed(0)} MB, peak ${peak.toFixed(0)} MB over ${samples.length} samples`,
    );
    expect(samples.length).toBeGreaterThan(3);
    expect(peak).toBeLessThan(RSS_BOUND_MB);
  }, 180_000); // 31 s in a full make test here, 52 s with one more busy core; it waits up to 150 s for the batch
  it('cancel while the big input is still being validated: cancelled, nothing sent', async () => {
    expect(inputFileId).toBeDefined();
    const { client } = besh;
    const sent = mock.stats().total_requests;
    const b = await client.batches.create({ input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const c = await client.batches.cancel(b.id);
    expect(c.status).toBe('cancelling');
    const done = await waitDone(client, b.id, 30_000);
    expect(done.status).toBe('cancelled');
    expect(done.in_progress_at).toBeNull();
    expect(done.cancelled_at).toEqual(expect.any(Number));
    expect(done.output_file_id).toBeNull();
    await new Promise((r) => setTimeout(r, 300));
    expect(mock.stats().total_requests).toBe(sent);
  });
});
