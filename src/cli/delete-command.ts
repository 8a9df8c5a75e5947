import { Command } from 'commander';

import { confirm } from './client/confirm.js';
import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { parseAge } from './client/durations.js';
import { ApiError, UsageError } from './client/errors.js';
import { formatBytes, formatTime, printJson } from './client/format.js';
import type { BeshClient } from './client/http-client.js';
import { runClientCommand } from './client/run-action.js';
import { parseStatuses } from './client/status-filter.js';
import { type Batch, type Deleted, type FileObject, TERMINAL_STATUSES } from './client/types.js';

interface DeleteOptions extends CommonOptions {
  files?: boolean;
  batches?: boolean;
  olderThan?: string;
  status?: string;
  yes?: boolean;
  dryRun?: boolean;
}

interface Plan {
  batches: Batch[];
  files: FileObject[];
  /** Unfinished batches left alone because --status did not name their status. */
  unfinished: number;
}

interface Outcome {
  deleted: Deleted[];
  skipped: Array<{ id: string; reason: string }>;
  failed: Array<{ id: string; error: string }>;
}

export function deleteCommand(): Command {
  return withCommonOptions(
    new Command('delete')
      .description('Delete batches (with their output and error files) and/or files, in bulk, to free storage')
      .option('--batches', 'delete batches (their output and error files go with them)')
      .option('--files', 'delete files (inputs, and outputs of batches kept)')
      .option('--older-than <age>', 'only what was created more than this long ago (30m, 12h, 7d, 2w)')
      .option('--status <list>', `only batches with these statuses (comma-separated); default: finished ones (${TERMINAL_STATUSES.join(',')})`)
      .option('-y, --yes', 'do not ask for confirmation (needed when stdin is not a terminal)')
      .option('--dry-run', 'show what would be deleted and stop'),
  )
    .addHelpText(
      'after',
      `
Unfinished batches are deleted only when --status names their status (deleting one stops it).
A file that is the input of an unfinished batch is reported and skipped.

Examples:
  besh delete --batches --older-than 7d
  besh delete --batches --files --yes
  besh delete --batches --status failed,expired,cancelled --yes
  besh delete --files --older-than 30d --dry-run`,
    )
    .action(async (opts: DeleteOptions) => runClientCommand('delete', opts, (client) => del(client, opts)));
}

async function del(client: BeshClient, opts: DeleteOptions): Promise<number> {
  if (!opts.batches && !opts.files) throw new UsageError('Say what to delete: --batches, --files, or both.');
  if (opts.status !== undefined && !opts.batches) throw new UsageError('--status filters batches: add --batches.');
  const statuses = parseStatuses(opts.status);
  const cutoff = opts.olderThan !== undefined ? Date.now() / 1000 - parseAge(opts.olderThan, '--older-than') : Infinity;
  const plan = await makePlan(client, opts, statuses, cutoff);

  if (plan.unfinished > 0) note(`Leaving ${plan.unfinished} unfinished batch${plan.unfinished === 1 ? '' : 'es'} alone (name their status in --status to delete them).`);
  if (plan.batches.length === 0 && plan.files.length === 0) {
    if (opts.json) printJson({ deleted: [], skipped: [], failed: [] });
    else process.stdout.write('Nothing to delete.\n');
    return 0;
  }
  const what = describePlan(plan);
  note(`About to delete ${what}:`);
  for (const b of plan.batches.slice(0, 10)) note(`  ${b.id}  ${b.status}  created ${formatTime(b.created_at)}`);
  if (plan.batches.length > 10) note(`  … and ${plan.batches.length - 10} more batches`);
  for (const f of plan.files.slice(0, 10)) note(`  ${f.id}  ${f.filename}  ${formatBytes(f.bytes)}`);
  if (plan.files.length > 10) note(`  … and ${plan.files.length - 10} more files`);
  if (opts.dryRun) {
    note('Dry run: nothing deleted.');
    return 0;
  }
  if (!opts.yes && !(await confirm(`Delete ${what}?`, `Refusing to delete ${what} without confirmation`))) {
    note('Nothing deleted.');
    return 1;
  }

  const outcome = await execute(client, plan, !opts.json);
  if (opts.json) printJson(outcome);
  else {
    const parts = [`Deleted ${count(outcome.deleted.filter((d) => d.object === 'batch').length, 'batch', 'batches')} and ${count(outcome.deleted.filter((d) => d.object !== 'batch').length, 'file', 'files')}`];
    if (outcome.skipped.length > 0) parts.push(`skipped ${outcome.skipped.length}`);
    if (outcome.failed.length > 0) parts.push(`${outcome.failed.length} failed`);
    process.stdout.write(`${parts.join('; ')}.\n`);
  }
  return outcome.failed.length > 0 ? 1 : 0;
}

async function makePlan(client: BeshClient, opts: DeleteOptions, statuses: Set<string> | null, cutoff: number): Promise<Plan> {
  const plan: Plan = { batches: [], files: [], unfinished: 0 };
  const goingWithBatches = new Set<string>();
  if (opts.batches) {
    for await (const b of client.listBatches()) {
      if (b.created_at >= cutoff) continue;
      if (statuses ? !statuses.has(b.status) : !TERMINAL_STATUSES.includes(b.status)) {
        if (!statuses) plan.unfinished++;
        continue;
      }
      plan.batches.push(b);
      for (const id of [b.output_file_id, b.error_file_id]) if (id) goingWithBatches.add(id);
    }
  }
  if (opts.files) {
    for await (const f of client.listFiles()) {
      if (f.created_at < cutoff && !goingWithBatches.has(f.id)) plan.files.push(f);
    }
  }
  return plan;
}

async function execute(client: BeshClient, plan: Plan, verbose: boolean): Promise<Outcome> {
  const out: Outcome = { deleted: [], skipped: [], failed: [] };
  const say = (text: string): void => {
    if (verbose) process.stdout.write(`${text}\n`);
  };
  const attempt = async (id: string, label: string, run: () => Promise<Deleted>): Promise<void> => {
    try {
      out.deleted.push(await run());
      say(`Deleted ${label}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err; // unreachable server: stop here
      if (err.status === 404) {
        out.skipped.push({ id, reason: 'already deleted' });
        say(`Skipped ${id}: already deleted`);
      } else if (err.status === 409) {
        out.skipped.push({ id, reason: err.message });
        say(`Skipped ${id}: ${err.message}`);
      } else {
        out.failed.push({ id, error: err.message });
        process.stderr.write(`Could not delete ${id}: ${err.message}\n`);
      }
    }
  };
  for (const b of plan.batches) await attempt(b.id, `batch ${b.id} (${b.status}, created ${formatTime(b.created_at)})`, () => client.deleteBatch(b.id));
  for (const f of plan.files) await attempt(f.id, `file ${f.id} (${f.filename}, ${formatBytes(f.bytes)})`, () => client.deleteFile(f.id));
  return out;
}

function describePlan(plan: Plan): string {
  const parts: string[] = [];
  if (plan.batches.length > 0) parts.push(count(plan.batches.length, 'batch', 'batches'));
  if (plan.files.length > 0) parts.push(`${count(plan.files.length, 'file', 'files')} (${formatBytes(plan.files.reduce((s, f) => s + f.bytes, 0))})`);
  return parts.join(' and ');
}

const count = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

const note = (text: string): void => {
  process.stderr.write(`${text}\n`);
};
