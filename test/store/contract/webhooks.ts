import { describe, expect, it } from 'vitest';

import type { MetaStore } from '../../../src/store/meta-store.js';
import {
  type ClaimedDelivery,
  newWebhookEndpointId,
  terminalWebhookEvent,
  type WebhookDeliveryRecord,
  type WebhookEndpointRecord,
  type WebhookEventType,
} from '../../../src/store/webhook-store.js';
import type { ContractContext } from './context.js';
import { batchFixture, LONG_MS, MEDIUM_MS, PAST_MEDIUM_MS, sleep, T0 } from './fixtures.js';

export function endpointFixture(overrides: Partial<WebhookEndpointRecord> = {}): WebhookEndpointRecord {
  return {
    id: newWebhookEndpointId(),
    project: 'default',
    url: 'https://hooks.example.com/besh',
    events: null,
    secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAx',
    previousSecret: null,
    previousSecretExpiresAt: null,
    createdAt: T0,
    ...overrides,
  };
}

/** A batch of `project` that reaches `to` (from validating) with its webhook event, as the engine's terminal verbs write it. */
async function finish(store: MetaStore, project: string, to: 'failed' | 'cancelled' = 'failed'): Promise<{ batchId: string; eventId: string }> {
  const b = batchFixture({ project, status: to === 'failed' ? 'validating' : 'cancelling' });
  await store.insertBatch(b);
  const event = terminalWebhookEvent(b.id, to, T0 + 7)!;
  const moved = await store.transition(b.id, [b.status], to, T0 + 7, { webhookEvent: event });
  expect(moved?.status).toBe(to);
  return { batchId: b.id, eventId: event.id };
}

const all = async (store: MetaStore, q: { project?: string; endpointId?: string } = {}): Promise<WebhookDeliveryRecord[]> =>
  (await store.webhooks.listDeliveries({ ...q, limit: 1000 })).data;

const ids = (xs: ReadonlyArray<{ id: string }>): string[] => xs.map((x) => x.id);
const claimedIds = (xs: readonly ClaimedDelivery[]): string[] => xs.map((x) => x.delivery.id);

