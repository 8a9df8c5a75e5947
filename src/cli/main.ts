#!/usr/bin/env node
import { Command } from 'commander';

import { cancelCommand } from './cancel-command.js';
import { deleteCommand } from './delete-command.js';
import { filesCommand } from './files-command.js';
import { keysCommand } from './keys-command.js';
import { listCommand } from './list-command.js';
import { mockCommand } from './mock-command.js';
import { projectsCommand } from './projects-command.js';
import { resultsCommand } from './results-command.js';
import { serveCommand } from './serve-command.js';
import { statusCommand } from './status-command.js';
import { submitCommand } from './submit-command.js';
import { webhooksCommand } from './webhooks-command.js';

const program = new Command()
  .name('besh')
  .description('BESH: a self-hosted, OpenAI-compatible Batch API for large language models')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(serveCommand());
program.addCommand(mockCommand());
program.addCommand(submitCommand());
program.addCommand(statusCommand());
program.addCommand(resultsCommand());
program.addCommand(listCommand());
program.addCommand(cancelCommand());
program.addCommand(deleteCommand());
program.addCommand(filesCommand());
program.addCommand(keysCommand());
program.addCommand(projectsCommand());
program.addCommand(webhooksCommand());

await program.parseAsync(process.argv);
