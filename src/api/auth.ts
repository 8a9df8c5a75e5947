import { timingSafeEqual } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { AuthenticationError, DEFAULT_PROJECT, hashApiKey, nowSeconds, type Principal } from '../domain/index.js';
import type { MetaStore } from '../store/meta-store.js';
import { projectOf } from './tenancy.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the request acts for; set on every /v1 route before its handler runs. */
    principal: Principal;
  }
}

/** BESH without keys: everyone acts as an admin of the default project (the original's behaviour). */
const OPEN: Principal = Object.freeze({ project: DEFAULT_PROJECT, admin: true, keyId: null, auth: 'open' });
const BOOTSTRAP: Principal = Object.freeze({ project: DEFAULT_PROJECT, admin: true, keyId: null, auth: 'keys' });

/** How often a key's `last_used_at` is written at most. */
const TOUCH_EVERY_SECONDS = 60;

/**
 * Turns an `Authorization: Bearer …` header into a Principal. Keys live in the store as SHA-256
 * hashes; a lookup by hash per request (an indexed read) means a key made or revoked by
 * `besh keys` in another process counts at once. Once any key has existed, BESH never runs
 * open again (revoking the last key must not open the doors).
 */
export class KeyAuthority {
  readonly #store: MetaStore;
  readonly #adminHash: Buffer | null;
  #keysExist = false;
  readonly #touched = new Map<string, number>();

  constructor(store: MetaStore, adminKey: string | null) {
    this.#store = store;
    this.#adminHash = adminKey === null ? null : Buffer.from(hashApiKey(adminKey), 'hex');
  }

  /** `open` while no key is configured; `keys` from the first key on. */
  async mode(): Promise<'open' | 'keys'> {
    if (this.#adminHash !== null || this.#keysExist) return 'keys';
    this.#keysExist = (await this.#store.countApiKeys()) > 0;
    return this.#keysExist ? 'keys' : 'open';
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if ((await this.mode()) === 'open') return OPEN;
    const secret = bearer(authorization);
    // Messages never echo the key: it would land in client logs and screenshots.
    if (secret === null) {
      throw new AuthenticationError(
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        { code: 'missing_api_key' },
      );
    }
    const hash = hashApiKey(secret);
    if (this.#adminHash !== null && timingSafeEqual(this.#adminHash, Buffer.from(hash, 'hex'))) return BOOTSTRAP;
    const key = await this.#store.findApiKeyByHash(hash);
    if (key === null || key.revokedAt !== null) {
      throw new AuthenticationError(key === null ? 'Incorrect API key provided.' : 'This API key has been revoked.', { code: 'invalid_api_key' });
    }
    this.#touch(key.id);
    return { project: key.project, admin: key.admin, keyId: key.id, auth: 'keys' };
  }

  #touch(id: string): void {
    const now = nowSeconds();
    if (now - (this.#touched.get(id) ?? 0) < TOUCH_EVERY_SECONDS) return;
    this.#touched.set(id, now);
    void this.#store.touchApiKey(id, now).catch(() => undefined);
  }
}

function bearer(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/**
 * Every /v1 route needs a key once keys exist (CORS preflights excepted: browsers send them
 * without credentials). /health, /metrics (its own token) and the page's static files stay open:
 * the page holds no data, it asks for a key and sends it with every call.
 */
export function installAuth(app: FastifyInstance, authority: KeyAuthority): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    // By matched route, not by URL prefix: no spelling of a path can reach a /v1 handler unchecked.
    const route = req.routeOptions.url;
    if (req.method === 'OPTIONS' || (route !== undefined && PUBLIC_ROUTES.has(route))) return;
    req.principal = await authority.authenticate(req.headers.authorization);
    // A project key naming another project is refused on every route, reads included.
    if (!req.principal.admin) projectOf(req);
  });
}

const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/', '/assets/:name', '/health', '/metrics']);
