import { type CommonOptions, resolveConnection } from './connection.js';
import { CliError } from './errors.js';
import { BeshClient } from './http-client.js';

/**
 * Runs one client command: builds the client from the common options, prints a CliError as
 * `besh <command>: <message>` on stderr and exits with its code once the output is flushed. `fn`
 * may return an exit code (e.g. for a batch that failed).
 */
export async function runClientCommand(name: string, opts: CommonOptions, fn: (client: BeshClient) => Promise<number | void>): Promise<void> {
  let code = 0;
  try {
    code = (await fn(new BeshClient(resolveConnection(opts)))) ?? 0;
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`besh ${name}: ${err.message}\n`);
      code = err.exitCode;
    } else {
      process.stderr.write(`besh ${name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      code = 1;
    }
  }
  await flushed(process.stdout);
  await flushed(process.stderr);
  // fetch's idle keep-alive connection would hold the process for a while: end now.
  process.exit(code);
}

/** Resolves once everything written so far has been handed to the OS (pipes are async on macOS). */
const flushed = (stream: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => stream.write('', () => resolve()));
