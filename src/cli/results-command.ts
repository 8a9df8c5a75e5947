import { once } from 'node:events';
import { type FileHandle, open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { Command } from 'commander';

import { batchProgress } from './client/batch-progress.js';
import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { ApiError, CliError, UsageError } from './client/errors.js';
import type { BeshClient } from './client/http-client.js';
import { fetchResultLine, fetchResults, type ResultsKind, type ResultsPage } from './client/results-client.js';
import { runClientCommand } from './client/run-action.js';

interface ResultsOptions extends CommonOptions {
  follow?: boolean;
  after?: string;
  customId?: string;
  output?: string;
  kind: string;
  interval: string;
}

/** Consecutive failed polls tolerated with --follow (e.g. while BESH restarts) before giving up. */
const MAX_POLL_FAILURES = 20;

export function resultsCommand(): Command {
  return withCommonOptions(
    new Command('results')
      .description("Print a batch's result lines written so far (output and error lines), also while it runs")
      .argument('<batch-id>', 'the batch, e.g. batch_abc123')
      .option('-f, --follow', 'keep polling until the batch has ended, printing new lines as they come (progress on stderr)')
      .option('--after <cursor>', 'only the lines after this cursor (printed on stderr at the end of every run)')
      .option('--custom-id <id>', "only this request's line (with --follow: wait until it is written)")
      .option('-o, --output <file>', 'write the lines to this file instead of stdout')
      .option('--kind <kind>', 'all, output (answered requests) or error (the error file’s lines)', 'all')
      .option('--interval <seconds>', 'with --follow: seconds between polls', '1'),
  )
    .addHelpText(
      'after',
      `
Lines are printed exactly as they are (or will be) in the batch's output and error files, each
once: a run prints the cursor of its end on stderr, and --after CURSOR goes on from there.

Examples:
  besh results batch_abc123 > so-far.jsonl
  besh results batch_abc123 --follow --output results.jsonl
  besh results batch_abc123 --after <cursor> >> so-far.jsonl
  besh results batch_abc123 --custom-id request-42`,
    )
    .action(async (id: string, opts: ResultsOptions) => runClientCommand('results', opts, (client) => results(client, id, opts)));
}

async function results(client: BeshClient, id: string, opts: ResultsOptions): Promise<void> {
  const interval = Number(opts.interval);
  if (!Number.isFinite(interval) || interval < 0.05 || interval > 3600) throw new UsageError(`Invalid --interval '${opts.interval}': expected seconds between 0.05 and 3600.`);
  if (!['all', 'output', 'error'].includes(opts.kind)) throw new UsageError(`Invalid --kind '${opts.kind}': expected all, output or error.`);
  if (opts.customId !== undefined && (opts.after !== undefined || opts.kind !== 'all')) throw new UsageError('--custom-id cannot be combined with --after or --kind.');
  const sink = await openSink(opts.output);
  try {
    if (opts.customId !== undefined) await oneLine(client, id, opts.customId, sink, opts.follow === true, interval * 1000);
    else await pages(client, id, opts, sink, interval * 1000);
  } finally {
    await sink.close();
  }
}

async function oneLine(client: BeshClient, id: string, customId: string, sink: Sink, follow: boolean, intervalMs: number): Promise<void> {
  for (;;) {
    try {
      const r = await fetchResultLine(client, id, customId);
      await sink.write(Buffer.from(r.line));
      return;
    } catch (err) {
      if (!(follow && err instanceof ApiError && err.code === 'result_not_ready')) throw err;
    }
    await sleep(intervalMs);
  }
}

async function pages(client: BeshClient, id: string, opts: ResultsOptions, sink: Sink, intervalMs: number): Promise<void> {
  const follow = opts.follow === true;
  let cursor = opts.after;
  let lines = 0;
  let complete = false;
  let failures = 0;
  const view = follow ? await batchProgress() : null;
  const onSigint = (): void => {
    view?.stop();
    process.stderr.write(`\nStopped after ${lines} lines. Go on with: besh results ${id} --after ${cursor ?? '""'}${follow ? ' --follow' : ''}\n`);
    void sink.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      try {
        const page: ResultsPage = await fetchResults(client, id, { after: cursor, kind: opts.kind as ResultsKind });
        lines += await writePage(page, sink);
        cursor = page.cursor;
        complete = page.complete;
        if (!follow || complete) break;
        view?.update(await client.getBatch(id));
        failures = 0;
      } catch (err) {
        // A 4xx will not get better; a restart or a network blip may (a cut-off page was rolled back).
        if (!follow || err instanceof PartialOutputError || (err instanceof ApiError && err.status < 500) || !(err instanceof CliError) || ++failures > MAX_POLL_FAILURES) throw err;
      }
      await sleep(failures > 0 ? intervalMs * 2 : intervalMs);
    }
  } finally {
    view?.stop();
    process.removeListener('SIGINT', onSigint);
  }
  if (opts.json) process.stderr.write(`${JSON.stringify({ lines, cursor, complete })}\n`);
  else process.stderr.write(`${lines} line${lines === 1 ? '' : 's'}${complete ? '; the batch has ended, these are all its results' : ''}. Cursor: ${cursor}\n`);
}

/** Writes one page; a page cut off midway is rolled back (a file) or reported (stdout), so no line is ever written twice. */
async function writePage(page: ResultsPage, sink: Sink): Promise<number> {
  const mark = sink.mark();
  let bytes = 0;
  let lines = 0;
  try {
    for await (const chunk of page.body) {
      const buf = chunk as Buffer;
      bytes += buf.length;
      for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) lines++;
      await sink.write(buf);
    }
    if (page.bytes !== null && bytes !== page.bytes) throw new Error(`got ${bytes} of ${page.bytes} bytes`);
  } catch (err) {
    if (await sink.rollback(mark)) throw new CliError(`The answer was cut off (${(err as Error).message}); nothing of it was kept.`);
    throw new PartialOutputError(`The answer was cut off after ${bytes} bytes (${(err as Error).message}): stdout holds part of it. Go on with --after ${page.cursor} only after removing the partial lines.`);
  }
  return lines;
}

/** Part of a page reached stdout: going on would repeat those lines. */
class PartialOutputError extends CliError {}

interface Sink {
  write(buf: Buffer): Promise<void>;
  /** Where the next page starts. */
  mark(): number;
  /** Goes back to `mark`; false when the sink cannot (stdout). */
  rollback(mark: number): Promise<boolean>;
  close(): Promise<void>;
}

async function openSink(path: string | undefined): Promise<Sink> {
  if (path === undefined || path === '-') {
    return {
      async write(buf) {
        if (!process.stdout.write(buf)) await once(process.stdout, 'drain');
      },
      mark: () => 0,
      rollback: async () => false,
      close: async () => undefined,
    };
  }
  let fh: FileHandle;
  try {
    fh = await open(path, 'w');
  } catch (err) {
    throw new CliError(`Cannot write ${path}: ${(err as Error).message}`);
  }
  let pos = 0;
  let closed = false;
  return {
    async write(buf) {
      await fh.write(buf, 0, buf.length, pos);
      pos += buf.length;
    },
    mark: () => pos,
    async rollback(mark) {
      await fh.truncate(mark);
      pos = mark;
      return true;
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}
