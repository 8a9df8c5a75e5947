import { EventEmitter } from 'node:events';

import type { BatchRecord, Usage } from '../domain/index.js';

export interface EngineEventMap {
  /** A batch changed status (also emitted for create and delete). */
  'batch:status': [batch: BatchRecord];
  'batch:deleted': [batchId: string, project: string];
  /** This replica gave a shard back (done, or pending again): what it counted of it is final here. */
  'shard:released': [shard: { batchId: string; project: string; shardNo: number; done: boolean }];
  /** One request finished (success or final failure) — for time-bucketed counters. */
  'request:done': [done: { batchId: string; project: string; ok: boolean; status: number | null; attempts: number; latencyMs: number; usage: Usage | null }];
  'request:retry': [retry: { batchId: string; project: string; status: number | null; attempt: number; delayMs: number }];
}

/**
 * Typed engine events. Listeners (logs, metrics, dashboard) cannot break the engine: a throwing
 * listener is reported and ignored (graphile's safeEmit).
 */
export class EngineEvents extends EventEmitter<EngineEventMap> {
  safeEmit<K extends keyof EngineEventMap>(event: K, ...args: EngineEventMap[K]): void {
    try {
      // eslint-disable-next-line @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any
      this.emit(event as any, ...(args as any));
    } catch (err) {
      process.emitWarning(`Engine event listener for ${event} threw: ${String(err)}`);
    }
  }
}
