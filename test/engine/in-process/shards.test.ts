import { describe, expect, it } from 'vitest';

import type { BlobPart } from '../../../src/store/blob-store.js';
import { expectedUsage, reply, useEngineHarness, waitUntil } from '../../helpers/engine-harness.js';

const harness = useEngineHarness();

/** custom_ids of JSONL text, in order. */
const idsOf = (text: string): string[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { custom_id: string }).custom_id);

describe('in-process engine: a batch is cut into shards', () => {
  it('runs the shards validateInput plans; the result files are the concatenation of every shard segment, each line once', async () => {
    const h = harness();
    await h.startEngine({ maxWorkers: 4, opts: { shardLines: 10 } });
    const { file, ids } = await h.writeInput(35, { prefix: 's' });
    const index = (id: string): number => Number(id.slice(2));
    // Every 7th line is refused (terminal 400: error file); every 11th fails once with a 503, then answers.
    h.upstream.script((r) => {
      const i = index(r.customId);
      if (i % 7 === 3) return reply.status(400);
      if (i % 11 === 5 && r.attempt === 1) return reply.status(503);
      return reply.ok({ delayMs: 1 + (i % 3) });
    });
    // The parts each compose gets, read before they are composed (segments are removed afterwards).
    const parts = new Map<string, Array<BlobPart & { text: string }>>();
    h.blobs.hooks.beforeCompose = async (key, ps) => {
      const read = [];
      for (const p of ps) read.push({ ...p, text: await h.blobs.text(p.key, p.bytes) });
      parts.set(key.endsWith('/output.jsonl') ? 'output' : 'error', read);
    };

    const b = await h.createBatch(file);
    const done = await h.waitDone(b.id);
    expect(done.status).toBe('completed');

    // The plan: shardSize(35 lines, BESH_SHARD_LINES=10) = 10 → 10, 10, 10, 5, contiguous over the file.
    const shards = await h.store.listShards(b.id);
    expect(shards.map((s) => [s.shardNo, s.firstLine, s.requests])).toEqual([
      [0, 1, 10],
      [1, 11, 10],
      [2, 21, 10],
      [3, 31, 5],
    ]);
    expect(shards[0]!.startByte).toBe(0);
    for (let i = 1; i < shards.length; i++) expect(shards[i]!.startByte).toBe(shards[i - 1]!.endByte);
    expect(shards.at(-1)!.endByte).toBe(file.bytes);
    for (const s of shards) {
      expect(s.state).toBe('done');
      expect(s.outcome).toBe('completed');
      expect(s.owner).toBeNull();
      expect(s.completed + s.failed).toBe(s.requests);
    }

    const r = await h.readResults(done);
    const out = idsOf(r.outputText);
    const err = idsOf(r.errorText);
    // Each custom_id exactly once over the two files.
    expect([...out, ...err].sort()).toEqual([...ids].sort());
    expect(err.sort()).toEqual(ids.filter((id) => index(id) % 7 === 3).sort());
    for (const l of r.error) expect(l['response'].status_code).toBe(400);
    for (const l of r.output) expect(l['response'].status_code).toBe(200);
    // The retried lines were sent twice, written once.
    for (const id of ids.filter((x) => index(x) % 11 === 5 && index(x) % 7 !== 3)) {
      expect(h.upstream.requests.filter((q) => q.customId === id).map((q) => q.outcome)).toEqual(['status 503', 'ok']);
    }

    // Each file is exactly its parts, in shard order, and each part holds only its shard's lines.
    for (const [kind, text] of [['output', r.outputText], ['error', r.errorText]] as const) {
      const ps = parts.get(kind)!;
      expect(ps.map((p) => p.text).join('')).toBe(text);
      const shardOfPart = ps.map((p) => Number(/-(\d{6})-\d{6}-\d{6}\.jsonl$/.exec(p.key)![1]));
      expect(shardOfPart).toEqual([...shardOfPart].sort((a, b) => a - b));
      ps.forEach((p, i) => {
        const s = shards[shardOfPart[i]!]!;
        for (const id of idsOf(p.text)) {
          expect(index(id) + 1).toBeGreaterThanOrEqual(s.firstLine);
          expect(index(id) + 1).toBeLessThan(s.firstLine + s.requests);
        }
      });
    }
    // Every shard that answered something has its segment in the output.
    expect(new Set(parts.get('output')!.map((p) => p.key.split('/').at(-1)!.slice(7, 13))).size).toBe(4);

    // Counters and usage match the files and the shards.
    expect(done.requestCounts).toEqual({ total: 35, completed: out.length, failed: err.length });
    expect(done.usage).toEqual(expectedUsage(out));
    const shardUsage = shards.reduce((n, s) => n + s.usage.totalTokens, 0);
    expect(shardUsage).toBe(done.usage.totalTokens);
    const outFile = (await h.store.getFile(done.outputFileId!))!;
    const errFile = (await h.store.getFile(done.errorFileId!))!;
    expect(outFile).toMatchObject({ purpose: 'batch_output', batchId: b.id, lines: out.length, bytes: Buffer.byteLength(r.outputText) });
    expect(errFile).toMatchObject({ purpose: 'batch_output', batchId: b.id, lines: err.length, bytes: Buffer.byteLength(r.errorText) });
    // The segments are removed once the files are recorded (right after the terminal write).
    await waitUntil(async () => (await h.store.listSegments(b.id)).length === 0, 'the segments to be forgotten', 1_000);
    for (const p of [...parts.values()].flat()) expect(await h.blobs.size(p.key)).toBeNull();
    // Validation read the input once, whole; each shard read its own byte range.
    expect(h.fullReads(file.blobKey)).toHaveLength(1);
    const ranged = h.blobs.reads.filter((x) => x.key === file.blobKey && x.start !== undefined);
    expect(ranged.map((x) => [x.start, x.end])).toEqual(shards.map((s) => [s.startByte, s.endByte - 1]));
  });
});
