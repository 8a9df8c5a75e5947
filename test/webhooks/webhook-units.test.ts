import type { LookupAddress } from 'node:dns';

import OpenAI from 'openai';
import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, it } from 'vitest';

import { parseConfig, STANDARD_WEBHOOK_SCHEDULE } from '../../src/config.js';
import { DestinationError, DestinationPolicy, maxAttempts, newWebhookSecret, nextStep, webhookHeaders, WebhookSender } from '../../src/webhooks/index.js';
import { nonPublicReason, parseIp } from '../../src/webhooks/ip-address.js';
import { startReceiver } from './receiver.js';

const unwrap = (secret: string, body: string, headers: Record<string, string>) => new OpenAI({ apiKey: 'unused', webhookSecret: secret }).webhooks.unwrap(body, headers);

describe('signing (Standard Webhooks, as OpenAI sends them)', () => {
  const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'batch.completed', created_at: 1, data: { id: 'batch_1' } });
  const now = Math.floor(Date.now() / 1000);

  it('a new secret is whsec_ + 32 random bytes in base64', () => {
    const s = newWebhookSecret();
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(s.slice(6), 'base64')).toHaveLength(32);
    expect(newWebhookSecret()).not.toBe(s);
  });

  it('verifies with the openai SDK and with standardwebhooks, and fails with another secret or a changed body', async () => {
    const secret = newWebhookSecret();
    const headers = webhookHeaders('wh_abc', now, body, [secret]);
    expect(Object.keys(headers)).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    await expect(unwrap(secret, body, headers)).resolves.toEqual(JSON.parse(body));
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    // The reference implementation computes the very same signature.
    expect(new Webhook(secret).sign('wh_abc', new Date(now * 1000), body)).toBe(headers['webhook-signature']);

    const other = newWebhookSecret();
    await expect(unwrap(other, body, headers)).rejects.toThrow(/signature/);
    expect(() => new Webhook(other).verify(body, headers)).toThrow();
    await expect(unwrap(secret, body.replace('batch_1', 'batch_2'), headers)).rejects.toThrow();
    expect(() => new Webhook(secret).verify(body, { ...headers, 'webhook-id': 'wh_other' })).toThrow();
  });

  it('two secrets (a rotation): both signatures space-separated, each secret verifies alone', async () => {
    const [oldS, newS] = [newWebhookSecret(), newWebhookSecret()];
    const headers = webhookHeaders('wh_rot', now, body, [newS, oldS]);
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    for (const s of [oldS, newS]) {
      await expect(unwrap(s, body, headers)).resolves.toBeTruthy();
      expect(new Webhook(s).verify(body, headers)).toBeTruthy();
    }
    await expect(unwrap(newWebhookSecret(), body, headers)).rejects.toThrow();
  });
});

