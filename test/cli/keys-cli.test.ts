/**
 * `besh keys` and `besh projects` on a data directory (docs/security.md), and the client commands
 * (`submit`, `status`, `list`) against a server that requires keys.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import type { CreatedKey } from '../helpers/keys.js';
import { type CliResult, runCli } from './run-cli.js';

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
const RULE = '1–64 characters: letters, digits, "_", "." and "-", starting with a letter or digit';
const LIST_FIELDS = ['admin', 'created_at', 'id', 'last_used_at', 'name', 'object', 'prefix', 'project', 'revoked_at'];


/** Every byte SQLite holds for this data directory (the database and its write-ahead log). */
const storedBytes = (dataDir: string): string =>
  ['besh.sqlite', 'besh.sqlite-wal']
    .map((f) => join(dataDir, f))
    .filter((p) => existsSync(p))
    .map((p) => readFileSync(p).toString('latin1'))
    .join('');

const expectOk = (r: CliResult): void => {
  expect(r.code, r.stderr).toBe(0);
};

describe('besh keys / besh projects on a data directory', () => {
  const dir = tempDir('besh-keys-cli-');
  const dd = ['--data-dir', dir.path];
  let research: { id: string; secret: string };
  let ops: CreatedKey;
  let spaced: CreatedKey;
  afterAll(() => dir.remove());

  it('an empty data directory: no keys (BESH runs open), no projects', async () => {
    const text = await runCli(['keys', 'list', ...dd]);
    expectOk(text);
    expect(text.stdout).toBe('No keys: BESH runs open (anyone who can reach it can use it). Create one with `besh keys create --project NAME`.\n');
    const [json, projects] = await Promise.all([runCli(['keys', 'list', '--json', ...dd]), runCli(['projects', 'list', ...dd])]);
    expectOk(json);
    expect(JSON.parse(json.stdout)).toEqual([]);
    expectOk(projects);
    expect(projects.stdout).toBe('No projects yet.\n');
  });

  it('keys create prints the secret once; --json carries it; only its SHA-256 hash is stored', async () => {
    const r = await runCli(['keys', 'create', '--project', 'research', ...dd]);
    expectOk(r);
    const m = /^Created key (key_[0-9A-Za-z]+) for project 'research'\.\n\n {2}(besh-sk-[0-9A-Za-z]+)\n\nThis is the only time the key is shown: store it now\./.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    research = { id: m![1]!, secret: m![2]! };
    expect(r.stderr).toBe('');
    // 238 random bits: about 40 base-62 characters.
    expect(research.secret.length).toBeGreaterThanOrEqual(8 + 40);

    const before = Math.floor(Date.now() / 1000);
    const j = await runCli(['keys', 'create', '--project', 'ops', '--admin', '--name', 'on-call', '--json', ...dd]);
    expectOk(j);
    ops = JSON.parse(j.stdout) as CreatedKey;
    expect(ops).toMatchObject({ project: 'ops', admin: true, name: 'on-call', last_used_at: null, revoked_at: null });
    expect(ops.id).toMatch(/^key_[0-9A-Za-z]+$/);
    expect(ops.key).toMatch(/^besh-sk-[0-9A-Za-z]{40,}$/);
    expect(ops.prefix).toBe(`${ops.key.slice(0, 12)}…`);
    expect(ops.created_at).toBeGreaterThanOrEqual(before - 1);
    expect(ops.created_at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
    expect(Object.keys(ops).sort()).toEqual([...LIST_FIELDS, 'key'].sort());
    expect(ops.key).not.toBe(research.secret);
    expect(ops.id).not.toBe(research.id);

    // The default project, and a name that is trimmed and cut.
    const d = (spaced = JSON.parse((await runCli(['keys', 'create', '--json', '--name', '  spaced  ', ...dd])).stdout) as CreatedKey);
    expect(d).toMatchObject({ project: 'default', admin: false, name: 'spaced' });

    const bytes = storedBytes(dir.path);
    for (const secret of [research.secret, ops.key, d.key]) {
      expect(bytes.includes(sha256(secret)), 'the hash is stored').toBe(true);
      expect(bytes.includes(secret), 'the secret is not').toBe(false);
    }
  });

  it('keys list shows id, project, role, prefix, name, state — never a secret (text and --json)', async () => {
    const [text, json, viaEnv] = await Promise.all([
      runCli(['keys', 'list', ...dd]),
      runCli(['keys', 'list', '--json', ...dd]),
      runCli(['keys', 'list', '--json'], { BESH_DATA_DIR: dir.path }),
    ]);
    expectOk(text);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+PROJECT\s+ROLE\s+KEY\s+NAME\s+CREATED\s+LAST USED\s+STATE$/);
    expect(lines).toHaveLength(4);
    // Oldest first.
    expect(lines[1]).toMatch(new RegExp(`^${research.id}\\s+research\\s+project\\s+${research.secret.slice(0, 12)}…\\s+-\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+never\\s+active$`));
    expect(lines[2]).toMatch(new RegExp(`^${ops.id}\\s+ops\\s+admin\\s+${ops.key.slice(0, 12)}…\\s+on-call\\s+.*never\\s+active$`));
    expect(lines[3]).toMatch(/\sdefault\s+project\s.*spaced/);

    expectOk(json);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((k) => k.id)).toEqual([research.id, ops.id, expect.stringMatching(/^key_/)]);
    for (const row of rows) expect(Object.keys(row).sort()).toEqual(LIST_FIELDS);
    expect(rows[1]).toMatchObject({ id: ops.id, project: 'ops', admin: true, name: 'on-call', prefix: ops.prefix, created_at: ops.created_at, revoked_at: null });

    // The data directory may come from BESH_DATA_DIR too.
    expectOk(viaEnv);
    expect(viaEnv.stdout).toBe(json.stdout);

    for (const out of [text.stdout, json.stdout]) {
      for (const secret of [research.secret, ops.key]) {
        expect(out.includes(secret), 'a secret in keys list').toBe(false);
        expect(out.includes(sha256(secret)), 'a stored hash in keys list').toBe(false);
        // Nothing past the 12-character prefix.
        expect(out.includes(secret.slice(0, 13))).toBe(false);
      }
    }
  });

  it('keys revoke: text and --json; an unknown or already revoked id fails with a message', async () => {
    const r = await runCli(['keys', 'revoke', research.id, ...dd]);
    expectOk(r);
    expect(r.stdout).toBe(`Revoked ${research.id}.\n`);
    const [j, again, unknown] = await Promise.all([
      runCli(['keys', 'revoke', spaced.id, '--json', ...dd]),
      runCli(['keys', 'revoke', research.id, ...dd]),
      runCli(['keys', 'revoke', 'key_doesnotexist', ...dd]),
    ]);
    expectOk(j);
    expect(JSON.parse(j.stdout)).toEqual({ id: spaced.id, revoked: true });
    for (const [res, id] of [
      [again, research.id],
      [unknown, 'key_doesnotexist'],
    ] as const) {
      expect(res.code).toBe(2);
      expect(res.stderr).toBe(`besh keys: no active key with id '${id}' (see \`besh keys list\`).\n`);
      expect(res.stdout).toBe('');
    }
    const text = await runCli(['keys', 'list', ...dd]);
    const stamp = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d';
    expect(text.stdout).toMatch(new RegExp(`^${research.id}\\s.*\\srevoked ${stamp}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^${spaced.id}\\s.*\\srevoked ${stamp}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^${ops.id}\\s.*\\snever\\s+active$`, 'm'));
  });

  it('an invalid project name is refused with exit 2 and the naming rule (projects list shows it was not created)', async () => {
    const names = ['bad name', '.hidden', 'x'.repeat(65)];
    const results = await Promise.all([...names.map((n) => runCli(['keys', 'create', `--project=${n}`, ...dd])), runCli(['keys', 'create', '--project', `a${'b'.repeat(63)}`, '--json', ...dd])]);
    names.forEach((n, i) => {
      expect(results[i]!.code, n).toBe(2);
      expect(results[i]!.stderr, n).toBe(`besh keys: invalid --project '${n}': ${RULE}.\n`);
      expect(results[i]!.stdout, n).toBe('');
    });
    // 64 characters is fine.
    expectOk(results[3]!);
    expect(JSON.parse(results[3]!.stdout)).toMatchObject({ project: `a${'b'.repeat(63)}` });
  });

  it('projects limits sets, shows and resets limits; projects list shows usage against them', async () => {
    const set = await runCli(['projects', 'limits', 'research', '--max-stored-bytes', '20GB', '--max-active-batches', '5', ...dd]);
    expectOk(set);
    expect(set.stdout).toBe("Project 'research': max stored 19 GiB, max unfinished batches 5, max queued requests default.\n");
    const json = await runCli(['projects', 'limits', 'research', '--max-queued-requests', 'none', '--json', ...dd]);
    expectOk(json);
    expect(JSON.parse(json.stdout)).toEqual({ project: 'research', limits: { maxStoredBytes: 20e9, maxActiveBatches: 5, maxQueuedRequests: 0 } });
    // A project with no key yet may get limits too; binary units.
    const fresh = await runCli(['projects', 'limits', 'newcomer', '--max-stored-bytes', '1.5GiB', '--json', ...dd]);
    expectOk(fresh);
    expect(JSON.parse(fresh.stdout).limits.maxStoredBytes).toBe(1.5 * 2 ** 30);

    const [list, listJsonRun] = await Promise.all([runCli(['projects', 'list', ...dd]), runCli(['projects', 'list', '--json', ...dd])]);
    expectOk(list);
    const lines = list.stdout.split('\n');
    expect(lines[0]).toMatch(/^PROJECT\s+STORED\s+UNFINISHED\s+QUEUED REQ\s+MAX STORED\s+MAX UNFINISHED\s+MAX QUEUED$/);
    expect(list.stdout).toMatch(/^research\s+0 B\s+0\s+0\s+19 GiB\s+5\s+none$/m);
    expect(list.stdout).toMatch(/^ops\s+0 B\s+0\s+0\s+default\s+default\s+default$/m);
    expect(list.stdout).toMatch(/^newcomer\s+0 B\s+0\s+0\s+1\.5 GiB\s+default\s+default$/m);
    expect(list.stdout).toContain("'default': the server's BESH_PROJECT_MAX_* setting applies.");
    const listJson = JSON.parse(listJsonRun.stdout) as Array<{ name: string; usage: unknown; limits: unknown }>;
    expect(listJson.map((p) => p.name)).toEqual([`a${'b'.repeat(63)}`, 'default', 'newcomer', 'ops', 'research']);
    expect(listJson.find((p) => p.name === 'research')).toEqual({
      name: 'research',
      usage: { storedBytes: 0, activeBatches: 0, queuedRequests: 0 },
      limits: { maxStoredBytes: 20e9, maxActiveBatches: 5, maxQueuedRequests: 0 },
    });

    // `default` goes back to the server's setting; options not given keep their value.
    const reset = await runCli(['projects', 'limits', 'research', '--max-active-batches', 'default', '--json', ...dd]);
    expect(JSON.parse(reset.stdout).limits).toEqual({ maxStoredBytes: 20e9, maxActiveBatches: null, maxQueuedRequests: 0 });
  });

  it('projects limits refuses bad values, no option and bad names with exit 2', async () => {
    const cases: Array<[string[], string]> = [
      [['research', '--max-active-batches', '5MB'], "besh projects: invalid --max-active-batches '5MB': expected a whole number, 'none' or 'default'.\n"],
      [['research', '--max-queued-requests', '0'], "besh projects: invalid --max-queued-requests '0': must be at least 1 (or 'none').\n"],
      [['research'], 'besh projects: give at least one of --max-stored-bytes, --max-active-batches, --max-queued-requests.\n'],
      [['bad name', '--max-active-batches', '1'], `besh projects: invalid project 'bad name': ${RULE}.\n`],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(['projects', 'limits', ...args, ...dd])));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(' ')).toBe(2);
      expect(r.stderr).toBe(cases[i]![1]);
    });
    // Nothing changed (and no project named 'bad name' appeared).
    const projects = JSON.parse((await runCli(['projects', 'list', '--json', ...dd])).stdout) as Array<{ name: string; limits: unknown }>;
    expect(projects.map((p) => p.name)).toEqual([`a${'b'.repeat(63)}`, 'default', 'newcomer', 'ops', 'research']);
    expect(projects.find((p) => p.name === 'research')!.limits).toEqual({ maxStoredBytes: 20e9, maxActiveBatches: null, maxQueuedRequests: 0 });
  });

  it('--help works on every keys and projects command', async () => {
    const cmds = [['keys', 'create'], ['keys', 'list'], ['keys', 'revoke'], ['projects', 'list'], ['projects', 'limits']];
    const results = await Promise.all(cmds.map((c) => runCli([...c, '--help'])));
    results.forEach((r, i) => {
      const name = cmds[i]!.join(' ');
      expect(r.code, name).toBe(0);
      expect(r.stdout, name).toMatch(new RegExp(`^Usage: besh ${name} `));
      expect(r.stderr, name).toBe('');
    });
    const [create, list, revoke, projects, limits] = results as [CliResult, CliResult, CliResult, CliResult, CliResult];
    expect(list.stdout).toContain('--json');
    expect(projects.stdout).toContain('--data-dir <dir>');
    expect(create.stdout).toContain('--project <name>');
    expect(create.stdout).toContain('--admin');
    expect(create.stdout).toContain('--data-dir <dir>');
    expect(create.stdout).toContain('besh keys create --project research');
    expect(revoke.stdout).toContain('<key_id>');
    expect(limits.stdout).toMatch(/^Usage: besh projects limits \[options\] <project>/);
    expect(limits.stdout).toContain('--max-stored-bytes <size>');
    expect(limits.stdout).toContain('--max-queued-requests <n>');
  });
});

