import { groupedInputKey } from '../store/blob-keys.js';
import type { BatchLease, LeaseFence, ShardPlan } from '../store/meta-store.js';
import { setLongTimeout } from './abortable-sleep.js';
import { expireValidating, failBatch, failValidation, finishBatch, startRunning } from './batch-verbs.js';
import type { EngineContext } from './engine-context.js';
import { type LeaseEntry, type LocalTask, STOP_PRIORITY, type StopReason } from './local-task.js';
import { writeReorderedCopy } from './prefix-copy.js';
import type { PrefixPlan } from './prefix-plan.js';
import { writeCustomIdIndex } from './result-index.js';
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
      // Shards sized for the replicas alive now (more may join: they share what is left).
      const replicas = (await this.#ctx.store.listReplicas(this.#ctx.opts.leaseTtlMs)).length;
      const linesPerShard = shardSize(input.lines, this.#ctx.opts.shardLines, replicas);
      let result;
      try {
        result = await validateInput(this.#ctx, input.blobKey, batch.endpoint, this.#abort.signal, linesPerShard, input.lines);
      } catch (err) {
        if (this.#stopReason) return await this.#stopped();
        throw err;
      }
      if (this.#stopReason) return await this.#stopped();
      if (result.errors.length > 0) {
        await failValidation(this.#ctx, this.#fence, result.errors, result.total);
        return;
      }
      let grouped = null;
      try {
        grouped = result.prefixes?.worthIt() ? await this.#groupByPrefix(input.blobKey, result.prefixes, linesPerShard) : null;
      } catch (err) {
        if (this.#stopReason) return await this.#stopped();
        throw err;
      }
      if (this.#stopReason) return await this.#stopped();
      // Before in_progress (and idempotent): results?custom_id= finds a request's shard through it.
      if (result.customIds) await writeCustomIdIndex(this.#ctx.blobs, this.batchId, result.customIds.build(result.total, linesPerShard, grouped?.ranks));
      const started = await startRunning(this.#ctx, this.#fence, {
        requestCounts: { total: result.total, completed: 0, failed: 0 },
        model: result.model,
        insertShards: grouped?.shards ?? result.shards,
        ...(grouped ? { inputOrder: 'prefix' as const } : {}),
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

  /**
   * Writes the copy of the input grouped by prompt prefix (idempotent: the same plan on any
   * replica) and cuts it into shards of `linesPerShard` lines.
   */
  async #groupByPrefix(inputKey: string, plan: PrefixPlan, linesPerShard: number): Promise<{ shards: ShardPlan[]; ranks: Uint32Array }> {
    const order = plan.order();
    const started = performance.now();
    await writeReorderedCopy(this.#ctx.blobs, inputKey, groupedInputKey(this.batchId), order, { maxLineBytes: this.#ctx.opts.maxLineBytes, signal: this.#abort.signal });
    // Where each place of the copy starts, to cut it into byte ranges.
    const startOf = new Float64Array(order.ranks.length + 1);
    for (let i = 0; i < order.ranks.length; i++) startOf[order.ranks[i]!] = order.destinations[i]!;
    startOf[order.ranks.length] = order.bytes;
    const shards: ShardPlan[] = [];
    for (let first = 0; first < order.ranks.length; first += linesPerShard) {
      const end = Math.min(order.ranks.length, first + linesPerShard);
      shards.push({ shardNo: shards.length, firstLine: first + 1, requests: end - first, startByte: startOf[first]!, endByte: startOf[end]! });
    }
    this.#ctx.log.info({ batchId: this.batchId, lines: plan.lines, ms: Math.round(performance.now() - started) }, 'input grouped by prompt prefix');
    return { shards, ranks: order.ranks };
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
