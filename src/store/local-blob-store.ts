import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';

import type { BlobStore, BlobUpload } from './blob-store.js';

const READ_HIGH_WATER_MARK = 1024 * 1024;
const TMP_DIR = 'tmp';
const PART_SUFFIX = '.part';

/**
 * BlobStore on a local directory. Keys are relative `/`-separated paths (`files/file-abc.jsonl`,
 * `batches/batch_x/output.jsonl`); uploads are written under `<root>/tmp/` and renamed into place
 * on commit, so a reader never sees a half-written blob.
 */
export class LocalBlobStore implements BlobStore {
  readonly rootDir: string;
  readonly #tmpDir: string;

  constructor(rootDir: string) {
    this.rootDir = resolve(rootDir);
    this.#tmpDir = join(this.rootDir, TMP_DIR);
  }

  createUpload(key: string): BlobUpload {
    const target = this.pathOf(key);
    mkdirSync(this.#tmpDir, { recursive: true });
    const tmp = join(this.#tmpDir, `${randomBytes(16).toString('hex')}${PART_SUFFIX}`);
    return new LocalUpload(createWriteStream(tmp, { flags: 'wx' }), tmp, target);
  }

  /** `start`/`end` are byte offsets, both inclusive (as `fs.createReadStream`). */
  openRead(key: string, opts: { start?: number; end?: number } = {}): Readable {
    return createReadStream(this.pathOf(key), { start: opts.start, end: opts.end, highWaterMark: READ_HIGH_WATER_MARK });
  }

  async size(key: string): Promise<number | null> {
    try {
      const st = await stat(this.pathOf(key));
      return st.isFile() ? st.size : null;
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return null;
      throw err;
    }
  }

  /** Removes the blob (no error if it is already gone) and any directories under `batches/` it leaves empty. */
  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    const batchesDir = join(this.rootDir, 'batches');
    for (let dir = dirname(path); dir.startsWith(batchesDir + sep); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue; // already gone: its parent may still be empty
        if (isErrno(err, 'ENOTEMPTY', 'EEXIST')) return;
        throw err;
      }
    }
  }

  pathOf(key: string): string {
    assertValidKey(key);
    return join(this.rootDir, ...key.split('/'));
  }

  /**
   * Removes every leftover `tmp/*.part` (uploads interrupted by a crash). Call only when no upload
   * is running, e.g. at server start. Returns how many were removed.
   */
  async cleanTemp(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.#tmpDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      if (!name.endsWith(PART_SUFFIX)) continue;
      try {
        await unlink(join(this.#tmpDir, name));
        removed++;
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    return removed;
  }
}

class LocalUpload implements BlobUpload {
  readonly stream: WriteStream;
  readonly #tmp: string;
  readonly #target: string;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  #committing: Promise<void> | null = null;

  constructor(stream: WriteStream, tmp: string, target: string) {
    this.stream = stream;
    this.#tmp = tmp;
    this.#target = target;
    // A write error must not crash the process when nobody else listens; commit() reports it.
    stream.on('error', () => {});
  }

  /** Waits for the writer to end the stream (it does not end it), fsyncs and renames into place. */
  commit(): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(new Error(`Upload already ${this.#state}`));
    this.#state = 'committing';
    this.#committing = this.#commit().then(
      () => {
        this.#state = 'committed';
      },
      async (err: unknown) => {
        this.#state = 'aborted';
        await this.#discard();
        throw err;
      },
    );
    return this.#committing;
  }

  async #commit(): Promise<void> {
    await finished(this.stream); // rejects on a stream error or a destroy before 'finish'
    await this.#closed();
    const fh = await open(this.#tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dir = dirname(this.#target);
    await mkdir(dir, { recursive: true });
    await rename(this.#tmp, this.#target);
    await syncDir(dir);
  }

  /** Removes the temp file. Never throws; a no-op after a successful commit. */
  async abort(): Promise<void> {
    if (this.#state === 'committing') await this.#committing?.catch(() => {});
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    await this.#discard();
  }

  async #discard(): Promise<void> {
    this.stream.destroy();
    // The file may still be being opened: unlink only once the stream has released it.
    await this.#closed();
    await unlink(this.#tmp).catch(() => {});
  }

  async #closed(): Promise<void> {
    if (this.stream.closed) return;
    await new Promise<void>((done) => this.stream.once('close', () => done()));
  }
}

/** Throws unless `key` is a plain relative path: no absolute path, `.`/`..`/empty segment, backslash or NUL. */
function assertValidKey(key: string): void {
  const bad = (why: string): never => {
    throw new Error(`Invalid blob key (${why}): ${JSON.stringify(key)}`);
  };
  if (key.length === 0) bad('empty');
  if (key.includes('\0')) bad('NUL');
  if (key.includes('\\')) bad('backslash');
  if (isAbsolute(key)) bad('absolute');
  const segments = key.split('/');
  if (segments.some((s) => s === '..')) bad('`..` segment');
  if (segments.some((s) => s === '' || s === '.')) bad('empty or `.` segment');
  if (segments[0] === TMP_DIR) bad('reserved `tmp/` prefix');
}

/** Makes a rename durable. Best effort: some file systems refuse to fsync a directory. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // ignore
  }
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && codes.includes(err.code);
}
