import { type BatchRecord, type BatchStatus, emptyUsage, type FileRecord, newFileId, nowSeconds, type RequestCounts } from '../domain/index.js';
import { addUsage, scanResultLines } from '../jsonl/index.js';
import { groupedInputKey, resultFileKey, type ResultKind, segmentsPrefix } from '../store/blob-keys.js';
import type { BatchLease, LeaseFence, SegmentRecord } from '../store/meta-store.js';
import { beginFinalizing, failBatch, finishBatch } from './batch-verbs.js';
import type { EngineContext } from './engine-context.js';
import type { LeaseEntry, LocalTask, StopReason } from './local-task.js';
import { ResultMapBuilder, writeResultMap } from './result-map.js';

/** Attempts at finalizing a batch on this replica before a persistent failure fails it. */
const MAX_FINALIZE_ATTEMPTS = 3;
const finalizeFailures = new Map<string, number>();

/**
 * Ends a batch whose shards are all done, under the batch lease: composes each kind's segments
 * (every shard, every epoch, in order) into the one output and error file a single node would
 * serve, and records them with the terminal status in one write:
 *   a shard ended by the deadline → expired (even when cancelling);  cancelling → cancelled;
 *   otherwise → completed
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
      // The deadline wins over a cancel (it aborts at once, and the lines say batch_expired).
      let to: 'completed' | 'cancelled' | 'expired' =
        shards.some((s) => s.outcome === 'expired') ? 'expired' : batch.status === 'cancelling' ? 'cancelled' : 'completed';
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
      const map = new ResultMapBuilder();
      const output = await this.#compose(batch, 'output', segments, files, map);
      const error = await this.#compose(batch, 'error', segments, files, map);
      if (this.#stopReason) return await this.#lostWhileComposing(files);
      // Before the terminal write: results cursors read the files through it once the segments are gone.
      await writeResultMap(this.#ctx.blobs, this.batchId, map.build(shards.length));
      const fields = {
        outputFileId: output.fileId,
        errorFileId: error.fileId,
        insertFiles: files,
        requestCounts: { total: batch.requestCounts.total, completed: output.lines, failed: error.lines },
        usage,
      };
      const finished = (await finishBatch(this.#ctx, this.#fence, [from], to, fields)) ?? (await this.#cancelledMeanwhile(fields));
      finalizeFailures.delete(this.batchId);
      // A file composed by reference consists of its segments: those outlive the run.
      const referenced = new Set(this.#ctx.blobs.composeByReference ? [...output.parts, ...error.parts] : []);
      if (finished) await this.#dropSegments(segments, referenced);
      else await this.#lostWhileComposing(files);
    } catch (err) {
      if (this.#stopReason) return;
      // The store or the blobs failing for a moment must not fail a batch whose results are all
      // written: give the lease back and let a later round (any replica) finalize again.
      const failures = (finalizeFailures.get(this.batchId) ?? 0) + 1;
      finalizeFailures.set(this.batchId, failures);
      if (failures < MAX_FINALIZE_ATTEMPTS) {
        log.warn({ err, batchId: this.batchId, attempt: failures }, 'batch finalization failed; it will be tried again');
        await store.releaseBatch(this.#fence).catch(() => undefined);
        return;
      }
      finalizeFailures.delete(this.batchId);
      log.error({ err, batchId: this.batchId }, 'batch finalization failed');
      await failBatch(this.#ctx, this.batchId, err, this.#fence).catch((e: unknown) => log.error({ err: e, batchId: this.batchId }, 'could not mark batch failed'));
    }
  }

  /** One kind's segments → its file (none when there is no line), and the segment keys it is made of. */
  async #compose(
    batch: BatchRecord,
    kind: ResultKind,
    segments: readonly SegmentRecord[],
    files: FileRecord[],
    map: ResultMapBuilder,
  ): Promise<{ fileId: string | null; lines: number; parts: string[] }> {
    const { blobs } = this.#ctx;
    const parts: Array<{ key: string; bytes: number }> = [];
    let lines = 0;
    for (const seg of segments) {
      if (seg.kind !== kind) continue;
      const sized = seg.bytes === null || seg.lines === null ? await this.#measure(seg) : { lines: seg.lines, bytes: seg.bytes };
      if (sized.bytes === 0) continue;
      parts.push({ key: seg.blobKey, bytes: sized.bytes });
      map.add(kind, seg.shardNo, sized.bytes);
      lines += sized.lines;
    }
    if (lines === 0) return { fileId: null, lines: 0, parts: [] };
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
    return { fileId: file.id, lines, parts: parts.map((p) => p.key) };
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

  /**
   * The batch was deleted while its files were composed: they are nobody's, remove them (a
   * takeover is different: the new holder composes the same bytes to the same keys, keep them).
   */
  async #lostWhileComposing(files: readonly FileRecord[]): Promise<void> {
    if (this.#stopReason !== 'delete' && (await this.#ctx.store.getBatch(this.batchId)) !== null) return;
    for (const f of files) await this.#ctx.blobs.delete(f.blobKey).catch(() => undefined);
  }

  /**
   * What only the run needed: the segments (the files hold their lines now, or refer to them:
   * those are kept) and the prefix-grouped copy of the input.
   */
  async #dropSegments(segments: readonly SegmentRecord[], parts: ReadonlySet<string>): Promise<void> {
    const { blobs, store, log } = this.#ctx;
    try {
      // One listing and batched deletes (S3), not a request per segment. It also removes what no
      // row names (a segment uploaded by a holder that died before registering it).
      if (segments.length > 0) await blobs.deletePrefix(segmentsPrefix(this.batchId), parts);
      await store.deleteSegments(this.batchId);
      await blobs.delete(groupedInputKey(this.batchId));
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
