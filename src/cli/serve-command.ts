import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Command } from 'commander';

import { loadDotEnv, mergeFlags } from './env.js';

const FLAG_TO_ENV = {
  host: 'HOST',
  port: 'PORT',
  dataDir: 'BESH_DATA_DIR',
  upstream: 'OPENAI_API_BASE',
  maxWorkers: 'MAX_WORKERS',
  maxConcurrentBatches: 'MAX_CONCURRENT_BATCHES',
  logLevel: 'LOG_LEVEL',
};

export const webDir = (): string => join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

export function serveCommand(): Command {
  return new Command('serve')
    .description('Start the BESH API server and batch engine (configuration from flags, environment and .env)')
    .option('--host <host>', 'address to listen on (HOST, default 127.0.0.1)')
    .option('--port <port>', 'port to listen on (PORT, default 5000)')
    .option('--data-dir <dir>', 'where the database and files live (BESH_DATA_DIR, default ./data)')
    .option('--upstream <url>', 'inference server base URL, or a comma-separated list (OPENAI_API_BASE, default http://localhost:8000/v1)')
    .option('--max-workers <n>', 'upstream requests in flight in total, or auto (MAX_WORKERS, default 128)')
    .option('--max-concurrent-batches <n>', 'batches processed at once (MAX_CONCURRENT_BATCHES, default 10)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (LOG_LEVEL, default info)')
    .addHelpText('after', '\nEvery setting can also be given as an environment variable or in ./.env; see README.md.')
    .action(async (flags: Record<string, string | undefined>) => {
      // Loaded here, not at the top: every other besh command starts faster without zod and pino.
      const [{ ConfigError, parseConfig }, { pino }] = await Promise.all([import('../config.js'), import('pino')]);
      loadDotEnv();
      let config;
      try {
        config = parseConfig(mergeFlags(process.env, flags, FLAG_TO_ENV));
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`besh serve: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      const log = pino({ level: config.logLevel, base: { service: 'besh' }, redact: ['req.headers.authorization', '*.headers.authorization', '*.*.headers.authorization', '*.apiKey', '*.upstreamApiKey'] });
      // Loaded only once the configuration is known good: a bad value fails fast.
      const { startRuntime } = await import('../runtime/start.js');
      const server = await startRuntime(config, log, webDir());
      let signals = 0;
      const onSignal = (signal: string): void => {
        if (++signals > 1) {
          log.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        log.info({ signal }, 'signal received');
        server.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
}
