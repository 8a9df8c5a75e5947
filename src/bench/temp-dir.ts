import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { track } from './cleanup.js';

export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

/** A fresh directory under the system temp dir, removed on release or on exit. */
export async function makeTempDir(prefix: string, parent = tmpdir()): Promise<TempDir> {
  const path = await mkdtemp(join(parent, prefix));
  const remove = track({
    label: `temp dir ${path}`,
    release: () => rm(path, { recursive: true, force: true }),
    releaseSync: () => rmSync(path, { recursive: true, force: true }),
  });
  return { path, remove };
}
