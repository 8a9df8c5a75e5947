import { type BatchRecord, type BatchStatus, emptyUsage, type FileRecord, newFileId, nowSeconds, type RequestCounts } from '../domain/index.js';
import { addUsage, scanResultLines } from '../jsonl/index.js';
import { resultFileKey,type ResultKind } from '../store/blob-keys.js';
import type { BatchLease, LeaseFence, SegmentRecord } from '../store/meta-store.js';
import { beginFinalizing, failBatch, finishBatch } from './batch-verbs.js';
import type { EngineContext } from './engine-context.js';
import type { LeaseEntry, LocalTask, StopReason } from './local-task.js';

/**
 * Ends a batch whose shards are all done, under the batch lease: composes each kind's segments
 * (every shard, every epoch, in order) into the one output and error file a single node would
 * serve, and records them with the terminal status in one write:
 *   cancelling → cancelled;  a shard ended by the deadline → expired;  otherwise → completed
 *   (through finalizing). A cancel that arrives while finalizing ends it cancelled, with every result.
 * Idempotent: a replica that dies here leaves the lease to expire, and the next one starts over.
 * Afterwards the segments are removed (the files are what remains).
 */
export class BatchFinalizer implements LocalTask {
  readonly kind = 'finalize';
  readonly batchId: string;
  readonly project: string;
  readonly done: Promise<void>;
  readonly #ctx: EngineContext;
  readonly #fence: LeaseFence;
  #stopReason: StopReason | null = null;

  constructor(ctx: EngineContext, lease: BatchLease) {
    this.#ctx = ctx;
    this.batchId = lease.batch.id;
    this.project = lease.batch.project;
    this.#fence = { batchId: this.batchId, owner: ctx.replica.id, epoch: lease.epoch };
    this.done = this.#run(lease.batch);
  }

  lease(): LeaseEntry {
    return { kind: 'batch', fence: this.#fence };
  }

  /** Finalizing is short and idempotent: only losing the batch (or the lease) stops it early. */
  stop(reason: StopReason): void {
    if (reason === 'delete' || reason === 'lease_lost') this.#stopReason = reason;
  }

  async #run(batch: BatchRecord): Promise<void> {
    const { store, log } = this.#ctx;
    try {
      const shards = await store.listShards(this.batchId);
      if (shards.some((s) => s.state !== 'done')) {
        await store.releaseBatch(this.#fence);
        return;
      }
      const usage = emptyUsage();
      for (const s of shards) addUsage(usage, s.usage);
      let to: 'completed' | 'cancelled' | 'expired' =
        batch.status === 'cancelling' ? 'cancelled' : shards.some((s) => s.outcome === 'expired') ? 'expired' : 'completed';
      let from: BatchStatus = batch.status;
      if (to === 'completed' && from === 'in_progress') {
        if (await beginFinalizing(this.#ctx, this.#fence, { requestCounts: countsOf(batch, shards), usage })) {
          from = 'finalizing';
        } else {
          // Moved since the claim: only a cancel can have done that (the lease is ours).
          if ((await store.getBatch(this.batchId))?.status !== 'cancelling') {
            await store.releaseBatch(this.#fence);
            return;
          }
          [from, to] = ['cancelling', 'cancelled'];
        }
      }
      const segments = await store.listSegments(this.batchId);
      const files: FileRecord[] = [];
      const output = await this.#compose(batch, 'output', segments, files);
      const error = await this.#compose(batch, 'error', segments, files);
      if (this.#stopReason) return;
      const fields = {
        outputFileId: output.fileId,
        errorFileId: error.fileId,
        insertFiles: files,
        requestCounts: { total: batch.requestCounts.total, completed: output.lines, failed: error.lines },
        usage,
      };
      const finished = (await finishBatch(this.#ctx, this.#fence, [from], to, fields)) ?? (await this.#cancelledMeanwhile(fields));
      if (finished) await this.#dropSegments(segments);
    } catch (err) {
      if (this.#stopReason) return;
      log.error({ err, batchId: this.batchId }, 'batch finalization failed');
      await failBatch(this.#ctx, this.batchId, err, this.#fence).catch((e: unknown) => log.error({ err: e, batchId: this.batchId }, 'could not mark batch failed'));
    }
  }

  /** One kind's segments → its file (none when there is no line). */
  async #compose(batch: BatchRecord, kind: ResultKind, segments: readonly SegmentRecord[], files: FileRecord[]): Promise<{ fileId: string | null; lines: number }> {
    const { blobs } = this.#ctx;
    const parts: Array<{ key: string; bytes: number }> = [];
    let lines = 0;
    for (const seg of segments) {
      if (seg.kind !== kind) continue;
      const sized = seg.bytes === null || seg.lines === null ? await this.#measure(seg) : { lines: seg.lines, bytes: seg.bytes };
      if (sized.bytes === 0) continue;
      parts.push({ key: seg.blobKey, bytes: sized.bytes });
      lines += sized.lines;
    }
    if (lines === 0) return { fileId: null, lines: 0 };
    const key = resultFileKey(this.batchId, kind);
    const bytes = await blobs.compose(key, parts);
    const now = nowSeconds();
    const ttl = batch.outputExpiresAfter;
    const file: FileRecord = {
      id: newFileId(),
      filename: `${this.batchId}_${kind}.jsonl`,
      purpose: 'batch_output',
      bytes,
      createdAt: now,
      expiresAt: ttl === null ? null : now + ttl,
      blobKey: key,
      batchId: this.batchId,
      project: this.project,
      lines,
    };
    files.push(file);
    return { fileId: file.id, lines };
  }

  /** A segment whose size was never recorded (a lease that ended in a crash and was not resumed). */
  async #measure(seg: SegmentRecord): Promise<{ lines: number; bytes: number }> {
    try {
      const scan = await scanResultLines(this.#ctx.blobs.openRead(seg.blobKey));
      return { lines: scan.lines, bytes: scan.completeBytes };
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return { lines: 0, bytes: 0 };
      throw err;
    }
  }

  /** Cancelled while finalizing: every line is done, so it ends cancelled with the full results. */
  async #cancelledMeanwhile(fields: Parameters<typeof finishBatch>[4]): Promise<BatchRecord | null> {
    const current = await this.#ctx.store.getBatch(this.batchId);
    if (current?.status === 'cancelling') return finishBatch(this.#ctx, this.#fence, ['cancelling'], 'cancelled', fields);
    await this.#ctx.store.releaseBatch(this.#fence);
    return null;
  }

  async #dropSegments(segments: readonly SegmentRecord[]): Promise<void> {
    const { blobs, store, log } = this.#ctx;
    try {
      for (const seg of segments) await blobs.delete(seg.blobKey);
      await store.deleteSegments(this.batchId);
    } catch (err) {
      log.warn({ err, batchId: this.batchId }, 'result segments could not all be removed after finalizing');
    }
  }
}

function countsOf(batch: BatchRecord, shards: ReadonlyArray<{ completed: number; failed: number }>): RequestCounts {
  let completed = 0;
  let failed = 0;
  for (const s of shards) {
    completed += s.completed;
    failed += s.failed;
  }
  return { total: batch.requestCounts.total, completed, failed };
}
