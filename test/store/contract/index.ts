import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { MetaStore } from '../../../src/store/meta-store.js';
import { analyticsContract } from './analytics.js';
import { batchesContract } from './batches.js';
import { ContractContext, type ContractOptions } from './context.js';
import { deletionContract } from './deletion.js';
import { feedContract } from './feed.js';
import { filesContract } from './files.js';
import { leasesContract } from './leases.js';
import { liveReadsContract } from './live-reads.js';
import { projectsAndKeysContract } from './projects-keys.js';
import { replicasContract } from './replicas.js';
import { segmentsContract } from './segments.js';
import { transitionContract } from './transition.js';
import { uploadsContract } from './uploads.js';
import { webhooksContract } from './webhooks.js';

export type { ContractOptions } from './context.js';
export * from './fixtures.js';

/**
 * The behaviour every MetaStore must have, run on each dialect (undici's `cacheStoreTests`
 * pattern). `makeStore` returns a fresh, empty store for each test; the contract closes it, and
 * any peer it opened, afterwards.
 */
export function metaStoreContract(name: string, makeStore: () => Promise<MetaStore>, opts: ContractOptions = {}): void {
  describe(`MetaStore contract: ${name}`, () => {
    const t = new ContractContext(opts);
    beforeEach(async () => {
      t.begin(await makeStore());
    });
    afterEach(async () => {
      await t.end();
    });

    filesContract(t);
    batchesContract(t);
    transitionContract(t);
    projectsAndKeysContract(t);
    analyticsContract(t);
    leasesContract(t);
    liveReadsContract(t);
    segmentsContract(t);
    replicasContract(t);
    deletionContract(t);
    feedContract(t);
    uploadsContract(t);
    webhooksContract(t);

    it('close is idempotent', async () => {
      await t.store.close();
      await expect(t.store.close()).resolves.toBeUndefined();
    });
  });
}
