/**
 * docker-compose-cluster.yml's topology without Docker: Debian's nginx running the repository's
 * nginx-cluster.conf (replica addresses, port and paths substituted, nothing else) in front of
 * three `besh serve` replicas on a real PostgreSQL database and an S3 server (s3rver), sending
 * to `besh mock`. Everything goes through nginx with the official OpenAI client: the API works,
 * server-sent events stream, and a replica killed with SIGKILL mid-batch costs nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { chatLines, readJsonl, upload, waitDone, waitFor } from '../helpers/batches.js';
import { BIN, freePort, tempDir } from '../helpers/besh-process.js';
import { type Cluster, startCluster } from '../helpers/cluster.js';
import { localClusterNginxConf, NGINX, type NginxProcess, NO_NGINX_MESSAGE, startNginx } from './topology-helpers.js';

const WORKERS = 8;
const MOCK_LATENCY_MS = 40;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface MockProcess {
  url: string;
  stats(): Promise<{ total_requests: number; received: Record<string, number> }>;
  stop(): Promise<void>;
}

/** `besh mock` from the built binary, as docker-compose-cluster.yml's `mock` service runs it. */
async function startMockProcess(): Promise<MockProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [BIN, 'mock', '--host', '127.0.0.1', '--port', String(port), '--latency-ms', String(MOCK_LATENCY_MS)], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`besh mock exited with ${child.exitCode}:\n${out}`);
    if (await fetch(`${url}/health`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`besh mock did not start:\n${out}`);
    }
    await sleep(50);
  }
  return {
    url,
    stats: async () => (await (await fetch(`${url}/mock/stats`)).json()) as { total_requests: number; received: Record<string, number> },
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Lines of nginx's access log (format `besh` of nginx-cluster.conf), parsed. */
interface AccessLine {
  method: string;
  path: string;
  status: number;
  upstreams: string[];
  upstreamStatuses: string[];
  requestId: string;
  beshRequestId: string;
}
function accessLog(dir: string): AccessLine[] {
  const re = /"(\w+) (\S+) HTTP\/[\d.]+" (\d+) .* upstream=\[([^\]]*)\] upstream_status=\[([^\]]*)\] request_id=(\S+) besh_request_id=(\S+)$/;
  return readFileSync(join(dir, 'access.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const m = re.exec(line);
      if (!m) throw new Error(`unexpected access log line: ${line}`);
      return {
        method: m[1]!,
        path: m[2]!,
        status: Number(m[3]),
        upstreams: m[4]!.split(/, | : /),
        upstreamStatuses: m[5]!.split(/, | : /),
        requestId: m[6]!,
        beshRequestId: m[7]!,
      };
    });
}

/** Every custom_id `${prefix}-0…n-1` exactly once in the output, no error file, all counted. */
async function expectEveryLineOnce(client: OpenAI, batchId: string, n: number, prefix: string): Promise<void> {
  const done = await waitDone(client, batchId, 25_000);
  expect(done.status).toBe('completed');
  expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
  expect(done.error_file_id ?? null).toBeNull();
  const ids = (await readJsonl(client, done.output_file_id)).map((l) => l.custom_id as string);
  expect(ids).toHaveLength(n);
  expect(new Set(ids)).toEqual(new Set(Array.from({ length: n }, (_, i) => `${prefix}-${i}`)));
}

