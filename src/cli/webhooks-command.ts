import { Command } from 'commander';

import { type CommonOptions, withCommonOptions } from './client/connection.js';
import { parseCount } from './client/durations.js';
import { UsageError } from './client/errors.js';
import { formatTime, oneLine, printJson, table } from './client/format.js';
import { runClientCommand } from './client/run-action.js';
import { type WebhookDeliveryObject, type WebhookEndpointObject, WebhooksClient } from './client/webhooks-client.js';

const EVENT_TYPES = ['batch.completed', 'batch.failed', 'batch.expired', 'batch.cancelled'];

interface CreateOptions extends CommonOptions {
  events?: string;
}

interface ListOptions extends CommonOptions {
  project?: string;
}

interface DeliveriesOptions extends CommonOptions {
  status?: string;
  project?: string;
  limit: string;
}

/** `besh webhooks create|list|get|delete|rotate|test|deliveries`: webhook endpoints over the HTTP API (docs/webhooks.md). */
export function webhooksCommand(): Command {
  return new Command('webhooks')
    .description('Manage webhook endpoints (batch.completed, batch.failed, batch.expired, batch.cancelled) and see their deliveries')
    .addCommand(createCommand())
    .addCommand(listCommand())
    .addCommand(getCommand())
    .addCommand(deleteCommand())
    .addCommand(rotateCommand())
    .addCommand(testCommand())
    .addCommand(deliveriesCommand());
}

const run = (name: string, opts: CommonOptions, fn: (c: WebhooksClient) => Promise<void>): Promise<void> =>
  runClientCommand(`webhooks ${name}`, opts, (client) => fn(new WebhooksClient(client.conn)));

function createCommand(): Command {
  return withCommonOptions(
    new Command('create')
      .description('Create an endpoint; its signing secret (whsec_…) is printed once')
      .argument('<url>', 'where events are POSTed (https:// or http://)')
      .option('--events <list>', `comma-separated event types (default: all of ${EVENT_TYPES.join(', ')})`),
  )
    .addHelpText('after', '\nExamples:\n  besh webhooks create https://example.com/hooks/besh\n  besh webhooks create https://example.com/hooks --events batch.completed,batch.failed --json')
    .action(async (url: string, opts: CreateOptions) =>
      run('create', opts, async (c) => {
        const events = opts.events === undefined ? undefined : parseEvents(opts.events);
        const e = await c.create({ url, ...(events ? { events } : {}) });
        if (opts.json) return printJson(e);
        process.stdout.write(
          `Created webhook endpoint ${e.id} → ${e.url}\nEvents: ${e.events.join(', ')}\n\n  ${e.secret ?? ''}\n\n` +
            'This is the only time the signing secret is shown: store it now. Verify deliveries with\n' +
            '`new OpenAI({ webhookSecret }).webhooks.unwrap(body, headers)` or any Standard Webhooks library.\n',
        );
      }),
    );
}

function listCommand(): Command {
  return withCommonOptions(
    new Command('list').description('List endpoints, oldest first (never their secrets)').option('--project <name>', 'admin keys: only this project'),
  ).action(async (opts: ListOptions) =>
    run('list', opts, async (c) => {
      const all: WebhookEndpointObject[] = [];
      for await (const e of c.list(opts.project)) all.push(e);
      if (opts.json) return printJson(all);
      if (all.length === 0) return void process.stdout.write('No webhook endpoints. Create one with `besh webhooks create URL`.\n');
      const rows = all.map((e) => [e.id, e.project, e.events.length === EVENT_TYPES.length ? 'all' : e.events.join(','), formatTime(e.created_at), e.url]);
      process.stdout.write(table(['ID', 'PROJECT', 'EVENTS', 'CREATED', 'URL'], rows));
    }),
  );
}

function getCommand(): Command {
  return withCommonOptions(new Command('get').description('Show one endpoint').argument('<endpoint-id>', 'whep_…')).action(async (id: string, opts: CommonOptions) =>
    run('get', opts, async (c) => {
      const e = await c.get(id);
      if (opts.json) return printJson(e);
      process.stdout.write(describeEndpoint(e));
    }),
  );
}

