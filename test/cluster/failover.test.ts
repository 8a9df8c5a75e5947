/**
 * A cluster of `besh serve` replicas on the machine's PostgreSQL and an S3 protocol server
 * (s3rver), each started only with BESH_DATABASE_URL, BESH_BLOB_URL, the AWS variables and its own
 * empty data directory: one batch is worked by all of them, and replicas killed (-9) or paused
 * (SIGSTOP) mid-batch lose nothing and duplicate nothing.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import type { BeshProcess } from '../helpers/besh-process.js';
import { tempDir } from '../helpers/besh-process.js';
import { CLUSTER_TIMING, type ClusterBackend, startCluster, startClusterBackend } from '../helpers/cluster.js';

const WORKERS = 16;
const FLUSH_MS = Number(CLUSTER_TIMING.BESH_SEGMENT_FLUSH_MS);
const TTL_MS = Number(CLUSTER_TIMING.BESH_LEASE_TTL_MS);

const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const clientOf = (r: BeshProcess): OpenAI => new OpenAI({ baseURL: r.baseURL, apiKey: 'test-key', maxRetries: 0, timeout: 30_000 });

interface Setup {
  backend: ClusterBackend;
  mock: MockServer;
  replicas: BeshProcess[];
}

async function setup(n: number, mockLatencyMs: number, env: Record<string, string> = {}): Promise<Setup> {
  const mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: mockLatencyMs });
  cleanups.push(() => mock.close());
  const dir = tempDir('besh-cluster-');
  cleanups.push(() => dir.remove());
  const backend = await startClusterBackend();
  cleanups.push(() => backend.stop());
  const cluster = await startCluster(n, { OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: String(WORKERS), BESH_SHARD_LINES: '200', LOG_LEVEL: 'warn', ...env }, { dataDir: dir.path, backend });
  cleanups.push(() => cluster.stop());
  return { backend, mock, replicas: cluster.replicas };
}

/** Live leases per replica id, from the shared database. */
async function leasesByOwner(backend: ClusterBackend, batchId: string): Promise<Map<string, number>> {
  const rows = await backend.db.query<{ owner: string; n: string }>(
    `SELECT lease_owner AS owner, COUNT(*) AS n FROM batch_shards WHERE batch_id = $1 AND state = 'leased' GROUP BY lease_owner`,
    [batchId],
  );
  return new Map(rows.map((r) => [r.owner, Number(r.n)]));
}

/** Checks the finished batch line by line; returns how many requests the mock received more than once. */
async function checkEveryLineOnce(client: OpenAI, id: string, n: number, prefix: string, mock: MockServer): Promise<number> {
  const done = await waitDone(client, id, 90_000);
  expect(done.status).toBe('completed');
  const output = await readJsonl(client, done.output_file_id);
  const errors = await readJsonl(client, done.error_file_id);
  expect(errors).toEqual([]);
  const ids = output.map((l) => l.custom_id as string);
  expect(ids).toHaveLength(n);
  expect(new Set(ids).size).toBe(n);
  for (let i = 0; i < n; i++) expect(ids).toContain(`${prefix}-${i}`);
  expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
  const tokens = output.reduce((s, l) => s + (l.response.body.usage.total_tokens as number), 0);
  expect(done.usage?.total_tokens).toBe(tokens);
  const received = mock.stats().received;
  expect(Object.keys(received).filter((k) => k.startsWith(`${prefix}-`))).toHaveLength(n);
  return Object.values(received).reduce((s, c) => s + (c - 1), 0);
}

