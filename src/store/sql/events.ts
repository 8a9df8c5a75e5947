import type { BatchStatus } from '../../domain/index.js';
import type { StoreEvent } from '../meta-store.js';
import { RUN_STATUSES } from './statuses.js';

/** Something became claimable. */
export const WORK_EVENT: StoreEvent = Object.freeze({ type: 'work' });

/** What a write that moved or created a batch emits: its status and, when shards may be claimed now, `work`. */
export function batchEvents(batch: { id: string; project: string }, status: BatchStatus): StoreEvent[] {
  const e: StoreEvent = { type: 'batch', id: batch.id, project: batch.project, status };
  return status === 'validating' || RUN_STATUSES.includes(status) ? [e, WORK_EVENT] : [e];
}

export const batchDeletedEvent = (batch: { id: string; project: string }): StoreEvent => ({ type: 'batch_deleted', id: batch.id, project: batch.project });
