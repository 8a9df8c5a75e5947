import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type OpenAI from 'openai';
import { expect } from 'vitest';

import type { MockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, upload, waitDone } from '../helpers/batches.js';
import { ROOT } from '../helpers/besh-process.js';

/** The nginx binary, or null when nginx is not installed (the nginx tests then skip). */
export function nginxBinary(): string | null {
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (spawnSync(p, ['-v']).status === 0) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v nginx']);
  const p = r.stdout?.toString().trim();
  return r.status === 0 && p ? p : null;
}

export const NGINX = nginxBinary();
export const NO_NGINX_MESSAGE = 'nginx is not installed: skipping (apt-get install -y nginx-light, or run `make test` as root)';

/**
 * The repository's nginx-8gpu.conf made runnable here: upstream servers → `upstreams` (host:port),
 * listen → 127.0.0.1:`port`, pid, logs and temp files under `dir`, in the foreground.
 */
export function localNginxConf(dir: string, upstreams: string[], port: number): string {
  let conf = readFileSync(join(ROOT, 'nginx-8gpu.conf'), 'utf8');
  let i = 0;
  conf = conf.replace(/server vllm-gpu\d:8000/g, () => `server ${upstreams[i++]}`);
  if (i !== upstreams.length) throw new Error(`nginx-8gpu.conf lists ${i} upstream servers, expected ${upstreams.length}`);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  conf = conf
    .replace(/listen 8000;/, `listen 127.0.0.1:${port};`)
    .replace(/^pid .*;$/m, `pid ${join(dir, 'nginx.pid')};`)
    .replace(/^error_log .*;$/m, `error_log ${join(dir, 'error.log')} warn;`)
    .replace(
      /^http \{$/m,
      `http {\n    client_body_temp_path ${tmp}/body;\n    proxy_temp_path ${tmp}/proxy;\n    fastcgi_temp_path ${tmp}/fastcgi;\n    uwsgi_temp_path ${tmp}/uwsgi;\n    scgi_temp_path ${tmp}/scgi;`,
    );
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `daemon off;\n${user}${conf}`;
}

export interface NginxProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Starts nginx with `conf` (written to `dir`) and waits until `port` answers. */
export async function startNginx(dir: string, conf: string, port: number): Promise<NginxProcess> {
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child = spawn(NGINX!, ['-p', dir, '-e', join(dir, 'error.log'), '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${out}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/nginx-health`)).ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    output: () => out,
    // SIGTERM (nginx's fast shutdown) so the master takes its workers down; SIGKILL would orphan them.
    stop: async () => {
      if (child.exitCode !== null || child.pid === undefined) return;
      const pid = child.pid;
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && process.kill(pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export const receivedBy = (m: MockServer): number => Object.values(m.stats().received).reduce((a, b) => a + b, 0);

/**
 * Runs one batch of `n` lines; `during` runs while it is in progress. Checks it completes with
 * every custom_id exactly once in the output and no error file.
 */
export async function runBatch(client: OpenAI, n: number, prefix: string, during?: () => Promise<void>): Promise<void> {
  const fileId = await upload(client, chatLines(n, { prefix }));
  const batch = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await during?.();
  const done = await waitDone(client, batch.id, 50_000);
  expect(done.status).toBe('completed');
  expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
  expect(done.error_file_id ?? null).toBeNull();
  const out = await readJsonl(client, done.output_file_id);
  expect(out).toHaveLength(n);
  expect(new Set(out.map((l) => l.custom_id as string)).size).toBe(n);
  expect(out.every((l) => (l.response as { status_code: number }).status_code === 200)).toBe(true);
}

/** Every mock within ±50 % of the mean of what they received. */
export function expectFairShares(mocks: MockServer[]): void {
  const counts = mocks.map(receivedBy);
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  for (const c of counts) {
    expect(c, `received per mock: ${counts.join(', ')}`).toBeGreaterThanOrEqual(mean * 0.5);
    expect(c, `received per mock: ${counts.join(', ')}`).toBeLessThanOrEqual(mean * 1.5);
  }
}

/** Resolves once the mocks together received at least `count` requests. */
export async function untilReceived(mocks: MockServer[], count: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (mocks.reduce((n, m) => n + receivedBy(m), 0) < count) {
    if (Date.now() > deadline) throw new Error(`the mocks received fewer than ${count} requests within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The replicas nginx-cluster.conf names, as docker-compose-cluster.yml's services on BESH's port. */
export const CLUSTER_NGINX_REPLICAS = ['besh-1:5000', 'besh-2:5000', 'besh-3:5000'];

/**
 * The repository's nginx-cluster.conf made runnable here, as localNginxConf does for
 * nginx-8gpu.conf: the replicas (besh-N:5000) → `replicas` (host:port), listen → 127.0.0.1:`port`,
 * pid, error log, access log (DIR/access.log) and temp files under `dir`, in the foreground.
 * Nothing else is changed.
 */
export function localClusterNginxConf(dir: string, replicas: string[], port: number): string {
  let conf = readFileSync(join(ROOT, 'nginx-cluster.conf'), 'utf8');
  let i = 0;
  conf = conf.replace(/server besh-\d:5000/g, () => `server ${replicas[i++]}`);
  if (i !== replicas.length) throw new Error(`nginx-cluster.conf lists ${i} replicas, expected ${replicas.length}`);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const replaced = (from: RegExp, to: string): void => {
    if (!from.test(conf)) throw new Error(`nginx-cluster.conf has no line matching ${from}`);
    conf = conf.replace(from, to);
  };
  replaced(/^(\s*)listen 5000;$/m, `$1listen 127.0.0.1:${port};`);
  replaced(/^pid .*;$/m, `pid ${join(dir, 'nginx.pid')};`);
  replaced(/^error_log .*;$/m, `error_log ${join(dir, 'error.log')} warn;`);
  replaced(/^(\s*)access_log \/dev\/stdout (\w+);$/m, `$1access_log ${join(dir, 'access.log')} $2;`);
  replaced(
    /^http \{$/m,
    `http {\n    client_body_temp_path ${tmp}/body;\n    proxy_temp_path ${tmp}/proxy;\n    fastcgi_temp_path ${tmp}/fastcgi;\n    uwsgi_temp_path ${tmp}/uwsgi;\n    scgi_temp_path ${tmp}/scgi;`,
  );
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `daemon off;\n${user}${conf}`;
}
