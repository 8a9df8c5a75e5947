import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** Loads ./.env (if present) without overriding variables already set in the environment. */
export function loadDotEnv(path = resolve(process.cwd(), '.env')): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

/** Flags win over the environment; both use the environment variable names. */
export function mergeFlags(env: NodeJS.ProcessEnv, flags: Record<string, string | number | undefined>, names: Record<string, string>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  for (const [flag, variable] of Object.entries(names)) {
    const v = flags[flag];
    if (v !== undefined) out[variable] = String(v);
  }
  return out;
}
