import { createInterface } from 'node:readline/promises';

import { CliError } from './errors.js';

/**
 * Asks a yes/no question on the terminal. Without a terminal on stdin nobody can answer, so it
 * refuses (naming `--yes`) rather than guessing.
 */
export async function confirm(question: string, refusal: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw new CliError(`${refusal}: stdin is not a terminal, so nobody can confirm. Re-run with --yes to go ahead.`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
