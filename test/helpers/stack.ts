import type OpenAI from 'openai';
import { afterAll } from 'vitest';

import { type MockOptions, type MockServer, startMockServer } from '../../src/mock/index.js';
import { type BeshProcess, startBesh, tempDir } from './besh-process.js';

export interface Stack {
  mock: MockServer;
  besh: BeshProcess;
  client: OpenAI;
}

/**
 * A `setup(mockOpts, env)` for one test file: each call starts a `besh mock` and a `besh serve`
 * pointed at it (fast retries and progress flushes unless `env` says otherwise); everything is
 * stopped and removed, in reverse order, after the file's tests.
 */
export function stackFactory(prefix: string, baseEnv: Record<string, string> = {}): (mockOpts?: Partial<MockOptions>, env?: Record<string, string>) => Promise<Stack> {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  return async (mockOpts = {}, env = {}) => {
    const mock = await startMockServer({ host: '127.0.0.1', port: 0, ...mockOpts });
    cleanups.push(() => mock.close());
    const dir = tempDir(prefix);
    cleanups.push(() => dir.remove());
    const besh = await startBesh(
      { OPENAI_API_BASE: `${mock.url}/v1`, BESH_RETRY_BASE_MS: '20', BESH_PROGRESS_FLUSH_MS: '100', LOG_LEVEL: 'warn', ...baseEnv, ...env },
      { dataDir: dir.path },
    );
    cleanups.push(() => besh.kill());
    return { mock, besh, client: besh.client };
  };
}
