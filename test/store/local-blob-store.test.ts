import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { build } from 'esbuild';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

import { scanResultLines } from '../../src/jsonl/result-file.js';
import { LocalBlobStore } from '../../src/store/local-blob-store.js';
import { blobStoreContract, put, readText } from './blob-store-contract.js';

const base = mkdtempSync(join(tmpdir(), 'besh-blob-'));
let counter = 0;
const freshRoot = (): string => join(base, `root-${++counter}`);

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

blobStoreContract('LocalBlobStore', () => new LocalBlobStore(freshRoot()), {
  makeBrokenStore: () => {
    const file = join(base, `not-a-dir-${++counter}`);
    writeFileSync(file, '');
    return new LocalBlobStore(join(file, 'root'));
  },
});

const tmpEntries = (root: string): string[] => (existsSync(join(root, 'tmp')) ? readdirSync(join(root, 'tmp')) : []);

describe('LocalBlobStore on disk', () => {
  let root: string;
  let store: LocalBlobStore;

  beforeEach(() => {
    root = freshRoot();
    store = new LocalBlobStore(root);
  });

  it('declares itself', () => {
    expect([store.kind, store.durableAppend]).toEqual(['local', true]);
    expect('pathOf' in store).toBe(false);
  });

  it('keeps a blob at <root>/<key>, written through tmp/ and renamed on commit', async () => {
    const up = store.createUpload('batches/batch_x/output.jsonl');
    up.stream.write('{"a":1}\n');
    await new Promise((r) => setTimeout(r, 10));
    expect(tmpEntries(root)).toHaveLength(1);
    up.stream.end();
    await up.commit();
    expect(readFileSync(join(root, 'batches', 'batch_x', 'output.jsonl'), 'utf8')).toBe('{"a":1}\n');
    expect(tmpEntries(root)).toEqual([]);
    expect(new LocalBlobStore('relative/dir').rootDir).toBe(resolve('relative/dir'));
  });

  it('abort removes the temp file; a rejected key creates nothing', async () => {
    const up = store.createUpload('files/aborted.jsonl');
    up.stream.write('partial');
    await new Promise((r) => setTimeout(r, 10));
    await up.abort();
    expect(tmpEntries(root)).toEqual([]);
    expect(existsSync(join(root, 'files'))).toBe(false);
    const other = new LocalBlobStore(freshRoot());
    expect(() => other.createUpload('../x')).toThrow();
    expect(existsSync(other.rootDir)).toBe(false);
  });

  it('abort does not throw when the temp file is already gone', async () => {
    const up = store.createUpload('files/gone.jsonl');
    up.stream.end('x');
    await new Promise((r) => up.stream.once('close', r));
    for (const name of tmpEntries(root)) rmSync(join(root, 'tmp', name));
    await expect(up.abort()).resolves.toBeUndefined();
  });

  it('reserves tmp/ for itself', async () => {
    expect(() => store.createUpload('tmp/x.part')).toThrow(/reserved/);
    expect(() => store.openSegment('tmp/x')).toThrow(/reserved/);
    await expect(store.deletePrefix('tmp/')).rejects.toThrow(/reserved/);
  });

  it('discard after a write error still removes the segment', async () => {
    const seg = store.openSegment('batches/b/segments/output-1.jsonl');
    mkdirSync(join(root, 'batches', 'b', 'segments', 'output-1.jsonl'), { recursive: true }); // a directory in the way
    seg.append('x');
    await expect(seg.written()).rejects.toMatchObject({ code: 'EEXIST' });
    rmSync(join(root, 'batches', 'b', 'segments', 'output-1.jsonl'), { recursive: true });
    await expect(seg.discard()).resolves.toBeUndefined();
    expect(existsSync(join(root, 'batches'))).toBe(true);
    expect(existsSync(join(root, 'batches', 'b'))).toBe(false);
  });

  it('reads with a 1 MiB buffer', async () => {
    await put(store, 'files/r.txt', 'x');
    expect(store.openRead('files/r.txt').readableHighWaterMark).toBe(1024 * 1024);
  });

  it('delete, deletePrefix and discard prune the directories they empty under batches/ only', async () => {
    await put(store, 'batches/batch_z/output.jsonl', 'o');
    await put(store, 'batches/batch_z/errors.jsonl', 'e');
    await put(store, 'files/file-k.jsonl', 'k');
    await store.delete('batches/batch_z/output.jsonl');
    expect(existsSync(join(root, 'batches', 'batch_z'))).toBe(true);
    await store.delete('batches/batch_z/errors.jsonl');
    expect(existsSync(join(root, 'batches', 'batch_z'))).toBe(false);
    expect(existsSync(join(root, 'batches'))).toBe(true);
    await store.delete('files/file-k.jsonl');
    expect(existsSync(join(root, 'files'))).toBe(true);

    await put(store, 'batches/batch_p/segments/a.jsonl', 'a');
    await put(store, 'batches/batch_p/output.jsonl', 'o');
    expect(await store.deletePrefix('batches/batch_p/segments/')).toBe(1);
    expect(existsSync(join(root, 'batches', 'batch_p', 'segments'))).toBe(false);
    expect(existsSync(join(root, 'batches', 'batch_p', 'output.jsonl'))).toBe(true);

    const seg = store.openSegment('batches/batch_q/segments/output-1.jsonl');
    seg.append('x');
    await seg.written();
    await seg.discard();
    expect(existsSync(join(root, 'batches', 'batch_q'))).toBe(false);
  });

  it('a segment goes out once per turn: nothing in the file until the turn ends, then everything', async () => {
    const seg = store.openSegment('batches/b/segments/output-1.jsonl');
    const path = join(root, 'batches', 'b', 'segments', 'output-1.jsonl');
    for (let i = 0; i < 100; i++) seg.append(`{"n":${i}}`);
    expect(existsSync(path)).toBe(false); // neither the file nor its directory before the first write
    expect(existsSync(join(root, 'batches'))).toBe(false);
    await new Promise((r) => setImmediate(r));
    expect(statSync(path).size).toBe(seg.bytes);
    for (let i = 0; i < 100; i++) seg.append(`{"n":${i}}`);
    expect(statSync(path).size).toBe(seg.bytes / 2);
    await seg.written();
    expect(statSync(path).size).toBe(seg.bytes);
    await seg.seal();
  });

  it('a segment refuses a key that was already written', async () => {
    await put(store, 'batches/b/segments/output-1.jsonl', 'old\n');
    const seg = store.openSegment('batches/b/segments/output-1.jsonl');
    seg.append('new');
    await expect(seg.written()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(join(root, 'batches', 'b', 'segments', 'output-1.jsonl'), 'utf8')).toBe('old\n');
  });

  it('durable append: lines survive kill -9 without seal; a torn tail is ignored, never truncated', async () => {
    // A child process appends, waits for written(), starts one more line and kills itself.
    const bundle = join(base, `store-${++counter}.mjs`);
    await build({ entryPoints: [resolve(import.meta.dirname, '../../src/store/local-blob-store.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'silent' });
    const script = `
      const { LocalBlobStore } = await import(${JSON.stringify(bundle)});
      const seg = new LocalBlobStore(${JSON.stringify(root)}).openSegment('batches/b/segments/output-1.jsonl');
      for (let i = 0; i < 1000; i++) seg.append(JSON.stringify({ id: 'batch_req_' + i, custom_id: 'c' + i }));
      await seg.written();
      const { appendFileSync } = await import('node:fs');
      appendFileSync(${JSON.stringify(join(root, 'batches', 'b', 'segments', 'output-1.jsonl'))}, '{"id":"batch_req_1000","cus');
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
    const signal = await new Promise((r) => child.once('exit', (_code, sig) => r(sig)));
    expect(signal).toBe('SIGKILL');

    const reopened = new LocalBlobStore(root);
    const key = 'batches/b/segments/output-1.jsonl';
    const size = await reopened.size(key);
    const scan = await scanResultLines(reopened.openRead(key));
    expect(scan.lines).toBe(1000);
    expect(scan.customIds.size).toBe(1000);
    expect(scan.tornBytes).toBe('{"id":"batch_req_1000","cus'.length);
    expect(await reopened.size(key)).toBe(size); // the scan changed nothing
    expect(await reopened.compose('batches/b/output.jsonl', [{ key, bytes: scan.completeBytes }])).toBe(scan.completeBytes);
    const text = await readText(reopened.openRead('batches/b/output.jsonl'));
    expect(text.endsWith('"custom_id":"c999"}\n')).toBe(true);
  });

  it('cleanTemp removes .part files older than the given age (0: all), nothing else', async () => {
    expect(await store.cleanTemp(0)).toBe(0);
    mkdirSync(join(root, 'tmp'), { recursive: true });
    const old = new Date(Date.now() - 3_600_000);
    for (const name of ['a.part', 'b.part', 'keep.txt', 'old-keep.txt']) writeFileSync(join(root, 'tmp', name), 'x');
    utimesSync(join(root, 'tmp', 'a.part'), old, old);
    utimesSync(join(root, 'tmp', 'old-keep.txt'), old, old);
    const running = store.createUpload('files/running.jsonl');
    running.stream.write('in progress');
    await new Promise((r) => setTimeout(r, 10));
    await put(store, 'files/kept.jsonl', 'data');

    expect(await store.cleanTemp(60_000)).toBe(1);
    const left = tmpEntries(root);
    expect(left).toEqual(expect.arrayContaining(['b.part', 'keep.txt', 'old-keep.txt']));
    expect(left).toHaveLength(4); // and the running upload's temp file
    running.stream.end();
    await running.commit();
    expect(await store.cleanTemp(0)).toBe(1);
    expect(tmpEntries(root).sort()).toEqual(['keep.txt', 'old-keep.txt']);
    expect(await store.size('files/kept.jsonl')).toBe(4);
    expect(await store.size('files/running.jsonl')).toBe(11);
  });

  it('freeBytes is what statfs says for the root, also before the root exists', async () => {
    expect(existsSync(root)).toBe(false);
    const free = await store.freeBytes();
    await put(store, 'files/x', 'x');
    const s = await statfs(root);
    expect(Math.abs(free - s.bavail * s.bsize)).toBeLessThan(64 * 1024 * 1024);
  });
});
