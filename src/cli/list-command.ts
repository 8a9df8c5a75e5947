import { Command } from 'commander';

import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { parseCount } from './client/durations.js';
import { formatTime, printJson, table } from './client/format.js';
import { runClientCommand } from './client/run-action.js';
import { parseStatuses } from './client/status-filter.js';
import type { Batch } from './client/types.js';

interface ListOptions extends CommonOptions {
  status?: string;
  limit: string;
}

export function listCommand(): Command {
  return withCommonOptions(
    new Command('list')
      .description('List batches, newest first, as a table')
      .option('--status <list>', 'only batches with one of these statuses (comma-separated, e.g. in_progress,validating)')
      .option('--limit <n>', 'show at most n batches; 0 for all', '20'),
  )
    .addHelpText('after', '\nExamples:\n  besh list\n  besh list --status failed,expired --limit 0\n  besh list --json | jq -r ".[].id"')
    .action(async (opts: ListOptions) =>
      runClientCommand('list', opts, async (client) => {
        const limit = parseCount(opts.limit, '--limit', 0);
        const statuses = parseStatuses(opts.status);
        const batches: Batch[] = [];
        for await (const b of client.listBatches()) {
          if (statuses && !statuses.has(b.status)) continue;
          batches.push(b);
          if (limit > 0 && batches.length >= limit) break;
        }
        if (opts.json) return printJson(batches);
        if (batches.length === 0) {
          process.stdout.write(statuses ? `No batches with status ${[...statuses].join(' or ')}.\n` : 'No batches.\n');
          return;
        }
        const rows = batches.map((b) => [
          b.id,
          b.status,
          `${b.request_counts.completed + b.request_counts.failed}/${b.request_counts.total}`,
          String(b.request_counts.failed),
          formatTime(b.created_at),
          b.endpoint,
          b.model ?? '-',
        ]);
        process.stdout.write(table(['ID', 'STATUS', 'DONE', 'FAILED', 'CREATED', 'ENDPOINT', 'MODEL'], rows));
      }),
    );
}
