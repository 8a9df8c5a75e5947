import type { Command } from 'commander';

import { UsageError } from './errors.js';

export const DEFAULT_BASE_URL = 'http://localhost:5000/v1';

/** Options every client command accepts. */
export interface CommonOptions {
  baseUrl?: string;
  apiKey?: string;
  json?: boolean;
}

export interface Connection {
  baseUrl: string;
  apiKey: string | undefined;
}

/** Adds --base-url, --api-key and --json to a client command. */
export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--base-url <url>', `BESH API base URL (env BESH_BASE_URL, else OPENAI_BASE_URL, else ${DEFAULT_BASE_URL})`)
    .option('--api-key <key>', 'API key sent as "Authorization: Bearer …" (env OPENAI_API_KEY)')
    .option('--json', 'print the raw API objects as JSON on stdout (for scripts)');
}

/**
 * Flag, then BESH_BASE_URL, then OPENAI_BASE_URL, then the default. A URL with no path gets `/v1`
 * (so `http://host:5000` works); trailing slashes are dropped. The server's `.env` is not read:
 * its OPENAI_API_KEY is the upstream's key, not the one to send to BESH.
 */
export function resolveConnection(opts: CommonOptions, env: NodeJS.ProcessEnv = process.env): Connection {
  const raw = opts.baseUrl ?? nonEmpty(env.BESH_BASE_URL) ?? nonEmpty(env.OPENAI_BASE_URL) ?? DEFAULT_BASE_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`Invalid --base-url '${raw}': expected a URL such as ${DEFAULT_BASE_URL}.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`Invalid --base-url '${raw}': only http and https are supported.`);
  let path = url.pathname.replace(/\/+$/, '');
  if (path === '') path = '/v1';
  const baseUrl = `${url.protocol}//${url.host}${path}`;
  return { baseUrl, apiKey: opts.apiKey ?? nonEmpty(env.OPENAI_API_KEY) };
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === '' ? undefined : v.trim());
