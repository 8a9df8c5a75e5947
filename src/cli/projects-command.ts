import { Command } from 'commander';

import { isValidProjectName, PROJECT_NAME_RULE, type ProjectLimits } from '../domain/index.js';
import { formatBytes, printJson, table } from './client/format.js';
import { type KeyAdminOptions as StoreOptions, runKeyAdmin } from './key-admin.js';
import { usageFailure, withLocalStoreOptions as withStore } from './local-store.js';

const fail = usageFailure('projects');

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/**
 * A limit option: a number (bytes may carry a unit: 500MB, 10GiB), `none` (no limit for this
 * project) or `default` (the server's BESH_PROJECT_MAX_* applies). Stored as n, 0 and NULL.
 */
export function parseLimit(text: string, flag: string, sizes: boolean): number | null {
  const t = text.trim().toLowerCase();
  if (t === 'default') return null;
  if (t === 'none' || t === 'unlimited') return 0;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(t);
  const unit = m ? SIZE_UNITS[m[2]!] : undefined;
  if (!m || unit === undefined || (!sizes && (m[2] !== '' || !/^\d+$/.test(m[1]!)))) {
    return fail(`invalid ${flag} '${text}': expected ${sizes ? 'a size such as 500MB or 10GiB' : 'a whole number'}, 'none' or 'default'.`);
  }
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n < 1) return fail(`invalid ${flag} '${text}': must be at least 1 (or 'none').`);
  return n;
}


const own = (v: number | null, bytes = false): string => (v === null ? 'default' : v === 0 ? 'none' : bytes ? formatBytes(v) : String(v));

/** `besh projects list|limits`: what each project holds, and its limits. */
export function projectsCommand(): Command {
  const projects = new Command('projects').description("Projects' usage and limits (stored bytes, unfinished batches, queued requests)");

  projects.addCommand(
    withStore(new Command('list').description('Every project with its usage and its own limits')).action(async (opts: StoreOptions) => {
      await runKeyAdmin('projects', opts, async (admin) => {
        const rows = await admin.listProjects();
        if (opts.json) return printJson(rows);
        if (rows.length === 0) return void process.stdout.write('No projects yet.\n');
        process.stdout.write(
          table(
            ['PROJECT', 'STORED', 'UNFINISHED', 'QUEUED REQ', 'MAX STORED', 'MAX UNFINISHED', 'MAX QUEUED'],
            rows.map((r) => [
              r.name,
              formatBytes(r.usage.storedBytes),
              String(r.usage.activeBatches),
              String(r.usage.queuedRequests),
              own(r.limits.maxStoredBytes, true),
              own(r.limits.maxActiveBatches),
              own(r.limits.maxQueuedRequests),
            ]),
          ) + "\n'default': the server's BESH_PROJECT_MAX_* setting applies.\n",
        );
      });
    }),
  );

  projects.addCommand(
    withStore(
      new Command('limits')
        .description("Set a project's limits (options not given keep their value)")
        .argument('<project>', 'project name')
        .option('--max-stored-bytes <size>', "bytes of files it may hold (e.g. 50GB), 'none' or 'default'")
        .option('--max-active-batches <n>', "batches not yet finished it may have, 'none' or 'default'")
        .option('--max-queued-requests <n>', "requests of unfinished batches not yet answered, 'none' or 'default'"),
    )
      .addHelpText('after', '\nExamples:\n  besh projects limits research --max-stored-bytes 20GB --max-active-batches 5\n  besh projects limits research --max-queued-requests none')
      .action(async (name: string, opts: StoreOptions & { maxStoredBytes?: string; maxActiveBatches?: string; maxQueuedRequests?: string }) => {
        if (!isValidProjectName(name)) fail(`invalid project '${name}': ${PROJECT_NAME_RULE}.`);
        const limits: Partial<ProjectLimits> = {};
        if (opts.maxStoredBytes !== undefined) limits.maxStoredBytes = parseLimit(opts.maxStoredBytes, '--max-stored-bytes', true);
        if (opts.maxActiveBatches !== undefined) limits.maxActiveBatches = parseLimit(opts.maxActiveBatches, '--max-active-batches', false);
        if (opts.maxQueuedRequests !== undefined) limits.maxQueuedRequests = parseLimit(opts.maxQueuedRequests, '--max-queued-requests', false);
        if (Object.keys(limits).length === 0) fail('give at least one of --max-stored-bytes, --max-active-batches, --max-queued-requests.');
        await runKeyAdmin('projects', opts, async (admin) => {
          const after = await admin.setLimits(name, limits);
          if (opts.json) return printJson({ project: name, limits: after });
          process.stdout.write(
            `Project '${name}': max stored ${own(after.maxStoredBytes, true)}, max unfinished batches ${own(after.maxActiveBatches)}, max queued requests ${own(after.maxQueuedRequests)}.\n`,
          );
        });
      }),
  );
  return projects;
}


