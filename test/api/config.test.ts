import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError, parseConfig } from '../../src/config.js';
import { type BeshProcess, BIN, freePort, startBesh, tempDir } from '../helpers/besh-process.js';

const dirs: Array<{ path: string; remove(): void }> = [];
const children: ChildProcess[] = [];

const newDir = (): string => {
  const d = tempDir('besh-config-');
  dirs.push(d);
  return d.path;
};

afterAll(async () => {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((res) => {
          if (c.exitCode !== null || c.signalCode !== null) return res();
          c.once('exit', () => res());
          c.kill('SIGKILL');
        }),
    ),
  );
  for (const d of dirs) d.remove();
});

/** Spawns `node dist/cli/main.js serve` with exactly this environment (plus PATH). */
function spawnServe(env: Record<string, string>, cwd: string): { child: ChildProcess; output: () => { stdout: string; stderr: string }; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'serve'], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, output: () => ({ stdout, stderr }), exited };
}

/** Exit code of a process that must stop on its own within the timeout (else it is killed and the test fails). */
async function exitCode(exited: Promise<number | null>, child: ChildProcess, ms = 15_000): Promise<number | null | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), ms)));
  const r = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (r === 'timeout') child.kill('SIGKILL');
  return r;
}

async function waitHealthy(url: string, exited: Promise<number | null>, ms = 15_000): Promise<Response> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + ms;
  for (;;) {
    if (gone) throw new Error('the server exited');
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) return r;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become healthy`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode === null) child.kill('SIGTERM');
  return exited;
}

describe('parseConfig', () => {
  it('has defaults for everything and resolves a relative data dir against the working directory', () => {
    const c = parseConfig({}, '/srv/besh');
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 5000,
      dataDir: '/srv/besh/data',
      upstreamBase: 'http://localhost:8000/v1',
      upstreamApiKey: null,
      maxWorkers: 128,
      maxConcurrentBatches: 10,
      logLevel: 'info',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(parseConfig({ BESH_DATA_DIR: '/abs/dir' }, '/srv').dataDir).toBe('/abs/dir');
  });

  it('reads values, trims them, treats empty as unset and drops a trailing slash of the upstream', () => {
    const c = parseConfig({ PORT: ' 8080 ', MAX_WORKERS: '7', OPENAI_API_BASE: 'http://gpu:8000/v1/', OPENAI_API_KEY: 'sk-x', HOST: '', BESH_EXTRA_ENDPOINTS: '/v1/score, /v1/rerank' }, '/x');
    expect(c).toMatchObject({ port: 8080, maxWorkers: 7, upstreamBase: 'http://gpu:8000/v1', upstreamApiKey: 'sk-x', host: '127.0.0.1' });
    expect(c.extraEndpoints).toEqual(['/v1/score', '/v1/rerank']);
  });

  it.each([
    ['MAX_WORKERS', 'abc'],
    ['MAX_WORKERS', '0'],
    ['MAX_WORKERS', '2.5'],
    ['PORT', '99999'],
    ['PORT', '-1'],
    ['OPENAI_API_BASE', 'not-a-url'],
    ['OPENAI_API_BASE', 'ftp://example.com/v1'],
    ['BESH_MAX_FILE_BYTES', '1.5'],
    ['BESH_MAX_FILE_BYTES', '0'],
    ['BESH_MAX_REQUESTS_PER_BATCH', 'lots'],
    ['BESH_MAX_VALIDATION_ERRORS', '0'],
    ['BESH_REQUEST_TIMEOUT_MS', '5'],
    ['LOG_LEVEL', 'loud'],
    ['BESH_EXTRA_ENDPOINTS', 'score'],
  ])('%s=%s is refused with a ConfigError naming the variable', (name, value) => {
    let err: unknown;
    try {
      parseConfig({ [name]: value }, '/x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(name);
    expect((err as ConfigError).message).toContain(name);
    expect((err as ConfigError).message).toContain(value);
  });

  it('refuses BESH_RETRY_MAX_MS below BESH_RETRY_BASE_MS', () => {
    expect(() => parseConfig({ BESH_RETRY_BASE_MS: '1000', BESH_RETRY_MAX_MS: '10' }, '/x')).toThrow(/BESH_RETRY_MAX_MS/);
  });
});

describe('besh serve refuses bad configuration', () => {
  it('exits non-zero with stderr naming the variable (MAX_WORKERS, PORT, OPENAI_API_BASE, .env)', async () => {
    const cases: Array<[string, string, 'env' | 'dotenv']> = [
      ['MAX_WORKERS', 'abc', 'env'],
      ['PORT', '99999', 'env'],
      ['OPENAI_API_BASE', 'not-a-url', 'env'],
      ['MAX_CONCURRENT_BATCHES', 'many', 'dotenv'],
    ];
    // Concurrently: each start costs a Node process.
    const results = await Promise.all(
      cases.map(async ([name, value, where]) => {
        const cwd = newDir();
        const env: Record<string, string> = { HOST: '127.0.0.1', PORT: String(await freePort()), BESH_DATA_DIR: join(cwd, 'data'), LOG_LEVEL: 'silent' };
        if (where === 'env') env[name] = value;
        else writeFileSync(join(cwd, '.env'), `${name}=${value}\n`);
        const p = spawnServe(env, cwd);
        const code = await exitCode(p.exited, p.child);
        return { name, value, cwd, code, stderr: p.output().stderr };
      }),
    );
    for (const r of results) {
      const label = `${r.name}=${r.value}`;
      expect(r.code, label).not.toBe('timeout');
      expect(r.code, label).not.toBe(0);
      expect(r.code, label).not.toBeNull();
      expect(r.stderr, label).toContain(r.name);
      expect(r.stderr, label).toContain(r.value);
      expect(r.stderr, label).not.toMatch(/\n\s+at /); // a message, not a stack trace
      // Nothing was started: no database was created.
      expect(existsSync(join(r.cwd, 'data', 'besh.sqlite')), label).toBe(false);
    }
  });
});

describe('.env in the working directory', () => {
  it('is read, and the environment wins over it', async () => {
    const dotenv = (port: number): string =>
      ['# settings', `PORT=${port}`, 'HOST=127.0.0.1', 'MAX_WORKERS=7', 'MAX_CONCURRENT_BATCHES=3', 'BESH_DATA_DIR=./from-dotenv', 'LOG_LEVEL=warn', ''].join('\n');
    const [cwdA, cwdB] = [newDir(), newDir()];
    const [portA, dotPortB, envPortB] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(join(cwdA, '.env'), dotenv(portA));
    writeFileSync(join(cwdB, '.env'), dotenv(dotPortB));

    // A: only .env. B: the environment sets PORT and MAX_WORKERS; the rest comes from .env.
    const a = spawnServe({}, cwdA);
    const b = spawnServe({ PORT: String(envPortB), MAX_WORKERS: '11' }, cwdB);
    try {
      const [ha, hb] = await Promise.all([waitHealthy(`http://127.0.0.1:${portA}`, a.exited), waitHealthy(`http://127.0.0.1:${envPortB}`, b.exited)]);
      expect(await ha.json()).toMatchObject({ max_workers: 7, max_concurrent_batches: 3 });
      expect(await hb.json()).toMatchObject({ max_workers: 11, max_concurrent_batches: 3 });
      expect(existsSync(join(cwdA, 'from-dotenv', 'besh.sqlite'))).toBe(true);
      expect(existsSync(join(cwdB, 'from-dotenv', 'besh.sqlite'))).toBe(true);
      await expect(fetch(`http://127.0.0.1:${dotPortB}/health`)).rejects.toThrow();
    } finally {
      const codes = await Promise.all([stopChild(a.child, a.exited), stopChild(b.child, b.exited)]);
      expect(codes).toEqual([0, 0]);
    }
  });
});

