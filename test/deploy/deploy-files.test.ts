import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { CONFIG_VARIABLES, parseConfig } from '../../src/config.js';
import { ROOT, tempDir } from '../helpers/besh-process.js';
import { localNginxConf, NGINX, NO_NGINX_MESSAGE } from '../topology/topology-helpers.js';

/** No Docker engine runs here: check what can be checked without one. */
interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[];
  ports?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const read = (f: string): string => readFileSync(join(ROOT, f), 'utf8');
const compose = (f: string): Compose => parse(read(f), { merge: true }) as Compose;
/** `${NAME:-default}` → default, as docker compose does when NAME is unset. */
const interpolate = (v: string | number): string => String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
const hostPort = (p: string): number => Number(interpolate(p).split(':')[0]);
const containerPort = (p: string): number => Number(interpolate(p).split(':')[1]);
const nginxConf = read('nginx-8gpu.conf');
const workerConnections = Number(/worker_connections\s+(\d+);/.exec(nginxConf)?.[1]);

function checkBesh(c: Compose, upstream: string): void {
  const besh = c.services.besh!;
  expect(besh.build).toBe('.');
  const env = Object.fromEntries(Object.entries(besh.environment!).map(([k, v]) => [k, interpolate(v)]));
  // Every variable set is one BESH reads, and the whole set is valid configuration.
  for (const k of Object.keys(env)) expect(CONFIG_VARIABLES as string[]).toContain(k);
  const config = parseConfig(env, '/app');
  expect(config.upstreamBase).toBe(upstream);
  expect(config.host).toBe('0.0.0.0');
  expect(config.maxWorkers).toBe(128);
  expect(config.dataDir).toBe('/data');
  expect(besh.ports!.map(containerPort)).toEqual([config.port]);
  expect(besh.ports!.map(hostPort)).toEqual([5000]);
  expect(besh.volumes).toEqual(['besh-data:/data']);
  // Named volumes are declared; the upstream host is a service of the file, started first.
  for (const s of Object.values(c.services)) {
    for (const v of s.volumes ?? []) {
      const src = v.split(':')[0]!;
      if (src.startsWith('.')) expect(existsSync(join(ROOT, src)), v).toBe(true);
      else expect(Object.keys(c.volumes ?? {})).toContain(src);
    }
  }
  const host = new URL(upstream).hostname;
  expect(Object.keys(c.services)).toContain(host);
  expect(besh.depends_on?.[host]?.condition).toBe('service_healthy');
}

