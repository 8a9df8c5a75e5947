/**
 * The dashboard's webhooks panel in Chromium (skipped without /usr/bin/chromium): endpoints and
 * recent deliveries with status, attempts and the last HTTP status, updated as deliveries go out;
 * never a secret on the page.
 */
import { existsSync } from 'node:fs';

import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { api } from '../helpers/keys.js';
import { createEndpoint, waitDelivery, WEBHOOK_ENV } from './helpers.js';
import { type Receiver, startReceiver } from './receiver.js';

const CHROMIUM = '/usr/bin/chromium';

describe.skipIf(!existsSync(CHROMIUM))('dashboard: webhooks panel', () => {
  const dir = tempDir('besh-webhooks-web-');
  let besh: BeshProcess;
  let recv: Receiver;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    recv = await startReceiver({ verifyWith: () => [], answer: (r) => (r.path === '/broken' ? 500 : 200) });
    besh = await startBesh({ ...WEBHOOK_ENV, BESH_WEBHOOK_RETRY_SCHEDULE: '1h', OPENAI_API_BASE: 'http://127.0.0.1:9/v1', BESH_HEALTH_INTERVAL_MS: '0', LOG_LEVEL: 'warn' }, { dataDir: dir.path });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await besh?.kill();
    await recv?.close();
    dir.remove();
  });

  it('lists endpoints and their recent deliveries: status, attempts, last HTTP status; no secret', async () => {
    const ok = await createEndpoint(besh, `${recv.url}/ok`, { events: ['batch.completed'] });
    const broken = await createEndpoint(besh, `${recv.url}/broken`);
    const t1 = await api(besh, `/v1/webhook_endpoints/${ok.id}/test`, { method: 'POST' });
    const t2 = await api(besh, `/v1/webhook_endpoints/${broken.id}/test`, { method: 'POST' });
    await waitDelivery(besh, t1.body.id, (d) => d.status === 'delivered');
    await waitDelivery(besh, t2.body.id, (d) => d.attempts === 1);

    await page.goto(besh.url);
    await page.waitForSelector(`#wh-deliveries tr[data-id="${t2.body.id}"]`);
    const endpointRows = await page.locator('#wh-endpoints tr[data-id]').allInnerTexts();
    expect(endpointRows).toHaveLength(2);
    expect(endpointRows.find((r) => r.includes(ok.id))).toMatch(/\/ok\s+batch\.completed\s+default/);
    expect(endpointRows.find((r) => r.includes(broken.id))).toContain('all batch events');

    const cells = async (id: string) => page.locator(`#wh-deliveries tr[data-id="${id}"] td`).allInnerTexts();
    const good = await cells(t1.body.id);
    expect(good.slice(1, 8)).toEqual([ok.id, 'webhook_endpoint.test', ok.id, 'delivered', '1/2', '200', '']);
    const bad = await cells(t2.body.id);
    expect(bad.slice(1, 4)).toEqual([broken.id, 'webhook_endpoint.test', broken.id]);
    expect(bad[4]).toMatch(/^pending · next /);
    expect(bad.slice(5, 8)).toEqual(['1/2', '500', 'HTTP 500']);

    // A new delivery shows up on refresh.
    const t3 = await api(besh, `/v1/webhook_endpoints/${ok.id}/test`, { method: 'POST' });
    await waitDelivery(besh, t3.body.id, (d) => d.status === 'delivered');
    await page.click('#refresh');
    await page.waitForSelector(`#wh-deliveries tr[data-id="${t3.body.id}"]`);

    const html = await page.content();
    for (const s of [ok.secret, broken.secret]) expect(html).not.toContain(s);
    expect(errors).toEqual([]);
  });
});
