import type { BlobStore } from '../store/blob-store.js';

/** Writes `data` at `key` in one upload: the blob appears whole at commit (never half-written), replacing any earlier one. */
export async function putBlob(blobs: BlobStore, key: string, data: Buffer): Promise<void> {
  const up = blobs.createUpload(key);
  try {
    up.stream.end(data);
    await up.commit();
  } catch (err) {
    await up.abort();
    throw err;
  }
}

/** Bytes [start, end) of a blob (fewer when it is shorter). A missing blob rejects with code ENOENT. */
export async function readRange(blobs: BlobStore, key: string, start: number, end: number): Promise<Buffer> {
  if (end <= start) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of blobs.openRead(key, { start, end: end - 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The whole blob, or null when there is none. */
export async function readWhole(blobs: BlobStore, key: string): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of blobs.openRead(key)) chunks.push(chunk as Buffer);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null;
    throw err;
  }
  return Buffer.concat(chunks);
}
