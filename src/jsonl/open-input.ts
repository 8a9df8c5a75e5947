import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

import { JsonlError } from './errors.js';

export interface DecodeInputOptions {
  /** Gzip input whose decompressed size passes this fails with `decompressed_too_large`. */
  maxDecompressedBytes: number;
}

/**
 * Returns the bytes of an upload, gunzipped when they start with the gzip magic (1f 8b) —
 * only the bytes decide, never the file name. Multi-member gzip is supported. Gzip input fails
 * with `JsonlError('decompressed_too_large')` as soon as the output passes the cap (the streams
 * are destroyed, nothing more is inflated), and with `JsonlError('invalid_gzip')` when it is
 * truncated or corrupt, or followed by anything but zero padding. Other input passes through
 * unchanged. Errors of `source` pass through.
 */
export function decodeInput(source: Readable, opts: DecodeInputOptions): Readable {
  const out = Readable.from(decodeChunks(source, opts.maxDecompressedBytes), { objectMode: false });
  // When the consumer gives up (e.g. a pipeline fails), stop the source at once: the generator
  // cannot run its own cleanup while it waits for the source's next chunk.
  const destroyGenerator = out._destroy.bind(out);
  out._destroy = (err, callback) => {
    if (!source.destroyed && !source.readableEnded) source.destroy();
    destroyGenerator(err, callback);
  };
  return out;
}

async function* decodeChunks(source: Readable, maxDecompressedBytes: number): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let done = false;
  try {
    const first: Buffer[] = [];
    let firstBytes = 0;
    while (firstBytes < 2) {
      const r = await it.next();
      if (r.done === true) break;
      first.push(r.value);
      firstBytes += r.value.length;
    }
    const head = first.length === 1 ? first[0]! : Buffer.concat(first);
    if (!(head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b)) {
      if (head.length > 0) yield head;
      for (;;) {
        const r = await it.next();
        if (r.done === true) break;
        yield r.value;
      }
      done = true;
      return;
    }

    const failed: { source: Error | null } = { source: null };
    // Compressed bytes pulled from the source, and the offset just past the last non-zero one.
    const seen = { bytes: 0, nonZeroEnd: 0, ended: false };
    const note = (c: Buffer): void => {
      for (let i = c.length - 1; i >= 0; i--) {
        if (c[i] !== 0) {
          seen.nonZeroEnd = seen.bytes + i + 1;
          break;
        }
      }
      seen.bytes += c.length;
    };
    async function* compressed(): AsyncGenerator<Buffer> {
      note(head);
      yield head;
      for (;;) {
        let r: IteratorResult<Buffer>;
        try {
          r = await it.next();
        } catch (err) {
          failed.source = err instanceof Error ? err : new Error(String(err));
          throw failed.source;
        }
        if (r.done === true) {
          seen.ended = true;
          return;
        }
        note(r.value);
        yield r.value;
      }
    }
    const gunzip = createGunzip();
    // Errors reach us through `gunzip`, which pipeline() destroys with them.
    pipeline(Readable.from(compressed(), { objectMode: false }), gunzip, () => {});
    let total = 0;
    try {
      for await (const chunk of gunzip as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxDecompressedBytes) {
          throw new JsonlError(
            'decompressed_too_large',
            null,
            `The file is larger than ${maxDecompressedBytes} bytes once decompressed.`,
          );
        }
        yield chunk;
      }
      // Node's gunzip ends quietly at a 0x00 byte after a complete member and ignores the rest
      // (to allow zero padding). Anything but zeros there would be data silently dropped.
      while (!seen.ended) {
        const r = await it.next();
        if (r.done === true) break;
        note(r.value);
        if (seen.nonZeroEnd > gunzip.bytesWritten) break;
      }
      if (seen.nonZeroEnd > gunzip.bytesWritten) {
        throw new JsonlError('invalid_gzip', null, 'The file looks gzip-compressed but has data after the end of the compressed stream.');
      }
    } catch (err) {
      if (err instanceof JsonlError) throw err;
      if (failed.source !== null) throw failed.source;
      if (isZlibError(err)) {
        throw new JsonlError('invalid_gzip', null, `The file looks gzip-compressed but cannot be decompressed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      throw err;
    } finally {
      gunzip.destroy();
    }
    done = true;
  } finally {
    if (!done && !source.destroyed) source.destroy();
  }
}

function isZlibError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && code.startsWith('Z_');
}
