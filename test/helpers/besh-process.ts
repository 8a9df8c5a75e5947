import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import OpenAI from 'openai';

import type { ClusterBackend } from './cluster.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'dist', 'cli', 'main.js');

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

export function tempDir(prefix = 'besh-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface BeshProcess {
  url: string;
  baseURL: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  client: OpenAI;
  /** Keys of the stored blobs under `prefix` (`files/`, `batches/…/`), sorted: local files, or the cluster's S3 objects. */
  listBlobs(prefix: string): Promise<string[]>;
  /** Whether this is a two-replica cluster behind a round-robin proxy (BESH_TEST_CLUSTER). */
  cluster: boolean;
  output(): string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/** BESH_TEST_CLUSTER=N runs the API suites against N replicas on PostgreSQL and S3 instead of one process. */
export const CLUSTER_MODE = Number(process.env.BESH_TEST_CLUSTER ?? 0);

/**
 * In cluster mode, the backend (database and bucket) of the server a test starts on a data
 * directory; made on first use, so a test may prepare the store (keys) before the server starts.
 */
const clusterBackends = new Map<string, Promise<ClusterBackend>>();
const backendFor = (dataDir: string): Promise<ClusterBackend> => {
  let b = clusterBackends.get(dataDir);
  if (!b) clusterBackends.set(dataDir, (b = import('./cluster.js').then((m) => m.startClusterBackend())));
  return b;
};

/**
 * How operator commands (`besh keys …`, `besh projects …`) reach the store of the server on
 * `dataDir`: its data directory, or in cluster mode the cluster's database URL.
 */
export async function storeArgs(dataDir: string): Promise<{ args: string[]; env: Record<string, string> }> {
  if (CLUSTER_MODE === 0) return { args: ['--data-dir', dataDir], env: {} };
  return { args: [], env: { BESH_DATABASE_URL: (await backendFor(dataDir)).db.url } };
}

/**
 * Starts `besh serve` (the built binary) with nothing but environment variables, the way operators
 * and harnesses do, and waits until /health answers. In cluster mode (and unless `local`), the
 * same call starts a cluster and answers through its round-robin proxy.
 */
export async function startBesh(env: Record<string, string>, opts: { dataDir: string; port?: number; local?: boolean }): Promise<BeshProcess> {
  if (CLUSTER_MODE > 0 && opts.local !== true) return startClusterAsOne(env, opts.dataDir);
  const port = opts.port ?? (await freePort());
  const child = spawn(process.execPath, [BIN, 'serve'], {
    cwd: opts.dataDir,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), BESH_DATA_DIR: opts.dataDir, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`besh serve exited with ${child.exitCode}:\n${out}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`besh serve did not become healthy:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'test-key', maxRetries: 0, timeout: 30_000 });
  return {
    url,
    baseURL: `${url}/v1`,
    port,
    dataDir: opts.dataDir,
    child,
    client,
    cluster: false,
    listBlobs: async (prefix) => listLocalBlobs(opts.dataDir, prefix),
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

function listLocalBlobs(root: string, prefix: string): string[] {
  const dir = join(root, ...prefix.split('/').filter(Boolean));
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  walk(dir, prefix.endsWith('/') || prefix === '' ? prefix : `${prefix}/`);
  return out.sort();
}

async function releaseBackend(dataDir: string): Promise<void> {
  const b = clusterBackends.get(dataDir);
  clusterBackends.delete(dataDir);
  await (await b)?.stop();
}

/** A cluster of CLUSTER_MODE replicas that a test drives like one process. */
async function startClusterAsOne(env: Record<string, string>, dataDir: string): Promise<BeshProcess> {
  const { startCluster } = await import('./cluster.js');
  const backend = await backendFor(dataDir);
  const c = await startCluster(CLUSTER_MODE, env, { dataDir, backend });
  const first = c.replicas[0]!;
  const url = c.proxy.url;
  return {
    url,
    baseURL: `${url}/v1`,
    port: c.proxy.port,
    dataDir,
    child: first.child,
    client: c.client,
    cluster: true,
    listBlobs: (prefix) => c.backend.listBlobs(prefix),
    output: () => c.replicas.map((r, i) => `--- replica ${i + 1}\n${r.output()}`).join('\n'),
    stop: async () => {
      await c.proxy.close();
      const codes = await Promise.all(c.replicas.map((r) => r.stop()));
      await releaseBackend(dataDir);
      return codes.find((x) => x !== 0) ?? codes[0] ?? null;
    },
    kill: async () => {
      await c.stop();
      await releaseBackend(dataDir);
    },
  };
}