describe('deployment files', () => {
  it('Dockerfile: multi-stage, production dependencies only, non-root, HEALTHCHECK on /health, HOST=0.0.0.0', () => {
    const d = read('Dockerfile');
    expect(d.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    expect(d).toMatch(/npm run build/);
    expect(d).toMatch(/--omit=dev/);
    expect(d).toMatch(/^USER node$/m);
    expect(d).toMatch(/^HEALTHCHECK .*\n?.*\/health/m);
    expect(d).toMatch(/HOST=0\.0\.0\.0/);
    expect(d).toMatch(/ENTRYPOINT \["node", "dist\/cli\/main\.js"\]/);
    // Every COPY source exists (build stages aside).
    for (const m of d.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(' ')) expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
    expect(read('.dockerignore')).toMatch(/^node_modules$/m);
  });

  it('docker-compose.yml: one vLLM on :8000 + BESH on :5000', () => {
    const c = compose('docker-compose.yml');
    expect(Object.keys(c.services).sort()).toEqual(['besh', 'vllm']);
    expect(c.services.vllm!.ports!.map(hostPort)).toEqual([8000]);
    expect(c.services.vllm!.healthcheck!.test.join(' ')).toMatch(/8000\/health/);
    checkBesh(c, 'http://vllm:8000/v1');
  });

  it('docker-compose-8gpu.yml: eight vLLM on :8001–:8008 (one GPU each), nginx on :8000, BESH on :5000', () => {
    const c = compose('docker-compose-8gpu.yml');
    const gpus = Array.from({ length: 8 }, (_, i) => `vllm-gpu${i}`);
    expect(Object.keys(c.services).sort()).toEqual(['besh', 'nginx', ...gpus].sort());
    gpus.forEach((name, i) => {
      const s = c.services[name]!;
      expect(s.ports!.map(hostPort)).toEqual([8001 + i]);
      expect(s.ports!.map(containerPort)).toEqual([8000]);
      expect(s.image).toMatch(/^vllm\/vllm-openai:/);
      const devices = (s as { deploy: { resources: { reservations: { devices: Array<{ device_ids: string[] }> } } } }).deploy.resources.reservations.devices;
      expect(devices[0]!.device_ids).toEqual([String(i)]);
    });
    const nginx = c.services.nginx!;
    expect(nginx.ports!.map(hostPort)).toEqual([8000]);
    expect(nginx.volumes).toEqual(['./nginx-8gpu.conf:/etc/nginx/nginx.conf:ro']);
    for (const g of gpus) expect(nginx.depends_on?.[g]?.condition).toBe('service_healthy');
    checkBesh(c, 'http://nginx:8000/v1');
    // nginx's upstream block names exactly these services, on the port vLLM listens on in its container.
    const servers = [...nginxConf.matchAll(/^\s*server ([\w-]+):(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(servers).toEqual(gpus.map((g) => `${g}:8000`));
    expect(nginxConf).toMatch(/listen 8000;/);
  });

  it('docker-compose-mock.yml: BESH + besh mock, no GPU', () => {
    const c = compose('docker-compose-mock.yml');
    expect(Object.keys(c.services).sort()).toEqual(['besh', 'mock']);
    const mock = c.services.mock!;
    expect(mock.build).toBe('.');
    expect(mock.command!.slice(0, 5)).toEqual(['mock', '--host', '0.0.0.0', '--port', '8000']);
    expect(mock.ports!.map(hostPort)).toEqual([8000]);
    expect(JSON.stringify(c)).not.toMatch(/nvidia/);
    checkBesh(c, 'http://mock:8000/v1');
  });

  it('nginx-8gpu.conf: least_conn, keep-alive, worker_connections above MAX_WORKERS, long timeouts, no buffering', () => {
    expect(nginxConf).toMatch(/^\s*least_conn;/m);
    expect(nginxConf).toMatch(/^\s*keepalive \d+;/m);
    expect(nginxConf).toMatch(/proxy_http_version 1\.1;/);
    expect(nginxConf).toMatch(/proxy_set_header Connection "";/);
    expect(nginxConf).toMatch(/proxy_buffering off;/);
    // One connection from BESH and one to a vLLM per request in flight.
    expect(workerConnections).toBeGreaterThan(2 * 128);
    for (const t of ['proxy_read_timeout', 'proxy_send_timeout']) {
      expect(Number(new RegExp(`${t} (\\d+)s;`).exec(nginxConf)?.[1])).toBeGreaterThanOrEqual(600);
    }
  });

  it.skipIf(NGINX === null)('nginx -t accepts nginx-8gpu.conf', () => {
    const dir = tempDir('besh-nginx-t-');
    try {
      // Service names resolve only inside Docker: test with local addresses, everything else as is.
      const conf = localNginxConf(dir.path, Array.from({ length: 8 }, (_, i) => `127.0.0.1:${18001 + i}`), 18000);
      const file = join(dir.path, 'nginx.conf');
      writeFileSync(file, conf);
      const r = spawnSync(NGINX!, ['-t', '-p', dir.path, '-e', join(dir.path, 'error.log'), '-c', file], { encoding: 'utf8' });
      expect(r.stderr).toMatch(/test is successful/);
      expect(r.status).toBe(0);
    } finally {
      dir.remove();
    }
  });

  it.skipIf(NGINX !== null)(NO_NGINX_MESSAGE, () => undefined);

  it('env.example: every BESH variable it names is one BESH reads; the rest are compose variables', () => {
    const names = [...read('env.example').matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    const composeText = ['docker-compose.yml', 'docker-compose-8gpu.yml', 'docker-compose-mock.yml'].map(read).join('\n');
    for (const n of names) {
      const known = (CONFIG_VARIABLES as string[]).includes(n) || composeText.includes(`\${${n}`);
      expect(known, n).toBe(true);
    }
    // …and every variable the compose files interpolate is documented there.
    for (const m of composeText.matchAll(/\$\{([A-Z_]+)/g)) expect(names, m[1]).toContain(m[1]);
  });

  it('Makefile: docker compose targets for one and eight GPUs; local targets kept', () => {
    const mk = read('Makefile');
    for (const t of ['quick-start', 'quick-start-8gpu', 'up', 'up-8gpu', 'down', 'down-8gpu', 'rebuild', 'rebuild-8gpu', 'logs', 'logs-8gpu', 'health', 'health-8gpu', 'status', 'status-8gpu', 'validate-env', 'validate-env-8gpu', 'stop', 'test']) {
      expect(mk, t).toMatch(new RegExp(`^${t}:`, 'm'));
    }
    expect(mk).toMatch(/docker-compose-8gpu\.yml/);
    expect(mk).toMatch(/command -v nginx/);
    const dry = spawnSync('make', ['-n', 'up-8gpu', 'down-8gpu', 'rebuild'], { cwd: ROOT, encoding: 'utf8' });
    expect(dry.status).toBe(0);
    expect(dry.stdout).toMatch(/docker compose -f docker-compose-8gpu\.yml up -d --build/);
  });
});