function deleteCommand(): Command {
  return withCommonOptions(new Command('delete').description('Delete an endpoint and its queued deliveries').argument('<endpoint-id>', 'whep_…')).action(
    async (id: string, opts: CommonOptions) =>
      run('delete', opts, async (c) => {
        const r = await c.delete(id);
        if (opts.json) return printJson(r);
        process.stdout.write(`Deleted ${r.id}\n`);
      }),
  );
}

function rotateCommand(): Command {
  return withCommonOptions(
    new Command('rotate').description('Rotate the signing secret: the new one is printed once; the old one keeps signing alongside for 24 h').argument('<endpoint-id>', 'whep_…'),
  ).action(async (id: string, opts: CommonOptions) =>
    run('rotate', opts, async (c) => {
      const e = await c.rotate(id);
      if (opts.json) return printJson(e);
      process.stdout.write(
        `New signing secret of ${e.id}:\n\n  ${e.secret ?? ''}\n\n` +
          `Deliveries carry signatures with both secrets until ${formatTime(e.previous_secret_expires_at)}; switch your receiver to the new one before then.\n`,
      );
    }),
  );
}

function testCommand(): Command {
  return withCommonOptions(
    new Command('test').description('Send a test event (webhook_endpoint.test) to the endpoint; see it with `besh webhooks deliveries ID`').argument('<endpoint-id>', 'whep_…'),
  ).action(async (id: string, opts: CommonOptions) =>
    run('test', opts, async (c) => {
      const d = await c.test(id);
      if (opts.json) return printJson(d);
      process.stdout.write(`Queued test delivery ${d.id} (event ${d.event_id}) to ${d.endpoint_id}.\n`);
    }),
  );
}

function deliveriesCommand(): Command {
  return withCommonOptions(
    new Command('deliveries')
      .description('Recent deliveries, newest first: of one endpoint, or of every endpoint in view')
      .argument('[endpoint-id]', 'whep_… (default: every endpoint)')
      .option('--status <status>', 'pending, delivered or failed')
      .option('--project <name>', 'admin keys: only this project')
      .option('--limit <n>', 'show at most n', '20'),
  ).action(async (endpointId: string | undefined, opts: DeliveriesOptions) =>
    run('deliveries', opts, async (c) => {
      const max = parseCount(opts.limit, '--limit');
      const list = await c.deliveries({ ...(endpointId ? { endpointId } : {}), ...(opts.status ? { status: opts.status } : {}), ...(opts.project ? { project: opts.project } : {}), max });
      if (opts.json) return printJson(list);
      if (list.length === 0) return void process.stdout.write('No deliveries.\n');
      process.stdout.write(table(['ID', 'ENDPOINT', 'EVENT', 'OBJECT', 'STATUS', 'ATTEMPTS', 'HTTP', 'CREATED', 'LAST ERROR'], list.map(deliveryRow)));
    }),
  );
}

function deliveryRow(d: WebhookDeliveryObject): string[] {
  const status = d.status === 'pending' && d.next_attempt_at !== null && d.attempts > 0 ? `pending (next ${formatTime(d.next_attempt_at)})` : d.status;
  return [
    d.id,
    d.endpoint_id,
    d.event_type,
    d.data.id ?? '-',
    status,
    `${d.attempts}/${d.max_attempts}`,
    d.last_status_code === null ? '-' : String(d.last_status_code),
    formatTime(d.created_at),
    d.last_error === null ? '-' : oneLine(d.last_error, 60),
  ];
}

function describeEndpoint(e: WebhookEndpointObject): string {
  const lines = [
    `ID        ${e.id}`,
    `URL       ${e.url}`,
    `Project   ${e.project}`,
    `Events    ${e.events.join(', ')}`,
    `Created   ${formatTime(e.created_at)}`,
  ];
  if (e.previous_secret_expires_at !== null) lines.push(`Rotated   the previous secret signs too until ${formatTime(e.previous_secret_expires_at)}`);
  return `${lines.join('\n')}\n`;
}

function parseEvents(text: string): string[] {
  const events = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = events.find((e) => !EVENT_TYPES.includes(e));
  if (events.length === 0 || bad !== undefined) throw new UsageError(`Invalid --events '${text}': expected a comma-separated list of ${EVENT_TYPES.join(', ')}.`);
  return events;
}
