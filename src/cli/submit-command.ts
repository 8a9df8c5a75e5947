import { stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';

import { Command } from 'commander';

import { elapsedSeconds } from './client/batch-view.js';
import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { downloadFile } from './client/download.js';
import { CliError, EXIT_BATCH_UNSUCCESSFUL, UsageError } from './client/errors.js';
import { formatBytes, formatDuration, printJson } from './client/format.js';
import type { BeshClient } from './client/http-client.js';
import { runClientCommand } from './client/run-action.js';
import type { Batch } from './client/types.js';
import { uploadInputFile } from './client/upload-input.js';
import { waitForBatch } from './client/wait-batch.js';

interface SubmitOptions extends CommonOptions {
  endpoint: string;
  completionWindow: string;
  metadata: string[];
  wait?: boolean;
  output?: string;
  errors?: string;
  partsAbove?: string;
  partSize?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function submitCommand(): Command {
  return withCommonOptions(
    new Command('submit')
      .description('Upload a JSONL (or .jsonl.gz) file of requests and create a batch from it; prints the batch id')
      .argument('<file>', 'the requests, one JSON object per line (.jsonl or .jsonl.gz)')
      .option('--endpoint <path>', 'the endpoint every line targets', '/v1/chat/completions')
      .option('--completion-window <duration>', 'deadline of the batch (24h, or 1s to 30d)', '24h')
      .option('--metadata <key=value>', 'metadata to attach; repeat for several', collect, [])
      .option('--wait', 'wait for the batch to end, showing its progress')
      .option('--output <path>', 'with --wait: write the output file here')
      .option('--errors <path>', 'with --wait: write the error file here')
      .option('--parts-above <size>', 'send files larger than this in parts (the Uploads API), e.g. 256M; also when the server takes less in one request', '256M')
      .option('--part-size <size>', 'bytes per part when sending in parts (at most 64M)', '64M'),
  )
    .addHelpText(
      'after',
      `
Prints the batch id on stdout (progress and messages go to stderr). With --wait, exits 3 if the
batch ends failed, expired or cancelled.

Examples:
  besh submit requests.jsonl
  besh submit requests.jsonl.gz --metadata team=search --metadata run=7
  besh submit embed.jsonl --endpoint /v1/embeddings --wait --output out.jsonl --errors err.jsonl
  id=$(besh submit requests.jsonl) && besh status "$id"`,
    )
    .action(async (file: string, opts: SubmitOptions) => runClientCommand('submit', opts, (client) => submit(client, file, opts)));
}

function parseMetadata(pairs: string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`Invalid --metadata '${pair}': expected key=value.`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

async function submit(client: BeshClient, file: string, opts: SubmitOptions): Promise<number> {
  const metadata = parseMetadata(opts.metadata);
  if ((opts.output || opts.errors) && !opts.wait) throw new UsageError('--output and --errors need --wait.');
  const size = await fileSize(file);

  const uploaded = await uploadInputFile(client, file, size, { partsAbove: opts.partsAbove, partSize: opts.partSize });
  note(`Uploaded ${basename(file)} (${formatBytes(size)}) as ${uploaded.id}`);

  let created: Batch;
  try {
    created = await client.createBatch({
      input_file_id: uploaded.id,
      endpoint: opts.endpoint,
      completion_window: opts.completionWindow,
      ...(metadata ? { metadata } : {}),
    });
  } catch (err) {
    // Do not leave an orphan upload behind a refused batch.
    await client.deleteFile(uploaded.id).catch(() => undefined);
    throw err;
  }
  if (!opts.wait) {
    if (opts.json) printJson(created);
    else process.stdout.write(`${created.id}\n`);
    return 0;
  }
  if (!opts.json) process.stdout.write(`${created.id}\n`);
  note(`Created ${created.id}; waiting for it to finish (Ctrl-C stops waiting, not the batch)`);

  const batch = await waitForBatch(client, created.id);
  note(summary(batch));
  if (opts.output) await saveResult(client, batch.output_file_id, opts.output, 'output');
  if (opts.errors) await saveResult(client, batch.error_file_id, opts.errors, 'error');
  if (opts.json) printJson(batch);
  if (batch.status === 'completed') return 0;
  const first = batch.errors?.data[0];
  const why = first ? `: ${first.line ? `line ${first.line}: ` : ''}${first.message ?? first.code ?? ''}` : '';
  process.stderr.write(`besh submit: batch ${batch.id} ended ${batch.status}${why}\n`);
  return EXIT_BATCH_UNSUCCESSFUL;
}

async function fileSize(file: string): Promise<number> {
  let s;
  try {
    s = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`Cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (!s.isFile()) throw new CliError(`Cannot read ${file}: not a regular file`);
  return s.size;
}

function summary(b: Batch): string {
  const { completed, failed, total } = b.request_counts;
  const took = elapsedSeconds(b);
  return `${b.id} ${b.status}${took !== null ? ` in ${formatDuration(took)}` : ''}: ${completed} completed, ${failed} failed of ${total}`;
}

/** Downloads a result file; a batch without one (nothing of that kind) gets an empty file. */
async function saveResult(client: BeshClient, fileId: string | null, dest: string, kind: string): Promise<void> {
  if (!fileId) {
    await writeFile(dest, '');
    note(`No ${kind} file: wrote an empty ${dest}`);
    return;
  }
  const bytes = await downloadFile(client, fileId, dest);
  note(`Wrote the ${kind} file ${fileId} (${formatBytes(bytes)}) to ${dest}`);
}

const note = (text: string): void => {
  process.stderr.write(`${text}\n`);
};
