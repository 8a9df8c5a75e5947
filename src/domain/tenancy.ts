import { createHash } from 'node:crypto';

import { newApiKeyId, newApiKeySecret } from './ids.js';

/**
 * Projects, API keys and who is calling. Every file and batch belongs to one project; a key
 * belongs to one project and may be an admin key (sees every project).
 */

/** The project of everything created while BESH runs without keys (and of data from before keys). */
export const DEFAULT_PROJECT = 'default';

const PROJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const isValidProjectName = (name: string): boolean => PROJECT_NAME.test(name);
export const PROJECT_NAME_RULE = '1–64 characters: letters, digits, "_", "." and "-", starting with a letter or digit';

export interface ApiKeyRecord {
  /** Public id (`key_…`): shown in lists and used to revoke; never authenticates. */
  id: string;
  project: string;
  admin: boolean;
  name: string | null;
  /** SHA-256 of the secret, hex. The secret itself is never stored. */
  hash: string;
  /** The first characters of the secret, to recognise a key in a list (`besh-sk-AbCd…`). */
  prefix: string;
  createdAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

/** Who a request acts for. */
export interface Principal {
  project: string;
  /** Admin keys (and BESH without keys) see and act on every project. */
  admin: boolean;
  /** Null without keys (open mode) and for the BESH_ADMIN_KEY bootstrap key. */
  keyId: string | null;
  /** `open`: BESH runs without keys; `keys`: a key authenticated this request. */
  auth: 'open' | 'keys';
}

/** Optional per-project limits; null = no limit. */
export interface ProjectLimits {
  maxStoredBytes: number | null;
  maxActiveBatches: number | null;
  maxQueuedRequests: number | null;
}

/** What a project holds now, measured against its limits. */
export interface ProjectUsage {
  storedBytes: number;
  /** Batches not yet in a terminal status. */
  activeBatches: number;
  /** Requests of unfinished batches not yet answered (a validating batch counts its file's lines). */
  queuedRequests: number;
}

/** Can `p` see an object of `project`? Another project's objects answer 404 as missing ones do. */
export const canSee = (p: Principal, project: string): boolean => p.admin || p.project === project;

/** The project filter of a list: an admin sees all (or the one asked for), anyone else their own. */
export function scopeOf(p: Principal, asked?: string): string | undefined {
  if (!p.admin) return p.project;
  return asked === undefined || asked === '' ? undefined : asked;
}

/** The stored form of a key's secret. */
export const hashApiKey = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** A new key: the record to store and its secret, to show once. */
export function mintApiKey(project: string, admin: boolean, name: string | null, now: number): { record: ApiKeyRecord; secret: string } {
  const secret = newApiKeySecret();
  const record: ApiKeyRecord = {
    id: newApiKeyId(),
    project,
    admin,
    name: name === null ? null : name.trim().slice(0, 200) || null,
    hash: hashApiKey(secret),
    prefix: `${secret.slice(0, 12)}…`,
    createdAt: now,
    revokedAt: null,
    lastUsedAt: null,
  };
  return { record, secret };
}

/** A key as the API and the CLI show it: never its secret or its hash. */
export interface ApiKeyObject {
  id: string;
  object: 'api_key';
  project: string;
  admin: boolean;
  name: string | null;
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export function serializeApiKey(k: ApiKeyRecord): ApiKeyObject {
  return {
    id: k.id,
    object: 'api_key',
    project: k.project,
    admin: k.admin,
    name: k.name,
    prefix: k.prefix,
    created_at: k.createdAt,
    last_used_at: k.lastUsedAt,
    revoked_at: k.revokedAt,
  };
}
