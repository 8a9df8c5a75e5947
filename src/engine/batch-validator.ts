import type { BatchLease, LeaseFence } from '../store/meta-store.js';
import { setLongTimeout } from './abortable-sleep.js';
import { expireValidating, failBatch, failValidation, finishBatch, startRunning } from './batch-verbs.js';
import type { EngineContext } from './engine-context.js';
import { type LeaseEntry, type LocalTask, STOP_PRIORITY, type StopReason } from './local-task.js';
import { shardSize, validateInput } from './validate-input.js';

/**
 * Validates one batch, once for the whole cluster: under the batch lease, reads the whole input,
 * checks every line and cuts it into shards, then moves the batch to in_progress with its shards
 * in the same write (or to failed, with the lines named). Stops:
 *   cancel    → cancelled (nothing ran)      expire → expired
 *   shutdown  → the lease is given back: another replica (or the next start) validates it
 *   lease_lost, delete → nothing more is written
 */
export class BatchValidator implements LocalTask {
  readonly kind = 'validate';
  readonly batchId: string;
  readonly project: string;
  readonly done: Promise<void>;
  readonly #ctx: EngineContext;
  readonly #lease: BatchLease;
  readonly #fence: LeaseFence;
  readonly #abort = new AbortController();
  #stopReason: StopReason | null = null;

  constructor(ctx: EngineContext, lease: BatchLease) {
    this.#ctx = ctx;
    this.#lease = lease;
    this.batchId = lease.batch.id;
    this.project = lease.batch.project;
    this.#fence = { batchId: this.batchId, owner: ctx.replica.id, epoch: lease.epoch };
    this.done = this.#run();
  }

  lease(): LeaseEntry {
    return { kind: 'batch', fence: this.#fence };
  }

  stop(reason: StopReason): void {
    if (this.#stopReason && STOP_PRIORITY[this.#stopReason] >= STOP_PRIORITY[reason]) return;
    this.#stopReason = reason;
    if (!this.#abort.signal.aborted) this.#abort.abort(new Error(`validation ${reason}`));
  }

  async #run(): Promise<void> {
    const { store, log } = this.#ctx;
    const batch = this.#lease.batch;
    const expiry = setLongTimeout(() => this.stop('expire'), batch.expiresAt * 1000 - Date.now());
    try {
      if (batch.status === 'cancelling') this.stop('cancel');
      const input = this.#stopReason ? null : await store.getFile(batch.inputFileId);
      if (this.#stopReason) return await this.#stopped();
      if (!input) {
        await failValidation(this.#ctx, this.#fence, [
          { code: 'invalid_request', message: `Cannot find file ${batch.inputFileId}.`, param: 'input_file_id', line: null },
        ]);
        return;
      }
      let result;
      try {
        result = await validateInput(this.#ctx, input.blobKey, batch.endpoint, this.#abort.signal, shardSize(input.lines, this.#ctx.opts.shardLines));
      } catch (err) {
        if (this.#stopReason) return await this.#stopped();
        throw err;
      }
      if (this.#stopReason) return await this.#stopped();
      if (result.errors.length > 0) {
        await failValidation(this.#ctx, this.#fence, result.errors, result.total);
        return;
      }
      const started = await startRunning(this.#ctx, this.#fence, {
        requestCounts: { total: result.total, completed: 0, failed: 0 },
        model: result.model,
        insertShards: result.shards,
      });
      // Moved meanwhile (a cancel arrived): settle from where it is now.
      if (!started) await this.#settleMoved();
    } catch (err) {
      log.error({ err, batchId: this.batchId }, 'batch validation failed');
      await failBatch(this.#ctx, this.batchId, err, this.#fence).catch((e: unknown) => log.error({ err: e, batchId: this.batchId }, 'could not mark batch failed'));
    } finally {
      expiry.clear();
    }
  }

  async #stopped(): Promise<void> {
    switch (this.#stopReason) {
      case 'cancel':
        await this.#settleMoved();
        return;
      case 'expire':
        if (!(await expireValidating(this.#ctx, this.#fence))) await this.#settleMoved();
        return;
      case 'shutdown':
        await this.#ctx.store.releaseBatch(this.#fence);
        return;
      default:
        return; // lease_lost, delete: someone else owns it now, or it is gone
    }
  }

  /** The batch left `validating` under us: a cancel ends it cancelled (nothing ran); anything else, let go. */
  async #settleMoved(): Promise<void> {
    const now = await this.#ctx.store.getBatch(this.batchId);
    if (now?.status === 'cancelling' && (await finishBatch(this.#ctx, this.#fence, ['cancelling'], 'cancelled', {}))) return;
    await this.#ctx.store.releaseBatch(this.#fence);
  }
}
