import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';

import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { S3BlobStore, type S3BlobStoreOptions } from '../../src/store/s3-blob-store.js';
import { parseS3Url } from '../../src/store/s3-url.js';
import { type S3TestServer, startS3Server } from '../helpers/s3-server.js';
import { blobStoreContract, put, readText } from './blob-store-contract.js';

const MiB = 1024 * 1024;
let server: S3TestServer;
const stores: S3BlobStore[] = [];
let counter = 0;

beforeAll(async () => {
  server = await startS3Server();
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await server?.stop();
});

/** Every request must go to the loopback test server: the SDK never reaches the internet here. */
function loopbackOnly(client: S3Client): void {
  client.middlewareStack.add(
    (next) => (args) => {
      const { hostname } = args.request as { hostname?: string };
      if (hostname !== '127.0.0.1') throw new Error(`S3 request to ${hostname} refused by the test`);
      return next(args);
    },
    { step: 'finalizeRequest', name: 'loopbackOnly' },
  );
}

/** Records the name of every command the client sends. */
function commandLog(client: S3Client): string[] {
  const log: string[] = [];
  client.middlewareStack.add(
    (next, context) => (args) => {
      log.push(context.commandName ?? '?');
      return next(args);
    },
    { step: 'initialize', name: 'commandLog' },
  );
  return log;
}

function makeStore(opts: Partial<S3BlobStoreOptions> & { bucket?: string; prefix?: string } = {}): S3BlobStore {
  const { bucket, prefix, ...rest } = opts;
  const store = new S3BlobStore(bucket ?? server.bucket, prefix ?? `t${++counter}/`, {
    endpoint: server.endpoint,
    region: 'us-east-1',
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    partSize: 5 * MiB, // the S3 minimum: multipart from 5 MiB on
    pageSize: 4, // deletePrefix pages in the contract
    ...rest,
  });
  loopbackOnly(store.client);
  stores.push(store);
  return store;
}

blobStoreContract('S3BlobStore (s3rver)', () => makeStore(), { makeBrokenStore: () => makeStore({ bucket: 'no-such-bucket' }) });