describe('cluster: replicas killed mid-batch', () => {
  for (const victims of [1, 2]) {
    it(`kill -9 of ${victims} of 3 replicas: the batch completes on the rest, every line once, re-sent ≤ in flight + the flush window`, async () => {
      const N = 6000;
      const s = await setup(3, 20);
      const prefix = `kill${victims}`;
      const client = clientOf(s.replicas[0]!);
      const fileId = await upload(client, chatLines(N, { prefix }));
      const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
      // Every replica takes part before the kill.
      await waitFor(client, b.id, (x) => x.request_counts!.completed >= N * 0.25, 30_000);
      // The rate just before the kill (the average since creation, start-up included, is lower
      // than this on a loaded machine, and the bound below with it).
      const t0 = Date.now();
      const sent0 = s.mock.stats().total_requests;
      await sleep(300);
      const perReplicaRate = ((s.mock.stats().total_requests - sent0) * 1000) / (Date.now() - t0) / 3;
      const owners = await leasesByOwner(s.backend, b.id);
      const victimsList = s.replicas.slice(1, 1 + victims);
      for (const v of victimsList) expect(owners.get(`r${s.replicas.indexOf(v) + 1}`) ?? 0).toBeGreaterThan(0);
      await Promise.all(victimsList.map((v) => v.kill()));

      const resent = await checkEveryLineOnce(client, b.id, N, prefix, s.mock);
      // What a dead replica may have sent without its result becoming durable: its in-flight
      // requests, and what it answered within one segment flush window.
      const bound = victims * (WORKERS + Math.ceil((perReplicaRate * FLUSH_MS) / 1000) * 2);
      console.log(`failover: resent ${resent}, bound ${bound}, rate ${Math.round(perReplicaRate)}`);
      expect(resent).toBeLessThanOrEqual(bound);
    });
  }
});

describe('cluster: a replica paused past its lease', () => {
  it('SIGSTOP then SIGCONT: its shards are taken over and it writes nothing more for them', async () => {
    const N = 3000;
    const s = await setup(3, 60, { MAX_WORKERS: '8', BESH_SHARD_LINES: '100' });
    const prefix = 'pause';
    const client = clientOf(s.replicas[0]!);
    const fileId = await upload(client, chatLines(N, { prefix }));
    const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const victim = s.replicas[2]!;
    for (;;) {
      if (((await leasesByOwner(s.backend, b.id)).get('r3') ?? 0) > 0) break;
      await sleep(20);
    }
    process.kill(victim.child.pid!, 'SIGSTOP');
    let resumed = false;
    cleanups.push(() => {
      if (!resumed) process.kill(victim.child.pid!, 'SIGCONT');
    });
    const held = await s.backend.db.query<{ shard_no: number; epoch: number }>(
      `SELECT shard_no, epoch FROM batch_shards WHERE batch_id = $1 AND lease_owner = 'r3' AND state = 'leased'`,
      [b.id],
    );
    expect(held.length).toBeGreaterThan(0);
    // Taken over once the lease expires.
    const deadline = Date.now() + TTL_MS * 6;
    for (;;) {
      const rows = await s.backend.db.query<{ n: string }>(
        `SELECT COUNT(*) AS n FROM batch_shards WHERE batch_id = $1 AND lease_owner = 'r3' AND state = 'leased'`,
        [b.id],
      );
      if (Number(rows[0]!.n) === 0) break;
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(50);
    }
    const segmentsOf = async (): Promise<string[]> => {
      const rows = await s.backend.db.query<{ blob_key: string }>(
        `SELECT blob_key FROM result_segments WHERE batch_id = $1 AND (shard_no, epoch) IN (${held.map((_, i) => `($${2 * i + 2}::int, $${2 * i + 3}::int)`).join(', ')}) ORDER BY blob_key`,
        [b.id, ...held.flatMap((h) => [h.shard_no, h.epoch])],
      );
      return rows.map((r) => r.blob_key);
    };
    const objectsOf = async (): Promise<string[]> => {
      const all = await s.backend.listBlobs(`batches/${b.id}/segments/`);
      return all.filter((k) => held.some((h) => k.includes(`-${String(h.shard_no).padStart(6, '0')}-${String(h.epoch).padStart(6, '0')}-`)));
    };
    const registeredBefore = await segmentsOf();
    const objectsBefore = await objectsOf();

    process.kill(victim.child.pid!, 'SIGCONT');
    resumed = true;
    // Its timers fire at once: a heartbeat that finds the leases gone, segment flushes refused.
    await sleep(TTL_MS);
    expect(await segmentsOf()).toEqual(registeredBefore);
    expect(await objectsOf()).toEqual(objectsBefore);
    expect(victim.child.exitCode).toBeNull(); // alive and well, just no longer the holder

    await checkEveryLineOnce(client, b.id, N, prefix, s.mock);
  });
});

