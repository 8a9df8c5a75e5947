import type { BatchStatus } from '../../domain/index.js';
import type { StoreEvent } from '../meta-store.js';
import { RUN_STATUSES } from './statuses.js';

/** Something became claimable. */
export const WORK_EVENT: StoreEvent = Object.freeze({ type: 'work' });

type BatchKey = { id: string; project: string };

const batchEvent = (batch: BatchKey, status: BatchStatus): StoreEvent => ({ type: 'batch', id: batch.id, project: batch.project, status });

/** What a write that moved or created a batch emits: its status and, when shards may be claimed now, `work`. */
export function batchEvents(batch: BatchKey, status: BatchStatus): StoreEvent[] {
  const e = batchEvent(batch, status);
  return status === 'validating' || RUN_STATUSES.includes(status) ? [e, WORK_EVENT] : [e];
}

/**
 * What insertBatch emits (cluster-store-spec.md, `insertBatch`): the new batch's status and `work`,
 * whatever that status (the API inserts only `validating`, where this equals batchEvents).
 */
export const insertedBatchEvents = (batch: BatchKey & { status: BatchStatus }): StoreEvent[] => [batchEvent(batch, batch.status), WORK_EVENT];

export const batchDeletedEvent = (batch: BatchKey): StoreEvent => ({ type: 'batch_deleted', id: batch.id, project: batch.project });
