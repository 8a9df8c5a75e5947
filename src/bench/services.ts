import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { track } from './cleanup.js';
import { freePort } from './free-port.js';
import { waitForHealthy } from './http.js';

/** A child process of the benchmark: BESH or the mock inference server. */
export interface Service {
  readonly name: string;
  readonly pid: number;
  /** e.g. http://127.0.0.1:PORT */
  readonly url: string;
  /** SIGTERM, then SIGKILL if it has not exited within a few seconds. */
  stop(): Promise<void>;
  /** The last lines it wrote, for error messages. */
  outputTail(): string;
}

const MAIN_JS = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const HOST = '127.0.0.1';
const STOP_GRACE_MS = 5000;
const TAIL_CHARS = 8192;

export async function startMock(latencyMs: number, cwd: string, extraArgs: readonly string[] = [], name = 'mock'): Promise<Service> {
  const port = await freePort(HOST);
  return startService(name, ['mock', '--host', HOST, '--port', String(port), '--latency-ms', String(latencyMs), ...extraArgs], {}, port, cwd);
}

/** nginx in the foreground with `confPath` (prefix `dir`); healthy once `port` answers /health. */
export async function startNginxService(nginxBin: string, dir: string, confPath: string, port: number): Promise<Service> {
  return startService('nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', confPath], {}, port, dir, nginxBin);
}

export interface BeshSettings {
  dataDir: string;
  upstreamUrl: string;
  /** A number, or 'auto'. */
  maxWorkers: number | 'auto';
  maxFileBytes: number;
  /** OPENAI_API_BASE as is (e.g. a comma-separated list); overrides `${upstreamUrl}/v1`. */
  upstreamBase?: string;
  /** More variables (a cluster replica's database and bucket, for instance). */
  env?: Record<string, string>;
}

export async function startBesh(s: BeshSettings): Promise<Service> {
  const port = await freePort(HOST);
  const env = {
    HOST,
    PORT: String(port),
    BESH_DATA_DIR: s.dataDir,
    OPENAI_API_BASE: s.upstreamBase ?? `${s.upstreamUrl}/v1`,
    MAX_WORKERS: String(s.maxWorkers),
    BESH_MAX_FILE_BYTES: String(s.maxFileBytes),
    BESH_SHUTDOWN_GRACE_MS: '2000',
    LOG_LEVEL: 'warn',
    ...s.env,
  };
  return startService(s.env?.BESH_REPLICA_ID ?? 'besh', ['serve'], env, port, s.dataDir);
}

async function startService(name: string, args: string[], env: Record<string, string>, port: number, cwd: string, command?: string): Promise<Service> {
  // Only PATH and HOME from our environment: a BESH_* or MAX_* variable in the caller's shell (or a
  // .env in the working directory, hence cwd) must not change what is measured.
  const child = spawn(command ?? process.execPath, command ? args : [MAIN_JS, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  let error: Error | null = null;
  void spawnError.then((e) => (error = e));

  const pid = child.pid;
  if (pid === undefined) throw await spawnError;
  const stop = track({
    label: `${name} (pid ${pid})`,
    release: () => terminate(child, exited),
    releaseSync: () => {
      if (isRunning(child)) process.kill(pid, 'SIGKILL');
    },
  });
  const url = `http://${HOST}:${port}`;
  const service: Service = { name, pid, url, stop, outputTail: () => tail.trim() };
  try {
    await waitForHealthy(`${url}/health`, 20_000, () => {
      if (error) return error;
      if (!isRunning(child)) return new Error(`${name} exited (code ${child.exitCode}, signal ${child.signalCode})`);
      return null;
    });
  } catch (err) {
    await stop();
    throw new Error(`${name} did not start: ${(err as Error).message}\n--- ${name} output ---\n${tail.trim()}`);
  }
  return service;
}

const isRunning = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (!isRunning(child) || child.pid === undefined) return;
  process.kill(child.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS)));
  const late = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late && isRunning(child)) {
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
}
