import { type ResultKind, segmentKey } from '../store/blob-keys.js';
import type { SegmentWriter } from '../store/blob-store.js';
import type { ShardFence } from '../store/meta-store.js';
import type { EngineContext } from './engine-context.js';

/** The shard's lease was taken over: its holder must write nothing more. */
export class LeaseLostError extends Error {
  constructor(fence: ShardFence) {
    super(`lease of shard ${fence.shardNo} of ${fence.batchId} (epoch ${fence.epoch}) was taken over`);
    this.name = 'LeaseLostError';
  }
}

/** The blob store could not write a result (disk full, an I/O error, S3 refusing a PUT): a fault no retry of the shard fixes. */
export class ResultWriteError extends Error {
  constructor(cause: unknown) {
    super(`results could not be written: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'ResultWriteError';
  }
}

/** Runs a blob-store call; its failure becomes a ResultWriteError (store calls keep their own errors). */
function writing<T>(fn: () => T): T {
  try {
    const r = fn();
    if (r instanceof Promise) return r.catch((err: unknown) => Promise.reject(new ResultWriteError(err))) as T;
    return r;
  } catch (err) {
    throw new ResultWriteError(err);
  }
}

const KINDS: readonly ResultKind[] = ['output', 'error'];

/**
 * The result segments one shard lease writes, output and error, registered in the store under the
 * lease (every registration is fenced by its epoch: a replica that lost the lease registers
 * nothing more, so nothing it writes late ever counts).
 *
 * Where appends are durable at once (local disk), each kind has one segment for the whole lease,
 * registered before its first line; `written()` resolves when a line is in the file. Elsewhere
 * (S3), lines wait in memory and the segment is sealed — uploaded, then registered — every
 * segmentFlushMs or segmentMaxBytes, while new lines go to the next segment; a crash loses at
 * most that window, which is sent again (never duplicated: the lost lines were never registered).
 */
export class ShardResults {
  readonly #ctx: EngineContext;
  readonly #fence: ShardFence;
  readonly #current = new Map<ResultKind, { writer: SegmentWriter; seq: number; timer: NodeJS.Timeout | null }>();
  readonly #nextSeq = new Map<ResultKind, number>();
  readonly #sealing = new Map<ResultKind, Promise<void>>();
  #failure: Error | null = null;
  #closed = false;

  private constructor(ctx: EngineContext, fence: ShardFence) {
    this.#ctx = ctx;
    this.#fence = fence;
  }

  static async open(ctx: EngineContext, fence: ShardFence): Promise<ShardResults> {
    const r = new ShardResults(ctx, fence);
    if (ctx.blobs.durableAppend) {
      for (const kind of KINDS) await r.#start(kind);
    }
    return r;
  }

  /** Buffers one result line; throws the first failure of an earlier seal. */
  append(kind: ResultKind, line: string): void {
    if (this.#failure !== null) throw this.#failure;
    if (this.#closed) throw new Error('ShardResults is closed');
    let cur = this.#current.get(kind);
    if (cur === undefined) cur = this.#startSync(kind);
    const writer = cur.writer;
    writing(() => writer.append(line));
    if (!this.#ctx.blobs.durableAppend) {
      if (cur.writer.bytes >= this.#ctx.opts.segmentMaxBytes) this.#rotate(kind);
      else cur.timer ??= unrefTimer(() => this.#rotate(kind), this.#ctx.opts.segmentFlushMs);
    }
  }

  /** Resolves when the lines of `kind` appended so far are as durable as the store makes appends. */
  written(kind: ResultKind): Promise<void> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    const writer = this.#current.get(kind)?.writer;
    return writer ? writing(() => writer.written()) : Promise.resolve();
  }

  /** Makes every line durable and registered. Throws LeaseLostError when the lease was lost. */
  async seal(): Promise<void> {
    this.#closed = true;
    for (const kind of KINDS) this.#rotate(kind);
    await Promise.all(KINDS.map((k) => this.#sealing.get(k) ?? Promise.resolve()));
    if (this.#failure !== null) throw this.#failure;
  }

  /** Drops what is not durable yet (the lease is gone, or the batch is). */
  async discard(): Promise<void> {
    this.#closed = true;
    for (const [kind, cur] of this.#current) {
      if (cur.timer) clearTimeout(cur.timer);
      this.#current.delete(kind);
      // A durable segment is already registered: its lines stay. Only buffered ones are dropped.
      if (this.#ctx.blobs.durableAppend) await cur.writer.seal().catch(() => undefined);
      else await cur.writer.discard().catch(() => undefined);
    }
    await Promise.all(KINDS.map((k) => this.#sealing.get(k)?.catch(() => undefined) ?? Promise.resolve()));
  }

  /** Local disk: a registered segment for the whole lease. */
  async #start(kind: ResultKind): Promise<void> {
    const seq = this.#takeSeq(kind);
    const blobKey = segmentKey(this.#fence.batchId, kind, this.#fence.shardNo, this.#fence.epoch, seq);
    if (!(await this.#ctx.store.addSegment(this.#fence, { kind, seq, blobKey, lines: null, bytes: null }))) throw new LeaseLostError(this.#fence);
    this.#current.set(kind, { writer: this.#ctx.blobs.openSegment(blobKey), seq, timer: null });
  }

  /** S3: a segment in memory, registered when sealed. */
  #startSync(kind: ResultKind): { writer: SegmentWriter; seq: number; timer: NodeJS.Timeout | null } {
    const seq = this.#takeSeq(kind);
    const cur = { writer: this.#ctx.blobs.openSegment(segmentKey(this.#fence.batchId, kind, this.#fence.shardNo, this.#fence.epoch, seq)), seq, timer: null };
    this.#current.set(kind, cur);
    return cur;
  }

  #takeSeq(kind: ResultKind): number {
    const seq = this.#nextSeq.get(kind) ?? 0;
    this.#nextSeq.set(kind, seq + 1);
    return seq;
  }

  /** Seals the current segment of `kind` after the ones before it; new lines start the next one. */
  #rotate(kind: ResultKind): void {
    const cur = this.#current.get(kind);
    if (cur === undefined) return;
    this.#current.delete(kind);
    if (cur.timer) clearTimeout(cur.timer);
    const previous = this.#sealing.get(kind) ?? Promise.resolve();
    const next = previous.then(() => this.#sealOne(kind, cur.writer, cur.seq));
    this.#sealing.set(
      kind,
      next.catch((err: unknown) => {
        this.#failure ??= err instanceof Error ? err : new Error(String(err));
      }),
    );
  }

  async #sealOne(kind: ResultKind, writer: SegmentWriter, seq: number): Promise<void> {
    if (this.#failure !== null) {
      await writer.discard();
      return;
    }
    const { lines, bytes } = await writing(() => writer.seal());
    const { store, blobs } = this.#ctx;
    if (blobs.durableAppend) {
      if (!(await store.sealSegment(this.#fence, writer.key, lines, bytes))) throw new LeaseLostError(this.#fence);
      return;
    }
    if (lines === 0) return;
    if (!(await store.addSegment(this.#fence, { kind, seq, blobKey: writer.key, lines, bytes }))) {
      // Uploaded after the lease was taken over: remove it, it never counts.
      await blobs.delete(writer.key).catch(() => undefined);
      throw new LeaseLostError(this.#fence);
    }
  }
}

function unrefTimer(fn: () => void, ms: number): NodeJS.Timeout {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}