describe('health and dashboard', () => {
  let besh: BeshProcess;
  let dir: string;
  beforeAll(async () => {
    dir = newDir();
    besh = await startBesh({ OPENAI_API_BASE: 'http://127.0.0.1:9/v1', MAX_WORKERS: '9', LOG_LEVEL: 'warn' }, { dataDir: dir });
  });
  afterAll(async () => {
    await besh?.stop();
  });

  it('GET /health answers 200 JSON', async () => {
    const r = await fetch(`${besh.url}/health`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.headers.get('x-request-id')).toMatch(/^req_/);
    const body = await r.json();
    expect(body).toMatchObject({ status: 'healthy', active_batches: 0, queued_batches: 0, in_flight: 0, max_workers: 9, max_concurrent_batches: 10 });
  });

  it('GET / serves the HTML dashboard', async () => {
    const r = await fetch(`${besh.url}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await r.text();
    expect(html).toMatch(/<!doctype html>/i);
    expect(html).toMatch(/<\/html>/i);
  });

  it('SIGTERM stops the server promptly with exit code 0, even with a connection that sent no request', async () => {
    // A pre-opened connection (pools, load balancers) must not hold the shutdown until a timeout.
    const sock = connect(besh.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    const half = connect(besh.port, '127.0.0.1');
    half.on('error', () => {});
    await new Promise((r) => half.once('connect', r));
    half.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    try {
      expect(await exitCode(besh.stop(), besh.child, 10_000)).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      sock.destroy();
      half.destroy();
    }
  });
});
