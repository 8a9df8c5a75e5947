/**
 * The shape every blob key must have, in every store: a plain relative `/`-separated name — no
 * absolute path, no `.`/`..`/empty segment, no backslash or NUL. On disk this keeps a key inside
 * the root; in S3 it keeps keys the same as on disk, so a store can be swapped.
 */
export function assertValidKey(key: string): void {
  const why = invalidKeyReason(key);
  if (why !== null) throw new Error(`Invalid blob key (${why}): ${JSON.stringify(key)}`);
}

/** A prefix is a valid key followed by '/': it names a "directory", never part of a name. */
export function assertValidPrefix(prefix: string): void {
  const why = prefix.endsWith('/') ? invalidKeyReason(prefix.slice(0, -1)) : 'must end with /';
  if (why !== null) throw new Error(`Invalid blob prefix (${why}): ${JSON.stringify(prefix)}`);
}

function invalidKeyReason(key: string): string | null {
  if (key.length === 0) return 'empty';
  if (key.includes('\0')) return 'NUL';
  if (key.includes('\\')) return 'backslash';
  if (key.startsWith('/')) return 'absolute';
  const segments = key.split('/');
  if (segments.some((s) => s === '..')) return '`..` segment';
  if (segments.some((s) => s === '' || s === '.')) return 'empty or `.` segment';
  return null;
}
