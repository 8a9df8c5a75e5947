/**
 * Every blob key BESH writes, in one place (nothing else spells a key). Keys are relative,
 * `/`-separated and safe on any file system and in S3.
 *
 *   files/<file id>.jsonl                               an uploaded input file
 *   batches/<batch id>/segments/<kind>-<shard>-<epoch>-<seq>.jsonl
 *                                                       result lines of one shard, written by one
 *                                                       lease holder (epoch), in order (seq)
 *   batches/<batch id>/output.jsonl | errors.jsonl      the composed result files of a finished batch (on S3,
 *                                                       manifests of their segments, which then stay)
 *   batches/<batch id>/custom-ids.idx                   hash(custom_id) → shard, written by validation (docs/results.md)
 *   batches/<batch id>/results-map.json                 each shard's byte range in the composed files, written at finalize
 *   uploads/<upload id>/<part id>                       a part of an upload (Uploads API) until it completes
 */
export type ResultKind = 'output' | 'error';

export const inputFileKey = (fileId: string): string => `files/${fileId}.jsonl`;

export const batchPrefix = (batchId: string): string => `batches/${batchId}/`;

/** Validation's copy of a batch's input with its lines grouped by prompt prefix (engine/prefix-plan.ts). */
export const groupedInputKey = (batchId: string): string => `${batchPrefix(batchId)}input.grouped.jsonl`;

export const resultFileKey = (batchId: string, kind: ResultKind): string =>
  `${batchPrefix(batchId)}${kind === 'output' ? 'output' : 'errors'}.jsonl`;

/** The custom_id index of a validated batch (engine/result-index.ts). */
export const customIdIndexKey = (batchId: string): string => `${batchPrefix(batchId)}custom-ids.idx`;

/** Where each shard's lines lie in the composed output/error files (engine/result-map.ts). */
export const resultMapKey = (batchId: string): string => `${batchPrefix(batchId)}results-map.json`;

export const segmentsPrefix = (batchId: string): string => `${batchPrefix(batchId)}segments/`;

/** Zero-padded so that a listing in key order is the order of shards, epochs and sequence numbers. */
export const segmentKey = (batchId: string, kind: ResultKind, shardNo: number, epoch: number, seq: number): string =>
  `${segmentsPrefix(batchId)}${kind}-${pad(shardNo, 6)}-${pad(epoch, 6)}-${pad(seq, 6)}.jsonl`;

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** One part of an upload sent through the Uploads API (removed once the upload completes, is cancelled or expires). */
export const uploadPartKey = (uploadId: string, partId: string): string => `uploads/${uploadId}/${partId}`;

export const uploadPrefix = (uploadId: string): string => `uploads/${uploadId}/`;
