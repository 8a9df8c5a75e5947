/**
 * Results while a batch runs on a two-replica cluster (PostgreSQL + S3, behind a round-robin
 * proxy): the batch's shards are worked by both replicas, whose segments are sealed and
 * registered every BESH_SEGMENT_FLUSH_MS in whatever order; each page may be answered by either
 * replica. Every line exactly once, cursors valid across finalization, custom_id lookups.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone } from '../helpers/batches.js';
import { tempDir } from '../helpers/besh-process.js';
import { type Cluster, type ClusterBackend, startCluster, startClusterBackend } from '../helpers/cluster.js';
import { blobsSettled, customIdOf, fileText, follow, getResults, minus, sorted, splitLines } from './results-helpers.js';

describe('results on a two-replica cluster', () => {
  let mock: MockServer;
  let dir: { path: string; remove(): void };
  let backend: ClusterBackend;
  let cluster: Cluster;

  beforeAll(async () => {
    mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 10 });
    dir = tempDir('besh-results-cluster-');
    backend = await startClusterBackend();
    cluster = await startCluster(2, { OPENAI_API_BASE: `${mock.url}/v1`, MAX_WORKERS: '8', BESH_SHARD_LINES: '200', LOG_LEVEL: 'warn' }, { dataDir: dir.path, backend });
  });
  afterAll(async () => {
    await cluster?.stop();
    await backend?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('a cursor followed through either replica gives every line once; old cursors and custom_id lookups work before and after finalization', async () => {
    const N = 2000;
    const client = cluster.client;
    const baseURL = `${cluster.proxy.url}/v1`;
    const input = await upload(client, chatLines(N, { prefix: 'cl', marker: (i) => (i % 10 === 4 ? 'MOCK_FAIL_400' : undefined) }), 'cl.jsonl');
    const b = await client.batches.create({ input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' });

    // Who holds the batch's shard leases while it runs (both replicas must).
    const owners = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const rows = await backend.db.query<{ owner: string }>(`SELECT DISTINCT lease_owner AS owner FROM batch_shards WHERE batch_id = $1 AND state = 'leased'`, [b.id]);
        for (const r of rows) owners.add(r.owner);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // Live lookups, as soon as the first shards have results.
    const lookups = (async () => {
      for (;;) {
        const r = await getResults(baseURL, b.id, { custom_id: 'cl-5' });
        if (r.status === 200) return { line: r.text, status: (await client.batches.retrieve(b.id)).status };
        expect(r.body.error.code).toBe('result_not_ready');
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const [all, out] = await Promise.all([follow(baseURL, b.id, { intervalMs: 100 }), follow(baseURL, b.id, { kind: 'output', intervalMs: 100 })]);
    watching = false;
    await watch;
    const live = await lookups;
    expect(live.status).toBe('in_progress');
    expect([...owners].sort()).toEqual(['r1', 'r2']);

    const done = await waitDone(client, b.id);
    expect(done.status).toBe('completed');
    const outputLines = splitLines(await fileText(baseURL, done.output_file_id));
    const errorLines = splitLines(await fileText(baseURL, done.error_file_id));
    expect(outputLines).toHaveLength(N - N / 10);
    expect(errorLines).toHaveLength(N / 10);

    const read = splitLines(all.pages.join(''));
    expect(read).toHaveLength(N);
    expect(new Set(read.map(customIdOf)).size).toBe(N);
    expect(sorted(read)).toEqual(sorted([...outputLines, ...errorLines]));
    expect(sorted(splitLines(out.pages.join('')))).toEqual(sorted(outputLines));
    expect(all.marks.filter((m, i) => m.status === 'in_progress' && all.pages[i] !== '').length).toBeGreaterThanOrEqual(3);

    for (const m of all.marks.filter((x) => x.status === 'in_progress' && x.linesSoFar > 0 && x.linesSoFar < N).slice(-2)) {
      const r = await getResults(baseURL, b.id, { after: m.cursor });
      expect(r.status).toBe(200);
      expect(r.complete).toBe(true);
      const before = splitLines(all.pages.slice(0, all.marks.indexOf(m) + 1).join(''));
      expect(sorted(splitLines(r.text))).toEqual(sorted(minus(read, before)));
    }

    expect(outputLines).toContain(live.line.trimEnd());
    for (const [cid, kind] of [
      ['cl-5', 'output'],
      ['cl-14', 'error'],
      [`cl-${N - 1}`, 'output'],
    ] as const) {
      const r = await getResults(baseURL, b.id, { custom_id: cid });
      expect(r.status, r.text).toBe(200);
      expect(r.headers.get('x-besh-result-kind')).toBe(kind);
      expect(customIdOf(r.text)).toBe(cid);
      expect([...outputLines, ...errorLines]).toContain(r.text.trimEnd());
    }
    expect((await getResults(baseURL, b.id, { custom_id: 'cl-x' })).body.error.code).toBe('custom_id_not_found');
    // In the bucket, once the finalizer has removed what the run alone needed (after the terminal
    // write): the files, the index, the map, and the segments the files are composed of (S3
    // composes by reference: each file is a manifest of its segments).
    const parts = async (file: string): Promise<string[]> =>
      (JSON.parse((await backend.readObject(`batches/${b.id}/${file}`)).toString('utf8')) as { parts: Array<{ key: string }> }).parts.map((p) => p.key);
    const referenced = [...(await parts('output.jsonl')), ...(await parts('errors.jsonl'))];
    expect(referenced.length).toBeGreaterThan(1);
    const expected = [...['custom-ids.idx', 'errors.jsonl', 'output.jsonl', 'results-map.json'].map((f) => `batches/${b.id}/${f}`), ...referenced].sort();
    const blobs = await blobsSettled((p) => backend.listBlobs(p), `batches/${b.id}/`, expected);
    expect(blobs).toEqual(expected);
    // Read again now that they are gone: the same lines, from the files.
    expect(sorted(splitLines((await getResults(baseURL, b.id)).text))).toEqual(sorted(read));
  });
});
