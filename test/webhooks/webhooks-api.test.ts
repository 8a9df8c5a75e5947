/**
 * The webhook endpoint API and `besh webhooks` against a real `besh serve` (built binary, SQLite):
 * bad input refused with OpenAI's envelope and nothing stored; secrets shown on create and rotate
 * only (never listed, never logged); two projects isolated (another project's ids answer as
 * missing ones), admin keys see all with `?project=`; cursor paging; the CLI with `--json`.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../cli/run-cli.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { api, type CreatedKey, createKey, expectError, expectSameAsMissing } from '../helpers/keys.js';
import { createEndpoint, type Endpoint, WEBHOOK_ENV } from './helpers.js';
import { type Receiver, startReceiver } from './receiver.js';

const ADMIN_KEY = `admin-${randomBytes(16).toString('hex')}`;

describe('webhook endpoints over the API and the CLI', () => {
  const dir = tempDir('besh-webhooks-api-');
  let besh: BeshProcess;
  let alpha: CreatedKey;
  let beta: CreatedKey;
  let recv: Receiver;
  const secrets: string[] = [];

  beforeAll(async () => {
    recv = await startReceiver({ verifyWith: () => secrets });
    alpha = await createKey(dir.path, 'alpha');
    beta = await createKey(dir.path, 'beta');
    besh = await startBesh({ ...WEBHOOK_ENV, BESH_ADMIN_KEY: ADMIN_KEY, OPENAI_API_BASE: 'http://127.0.0.1:9/v1', BESH_HEALTH_INTERVAL_MS: '0', LOG_LEVEL: 'debug' }, { dataDir: dir.path });
  });
  afterAll(async () => {
    await besh?.kill();
    await recv?.close();
    dir.remove();
  });

  const post = (path: string, json: unknown, key = alpha.key) => api(besh, path, { key, json });
  const list = async (key: string, query = ''): Promise<Endpoint[]> => {
    const r = await api(besh, `/v1/webhook_endpoints${query}`, { key });
    expect(r.status, r.text).toBe(200);
    return r.body.data as Endpoint[];
  };

  it('refuses bad input with a 400 in the OpenAI envelope, and stores nothing', async () => {
    const cases: Array<[unknown, string, string | null]> = [
      [{}, 'missing_required_parameter', 'url'],
      [{ url: '' }, 'missing_required_parameter', 'url'],
      [{ url: 42 }, 'invalid_type', 'url'],
      [[], 'invalid_type', null],
      [{ url: 'ftp://127.0.0.1/x' }, 'invalid_url', 'url'],
      [{ url: 'javascript:alert(1)' }, 'invalid_url', 'url'],
      [{ url: '127.0.0.1/hook' }, 'invalid_url', 'url'],
      [{ url: 'http://user:pw@127.0.0.1/' }, 'invalid_url', 'url'],
      [{ url: 'http://no-such-host.invalid/' }, 'invalid_url', 'url'],
      [{ url: `${recv.url}/`, events: ['batch.exploded'] }, 'invalid_value', 'events'],
      [{ url: `${recv.url}/`, events: [] }, 'invalid_value', 'events'],
      [{ url: `${recv.url}/`, events: 'batch.completed' }, 'invalid_type', 'events'],
      [{ url: `${recv.url}/`, secret: 'whsec_mine' }, 'unknown_parameter', 'secret'],
      // Private destinations (127.0.0.1 is the only one this server allows).
      [{ url: 'http://10.0.0.8/hook' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://192.168.1.20/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://172.20.0.1/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://169.254.169.254/latest/meta-data' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://100.64.1.1/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://0.0.0.0:80/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://127.0.0.2/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://[::1]/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://[fd00::1]/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://[fe80::1]/' }, 'destination_not_allowed', 'url'],
      [{ url: 'http://[::ffff:10.0.0.1]/' }, 'destination_not_allowed', 'url'],
    ];
    for (const [body, code, param] of cases) {
      const r = await post('/v1/webhook_endpoints', body);
      expectError(r, 400, 'invalid_request_error', code, JSON.stringify(body));
      expect(r.body.error.param, JSON.stringify(body)).toBe(param);
    }
    const bad = await api(besh, '/v1/webhook_endpoints', { key: alpha.key, method: 'POST', body: '{"url":', headers: { 'content-type': 'application/json' } });
    expectError(bad, 400, 'invalid_request_error', 'invalid_json');
    expect(await list(ADMIN_KEY)).toEqual([]);
    expect((await api(besh, '/v1/webhook_endpoints', { key: alpha.key, json: { url: 'http://x' } })).status).toBe(400);
    expect((await api(besh, '/v1/webhook_endpoints', { json: { url: `${recv.url}/` } })).status).toBe(401);
  });

  it('creates an endpoint: the secret once, in the answer; never in get or list; another project cannot see it', async () => {
    const e = await createEndpoint(besh, `${recv.url}/alpha?token=abc`, { key: alpha.key, events: ['batch.completed', 'batch.failed', 'batch.completed'] });
    expect(e).toEqual({
      id: expect.stringMatching(/^whep_[0-9A-Za-z]+$/),
      object: 'webhook_endpoint',
      url: `${recv.url}/alpha?token=abc`,
      events: ['batch.completed', 'batch.failed'],
      project: 'alpha',
      created_at: expect.any(Number),
      previous_secret_expires_at: null,
      secret: expect.stringMatching(/^whsec_/),
    });
    secrets.push(e.secret);
    const got = await api(besh, `/v1/webhook_endpoints/${e.id}`, { key: alpha.key });
    const { secret: _s, ...shown } = e;
    expect(got.body).toEqual(shown);
    expect((await list(alpha.key)).map((x) => x.id)).toEqual([e.id]);
    expect(JSON.stringify(await list(alpha.key))).not.toContain(e.secret);
    expect(JSON.stringify(await list(ADMIN_KEY))).not.toContain(e.secret);

    // Beta: its list is empty, and every route of alpha's id answers exactly like a missing id.
    expect(await list(beta.key)).toEqual([]);
    const missing = `whep_${randomBytes(12).toString('hex').slice(0, 24)}`;
    for (const [method, suffix] of [['GET', ''], ['DELETE', ''], ['POST', '/rotate_secret'], ['POST', '/test'], ['GET', '/deliveries']] as const) {
      const hidden = await api(besh, `/v1/webhook_endpoints/${e.id}${suffix}`, { key: beta.key, method });
      const none = await api(besh, `/v1/webhook_endpoints/${missing}${suffix}`, { key: beta.key, method });
      expectError(hidden, 404, 'invalid_request_error', 'webhook_endpoint_not_found', `${method} ${suffix}`);
      expectSameAsMissing(hidden, e.id, none, missing, `${method} ${suffix}`);
    }
    expect((await api(besh, `/v1/webhook_endpoints/${e.id}`, { key: alpha.key })).status).toBe(200);
    // A project key names its own project only.
    const asBeta = await api(besh, '/v1/webhook_endpoints', { key: alpha.key, json: { url: `${recv.url}/` }, headers: { 'openai-project': 'beta' } });
    expectError(asBeta, 403, 'permission_error', 'project_mismatch');
  });

  it('admin keys see every project, or one with ?project=; lists page with an exact has_more', async () => {
    const b1 = await createEndpoint(besh, `${recv.url}/beta-1`, { key: beta.key });
    const b2 = await createEndpoint(besh, `${recv.url}/beta-2`, { key: beta.key });
    const byAdmin = await api(besh, '/v1/webhook_endpoints', { key: ADMIN_KEY, json: { url: `${recv.url}/gamma` }, headers: { 'openai-project': 'gamma' } });
    expect(byAdmin.body.project).toBe('gamma');
    expect((await list(ADMIN_KEY)).map((x) => x.project).sort()).toEqual(['alpha', 'beta', 'beta', 'gamma']);
    expect((await list(ADMIN_KEY, '?project=beta')).map((x) => x.id)).toEqual([b2.id, b1.id]);
    expect((await list(beta.key, '?project=alpha')).map((x) => x.id)).toEqual([b2.id, b1.id]);

    const p1 = await api(besh, '/v1/webhook_endpoints?limit=1&order=asc', { key: beta.key });
    expect(p1.body).toMatchObject({ object: 'list', data: [{ id: b1.id }], first_id: b1.id, last_id: b1.id, has_more: true });
    const p2 = await api(besh, `/v1/webhook_endpoints?limit=1&order=asc&after=${b1.id}`, { key: beta.key });
    expect(p2.body).toMatchObject({ data: [{ id: b2.id }], has_more: false });
    expectError(await api(besh, '/v1/webhook_endpoints?after=batch_x', { key: beta.key }), 400, 'invalid_request_error', 'invalid_value');
    expectError(await api(besh, '/v1/webhook_endpoints?limit=0', { key: beta.key }), 400, 'invalid_request_error', 'invalid_value');
    expectError(await api(besh, '/v1/webhook_deliveries?status=lost', { key: beta.key }), 400, 'invalid_request_error', 'invalid_value');
  });

  it('rotates the secret: a new one, once; the old one signs alongside for 24 h', async () => {
    const e = await createEndpoint(besh, `${recv.url}/rotating`, { key: alpha.key });
    const r = await post(`/v1/webhook_endpoints/${e.id}/rotate_secret`, {});
    expect(r.status, r.text).toBe(200);
    expect(r.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(r.body.secret).not.toBe(e.secret);
    const now = Math.floor(Date.now() / 1000);
    expect(r.body.previous_secret_expires_at).toBeGreaterThanOrEqual(now + 86_400 - 5);
    expect(r.body.previous_secret_expires_at).toBeLessThanOrEqual(now + 86_400 + 1);
    const got = await api(besh, `/v1/webhook_endpoints/${e.id}`, { key: alpha.key });
    expect(got.body.secret).toBeUndefined();
    expect(got.body.previous_secret_expires_at).toBe(r.body.previous_secret_expires_at);
    expect((await api(besh, `/v1/webhook_endpoints/${e.id}`, { key: alpha.key, method: 'DELETE' })).body).toEqual({ id: e.id, object: 'webhook_endpoint', deleted: true });
    expectError(await api(besh, `/v1/webhook_endpoints/${e.id}`, { key: alpha.key }), 404, 'invalid_request_error', 'webhook_endpoint_not_found');
  });

  it('besh webhooks create|list|get|rotate|test|deliveries|delete, over HTTP with --json', async () => {
    const conn = ['--base-url', besh.baseURL, '--api-key', beta.key, '--json'];
    const cli = async (...args: string[]) => {
      const r = await runCli(['webhooks', ...args, ...conn]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout);
    };
    const created = await cli('create', `${recv.url}/cli`, '--events', 'batch.cancelled,batch.expired');
    expect(created).toMatchObject({ object: 'webhook_endpoint', project: 'beta', events: ['batch.cancelled', 'batch.expired'], secret: expect.stringMatching(/^whsec_/) });
    secrets.push(created.secret);
    expect((await cli('list')).map((e: Endpoint) => e.id)).toContain(created.id);
    expect(await cli('get', created.id)).not.toHaveProperty('secret');
    const rotated = await cli('rotate', created.id);
    expect(rotated.secret).toMatch(/^whsec_/);
    secrets.push(rotated.secret);
    const test = await cli('test', created.id);
    expect(test).toMatchObject({ object: 'webhook_delivery', endpoint_id: created.id, event_type: 'webhook_endpoint.test', status: 'pending', data: { id: created.id } });
    await recv.until((r) => r.some((x) => x.webhookId === test.id), 5_000, 'the test event');
    const hit = recv.attemptsOf(test.id)[0]!;
    // Both secrets sign within the 24 h after a rotation.
    expect(hit.verifiedBy.sort()).toEqual([created.secret, rotated.secret].sort());
    expect(hit.path).toBe('/cli');
    let delivered: any[] = [];
    for (let i = 0; i < 50 && delivered[0]?.status !== 'delivered'; i++) delivered = await cli('deliveries', created.id);
    expect(delivered).toMatchObject([{ id: test.id, status: 'delivered', attempts: 1, last_status_code: 200, last_error: null }]);
    expect((await cli('deliveries', '--status', 'delivered')).map((d: { id: string }) => d.id)).toContain(test.id);
    expect(await cli('delete', created.id)).toEqual({ id: created.id, object: 'webhook_endpoint', deleted: true });

    // Human output, and errors as the other commands print them (run at once: each is a process).
    const base = ['--base-url', besh.baseURL, '--api-key', beta.key];
    const [human, gone, refused, usage] = await Promise.all([
      runCli(['webhooks', 'create', `${recv.url}/human`, ...base]),
      runCli(['webhooks', 'get', created.id, ...base]),
      runCli(['webhooks', 'create', 'http://10.1.1.1/', ...base]),
      runCli(['webhooks', 'create', `${recv.url}/`, '--events', 'batch.nope', ...base]),
    ]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^Created webhook endpoint whep_\w+ → http:\/\/127\.0\.0\.1:\d+\/human\n/);
    expect(human.stdout).toMatch(/\n {2}whsec_\S+\n/);
    expect(human.stdout).toMatch(/only time the signing secret is shown/);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`besh webhooks get: No webhook endpoint found with id ${created.id}\n`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HTTP 400: Webhooks may not be sent to '10\.1\.1\.1'.*private/);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/Invalid --events 'batch\.nope'/);
  });

  it('never logs a secret, and logs only the host of a URL', async () => {
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    const out = besh.output();
    expect(out).toMatch(/webhook endpoint created/);
    for (const s of secrets) {
      expect(out).not.toContain(s);
      expect(out).not.toContain(s.slice('whsec_'.length, 30));
    }
    expect(out).not.toContain('token=abc');
  });
});