describe.skipIf(NGINX === null)('cluster topology: nginx (nginx-cluster.conf) → 3 replicas (PostgreSQL, S3) → besh mock', () => {
  const dir = tempDir('besh-cluster-nginx-');
  let mock: MockProcess | null = null;
  let cluster: Cluster | null = null;
  let nginx: NginxProcess | null = null;
  let base = '';
  let client: OpenAI;
  const addr = (i: number): string => `127.0.0.1:${cluster!.replicas[i]!.port}`;

  beforeAll(async () => {
    mock = await startMockProcess();
    cluster = await startCluster(3, { OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: String(WORKERS), BESH_SHARD_LINES: '200', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
    const port = await freePort();
    nginx = await startNginx(dir.path, localClusterNginxConf(dir.path, [0, 1, 2].map(addr), port), port);
    base = `http://127.0.0.1:${port}`;
    // No SDK retries: every answer nginx gives must be the right one the first time.
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'test-key', maxRetries: 0, timeout: 20_000 });
  }, 30_000);

  afterAll(async () => {
    await nginx?.stop();
    await cluster?.stop();
    await mock?.stop();
    dir.remove();
  }, 30_000);

  it('upload, create, poll and download through nginx: every line once; calls spread over the 3 replicas; X-Request-Id passed', async () => {
    const n = 300;
    // ~3 MB: above the 2 MB nginx allows other routes and the 1 MB it holds of a body at once.
    const input = chatLines(n, { prefix: 'via-nginx', marker: () => 'x'.repeat(10_000) });
    expect(input.length).toBeGreaterThan(3_000_000);
    const fileId = await upload(client, input);
    // Streamed on to a replica as it came, never spooled to a temp file (nginx warns when it does)…
    expect(readFileSync(join(dir.path, 'error.log'), 'utf8')).not.toMatch(/buffered to a temporary file/);
    // …byte for byte, and back out through the download location.
    expect(await (await client.files.content(fileId)).text()).toBe(input);
    const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await expectEveryLineOnce(client, b.id, n, 'via-nginx');

    // The client's X-Request-Id goes through nginx to the replica, which keeps it as its own
    // request id (its logs and its answer), so one id follows the request end to end.
    const rid = `test-${Date.now()}`;
    const r = await fetch(`${base}/v1/batches/${b.id}`, { headers: { 'x-request-id': rid } });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe(rid);
    // nginx writes the access-log line once the response is sent, which may be after the client
    // has read it: give it a moment.
    let line = accessLog(dir.path).find((l) => l.requestId === rid);
    for (let i = 0; i < 40 && line === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
      line = accessLog(dir.path).find((l) => l.requestId === rid);
    }
    expect(line, 'the access-log line of the request').toBeDefined();
    expect(line!.beshRequestId).toBe(rid);

    const log = accessLog(dir.path).filter((l) => l.path.startsWith('/v1/'));
    expect(log.every((l) => l.status < 500)).toBe(true);
    // least_conn over idle replicas rotates: each one answered some of the polls.
    const answeredBy = new Set(log.map((l) => l.upstreams.at(-1)));
    expect([...answeredBy].sort()).toEqual([0, 1, 2].map(addr).sort());
  });

  it('/v1/events streams through nginx: the first event within 2 s, and a batch created on any replica shows up live', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const res = await fetch(`${base}/v1/events`, { signal: ac.signal });
    try {
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      // One read outstanding at a time: a read that lost the race to the clock is awaited next time.
      let pending: ReturnType<typeof reader.read> | null = null;
      const until = async (pred: (t: string) => boolean, ms: number): Promise<number> => {
        const deadline = Date.now() + ms;
        while (!pred(text)) {
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`nothing matching within ${ms} ms; received:\n${text}`);
          pending ??= reader.read();
          const chunk = await Promise.race([pending, sleep(left).then(() => null)]);
          if (chunk === null) continue;
          pending = null;
          if (chunk.done) throw new Error(`stream ended; received:\n${text}`);
          text += decoder.decode(chunk.value, { stream: true });
        }
        return Date.now();
      };
      const first = await until((t) => /^event: \w+$/m.test(t), 2000);
      expect(first - started).toBeLessThan(2000);
      // A batch created through nginx (most likely on another replica than the stream's): its
      // status event comes through the stream while it is open.
      const fileId = await upload(client, chatLines(20, { prefix: 'sse' }));
      const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
      await until((t) => t.includes(b.id), 2000);
      await waitDone(client, b.id, 10_000);
    } finally {
      ac.abort();
    }
  });

  it('a replica killed with SIGKILL mid-batch: nginx keeps answering (GETs fail over), the batch completes on the others, every line once', async () => {
    const n = 2400;
    const prefix = 'kill';
    const fileId = await upload(client, chatLines(n, { prefix }));
    const b = await client.batches.create({ input_file_id: fileId, endpoint: '/v1/chat/completions', completion_window: '24h' });
    // Kill a replica that is working on the batch, once a part of it is done.
    let victim = -1;
    await waitFor(
      client,
      b.id,
      (x) => x.request_counts!.completed >= n * 0.15,
      15_000,
    );
    for (const deadline = Date.now() + 5000; victim < 0; ) {
      const rows = await cluster!.backend.db.query<{ owner: string }>(
        `SELECT DISTINCT lease_owner AS owner FROM batch_shards WHERE batch_id = $1 AND state = 'leased' ORDER BY lease_owner`,
        [b.id],
      );
      if (rows.length > 0) victim = Number(rows[0]!.owner.slice(1)) - 1;
      else if (Date.now() > deadline) throw new Error('no replica holds a shard of the batch');
      else await sleep(20);
    }
    const before = await client.batches.retrieve(b.id);
    expect(before.status).toBe('in_progress');
    const logFrom = accessLog(dir.path).length;
    await cluster!.replicas[victim]!.kill();

    // Straight after the kill: GETs through nginx, some of which nginx first sends to the dead
    // replica — every one answered (the SDK does not retry here).
    for (let i = 0; i < 12; i++) {
      const [batch, file, list] = await Promise.all([client.batches.retrieve(b.id), client.files.retrieve(fileId), client.batches.list({ limit: 5 })]);
      expect(batch.id).toBe(b.id);
      expect(file.id).toBe(fileId);
      expect(list.data.length).toBeGreaterThan(0);
    }
    expect((await fetch(`${base}/nginx-health`)).status).toBe(200);
    const after = accessLog(dir.path).slice(logFrom);
    // …which nginx did: the dead replica refused, the request went on to a live one.
    const failedOver = after.filter((l) => l.method === 'GET' && l.upstreams[0] === addr(victim) && l.upstreams.length > 1);
    expect(failedOver.length).toBeGreaterThan(0);
    for (const l of failedOver) expect(l.upstreamStatuses.at(-1)).toBe('200');
    expect(after.filter((l) => l.status >= 500)).toEqual([]);
    // New work is taken too (a POST is never re-sent once sent; these reach live replicas).
    const small = await upload(client, chatLines(10, { prefix: 'after-kill' }));
    const b2 = await client.batches.create({ input_file_id: small, endpoint: '/v1/chat/completions', completion_window: '24h' });

    // The others take over the dead replica's shards when its leases expire.
    await expectEveryLineOnce(client, b.id, n, prefix);
    await expectEveryLineOnce(client, b2.id, 10, 'after-kill');
    const received = (await mock!.stats()).received;
    expect(Object.keys(received).filter((k) => k.startsWith(`${prefix}-`))).toHaveLength(n);
    expect(accessLog(dir.path).slice(logFrom).filter((l) => l.status >= 500)).toEqual([]);
  });
});

