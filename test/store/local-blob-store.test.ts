import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { afterAll, beforeEach, describe, expect, it } from 'vitest';

import { LocalBlobStore } from '../../src/store/local-blob-store.js';

const base = mkdtempSync(join(tmpdir(), 'besh-blob-'));
let counter = 0;

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const tmpEntries = (root: string): string[] => (existsSync(join(root, 'tmp')) ? readdirSync(join(root, 'tmp')) : []);

describe('LocalBlobStore', () => {
  let root: string;
  let store: LocalBlobStore;

  beforeEach(() => {
    root = join(base, `root-${++counter}`);
    store = new LocalBlobStore(root);
  });

  async function put(key: string, content: string): Promise<void> {
    const up = store.createUpload(key);
    await pipeline(Readable.from([Buffer.from(content)]), up.stream);
    await up.commit();
  }

  it('writes to a temp file and moves it into place on commit', async () => {
    const key = 'batches/batch_x/output.jsonl';
    const up = store.createUpload(key);
    up.stream.write('{"a":1}\n');
    expect(await store.size(key)).toBeNull();
    up.stream.end('{"b":2}\n');
    await up.commit();
    expect(readFileSync(store.pathOf(key), 'utf8')).toBe('{"a":1}\n{"b":2}\n');
    expect(await store.size(key)).toBe(16);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('commits a piped upload and replaces an existing blob', async () => {
    await put('files/file-a.jsonl', 'old content');
    await put('files/file-a.jsonl', 'new');
    expect(await readAll(store.openRead('files/file-a.jsonl'))).toBe('new');
  });

  it('commits an empty upload', async () => {
    const up = store.createUpload('files/empty.jsonl');
    up.stream.end();
    await up.commit();
    expect(await store.size('files/empty.jsonl')).toBe(0);
  });

  it('refuses a second commit, and abort after commit keeps the blob', async () => {
    const up = store.createUpload('files/x.jsonl');
    up.stream.end('x');
    await up.commit();
    await expect(up.commit()).rejects.toThrow();
    await up.abort();
    expect(await store.size('files/x.jsonl')).toBe(1);
  });

  it('abort leaves no file behind', async () => {
    const up = store.createUpload('files/aborted.jsonl');
    up.stream.write('partial data');
    await new Promise((r) => setTimeout(r, 10));
    expect(tmpEntries(root)).toHaveLength(1);
    await up.abort();
    expect(tmpEntries(root)).toEqual([]);
    expect(await store.size('files/aborted.jsonl')).toBeNull();
    expect(existsSync(join(root, 'files'))).toBe(false);
    await expect(up.abort()).resolves.toBeUndefined();
  });

  it('abort right after createUpload (file still opening) leaves nothing', async () => {
    const up = store.createUpload('files/quick.jsonl');
    await up.abort();
    await new Promise((r) => setTimeout(r, 20));
    expect(tmpEntries(root)).toEqual([]);
  });

  it('abort does not throw when the temp file is already gone', async () => {
    const up = store.createUpload('files/gone.jsonl');
    up.stream.end('x');
    await new Promise((r) => up.stream.once('close', r));
    for (const name of tmpEntries(root)) rmSync(join(root, 'tmp', name));
    await expect(up.abort()).resolves.toBeUndefined();
  });

  it('commit rejects when the stream failed, and cleans up', async () => {
    const up = store.createUpload('files/broken.jsonl');
    up.stream.write('some');
    up.stream.destroy(new Error('boom'));
    await expect(up.commit()).rejects.toThrow('boom');
    expect(tmpEntries(root)).toEqual([]);
    expect(await store.size('files/broken.jsonl')).toBeNull();
    await expect(up.abort()).resolves.toBeUndefined();
  });

  it('reads whole blobs and inclusive byte ranges', async () => {
    await put('files/r.txt', '0123456789');
    expect(await readAll(store.openRead('files/r.txt'))).toBe('0123456789');
    expect(await readAll(store.openRead('files/r.txt', { start: 2, end: 5 }))).toBe('2345');
    expect(await readAll(store.openRead('files/r.txt', { start: 7 }))).toBe('789');
    expect(await readAll(store.openRead('files/r.txt', { end: 0 }))).toBe('0');
    expect(store.openRead('files/r.txt').readableHighWaterMark).toBe(1024 * 1024);
  });

  it('reading a missing blob errors on the stream', async () => {
    await expect(readAll(store.openRead('files/missing.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('size is null for a missing blob or a directory', async () => {
    expect(await store.size('files/none.jsonl')).toBeNull();
    await put('batches/batch_y/output.jsonl', 'abc');
    expect(await store.size('batches/batch_y')).toBeNull();
    expect(await store.size('batches/batch_y/output.jsonl/deeper')).toBeNull();
  });

  it('deletes blobs, ignores missing ones and prunes empty batch directories', async () => {
    await put('batches/batch_z/output.jsonl', 'o');
    await put('batches/batch_z/errors.jsonl', 'e');
    await put('files/file-k.jsonl', 'k');

    await store.delete('batches/batch_z/output.jsonl');
    expect(await store.size('batches/batch_z/output.jsonl')).toBeNull();
    expect(existsSync(join(root, 'batches', 'batch_z'))).toBe(true);

    await store.delete('batches/batch_z/errors.jsonl');
    expect(existsSync(join(root, 'batches', 'batch_z'))).toBe(false);
    expect(existsSync(join(root, 'batches'))).toBe(true);

    await store.delete('files/file-k.jsonl');
    expect(existsSync(join(root, 'files'))).toBe(true);

    await expect(store.delete('files/file-k.jsonl')).resolves.toBeUndefined();
    await expect(store.delete('batches/batch_never/output.jsonl')).resolves.toBeUndefined();
  });

  it('maps keys to absolute paths under the root', () => {
    const abs = store.pathOf('batches/batch_x/output.jsonl');
    expect(abs).toBe(join(root, 'batches', 'batch_x', 'output.jsonl'));
    expect(new LocalBlobStore('relative/dir').pathOf('files/a').startsWith('/')).toBe(true);
  });

  const badKeys = ['../escape', 'files/../../escape', 'files/..', '..', '/etc/passwd', 'files\\x', 'files/a\0b', '', 'files//a', './files/a', 'tmp/x.part'];

  for (const key of badKeys) {
    it(`rejects the key ${JSON.stringify(key)}`, async () => {
      expect(() => store.pathOf(key)).toThrow(/Invalid blob key/);
      expect(() => store.createUpload(key)).toThrow(/Invalid blob key/);
      expect(() => store.openRead(key)).toThrow(/Invalid blob key/);
      await expect(store.size(key)).rejects.toThrow(/Invalid blob key/);
      await expect(store.delete(key)).rejects.toThrow(/Invalid blob key/);
    });
  }

  it('a rejected key creates nothing', () => {
    expect(() => store.createUpload('../x')).toThrow();
    expect(existsSync(root)).toBe(false);
  });

  it('cleanTemp removes leftover .part files only', async () => {
    expect(await store.cleanTemp()).toBe(0);
    mkdirSync(join(root, 'tmp'), { recursive: true });
    writeFileSync(join(root, 'tmp', 'a.part'), 'x');
    writeFileSync(join(root, 'tmp', 'b.part'), 'y');
    writeFileSync(join(root, 'tmp', 'keep.txt'), 'z');
    await put('files/kept.jsonl', 'data');
    expect(await store.cleanTemp()).toBe(2);
    expect(tmpEntries(root)).toEqual(['keep.txt']);
    expect(await store.size('files/kept.jsonl')).toBe(4);
  });
});
