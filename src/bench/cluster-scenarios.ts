import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { percentile } from './bare-client.js';
import { type BatchObject, createBatch, uploadFile, waitForBatch } from './besh-client.js';
import { type ClusterBackend, startClusterBackend } from './cluster-backend.js';
import { fixed, int, MB, megabytes, seconds } from './format.js';
import { writeRequestFile } from './input-file.js';
import { cpuSeconds } from './process-cpu.js';
import { RssSampler } from './rss-sampler.js';
import type { Scenario, ScenarioContext } from './scenarios.js';
import { type Service, startBesh, startMock } from './services.js';

const size = (full: number, divisor: number): number => Math.round(full / divisor);
const MAX_FILE_BYTES = 1024 ** 3;

async function input(ctx: ScenarioContext, name: string, count: number): Promise<string> {
  const path = join(ctx.dir, `${name}.jsonl`);
  await writeRequestFile(path, count);
  return path;
}

/** `n` replicas of BESH on the backend, each with its own data directory. */
async function startReplicas(ctx: ScenarioContext, backend: ClusterBackend, n: number, mock: Service, maxWorkers: number, env: Record<string, string> = {}): Promise<Service[]> {
  const replicas: Service[] = [];
  for (let i = 1; i <= n; i++) {
    const dataDir = join(ctx.dir, `replica-${Date.now()}-${i}`);
    await mkdir(dataDir, { recursive: true });
    replicas.push(await startBesh({ dataDir, upstreamUrl: mock.url, maxWorkers, maxFileBytes: MAX_FILE_BYTES, env: { ...backend.env, BESH_REPLICA_ID: `r${i}`, ...env } }));
  }
  return replicas;
}

/**
 * Uploads and runs one batch through the first replica; requests per second from create to
 * completed, and the CPU seconds the `pids` used meanwhile.
 */
async function clusterRate(
  url: string,
  path: string,
  count: number,
  pids: readonly number[] = [],
  /** Logs every status change and every 10 s (where time goes), with each sampler's RSS (where memory goes). */
  watch?: { samplers: readonly RssSampler[]; log: (msg: string) => void },
): Promise<{ rps: number; ms: number; cpu: number }> {
  const rss = (): string => {
    const each = (watch?.samplers ?? []).map((s) => `${megabytes(s.current.rssBytes)} (peak ${megabytes(s.current.peakBytes)})`);
    return each.length === 0 ? '' : `; RSS ${each.join(' / ')}`;
  };
  const file = await uploadFile(url, path);
  watch?.log(`  uploaded${rss()}`);
  const cpu = async (): Promise<number> => (await Promise.all(pids.map(cpuSeconds))).reduce<number>((a, b) => a + (b ?? 0), 0);
  const cpu0 = await cpu();
  const created = await createBatch(url, file.id);
  const t0 = performance.now();
  let status = created.status;
  let next = t0 + 10_000;
  const onPoll = watch
    ? (b: BatchObject): void => {
        const now = performance.now();
        if (b.status === status && now < next) return;
        status = b.status;
        next = now + 10_000;
        watch.log(`  ${b.status} at ${seconds(now - t0)}: ${int(b.request_counts.completed)} completed${rss()}`);
      }
    : undefined;
  const { batch, doneAt } = await waitForBatch(url, created.id, { intervalMs: 100, timeoutMs: 60_000 + count * 5, ...(onPoll ? { onPoll } : {}) });
  if (batch.status !== 'completed' || batch.request_counts.completed !== count) throw new Error(`batch ended ${batch.status} with ${batch.request_counts.completed} of ${count}`);
  return { rps: count / ((doneAt - t0) / 1000), ms: doneAt - t0, cpu: (await cpu()) - cpu0 };
}

const SCALE_LATENCY_MS = 100;
const SCALE_WORKERS = 64;

