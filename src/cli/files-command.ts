import { basename } from 'node:path';

import { Command } from 'commander';

import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { downloadFile } from './client/download.js';
import { formatBytes, formatTime, printJson, table } from './client/format.js';
import { runClientCommand } from './client/run-action.js';
import type { FileObject } from './client/types.js';

interface ListOptions extends CommonOptions {
  purpose?: string;
}

interface DownloadOptions extends CommonOptions {
  output?: string;
}

export function filesCommand(): Command {
  return new Command('files')
    .description('List, download and delete files (batch inputs, outputs and error files)')
    .addCommand(filesListCommand())
    .addCommand(filesDownloadCommand())
    .addCommand(filesDeleteCommand());
}

function filesListCommand(): Command {
  return withCommonOptions(
    new Command('list').description('List files, newest first').option('--purpose <purpose>', 'only files with this purpose (batch, batch_output)'),
  )
    .addHelpText('after', '\nExamples:\n  besh files list\n  besh files list --purpose batch_output --json')
    .action(async (opts: ListOptions) =>
      runClientCommand('files list', opts, async (client) => {
        const files: FileObject[] = [];
        for await (const f of client.listFiles(opts.purpose)) files.push(f);
        if (opts.json) return printJson(files);
        if (files.length === 0) return void process.stdout.write('No files.\n');
        const rows = files.map((f) => [f.id, f.purpose, formatBytes(f.bytes), formatTime(f.created_at), f.filename]);
        process.stdout.write(table(['ID', 'PURPOSE', 'SIZE', 'CREATED', 'FILENAME'], rows));
      }),
    );
}

function filesDownloadCommand(): Command {
  return withCommonOptions(
    new Command('download')
      .description("Download a file's content, streamed to disk (with a progress bar on a terminal)")
      .argument('<file-id>', 'the file, e.g. an output_file_id')
      .option('-o, --output <path>', 'where to write it ("-" for stdout); default: its filename in the current directory'),
  )
    .addHelpText('after', '\nExamples:\n  besh files download file-abc123 -o results.jsonl\n  besh files download file-abc123 -o - | head')
    .action(async (id: string, opts: DownloadOptions) =>
      runClientCommand('files download', opts, async (client) => {
        const dest = opts.output ?? basename((await client.getFile(id)).filename);
        const bytes = await downloadFile(client, id, dest);
        if (dest === '-') return;
        if (opts.json) return printJson({ id, path: dest, bytes });
        process.stdout.write(`Wrote ${formatBytes(bytes)} to ${dest}\n`);
      }),
    );
}

function filesDeleteCommand(): Command {
  return withCommonOptions(new Command('delete').description('Delete a file').argument('<file-id>', 'the file to delete'))
    .addHelpText('after', '\nExample:\n  besh files delete file-abc123')
    .action(async (id: string, opts: CommonOptions) =>
      runClientCommand('files delete', opts, async (client) => {
        const r = await client.deleteFile(id);
        if (opts.json) return printJson(r);
        process.stdout.write(`Deleted ${r.id}\n`);
      }),
    );
}
