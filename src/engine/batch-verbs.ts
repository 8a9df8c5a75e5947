import { type BatchError, type BatchRecord, type BatchStatus, nowSeconds, UNFINISHED_STATUSES } from '../domain/index.js';
import type { LeaseFence, TransitionFields } from '../store/meta-store.js';
import { terminalWebhookEvent } from '../store/webhook-store.js';
import type { EngineContext } from './engine-context.js';

/**
 * The engine's status changes, each a named verb with its fixed `from` list (the edges are those
 * of BATCH_TRANSITIONS, which the store enforces). Every change is logged once and emitted as
 * `batch:status` by the replica that made it.
 */
async function move(
  ctx: EngineContext,
  id: string,
  from: readonly BatchStatus[],
  to: BatchStatus,
  fields: TransitionFields = {},
  fence?: LeaseFence,
): Promise<BatchRecord | null> {
  const b = await ctx.store.transition(id, from, to, nowSeconds(), fields, fence);
  if (b) {
    ctx.log.info({ batchId: b.id, status: b.status, requestCounts: b.requestCounts }, `batch ${b.status}`);
    ctx.events.safeEmit('batch:status', b);
  }
  return b;
}

/** Validation passed: the batch runs, as the given shards; the batch lease is given back. */
export const startRunning = (ctx: EngineContext, fence: LeaseFence, fields: Pick<TransitionFields, 'requestCounts' | 'model' | 'insertShards'>) =>
  move(ctx, fence.batchId, ['validating'], 'in_progress', { ...fields, releaseLease: true }, fence);

/** Validation failed (errors name the lines), or the input is gone. */
export const failValidation = (ctx: EngineContext, fence: LeaseFence, errors: BatchError[], total?: number) =>
  move(ctx, fence.batchId, ['validating'], 'failed', { errors, releaseLease: true, ...(total === undefined ? {} : { requestCounts: { total, completed: 0, failed: 0 } }), ...notify(fence.batchId, 'failed') }, fence);

/** The deadline passed before the batch was validated. */
export const expireValidating = (ctx: EngineContext, fence: LeaseFence) => move(ctx, fence.batchId, ['validating'], 'expired', { releaseLease: true, ...notify(fence.batchId, 'expired') }, fence);

/** A client asked to cancel (any replica; no lease needed). */
export const requestCancel = (ctx: EngineContext, id: string) => move(ctx, id, ['validating', 'in_progress', 'finalizing'], 'cancelling');

/** Every shard is done: the result files are being composed. */
export const beginFinalizing = (ctx: EngineContext, fence: LeaseFence, fields: Pick<TransitionFields, 'requestCounts' | 'usage'>) =>
  move(ctx, fence.batchId, ['in_progress'], 'finalizing', fields, fence);

/** The terminal write: the result files are recorded with the status, and the lease given back. */
export const finishBatch = (ctx: EngineContext, fence: LeaseFence, from: readonly BatchStatus[], to: 'completed' | 'cancelled' | 'expired', fields: TransitionFields) =>
  move(ctx, fence.batchId, from, to, { ...fields, releaseLease: true, ...notify(fence.batchId, to) }, fence);

/**
 * A fault no retry can fix (a result that cannot be written, files that cannot be composed). The
 * counters summed over the shards so far are kept on the failed batch (they stop being live).
 */
export async function failBatch(ctx: EngineContext, id: string, err: unknown, fence?: LeaseFence): Promise<BatchRecord | null> {
  const message = err instanceof Error ? err.message : String(err);
  const errors: BatchError[] = [{ code: 'internal_error', message: `The batch could not be processed: ${message}`, param: null, line: null }];
  const live = await ctx.store.getBatch(id);
  const counts = live ? { requestCounts: live.requestCounts, usage: live.usage } : {};
  return move(ctx, id, UNFINISHED_STATUSES, 'failed', { errors, releaseLease: fence !== undefined, ...counts, ...notify(id, 'failed') }, fence);
}

/** A terminal verb's webhook event: the store queues its deliveries in the transition's own write. */
function notify(batchId: string, to: 'completed' | 'failed' | 'cancelled' | 'expired'): Pick<TransitionFields, 'webhookEvent'> {
  const event = terminalWebhookEvent(batchId, to, nowSeconds());
  return event === undefined ? {} : { webhookEvent: event };
}
