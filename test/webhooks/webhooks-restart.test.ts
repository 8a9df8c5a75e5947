/**
 * The outbox is durable: a delivery whose first attempt failed survives a restart of BESH (same
 * data directory) and its next attempt is made once, after the start. And the destination check
 * runs again at delivery time: an endpoint whose host resolves to loopback, allowed when it was
 * created, is refused once the allow-list no longer names it (nothing reaches the receiver).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { api, expectError } from '../helpers/keys.js';
import { createEndpoint, expectVerified, waitDelivery, WEBHOOK_ENV } from './helpers.js';
import { type Receiver, startReceiver } from './receiver.js';

describe('webhooks across restarts', () => {
  const dir = tempDir('besh-webhooks-restart-');
  let recv: Receiver;
  let besh: BeshProcess | null = null;
  const secrets: string[] = [];
  let answer = 500;
  const env = (allow: string) => ({
    ...WEBHOOK_ENV,
    BESH_WEBHOOK_ALLOW_HOSTS: allow,
    // The first retry is due 400 ms after the first attempt: while BESH is down.
    BESH_WEBHOOK_RETRY_SCHEDULE: '400ms,10s',
    OPENAI_API_BASE: 'http://127.0.0.1:9/v1',
    BESH_HEALTH_INTERVAL_MS: '0',
  });

  beforeAll(async () => {
    recv = await startReceiver({ verifyWith: () => secrets, answer: () => answer });
  });
  afterAll(async () => {
    await besh?.kill();
    await recv?.close();
    dir.remove();
  });

  it('a delivery queued before a restart is attempted again after it, once', async () => {
    besh = await startBesh(env('127.0.0.1,localhost'), { dataDir: dir.path });
    const e = await createEndpoint(besh, `${recv.url}/hook`);
    secrets.push(e.secret);
    const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
    await recv.until((r) => r.length === 1, 5_000, 'the first attempt');
    // Stopped right after the first attempt (its 500 is recorded during the graceful stop).
    expect(await besh.stop()).toBe(0);
    answer = 200;
    await new Promise((r) => setTimeout(r, 600));
    expect(recv.received).toHaveLength(1);

    besh = await startBesh(env('127.0.0.1,localhost'), { dataDir: dir.path });
    const done = await waitDelivery(besh, t.body.id, (d) => d.status === 'delivered');
    expect(done).toMatchObject({ attempts: 2, last_status_code: 200 });
    // Nothing more: the retry after 10 s was never needed, and no replica sent the retry twice.
    await new Promise((r) => setTimeout(r, 500));
    const tries = recv.attemptsOf(t.body.id);
    expect(tries.map((r) => r.status)).toEqual([500, 200]);
    expect(new Set(tries.map((r) => r.webhookId))).toEqual(new Set([t.body.id]));
    for (const r of tries) expectVerified(r, e.secret);
  });

  it('a host resolving to loopback is refused at delivery time once the allow-list no longer names it', async () => {
    // Created while `localhost` is allowed by name.
    const e = await createEndpoint(besh!, `http://localhost:${recv.port}/by-name`);
    secrets.push(e.secret);
    expect(await besh!.stop()).toBe(0);
    besh = await startBesh(env('127.0.0.2'), { dataDir: dir.path });
    expectError(await api(besh, '/v1/webhook_endpoints', { json: { url: `http://localhost:${recv.port}/again` } }), 400, 'invalid_request_error', 'destination_not_allowed');

    const before = recv.received.length;
    const t = await api(besh, `/v1/webhook_endpoints/${e.id}/test`, { method: 'POST' });
    const refused = await waitDelivery(besh, t.body.id, (d) => d.attempts >= 1);
    expect(refused).toMatchObject({ status: 'pending', last_status_code: null });
    expect(refused.last_error).toMatch(/^destination refused: Webhooks may not be sent to 'localhost' \(it resolves to .*\): a loopback address/);
    expect(recv.received).toHaveLength(before);
    expect(besh.output()).toMatch(/"error":"destination refused/);
  });
});
