import type { Readable, Writable } from 'node:stream';

/**
 * Where file bytes live. Keys are relative names chosen by BESH (never by a client).
 * The local-disk implementation also exposes a path for append-only writers.
 */
export interface BlobStore {
  /** A write stream that lands at `key` only when `commit()` is called; `abort()` removes every trace. */
  createUpload(key: string): BlobUpload;
  openRead(key: string, opts?: { start?: number; end?: number }): Readable;
  size(key: string): Promise<number | null>;
  delete(key: string): Promise<void>;
  /** Absolute path on local disk (for append-only writers and resume scans). */
  pathOf(key: string): string;
}

export interface BlobUpload {
  stream: Writable;
  /** Waits for the stream to finish, fsyncs and moves it into place. */
  commit(): Promise<void>;
  abort(): Promise<void>;
}
