import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { mockReset } from './mock-client.js';
import { type Service, startBesh, startMock } from './services.js';

export interface Stack {
  besh: Service;
  mock: Service | null;
}

export interface StackSettings {
  /** null: no mock (BESH is pointed at a closed port; fine for uploads). */
  mockLatencyMs: number | null;
  maxWorkers: number;
}

/** Room for the 200 MB upload whatever the default limit is. */
const MAX_FILE_BYTES = 1024 ** 3;

/**
 * Runs `fn` against a fresh mock + BESH (data in `dir`/data), then resets the mock and stops both,
 * also when `fn` throws. Errors carry the end of BESH's output.
 */
export async function withStack<T>(dir: string, s: StackSettings, fn: (stack: Stack) => Promise<T>): Promise<T> {
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  let mock: Service | null = null;
  let besh: Service | null = null;
  try {
    if (s.mockLatencyMs !== null) mock = await startMock(s.mockLatencyMs, dir);
    besh = await startBesh({ dataDir, upstreamUrl: mock?.url ?? 'http://127.0.0.1:9', maxWorkers: s.maxWorkers, maxFileBytes: MAX_FILE_BYTES });
    if (mock) await mockReset(mock.url);
    return await fn({ besh, mock });
  } catch (err) {
    const tail = besh?.outputTail() ?? '';
    if (err instanceof Error && tail !== '') err.message += `\n--- besh output (end) ---\n${tail}`;
    throw err;
  } finally {
    // The mock keeps a per-request-key count in memory: reset it even though it is stopped next.
    if (mock) await mockReset(mock.url).catch(() => undefined);
    await besh?.stop();
    await mock?.stop();
  }
}
