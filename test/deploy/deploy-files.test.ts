import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { CONFIG_VARIABLES, parseConfig } from '../../src/config.js';
import { openBlobStore } from '../../src/runtime/open-stores.js';
import { ROOT, tempDir } from '../helpers/besh-process.js';
import { CLUSTER_NGINX_REPLICAS, localClusterNginxConf, localNginxConf, NGINX, NO_NGINX_MESSAGE } from '../topology/topology-helpers.js';

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
  entrypoint?: string[];
  restart?: string;
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
const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose-8gpu.yml', 'docker-compose-mock.yml', 'docker-compose-cluster.yml'];
/** nginx-cluster.conf without its comments (the directives only). */
const clusterConf = read('nginx-cluster.conf').replace(/#.*$/gm, '');
/** The body of the first block of `conf` whose header matches `header` (e.g. `location = /v1/events`). */
function block(conf: string, header: RegExp): string {
  const m = new RegExp(`${header.source}\\s*\\{`).exec(conf);
  if (!m) throw new Error(`no block ${header}`);
  let depth = 1;
  let i = m.index + m[0].length;
  const start = i;
  for (; depth > 0 && i < conf.length; i++) {
    if (conf[i] === '{') depth++;
    else if (conf[i] === '}') depth--;
  }
  return conf.slice(start, i - 1);
}
/** A directive's arguments in a block, not looking into nested blocks. */
function directive(body: string, name: string): string | undefined {
  let flat = body;
  for (let prev = ''; prev !== flat; ) {
    prev = flat;
    flat = flat.replace(/\{[^{}]*\}/g, ';');
  }
  return new RegExp(`(?:^|[;{\\s])${name}\\s+([^;]+);`).exec(flat)?.[1]?.trim();
}
const seconds = (v: string | undefined): number => {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(v ?? '');
  if (!m) return NaN;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
};
const size = (v: string | undefined): number => {
  const m = /^(\d+)([km]?)$/i.exec(v ?? '');
  if (!m) return NaN;
  return Number(m[1]) * { '': 1, k: 1024, m: 1024 * 1024 }[m[2]!.toLowerCase() as '' | 'k' | 'm'];
};

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

  it('docker-compose-cluster.yml: PostgreSQL, MinIO + bucket job, mock, three identical BESH replicas, nginx the only published port', () => {
    const c = compose('docker-compose-cluster.yml');
    const replicas = ['besh-1', 'besh-2', 'besh-3'];
    expect(Object.keys(c.services).sort()).toEqual(['createbucket', 'minio', 'mock', 'nginx', 'postgres', ...replicas].sort());
    const { postgres, minio, createbucket, mock, nginx } = c.services;

    // Backing services: official images, named volumes, healthchecks; the bucket job runs once.
    expect(postgres!.image).toMatch(/^postgres:\d+/);
    expect(postgres!.healthcheck!.test).toContain('pg_isready');
    expect(postgres!.volumes).toEqual(['pg-data:/var/lib/postgresql/data']);
    expect(minio!.image).toMatch(/^minio\/minio(:|$)/);
    expect(minio!.healthcheck!.test.join(' ')).toMatch(/mc ready local|minio\/health/);
    expect(minio!.volumes).toEqual(['minio-data:/data']);
    expect(createbucket!.image).toMatch(/^minio\/mc(:|$)/);
    expect(createbucket!.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
    expect(createbucket!.restart).toBe('no');
    expect(mock!.build).toBe('.');
    expect(mock!.command!.slice(0, 5)).toEqual(['mock', '--host', '0.0.0.0', '--port', '8000']);
    expect(mock!.healthcheck!.test.join(' ')).toMatch(/8000\/health/);
    expect(JSON.stringify(c)).not.toMatch(/nvidia/);

    // nginx is the only way in.
    for (const [name, s] of Object.entries(c.services)) if (name !== 'nginx') expect(s.ports, name).toBeUndefined();
    expect(nginx!.ports!.map(hostPort)).toEqual([5000]);
    expect(nginx!.ports![0]).toMatch(/^"?\$\{PORT:-5000\}:/);
    expect(nginx!.ports!.map(containerPort)).toEqual([Number(/^\s*listen (\d+);/m.exec(clusterConf)?.[1])]);
    expect(nginx!.volumes).toEqual(['./nginx-cluster.conf:/etc/nginx/nginx.conf:ro']);
    expect(nginx!.healthcheck!.test.join(' ')).toMatch(/\/nginx-health/);
    for (const r of replicas) expect(nginx!.depends_on?.[r]?.condition, r).toBe('service_healthy');

    // The replicas: one image, the same settings but for the id and the data volume.
    const strip = (s: Service): unknown => {
      const { volumes: _v, environment, ...rest } = s;
      const { BESH_REPLICA_ID: _id, ...env } = environment!;
      return { ...rest, environment: env };
    };
    const [first, ...others] = replicas.map((r) => c.services[r]!);
    for (const o of others) expect(strip(o)).toEqual(strip(first!));
    const configs = replicas.map((r) => {
      const s = c.services[r]!;
      expect(s.build, r).toBe('.');
      expect(s.image, r).toBe(mock!.image);
      const env = Object.fromEntries(Object.entries(s.environment!).map(([k, v]) => [k, interpolate(v)]));
      for (const k of Object.keys(env)) expect(CONFIG_VARIABLES as string[], `${r}: ${k}`).toContain(k);
      // Passed through from .env as the other compose files do.
      for (const k of ['MAX_WORKERS', 'MAX_CONCURRENT_BATCHES', 'OPENAI_API_BASE', 'BESH_ADMIN_KEY', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION']) {
        expect(String(s.environment![k]), `${r}: ${k}`).toMatch(new RegExp(`^\\$\\{${k}:-`));
      }
      const config = parseConfig(env, '/app');
      expect(s.volumes, r).toEqual([`${r}-data:${config.dataDir}`]);
      expect(s.healthcheck!.test.join(' '), r).toMatch(new RegExp(`127\\.0\\.0\\.1:${config.port}/health`));
      expect(s.depends_on, r).toEqual({
        postgres: { condition: 'service_healthy' },
        createbucket: { condition: 'service_completed_successfully' },
        mock: { condition: 'service_healthy' },
      });
      return config;
    });
    expect(new Set(configs.map((x) => x.replicaId))).toEqual(new Set(replicas));
    const config = configs[0]!;
    expect(config.host).toBe('0.0.0.0');
    expect(config.upstreamBase).toBe('http://mock:8000/v1');

    // The database: PostgreSQL on the `postgres` service, with its user, password and database.
    expect(config.database.kind).toBe('postgres');
    const db = new URL(config.database.kind === 'postgres' ? config.database.url : '');
    const pgEnv = Object.fromEntries(Object.entries(postgres!.environment!).map(([k, v]) => [k, interpolate(v)]));
    expect([db.hostname, db.port, db.username, decodeURIComponent(db.password), db.pathname]).toEqual(['postgres', '5432', pgEnv.POSTGRES_USER, pgEnv.POSTGRES_PASSWORD, `/${pgEnv.POSTGRES_DB}`]);

    // The blobs: the `besh` bucket on MinIO, path-style, with MinIO's own credentials.
    expect(config.blobs).toMatchObject({ kind: 's3', bucket: 'besh', endpoint: 'http://minio:9000', region: 'us-east-1' });
    const blobs = config.blobs.kind === 's3' ? config.blobs : null;
    const minioEnv = Object.fromEntries(Object.entries(minio!.environment!).map(([k, v]) => [k, interpolate(v)]));
    expect([blobs!.accessKeyId, blobs!.secretAccessKey]).toEqual([minioEnv.MINIO_ROOT_USER, minioEnv.MINIO_ROOT_PASSWORD]);
    expect(minioEnv.MINIO_ROOT_PASSWORD!.length).toBeGreaterThanOrEqual(8); // MinIO refuses shorter ones
    // The same expressions, so a value set in .env reaches both sides.
    expect(minio!.environment!.MINIO_ROOT_USER).toBe(first!.environment!.AWS_ACCESS_KEY_ID);
    expect(minio!.environment!.MINIO_ROOT_PASSWORD).toBe(first!.environment!.AWS_SECRET_ACCESS_KEY);
    expect(postgres!.environment!.POSTGRES_PASSWORD).toBe(/^postgres:\/\/[^:]+:(\$\{[^}]+\})@/.exec(String(first!.environment!.BESH_DATABASE_URL))?.[1]);
    // The bucket job creates that bucket on that endpoint, with those credentials.
    const job = createbucket!.entrypoint!.join(' ');
    expect(job).toMatch(new RegExp(`mc alias set (\\w+) ${blobs!.endpoint}\\b.*&& mc mb --ignore-existing \\1/${blobs!.bucket}$`));
    expect(createbucket!.environment).toEqual({ MC_USER: first!.environment!.AWS_ACCESS_KEY_ID, MC_PASSWORD: first!.environment!.AWS_SECRET_ACCESS_KEY });
    // Every host a replica talks to is a service of the file.
    for (const u of [config.upstreamBase, blobs!.endpoint!]) expect(Object.keys(c.services)).toContain(new URL(u).hostname);

    // Named volumes: all declared, all used.
    const used = Object.values(c.services).flatMap((s) => (s.volumes ?? []).map((v) => v.split(':')[0]!));
    for (const v of used) if (v.startsWith('.')) expect(existsSync(join(ROOT, v)), v).toBe(true);
    expect(Object.keys(c.volumes ?? {}).sort()).toEqual(used.filter((v) => !v.startsWith('.')).sort());
  });

  it('docker-compose-cluster.yml: the replicas open an S3 store with path-style URLs (what MinIO needs)', async () => {
    const env = compose('docker-compose-cluster.yml').services['besh-1']!.environment!;
    const config = parseConfig(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)])), '/app');
    const store = await openBlobStore(config.blobs);
    try {
      expect(store.kind).toBe('s3');
      const client = (store as unknown as { client: S3Client }).client;
      expect(client.config.forcePathStyle).toBe(true);
      const endpoint = await client.config.endpoint!();
      expect([endpoint.protocol, endpoint.hostname, endpoint.port]).toEqual(['http:', 'minio', 9000]);
    } finally {
      await store.close();
    }
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

  it('nginx-cluster.conf: the three replicas with passive health, failover for idempotent requests only, streamed bodies, SSE unbuffered', () => {
    const c = compose('docker-compose-cluster.yml');
    const upstream = block(clusterConf, /upstream besh_replicas/);
    // Round robin or least_conn (no hash: any replica may serve any request), with the state
    // (counts, failures) shared by the worker processes.
    expect(upstream).not.toMatch(/^\s*(ip_hash|hash|random)\b/m);
    expect(directive(upstream, 'zone')).toMatch(/^besh_replicas \d+k$/);
    // Exactly the compose file's replicas, on the port they listen on, each with passive health.
    const servers = [...upstream.matchAll(/^\s*server (\S+)(.*);/gm)];
    expect(servers.map((m) => m[1])).toEqual(CLUSTER_NGINX_REPLICAS);
    for (const [, addr] of servers) {
      const [name, port] = addr!.split(':');
      expect(c.services[name!]?.environment?.PORT, addr).toBe(port);
    }
    for (const m of servers) expect(m[2], m[1]).toMatch(/max_fails=\d+ fail_timeout=\d+s/);
    expect(Number(directive(upstream, 'keepalive'))).toBeGreaterThan(0);
    // Closed by nginx before BESH (Fastify: 72 s) closes an idle connection from its side.
    expect(seconds(directive(upstream, 'keepalive_timeout'))).toBeLessThan(72);

    const server = block(clusterConf, /server/);
    expect(directive(server, 'listen')).toBe('5000');
    expect(directive(server, 'proxy_http_version')).toBe('1.1');
    expect(server).toMatch(/proxy_set_header Connection "";/);
    expect(directive(server, 'proxy_request_buffering')).toBe('off');
    // Failover on errors, timeouts, 502 and 503 — never for a POST already sent (no non_idempotent).
    expect(directive(server, 'proxy_next_upstream')).toBe('error timeout http_502 http_503');
    expect(clusterConf).not.toMatch(/non_idempotent/);
    // …and the comment above it says why.
    const raw = read('nginx-cluster.conf').split('\n');
    const at = raw.findIndex((l) => /^\s*proxy_next_upstream error/.test(l));
    let from = at;
    while (from > 0 && raw[from - 1]!.trim().startsWith('#')) from--;
    expect(raw.slice(from, at).join(' ')).toMatch(/POST.*applied twice/);
    // X-Request-Id: the client's, else nginx's, sent on to the replica.
    const rid = /proxy_set_header X-Request-Id (\$\w+);/.exec(server)?.[1];
    expect(rid).toBeDefined();
    expect(clusterConf).toMatch(new RegExp(`map \\$http_x_request_id \\${rid}\\s*\\{[^}]*""\\s+\\$request_id;`));
    expect(block(clusterConf, /location = \/nginx-health/)).toMatch(/return 200/);

    // Uploads: BESH_MAX_FILE_BYTES (plus the multipart envelope, at most 16 MiB more), streamed, long timeouts.
    const maxFile = parseConfig({}).maxFileBytes;
    const files = block(clusterConf, /location = \/v1\/files/);
    const bodyLimit = size(directive(files, 'client_max_body_size'));
    expect(bodyLimit).toBeGreaterThanOrEqual(maxFile);
    expect(bodyLimit).toBeLessThanOrEqual(maxFile + 16 * 1024 * 1024);
    expect(directive(files, 'proxy_request_buffering') ?? directive(server, 'proxy_request_buffering')).toBe('off');
    for (const t of ['client_body_timeout', 'proxy_send_timeout', 'proxy_read_timeout']) expect(seconds(directive(files, t)), t).toBeGreaterThanOrEqual(600);
    // Downloads and server-sent events: unbuffered, long timeouts.
    const downloads = block(clusterConf, /location ~ \^\/v1\/files\/\[\^\/\]\+\/content\$/);
    expect(new RegExp(/^\/v1\/files\/[^/]+\/content$/).test('/v1/files/file-abc/content')).toBe(true);
    const events = block(clusterConf, /location = \/v1\/events/);
    for (const [name, b] of [['downloads', downloads], ['events', events]] as const) {
      expect(directive(b, 'proxy_buffering'), name).toBe('off');
      expect(seconds(directive(b, 'proxy_read_timeout')), name).toBeGreaterThanOrEqual(600);
      expect(seconds(directive(b, 'send_timeout')), name).toBeGreaterThanOrEqual(600);
      expect(directive(b, 'proxy_pass'), name).toBe('http://besh_replicas');
    }
    expect(directive(block(clusterConf, /location \//), 'proxy_pass')).toBe('http://besh_replicas');
    // Other bodies: above BESH's 1 MiB JSON limit, so BESH answers those itself.
    expect(size(directive(block(clusterConf, /http/), 'client_max_body_size'))).toBeGreaterThan(1024 * 1024);
  });

  it('scripts/validate-env.sh cluster: checks credentials, the PostgreSQL and S3 URLs when set, and nginx-cluster.conf', () => {
    const dir = tempDir('besh-validate-env-');
    try {
      mkdirSync(join(dir.path, 'scripts'));
      copyFileSync(join(ROOT, 'scripts', 'validate-env.sh'), join(dir.path, 'scripts', 'validate-env.sh'));
      copyFileSync(join(ROOT, 'nginx-cluster.conf'), join(dir.path, 'nginx-cluster.conf'));
      const run = (dotenv: string): { code: number | null; problems: string[]; out: string } => {
        writeFileSync(join(dir.path, '.env'), dotenv);
        const r = spawnSync('bash', [join(dir.path, 'scripts', 'validate-env.sh'), 'cluster'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
        // Docker is not there in CI; everything else must be judged on the settings alone.
        const problems = r.stderr.split('\n').filter((l) => l.includes('✗') && !/docker/.test(l));
        return { code: r.status, problems, out: r.stdout + r.stderr };
      };
      const good = run(
        'POSTGRES_PASSWORD=s3cret-pw\nAWS_ACCESS_KEY_ID=besh-admin\nAWS_SECRET_ACCESS_KEY=a-long-secret\nOPENAI_API_BASE=http://gpu-box:8000/v1\n' +
          'BESH_DATABASE_URL=postgres://besh:s3cret-pw@db.internal:5432/besh\nBESH_BLOB_URL=s3://besh/cluster\n',
      );
      expect(good.problems).toEqual([]);
      expect(good.out).toMatch(/✓ BESH_DATABASE_URL is a PostgreSQL URL/);
      expect(good.out).toMatch(/✓ BESH_BLOB_URL is an S3 URL/);
      expect(good.out).not.toMatch(/default passwords/);
      // Defaults only: fine, with a warning.
      const defaults = run('');
      expect(defaults.problems).toEqual([]);
      expect(defaults.out).toMatch(/default passwords in use/);
      const bad = run(
        'POSTGRES_PASSWORD=p@ss/word\nAWS_ACCESS_KEY_ID=besh-admin\nAWS_SECRET_ACCESS_KEY=short\nAWS_REGION=EU_West\n' +
          'OPENAI_API_BASE=http://localhost:8000/v1\nBESH_DATABASE_URL=sqlite:./data/besh.sqlite\nBESH_BLOB_URL=s3://Not_A_Bucket/x\nBESH_MAX_FILE_BYTES=1073741824\n',
      );
      expect(bad.code).toBe(1);
      for (const p of ['POSTGRES_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'OPENAI_API_BASE', 'BESH_DATABASE_URL=sqlite', 'BESH_BLOB_URL', 'client_max_body_size']) {
        expect(bad.problems.filter((l) => l.includes(p)), p).toHaveLength(1);
      }
      expect(bad.problems).toHaveLength(7);
      expect(run('AWS_ACCESS_KEY_ID=only-the-id\n').problems).toEqual([expect.stringMatching(/set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/)]);
      expect(run('BESH_BLOB_URL=file:/srv/besh\nBESH_DATABASE_URL=mysql://x/y\n').problems).toEqual([
        expect.stringMatching(/BESH_DATABASE_URL must look like postgres:\/\//),
        expect.stringMatching(/BESH_BLOB_URL=file:… is one machine's directory/),
      ]);
    } finally {
      dir.remove();
    }
  });

  it('env.example: lists every variable BESH reads exactly once, with its default; the rest are the compose files\' variables, all of them', () => {
    const entries = [...read('env.example').matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!] as const);
    const names = entries.map(([n]) => n);
    for (const v of CONFIG_VARIABLES) expect(names.filter((n) => n === v), v).toHaveLength(1);
    const composeText = COMPOSE_FILES.map(read).join('\n');
    for (const n of names) {
      const known = (CONFIG_VARIABLES as string[]).includes(n) || composeText.includes(`\${${n}`);
      expect(known, n).toBe(true);
    }
    // …and every variable the compose files interpolate is documented there.
    for (const m of composeText.matchAll(/\$\{([A-Z_]+)/g)) expect(names, m[1]).toContain(m[1]);
    // The values shown (commented out or not) are BESH's defaults: together they configure nothing.
    const shown = Object.fromEntries(entries.filter(([n]) => (CONFIG_VARIABLES as string[]).includes(n)));
    expect(parseConfig(shown, '/app')).toEqual(parseConfig({}, '/app'));
  });

  it('Makefile: docker compose targets for one GPU, eight GPUs and the cluster; local targets kept', () => {
    const mk = read('Makefile');
    for (const t of ['quick-start', 'quick-start-8gpu', 'up', 'up-8gpu', 'down', 'down-8gpu', 'rebuild', 'rebuild-8gpu', 'logs', 'logs-8gpu', 'health', 'health-8gpu', 'status', 'status-8gpu', 'validate-env', 'validate-env-8gpu', 'stop', 'test']) {
      expect(mk, t).toMatch(new RegExp(`^${t}:`, 'm'));
    }
    // The cluster's targets, each with its help text (`make help`) and declared phony.
    const phony = /^\.PHONY:((?:.*\\\n)*.*)$/m.exec(mk)![1]!.split(/[\s\\]+/);
    for (const t of ['up-cluster', 'down-cluster', 'logs-cluster', 'health-cluster', 'status-cluster', 'validate-env-cluster']) {
      expect(mk, t).toMatch(new RegExp(`^${t}:[^\n]*## \\S`, 'm'));
      expect(phony, t).toContain(t);
    }
    const cluster = spawnSync('make', ['-n', 'up-cluster', 'down-cluster', 'logs-cluster', 'health-cluster'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, PORT: '5000' } });
    expect(cluster.status).toBe(0);
    expect(cluster.stdout).toMatch(/^scripts\/validate-env\.sh cluster$/m);
    expect(cluster.stdout).toMatch(/^docker compose -f docker-compose-cluster\.yml up -d --build$/m);
    expect(cluster.stdout).toMatch(/^docker compose -f docker-compose-cluster\.yml down$/m);
    expect(cluster.stdout).toMatch(/^docker compose -f docker-compose-cluster\.yml logs -f --tail=100$/m);
    // health-cluster: nginx on the published port, then each replica from inside its container.
    expect(cluster.stdout).toMatch(/curl -fsS http:\/\/127\.0\.0\.1:5000\/nginx-health/);
    expect(cluster.stdout).toMatch(/for r in besh-1 besh-2 besh-3; do/);
    expect(cluster.stdout).toMatch(/docker compose -f docker-compose-cluster\.yml exec -T \$r node -e .*127\.0\.0\.1:5000\/health/);
    const help = spawnSync('make', ['help'], { cwd: ROOT, encoding: 'utf8' });
    expect(help.stdout).toMatch(/up-cluster.*docker-compose-cluster\.yml/);
    expect(mk).toMatch(/docker-compose-8gpu\.yml/);
    expect(mk).toMatch(/command -v nginx/);
    const dry = spawnSync('make', ['-n', 'up-8gpu', 'down-8gpu', 'rebuild'], { cwd: ROOT, encoding: 'utf8' });
    expect(dry.status).toBe(0);
    expect(dry.stdout).toMatch(/docker compose -f docker-compose-8gpu\.yml up -d --build/);
  });
});

/** `nginx -t` on the repository's nginx configurations, with local addresses for Docker's service names. */
describe.skipIf(NGINX === null)('nginx -t', () => {
  const check = (name: string, conf: (dir: string) => string): void => {
    it(`accepts ${name}`, () => {
      const dir = tempDir('besh-nginx-t-');
      try {
        const file = join(dir.path, 'nginx.conf');
        writeFileSync(file, conf(dir.path));
        const r = spawnSync(NGINX!, ['-t', '-p', dir.path, '-e', join(dir.path, 'error.log'), '-c', file], { encoding: 'utf8' });
        expect(r.stderr).toMatch(/test is successful/);
        expect(r.status).toBe(0);
      } finally {
        dir.remove();
      }
    });
  };
  // Service names resolve only inside Docker: test with local addresses, everything else as is.
  check('nginx-8gpu.conf', (dir) => localNginxConf(dir, Array.from({ length: 8 }, (_, i) => `127.0.0.1:${18001 + i}`), 18000));
  check('nginx-cluster.conf', (dir) => localClusterNginxConf(dir, ['127.0.0.1:18101', '127.0.0.1:18102', '127.0.0.1:18103'], 18100));
});

if (NGINX === null) {
  describe('nginx -t', () => {
    it.skip(`nginx-8gpu.conf and nginx-cluster.conf: ${NO_NGINX_MESSAGE}`, () => undefined);
  });
}
