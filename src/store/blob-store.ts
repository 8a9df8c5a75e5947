import type { Readable, Writable } from 'node:stream';

/**
 * Where file bytes live: uploaded inputs, result segments while a batch runs, and the composed
 * output/error files. Keys are relative `/`-separated names chosen by BESH (never by a client);
 * `blob-keys.ts` is the only place that spells them. Two implementations share one contract
 * (test/store/blob-store-contract.ts): `LocalBlobStore` (a directory) and `S3BlobStore`
 * (any S3-compatible service).
 *
 * Result segments are the source of truth for "done" (DESIGN.md). How durable an append is
 * before `seal()` differs, and is declared, not hidden:
 *   - local disk (`durableAppend: true`): every append reaches the file (page cache) at the end of
 *     the event-loop turn, so it survives `kill -9`; `written()` says when. A crash can leave a torn
 *     last line, which readers ignore (they read complete lines only).
 *   - S3 (`durableAppend: false`): appends are held in memory until `seal()` uploads the segment
 *     as one object; the engine seals every BESH_SEGMENT_FLUSH_MS or few MB, so a crash loses at
 *     most that window (and never leaves a partial object).
 */
export interface BlobStore {
  /** Short name for logs and /health: 'local' or 's3'. */
  readonly kind: 'local' | 's3';
  /** True when appends are durable before `seal()` (see above). */
  readonly durableAppend: boolean;
  /** True when `compose` refers to its parts instead of copying them (see there). */
  readonly composeByReference: boolean;

  /** A write stream that lands at `key` only when `commit()` is called; `abort()` removes every trace. */
  createUpload(key: string): BlobUpload;
  /**
   * Reads the blob, or the byte range [start, end] (both inclusive, as `fs.createReadStream`).
   * A missing key makes the stream fail with an error whose `code` is 'ENOENT'; a range that
   * starts at or past the end reads nothing.
   */
  openRead(key: string, opts?: { start?: number; end?: number }): Readable;
  /** Size in bytes, or null when there is no such blob. */
  size(key: string): Promise<number | null>;
  /** Removes the blob (a blob composed by reference: with its parts); no error when it is already gone. */
  delete(key: string): Promise<void>;
  /**
   * Removes every blob whose key starts with `prefix` (which must end with '/') except the keys in
   * `keep`; returns how many.
   */
  deletePrefix(prefix: string, keep?: ReadonlySet<string>): Promise<number>;

  /**
   * Starts a new result segment at `key` (a key that was never written). Nothing exists at `key`
   * until the first append reaches storage (local) or `seal()` (S3).
   */
  openSegment(key: string): SegmentWriter;

  /**
   * Writes a new blob at `key` that is the concatenation of the first `bytes` bytes of each part,
   * in order (parts with `bytes` 0 are skipped and need not exist; a part shorter than its `bytes`
   * fails the compose, and nothing lands at `key`). Returns the size of the new blob. Either way
   * memory stays bounded whatever the sizes:
   *   - by copy (local disk, `composeByReference: false`): the bytes are streamed into a new file;
   *     the parts are left in place, and the caller may remove them.
   *   - by reference (S3, `composeByReference: true`): only a manifest of the parts is written;
   *     reads of `key` read the parts, `delete(key)` removes them too. The parts belong to `key`
   *     from then on: the caller must leave them (a `deletePrefix` of theirs destroys `key`).
   */
  compose(key: string, parts: readonly BlobPart[]): Promise<number>;

  /** Bytes that may still be written, or null when the store has no such bound (S3). */
  freeBytes(): Promise<number | null>;
  /**
   * Removes temporary files of interrupted uploads that were last written more than
   * `olderThanMs` ago (0: all of them; only safe when nothing else writes to this store). Returns
   * how many.
   */
  cleanTemp(olderThanMs: number): Promise<number>;
  /** Releases what the store holds open (the S3 client's sockets). */
  close(): Promise<void>;
}

export interface BlobPart {
  key: string;
  /** How many bytes of the part belong to the result (a torn tail after them is left out). */
  bytes: number;
}

export interface BlobUpload {
  stream: Writable;
  /** Waits for the stream to finish, makes it durable and moves it into place. */
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * An append-only result segment. Lines are appended whole ('\n' is added if missing). Appends of
 * one event-loop turn are grouped into one write: never one syscall or request per line.
 * A write error is kept and thrown by every later call.
 */
export interface SegmentWriter {
  readonly key: string;
  /** Lines appended so far. */
  readonly lines: number;
  /** Bytes appended so far. */
  readonly bytes: number;
  append(line: string): void;
  /**
   * Resolves once every line appended so far is as durable as this store makes an append before
   * `seal()`: in the file (local disk), or in memory (S3, where it waits for `seal()`). Either way
   * not before the end of the event-loop turn of the append, so the lines of one turn are
   * acknowledged together (the engine frees their upstream slots then).
   */
  written(): Promise<void>;
  /**
   * Makes everything appended durable and closes the segment (local: fsync and close; S3: one
   * PUT of the whole segment). An empty segment writes nothing. Appending afterwards throws.
   */
  seal(): Promise<{ lines: number; bytes: number }>;
  /**
   * Closes without making anything more durable, and removes what was written at `key`. Unlike
   * the other calls it does not rethrow a kept write error.
   */
  discard(): Promise<void>;
}
