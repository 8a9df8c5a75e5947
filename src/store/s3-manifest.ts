import type { BlobPart } from './blob-store.js';

/**
 * A composed blob on S3 is a manifest: a small JSON object listing its parts (keys of the same
 * store and how many of their bytes belong to it), marked by this user-metadata entry
 * (`x-amz-meta-besh-composed`), whose value is the composed size in bytes. S3 cannot append or
 * concatenate objects it did not receive as one upload (UploadPartCopy needs 5 MiB parts, and
 * segments are smaller), so composing by copy meant downloading every segment and uploading it
 * again at finalize: seconds per GB, all of it after the last result.
 */
export const MANIFEST_META = 'besh-composed';

const FORMAT = 'besh-composed/1';

export interface Manifest {
  bytes: number;
  /** Only parts with bytes > 0, in order. */
  parts: BlobPart[];
}

/** `parts`: each with bytes > 0. */
export function encodeManifest(parts: readonly BlobPart[]): { body: Buffer; bytes: number } {
  const bytes = parts.reduce((sum, p) => sum + p.bytes, 0);
  return { body: Buffer.from(JSON.stringify({ format: FORMAT, bytes, parts: parts.map((p) => ({ key: p.key, bytes: p.bytes })) })), bytes };
}

export function decodeManifest(body: Buffer, key: string): Manifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    doc = null;
  }
  const m = doc as { format?: unknown; bytes?: unknown; parts?: unknown } | null;
  const parts = Array.isArray(m?.parts) ? (m.parts as Array<{ key?: unknown; bytes?: unknown }>) : null;
  const valid =
    m?.format === FORMAT &&
    Number.isSafeInteger(m.bytes) &&
    parts !== null &&
    parts.every((p) => typeof p.key === 'string' && Number.isSafeInteger(p.bytes) && (p.bytes as number) > 0) &&
    parts.reduce((sum, p) => sum + (p.bytes as number), 0) === m.bytes;
  if (!valid) throw new Error(`Blob ${key} is marked composed but its manifest is not valid`);
  return { bytes: m.bytes as number, parts: parts as BlobPart[] };
}

/** The pieces of each part that make up the inclusive byte range [start, end] of the composed blob. */
export function* partRanges(m: Manifest, start: number, end: number): Generator<{ key: string; start: number; end: number }> {
  const last = Math.min(end, m.bytes - 1);
  let offset = 0;
  for (const p of m.parts) {
    const from = Math.max(start, offset);
    const to = Math.min(last, offset + p.bytes - 1);
    if (from <= to) yield { key: p.key, start: from - offset, end: to - offset };
    offset += p.bytes;
    if (offset > last) return;
  }
}
