/**
 * Two replicas on one PostgreSQL database and one bucket (test/helpers/cluster.ts): every event is
 * delivered once per endpoint, and every attempt is made by exactly one replica, though both
 * replicas poll the same outbox and wake on every status change (LISTEN/NOTIFY). Each first
 * attempt is answered 500, so the retries too are claimed across replicas.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone } from '../helpers/batches.js';
import { tempDir } from '../helpers/besh-process.js';
import { type Cluster, type ClusterBackend, startCluster, startClusterBackend } from '../helpers/cluster.js';
import { api } from '../helpers/keys.js';
import { createEndpoint, deliveriesOf, type Delivery, expectThinEvent, expectVerified, WEBHOOK_ENV } from './helpers.js';
import { type Receiver, startReceiver } from './receiver.js';

describe('webhooks on a two-replica cluster', () => {
  const dir = tempDir('besh-webhooks-cluster-');
  let backend: ClusterBackend;
  let cluster: Cluster;
  let mock: MockServer;
  let recv: Receiver;
  const secrets: string[] = [];

  beforeAll(async () => {
    recv = await startReceiver({ verifyWith: () => secrets, answer: (r) => (r.attempt === 1 ? 500 : 200) });
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 5 });
    backend = await startClusterBackend();
    cluster = await startCluster(2, { ...WEBHOOK_ENV, BESH_WEBHOOK_POLL_MS: '20', OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'info' }, { dataDir: dir.path, backend });
  });
  afterAll(async () => {
    await cluster?.stop();
    await backend?.stop();
    await mock?.close();
    await recv?.close();
    dir.remove();
  });

  it('one delivery per event and endpoint, each attempt made once, whichever replica queued or sent it', async () => {
    const [r1, r2] = cluster.replicas as [(typeof cluster.replicas)[0], (typeof cluster.replicas)[0]];
    const a = await createEndpoint(r1, `${recv.url}/a`);
    const b = await createEndpoint(r2, `${recv.url}/b`, { events: ['batch.completed'] });
    secrets.push(a.secret, b.secret);

    // Batches created and finished on either replica: three complete, three fail validation.
    const clients = [r1, r2].map((r) => new OpenAI({ baseURL: r.baseURL, apiKey: 'k', maxRetries: 0 }));
    const batches = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const c = clients[i % 2]!;
        const input = await upload(c, chatLines(3, { prefix: `b${i}`, ...(i % 2 === 1 ? { url: '/v1/embeddings' } : {}) }));
        return c.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });
      }),
    );
    // And test events, asked of both replicas at once.
    const tests = await Promise.all(Array.from({ length: 8 }, (_, i) => api([r1, r2][i % 2]!, `/v1/webhook_endpoints/${a.id}/test`, { method: 'POST' })));
    for (const t of tests) expect(t.status, t.text).toBe(202);
    const ends = await Promise.all(batches.map((x, i) => waitDone(clients[i % 2]!, x.id, 20_000)));
    expect(ends.map((x) => x.status)).toEqual(['completed', 'failed', 'completed', 'failed', 'completed', 'failed']);

    // a: 6 batch events + 8 tests; b: the 3 completed. Each delivered after a 500 and a 200.
    const expectedA = 6 + 8;
    const delivered = async (id: string): Promise<Delivery[]> => (await deliveriesOf(r1, id)).filter((d) => d.status === 'delivered');
    const deadline = Date.now() + 15_000;
    while ((await delivered(a.id)).length < expectedA || (await delivered(b.id)).length < 3) {
      if (Date.now() > deadline) throw new Error(`not all delivered: ${JSON.stringify(await deliveriesOf(r1, a.id))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));

    const da = await deliveriesOf(r2, a.id);
    const db = await deliveriesOf(r2, b.id);
    expect(da).toHaveLength(expectedA);
    expect(db).toHaveLength(3);
    for (const d of [...da, ...db]) {
      expect(d).toMatchObject({ status: 'delivered', attempts: 2, last_status_code: 200 });
      const tries = recv.attemptsOf(d.id);
      expect(tries.map((r) => r.status), d.id).toEqual([500, 200]);
      for (const r of tries) expectVerified(r, d.endpoint_id === a.id ? a.secret : b.secret);
    }
    // Every request the receiver got belongs to one of those deliveries: 2 × 17, nothing more.
    expect(recv.received).toHaveLength(2 * (expectedA + 3));
    // One event per batch at `a`, of the batch's terminal status.
    const batchEvents = recv.received.filter((r) => r.path === '/a' && r.attempt === 2 && r.event.type.startsWith('batch.'));
    expect(batchEvents.map((r) => r.event.data.id).sort()).toEqual(batches.map((x) => x.id).sort());
    for (const r of batchEvents) expectThinEvent(r, ends.find((x) => x.id === r.event.data.id)!.status === 'completed' ? 'batch.completed' : 'batch.failed', r.event.data.id);
    expect(recv.received.filter((r) => r.path === '/b').every((r) => r.event.type === 'batch.completed')).toBe(true);

    // Both replicas took part in sending (they share one outbox).
    const senders = cluster.replicas.map((r) => (r.output().match(/"msg":"webhook (delivered|attempt failed; will retry)"/g) ?? []).length);
    expect(senders.reduce((x, y) => x + y, 0)).toBe(2 * (expectedA + 3));
    expect(Math.min(...senders), `attempts per replica: ${senders.join(', ')}`).toBeGreaterThan(0);
  });
});
