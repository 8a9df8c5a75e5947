import {
  type ApiKeyRecord,
  type BatchRecord,
  type FileRecord,
  hashApiKey,
  newApiKeyId,
  newApiKeySecret,
  newBatch,
  newFileId,
} from '../../../src/domain/index.js';
import type { MetaStore, ReplicaInfo, ShardPlan } from '../../../src/store/meta-store.js';

/** Batch and file times (unix seconds) the fixtures start from. */
export const T0 = 1_700_000_000;

/** A lease long enough never to expire during a test. */
export const LONG_MS = 60_000;
/** A lease short enough to expire during a test, and the wait that outlasts it (real time: the PostgreSQL clock cannot be faked). */
export const SHORT_MS = 60;
export const PAST_SHORT_MS = 150;
/** A lease that must still be live a few statements after it was taken (on a loaded machine too), then expire. */
export const MEDIUM_MS = 400;
export const PAST_MEDIUM_MS = 500;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function fileFixture(overrides: Partial<FileRecord> = {}): FileRecord {
  const id = overrides.id ?? newFileId();
  return {
    id,
    filename: 'input.jsonl',
    purpose: 'batch',
    bytes: 1234,
    createdAt: T0,
    expiresAt: null,
    blobKey: `files/${id}.jsonl`,
    batchId: null,
    project: 'default',
    lines: null,
    ...overrides,
  };
}

export function batchFixture(overrides: Partial<BatchRecord> = {}): BatchRecord {
  const base = newBatch({
    project: 'default',
    inputFileId: newFileId(),
    endpoint: '/v1/chat/completions',
    completionWindow: '24h',
    metadata: null,
    createdAt: T0,
    expiresAt: T0 + 86_400,
    outputExpiresAfter: null,
  });
  return { ...base, ...overrides };
}

export function apiKeyFixture(overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  const secret = newApiKeySecret();
  return {
    id: newApiKeyId(),
    project: 'default',
    admin: false,
    name: null,
    hash: hashApiKey(secret),
    prefix: `${secret.slice(0, 12)}…`,
    createdAt: T0,
    revokedAt: null,
    lastUsedAt: null,
    ...overrides,
  };
}

export function replicaFixture(id: string, overrides: Partial<ReplicaInfo> = {}): ReplicaInfo {
  return { id, host: 'host-a', pid: 4242, startedAt: 1_700_000_000_000, state: 'running', inFlight: 0, workerLimit: 64, version: '0.1.0', ...overrides };
}

/** `n` shards of `requests` lines each, laid end to end (10 bytes a line). */
export function shardPlans(n: number, requests = 10): ShardPlan[] {
  return Array.from({ length: n }, (_, i) => ({
    shardNo: i,
    firstLine: 1 + i * requests,
    requests,
    startByte: i * requests * 10,
    endByte: (i + 1) * requests * 10,
  }));
}

/** A batch moved validating → in_progress with `shards` pending shards (its total: their requests). */
export async function seedRunning(store: MetaStore, shards = 2, overrides: Partial<BatchRecord> = {}, requests = 10): Promise<BatchRecord> {
  const b = batchFixture({ ...overrides, status: 'validating' });
  await store.insertBatch(b);
  const moved = await store.transition(b.id, ['validating'], 'in_progress', T0 + 1, {
    requestCounts: { total: shards * requests, completed: 0, failed: 0 },
    insertShards: shardPlans(shards, requests),
  });
  if (moved === null) throw new Error('seedRunning: the batch did not move to in_progress');
  return moved;
}

export const ids = (xs: ReadonlyArray<{ id: string }>): string[] => xs.map((x) => x.id);

/** Polls until `check` holds (it returns true) or throws after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 3_000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(10);
  }
}