describe('client commands against a server that requires keys', () => {
  let mock: MockServer;
  let besh: BeshProcess;
  const dir = tempDir('besh-keys-client-');
  let team: CreatedKey;
  let other: CreatedKey;
  let batchId: string;
  const WRONG = 'besh-sk-WrongKeyThatIsNotStored0123456789abcdef';

  const create = async (project: string): Promise<CreatedKey> => {
    const r = await runCli(['keys', 'create', '--project', project, '--json', '--data-dir', dir.path]);
    expectOk(r);
    return JSON.parse(r.stdout) as CreatedKey;
  };

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 2 });
    team = await create('team');
    other = await create('other');
    besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, BESH_SHUTDOWN_GRACE_MS: '300', BESH_PROGRESS_FLUSH_MS: '100', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
    writeFileSync(join(dir.path, 'in.jsonl'), chatLines(3));
  }, 60_000);

  afterAll(async () => {
    await besh?.stop();
    await mock?.close();
    dir.remove();
  });

  const base = (): Record<string, string> => ({ BESH_BASE_URL: besh.baseURL });

  it('submit --wait with OPENAI_API_KEY from the environment', async () => {
    const r = await runCli(['submit', join(dir.path, 'in.jsonl'), '--wait'], { ...base(), OPENAI_API_KEY: team.key });
    expectOk(r);
    expect(r.stdout).toMatch(/^batch_[0-9A-Za-z]+\n$/);
    expect(r.stderr).toContain('completed');
    batchId = r.stdout.trim();
  });

  it('status and list with --api-key (which wins over OPENAI_API_KEY)', async () => {
    const [status, list] = await Promise.all([
      runCli(['status', batchId, '--api-key', team.key], base()),
      runCli(['list', '--api-key', team.key], { ...base(), OPENAI_API_KEY: WRONG }),
    ]);
    expectOk(status);
    expect(status.stdout).toMatch(/status\s+completed/);
    expect(status.stdout).toContain('3 completed, 0 failed, 3 total');
    expectOk(list);
    expect(list.stdout).toMatch(new RegExp(`^${batchId}\\s+completed\\s+3/3\\s`, 'm'));
  });

  it("another project's key sees no such batch", async () => {
    const [status, list] = await Promise.all([
      runCli(['status', batchId, '--api-key', other.key], base()),
      runCli(['list', '--json', '--api-key', other.key], base()),
    ]);
    expect(status.code).toBe(1);
    expect(status.stderr).toBe(`besh status: No batch found with id ${batchId}\n`);
    expectOk(list);
    expect(JSON.parse(list.stdout)).toEqual([]);
    // …while its own key lists it.
    const own = (await (await fetch(`${besh.baseURL}/batches`, { headers: { authorization: `Bearer ${team.key}` } })).json()) as { data: Array<{ id: string }> };
    expect(own.data.map((b) => b.id)).toEqual([batchId]);
  });

  it('a wrong, missing or revoked key exits 1 with a clear authentication message that does not echo the key', async () => {
    const input = join(dir.path, 'in.jsonl');
    const [list, status, submit, missing] = await Promise.all([
      runCli(['list', '--api-key', WRONG], base()),
      runCli(['status', batchId], { ...base(), OPENAI_API_KEY: WRONG }),
      runCli(['submit', input, '--wait', '--api-key', WRONG], base()),
      runCli(['list'], base()),
    ]);
    for (const [r, cmd] of [
      [list, 'list'],
      [status, 'status'],
      [submit, 'submit'],
    ] as const) {
      expect(r.code, cmd).toBe(1);
      expect(r.stderr, cmd).toMatch(new RegExp(`^besh ${cmd}: Authentication failed \\(HTTP 401\\): Incorrect API key provided\\. Set --api-key or OPENAI_API_KEY\\.$`, 'm'));
      expect(r.stdout, cmd).toBe('');
      expect(`${r.stdout}${r.stderr}`.includes(WRONG), cmd).toBe(false);
    }
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^besh list: Authentication failed \(HTTP 401\): You didn't provide an API key\. .* Set --api-key or OPENAI_API_KEY\.$/m);

    // Revoked while the server runs: refused at the next request.
    expectOk(await runCli(['keys', 'revoke', other.id, '--data-dir', dir.path]));
    const revoked = await runCli(['list', '--api-key', other.key], base());
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toBe('besh list: Authentication failed (HTTP 401): This API key has been revoked. Set --api-key or OPENAI_API_KEY.\n');
    expect(revoked.stderr.includes(other.key)).toBe(false);
    // Nothing was submitted with the wrong key.
    expect(mock.stats().total_requests).toBe(3);
  });
});
