import { pipeline } from 'node:stream/promises';

import type { BlobPart, BlobStore } from './blob-store.js';

/**
 * `BlobStore.compose` by copy, for any store: streams the first `bytes` bytes of each part, in
 * order, into one `createUpload(key)`, so memory stays bounded by the streams' buffers. A part
 * shorter than its `bytes` fails the compose (and nothing lands at `key`): the caller's count was wrong.
 */
export async function composeParts(store: BlobStore, key: string, parts: readonly BlobPart[]): Promise<number> {
  for (const p of parts) {
    if (!Number.isSafeInteger(p.bytes) || p.bytes < 0) throw new Error(`Invalid byte count ${p.bytes} for part ${p.key}`);
  }
  const upload = store.createUpload(key);
  let total = 0;
  async function* concatenated(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      if (part.bytes === 0) continue;
      let got = 0;
      for await (const chunk of store.openRead(part.key, { start: 0, end: part.bytes - 1 })) {
        got += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (got !== part.bytes) throw new Error(`Part ${part.key} has ${got} bytes, fewer than the ${part.bytes} to compose`);
      total += got;
    }
  }
  try {
    await pipeline(concatenated, upload.stream);
    await upload.commit();
  } catch (err) {
    await upload.abort();
    throw err;
  }
  return total;
}
