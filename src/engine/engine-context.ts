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
  maxConcurrentBatches: number;
  maxLineBytes: number;
  maxRequestsPerBatch: number;
  maxValidationErrors: number;
  /** Endpoints a batch may target (core + configured extras). */
  endpoints: readonly string[];
  shutdownGraceMs: number;
  /** How long cancel lets in-flight requests finish before aborting them. */
  cancelGraceMs: number;
  progressFlushMs: number;
  retry: RetryPolicy;
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
}

export const outputKey = (batchId: string): string => `batches/${batchId}/output.jsonl`;
export const errorKey = (batchId: string): string => `batches/${batchId}/errors.jsonl`;
