import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

import { randomId } from '../domain/index.js';
import type { ReplicaIdentity } from '../engine/engine-context.js';

/** BESH's version, from the package.json it ships with. */
export function beshVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Who this process is in the cluster. The default id is unique per process (host, pid and a
 * random suffix), so a restarted replica never mistakes a dead process's leases for its own.
 */
export function replicaIdentity(configured: string | null): ReplicaIdentity {
  const host = hostname();
  return { id: configured ?? `${host}-${process.pid}-${randomId(4)}`, host, pid: process.pid, version: beshVersion() };
}