/** One batch on 1, 2 and 3 replicas against a latency-bound mock (unlimited capacity): the rate should grow with the replicas. */
export const clusterScale: Scenario = {
  title: (d) => `cluster scale: one ${int(size(12_800, d))}-line batch on 1, 2, 3 replicas (PostgreSQL + S3), latency ${SCALE_LATENCY_MS} ms, MAX_WORKERS ${SCALE_WORKERS} each`,
  target: 'n replicas ≥ 0.9 × n × one replica',
  async run(ctx) {
    const n = size(12_800, ctx.divisor);
    const path = await input(ctx, 'scale', n);
    const mock = await startMock(SCALE_LATENCY_MS, ctx.dir);
    try {
      const rates: number[] = [];
      for (const replicas of [1, 2, 3]) {
        const backend = await startClusterBackend();
        try {
          const cluster = await startReplicas(ctx, backend, replicas, mock, SCALE_WORKERS);
          try {
            const r = await clusterRate(cluster[0]!.url, path, n, [], { samplers: [], log: ctx.log });
            rates.push(r.rps);
            ctx.log(`  ${replicas} replica(s): ${int(r.rps)} req/s (${seconds(r.ms)}); ideal ${int((replicas * SCALE_WORKERS * 1000) / SCALE_LATENCY_MS)}`);
          } finally {
            await Promise.all(cluster.map((s) => s.stop()));
          }
        } finally {
          await backend.stop();
        }
      }
      const ratios = rates.map((r) => r / rates[0]!);
      return {
        figure: `${rates.map((r, i) => `${i + 1}: ${int(r)} req/s`).join(', ')} — ×${ratios.map((x) => fixed(x, 2)).join(' / ×')}`,
        pass: ratios.every((x, i) => x >= 0.9 * (i + 1)),
      };
    } finally {
      await mock.stop();
    }
  },
};

/** Rounds of the stores comparison: one run of each per round, alternately, so both see the same moments of a shared machine. */
const STORES_ROUNDS = 5;

/**
 * One replica on PostgreSQL + S3 against one on SQLite + disk, zero-latency mock: what the shared
 * stores cost. Also BESH's own CPU per 10,000 requests in each: on this machine PostgreSQL and the
 * S3 server share BESH's cores, which the request rate counts against BESH and the CPU figure does not.
 * A run takes seconds, so one run of each swings with the machine's other load: the figure is
 * the median of STORES_ROUNDS rounds' ratios, each round one run of each, back to back.
 */
export const clusterStores: Scenario = {
  title: (d) => `cluster stores: ${int(size(30_000, d))} requests at latency 0, one replica on PostgreSQL + S3 vs SQLite + disk, MAX_WORKERS 128, ${STORES_ROUNDS} rounds`,
  target: '≥ 0.9 × SQLite + disk (median round)',
  async run(ctx) {
    const n = size(30_000, ctx.divisor);
    const path = await input(ctx, 'stores', n);
    const mock = await startMock(0, ctx.dir);
    const perTenK = (cpu: number): string => fixed((cpu * 10_000) / n, 2);
    try {
      const rounds: Array<{ ratio: number; cpu: number }> = [];
      for (let round = 1; round <= STORES_ROUNDS; round++) {
        const localDir = join(ctx.dir, `local-${round}`);
        await mkdir(localDir, { recursive: true });
        const local = await startBesh({ dataDir: localDir, upstreamUrl: mock.url, maxWorkers: 128, maxFileBytes: MAX_FILE_BYTES });
        let l;
        try {
          l = await clusterRate(local.url, path, n, [local.pid]);
        } finally {
          await local.stop();
        }
        const backend = await startClusterBackend();
        let r;
        try {
          const [replica] = await startReplicas(ctx, backend, 1, mock, 128);
          try {
            r = await clusterRate(replica!.url, path, n, [replica!.pid]);
          } finally {
            await replica!.stop();
          }
        } finally {
          await backend.stop();
        }
        rounds.push({ ratio: r.rps / l.rps, cpu: r.cpu / l.cpu });
        ctx.log(
          `  round ${round}: SQLite + disk ${int(l.rps)} req/s (BESH ${perTenK(l.cpu)} CPU s per 10k), PostgreSQL + S3 ${int(r.rps)} req/s (${perTenK(r.cpu)}): ×${fixed(r.rps / l.rps, 2)}`,
        );
      }
      const ratio = percentile(rounds.map((x) => x.ratio), 50);
      return {
        figure: `median ×${fixed(ratio, 2)} (rounds ×${rounds.map((x) => fixed(x.ratio, 2)).join(' / ×')}); BESH CPU per request ×${rounds.map((x) => fixed(x.cpu, 2)).join(' / ×')} of SQLite + disk`,
        pass: ratio >= 0.9,
      };
    } finally {
      await mock.stop();
    }
  },
};

