import { Command } from 'commander';

import {
  type ApiKeyRecord,
  DEFAULT_PROJECT,
  hashApiKey,
  isValidProjectName,
  newApiKeyId,
  newApiKeySecret,
  nowSeconds,
  PROJECT_NAME_RULE,
} from '../domain/index.js';
import { formatTime, printJson, table } from './client/format.js';
import { type LocalStoreOptions as StoreOptions, usageFailure, withLocalStore, withLocalStoreOptions as withStoreOptions } from './local-store.js';

const fail = usageFailure('keys');

const view = (k: ApiKeyRecord) => ({
  id: k.id,
  project: k.project,
  admin: k.admin,
  name: k.name,
  prefix: k.prefix,
  created_at: k.createdAt,
  last_used_at: k.lastUsedAt,
  revoked_at: k.revokedAt,
});

/** `besh keys create|list|revoke`: API keys, managed where BESH keeps its data. */
export function keysCommand(): Command {
  const keys = new Command('keys').description('Create, list and revoke API keys (run on the machine that holds the BESH data directory)');

  keys.addCommand(
    withStoreOptions(
      new Command('create')
        .description('Create a key for a project; its secret is printed once and only its hash is stored')
        .option('--project <name>', `the project the key acts for (${PROJECT_NAME_RULE})`, DEFAULT_PROJECT)
        .option('--admin', 'an admin key: sees and manages every project')
        .option('--name <label>', 'a label to recognise the key by (e.g. who holds it)'),
    )
      .addHelpText('after', '\nExamples:\n  besh keys create --project research\n  besh keys create --project ops --admin --name "on-call"')
      .action(async (opts: StoreOptions & { project: string; admin?: boolean; name?: string }) => {
        if (!isValidProjectName(opts.project)) fail(`invalid --project '${opts.project}': ${PROJECT_NAME_RULE}.`);
        const name = opts.name?.trim().slice(0, 200) || null;
        const secret = newApiKeySecret();
        const key: ApiKeyRecord = {
          id: newApiKeyId(),
          project: opts.project,
          admin: opts.admin === true,
          name,
          hash: hashApiKey(secret),
          prefix: `${secret.slice(0, 12)}…`,
          createdAt: nowSeconds(),
          revokedAt: null,
          lastUsedAt: null,
        };
        await withLocalStore(opts, (store) => store.insertApiKey(key));
        if (opts.json) return printJson({ ...view(key), key: secret });
        process.stdout.write(
          `Created ${key.admin ? 'admin ' : ''}key ${key.id} for project '${key.project}'.\n\n  ${secret}\n\n` +
            'This is the only time the key is shown: store it now. Clients send it as `Authorization: Bearer <key>`\n' +
            '(OPENAI_API_KEY for the OpenAI SDKs and the besh CLI).\n',
        );
      }),
  );

  keys.addCommand(
    withStoreOptions(new Command('list').description('List keys (never their secrets), oldest first')).action(async (opts: StoreOptions) => {
      const all = await withLocalStore(opts, (store) => store.listApiKeys());
      if (opts.json) return printJson(all.map(view));
      if (all.length === 0) {
        process.stdout.write('No keys: BESH runs open (anyone who can reach it can use it). Create one with `besh keys create --project NAME`.\n');
        return;
      }
      const rows = all.map((k) => [
        k.id,
        k.project,
        k.admin ? 'admin' : 'project',
        k.prefix,
        k.name ?? '-',
        formatTime(k.createdAt),
        k.lastUsedAt === null ? 'never' : formatTime(k.lastUsedAt),
        k.revokedAt === null ? 'active' : `revoked ${formatTime(k.revokedAt)}`,
      ]);
      process.stdout.write(table(['ID', 'PROJECT', 'ROLE', 'KEY', 'NAME', 'CREATED', 'LAST USED', 'STATE'], rows));
    }),
  );

  keys.addCommand(
    withStoreOptions(new Command('revoke').description('Revoke a key: it stops working at once').argument('<key_id>', 'the key id (key_…) from `besh keys list`')).action(
      async (id: string, opts: StoreOptions) => {
        const revoked = await withLocalStore(opts, (store) => store.revokeApiKey(id, nowSeconds()));
        if (!revoked) fail(`no active key with id '${id}' (see \`besh keys list\`).`);
        if (opts.json) return printJson({ id, revoked: true });
        process.stdout.write(`Revoked ${id}.\n`);
      },
    ),
  );
  return keys;
}
