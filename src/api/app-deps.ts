import type { Config } from '../config.js';
import type { Engine } from '../engine/engine.js';
import type { BlobStore } from '../store/blob-store.js';
import type { MetaStore } from '../store/meta-store.js';
import type { UpstreamStatusSource } from '../upstream/upstream.js';
import type { KeyAuthority } from './auth.js';
import type { Metrics } from './metrics.js';

/** Everything the HTTP layer talks to; built by runtime/start.ts (or a test). */
export interface AppDeps {
  config: Config;
  store: MetaStore;
  blobs: BlobStore;
  engine: Engine;
  upstream: UpstreamStatusSource;
  /** Directory of the built dashboard (index.html and assets). */
  webDir: string;
  /** Prometheus metrics; buildApp creates them when absent. */
  metrics?: Metrics;
  /** API-key checks; buildApp creates them from the store and BESH_ADMIN_KEY when absent. */
  auth?: KeyAuthority;
}
