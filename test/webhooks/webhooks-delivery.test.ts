/**
 * Webhook deliveries from a real `besh serve` (built binary, SQLite, a mock upstream) to receivers
 * on 127.0.0.1 that verify every request with the openai SDK and with standardwebhooks: one event
 * per terminal status (expired by the housekeeping and while running, cancelled, completed,
 * failed), `events` filters, retries after 500s and after a closed port on the short schedule,
 * the last attempt failing the delivery, and a rotated secret signing alongside the new one.
 */
import { join } from 'node:path';

import Database from 'better-sqlite3';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { api } from '../helpers/keys.js';
import { createEndpoint, deliveriesOf, type Endpoint, expectThinEvent, expectVerified, waitDelivery, WEBHOOK_ENV } from './helpers.js';
import { type Receiver, startReceiver } from './receiver.js';

describe('webhook deliveries', () => {
  const dir = tempDir('besh-webhooks-delivery-');
  let mock: MockServer;
  let besh: BeshProcess;
  let client: OpenAI;
  let recv: Receiver;
  const secrets: string[] = [];
  /** Per path: how many of the first attempts of each delivery answer 500. */
  const failFirst: Record<string, number> = { '/flaky': 2, '/down': 99 };

  beforeAll(async () => {
    recv = await startReceiver({ verifyWith: () => secrets, answer: (r) => (r.attempt <= (failFirst[r.path] ?? 0) ? 500 : 200) });
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 250 });
    besh = await startBesh(
      { ...WEBHOOK_ENV, OPENAI_API_BASE: `${mock.url}/v1`, MAX_CONCURRENT_BATCHES: '1', MAX_WORKERS: '2', BESH_PROGRESS_FLUSH_MS: '100', LOG_LEVEL: 'info' },
      { dataDir: dir.path },
    );
    client = besh.client;
  });
  afterAll(async () => {
    await besh?.kill();
    await mock?.close();
    await recv?.close();
    dir.remove();
  });

  const endpoint = async (path: string, events?: string[]): Promise<Endpoint> => {
    const e = await createEndpoint(besh, `${recv.url}${path}`, events ? { events } : {});
    secrets.push(e.secret);
    return e;
  };
  const batch = async (jsonl: string, window = '24h') =>
    client.batches.create({ input_file_id: await upload(client, jsonl), endpoint: '/v1/chat/completions', completion_window: window as '24h' });
  const at = (path: string) => recv.received.filter((r) => r.path === path);

  it('sends one signed thin event per terminal status to every endpoint that wants it', async () => {
    const all = await endpoint('/all');
    const onlyCompleted = await endpoint('/completed', ['batch.completed']);
    const notForUs = await endpoint('/none', ['batch.cancelled']);

    // Expired while running (window 2 s, ~8 s of work), and expired while still queued behind it (window 1 s).
    const running = await batch(chatLines(60, { prefix: 'slow' }), '2s');
    await waitFor(client, running.id, (b) => b.status === 'in_progress', 10_000);
    const queued = await batch(chatLines(2, { prefix: 'queued' }), '1s');
    expect((await waitDone(client, queued.id, 10_000)).status).toBe('expired');
    expect((await waitDone(client, running.id, 10_000)).status).toBe('expired');
    // Cancelled while running.
    const cancelled = await batch(chatLines(40, { prefix: 'cancel' }));
    await waitFor(client, cancelled.id, (b) => b.status === 'in_progress', 10_000);
    await client.batches.cancel(cancelled.id);
    // Completed, and failed validation (a line for another endpoint).
    const completed = await batch(chatLines(2, { prefix: 'ok' }));
    const failed = await batch(chatLines(2, { prefix: 'bad', url: '/v1/embeddings' }));
    for (const [b, status] of [[cancelled, 'cancelled'], [completed, 'completed'], [failed, 'failed']] as const) expect((await waitDone(client, b.id, 15_000)).status).toBe(status);

    const expected: Array<[string, string]> = [
      [queued.id, 'batch.expired'],
      [running.id, 'batch.expired'],
      [cancelled.id, 'batch.cancelled'],
      [completed.id, 'batch.completed'],
      [failed.id, 'batch.failed'],
    ];
    await recv.until(() => at('/all').length >= 5 && at('/completed').length >= 1, 10_000, 'five events and one');
    const got = at('/all');
    expect(got.map((r) => [r.event.data.id, r.event.type]).sort()).toEqual(expected.sort());
    for (const r of got) {
      expectThinEvent(r, r.event.type, r.event.data.id);
      expectVerified(r, all.secret);
      expect(r.verifiedBy).toEqual([all.secret]);
      expect(r.attempt).toBe(1);
    }
    // One event, one id: distinct per batch; the completed batch's event is the same event at both endpoints, with a webhook-id each.
    expect(new Set(got.map((r) => r.event.id)).size).toBe(5);
    const [c] = at('/completed');
    expect(c!.event).toEqual(got.find((r) => r.event.type === 'batch.completed')!.event);
    expect(c!.webhookId).not.toBe(got.find((r) => r.event.type === 'batch.completed')!.webhookId);
    expectVerified(c!, onlyCompleted.secret);

    // Nothing else arrives (no duplicates, no event for the filtered-out endpoint), and the API says delivered.
    await new Promise((r) => setTimeout(r, 400));
    expect(at('/all')).toHaveLength(5);
    expect(at('/completed')).toHaveLength(1);
    expect(at('/none')).toHaveLength(1);
    expect(at('/none')[0]!.event).toMatchObject({ type: 'batch.cancelled', data: { id: cancelled.id } });
    const ds = await deliveriesOf(besh, all.id);
    expect(ds).toHaveLength(5);
    for (const d of ds) expect(d).toMatchObject({ status: 'delivered', attempts: 1, max_attempts: 4, last_status_code: 200, last_error: null, next_attempt_at: null });
    expect(ds.map((d) => d.id).sort()).toEqual(got.map((r) => r.webhookId).sort());
    expect((await deliveriesOf(besh, notForUs.id)).map((d) => d.event_type)).toEqual(['batch.cancelled']);
  });

  it('retries after 500s with the same webhook-id on the short schedule, then stops at a 2xx', async () => {
    const e = await endpoint('/flaky');
    const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
    expect(t.status, t.text).toBe(202);
    const done = await waitDelivery(besh, t.body.id, (d) => d.status === 'delivered');
    expect(done).toMatchObject({ attempts: 3, last_status_code: 200, last_error: null, event_type: 'webhook_endpoint.test', data: { id: e.id } });
    const tries = recv.attemptsOf(t.body.id);
    expect(tries.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(new Set(tries.map((r) => r.body)).size).toBe(1);
    for (const r of tries) expectVerified(r, e.secret);
    // 300 ms, then 400 ms (700 − 300) apart: the schedule counts from the first attempt.
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(250);
    expect(tries[2]!.at - tries[1]!.at).toBeGreaterThanOrEqual(350);
    await new Promise((r) => setTimeout(r, 400));
    expect(recv.attemptsOf(t.body.id)).toHaveLength(3);
  });

  it('fails a delivery after its last attempt, and says why', async () => {
    const e = await endpoint('/down');
    const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
    const pending = await waitDelivery(besh, t.body.id, (d) => d.attempts === 1);
    expect(pending).toMatchObject({ status: 'pending', last_status_code: 500, last_error: 'HTTP 500' });
    expect(pending.next_attempt_at).toEqual(expect.any(Number));
    const failed = await waitDelivery(besh, t.body.id, (d) => d.status === 'failed');
    expect(failed).toMatchObject({ attempts: 4, max_attempts: 4, last_status_code: 500, last_error: 'HTTP 500', next_attempt_at: null, delivered_at: null });
    await new Promise((r) => setTimeout(r, 600));
    expect(recv.attemptsOf(t.body.id).map((r) => r.status)).toEqual([500, 500, 500, 500]);
    const listed = await api(besh, '/v1/webhook_deliveries?status=failed');
    expect(listed.body.data.map((d: { id: string }) => d.id)).toEqual([t.body.id]);
  });

  it('retries after a closed port, and delivers once it is open again', async () => {
    const late = await startReceiver({ verifyWith: () => secrets });
    try {
      const e = await createEndpoint(besh, `${late.url}/late`);
      secrets.push(e.secret);
      await late.pause();
      const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
      const refused = await waitDelivery(besh, t.body.id, (d) => d.attempts >= 1);
      expect(refused).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null, last_error: 'connection refused' });
      await late.resume();
      const done = await waitDelivery(besh, t.body.id, (d) => d.status === 'delivered');
      expect(done.attempts).toBeGreaterThanOrEqual(2);
      expect(late.attemptsOf(t.body.id)).toHaveLength(1);
      expectVerified(late.received[0]!, e.secret);
    } finally {
      await late.close();
    }
  });

  it('after a rotation both secrets verify (for 24 h); once the old one lapses only the new one signs', async () => {
    const e = await endpoint('/rotated');
    const r = await api(besh, `/v1/webhook_endpoints/${e.id}/rotate_secret`, { method: 'POST' });
    const fresh = r.body.secret as string;
    secrets.push(fresh);
    const send = async (): Promise<string> => {
      const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
      await waitDelivery(besh, t.body.id, (d) => d.status === 'delivered');
      return t.body.id as string;
    };
    const both = recv.attemptsOf(await send())[0]!;
    expect(both.signature.split(' ')).toHaveLength(2);
    expect(both.verifiedBy.sort()).toEqual([e.secret, fresh].sort());

    // The 24 h pass (the stored expiry moved into the past): the old secret no longer signs.
    const db = new Database(join(dir.path, 'besh.sqlite'));
    try {
      db.prepare('UPDATE webhook_endpoints SET previous_secret_expires_at = ? WHERE id = ?').run(Math.floor(Date.now() / 1000) - 1, e.id);
    } finally {
      db.close();
    }
    const one = recv.attemptsOf(await send())[0]!;
    expect(one.signature.split(' ')).toHaveLength(1);
    expect(one.verifiedBy).toEqual([fresh]);
    expect((await api(besh, `/v1/webhook_endpoints/${e.id}`)).body.previous_secret_expires_at).toBeNull();
  });

  it('deleting an endpoint drops its queued deliveries', async () => {
    const e = await endpoint('/down');
    const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
    await waitDelivery(besh, t.body.id, (d) => d.attempts === 1);
    expect((await api(besh, `/v1/webhook_endpoints/${e.id}`, { method: 'DELETE' })).status).toBe(200);
    expect((await api(besh, `/v1/webhook_deliveries/${t.body.id}`)).status).toBe(404);
    await new Promise((r) => setTimeout(r, 800));
    expect(recv.attemptsOf(t.body.id)).toHaveLength(1);
  });
});
