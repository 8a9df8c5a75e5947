import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore } from '../store/meta-store.js';
import type { Upstream } from '../upstream/upstream.js';
import type { EngineEvents } from './engine-events.js';
import type { FairSlots } from './fair-slots.js';
import type { RetryPolicy } from './retry-policy.js';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface EngineOptions {
  /** Batches this replica works on at once (validating or running shards); the rest wait. */
  maxConcurrentBatches: number;
  maxLineBytes: number;
  maxRequestsPerBatch: number;
  maxValidationErrors: number;
  /** Endpoints a batch may target (core + configured extras). */
  endpoints: readonly string[];
  shutdownGraceMs: number;
  /** How long cancel lets in-flight requests finish before aborting them. */
  cancelGraceMs: number;
  /** How often leases are renewed and live counters saved (the heartbeat). */
  heartbeatMs: number;
  /** A lease not renewed for this long may be taken over by another replica. */
  leaseTtlMs: number;
  /** Most request lines in one shard (a large batch is cut into at least 16 per live replica, so they end it together). */
  shardLines: number;
  /** Where appends are not durable at once (S3): a segment is sealed at least this often... */
  segmentFlushMs: number;
  /** ...or once it holds this many bytes. */
  segmentMaxBytes: number;
  /** How often the store is asked for claimable work when nothing wakes the engine sooner. */
  claimIntervalMs: number;
  /** Dispatch lines grouped by their shared prompt prefix where the input shares prefixes. */
  prefixOrder: boolean;
  /** Give each request its prefix key, so the pool routes requests sharing a prefix to one upstream. */
  prefixAffinity: boolean;
  /** Give each request a priority from its batch's deadline (some upstreams schedule by it). */
  sendPriority: boolean;
  retry: RetryPolicy;
}

/** Who this replica is, for leases and the replicas table. */
export interface ReplicaIdentity {
  id: string;
  host: string;
  pid: number;
  version: string;
}

/** What every part of the engine shares; built once by the Engine. */
export interface EngineContext {
  store: MetaStore;
  blobs: BlobStore;
  upstream: Upstream;
  slots: FairSlots;
  events: EngineEvents;
  log: Logger;
  opts: EngineOptions;
  replica: ReplicaIdentity;
}
