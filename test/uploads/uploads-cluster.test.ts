import { ConflictError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, readJsonl, waitDone } from '../helpers/batches.js';
import { tempDir } from '../helpers/besh-process.js';
import { type Cluster, startCluster } from '../helpers/cluster.js';
import { addPart, createUpload, cut, eventually, lineOfBytes, md5 } from './helpers.js';

let mock: MockServer;
let cluster: Cluster;
const dir = tempDir('besh-uploads-cluster-');

beforeAll(async () => {
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 0 });
  // Uploads expire after 4 s and every replica sweeps every 200 ms (both race to expire each one).
  cluster = await startCluster(2, { OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'info', BESH_UPLOAD_TTL: '4s', BESH_SWEEP_INTERVAL_MS: '200' }, { dataDir: dir.path });
});

afterAll(async () => {
  await cluster?.stop();
  await mock?.close();
  dir.remove();
});

const r = (i: number) => cluster.replicas[i]!.client;

describe('Uploads API on a two-replica cluster (PostgreSQL + S3)', () => {
  it('created on one replica, parts on both, completed on the other: the File is whole, its parts gone from S3, and it runs as a batch', async () => {
    const text = chatLines(60, { prefix: 'cl' });
    const buf = Buffer.from(text);
    const parts = cut(buf, [1234, 2500, 4000]);
    const u = await createUpload(r(0), buf.length);
    // Each part to the replica the part's index names, the last two in parallel.
    const ids = [await addPart(r(1), u.id, parts[0]!), await addPart(r(0), u.id, parts[1]!), ...(await Promise.all([addPart(r(1), u.id, parts[2]!), addPart(r(0), u.id, parts[3]!)]))];
    expect(await cluster.backend.listBlobs(`uploads/${u.id}/`)).toHaveLength(4);
    const done = await r(1).uploads.complete(u.id, { part_ids: ids, md5: md5(buf) });
    expect(done.status).toBe('completed');
    expect(await (await r(0).files.content(done.file!.id)).text()).toBe(text);
    expect(await cluster.backend.listBlobs(`uploads/${u.id}/`)).toEqual([]);

    const batch = await cluster.client.batches.create({ input_file_id: done.file!.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const finished = await waitDone(cluster.client, batch.id, 60_000);
    expect(finished.status).toBe('completed');
    expect(finished.request_counts).toEqual({ total: 60, completed: 60, failed: 0 });
    expect((await readJsonl(cluster.client, finished.output_file_id)).length).toBe(60);
  });

  it('completed on both replicas at once: one File, and neither answer contradicts the other', async () => {
    const buf = Buffer.from(chatLines(2000));
    const u = await createUpload(r(0), buf.length);
    const ids = [];
    for (const p of cut(buf, [buf.length >> 1])) ids.push(await addPart(r(0), u.id, p));
    const before = (await cluster.client.files.list()).data.length;
    const answers = await Promise.allSettled([r(0).uploads.complete(u.id, { part_ids: ids }), r(1).uploads.complete(u.id, { part_ids: ids })]);
    const ok = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ok.map((x) => x.file?.id)).size).toBe(1);
    for (const a of answers) {
      if (a.status === 'rejected') {
        expect(a.reason).toBeInstanceOf(ConflictError);
        expect((a.reason as ConflictError).code).toBe('upload_in_progress');
      }
    }
    expect((await cluster.client.files.list()).data.length).toBe(before + 1);
  });

  it('cancelled on the other replica: its parts are removed from S3', async () => {
    const u = await createUpload(r(0), 10_000);
    await addPart(r(0), u.id, Buffer.from(lineOfBytes(500)));
    await addPart(r(1), u.id, Buffer.from(lineOfBytes(500)));
    expect((await r(1).uploads.cancel(u.id)).status).toBe('cancelled');
    expect(await cluster.backend.listBlobs(`uploads/${u.id}/`)).toEqual([]);
    expect((await r(0).uploads.cancel(u.id)).status).toBe('cancelled');
  });

  it('expiry: exactly one replica expires it (compare-and-set), and the parts leave S3', async () => {
    const u = await createUpload(r(1), 10_000);
    await addPart(r(0), u.id, Buffer.from(lineOfBytes(500)));
    await addPart(r(1), u.id, Buffer.from(lineOfBytes(500)));
    expect(await cluster.backend.listBlobs(`uploads/${u.id}/`)).toHaveLength(2);
    await eventually(() => cluster.backend.listBlobs(`uploads/${u.id}/`), (k) => k.length === 0, 10_000, 'the parts of the expired upload to be removed');
    // A few more sweeps of both replicas: still one expiry in the logs.
    await new Promise((res) => setTimeout(res, 600));
    const expiries = cluster.replicas.flatMap((x) => x.output().split('\n')).filter((l) => l.includes('"upload expired"') && l.includes(u.id));
    expect(expiries).toHaveLength(1);
    expect((await r(0).uploads.cancel(u.id).catch((e: unknown) => e)) as ConflictError).toBeInstanceOf(ConflictError);
  });
});
