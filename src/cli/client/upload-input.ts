import { basename } from 'node:path';

import { ApiError, UsageError } from './errors.js';
import { formatBytes } from './format.js';
import type { BeshClient } from './http-client.js';
import { byteProgress } from './progress.js';
import type { FileObject } from './types.js';
import { DEFAULT_PARALLEL_PARTS, DEFAULT_PART_SIZE, DEFAULT_PARTS_ABOVE, fetchUploadLimits, parseSize, uploadInParts } from './upload-parts.js';

export interface InputUploadOptions {
  /** `--parts-above`: a size such as 256M (default 256 MiB). */
  partsAbove?: string | undefined;
  /** `--part-size`: a size such as 64M (default 64 MiB). */
  partSize?: string | undefined;
}

/**
 * Uploads a request file for `besh submit`, with a progress bar: a direct upload
 * (`POST /v1/files`), or the Uploads API in parts when the file is larger than `--parts-above` or
 * than the server takes in one request (it says so at `GET /v1/uploads/limits`). A direct upload
 * the server finds too large once decompressed (a .jsonl.gz) is sent again in parts.
 */
export async function uploadInputFile(client: BeshClient, file: string, size: number, opts: InputUploadOptions): Promise<FileObject> {
  const partsAbove = parseSize(opts.partsAbove ?? String(DEFAULT_PARTS_ABOVE), '--parts-above');
  const partSize = parseSize(opts.partSize ?? String(DEFAULT_PART_SIZE), '--part-size');
  const limits = await fetchUploadLimits(client.conn);
  if (limits !== null && partSize > limits.max_part_bytes) {
    throw new UsageError(`Invalid --part-size '${opts.partSize}': the server takes parts of at most ${formatBytes(limits.max_part_bytes)}.`);
  }
  const name = basename(file);

  const inParts = async (why: string): Promise<FileObject> => {
    const progress = await byteProgress(`Uploading ${name} in parts`, size);
    let done;
    try {
      done = await uploadInParts(client.conn, file, size, { partSize, parallel: DEFAULT_PARALLEL_PARTS, onBytes: (n) => progress.add(n) });
    } finally {
      progress.stop();
    }
    process.stderr.write(`Sent ${name} in ${done.parts} part${done.parts === 1 ? '' : 's'} (${why}) through ${done.uploadId}\n`);
    return done.file;
  };

  if (size > partsAbove) return inParts(`larger than --parts-above ${formatBytes(partsAbove)}`);
  if (limits !== null && size > limits.max_file_bytes) return inParts(`larger than the ${formatBytes(limits.max_file_bytes)} the server takes in one request`);
  const progress = await byteProgress(`Uploading ${name}`, size);
  let direct: FileObject;
  try {
    direct = await client.uploadFile(file, (n) => progress.add(n));
  } catch (err) {
    progress.stop();
    if (limits !== null && err instanceof ApiError && err.code === 'file_too_large') return inParts('too large for one request once decompressed');
    throw err;
  }
  progress.stop();
  return direct;
}