export function webhooksContract(t: ContractContext): void {
  describe('webhook endpoints', () => {
    it('creates, reads and lists endpoints (per project, cursor paging both ways), and deletes them', async () => {
      const a1 = endpointFixture({ project: 'alpha', events: ['batch.completed', 'batch.failed'] });
      const b1 = endpointFixture({ project: 'beta' });
      const a2 = endpointFixture({ project: 'alpha' });
      for (const e of [a1, b1, a2]) await t.store.webhooks.createEndpoint(e);
      expect(await t.store.webhooks.getEndpoint(a1.id)).toEqual(a1);
      expect(await t.store.webhooks.getEndpoint('whep_missing')).toBeNull();

      expect(await t.store.webhooks.listEndpoints({ project: 'alpha', limit: 10, order: 'asc' })).toEqual({ data: [a1, a2], hasMore: false });
      expect(await t.store.webhooks.listEndpoints({ limit: 2, order: 'desc' })).toEqual({ data: [a2, b1], hasMore: true });
      expect(await t.store.webhooks.listEndpoints({ limit: 2, order: 'desc', after: b1.id })).toEqual({ data: [a1], hasMore: false });
      expect(await t.store.webhooks.listEndpoints({ project: 'alpha', limit: 1, order: 'asc', after: a1.id })).toEqual({ data: [a2], hasMore: false });
      // A cursor naming another project's endpoint is as unknown as a missing one.
      expect(await t.store.webhooks.listEndpoints({ project: 'alpha', limit: 10, order: 'asc', after: b1.id })).toEqual({ data: [], hasMore: false });

      expect(await t.store.webhooks.deleteEndpoint(a1.id)).toBe(true);
      expect(await t.store.webhooks.deleteEndpoint(a1.id)).toBe(false);
      expect(await t.store.webhooks.getEndpoint(a1.id)).toBeNull();
    });

    it('rotateSecret keeps the old secret as the previous one, with its expiry; a second rotation drops the oldest', async () => {
      const e = endpointFixture({ secret: 'whsec_b2xk' });
      await t.store.webhooks.createEndpoint(e);
      const r1 = await t.store.webhooks.rotateSecret(e.id, 'whsec_bmV3', T0 + 86_400);
      expect(r1).toEqual({ ...e, secret: 'whsec_bmV3', previousSecret: 'whsec_b2xk', previousSecretExpiresAt: T0 + 86_400 });
      expect(await t.store.webhooks.getEndpoint(e.id)).toEqual(r1);
      const r2 = await t.store.webhooks.rotateSecret(e.id, 'whsec_bmV3ZXI=', T0 + 90_000);
      expect(r2).toMatchObject({ secret: 'whsec_bmV3ZXI=', previousSecret: 'whsec_bmV3', previousSecretExpiresAt: T0 + 90_000 });
      expect(await t.store.webhooks.rotateSecret('whep_missing', 'whsec_eA==', T0)).toBeNull();
    });
  });

  describe('webhook outbox', () => {
    it("a terminal transition queues one delivery per endpoint of the batch's project that wants the event, in the same write", async () => {
      const all4 = endpointFixture({ project: 'alpha' });
      const failedOnly = endpointFixture({ project: 'alpha', events: ['batch.failed'] });
      const completedOnly = endpointFixture({ project: 'alpha', events: ['batch.completed'] });
      const other = endpointFixture({ project: 'beta' });
      for (const e of [all4, failedOnly, completedOnly, other]) await t.store.webhooks.createEndpoint(e);

      const { batchId, eventId } = await finish(t.store, 'alpha', 'failed');
      const queued = await all(t.store);
      expect(queued.map((d) => d.endpointId).sort()).toEqual([all4.id, failedOnly.id].sort());
      for (const d of queued) {
        expect(d).toMatchObject({ eventId, project: 'alpha', type: 'batch.failed', status: 'pending', attempts: 0, lastStatus: null, lastError: null, deliveredAt: null, createdAt: T0 + 7 });
        expect(JSON.parse(d.payload)).toEqual({ id: eventId, object: 'event', type: 'batch.failed', created_at: T0 + 7, data: { id: batchId } });
        expect(d.id).toMatch(/^wh_[0-9A-Za-z]+$/);
        expect(await t.store.webhooks.getDelivery(d.id)).toEqual(d);
      }
      // One event, one webhook-id per endpoint.
      expect(new Set(ids(queued)).size).toBe(2);
      expect(ids(await all(t.store, { endpointId: failedOnly.id }))).toHaveLength(1);
      expect(await all(t.store, { project: 'beta' })).toEqual([]);
    });

    it('queues nothing when the transition does not happen, or the project has no endpoint', async () => {
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha' }));
      const b = batchFixture({ project: 'alpha', status: 'completed' });
      await t.store.insertBatch(b);
      expect(await t.store.transition(b.id, ['validating'], 'failed', T0 + 1, { webhookEvent: terminalWebhookEvent(b.id, 'failed', T0 + 1)! })).toBeNull();
      await finish(t.store, 'gamma');
      expect(await all(t.store)).toEqual([]);
    });

    it('expireUnclaimed queues batch.expired for each batch it expires, in the same write', async () => {
      const e = endpointFixture({ project: 'alpha', events: ['batch.expired'] });
      await t.store.webhooks.createEndpoint(e);
      const late = batchFixture({ project: 'alpha', expiresAt: T0 + 5 });
      const notYet = batchFixture({ project: 'alpha', expiresAt: T0 + 50 });
      for (const b of [late, notYet]) await t.store.insertBatch(b);
      expect(ids(await t.store.expireUnclaimed(T0 + 10))).toEqual([late.id]);
      const [d, ...rest] = await all(t.store);
      expect(rest).toEqual([]);
      expect(d).toMatchObject({ endpointId: e.id, type: 'batch.expired', createdAt: T0 + 10 });
      expect(JSON.parse(d!.payload)).toMatchObject({ object: 'event', type: 'batch.expired', created_at: T0 + 10, data: { id: late.id } });
    });

    it('claimDue leases due deliveries once (epoch 1), with their endpoint; a held lease is not claimed again', async () => {
      const e = endpointFixture({ project: 'alpha' });
      await t.store.webhooks.createEndpoint(e);
      await finish(t.store, 'alpha');
      await finish(t.store, 'alpha');
      expect(await t.store.webhooks.nextDueInMs()).toBe(0);
      const first = await t.store.webhooks.claimDue('r1', LONG_MS, 1);
      expect(first).toHaveLength(1);
      expect(first[0]!.endpoint).toEqual(e);
      expect(first[0]!.fence).toEqual({ id: first[0]!.delivery.id, owner: 'r1', epoch: 1 });
      const rest = await t.store.webhooks.claimDue('r2', LONG_MS, 10);
      expect(rest).toHaveLength(1);
      expect(rest[0]!.delivery.id).not.toBe(first[0]!.delivery.id);
      expect(await t.store.webhooks.claimDue('r3', LONG_MS, 10)).toEqual([]);
      // Both are leased for LONG_MS: nothing is due before then.
      expect(await t.store.webhooks.nextDueInMs()).toBeGreaterThan(LONG_MS / 2);
    });

    it('recordAttempt is fenced by the lease; retry makes it due again later, delivered and failed end it', async () => {
      const e = endpointFixture({ project: 'alpha' });
      await t.store.webhooks.createEndpoint(e);
      await finish(t.store, 'alpha');
      const [c] = await t.store.webhooks.claimDue('r1', LONG_MS, 5);
      const f = c!.fence;
      // Due again after MEDIUM_MS: not yet due a few statements later, on a loaded machine too.
      const retry = { statusCode: 500, error: 'HTTP 500', next: { kind: 'retry' as const, retryInMs: MEDIUM_MS } };
      expect(await t.store.webhooks.recordAttempt({ ...f, owner: 'r2' }, retry)).toBe(false);
      expect(await t.store.webhooks.recordAttempt({ ...f, epoch: f.epoch + 1 }, retry)).toBe(false);
      expect(await t.store.webhooks.recordAttempt(f, retry)).toBe(true);
      // Recorded once: the lease is gone with it.
      expect(await t.store.webhooks.recordAttempt(f, retry)).toBe(false);
      let d = (await t.store.webhooks.getDelivery(f.id))!;
      expect(d).toMatchObject({ status: 'pending', attempts: 1, lastStatus: 500, lastError: 'HTTP 500', deliveredAt: null });
      expect(await t.store.webhooks.claimDue('r1', LONG_MS, 5)).toEqual([]);
      const due = (await t.store.webhooks.nextDueInMs())!;
      expect(due).toBeGreaterThan(0);
      expect(due).toBeLessThanOrEqual(MEDIUM_MS);
      await sleep(PAST_MEDIUM_MS);

      const [again] = await t.store.webhooks.claimDue('r2', LONG_MS, 5);
      expect(again!.fence).toEqual({ id: f.id, owner: 'r2', epoch: 2 });
      expect(again!.delivery.attempts).toBe(1);
      expect(await t.store.webhooks.recordAttempt(again!.fence, { statusCode: 204, error: null, next: { kind: 'delivered' } })).toBe(true);
      d = (await t.store.webhooks.getDelivery(f.id))!;
      expect(d).toMatchObject({ status: 'delivered', attempts: 2, lastStatus: 204, lastError: null });
      expect(d.deliveredAt).toBeGreaterThan(T0);
      expect(await t.store.webhooks.nextDueInMs()).toBeNull();

      await finish(t.store, 'alpha');
      const [g] = await t.store.webhooks.claimDue('r1', LONG_MS, 5);
      expect(await t.store.webhooks.recordAttempt(g!.fence, { statusCode: null, error: 'x'.repeat(2000), next: { kind: 'failed' } })).toBe(true);
      const failed = (await t.store.webhooks.getDelivery(g!.delivery.id))!;
      expect(failed).toMatchObject({ status: 'failed', attempts: 1, lastStatus: null, deliveredAt: null });
      expect(failed.lastError!.length).toBeLessThanOrEqual(500);
      expect(await t.store.webhooks.claimDue('r1', LONG_MS, 5)).toEqual([]);
    });

    it('an expired lease is claimed again with the next epoch; the old holder can neither record nor release it', async () => {
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha' }));
      await finish(t.store, 'alpha');
      const [old] = await t.store.webhooks.claimDue('r1', MEDIUM_MS, 5);
      expect(await t.store.webhooks.claimDue('r2', LONG_MS, 5)).toEqual([]);
      await sleep(PAST_MEDIUM_MS);
      const [taken] = await t.store.webhooks.claimDue('r2', LONG_MS, 5);
      expect(taken!.fence).toEqual({ id: old!.delivery.id, owner: 'r2', epoch: old!.fence.epoch + 1 });
      expect(await t.store.webhooks.recordAttempt(old!.fence, { statusCode: 200, error: null, next: { kind: 'delivered' } })).toBe(false);
      expect(await t.store.webhooks.releaseDelivery(old!.fence)).toBe(false);
      expect((await t.store.webhooks.getDelivery(old!.delivery.id))!.status).toBe('pending');
    });

    it('releaseDelivery gives the lease back uncounted: due again at once', async () => {
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha' }));
      await finish(t.store, 'alpha');
      const [c] = await t.store.webhooks.claimDue('r1', LONG_MS, 5);
      expect(await t.store.webhooks.releaseDelivery(c!.fence)).toBe(true);
      expect(await t.store.webhooks.releaseDelivery(c!.fence)).toBe(false);
      const [again] = await t.store.webhooks.claimDue('r2', LONG_MS, 5);
      expect(again!.delivery).toMatchObject({ id: c!.delivery.id, attempts: 0 });
      expect(again!.fence.epoch).toBe(c!.fence.epoch + 1);
    });

    it('claims the oldest due first, at most `limit`', async () => {
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha' }));
      const first = await finish(t.store, 'alpha');
      await sleep(5);
      await finish(t.store, 'alpha');
      const [c] = await t.store.webhooks.claimDue('r1', LONG_MS, 1);
      expect(JSON.parse(c!.delivery.payload).data.id).toBe(first.batchId);
      expect(await t.store.webhooks.claimDue('r1', LONG_MS, 0)).toEqual([]);
    });

    it('two stores claiming at once never both get a delivery', async () => {
      if (!t.hasPeers) return;
      const peer = await t.peer();
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha' }));
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha', url: 'https://second.example.com/' }));
      for (let i = 0; i < 15; i++) await finish(t.store, 'alpha');
      const rounds = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? t.store : peer).webhooks.claimDue(`r${i}`, LONG_MS, 5)),
      );
      const got = rounds.flatMap(claimedIds);
      expect(got.length).toBeGreaterThan(0);
      expect(new Set(got).size).toBe(got.length);
      // The rest, one claimer after the other: every one of the 30 is handed out exactly once.
      for (let i = 0; ; i++) {
        const more = claimedIds(await (i % 2 === 0 ? peer : t.store).webhooks.claimDue(`s${i}`, LONG_MS, 7));
        if (more.length === 0) break;
        got.push(...more);
      }
      expect(new Set(got).size).toBe(got.length);
      expect(got.length).toBe(30);
    });

    it('deleting an endpoint removes its deliveries; a test event goes to that endpoint only', async () => {
      const e = endpointFixture({ project: 'alpha', events: ['batch.completed'] });
      const keep = endpointFixture({ project: 'alpha' });
      for (const x of [e, keep]) await t.store.webhooks.createEndpoint(x);
      const test = (await t.store.webhooks.queueTest(e.id, T0 + 3))!;
      expect(test).toMatchObject({ endpointId: e.id, project: 'alpha', type: 'webhook_endpoint.test', status: 'pending', attempts: 0, createdAt: T0 + 3 });
      expect(JSON.parse(test.payload)).toEqual({ id: test.eventId, object: 'event', type: 'webhook_endpoint.test', created_at: T0 + 3, data: { id: e.id } });
      expect(await t.store.webhooks.queueTest('whep_missing', T0)).toBeNull();
      await finish(t.store, 'alpha');
      expect((await all(t.store)).length).toBe(2);
      await t.store.webhooks.deleteEndpoint(e.id);
      const left = await all(t.store);
      expect(left.map((d) => d.endpointId)).toEqual([keep.id]);
      expect(await t.store.webhooks.getDelivery(test.id)).toBeNull();
    });

    it('lists deliveries newest first, filtered by project, endpoint and status, with an exact has_more', async () => {
      const a = endpointFixture({ project: 'alpha' });
      const b = endpointFixture({ project: 'beta' });
      for (const x of [a, b]) await t.store.webhooks.createEndpoint(x);
      for (let i = 0; i < 3; i++) await finish(t.store, 'alpha');
      await finish(t.store, 'beta');
      const alpha = await all(t.store, { project: 'alpha' });
      expect(alpha).toHaveLength(3);
      const page1 = await t.store.webhooks.listDeliveries({ project: 'alpha', limit: 2 });
      expect(ids(page1.data)).toEqual(ids(alpha).slice(0, 2));
      expect(page1.hasMore).toBe(true);
      const page2 = await t.store.webhooks.listDeliveries({ project: 'alpha', limit: 2, after: page1.data[1]!.id });
      expect(page2).toEqual({ data: [alpha[2]], hasMore: false });
      // Newest first: the beta one (queued last) tops the unfiltered list.
      expect((await all(t.store))[0]!.project).toBe('beta');
      const [c] = await t.store.webhooks.claimDue('r1', LONG_MS, 1);
      await t.store.webhooks.recordAttempt(c!.fence, { statusCode: 200, error: null, next: { kind: 'delivered' } });
      expect(ids((await t.store.webhooks.listDeliveries({ status: 'delivered', limit: 10 })).data)).toEqual([c!.delivery.id]);
      expect((await t.store.webhooks.listDeliveries({ status: 'pending', limit: 10 })).data).toHaveLength(3);
      // A cursor outside the filter names nothing.
      expect(await t.store.webhooks.listDeliveries({ project: 'beta', limit: 10, after: alpha[0]!.id })).toEqual({ data: [], hasMore: false });
    });

    it('pruneDeliveries forgets finished deliveries created before the cut, never pending ones', async () => {
      await t.store.webhooks.createEndpoint(endpointFixture({ project: 'alpha' }));
      await finish(t.store, 'alpha');
      await finish(t.store, 'alpha');
      const [c] = await t.store.webhooks.claimDue('r1', LONG_MS, 1);
      await t.store.webhooks.recordAttempt(c!.fence, { statusCode: 200, error: null, next: { kind: 'delivered' } });
      expect(await t.store.webhooks.pruneDeliveries(T0)).toBe(0);
      expect(await t.store.webhooks.pruneDeliveries(T0 + 100)).toBe(1);
      const left = await all(t.store);
      expect(left).toHaveLength(1);
      expect(left[0]!.status).toBe('pending');
    });

    it('every event type reaches an endpoint that asked for it', async () => {
      const types: WebhookEventType[] = ['batch.completed', 'batch.failed', 'batch.expired', 'batch.cancelled'];
      const endpoints = types.map((type) => endpointFixture({ project: 'alpha', events: [type] }));
      for (const e of endpoints) await t.store.webhooks.createEndpoint(e);
      const running = batchFixture({ project: 'alpha', status: 'finalizing' });
      await t.store.insertBatch(running);
      await t.store.transition(running.id, ['finalizing'], 'completed', T0 + 1, { webhookEvent: terminalWebhookEvent(running.id, 'completed', T0 + 1)! });
      await finish(t.store, 'alpha', 'failed');
      await finish(t.store, 'alpha', 'cancelled');
      await t.store.insertBatch(batchFixture({ project: 'alpha', expiresAt: T0 }));
      await t.store.expireUnclaimed(T0 + 1);
      const got = await all(t.store);
      expect(got).toHaveLength(4);
      for (const [i, type] of types.entries()) expect(got.filter((d) => d.endpointId === endpoints[i]!.id).map((d) => d.type)).toEqual([type]);
    });
  });
}