describe('retry schedule', () => {
  const standard = parseConfig({}).webhooks.retryScheduleMs;

  it('defaults to Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h after the first attempt', () => {
    expect(STANDARD_WEBHOOK_SCHEDULE).toBe('5s,5m,30m,2h,5h,10h,14h,20h,24h');
    const h = 3_600_000;
    expect(standard).toEqual([5_000, 300_000, 1_800_000, 2 * h, 5 * h, 10 * h, 14 * h, 20 * h, 24 * h]);
    expect(maxAttempts(standard)).toBe(10);
  });

  it('waits the gap to the next offset after each failure; a 2xx ends it; the last failure fails it', () => {
    let t = 0;
    const times = [0];
    for (let attempt = 1; ; attempt++) {
      const next = nextStep(attempt, 500, standard);
      if (next.kind === 'failed') break;
      expect(next.kind).toBe('retry');
      if (next.kind === 'retry') t += next.retryInMs;
      times.push(t);
    }
    expect(times).toEqual([0, ...standard]);
    expect(nextStep(3, 204, standard)).toEqual({ kind: 'delivered' });
    expect(nextStep(10, 200, standard)).toEqual({ kind: 'delivered' });
    for (const status of [null, 301, 400, 410, 429, 503]) expect(nextStep(1, status, standard)).toEqual({ kind: 'retry', retryInMs: 5_000 });
    expect(nextStep(10, 500, standard)).toEqual({ kind: 'failed' });
  });

  it('BESH_WEBHOOK_RETRY_SCHEDULE takes increasing durations with units; anything else stops the start', () => {
    expect(parseConfig({ BESH_WEBHOOK_RETRY_SCHEDULE: '250ms, 1s,2m' }).webhooks.retryScheduleMs).toEqual([250, 1000, 120_000]);
    for (const bad of ['5s,1s', '5', '1s,1s', '-1s', '8d', 'soon']) {
      expect(() => parseConfig({ BESH_WEBHOOK_RETRY_SCHEDULE: bad }), bad).toThrow(/BESH_WEBHOOK_RETRY_SCHEDULE/);
    }
    expect(parseConfig({ BESH_WEBHOOK_ALLOW_HOSTS: '127.0.0.1, 10.0.0.0/8,Hooks.Internal,[::1]' }).webhooks.allowHosts).toEqual(['127.0.0.1', '10.0.0.0/8', 'hooks.internal', '::1']);
    for (const bad of ['http://x/', '10.0.0.0/33', 'fd00::/129', '10.0.0/8', '1.2.3', 'a b', '10.0.0.0/8/8']) {
      expect(() => parseConfig({ BESH_WEBHOOK_ALLOW_HOSTS: bad }), bad).toThrow(/BESH_WEBHOOK_ALLOW_HOSTS/);
    }
    expect(parseConfig({ BESH_WEBHOOK_ALLOW_HOSTS: 'fd00::/8,host_1.lan.' }).webhooks.allowHosts).toEqual(['fd00::/8', 'host_1.lan.']);
  });
});

