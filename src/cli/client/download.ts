import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { CliError } from './errors.js';
import type { BeshClient } from './http-client.js';
import { byteProgress } from './progress.js';

/**
 * Streams a file's content to `dest` (or stdout for "-") with a progress bar. A file is written
 * next to its destination as `.part` and renamed at the end, so a failed download never leaves
 * a truncated file under the final name. Returns the number of bytes written.
 */
export async function downloadFile(client: BeshClient, fileId: string, dest: string): Promise<number> {
  const { size, body } = await client.openContent(fileId);
  let bytes = 0;
  if (dest === '-') {
    for await (const chunk of body) {
      bytes += (chunk as Buffer).length;
      if (!process.stdout.write(chunk as Buffer)) await once(process.stdout, 'drain');
    }
    return bytes;
  }
  const progress = await byteProgress(`Downloading ${fileId}`, size);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      progress.add(chunk.length);
      cb(null, chunk);
    },
  });
  const part = `${dest}.part`;
  try {
    await pipeline(body, counter, createWriteStream(part));
    if (size !== null && bytes !== size) throw new Error(`the server sent ${bytes} of ${size} bytes`);
    await rename(part, dest);
  } catch (err) {
    await rm(part, { force: true });
    throw new CliError(`Download of ${fileId} to ${dest} failed: ${(err as Error).message}`);
  } finally {
    progress.stop();
  }
  return bytes;
}
