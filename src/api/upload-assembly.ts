import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { InvalidRequestError } from '../domain/index.js';
import { decodeInput, JsonlError, UploadChecker } from '../jsonl/index.js';
import type { BlobStore } from '../store/blob-store.js';
import type { UploadPartRecord } from '../store/upload-store.js';
import type { StorageFloor } from './disk-space.js';
import { uploadError } from './file-upload.js';
import { uploadTooLarge } from './upload-params.js';

export interface AssemblyOptions {
  maxUploadBytes: number;
  maxLineBytes: number;
  /** Lower-case hex MD5 the parts' bytes must have, or null. */
  md5: string | null;
  floor: StorageFloor | null;
  /** Aborts the assembly (the claim was lost); the signal's reason is thrown. */
  signal: AbortSignal;
}

export interface Assembled {
  /** Bytes of the stored file (after gzip decoding). */
  bytes: number;
  /** Non-blank lines. */
  lines: number;
}

/**
 * Makes the File of a completed upload: the parts' blobs, in the given order, streamed through the
 * direct upload's pipeline — gzip decoded (the bytes decide, not the name), every line checked by
 * the same checker with the same errors — into a new blob at `key`, while the MD5 of the bytes as
 * sent is computed (when one is to be checked). The blob lands only when everything passed (lines, MD5); on any failure it is
 * removed and the parts stay as they were. Memory stays bounded by the streams' buffers.
 *
 * (`BlobStore.compose` is not used: it cannot check while it composes.)
 */
export async function assembleParts(blobs: BlobStore, parts: readonly UploadPartRecord[], key: string, opts: AssemblyOptions): Promise<Assembled> {
  // Hashed only when asked: MD5 costs about a quarter of the checking time.
  const md5 = opts.md5 === null ? null : createHash('md5');
  async function* sent(): AsyncGenerator<Buffer> {
    for (const p of parts) {
      let got = 0;
      for await (const chunk of blobs.openRead(p.blobKey) as AsyncIterable<Buffer>) {
        got += chunk.length;
        md5?.update(chunk);
        yield chunk;
      }
      if (got !== p.bytes) throw new Error(`Part ${p.id} of the upload holds ${got} bytes in the blob store, not the ${p.bytes} recorded`);
    }
  }
  const upload = blobs.createUpload(key);
  const checker = new UploadChecker({ maxLineBytes: opts.maxLineBytes, requireJson: true });
  const decoded = decodeInput(Readable.from(sent(), { objectMode: false }), { maxDecompressedBytes: opts.maxUploadBytes });
  try {
    try {
      if (opts.floor) await pipeline(decoded, checker, opts.floor.guard(), upload.stream, { signal: opts.signal });
      else await pipeline(decoded, checker, upload.stream, { signal: opts.signal });
    } catch (err) {
      if (opts.signal.aborted) throw opts.signal.reason;
      if (err instanceof JsonlError) {
        throw err.code === 'decompressed_too_large' ? uploadTooLarge(opts.maxUploadBytes) : uploadError(err, { maxFileBytes: opts.maxUploadBytes, maxLineBytes: opts.maxLineBytes });
      }
      throw err;
    }
    if (md5 !== null) {
      const actual = md5.digest('hex');
      if (actual !== opts.md5) {
        throw new InvalidRequestError(`The parts' MD5 is ${actual}, not the ${opts.md5} given: a part is missing, repeated, out of order or corrupt. Nothing was created; the upload is still pending.`, {
          param: 'md5',
          code: 'md5_mismatch',
        });
      }
    }
    if (opts.signal.aborted) throw opts.signal.reason;
    await upload.commit();
  } catch (err) {
    await upload.abort();
    throw err;
  }
  return { bytes: checker.bytes, lines: checker.lines };
}
