import { batchNotFound, type BatchRecord, isTerminal, NotFoundError, printableId } from '../domain/index.js';
import { lookupCustomId } from '../engine/result-index.js';
import { readResultMap, type ResultMap, shardRange } from '../engine/result-map.js';
import { findResultLine } from '../jsonl/find-result-line.js';
import type { ResultKind } from '../store/blob-keys.js';
import { type ReaderDeps, resultFileGone } from './results-reader.js';

export interface LookupResult {
  line: Buffer;
  kind: ResultKind;
  /** Bytes read to answer: the index, then the shard's lines. */
  bytesRead: number;
  shardNo: number;
}

const KINDS: readonly ResultKind[] = ['output', 'error'];

/**
 * One request's result line, by custom_id: the batch's custom_id index names its shard, and only
 * that shard's lines are read (its segments while the batch runs, its range of the composed files
 * once finalized). 404 `custom_id_not_found` when the batch has no such request,
 * `result_not_ready` while its line is not written yet.
 */
export async function lookupResult(deps: ReaderDeps, first: BatchRecord, customId: string, stats: { bytesRead: number } = { bytesRead: 0 }): Promise<LookupResult> {
  let batch = first;
  if (batch.status === 'validating') throw notReady(batch, customId, 'the batch is still validating');
  const index = await lookupCustomId(deps.blobs, batch.id, customId);
  if (index === null) {
    if (batch.inProgressAt === null) throw notFound(customId, `batch ${batch.id} never ran (it is ${batch.status})`);
    throw new NotFoundError(`Batch ${batch.id} has no custom_id index (it was validated by an earlier BESH); read its results with GET /v1/batches/${batch.id}/results instead.`, {
      param: 'custom_id',
      code: 'custom_id_index_unavailable',
    });
  }
  stats.bytesRead += index.bytesRead;
  if (index.shards.length === 0) throw notFound(customId, `batch ${batch.id} has no request with it`);
  for (;;) {
    const finalized = isTerminal(batch.status) ? await readResultMap(deps.blobs, batch.id) : null;
    let done = true;
    for (const shardNo of index.shards) {
      const r = finalized ? await inFiles(deps, batch, finalized, shardNo, customId) : await inSegments(deps, batch, shardNo, customId);
      stats.bytesRead += r.bytesRead;
      if (r.found) return { ...r.found, bytesRead: stats.bytesRead, shardNo };
      if (!r.done) done = false;
    }
    if (!finalized) {
      const now = await deps.store.getBatch(batch.id);
      if (now === null) throw batchNotFound(batch.id);
      // Finalized meanwhile (segments removed, or about to be): look again in the files.
      if (isTerminal(now.status) && !isTerminal(batch.status)) {
        batch = now;
        continue;
      }
      if (!done && !isTerminal(now.status)) throw notReady(now, customId, 'its result is not written yet');
    }
    throw notFound(customId, `batch ${batch.id} (${batch.status}) has no result line for it`);
  }
}

interface ShardSearch {
  found: { line: Buffer; kind: ResultKind } | null;
  bytesRead: number;
  /** Every line the shard will ever have is in what was read. */
  done: boolean;
}

async function inSegments(deps: ReaderDeps, batch: BatchRecord, shardNo: number, customId: string): Promise<ShardSearch> {
  const shard = (await deps.store.listShards(batch.id))[shardNo];
  const segments = await deps.store.listSegments(batch.id, { shardNo });
  let bytesRead = 0;
  for (const seg of segments) {
    if (seg.bytes === 0) continue;
    try {
      const r = await findResultLine(deps.blobs.openRead(seg.blobKey, seg.bytes === null ? {} : { end: seg.bytes - 1 }), customId);
      bytesRead += r.bytesRead;
      if (r.line) return { found: { line: r.line, kind: seg.kind }, bytesRead, done: true };
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
      // Removed by finalization: the batch is finished, the caller looks in the files.
      if (seg.bytes !== null) return { found: null, bytesRead, done: false };
      // A local segment registered before its first line: nothing written yet.
    }
  }
  return { found: null, bytesRead, done: shard?.state === 'done' };
}

async function inFiles(deps: ReaderDeps, batch: BatchRecord, map: ResultMap, shardNo: number, customId: string): Promise<ShardSearch> {
  let bytesRead = 0;
  for (const kind of KINDS) {
    const [start, end] = shardRange(map, kind, shardNo);
    if (end <= start) continue;
    const fileId = kind === 'output' ? batch.outputFileId : batch.errorFileId;
    const f = fileId === null ? null : await deps.store.getFile(fileId);
    if (f === null) throw resultFileGone(batch.id, kind);
    const r = await findResultLine(deps.blobs.openRead(f.blobKey, { start, end: end - 1 }), customId);
    bytesRead += r.bytesRead;
    if (r.line) return { found: { line: r.line, kind }, bytesRead, done: true };
  }
  return { found: null, bytesRead, done: true };
}

const notFound = (customId: string, why: string): NotFoundError =>
  new NotFoundError(`No result for custom_id '${printableId(customId)}': ${why}.`, { param: 'custom_id', code: 'custom_id_not_found' });

const notReady = (batch: BatchRecord, customId: string, why: string): NotFoundError =>
  new NotFoundError(`The result for custom_id '${printableId(customId)}' of batch ${batch.id} is not ready: ${why}. Ask again later.`, {
    param: 'custom_id',
    code: 'result_not_ready',
  });
