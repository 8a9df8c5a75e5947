import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';

import { z } from 'zod';

/**
 * Configuration, read once from an env-like record (flags and `.env` are merged into it by cli/)
 * and compiled into a frozen object with every field present. Nothing else reads process.env.
 * Names follow the original where it had one (PORT, MAX_WORKERS, OPENAI_API_BASE, …).
 */
/** Where the metadata lives: a SQLite file (the embedded default) or a PostgreSQL database (a cluster). */
export type DatabaseConfig = { readonly kind: 'sqlite'; readonly path: string } | { readonly kind: 'postgres'; readonly url: string };

/** Where file bytes live: a local directory (the embedded default) or an S3-compatible bucket. */
export type BlobConfig =
  | { readonly kind: 'local'; readonly dir: string }
  | {
      readonly kind: 's3';
      readonly bucket: string;
      readonly prefix: string;
      readonly endpoint: string | null;
      readonly region: string;
      readonly accessKeyId: string | null;
      readonly secretAccessKey: string | null;
    };

export interface Config {
  readonly host: string;
  readonly port: number;
  /** This replica's own directory (the SQLite file and local blobs by default). */
  readonly dataDir: string;
  /** BESH_DATABASE_URL: `sqlite:PATH` (default DATA_DIR/besh.sqlite) or `postgres://…`. */
  readonly database: DatabaseConfig;
  /** BESH_BLOB_URL: `file:DIR` (default DATA_DIR) or `s3://BUCKET/PREFIX` with the AWS_* variables. */
  readonly blobs: BlobConfig;
  /** BESH_REPLICA_ID; null = host name, pid and a random suffix (unique per process). */
  readonly replicaId: string | null;
  /** A lease not renewed for this long is taken over by another replica (BESH_LEASE_TTL_MS). */
  readonly leaseTtlMs: number;
  /** Most request lines per shard (BESH_SHARD_LINES). */
  readonly shardLines: number;
  /** Result segments on S3 are made durable at least this often (BESH_SEGMENT_FLUSH_MS)… */
  readonly segmentFlushMs: number;
  /** …or once they hold this many bytes (BESH_SEGMENT_MAX_BYTES). */
  readonly segmentMaxBytes: number;
  /** How often each replica looks for work when nothing wakes it sooner (BESH_CLAIM_INTERVAL_MS). */
  readonly claimIntervalMs: number;
  /** Share of each inference server BESH leaves to other (interactive) clients, 0..0.9 (BESH_UPSTREAM_HEADROOM). */
  readonly upstreamHeadroom: number;
  /** With MAX_WORKERS=auto, the most BESH may slow each vLLM server's inter-token latency, a factor > 1; 0 = no bound (BESH_UPSTREAM_MAX_SLOWDOWN). */
  readonly upstreamMaxSlowdown: number;
  /** Dispatch a batch's lines grouped by their shared prompt prefix (BESH_PREFIX_ORDER). */
  readonly prefixOrder: boolean;
  /** Send requests sharing a prefix to the same upstream (BESH_PREFIX_AFFINITY). */
  readonly prefixAffinity: boolean;
  /** Upstreams run with vLLM's --scheduling-policy priority: they get a priority from each batch's deadline (BESH_PRIORITY_UPSTREAMS). */
  readonly priorityUpstreams: readonly string[];
  /** OPENAI_API_BASE as given (normalised): one URL or a comma-separated list. */
  readonly upstreamBase: string;
  /** Each upstream base URL, in order. */
  readonly upstreamBases: readonly string[];
  readonly upstreamApiKey: string | null;
  /** MAX_WORKERS; with `auto`, the most one upstream may be given (1024). */
  readonly maxWorkers: number;
  /** MAX_WORKERS=auto: each upstream's limit is found by measuring throughput. */
  readonly maxWorkersAuto: boolean;
  readonly healthIntervalMs: number;
  readonly ejectAfterFailures: number;
  readonly modelsRefreshMs: number;
  readonly maxConcurrentBatches: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly requestTimeoutMs: number;
  readonly maxFileBytes: number;
  readonly maxLineBytes: number;
  readonly maxResponseBytes: number;
  readonly maxRequestsPerBatch: number;
  readonly maxValidationErrors: number;
  readonly extraEndpoints: readonly string[];
  readonly shutdownGraceMs: number;
  readonly progressFlushMs: number;
  /** Lifetime of uploaded files in seconds (null = kept until deleted). */
  readonly inputFileTtlSeconds: number | null;
  /** Lifetime of batch output/error files in seconds when the batch sets no output_expires_after (null = forever). */
  readonly outputFileTtlSeconds: number | null;
  /** How often expired files are deleted. */
  readonly sweepIntervalMs: number;
  /** Uploads are refused when they would leave less free space than this in the data directory. */
  readonly minFreeBytes: number;
  /** When set, GET /metrics requires `Authorization: Bearer <token>`. */
  readonly metricsToken: string | null;
  /** Bootstrap admin key (BESH_ADMIN_KEY): with it, or with any key in the store, every /v1 route needs a key. */
  readonly adminKey: string | null;
  /** Origins allowed by CORS (BESH_CORS_ORIGINS); empty = CORS off. `*` allows any origin. */
  readonly corsOrigins: readonly string[];
  /** Default per-project limits (a project's own limits override them); null = no limit. */
  readonly projectLimits: {
    readonly maxStoredBytes: number | null;
    readonly maxActiveBatches: number | null;
    readonly maxQueuedRequests: number | null;
  };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Webhook deliveries (docs/webhooks.md). */
  readonly webhooks: {
    /** BESH_WEBHOOK_ALLOW_HOSTS: host names, IPs and CIDRs allowed although private (loopback, RFC 1918, …). */
    readonly allowHosts: readonly string[];
    /** BESH_WEBHOOK_RETRY_SCHEDULE: when each retry is due, in ms after the first attempt (increasing). */
    readonly retryScheduleMs: readonly number[];
    /** BESH_WEBHOOK_TIMEOUT_MS: deadline of one attempt (connect, headers and body). */
    readonly timeoutMs: number;
    /** BESH_WEBHOOK_POLL_MS: how often each replica looks for due deliveries when nothing wakes it sooner. */
    readonly pollMs: number;
  };
  /** Largest file sent through the Uploads API, declared and after gzip decoding (BESH_MAX_UPLOAD_BYTES). */
  readonly maxUploadBytes: number;
  /** Lifetime of an upload not completed, in seconds (BESH_UPLOAD_TTL); its parts are removed then. */
  readonly uploadTtlSeconds: number;
}

