/**
 * docs/security.md, "Secrets, headers, CORS": upstream and users' keys never appear in logs,
 * error messages, API responses or the page; request bodies are never logged; every answer
 * carries the security headers; CORS is off unless BESH_CORS_ORIGINS lists origins.
 */
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { createKey, revokeKey } from '../helpers/keys.js';

const UPSTREAM_KEY = 'sk-upstream-SECRET-u7Hq2LmZ9xVb4';
const ADMIN_KEY = 'admin-SECRET-k3Rt8WnQ5pJc1Yd6';
const METRICS_TOKEN = 'metrics-SECRET-t0Ka9Zq4Wv7Nm2';
const WRONG_KEY = 'besh-sk-WRONG-SECRET-e5Pf1Hx8Gq3Lr';
const BASIC_SECRET = 'basic-SECRET-b6Uy2Ds9Fo4Ij';
/** A prompt text in uploaded lines: it may come back in API answers, never in the log. */
const PROMPT = 'prompt-CANARY-q8Vw3Zx1Rt6Yn';

/** Every answer the tests saw, to search for secrets afterwards. */
interface Seen {
  what: string;
  status: number;
  headers: Array<[string, string]>;
  body: string;
}
const seen: Seen[] = [];

async function record(what: string, r: Response): Promise<Seen> {
  const s: Seen = { what, status: r.status, headers: [...r.headers.entries()], body: await r.clone().text() };
  seen.push(s);
  return s;
}

/** A fetch that records each answer; given to the SDK clients. */
const recordingFetch = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const r = await fetch(url, init);
  const href = typeof url === 'string' ? url : url instanceof URL ? url.href : url.url;
  await record(`${init?.method ?? 'GET'} ${href}`, r);
  return r;
};

interface Answer extends Seen {
  json: any;
  header(name: string): string | null;
}

