import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { afterAll, describe, expect, it } from 'vitest';

import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';

/**
 * 2 GiB by default: about 20 s on the 2-core test machine when it is otherwise idle (parts ~6.5 s,
 * completion ~13.5 s), up to ~70 s when other suites load it. BESH_TEST_UPLOAD_MB=512 for a quick
 * run. Parts are generated on the fly and streamed (never a whole part in the test's memory either).
 */
const TOTAL_MB = Number(process.env.BESH_TEST_UPLOAD_MB ?? 2048);
const MiB = 1024 * 1024;
const PART_MB = 64;
/** BESH's resident memory must stay far below the size of what it takes in. */
const RSS_BOUND_MB = 300;

const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** VmRSS of a process in MB, or null once it is gone. */
function rssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** 1 MiB of request lines, exactly. */
function block(): Buffer {
  const line = (i: number, pad: number): string =>
    `${JSON.stringify({ custom_id: `b-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'mock-model', messages: [{ role: 'user', content: 'x'.repeat(pad) }] } })}\n`;
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size + 800 < MiB; i++) {
    const l = line(i, 200);
    lines.push(l);
    size += l.length;
  }
  const last = line(lines.length, 0);
  lines.push(line(lines.length, MiB - size - last.length));
  const b = Buffer.from(lines.join(''));
  expect(b.length).toBe(MiB);
  return b;
}

/** POST a part whose `data` is `mb` MiB of `chunk`, streamed from a generator. */
async function sendPart(besh: BeshProcess, uploadId: string, chunk: Buffer, mb: number, onChunk: (b: Buffer) => void): Promise<string> {
  const boundary = `----t-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="part"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* body(): AsyncGenerator<Buffer> {
    yield head;
    for (let i = 0; i < mb; i++) {
      onChunk(chunk);
      yield chunk;
    }
    yield tail;
  }
  const res = await fetch(`${besh.baseURL}/uploads/${uploadId}/parts`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + mb * MiB + tail.length) },
    body: body(),
    duplex: 'half',
  });
  const json = (await res.json()) as { id: string };
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json.id;
}

describe(`Uploads API: ${TOTAL_MB} MiB in ${PART_MB} MiB parts`, () => {
  it('is stored and checked line by line in bounded memory', async () => {
    const dir = tempDir('besh-upload-large-');
    cleanups.push(() => dir.remove());
    const besh = await startBesh({ OPENAI_API_BASE: 'http://127.0.0.1:9/v1', BESH_HEALTH_INTERVAL_MS: '0', LOG_LEVEL: 'warn' }, { dataDir: dir.path, local: true });
    cleanups.push(() => besh.kill());
    const pid = besh.child.pid!;
    const idle = rssMb(pid)!;
    const samples: number[] = [];
    const sampler = setInterval(() => {
      const v = rssMb(pid);
      if (v !== null) samples.push(v);
    }, 100);
    cleanups.push(() => clearInterval(sampler));

    const chunk = block();
    const total = TOTAL_MB * MiB;
    const t0 = Date.now();
    const upload = await besh.client.uploads.create({ bytes: total, filename: 'large.jsonl', mime_type: 'application/jsonl', purpose: 'batch' });
    const md5 = createHash('md5');
    const ids: string[] = [];
    for (let sent = 0; sent < TOTAL_MB; sent += PART_MB) ids.push(await sendPart(besh, upload.id, chunk, Math.min(PART_MB, TOTAL_MB - sent), (b) => md5.update(b)));
    const tParts = Date.now();
    const cpuParts = cpuSeconds(pid);
    expect((await besh.listBlobs(`uploads/${upload.id}/`)).length).toBe(ids.length);
    const done = await besh.client.uploads.complete(upload.id, { part_ids: ids, md5: md5.digest('hex') }, { timeout: 600_000 });
    const tDone = Date.now();
    const cpuComplete = cpuSeconds(pid) - cpuParts;
    clearInterval(sampler);

    expect(done.status).toBe('completed');
    expect(done.file!.bytes).toBe(total);
    expect(await besh.listBlobs(`uploads/${upload.id}/`)).toEqual([]);
    expect(await besh.listBlobs('files/')).toEqual([`files/${done.file!.id}.jsonl`]);

    const peak = Math.max(...samples);
    console.log(
      `large upload: ${TOTAL_MB} MiB in ${ids.length} parts: parts ${((tParts - t0) / 1000).toFixed(1)} s (${(TOTAL_MB / ((tParts - t0) / 1000)).toFixed(0)} MiB/s), ` +
        `complete ${((tDone - tParts) / 1000).toFixed(1)} s (${(TOTAL_MB / ((tDone - tParts) / 1000)).toFixed(0)} MiB/s, BESH CPU ${cpuComplete.toFixed(1)} s); RSS idle ${idle.toFixed(0)} MB, peak ${peak.toFixed(0)} MB over ${samples.length} samples`,
    );
    expect(samples.length).toBeGreaterThan(10);
    expect(peak).toBeLessThan(RSS_BOUND_MB);
    expect(peak).toBeLessThan(TOTAL_MB / 2);
  }, 600_000);
});