const MILLION_RSS_LIMIT = 300 * MB;

/** A 1,000,000-line batch on three replicas: memory of each stays flat. */
export const clusterMillion: Scenario = {
  title: (d) => `cluster million: a ${int(size(1_000_000, d))}-line batch on 3 replicas (PostgreSQL + S3), latency 0, MAX_WORKERS 128 each`,
  target: 'peak RSS ≤ 300 MB per replica',
  async run(ctx) {
    const n = size(1_000_000, ctx.divisor);
    const path = await input(ctx, 'million', n);
    const mock = await startMock(0, ctx.dir);
    const backend = await startClusterBackend();
    try {
      const cluster = await startReplicas(ctx, backend, 3, mock, 128);
      const samplers = cluster.map((s) => new RssSampler(s.pid).start());
      try {
        const r = await clusterRate(cluster[0]!.url, path, n, [], { samplers, log: ctx.log });
        const peaks = await Promise.all(samplers.map((s) => s.stop()));
        const worst = Math.max(...peaks.map((p) => p.peakBytes));
        return {
          figure: `peak RSS ${peaks.map((p) => megabytes(p.peakBytes)).join(' / ')}, ${seconds(r.ms)} (${int(r.rps)} req/s)`,
          pass: worst <= MILLION_RSS_LIMIT,
        };
      } finally {
        await Promise.all(samplers.map((s) => s.stop()));
        await Promise.all(cluster.map((s) => s.stop()));
      }
    } finally {
      await backend.stop();
      await mock.stop();
    }
  },
};

const FAILOVER_TTL_MS = 15_000;

/** A replica killed mid-batch: the time until every shard it held runs on another replica. */
export const clusterFailover: Scenario = {
  title: () => `cluster failover: kill -9 of a replica mid-batch, BESH_LEASE_TTL_MS ${FAILOVER_TTL_MS} (the default)`,
  target: `its shards run elsewhere within TTL + 2 s`,
  async run(ctx) {
    const n = 40_000;
    const path = await input(ctx, 'failover', n);
    const mock = await startMock(50, ctx.dir);
    const backend = await startClusterBackend();
    try {
      const cluster = await startReplicas(ctx, backend, 3, mock, 32, { BESH_LEASE_TTL_MS: String(FAILOVER_TTL_MS) });
      try {
        const file = await uploadFile(cluster[0]!.url, path);
        const created = await createBatch(cluster[0]!.url, file.id);
        let held: Array<{ shard_no: number }> = [];
        while (held.length === 0) {
          held = await backend.query<{ shard_no: number }>(`SELECT shard_no FROM batch_shards WHERE batch_id = $1 AND lease_owner = 'r3' AND state = 'leased'`, [created.id]);
          await sleep(50);
        }
        const victim = cluster[2]!;
        process.kill(victim.pid, 'SIGKILL');
        const killedAt = performance.now();
        const shards = held.map((h) => h.shard_no);
        for (;;) {
          const rows = await backend.query<{ n: string }>(
            `SELECT COUNT(*) AS n FROM batch_shards WHERE batch_id = $1 AND shard_no = ANY($2::int[]) AND (state = 'done' OR (state = 'leased' AND lease_owner <> 'r3'))`,
            [created.id, shards],
          );
          if (Number(rows[0]!.n) === shards.length) break;
          if (performance.now() - killedAt > FAILOVER_TTL_MS * 3) throw new Error('the dead replica’s shards were never taken over');
          await sleep(50);
        }
        const ms = performance.now() - killedAt;
        const { batch } = await waitForBatch(cluster[0]!.url, created.id, { intervalMs: 200, timeoutMs: 300_000 });
        if (batch.status !== 'completed' || batch.request_counts.completed !== n) throw new Error(`batch ended ${batch.status}`);
        return { figure: `${seconds(ms)} from the kill until its ${shards.length} shard(s) ran elsewhere; batch completed, ${int(n)} lines`, pass: ms <= FAILOVER_TTL_MS + 2000 };
      } finally {
        await Promise.all(cluster.map((s) => s.stop()));
      }
    } finally {
      await backend.stop();
      await mock.stop();
    }
  },
};