async function call(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const r = await fetch(`${base}${path}`, init);
  const s = await record(`${init.method ?? 'GET'} ${path}`, r);
  let json: any = null;
  try {
    json = JSON.parse(s.body);
  } catch {
    /* not JSON */
  }
  return { ...s, json, header: (name) => r.headers.get(name) };
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

const sdk = (besh: BeshProcess, apiKey: string, project?: string): OpenAI =>
  new OpenAI({ baseURL: besh.baseURL, apiKey, maxRetries: 0, timeout: 30_000, fetch: recordingFetch, ...(project ? { project } : {}) });

/** The headers docs/security.md promises on every answer. */
function expectSecurityHeaders(a: Answer): void {
  const where = `${a.what} → ${a.status}`;
  const csp = a.header('content-security-policy');
  expect(csp, where).not.toBeNull();
  const directives = new Map(csp!.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
  expect(directives.get('default-src'), where).toEqual(["'self'"]);
  expect(directives.get('frame-ancestors'), where).toEqual(["'none'"]);
  expect(directives.get('script-src'), where).toEqual(["'self'"]);
  expect(directives.get('style-src'), where).toEqual(["'self'"]);
  expect(csp, where).not.toContain('unsafe-inline');
  expect(csp, where).not.toContain('unsafe-eval');
  expect(a.header('x-frame-options'), where).toBe('DENY');
  expect(a.header('x-content-type-options'), where).toBe('nosniff');
  expect(a.header('referrer-policy'), where).toBe('no-referrer');
  expect(a.header('cross-origin-opener-policy'), where).toBe('same-origin');
  expect(a.header('cross-origin-resource-policy'), where).toBe('same-origin');
  expect(a.header('strict-transport-security'), where).toBeNull();
}

const noCors = (a: Answer): void => {
  for (const [name] of a.headers) expect(name, `${a.what} → ${a.status}`).not.toMatch(/^access-control-/);
};

describe('secrets stay secret; security headers; CORS off by default', () => {
  let mock: MockServer;
  let besh: BeshProcess;
  let dir: { path: string; remove(): void };
  let projectKey: string;
  let revokedKey: { id: string; key: string };
  let secrets: Record<string, string>;
  /** `status path` of the read routes queried with each key. */
  const readStatuses: string[] = [];

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, models: ['mock-model'], latencyMs: 2, fail500Rate: 0.2, maxFaultsPerRequest: 1, seed: 7 });
    dir = tempDir('besh-secrets-');
    const [made, doomed] = await Promise.all([createKey(dir.path, 'research'), createKey(dir.path, 'research')]);
    projectKey = made.key;
    revokedKey = doomed;
    secrets = {
      'upstream OPENAI_API_KEY': UPSTREAM_KEY,
      BESH_ADMIN_KEY: ADMIN_KEY,
      BESH_METRICS_TOKEN: METRICS_TOKEN,
      'project key': projectKey,
      'revoked key': revokedKey.key,
      'wrong key sent': WRONG_KEY,
      'Basic credentials sent': BASIC_SECRET,
    };
    besh = await startBesh(
      {
        OPENAI_API_BASE: `${mock.url}/v1`,
        OPENAI_API_KEY: UPSTREAM_KEY,
        BESH_ADMIN_KEY: ADMIN_KEY,
        BESH_METRICS_TOKEN: METRICS_TOKEN,
        BESH_RETRY_BASE_MS: '10',
        BESH_PROGRESS_FLUSH_MS: '50',
        LOG_LEVEL: 'trace',
      },
      { dataDir: dir.path },
    );

    // Work of every kind, as the project key and the admin key.
    const research = sdk(besh, projectKey);
    const admin = sdk(besh, ADMIN_KEY);
    const lines = chatLines(12, { prefix: 'ok', marker: (i) => (i % 4 === 3 ? `${PROMPT} MOCK_FAIL_400` : PROMPT) });
    const input = await research.files.create({ file: await toFile(Buffer.from(lines), 'canary.jsonl'), purpose: 'batch' });
    const batch = await research.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { note: 'canary run' } });
    const done = await waitDone(research, batch.id, 30_000);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 12, completed: 9, failed: 3 });
    expect(JSON.stringify(await readJsonl(research, done.output_file_id))).toContain('ok-0');
    expect(await readJsonl(research, done.error_file_id)).toHaveLength(3);
    // The input file's content: an answer that does carry the prompt.
    expect(await (await research.files.content(input.id)).text()).toContain(PROMPT);

    // A batch that fails validation (a model no upstream serves): its errors name the lines.
    const nomodel = await research.files.create({
      file: await toFile(Buffer.from(chatLines(2, { prefix: 'nomodel', model: 'model-nobody-serves', marker: () => PROMPT })), 'nomodel.jsonl'),
      purpose: 'batch',
    });
    const unserved = await waitDone(research, (await research.batches.create({ input_file_id: nomodel.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 30_000);
    expect(unserved.status).toBe('failed');
    expect(unserved.errors?.data?.map((e) => [e.code, e.line])).toEqual([
      ['model_not_found', 1],
      ['model_not_found', 2],
    ]);

    // Lines the mock refuses (400) and the mock's 500s (retried): an error file.
    const failing = await research.files.create({ file: await toFile(Buffer.from(chatLines(4, { prefix: 'bad', marker: () => `${PROMPT} MOCK_FAIL_400` })), 'fail.jsonl'), purpose: 'batch' });
    const failed = await waitDone(research, (await research.batches.create({ input_file_id: failing.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 30_000);
    expect(failed.request_counts?.failed).toBe(4);
    const errors = await readJsonl(research, failed.error_file_id);
    expect(errors).toHaveLength(4);

    // A line that is not JSON (holding the prompt) and a line for another endpoint.
    const broken = `${chatLines(1, { prefix: 'fine', marker: () => PROMPT })}{"custom_id": "broken", "body": "${PROMPT}\n`;
    await research.files.create({ file: await toFile(Buffer.from(broken), 'broken.jsonl'), purpose: 'batch' }).then(
      async (f) => waitDone(research, (await research.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 30_000),
      (err: unknown) => expect(err).toBeInstanceOf(OpenAI.APIError),
    );
    const wrongEndpoint = await research.files.create({ file: await toFile(Buffer.from(chatLines(2, { url: '/v1/embeddings', marker: () => PROMPT })), 'endpoint.jsonl'), purpose: 'batch' });
    const invalid = await waitDone(research, (await research.batches.create({ input_file_id: wrongEndpoint.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id, 30_000);
    expect(invalid.status).toBe('failed');

    await research.files.list();
    await research.batches.list();
    await call(besh.url, '/v1/batches?project=research', { headers: bearer(ADMIN_KEY) });
    await admin.files.list();
    for (const path of ['/v1/me', '/v1/projects', '/v1/projects/research', '/v1/batches/status', '/v1/batches/dashboard', '/v1/batches/analytics/live']) {
      for (const key of [projectKey, ADMIN_KEY]) readStatuses.push(`${(await call(besh.url, path, { headers: bearer(key) })).status} ${path}`);
    }
    readStatuses.push(`${(await call(besh.url, '/metrics', { headers: bearer(METRICS_TOKEN) })).status} /metrics`);
    await call(besh.url, `/v1/batches/${batch.id}/token_usage`, { headers: bearer(projectKey) });
    // The event stream: its first events, then leave.
    const ac = new AbortController();
    const events = await fetch(`${besh.url}/v1/events`, { headers: bearer(ADMIN_KEY), signal: ac.signal });
    const reader = events.body!.getReader();
    const first = await reader.read();
    seen.push({ what: 'GET /v1/events', status: events.status, headers: [...events.headers.entries()], body: new TextDecoder().decode(first.value) });
    ac.abort();
    await reader.cancel().catch(() => undefined);

    // Use one more key, then revoke it while the server runs.
    expect((await call(besh.url, '/v1/me', { headers: bearer(revokedKey.key) })).json).toMatchObject({ project: 'research', key_id: revokedKey.id });
    const revoke = await revokeKey(dir.path, revokedKey.id);
    expect(revoke.code, revoke.stderr).toBe(0);
  }, 90_000);

  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('401s say why without echoing the key; other errors reveal nothing either', async () => {
    const none = await call(besh.url, '/v1/files');
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('missing_api_key');
    const wrong = await call(besh.url, '/v1/batches', { headers: bearer(WRONG_KEY) });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toMatchObject({ code: 'invalid_api_key', message: 'Incorrect API key provided.' });
    const wrongPost = await call(besh.url, '/v1/batches', { method: 'POST', headers: { ...bearer(WRONG_KEY), 'content-type': 'application/json' }, body: JSON.stringify({ input_file_id: 'file-x', prompt: PROMPT }) });
    expect(wrongPost.status).toBe(401);
    const basic = await call(besh.url, '/v1/me', { headers: { authorization: `Basic ${BASIC_SECRET}` } });
    expect(basic.status).toBe(401);
    expect(basic.json.error.code).toBe('missing_api_key');
    const revoked = await call(besh.url, '/v1/me', { headers: bearer(revokedKey.key) });
    expect(revoked.status).toBe(401);
    expect(revoked.json.error).toMatchObject({ code: 'invalid_api_key', message: 'This API key has been revoked.' });
    // The SDK with a wrong key: its error carries the server's message, not the key.
    const err = await sdk(besh, WRONG_KEY).files.list().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(String((err as Error).message)).not.toContain(WRONG_KEY);

    // A project key acting for another project (the SDK's `project` option sends OpenAI-Project).
    const mismatch = await sdk(besh, projectKey, 'someone-else')
      .files.create({ file: await toFile(Buffer.from(chatLines(1, { marker: () => PROMPT })), 'other.jsonl'), purpose: 'batch' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(mismatch).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((mismatch as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe('project_mismatch');
    expect((await call(besh.url, '/v1/batches/batch_doesnotexist', { headers: bearer(projectKey) })).status).toBe(404);
    const badJson = await call(besh.url, '/v1/batches', { method: 'POST', headers: { ...bearer(projectKey), 'content-type': 'application/json' }, body: `{"prompt": "${PROMPT}"` });
    expect(badJson.status).toBe(400);
    const missingFile = await call(besh.url, '/v1/batches', {
      method: 'POST',
      headers: { ...bearer(projectKey), 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { p: PROMPT } }),
    });
    expect(missingFile.status).toBe(404);
    expect((await call(besh.url, '/metrics')).status).toBe(401);
    expect((await call(besh.url, '/metrics', { headers: bearer(WRONG_KEY) })).status).toBe(401);
    expect((await call(besh.url, '/health')).status).toBe(200);
  });

  it('the read routes queried above answered 200 to both keys (and /metrics to its token)', () => {
    expect(readStatuses).toHaveLength(13);
    expect(readStatuses.filter((s) => !s.startsWith('200 '))).toEqual([]);
  });

  it('the page and its assets are served without a key and hold no secret', async () => {
    const page = await call(besh.url, '/');
    expect(page.status).toBe(200);
    expect(page.header('content-type')).toMatch(/^text\/html/);
    const assets = [...page.body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const a of assets) {
      const r = await call(besh.url, a);
      expect(r.status, a).toBe(200);
      expect(r.body.length, a).toBeGreaterThan(100);
    }
    const pageText = seen.filter((s) => s.what === 'GET /' || s.what.startsWith('GET /assets/'));
    expect(pageText.length).toBe(assets.length + 1);
    for (const s of pageText) for (const [name, secret] of Object.entries(secrets)) expect(s.body.includes(secret), `${name} in ${s.what}`).toBe(false);
  });

  it('no secret appears in any answer collected (bodies and headers)', () => {
    // Everything above (the beforeAll work and the error cases) ran first: vitest keeps file order.
    expect(seen.length).toBeGreaterThan(40);
    expect(seen.some((s) => s.body.includes(PROMPT)), 'the answers do carry request content (the check below is not vacuous)').toBe(true);
    for (const s of seen) {
      const text = `${s.body}\n${s.headers.map(([k, v]) => `${k}: ${v}`).join('\n')}`;
      for (const [name, secret] of Object.entries(secrets)) expect(text.includes(secret), `${name} in the answer to ${s.what} (${s.status})`).toBe(false);
    }
  });

  it('the log (level trace) holds no key, no token and no request body', () => {
    const log = besh.output();
    // The log did record all of the above: requests, 401s, statuses — at trace/debug level too.
    expect(log).toMatch(/"level":20/);
    expect(log).toMatch(/"status":401/);
    expect(log).toMatch(/"status":403/);
    expect(log).toContain('batch completed');
    expect(log).toContain('batch failed');
    // Each leak as `what: the message of the log line` (a line that is not JSON is shown whole).
    const leaks: string[] = [];
    const lines = log.split('\n');
    // Not even a recognisable part of a key: the first 16 characters of each (20+ character) secret.
    for (const [name, secret] of [...Object.entries(secrets), ['request body (prompt)', PROMPT] as const]) {
      for (const line of lines.filter((l) => l.includes(secret.slice(0, 16)))) {
        let msg = line.slice(0, 200);
        try {
          msg = String((JSON.parse(line) as { msg?: unknown }).msg);
        } catch {
          /* not a JSON log line */
        }
        leaks.push(`${name}: ${msg}`);
      }
    }
    expect([...new Set(leaks)]).toEqual([]);
  });

  it('every answer carries the security headers: the page, a JSON route, errors', async () => {
    expectSecurityHeaders(await call(besh.url, '/'));
    expectSecurityHeaders(await call(besh.url, '/assets/app.js'));
    const me = await call(besh.url, '/v1/me', { headers: bearer(projectKey) });
    expect(me.status).toBe(200);
    expect(me.header('content-type')).toMatch(/^application\/json/);
    expectSecurityHeaders(me);
    const unauthorized = await call(besh.url, '/v1/me', { headers: bearer(WRONG_KEY) });
    expect(unauthorized.status).toBe(401);
    expectSecurityHeaders(unauthorized);
    const unknown = await call(besh.url, '/v1/nothing-here', { headers: bearer(projectKey) });
    expect(unknown.status).toBe(404);
    expectSecurityHeaders(unknown);
    expectSecurityHeaders(await call(besh.url, '/health'));
    // A path the router itself refuses (bad percent-encoding) is an answer too.
    const routerRefused = await call(besh.url, '/v1/files/%E0%A4%A', { headers: bearer(projectKey) });
    expect(routerRefused.status).toBe(404);
    expectSecurityHeaders(routerRefused);
  });

  it('CORS is off by default: no Access-Control-* headers, not even on a preflight', async () => {
    const get = await call(besh.url, '/v1/me', { headers: { ...bearer(projectKey), origin: 'http://evil.example' } });
    expect(get.status).toBe(200);
    noCors(get);
    const preflight = await call(besh.url, '/v1/files', {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    noCors(preflight);
    expect(preflight.status).toBeGreaterThanOrEqual(400);
    const allowedLooking = await call(besh.url, '/v1/batches', { method: 'OPTIONS', headers: { origin: 'http://allowed.example', 'access-control-request-method': 'GET' } });
    noCors(allowedLooking);
    noCors(await call(besh.url, '/', { headers: { origin: 'http://evil.example' } }));
  });
});

describe('CORS with BESH_CORS_ORIGINS', () => {
  let mock: MockServer;
  let besh: BeshProcess;
  let dir: { path: string; remove(): void };

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0 });
    dir = tempDir('besh-cors-');
    besh = await startBesh(
      { OPENAI_API_BASE: `${mock.url}/v1`, BESH_ADMIN_KEY: ADMIN_KEY, BESH_CORS_ORIGINS: 'http://allowed.example', LOG_LEVEL: 'warn' },
      { dataDir: dir.path },
    );
  }, 30_000);

  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('an allowed origin gets its origin echoed; a preflight works without a key', async () => {
    const get = await call(besh.url, '/v1/me', { headers: { ...bearer(ADMIN_KEY), origin: 'http://allowed.example' } });
    expect(get.status).toBe(200);
    expect(get.header('access-control-allow-origin')).toBe('http://allowed.example');
    expect(get.header('vary') ?? '').toMatch(/origin/i);
    expect(get.header('access-control-expose-headers') ?? '').toMatch(/x-request-id/i);
    expectSecurityHeaders(get);

    const preflight = await call(besh.url, '/v1/files', {
      method: 'OPTIONS',
      headers: { origin: 'http://allowed.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(preflight.status).toBeGreaterThanOrEqual(200);
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.header('access-control-allow-origin')).toBe('http://allowed.example');
    expect(preflight.header('access-control-allow-methods') ?? '').toMatch(/POST/);
    expect((preflight.header('access-control-allow-headers') ?? '').toLowerCase()).toContain('authorization');

    // CORS does not replace the key: the actual request still needs one.
    const noKey = await call(besh.url, '/v1/files', { headers: { origin: 'http://allowed.example' } });
    expect(noKey.status).toBe(401);
  });

  it('another origin gets no Access-Control-Allow-Origin, on requests or preflights', async () => {
    const get = await call(besh.url, '/v1/me', { headers: { ...bearer(ADMIN_KEY), origin: 'http://evil.example' } });
    expect(get.status).toBe(200);
    expect(get.header('access-control-allow-origin')).toBeNull();
    const preflight = await call(besh.url, '/v1/files', {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.header('access-control-allow-origin')).toBeNull();
    // A look-alike origin is not the allowed one either.
    const lookalike = await call(besh.url, '/v1/me', { headers: { ...bearer(ADMIN_KEY), origin: 'http://allowed.example.evil.example' } });
    expect(lookalike.header('access-control-allow-origin')).toBeNull();
  });
});
