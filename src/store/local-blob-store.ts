import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { readdir, rm, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';

import { assertValidKey, assertValidPrefix } from './blob-key-rules.js';
import type { BlobPart, BlobStore, BlobUpload, SegmentWriter } from './blob-store.js';
import { composeParts } from './compose-parts.js';
import { isErrno } from './local-blob-fs.js';
import { LocalUpload } from './local-blob-upload.js';
import { LocalSegmentWriter } from './local-segment-writer.js';

const READ_HIGH_WATER_MARK = 1024 * 1024;
const TMP_DIR = 'tmp';
const PART_SUFFIX = '.part';

/**
 * BlobStore on a local directory: a key is a path under the root. Uploads are written under
 * `<root>/tmp/` and renamed into place on commit, so a reader never sees a half-written blob.
 */
export class LocalBlobStore implements BlobStore {
  readonly kind = 'local';
  readonly durableAppend = true;
  readonly composeByReference = false;
  readonly rootDir: string;
  readonly #tmpDir: string;

  constructor(rootDir: string) {
    this.rootDir = resolve(rootDir);
    this.#tmpDir = join(this.rootDir, TMP_DIR);
  }

  createUpload(key: string): BlobUpload {
    const target = this.#pathOf(key);
    try {
      mkdirSync(this.#tmpDir, { recursive: true });
    } catch {
      // The stream's open fails the same way, and commit() reports it.
    }
    const tmp = join(this.#tmpDir, `${randomBytes(16).toString('hex')}${PART_SUFFIX}`);
    return new LocalUpload(createWriteStream(tmp, { flags: 'wx' }), tmp, target);
  }

  openRead(key: string, opts: { start?: number; end?: number } = {}): Readable {
    return createReadStream(this.#pathOf(key), { start: opts.start, end: opts.end, highWaterMark: READ_HIGH_WATER_MARK });
  }

  async size(key: string): Promise<number | null> {
    try {
      const st = await stat(this.#pathOf(key));
      return st.isFile() ? st.size : null;
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return null;
      throw err;
    }
  }

  /** Removes the blob (no error if it is already gone) and any directories under `batches/` it leaves empty. */
  async delete(key: string): Promise<void> {
    const path = this.#pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
    }
    await this.#pruneFrom(dirname(path));
  }

  async deletePrefix(prefix: string, keep: ReadonlySet<string> = new Set()): Promise<number> {
    assertValidPrefix(prefix);
    const dir = this.#pathOf(prefix.slice(0, -1));
    let entries;
    try {
      entries = await readdir(dir, { recursive: true, withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return 0;
      throw err;
    }
    const files = entries.filter((e) => e.isFile());
    if (keep.size === 0) {
      await rm(dir, { recursive: true, force: true });
      await this.#pruneFrom(dirname(dir));
      return files.length;
    }
    let deleted = 0;
    for (const f of files) {
      const key = relative(this.rootDir, join(f.parentPath, f.name)).split(sep).join('/');
      if (keep.has(key)) continue;
      await this.delete(key);
      deleted++;
    }
    return deleted;
  }

  openSegment(key: string): SegmentWriter {
    return new LocalSegmentWriter(key, this.#pathOf(key), () => this.delete(key));
  }

  compose(key: string, parts: readonly BlobPart[]): Promise<number> {
    return composeParts(this, key, parts);
  }

  /** Bytes available to this (unprivileged) process on the file system of the root. */
  async freeBytes(): Promise<number> {
    // The root may not exist yet: its nearest existing ancestor is on the same file system.
    for (let dir = this.rootDir; ; dir = dirname(dir)) {
      try {
        const s = await statfs(dir);
        return s.bavail * s.bsize;
      } catch (err) {
        if (!isErrno(err, 'ENOENT') || dirname(dir) === dir) throw err;
      }
    }
  }

  /** Removes `tmp/*.part` files (uploads interrupted by a crash) last modified more than `olderThanMs` ago. */
  /** Nothing is held open between calls. */
  async close(): Promise<void> {}

  async cleanTemp(olderThanMs: number): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.#tmpDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0;
      throw err;
    }
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of names) {
      if (!name.endsWith(PART_SUFFIX)) continue;
      const path = join(this.#tmpDir, name);
      try {
        if (olderThanMs > 0 && (await stat(path)).mtimeMs > cutoff) continue;
        await unlink(path);
        removed++;
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    return removed;
  }

  #pathOf(key: string): string {
    assertValidKey(key);
    if (key.split('/', 1)[0] === TMP_DIR) throw new Error(`Invalid blob key (reserved \`tmp/\` prefix): ${JSON.stringify(key)}`);
    return join(this.rootDir, ...key.split('/'));
  }

  /** Removes `dir` and its parents while they are empty, staying under `batches/`. */
  async #pruneFrom(dir: string): Promise<void> {
    const batchesDir = join(this.rootDir, 'batches');
    for (; dir.startsWith(batchesDir + sep); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR')) continue; // already gone: its parent may still be empty
        if (isErrno(err, 'ENOTEMPTY', 'EEXIST')) return;
        throw err;
      }
    }
  }
}