describe('cluster: one batch, every replica', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup(3, 100, { MAX_WORKERS: '32' });
  });

  it('a 12,000-line batch against a 100 ms upstream is worked by all three at once, every line once', async () => {
    const N = 12_000;
    const client = clientOf(s.replicas[1]!);
    const fileId = await upload(client, chatLines(N, { prefix: 'wide' }));
    const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const seen = new Set<string>();
    let peak = 0;
    for (;;) {
      const owners = await leasesByOwner(s.backend, b.id);
      for (const [o, n] of owners) if (n > 0) seen.add(o);
      peak = Math.max(peak, [...owners.values()].filter((n) => n > 0).length);
      if (isDone((await client.batches.retrieve(b.id)).status)) break;
      await sleep(100);
    }
    expect([...seen].sort()).toEqual(['r1', 'r2', 'r3']);
    expect(peak).toBe(3);
    await checkEveryLineOnce(client, b.id, N, 'wide', s.mock);
  });

  it('cancel on one replica of a batch another runs: it stops within 2 s, cancelled, the rest batch_cancelled', async () => {
    const N = 3000;
    const a = clientOf(s.replicas[0]!);
    const bClient = clientOf(s.replicas[2]!);
    const fileId = await upload(a, chatLines(N, { prefix: 'cxl' }));
    const b = await a.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(a, b.id, (x) => x.request_counts!.completed >= 200, 30_000);
    const owners = await leasesByOwner(s.backend, b.id);
    expect(owners.get('r1') ?? 0).toBeGreaterThan(0);
    const cancelled = await bClient.batches.cancel(b.id);
    expect(['cancelling', 'cancelled']).toContain(cancelled.status);
    await sleep(2000);
    const quietFrom = s.mock.stats().total_requests;
    await sleep(600);
    expect(s.mock.stats().total_requests - quietFrom).toBe(0);
    const done = await waitDone(a, b.id, 30_000);
    expect(done.status).toBe('cancelled');
    const output = await readJsonl(a, done.output_file_id);
    const errors = await readJsonl(a, done.error_file_id);
    const ids = [...output, ...errors].map((l) => l.custom_id as string);
    expect(new Set(ids).size).toBe(N);
    expect(ids).toHaveLength(N);
    for (const e of errors) expect(e.error?.code).toBe('batch_cancelled');
    expect(done.request_counts).toEqual({ total: N, completed: output.length, failed: errors.length });
  });

  it('create on one replica; retrieve, list, dashboard and delete on the others', async () => {
    const [r1, r2, r3] = s.replicas.map(clientOf) as [OpenAI, OpenAI, OpenAI];
    const fileId = await upload(r1, chatLines(50, { prefix: 'any' }));
    const b = await r1.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect((await r2.batches.retrieve(b.id)).id).toBe(b.id);
    const done = await waitDone(r3, b.id, 30_000);
    expect(done.status).toBe('completed');
    const listed: string[] = [];
    for await (const x of r2.batches.list({ limit: 100 })) listed.push(x.id);
    expect(listed).toContain(b.id);
    expect((await readJsonl(r3, done.output_file_id)).length).toBe(50);
    const live = (await (await fetch(`${s.replicas[1]!.url}/v1/batches/analytics/live`)).json()) as any;
    expect(live.engine.replicas.map((r: any) => r.id).sort()).toEqual(['r1', 'r2', 'r3']);
    expect(live.engine.replicas.every((r: any) => r.alive)).toBe(true);
    const del = await fetch(`${s.replicas[2]!.baseURL}/batches/${b.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    await expect(r1.batches.retrieve(b.id)).rejects.toMatchObject({ status: 404 });
    await expect(r2.files.retrieve(done.output_file_id!)).rejects.toMatchObject({ status: 404 });
    expect(await s.backend.listBlobs(`batches/${b.id}/`)).toEqual([]);
  });
});

const isDone = (status: string): boolean => ['completed', 'failed', 'expired', 'cancelled'].includes(status);
