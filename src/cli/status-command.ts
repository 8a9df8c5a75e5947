import { Command } from 'commander';

import { renderBatch } from './client/batch-view.js';
import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { parseCount } from './client/durations.js';
import { printJson, table } from './client/format.js';
import type { BeshClient } from './client/http-client.js';
import { firstLines, summarizeLine } from './client/preview.js';
import { runClientCommand } from './client/run-action.js';

interface StatusOptions extends CommonOptions {
  lines: string;
}

export function statusCommand(): Command {
  return withCommonOptions(
    new Command('status')
      .alias('check')
      .description('Show a batch: status, request counts, timestamps, errors with line numbers, usage, and a preview of its output')
      .argument('<batch-id>', 'the batch, e.g. batch_abc123')
      .option('-n, --lines <n>', 'output (and error) lines to preview; 0 for none', '3'),
  )
    .addHelpText('after', '\nExamples:\n  besh status batch_abc123\n  besh check batch_abc123 --lines 10\n  besh status batch_abc123 --json | jq .request_counts')
    .action(async (id: string, opts: StatusOptions) => runClientCommand('status', opts, (client) => status(client, id, opts)));
}

async function status(client: BeshClient, id: string, opts: StatusOptions): Promise<void> {
  const lines = parseCount(opts.lines, '--lines', 0);
  const batch = await client.getBatch(id);
  if (opts.json) return printJson(batch);
  let out = renderBatch(batch);
  for (const [label, fileId] of [
    ['Output', batch.output_file_id],
    ['Error file', batch.error_file_id],
  ] as const) {
    if (!fileId || lines === 0) continue;
    const preview = (await firstLines(client, fileId, lines)).map((l) => summarizeLine(l));
    out += `\n${label} preview (first ${preview.length} line${preview.length === 1 ? '' : 's'} of ${fileId}):\n`;
    out += preview.length === 0 ? '  (empty)\n' : indent(table(['CUSTOM_ID', 'RESULT'], preview.map((p) => [p.customId, p.summary])));
  }
  if (lines > 0 && !batch.output_file_id && !batch.error_file_id) out += '\nNo output yet.\n';
  process.stdout.write(out);
}

const indent = (text: string): string =>
  text
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