describe('S3BlobStore', () => {
  it('declares itself: no append durability, no free-space bound, no temp files', async () => {
    const store = makeStore();
    expect([store.kind, store.durableAppend]).toEqual(['s3', false]);
    expect(await store.freeBytes()).toBeNull();
    expect(await store.cleanTemp(0)).toBe(0);
  });

  it('uses path-style URLs when given an endpoint, virtual-hosted ones otherwise', () => {
    expect(makeStore().client.config.forcePathStyle).toBe(true);
    const aws = new S3BlobStore('bucket', '', { region: 'eu-west-1' }); // sends nothing
    stores.push(aws);
    expect(aws.client.config.forcePathStyle).toBe(false);
    expect(() => new S3BlobStore('bucket', '', { region: 'eu-west-1', accessKeyId: 'only-one' })).toThrow(/both/);
  });

  it('keeps blobs under its prefix, separate from other prefixes in the bucket', async () => {
    const a = makeStore({ prefix: 'tenant-a' });
    const b = makeStore({ prefix: 'tenant-b/' });
    expect(a.prefix).toBe('tenant-a/');
    await put(a, 'files/x.jsonl', 'from a');
    await put(b, 'files/x.jsonl', 'from b');
    const listed = await a.client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: 'tenant-' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['tenant-a/files/x.jsonl', 'tenant-b/files/x.jsonl']);
    expect(await a.deletePrefix('files/')).toBe(1);
    expect(await readText(b.openRead('files/x.jsonl'))).toBe('from b');
  });

  it('seals a segment with one PutObject, whatever the number of appends; an empty one sends nothing', async () => {
    const store = makeStore();
    const log = commandLog(store.client);
    const seg = store.openSegment('batches/b/segments/output-1.jsonl');
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 100; i++) seg.append(`{"n":${i}}`);
      await seg.written();
      await new Promise((r) => setImmediate(r));
    }
    expect(log).toEqual([]);
    await seg.seal();
    expect(log).toEqual(['PutObjectCommand']);
    const empty = store.openSegment('batches/b/segments/output-2.jsonl');
    await empty.seal();
    expect(log).toEqual(['PutObjectCommand']);
    await seg.discard();
    expect(log).toEqual(['PutObjectCommand', 'DeleteObjectCommand']);
  });

  it('uploads a small blob with one PutObject and a large one in parts', async () => {
    const store = makeStore();
    const log = commandLog(store.client);
    await put(store, 'files/small.jsonl', 'x');
    expect(log).toEqual(['PutObjectCommand']);
    log.length = 0;
    const data = randomBytes(12 * MiB);
    await put(store, 'files/large.bin', [data.subarray(0, 6 * MiB), data.subarray(6 * MiB)]);
    expect(log.filter((c) => c === 'UploadPartCommand')).toHaveLength(3);
    expect([log[0], log.at(-1)]).toEqual(['CreateMultipartUploadCommand', 'CompleteMultipartUploadCommand']);
  });

  it('fills the same queueSize + 1 part buffers for every part, and sends at most queueSize at once', async () => {
    const store = makeStore({ queueSize: 2 });
    const bodies = new Set<ArrayBufferLike>();
    let sending = 0;
    let mostAtOnce = 0;
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'UploadPartCommand') return next(args);
        bodies.add(((args.input as { Body: Buffer }).Body).buffer);
        mostAtOnce = Math.max(mostAtOnce, ++sending);
        try {
          return await next(args);
        } finally {
          sending--;
        }
      },
      { step: 'initialize', name: 'partBodies' },
    );
    const data = randomBytes(52 * MiB + 123);
    // Chunks that straddle part boundaries, as a socket delivers them.
    const chunks = Array.from({ length: Math.ceil(data.length / 700_001) }, (_, i) => data.subarray(i * 700_001, (i + 1) * 700_001));
    await put(store, 'files/parts.bin', chunks);
    expect(bodies.size).toBe(3);
    expect(mostAtOnce).toBe(2);
    const back: Buffer[] = [];
    for await (const chunk of store.openRead('files/parts.bin')) back.push(chunk as Buffer);
    expect(Buffer.concat(back).equals(data)).toBe(true);
  });

  it('fails an upload beyond its part limit, and nothing lands', async () => {
    const store = makeStore({ maxParts: 2 });
    const up = store.createUpload('files/too-many-parts.bin');
    await expect(pipeline(Readable.from([randomBytes(11 * MiB)]), up.stream)).rejects.toThrow('larger than 2 parts of 5242880 bytes');
    await expect(up.commit()).rejects.toThrow('larger than 2 parts');
    expect(await store.size('files/too-many-parts.bin')).toBeNull();
  });

  it('uploads exactly one part with one PutObject', async () => {
    const store = makeStore();
    const log = commandLog(store.client);
    const data = randomBytes(5 * MiB);
    await put(store, 'files/one-part.bin', [data.subarray(0, MiB), data.subarray(MiB)]);
    expect(log).toEqual(['PutObjectCommand']);
    expect(await store.size('files/one-part.bin')).toBe(5 * MiB);
  });

  it('abort of a multipart upload in progress aborts it and never throws (s3rver refuses AbortMultipartUpload)', async () => {
    const store = makeStore();
    const log = commandLog(store.client);
    const up = store.createUpload('files/aborted.bin');
    up.stream.write(randomBytes(11 * MiB));
    while (!log.includes('UploadPartCommand')) await new Promise((r) => setTimeout(r, 10));
    await expect(up.abort()).resolves.toBeUndefined();
    expect(log).toContain('AbortMultipartUploadCommand');
    expect(log).not.toContain('CompleteMultipartUploadCommand');
    expect(await store.size('files/aborted.bin')).toBeNull();
  });

  it('a writer piping into a failed upload is failed, not left blocked', async () => {
    const store = makeStore({ bucket: 'no-such-bucket' });
    const up = store.createUpload('files/x.bin');
    const source = Readable.from((function* () {
      for (let i = 0; i < 40; i++) yield Buffer.alloc(MiB);
    })());
    await expect(pipeline(source, up.stream)).rejects.toThrow();
    await expect(up.commit()).rejects.toThrow();
  });

  it('composes by reference: a small manifest, no part downloaded or uploaded again', async () => {
    const store = makeStore();
    expect(store.composeByReference).toBe(true);
    const datas = [randomBytes(3 * MiB), randomBytes(2 * MiB + 7)];
    const parts = [];
    for (const [i, data] of datas.entries()) {
      await put(store, `batches/m/segments/output-${i}.jsonl`, data);
      parts.push({ key: `batches/m/segments/output-${i}.jsonl`, bytes: data.length });
    }
    const log = commandLog(store.client);
    expect(await store.compose('batches/m/output.jsonl', parts)).toBe(5 * MiB + 7);
    expect(log).toEqual(['ListObjectsV2Command', 'PutObjectCommand']); // sizes from one listing, not a HEAD per part
    const listed = await store.client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `${store.prefix}batches/m/output` }));
    expect(listed.Contents?.[0]?.Size).toBeLessThan(1024);
    expect(await store.size('batches/m/output.jsonl')).toBe(5 * MiB + 7);
    log.length = 0;
    const back: Buffer[] = [];
    for await (const chunk of store.openRead('batches/m/output.jsonl')) back.push(chunk as Buffer);
    expect(Buffer.concat(back).equals(Buffer.concat(datas))).toBe(true);
    expect(log).toEqual(['GetObjectCommand', 'GetObjectCommand', 'GetObjectCommand']); // the manifest once, then each part
    // A range past the manifest object's own size (S3 answers 416 to the first GET).
    const tail: Buffer[] = [];
    for await (const chunk of store.openRead('batches/m/output.jsonl', { start: 4 * MiB, end: 4 * MiB + 9 })) tail.push(chunk as Buffer);
    expect(Buffer.concat(tail).equals(Buffer.concat(datas).subarray(4 * MiB, 4 * MiB + 10))).toBe(true);
  });

  it('reads a composed blob with the next parts requested while one streams, at most 5 at once, all closed when the reader leaves', async () => {
    const store = makeStore();
    const parts = [];
    for (let i = 0; i < 12; i++) {
      await put(store, `batches/q/segments/output-${i}.jsonl`, `${String(i).padStart(3, '0')}\n`);
      parts.push({ key: `batches/q/segments/output-${i}.jsonl`, bytes: 4 });
    }
    await store.compose('batches/q/output.jsonl', parts);
    let open = 0;
    let mostAtOnce = 0;
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'GetObjectCommand' || !String((args.input as { Key: string }).Key).includes('/segments/')) return next(args);
        mostAtOnce = Math.max(mostAtOnce, ++open);
        const out = await next(args);
        const body = (out.output as { Body: Readable }).Body;
        body.once('close', () => open--);
        return out;
      },
      { step: 'initialize', name: 'openParts' },
    );
    expect(await readText(store.openRead('batches/q/output.jsonl'))).toBe(Array.from({ length: 12 }, (_, i) => `${String(i).padStart(3, '0')}\n`).join(''));
    expect(mostAtOnce).toBeGreaterThan(1);
    expect(mostAtOnce).toBeLessThanOrEqual(5);
    expect(open).toBe(0);
    // A reader that goes away after the first part: the parts requested ahead are closed too.
    const stream = store.openRead('batches/q/output.jsonl');
    for await (const _ of stream) break;
    for (let waited = 0; open > 0 && waited < 2000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    expect(open).toBe(0);
  });

  it('a composed blob whose part is gone fails its reads with ENOENT', async () => {
    const store = makeStore();
    await put(store, 'batches/n/segments/a.jsonl', 'a\n');
    await put(store, 'batches/n/segments/b.jsonl', 'b\n');
    await store.compose('batches/n/output.jsonl', [
      { key: 'batches/n/segments/a.jsonl', bytes: 2 },
      { key: 'batches/n/segments/b.jsonl', bytes: 2 },
    ]);
    await store.deletePrefix('batches/n/segments/', new Set(['batches/n/segments/a.jsonl']));
    expect(await readText(store.openRead('batches/n/output.jsonl', { start: 0, end: 1 }))).toBe('a\n');
    await expect(readText(store.openRead('batches/n/output.jsonl'))).rejects.toMatchObject({ code: 'ENOENT', message: /b\.jsonl \(part of batches\/n\/output\.jsonl\)/ });
  });

  it('parses s3:// URLs', () => {
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url('s3://my-bucket/')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url('s3://my.bucket/besh')).toEqual({ bucket: 'my.bucket', prefix: 'besh/' });
    expect(parseS3Url('s3://b12/a/b/')).toEqual({ bucket: 'b12', prefix: 'a/b/' });
    for (const bad of ['http://bucket/x', 's3://', 's3:///x', 's3://ab', 's3://-bucket', 's3://bucket/../x', 's3://bucket/a//b']) {
      expect(() => parseS3Url(bad), bad).toThrow();
    }
  });

  // 1 GiB takes about 15 s on a 2-core machine; BESH_BIG_BLOB_MB=… shrinks it for quick runs.
  const bigMiB = Number(process.env.BESH_BIG_BLOB_MB ?? 1024);
  it(`streams a ${bigMiB} MiB blob up and back down in bounded memory`, { timeout: 300_000 }, async () => {
    const store = makeStore({ partSize: 8 * MiB }); // the production default
    const base = randomBytes(MiB);
    let sentCrc = 0;
    function* generate(): Generator<Buffer> {
      for (let i = 0; i < bigMiB; i++) {
        const chunk = Buffer.from(base);
        chunk.writeUInt32BE(i, (i * 4099) % (MiB - 4)); // every MiB differs
        sentCrc = crc32(chunk, sentCrc);
        yield chunk;
      }
    }
    const rss0 = process.memoryUsage.rss();
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
    try {
      const t0 = Date.now();
      const up = store.createUpload('files/big.bin');
      await pipeline(Readable.from(generate()), up.stream);
      await up.commit();
      const t1 = Date.now();
      expect(await store.size('files/big.bin')).toBe(bigMiB * MiB);
      let bytes = 0;
      let readCrc = 0;
      for await (const chunk of store.openRead('files/big.bin')) {
        bytes += (chunk as Buffer).length;
        readCrc = crc32(chunk as Buffer, readCrc);
      }
      const t2 = Date.now();
      expect(bytes).toBe(bigMiB * MiB);
      expect(readCrc).toBe(sentCrc);
      console.log(`big blob ${bigMiB} MiB: upload ${(t1 - t0) / 1000}s, read ${(t2 - t1) / 1000}s, RSS ${rss0 >> 20} MiB -> peak ${peak >> 20} MiB`);
      expect(peak - rss0).toBeLessThan(250 * MiB);
    } finally {
      clearInterval(sampler);
      await store.delete('files/big.bin');
    }
  });
});
