import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { type BeshProcess, freePort, startBesh, tempDir } from '../helpers/besh-process.js';
import { expectFairShares, localNginxConf, NGINX, type NginxProcess, NO_NGINX_MESSAGE, receivedBy, runBatch, startNginx, untilReceived } from './topology-helpers.js';

/**
 * The original 8-GPU topology without Docker or GPUs: eight `besh mock` servers (one per "GPU"),
 * then either nginx with the repository's nginx-8gpu.conf in front of them, or BESH's own pool
 * pointed at all eight. A batch spreads evenly; one server killed mid-batch costs nothing.
 */
const N = 3000;
const MOCK = { latencyMs: 10, capacity: 16 };
const BESH_ENV = { MAX_WORKERS: '64', LOG_LEVEL: 'warn', BESH_RETRY_BASE_MS: '50', BESH_RETRY_MAX_MS: '500', BESH_MAX_ATTEMPTS: '8' };

async function startMocks(): Promise<MockServer[]> {
  return Promise.all(Array.from({ length: 8 }, () => startMockServer({ port: 0, ...MOCK })));
}

function topology(name: string, start: (mocks: MockServer[], dir: string) => Promise<{ besh: BeshProcess; stop(): Promise<void> }>, skip = false): void {
  describe.skipIf(skip)(name, () => {
    const dir = tempDir('besh-topology-');
    let mocks: MockServer[] = [];
    let stack: { besh: BeshProcess; stop(): Promise<void> } | null = null;

    beforeAll(async () => {
      mocks = await startMocks();
      stack = await start(mocks, dir.path);
    }, 30_000);

    afterAll(async () => {
      await stack?.stop();
      await Promise.all(mocks.map((m) => m.close()));
      dir.remove();
    }, 30_000);

    it(`a ${N}-request batch completes and every server gets a fair share`, async () => {
      await runBatch(stack!.besh.client, N, 'fair');
      expect(mocks.reduce((n, m) => n + receivedBy(m), 0)).toBe(N);
      expectFairShares(mocks);
    }, 60_000);

    it('one server killed mid-batch: the batch completes, every request answered exactly once', async () => {
      for (const m of mocks) m.reset();
      const victim = mocks[3]!;
      await runBatch(stack!.besh.client, N, 'kill', async () => {
        await untilReceived(mocks, N / 4);
        await victim.close();
      });
      const survivors = mocks.filter((m) => m !== victim);
      // What the killed one had in flight was sent again elsewhere; nothing else was.
      expect(survivors.reduce((n, m) => n + receivedBy(m), 0)).toBeGreaterThanOrEqual(N - receivedBy(victim));
    }, 60_000);
  });
}

topology(
  'topology: BESH → nginx (nginx-8gpu.conf, least_conn) → 8 mocks',
  async (mocks, dir) => {
    const port = await freePort();
    const nginx: NginxProcess = await startNginx(dir, localNginxConf(dir, mocks.map((m) => `127.0.0.1:${m.port}`), port), port);
    let besh: BeshProcess;
    try {
      besh = await startBesh({ ...BESH_ENV, OPENAI_API_BASE: `http://127.0.0.1:${port}/v1` }, { dataDir: dir });
    } catch (err) {
      await nginx.stop();
      throw err;
    }
    return {
      besh,
      stop: async () => {
        await besh.stop();
        await nginx.stop();
      },
    };
  },
  NGINX === null,
);

if (NGINX === null) {
  describe('topology: nginx', () => {
    it.skip(NO_NGINX_MESSAGE, () => undefined);
  });
}

topology('topology: BESH pool (OPENAI_API_BASE = 8 URLs) → 8 mocks', async (mocks, dir) => {
  const besh = await startBesh(
    { ...BESH_ENV, OPENAI_API_BASE: mocks.map((m) => `${m.url}/v1`).join(','), BESH_HEALTH_INTERVAL_MS: '500', BESH_EJECT_AFTER_FAILURES: '3' },
    { dataDir: dir },
  );
  return { besh, stop: async () => void (await besh.stop()) };
});
