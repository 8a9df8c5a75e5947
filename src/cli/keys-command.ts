import { Command } from 'commander';

import { DEFAULT_PROJECT, isValidProjectName, PROJECT_NAME_RULE } from '../domain/index.js';
import { formatTime, printJson, table } from './client/format.js';
import { type KeyAdminOptions, runKeyAdmin } from './key-admin.js';
import { usageFailure, withLocalStoreOptions as withStoreOptions } from './local-store.js';

const fail = usageFailure('keys');

/** `besh keys create|list|revoke`: API keys, on the data directory or over HTTP with an admin key. */
export function keysCommand(): Command {
  const keys = new Command('keys').description(
    'Create, list and revoke API keys (on the machine that holds the BESH data directory, or with --base-url and an admin key)',
  );

  keys.addCommand(
    withStoreOptions(
      new Command('create')
        .description('Create a key for a project; its secret is printed once and only its hash is stored')
        .option('--project <name>', `the project the key acts for (${PROJECT_NAME_RULE})`, DEFAULT_PROJECT)
        .option('--admin', 'an admin key: sees and manages every project')
        .option('--name <label>', 'a label to recognise the key by (e.g. who holds it)'),
    )
      .addHelpText(
        'after',
        '\nExamples:\n  besh keys create --project research\n  besh keys create --project ops --admin --name "on-call"\n  besh keys create --project research --base-url http://gpu-box:5000 --api-key "$ADMIN_KEY"',
      )
      .action(async (opts: KeyAdminOptions & { project: string; admin?: boolean; name?: string }) => {
        if (!isValidProjectName(opts.project)) fail(`invalid --project '${opts.project}': ${PROJECT_NAME_RULE}.`);
        await runKeyAdmin('keys', opts, async (admin) => {
          const created = await admin.createKey(opts.project, opts.admin === true, opts.name ?? null);
          if (opts.json) return printJson(created);
          process.stdout.write(
            `Created ${created.admin ? 'admin ' : ''}key ${created.id} for project '${created.project}'.\n\n  ${created.key}\n\n` +
              'This is the only time the key is shown: store it now. Clients send it as `Authorization: Bearer <key>`\n' +
              '(OPENAI_API_KEY for the OpenAI SDKs and the besh CLI).\n',
          );
        });
      }),
  );

  keys.addCommand(
    withStoreOptions(new Command('list').description('List keys (never their secrets), oldest first')).action(async (opts: KeyAdminOptions) =>
      runKeyAdmin('keys', opts, async (admin) => {
        const all = await admin.listKeys();
        if (opts.json) return printJson(all);
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
          formatTime(k.created_at),
          k.last_used_at === null ? 'never' : formatTime(k.last_used_at),
          k.revoked_at === null ? 'active' : `revoked ${formatTime(k.revoked_at)}`,
        ]);
        process.stdout.write(table(['ID', 'PROJECT', 'ROLE', 'KEY', 'NAME', 'CREATED', 'LAST USED', 'STATE'], rows));
      }),
    ),
  );

  keys.addCommand(
    withStoreOptions(new Command('revoke').description('Revoke a key: it stops working at once').argument('<key_id>', 'the key id (key_…) from `besh keys list`')).action(
      async (id: string, opts: KeyAdminOptions) =>
        runKeyAdmin('keys', opts, async (admin) => {
          if (!(await admin.revokeKey(id))) fail(`no active key with id '${id}' (see \`besh keys list\`).`);
          if (opts.json) return printJson({ id, revoked: true });
          process.stdout.write(`Revoked ${id}.\n`);
        }),
    ),
  );
  return keys;
}
