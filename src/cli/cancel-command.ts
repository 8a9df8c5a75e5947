import { Command } from 'commander';

import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { printJson } from './client/format.js';
import { runClientCommand } from './client/run-action.js';

export function cancelCommand(): Command {
  return withCommonOptions(
    new Command('cancel')
      .description('Cancel a batch: no new requests are sent, in-flight ones finish, the partial output is kept')
      .argument('<batch-id>', 'the batch to cancel'),
  )
    .addHelpText('after', '\nExample:\n  besh cancel batch_abc123')
    .action(async (id: string, opts: CommonOptions) =>
      runClientCommand('cancel', opts, async (client) => {
        const b = await client.cancelBatch(id);
        if (opts.json) return printJson(b);
        const { completed, failed, total } = b.request_counts;
        process.stdout.write(`${b.id} ${b.status} (${completed} completed, ${failed} failed of ${total})\n`);
      }),
    );
}
