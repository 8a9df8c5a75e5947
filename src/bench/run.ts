import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { installExitHandlers, releaseAll, wasInterrupted } from './cleanup.js';
import { type BenchOptions, parseBenchArgs, USAGE, UsageError } from './options.js';
import { machineLine, markdownTable, type ResultRow, rowLine } from './report.js';
import { SCENARIOS } from './scenarios.js';
import { makeTempDir } from './temp-dir.js';

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);

function parseOrExit(): BenchOptions {
  try {
    const opts = parseBenchArgs(process.argv.slice(2));
    if (opts) return opts;
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

async function main(): Promise<number> {
  const opts = parseOrExit();
  const mainJs = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  if (!existsSync(mainJs)) {
    log(`${mainJs} is missing: run 'npm run build' first (or 'npm run bench').`);
    return 2;
  }
  installExitHandlers();
  const divisor = opts.quick ? 10 : 1;
  const root = await makeTempDir('besh-bench-');
  const rows: ResultRow[] = [];
  try {
    for (const name of opts.only) {
      const scenario = SCENARIOS[name];
      const title = scenario.title(divisor);
      log(`\n== ${title}`);
      const dir = await makeTempDir(`${name}-`, root.path);
      let row: ResultRow;
      try {
        const { figure, pass } = await scenario.run({ dir: dir.path, divisor, log });
        row = { scenario: title, figure, target: scenario.target, pass };
      } catch (err) {
        if (wasInterrupted()) break;
        log(`  error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        const first = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
        row = { scenario: title, figure: `error: ${first.slice(0, 200)}`, target: scenario.target, pass: false };
      } finally {
        await dir.remove();
      }
      rows.push(row);
      process.stdout.write(`${rowLine(row)}\n`);
    }
  } finally {
    await releaseAll();
  }
  if (wasInterrupted()) return 130;
  process.stdout.write(`\n${machineLine(opts.quick)}\n\n${markdownTable(rows)}\n`);
  return rows.every((r) => r.pass) ? 0 : 1;
}

process.exitCode = await main();