describe('destinations', () => {
  it('classifies loopback, private, link-local, CGNAT, unspecified (and IPv6 forms of them) as not public', () => {
    const blocked = [
      '127.0.0.1', '127.255.0.9', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '100.127.255.254',
      '0.0.0.0', '224.0.0.1', '255.255.255.255', '::', '::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'ff02::1',
      '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1', '2002:c0a8:101::1', '::127.0.0.1',
    ];
    for (const ip of blocked) expect(nonPublicReason(parseIp(ip)!), ip).not.toBeNull();
    const open = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2002:808:808::1'];
    for (const ip of open) expect(nonPublicReason(parseIp(ip)!), ip).toBeNull();
    expect(parseIp('localhost')).toBeNull();
    expect(parseIp('1.2.3')).toBeNull();
  });

  const resolver = (table: Record<string, string[]>) => async (host: string): Promise<LookupAddress[]> => {
    const a = table[host];
    if (!a) throw Object.assign(new Error(`no such host ${host}`), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const reason = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
      return 'ok';
    } catch (err) {
      return err instanceof DestinationError ? err.reason : `other: ${String(err)}`;
    }
  };

  it('checks URLs at creation: scheme, credentials, length, and every address the host resolves to', async () => {
    const p = new DestinationPolicy([], resolver({ 'pub.example': ['93.184.215.14'], 'mixed.example': ['93.184.215.14', '10.0.0.5'], 'v6.example': ['::1'] }));
    expect(await reason(p.checkUrl('https://pub.example/hook'))).toBe('ok');
    expect(await reason(p.checkUrl('https://93.184.215.14:8443/x'))).toBe('ok');
    for (const bad of ['ftp://pub.example/', 'file:///etc/passwd', 'not a url', 'https://user:pw@pub.example/', `https://pub.example/${'a'.repeat(2100)}`, 'https://nowhere.example/']) {
      expect(await reason(p.checkUrl(bad)), bad).toBe('invalid_url');
    }
    for (const bad of ['http://127.0.0.1/', 'http://[::1]:80/', 'http://mixed.example/', 'http://v6.example/', 'http://2130706433/', 'http://0x7f.1/', 'http://[::ffff:127.0.0.1]/', 'http://169.254.169.254/latest']) {
      expect(await reason(p.checkUrl(bad)), bad).toBe('not_allowed');
    }
  });

  it('BESH_WEBHOOK_ALLOW_HOSTS allows host names, addresses and CIDRs (an IPv4-mapped address too)', async () => {
    const table = resolver({ 'hooks.internal': ['10.9.9.9'], 'other.internal': ['10.9.9.9'], 'lo.test': ['::ffff:127.0.0.1'] });
    const p = new DestinationPolicy(['hooks.internal', '127.0.0.1', '192.168.0.0/16', 'fd00::/8'], table);
    expect(await reason(p.checkUrl('http://hooks.internal/'))).toBe('ok');
    expect(await reason(p.checkUrl('http://other.internal/'))).toBe('not_allowed');
    expect(await reason(p.checkUrl('http://127.0.0.1:9/'))).toBe('ok');
    expect(await reason(p.checkUrl('http://127.0.0.2:9/'))).toBe('not_allowed');
    expect(await reason(p.checkUrl('http://lo.test/'))).toBe('ok');
    expect(await reason(p.checkUrl('http://192.168.44.1/'))).toBe('ok');
    expect(await reason(p.checkUrl('http://[fd00::7]/'))).toBe('ok');
    expect(await reason(p.checkUrl('http://[fe80::7]/'))).toBe('not_allowed');
  });

  describe('at delivery time', () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterAll(async () => {
      for (const c of cleanups) await c();
    });
    const secret = newWebhookSecret();
    const headers = (): Record<string, string> => webhookHeaders('wh_unit', Math.floor(Date.now() / 1000), '{}', [secret]);

    it('connects to the address it checked, never re-resolving: a rebinding host is refused, an allowed one reached by its checked address', async () => {
      const recv = await startReceiver({ verifyWith: () => [secret] });
      cleanups.push(() => recv.close());
      // The first lookup (the check at creation) says public; every later one (the connection) says loopback.
      let lookups = 0;
      const rebinding = async (): Promise<LookupAddress[]> => (lookups++ === 0 ? [{ address: '93.184.215.14', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
      const strict = new DestinationPolicy([], rebinding);
      const url = `http://rebind.test:${recv.port}/hook`;
      expect(await reason(strict.checkUrl(url))).toBe('ok');
      const sender = new WebhookSender(strict, 2000);
      cleanups.push(() => sender.close());
      const refused = await sender.post(url, '{}', headers());
      expect(refused).toMatchObject({ statusCode: null, aborted: false });
      expect(refused.error).toMatch(/destination refused.*loopback/);
      expect(recv.received).toHaveLength(0);

      // Allowed (by CIDR): the name, which no DNS server knows, is reached through the checked address only.
      const allowed = new DestinationPolicy(['127.0.0.0/8'], async () => [{ address: '127.0.0.1', family: 4 }]);
      const s2 = new WebhookSender(allowed, 2000);
      cleanups.push(() => s2.close());
      expect(await s2.post(url, '{}', headers())).toEqual({ statusCode: 200, error: null, aborted: false });
      expect(recv.received).toHaveLength(1);
      expect(recv.received[0]!.headers.host).toBe(`rebind.test:${recv.port}`);
      expect(recv.received[0]!.verifiedBy).toEqual([secret]);
    });

    it('an IP literal is checked without a lookup; a closed port and a non-2xx are reported without throwing', async () => {
      const recv = await startReceiver({ verifyWith: () => [secret], answer: () => 503 });
      cleanups.push(() => recv.close());
      const strict = new WebhookSender(new DestinationPolicy([]), 2000);
      cleanups.push(() => strict.close());
      const r = await strict.post(`${recv.url}/x`, '{}', headers());
      expect(r.error).toMatch(/destination refused/);
      expect(recv.received).toHaveLength(0);

      const open = new WebhookSender(new DestinationPolicy(['127.0.0.1']), 2000);
      cleanups.push(() => open.close());
      expect(await open.post(`${recv.url}/x`, '{}', headers())).toEqual({ statusCode: 503, error: 'HTTP 503', aborted: false });
      await recv.pause();
      expect(await open.post(`${recv.url}/x`, '{}', headers())).toEqual({ statusCode: null, error: 'connection refused', aborted: false });
    });
  });
});
