import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { FastifyRequest } from 'fastify';

import { BeshError, InvalidRequestError } from '../domain/index.js';
import type { BlobStore, BlobUpload } from '../store/blob-store.js';
import type { StorageFloor } from './disk-space.js';
import { discardRestOfBody, multipartClientError } from './file-upload.js';
import { MAX_PART_BYTES, partTooLarge } from './upload-params.js';

export interface PartLimits {
  /** Bytes the upload may still take (its declared size less the parts already recorded). */
  remaining: number;
  /** Thrown as soon as the part passes `remaining`. */
  pastDeclared: () => Error;
  floor: StorageFloor | null;
}

/**
 * Streams the `data` field of a multipart body (`POST /v1/uploads/{id}/parts`) into the blob at
 * `key`: at most 64 MiB, never more than the upload may still take, never held in memory. The
 * bytes are not checked here (a part may end mid-line); completing the upload checks the whole
 * file. Returns the part's size once the blob is in place; on any error nothing is left behind.
 */
export async function receivePart(req: FastifyRequest, blobs: BlobStore, key: string, limits: PartLimits): Promise<number> {
  if (!req.isMultipart()) {
    throw new InvalidRequestError("Expected a multipart/form-data body with the part's bytes in 'data'.", { code: 'invalid_content_type' });
  }
  let upload: BlobUpload | null = null;
  let bytes = 0;
  try {
    if (limits.floor) {
      const announced = Number(req.headers['content-length'] ?? 0);
      await limits.floor.assertRoom(Number.isFinite(announced) && announced > 0 ? announced : 0);
    }
    const parts = req.parts({ limits: { fileSize: MAX_PART_BYTES, files: 1, fields: 10, fieldSize: 4096, parts: 20, headerPairs: 100 } });
    for await (const part of parts) {
      if (part.type === 'field') continue;
      if (part.fieldname !== 'data' || upload) {
        part.file.resume();
        throw new InvalidRequestError(
          part.fieldname === 'data' ? "Send one 'data' field per part." : `Unexpected file field '${safe(part.fieldname)}'; the part's bytes go in 'data'.`,
          { param: 'data' },
        );
      }
      upload = blobs.createUpload(key);
      const counter = new Transform({
        transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
          bytes += chunk.length;
          if (bytes > limits.remaining) done(limits.pastDeclared());
          else done(null, chunk);
        },
      });
      // Past 64 MiB busboy stops passing data but only ends the part with the body: fail now.
      part.file.once('limit', () => counter.destroy(partTooLarge()));
      try {
        if (limits.floor) await pipeline(part.file, counter, limits.floor.guard(), upload.stream);
        else await pipeline(part.file, counter, upload.stream);
      } catch (err) {
        if (part.file.truncated) throw partTooLarge();
        if (err instanceof BeshError) part.file.resume(); // read the rest so the client gets our answer, not a reset
        throw err;
      }
      if (part.file.truncated) throw partTooLarge();
    }
    if (!upload) throw new InvalidRequestError("Missing required parameter: 'data'.", { param: 'data', code: 'missing_required_parameter' });
    if (bytes === 0) throw new InvalidRequestError("The part is empty: send 1 byte to 64 MiB of the file in 'data'.", { param: 'data', code: 'invalid_value' });
    await upload.commit();
    return bytes;
  } catch (err) {
    discardRestOfBody(req);
    await upload?.abort();
    if ((err as { code?: unknown }).code === 'FST_REQ_FILE_TOO_LARGE') throw partTooLarge();
    throw multipartClientError(err) ?? err;
  }
}

const safe = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
