import { type ApiKeyObject, mintApiKey, nowSeconds, type ProjectLimits, type ProjectUsage, serializeApiKey } from '../domain/index.js';
import { type CommonOptions, resolveConnection } from './client/connection.js';
import { ApiError, CliError } from './client/errors.js';
import { BeshClient } from './client/http-client.js';
import type { ProjectView } from './client/types.js';
import { type LocalStoreOptions, usageFailure, withLocalStore } from './local-store.js';

export interface ProjectRow {
  name: string;
  usage: ProjectUsage;
  /** The project's own settings: null = the server's default, 0 = no limit. */
  limits: ProjectLimits;
}

/** What `besh keys` and `besh projects` do, on the data directory or over HTTP with an admin key. */
export interface KeyAdmin {
  createKey(project: string, admin: boolean, name: string | null): Promise<ApiKeyObject & { key: string }>;
  listKeys(): Promise<ApiKeyObject[]>;
  /** False when there is no active key with that id. */
  revokeKey(id: string): Promise<boolean>;
  listProjects(): Promise<ProjectRow[]>;
  /** Sets the given limits; returns the project's own limits after. */
  setLimits(project: string, limits: Partial<ProjectLimits>): Promise<ProjectLimits>;
}

export type KeyAdminOptions = LocalStoreOptions & CommonOptions;

/** The data directory itself (`--data-dir`): works before any key exists. */
function localAdmin(opts: LocalStoreOptions): KeyAdmin {
  return {
    createKey: (project, admin, name) =>
      withLocalStore(opts, async (store) => {
        const { record, secret } = mintApiKey(project, admin, name, nowSeconds());
        await store.insertApiKey(record);
        return { ...serializeApiKey(record), key: secret };
      }),
    listKeys: () => withLocalStore(opts, async (store) => (await store.listApiKeys()).map(serializeApiKey)),
    revokeKey: (id) => withLocalStore(opts, (store) => store.revokeApiKey(id, nowSeconds())),
    listProjects: () =>
      withLocalStore(opts, async (store) =>
        Promise.all((await store.listProjects()).map(async (name) => ({ name, usage: await store.projectUsage(name), limits: await store.getProjectLimits(name) }))),
      ),
    setLimits: (project, limits) =>
      withLocalStore(opts, async (store) => {
        await store.setProjectLimits(project, limits);
        return store.getProjectLimits(project);
      }),
  };
}

const fromView = (l: ProjectView['own_limits']): ProjectLimits => ({
  maxStoredBytes: l.max_stored_bytes,
  maxActiveBatches: l.max_active_batches,
  maxQueuedRequests: l.max_queued_requests,
});

/** A BESH server (`--base-url`) with an admin key (`--api-key` / OPENAI_API_KEY). */
function remoteAdmin(client: BeshClient): KeyAdmin {
  return {
    createKey: (project, admin, name) => client.createKey({ project, admin, name }),
    listKeys: async () => (await client.listKeys()).data,
    revokeKey: async (id) => {
      try {
        return (await client.revokeKey(id)).revoked;
      } catch (err) {
        if (err instanceof ApiError && err.code === 'key_not_found') return false;
        throw err;
      }
    },
    listProjects: async () =>
      (await client.listProjects()).data.map((p) => ({
        name: p.name,
        usage: { storedBytes: p.stored_bytes, activeBatches: p.active_batches, queuedRequests: p.queued_requests },
        limits: fromView(p.own_limits),
      })),
    setLimits: async (project, l) => {
      const body: Record<string, number | null> = {};
      if (l.maxStoredBytes !== undefined) body.max_stored_bytes = l.maxStoredBytes;
      if (l.maxActiveBatches !== undefined) body.max_active_batches = l.maxActiveBatches;
      if (l.maxQueuedRequests !== undefined) body.max_queued_requests = l.maxQueuedRequests;
      return fromView((await client.setProjectLimits(project, body)).own_limits);
    },
  };
}

/**
 * Runs an operator command: over HTTP when `--base-url` is given, else on the data directory.
 * Errors print as `besh <command>: …`; usage errors exit 2, server errors 1.
 */
export async function runKeyAdmin(command: string, opts: KeyAdminOptions, fn: (admin: KeyAdmin) => Promise<void>): Promise<void> {
  if (opts.baseUrl === undefined) return fn(localAdmin(opts));
  let admin: KeyAdmin;
  try {
    admin = remoteAdmin(new BeshClient(resolveConnection(opts)));
  } catch (err) {
    return usageFailure(command)((err as Error).message);
  }
  try {
    await fn(admin);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    process.stderr.write(`besh ${command}: ${err.message}\n`);
    process.exit(err.exitCode);
  }
}
