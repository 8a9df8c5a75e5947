/**
 * Key and limit management over HTTP for admin keys (/v1/keys, POST /v1/projects/NAME/limits),
 * and `besh keys` / `besh projects` with --base-url using it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { runCli } from '../cli/run-cli.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { api, type CreatedKey, createKey, expectError, uploadForm } from '../helpers/keys.js';

const ADMIN = 'admin-key-for-the-keys-api-test-0123456789';

describe('key management over HTTP (admin keys)', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let besh: BeshProcess;
  let project: CreatedKey;

  beforeAll(async () => {
    mock = await startMockServer({ port: 0, latencyMs: 0 });
    dir = tempDir();
    project = await createKey(dir.path, 'research');
    besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_ADMIN_KEY: ADMIN }, { dataDir: dir.path });
  });
  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('an admin creates a key (secret once), lists keys without secrets, and revokes it', async () => {
    const created = await api(besh, '/v1/keys', { key: ADMIN, json: { project: 'ops', name: 'ci' } });
    expect(created.status, created.text).toBe(200);
    expect(created.body).toMatchObject({ object: 'api_key', project: 'ops', admin: false, name: 'ci', revoked_at: null });
    const secret = created.body.key as string;
    expect(secret).toMatch(/^besh-sk-/);
    expect((await api(besh, '/v1/me', { key: secret })).body).toMatchObject({ project: 'ops', admin: false, key_id: created.body.id });

    const list = await api(besh, '/v1/keys', { key: ADMIN });
    expect(list.status).toBe(200);
    expect(list.body.data.map((k: { id: string }) => k.id)).toEqual([project.id, created.body.id]);
    expect(list.text).not.toContain(secret);
    expect(list.text).not.toContain(project.key);
    expect(list.text).not.toMatch(/"(hash|key)"/);

    const revoked = await api(besh, `/v1/keys/${created.body.id}`, { key: ADMIN, method: 'DELETE' });
    expect(revoked.body).toEqual({ id: created.body.id, object: 'api_key', revoked: true });
    expectError(await api(besh, '/v1/me', { key: secret }), 401, 'authentication_error', 'invalid_api_key');
    expectError(await api(besh, `/v1/keys/${created.body.id}`, { key: ADMIN, method: 'DELETE' }), 404, 'invalid_request_error', 'key_not_found');
  });

  it('a project key may not manage keys or limits (403 admin_key_required)', async () => {
    for (const [path, init] of [
      ['/v1/keys', {}],
      ['/v1/keys', { json: { project: 'research', admin: true } }],
      [`/v1/keys/${project.id}`, { method: 'DELETE' }],
      ['/v1/projects/research/limits', { json: { max_active_batches: 1000 } }],
    ] as const) {
      expectError(await api(besh, path, { key: project.key, ...init }), 403, 'permission_error', 'admin_key_required', path);
    }
    expect((await api(besh, '/v1/me', { key: project.key })).status).toBe(200); // not revoked by the attempt
  });

  it('refuses bad bodies with clear 400s and creates nothing', async () => {
    const before = (await api(besh, '/v1/keys', { key: ADMIN })).body.data.length;
    expectError(await api(besh, '/v1/keys', { key: ADMIN, json: ['x'] }), 400, 'invalid_request_error', 'invalid_type');
    expectError(await api(besh, '/v1/keys', { key: ADMIN, json: {} }), 400, 'invalid_request_error', 'missing_required_parameter');
    expectError(await api(besh, '/v1/keys', { key: ADMIN, json: { project: '../etc' } }), 400, 'invalid_request_error', 'invalid_project');
    expectError(await api(besh, '/v1/keys', { key: ADMIN, json: { project: 'ok', admin: 'yes' } }), 400, 'invalid_request_error', 'invalid_type');
    expectError(await api(besh, '/v1/projects/research/limits', { key: ADMIN, json: { max_disk: 1 } }), 400, 'invalid_request_error', 'unknown_parameter');
    expectError(await api(besh, '/v1/projects/research/limits', { key: ADMIN, json: { max_stored_bytes: -1 } }), 400, 'invalid_request_error', 'invalid_value');
    expectError(await api(besh, '/v1/projects/research/limits', { key: ADMIN, json: { max_stored_bytes: 1.5 } }), 400, 'invalid_request_error', 'invalid_value');
    expect((await api(besh, '/v1/keys', { key: ADMIN })).body.data.length).toBe(before);
  });

  it('limits set over HTTP take effect at once, and null gives the server default back', async () => {
    const set = await api(besh, '/v1/projects/research/limits', { key: ADMIN, json: { max_stored_bytes: 10 } });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({ name: 'research', limits: { max_stored_bytes: 10 }, own_limits: { max_stored_bytes: 10, max_active_batches: null } });
    const line = `${JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [] } })}\n`;
    expectError(await api(besh, '/v1/files', { key: project.key, body: uploadForm(line) }), 429, 'insufficient_quota', 'storage_quota_exceeded');
    const cleared = await api(besh, '/v1/projects/research/limits', { key: ADMIN, json: { max_stored_bytes: null } });
    expect(cleared.body).toMatchObject({ limits: { max_stored_bytes: null }, own_limits: { max_stored_bytes: null } });
    expect((await api(besh, '/v1/files', { key: project.key, body: uploadForm(line) })).status).toBe(200);
  });

  it('besh keys and besh projects work over HTTP with --base-url and an admin key', async () => {
    const remote = ['--base-url', besh.url];
    const created = await runCli(['keys', 'create', '--project', 'remote-team', '--json', ...remote], { OPENAI_API_KEY: ADMIN });
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout) as CreatedKey;
    expect((await api(besh, '/v1/me', { key: key.key })).body.project).toBe('remote-team');

    const list = await runCli(['keys', 'list', ...remote, '--api-key', ADMIN]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(key.id);
    expect(list.stdout).not.toContain(key.key);

    const limits = await runCli(['projects', 'limits', 'remote-team', '--max-active-batches', '3', '--json', ...remote, '--api-key', ADMIN]);
    expect(limits.code, limits.stderr).toBe(0);
    expect(JSON.parse(limits.stdout)).toEqual({ project: 'remote-team', limits: { maxStoredBytes: null, maxActiveBatches: 3, maxQueuedRequests: null } });
    const projects = await runCli(['projects', 'list', '--json', ...remote, '--api-key', ADMIN]);
    expect(JSON.parse(projects.stdout)).toContainEqual(expect.objectContaining({ name: 'remote-team', limits: expect.objectContaining({ maxActiveBatches: 3 }) }));

    const revoked = await runCli(['keys', 'revoke', key.id, ...remote, '--api-key', ADMIN]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const again = await runCli(['keys', 'revoke', key.id, ...remote, '--api-key', ADMIN]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`no active key with id '${key.id}'`);

    // A project key over HTTP: refused with the server's reason, exit 1.
    const denied = await runCli(['keys', 'list', ...remote, '--api-key', project.key]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('This route needs an admin key.');
    expect(denied.stderr).not.toContain(project.key);
  });
});

describe('key management over HTTP on a BESH without keys', () => {
  it('is refused: whoever reaches an open BESH must not be able to lock its operators out', async () => {
    const mock = await startMockServer({ port: 0, latencyMs: 0 });
    const dir = tempDir();
    const besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1` }, { dataDir: dir.path });
    try {
      const r = await api(besh, '/v1/keys', { json: { project: 'grab', admin: true } });
      expectError(r, 403, 'permission_error', 'admin_key_required');
      expect(r.body.error.message).toContain('besh keys create');
      expect((await api(besh, '/v1/me')).body.auth).toBe('open'); // still open: no key was made
    } finally {
      await besh.stop();
      await mock.close();
      dir.remove();
    }
  });
});
