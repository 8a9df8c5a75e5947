import { defineConfig } from 'vitest/config';

/**
 * The API suites a second time, against a two-replica cluster (PostgreSQL and an S3 protocol
 * server, behind a round-robin proxy, so each call may land on either replica): whatever the API
 * promises on one node it must keep on a cluster. Tests that look at a single node's files on disk
 * use `BeshProcess.listBlobs`, which reads the bucket here.
 */
export default defineConfig({
  test: {
    include: [
      'test/api/batches-api.test.ts',
      'test/api/files.test.ts',
      'test/api/validation.test.ts',
      'test/security/tenancy.test.ts',
      'test/security/quotas.test.ts',
      'test/security/keys-api.test.ts',
      'test/security/hostile-batches.test.ts',
      'test/security/secrets-and-headers.test.ts',
      'test/cli/batch-commands.test.ts',
      'test/dashboard/browser.test.ts',
    ],
    env: { BESH_TEST_CLUSTER: '2' },
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most files wait on child processes and timers: two at once halve the wall time on 2 cores.
    maxWorkers: 2,
    minWorkers: 2,
    reporters: ['default'],
  },
});
