import { isAbsolute, resolve } from 'node:path';

import { z } from 'zod';

/**
 * Configuration, read once from an env-like record (flags and `.env` are merged into it by cli/)
 * and compiled into a frozen object with every field present. Nothing else reads process.env.
 * Names follow the original where it had one (PORT, MAX_WORKERS, OPENAI_API_BASE, …).
 */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly upstreamBase: string;
  readonly upstreamApiKey: string | null;
  readonly maxWorkers: number;
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
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const CORE_ENDPOINTS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'] as const;

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`Invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const endpointPath = z.string().regex(/^\/v1\/[a-z0-9_/-]+$/, 'must look like /v1/something');

/** Each variable, its schema and default. The key is the environment variable name. */
const schema = {
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65535).default(5000),
  BESH_DATA_DIR: z.string().min(1).default('./data'),
  OPENAI_API_BASE: z
    .url({ protocol: /^https?$/ })
    .default('http://localhost:8000/v1')
    .transform((u) => u.replace(/\/+$/, '')),
  OPENAI_API_KEY: z.string().optional(),
  MAX_WORKERS: int(1, 100_000).default(128),
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
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
  return Object.freeze({
    host: v.HOST,
    port: v.PORT,
    dataDir: isAbsolute(v.BESH_DATA_DIR) ? v.BESH_DATA_DIR : resolve(cwd, v.BESH_DATA_DIR),
    upstreamBase: v.OPENAI_API_BASE,
    upstreamApiKey: v.OPENAI_API_KEY ?? null,
    maxWorkers: v.MAX_WORKERS,
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
    logLevel: v.LOG_LEVEL,
  });
}
