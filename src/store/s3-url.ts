import { assertValidKey } from './blob-key-rules.js';

export interface S3Location {
  bucket: string;
  /** '' or a valid key prefix ending with '/'. */
  prefix: string;
}

/** Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (e.g. BESH_BLOB_URL). */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(url);
  if (m === null) throw new Error(`Not an s3:// URL: ${JSON.stringify(url)}`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/i.test(bucket)) throw new Error(`Invalid S3 bucket name in ${JSON.stringify(url)}`);
  return { bucket, prefix: normalizeS3Prefix(m[2] ?? '') };
}

/** '' stays ''; anything else becomes a valid key prefix ending with one '/'. */
export function normalizeS3Prefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') return '';
  assertValidKey(trimmed);
  return `${trimmed}/`;
}
