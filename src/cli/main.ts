#!/usr/bin/env node
import { Command } from 'commander';

import { mockCommand } from './mock-command.js';
import { serveCommand } from './serve-command.js';

const program = new Command()
  .name('besh')
  .description('BESH: a self-hosted, OpenAI-compatible Batch API for large language models')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(serveCommand());
program.addCommand(mockCommand());

await program.parseAsync(process.argv);
