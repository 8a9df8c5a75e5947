import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Yields the given chunks as an async byte source. */
export async function* chunksOf(...chunks: (Buffer | string)[]): AsyncGenerator<Buffer> {
  for (const c of chunks) {
    await Promise.resolve();
    yield typeof c === 'string' ? Buffer.from(c) : c;
  }
}

/** Splits `buf` at the given positions. */
export function splitAt(buf: Buffer, ...cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'besh-jsonl-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