export const CORE_ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'] as const;

/** With MAX_WORKERS=auto, the most requests one upstream may be given. */
export const AUTO_MAX_PER_UPSTREAM = 1024;

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`Invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/**
 * A lifetime: `30d`, `12h`, `90m`, `45s` (or plain seconds); `0` or `never` keeps files forever.
 * Compiles to whole seconds, or null for forever.
 */
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const duration = (fallback: string) => z
  .string()
  .default(fallback)
  .transform((s, ctx) => {
    const t = s.trim().toLowerCase();
    if (t === 'never' || t === '0') return null;
    const m = /^(\d+)\s*([smhdw]?)$/.exec(t);
    const seconds = m ? Number(m[1]) * (DURATION_UNITS[m[2] || 's'] ?? 1) : NaN;
    if (!Number.isSafeInteger(seconds) || seconds <= 0) {
      ctx.addIssue({ code: 'custom', message: "must be a duration like '30d', '12h', '90m', '45s', or '0'/'never' to keep forever" });
      return z.NEVER;
    }
    return seconds;
  });

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const onOff = (fallback: boolean) =>
  z
    .enum(['on', 'off', 'true', 'false', '1', '0'], { error: 'must be on or off' })
    .default(fallback ? 'on' : 'off')
    .transform((v) => v === 'on' || v === 'true' || v === '1');

/** The Standard Webhooks retry schedule: each retry's time after the first (immediate) attempt. */
export const STANDARD_WEBHOOK_SCHEDULE = '5s,5m,30m,2h,5h,10h,14h,20h,24h';
const MS_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** A comma-separated list of strictly increasing durations (`250ms`, `5s`, `5m`, `2h`, `1d`), compiled to ms. */
const msSchedule = (fallback: string) => z
  .string()
  .default(fallback)
  .transform((s, ctx) => {
    const out: number[] = [];
    for (const part of s.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean)) {
      const m = /^(\d+)\s*(ms|s|m|h|d)$/.exec(part);
      const ms = m ? Number(m[1]) * (MS_UNITS[m[2]!] ?? 1) : NaN;
      if (!Number.isSafeInteger(ms) || ms <= (out.at(-1) ?? 0) || ms > 7 * 86_400_000 || out.length >= 30) {
        ctx.addIssue({ code: 'custom', message: "must be up to 30 increasing durations after the first attempt, like '5s,5m,30m,2h' (units ms, s, m, h, d; at most 7d)" });
        return z.NEVER;
      }
      out.push(ms);
    }
    return out;
  });
/** A host name (letters, digits, `-`, `_`, dots), an IP address, or a CIDR whose prefix fits its family. */
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/;
function isHostOrCidr(entry: string): boolean {
  const [addr = '', prefix, ...rest] = entry.split('/');
  const family = isIP(addr);
  if (prefix === undefined) return family !== 0 || (HOST_NAME.test(entry) && !/^[\d.]+$/.test(entry));
  return rest.length === 0 && family !== 0 && /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}
const endpointPath = z.string().regex(/^\/v1\/[a-z0-9_/-]+$/, 'must look like /v1/something');

/** Each variable, its schema and default. The key is the environment variable name. */
const schema = {
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65535).default(5000),
  BESH_DATA_DIR: z.string().min(1).default('./data'),
  BESH_DATABASE_URL: z
    .string()
    .regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, 'must be sqlite:PATH or postgres://USER@HOST:PORT/DATABASE')
    .optional(),
  BESH_BLOB_URL: z
    .string()
    .regex(/^(file:.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/, 'must be file:DIR or s3://BUCKET/PREFIX (a valid bucket name)')
    .optional(),
  AWS_ENDPOINT_URL: z.url({ protocol: /^https?$/ }).optional(),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  BESH_REPLICA_ID: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'must be 1–128 letters, digits, "_", ".", ":" or "-"').optional(),
  BESH_LEASE_TTL_MS: int(300, 600_000).default(15_000),
  BESH_SHARD_LINES: int(1, 10_000_000).default(5000),
  BESH_SEGMENT_FLUSH_MS: int(10, 60_000).default(1000),
  BESH_SEGMENT_MAX_BYTES: int(64 * 1024, 1024 * 1024 * 1024).default(8 * 1024 * 1024),
  BESH_CLAIM_INTERVAL_MS: int(10, 60_000).default(500),
  BESH_UPSTREAM_HEADROOM: z.coerce.number().min(0).max(0.9).default(0),
  BESH_UPSTREAM_MAX_SLOWDOWN: z.coerce
    .number()
    .refine((n) => n === 0 || (n > 1 && n <= 100), 'must be 0 (no bound) or a factor above 1, e.g. 1.5')
    .default(0),
  BESH_PREFIX_ORDER: onOff(true),
  BESH_PREFIX_AFFINITY: onOff(true),
  BESH_PRIORITY_UPSTREAMS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, '')))),
  OPENAI_API_BASE: z
    .string()
    .default('http://localhost:8000/v1')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''))).min(1, 'needs at least one URL')),
  OPENAI_API_KEY: z.string().optional(),
  MAX_WORKERS: z.union([z.literal('auto'), int(1, 100_000)], { error: 'must be an integer between 1 and 100000, or auto' }).default(128),
  BESH_HEALTH_INTERVAL_MS: int(0, 3_600_000).default(5000),
  BESH_EJECT_AFTER_FAILURES: int(1, 1_000_000).default(5),
  BESH_MODELS_REFRESH_MS: int(0, 86_400_000).default(60_000),
  MAX_CONCURRENT_BATCHES: int(1, 10_000).default(10),
  BESH_MAX_ATTEMPTS: int(1, 100).default(6),
  BESH_RETRY_BASE_MS: int(1, 3_600_000).default(500),
  BESH_RETRY_MAX_MS: int(1, 3_600_000).default(60_000),
  BESH_REQUEST_TIMEOUT_MS: int(100, 86_400_000).default(600_000),
  BESH_MAX_FILE_BYTES: int(1, Number.MAX_SAFE_INTEGER).default(512 * 1024 * 1024),
  BESH_MAX_LINE_BYTES: int(64, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  BESH_MAX_RESPONSE_BYTES: int(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  BESH_MAX_REQUESTS_PER_BATCH: int(1, 100_000_000).default(1_000_000),
  BESH_MAX_VALIDATION_ERRORS: int(1, 100_000).default(1000),
  BESH_EXTRA_ENDPOINTS: z
    .string()
    .default('/v1/score,/v1/rerank,/v1/moderations')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(endpointPath)),
  BESH_SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  BESH_PROGRESS_FLUSH_MS: int(10, 60_000).default(500),
  BESH_INPUT_FILE_TTL: duration('30d'),
  BESH_OUTPUT_FILE_TTL: duration('30d'),
  BESH_SWEEP_INTERVAL_MS: int(50, 86_400_000).default(60_000),
  BESH_MIN_FREE_BYTES: int(0, Number.MAX_SAFE_INTEGER).default(1024 * 1024 * 1024),
  BESH_METRICS_TOKEN: z.string().min(1).optional(),
  BESH_ADMIN_KEY: z.string().min(20, 'must be at least 20 characters (use `openssl rand -hex 24`)').optional(),
  BESH_CORS_ORIGINS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((x) => x.trim().replace(/\/+$/, '')).filter(Boolean))
    .pipe(z.array(z.union([z.literal('*'), z.url({ protocol: /^https?$/ })]))),
  BESH_PROJECT_MAX_STORED_BYTES: int(0, Number.MAX_SAFE_INTEGER).default(0),
  BESH_PROJECT_MAX_ACTIVE_BATCHES: int(0, 1_000_000).default(0),
  BESH_PROJECT_MAX_QUEUED_REQUESTS: int(0, Number.MAX_SAFE_INTEGER).default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BESH_WEBHOOK_ALLOW_HOSTS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((x) => x.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1')).filter(Boolean))
    .pipe(z.array(z.string().max(255).refine(isHostOrCidr, 'must be host names, IP addresses or CIDRs (like 10.0.0.0/8), comma-separated'))),
  BESH_WEBHOOK_RETRY_SCHEDULE: msSchedule(STANDARD_WEBHOOK_SCHEDULE),
  BESH_WEBHOOK_TIMEOUT_MS: int(100, 300_000).default(10_000),
  BESH_WEBHOOK_POLL_MS: int(10, 60_000).default(1000),
  BESH_MAX_UPLOAD_BYTES: int(1, Number.MAX_SAFE_INTEGER).default(8 * 1024 * 1024 * 1024),
  BESH_UPLOAD_TTL: duration('1h'),
} as const;

export type ConfigVariable = keyof typeof schema;
export const CONFIG_VARIABLES = Object.keys(schema) as ConfigVariable[];

export function parseConfig(env: Readonly<Record<string, string | undefined>>, cwd = process.cwd()): Config {
  const v = {} as { [K in ConfigVariable]: z.output<(typeof schema)[K]> };
  for (const name of CONFIG_VARIABLES) {
    const raw = env[name];
    const value = raw === undefined || raw.trim() === '' ? undefined : raw.trim();
    const result = schema[name].safeParse(value);
    if (!result.success) {
      throw new ConfigError(name, `${result.error.issues.map((i) => i.message).join('; ')} (got ${JSON.stringify(raw)})`);
    }
    (v as Record<string, unknown>)[name] = result.data;
  }
  if (v.BESH_RETRY_MAX_MS < v.BESH_RETRY_BASE_MS) {
    throw new ConfigError('BESH_RETRY_MAX_MS', `must be ≥ BESH_RETRY_BASE_MS (${v.BESH_RETRY_BASE_MS})`);
  }
  if ((v.AWS_ACCESS_KEY_ID === undefined) !== (v.AWS_SECRET_ACCESS_KEY === undefined)) {
    throw new ConfigError(v.AWS_ACCESS_KEY_ID === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY', 'set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither');
  }
  // Renewals must come well within the TTL, so one late heartbeat never loses a lease.
  if (v.BESH_PROGRESS_FLUSH_MS * 3 > v.BESH_LEASE_TTL_MS) {
    throw new ConfigError('BESH_LEASE_TTL_MS', `must be at least 3 × BESH_PROGRESS_FLUSH_MS (${v.BESH_PROGRESS_FLUSH_MS} ms, the heartbeat)`);
  }
  if (v.BESH_UPLOAD_TTL === null) throw new ConfigError('BESH_UPLOAD_TTL', "must be a duration like '1h' or '90m': an upload not completed always expires");
  const dataDir = isAbsolute(v.BESH_DATA_DIR) ? v.BESH_DATA_DIR : resolve(cwd, v.BESH_DATA_DIR);
  return Object.freeze({
    host: v.HOST,
    port: v.PORT,
    dataDir,
    database: databaseConfig(v.BESH_DATABASE_URL, dataDir, cwd),
    blobs: blobConfig(v.BESH_BLOB_URL, dataDir, cwd, {
      endpoint: v.AWS_ENDPOINT_URL?.replace(/\/+$/, '') ?? null,
      region: v.AWS_REGION,
      accessKeyId: v.AWS_ACCESS_KEY_ID ?? null,
      secretAccessKey: v.AWS_SECRET_ACCESS_KEY ?? null,
    }),
    replicaId: v.BESH_REPLICA_ID ?? null,
    leaseTtlMs: v.BESH_LEASE_TTL_MS,
    shardLines: v.BESH_SHARD_LINES,
    segmentFlushMs: v.BESH_SEGMENT_FLUSH_MS,
    segmentMaxBytes: v.BESH_SEGMENT_MAX_BYTES,
    claimIntervalMs: v.BESH_CLAIM_INTERVAL_MS,
    upstreamHeadroom: v.BESH_UPSTREAM_HEADROOM,
    upstreamMaxSlowdown: v.BESH_UPSTREAM_MAX_SLOWDOWN,
    prefixOrder: v.BESH_PREFIX_ORDER,
    prefixAffinity: v.BESH_PREFIX_AFFINITY,
    priorityUpstreams: Object.freeze([...v.BESH_PRIORITY_UPSTREAMS]),
    upstreamBase: v.OPENAI_API_BASE.join(','),
    upstreamBases: Object.freeze([...v.OPENAI_API_BASE]),
    upstreamApiKey: v.OPENAI_API_KEY ?? null,
    maxWorkers: v.MAX_WORKERS === 'auto' ? AUTO_MAX_PER_UPSTREAM : v.MAX_WORKERS,
    maxWorkersAuto: v.MAX_WORKERS === 'auto',
    healthIntervalMs: v.BESH_HEALTH_INTERVAL_MS,
    ejectAfterFailures: v.BESH_EJECT_AFTER_FAILURES,
    modelsRefreshMs: v.BESH_MODELS_REFRESH_MS,
    maxConcurrentBatches: v.MAX_CONCURRENT_BATCHES,
    maxAttempts: v.BESH_MAX_ATTEMPTS,
    retryBaseMs: v.BESH_RETRY_BASE_MS,
    retryMaxMs: v.BESH_RETRY_MAX_MS,
    requestTimeoutMs: v.BESH_REQUEST_TIMEOUT_MS,
    maxFileBytes: v.BESH_MAX_FILE_BYTES,
    maxLineBytes: v.BESH_MAX_LINE_BYTES,
    maxResponseBytes: v.BESH_MAX_RESPONSE_BYTES,
    maxRequestsPerBatch: v.BESH_MAX_REQUESTS_PER_BATCH,
    maxValidationErrors: v.BESH_MAX_VALIDATION_ERRORS,
    extraEndpoints: Object.freeze([...v.BESH_EXTRA_ENDPOINTS]),
    shutdownGraceMs: v.BESH_SHUTDOWN_GRACE_MS,
    progressFlushMs: v.BESH_PROGRESS_FLUSH_MS,
    inputFileTtlSeconds: v.BESH_INPUT_FILE_TTL,
    outputFileTtlSeconds: v.BESH_OUTPUT_FILE_TTL,
    sweepIntervalMs: v.BESH_SWEEP_INTERVAL_MS,
    minFreeBytes: v.BESH_MIN_FREE_BYTES,
    metricsToken: v.BESH_METRICS_TOKEN ?? null,
    adminKey: v.BESH_ADMIN_KEY ?? null,
    corsOrigins: Object.freeze([...v.BESH_CORS_ORIGINS]),
    // 0 = no limit, as in the per-project settings.
    projectLimits: Object.freeze({
      maxStoredBytes: v.BESH_PROJECT_MAX_STORED_BYTES || null,
      maxActiveBatches: v.BESH_PROJECT_MAX_ACTIVE_BATCHES || null,
      maxQueuedRequests: v.BESH_PROJECT_MAX_QUEUED_REQUESTS || null,
    }),
    logLevel: v.LOG_LEVEL,
    webhooks: Object.freeze({
      allowHosts: Object.freeze([...v.BESH_WEBHOOK_ALLOW_HOSTS]),
      retryScheduleMs: Object.freeze([...v.BESH_WEBHOOK_RETRY_SCHEDULE]),
      timeoutMs: v.BESH_WEBHOOK_TIMEOUT_MS,
      pollMs: v.BESH_WEBHOOK_POLL_MS,
    }),
    maxUploadBytes: v.BESH_MAX_UPLOAD_BYTES,
    uploadTtlSeconds: v.BESH_UPLOAD_TTL,
  });
}

const localPath = (p: string, cwd: string): string => (isAbsolute(p) ? p : resolve(cwd, p));

export function databaseConfig(url: string | undefined, dataDir: string, cwd: string): DatabaseConfig {
  if (url === undefined) return Object.freeze({ kind: 'sqlite', path: resolve(dataDir, 'besh.sqlite') });
  if (url.startsWith('sqlite:')) return Object.freeze({ kind: 'sqlite', path: localPath(url.slice('sqlite:'.length), cwd) });
  return Object.freeze({ kind: 'postgres', url });
}

function blobConfig(
  url: string | undefined,
  dataDir: string,
  cwd: string,
  aws: { endpoint: string | null; region: string; accessKeyId: string | null; secretAccessKey: string | null },
): BlobConfig {
  if (url === undefined) return Object.freeze({ kind: 'local', dir: dataDir });
  if (url.startsWith('file:')) return Object.freeze({ kind: 'local', dir: localPath(url.slice('file:'.length), cwd) });
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  return Object.freeze({ kind: 's3', bucket, prefix, ...aws });
}