if (NGINX === null) {
  describe('cluster topology: nginx', () => {
    it.skip(NO_NGINX_MESSAGE, () => undefined);
  });
}

/**
 * A stand-in replica: records `METHOD x-test-id` of each request it reads, then answers as `mode`
 * says — 200, 503 (as BESH does while it shuts down), or a connection cut after the request was
 * read (a replica dying mid-request).
 */
async function fakeReplica(mode: 'ok' | '503' | 'reset'): Promise<{ addr: string; got: string[]; close(): Promise<void> }> {
  const got: string[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      got.push(`${req.method} ${String(req.headers['x-test-id'])}`);
      if (mode === 'reset') req.socket.destroy();
      else res.writeHead(mode === '503' ? 503 : 200, { 'content-type': 'application/json' }).end('{"object":"list","data":[]}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    got,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe.skipIf(NGINX === null)("nginx-cluster.conf's failover rules, against stand-in replicas", () => {
  for (const mode of ['503', 'reset'] as const) {
    it(`one replica ${mode === '503' ? 'answers 503' : 'cuts the connection'}: a GET is re-sent to another, a POST never (each POST reaches one replica once)`, async () => {
      const dir = tempDir('besh-cluster-nginx-rules-');
      const replicas = [await fakeReplica(mode), await fakeReplica('ok'), await fakeReplica('ok')];
      const [bad] = replicas as [Awaited<ReturnType<typeof fakeReplica>>];
      const port = await freePort();
      const nginx = await startNginx(dir.path, localClusterNginxConf(dir.path, replicas.map((r) => r.addr), port), port);
      try {
        const send = async (method: 'GET' | 'POST', id: string): Promise<Response> =>
          fetch(`http://127.0.0.1:${port}/v1/batches`, { method, headers: { 'x-test-id': id, 'x-request-id': id, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
        const statuses = new Map<string, number>();
        // Until the bad replica got one request of each kind (passive health takes it out after 3).
        for (const method of ['POST', 'GET'] as const) {
          for (let i = 0; i < 10 && !bad.got.some((g) => g.startsWith(`${method} `)); i++) {
            const r = await send(method, `${method}-${i}`);
            statuses.set(`${method} ${method}-${i}`, r.status);
            await r.arrayBuffer();
          }
        }
        const all = replicas.flatMap((r) => r.got);
        const badPost = bad.got.filter((g) => g.startsWith('POST '));
        const badGet = bad.got.filter((g) => g.startsWith('GET '));
        expect(badPost).toHaveLength(1);
        expect(badGet).toHaveLength(1);
        for (const [req, status] of statuses) {
          const times = all.filter((g) => g === req).length;
          if (req.startsWith('POST ')) {
            // Exactly once, wherever it went; what the bad replica got is its answer (or nginx's 502).
            expect(times, req).toBe(1);
            expect(status, req).toBe(badPost.includes(req) ? (mode === '503' ? 503 : 502) : 200);
          } else {
            // A GET the bad replica got was re-sent to a good one, which answered.
            expect(times, req).toBe(badGet.includes(req) ? 2 : 1);
            expect(status, req).toBe(200);
          }
        }
        const failedOver = accessLog(dir.path).find((l) => `${l.method} ${l.requestId}` === badGet[0]);
        expect(failedOver?.upstreams[0]).toBe(bad.addr);
      } finally {
        await nginx.stop();
        await Promise.all(replicas.map((r) => r.close()));
        dir.remove();
      }
    });
  }

  it("no replica reachable: 502 in OpenAI's error shape with the request id; a refused POST was tried on every replica (nothing was sent)", async () => {
    const dir = tempDir('besh-cluster-nginx-down-');
    const dead = await Promise.all([freePort(), freePort(), freePort()]);
    const port = await freePort();
    const nginx = await startNginx(dir.path, localClusterNginxConf(dir.path, dead.map((p) => `127.0.0.1:${p}`), port), port);
    try {
      const c = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'test-key', maxRetries: 0 });
      const err = await c.batches.list().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
      expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('no_replica_available');
      const r = await fetch(`http://127.0.0.1:${port}/v1/files`, { method: 'POST', headers: { 'x-request-id': 'down-1', 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(502);
      expect(r.headers.get('x-request-id')).toBe('down-1');
      expect(((await r.json()) as { error: { type: string } }).error.type).toBe('server_error');
      const line = accessLog(dir.path).find((l) => l.requestId === 'down-1')!;
      expect(line.upstreams.sort()).toEqual(dead.map((p) => `127.0.0.1:${p}`).sort());
    } finally {
      await nginx.stop();
      dir.remove();
    }
  });
});
