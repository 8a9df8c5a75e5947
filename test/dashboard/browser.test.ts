import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import type OpenAI from 'openai';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone, waitFor } from '../helpers/batches.js';
import { type BeshProcess, ROOT, startBesh, tempDir } from '../helpers/besh-process.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);

let mock: MockServer;
let besh: BeshProcess;
let client: OpenAI;
let dir: { path: string; remove(): void };
let browser: Browser;
let page: Page;
const consoleErrors: string[] = [];

const createBatch = async (lines: number, prefix: string): Promise<string> => {
  const file = await upload(client, chatLines(lines, { prefix }));
  return (await client.batches.create({ input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '24h' })).id;
};
const row = (id: string): string => `tr[data-id="${id}"]`;

/** Pixels of a canvas close to an RGB colour (the series' stroke). Page code reaches the DOM through
 * `globalThis as any`: the tests compile without DOM types. */
const colouredPixels = (selector: string, rgb: [number, number, number]): Promise<number> =>
  page.evaluate(
    ({ selector, rgb }) => {
      const canvas = (globalThis as any).document.querySelector(selector); // runs in the page
      const ctx = canvas?.getContext('2d');
      if (!canvas || !ctx || canvas.width === 0) return 0;
      const d: Uint8ClampedArray = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3]! > 0 && Math.abs(d[i]! - rgb[0]) < 40 && Math.abs(d[i + 1]! - rgb[1]) < 40 && Math.abs(d[i + 2]! - rgb[2]) < 40) n++;
      }
      return n;
    },
    { selector, rgb },
  );

beforeAll(async () => {
  if (!haveChromium) return;
  // Slow enough that a 40-line batch takes a few seconds with 4 workers.
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 250 });
  dir = tempDir();
  besh = await startBesh({ OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn', MAX_WORKERS: '4', BESH_SHUTDOWN_GRACE_MS: '300' }, { dataDir: dir.path });
  client = besh.client;
  // Some history so the charts and cards have data from the start.
  await waitDone(client, await createBatch(8, 'warm'));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (!r.url().endsWith('/v1/events')) consoleErrors.push(`request failed: ${r.url()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(besh.url) && !r.url().startsWith('data:')) consoleErrors.push(`external request: ${r.url()}`);
  });
});

afterAll(async () => {
  await browser?.close();
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

describe.skipIf(!haveChromium)('dashboard in Chromium', () => {
  it('loads with a strict CSP and no console errors', async () => {
    const res = await page.goto(besh.url);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("default-src 'self'");
    await page.waitForSelector('#conn.live');
    await page.waitForSelector('#cards .card');
    await page.waitForSelector('#rows tr[data-id]');
    expect(await page.locator('#cards').innerText()).toMatch(/requests\s+8\b/i);
    expect(consoleErrors).toEqual([]);
  });

  it('warns that BESH runs without API keys and asks for none', async () => {
    // This server has no key: open mode, where the page must say so and never lock anyone out.
    expect(await page.locator('#open-banner').isVisible()).toBe(true);
    expect(await page.locator('#open-banner').innerText()).toMatch(/runs without API keys: anyone who can reach this port can read, cancel and delete every batch.*besh keys create/s);
    expect(await page.locator('#login').isVisible()).toBe(false);
    expect(await page.locator('#who').innerText()).toMatch(/open mode/);
    expect(await page.locator('#signout').isVisible()).toBe(false);
    // Open mode acts as an admin: the project filter is there, viewing all projects with a Project column.
    expect(await page.locator('#project-filter').isVisible()).toBe(true);
    await expect.poll(() => page.locator('#project option').allInnerTexts()).toEqual(['All projects', 'default']);
    expect(await page.locator('#th-project').isVisible()).toBe(true);
    expect(await page.locator('#rows tr[data-id] td.project').first().innerText()).toBe('default');
  });

  it("moves a running batch's progress bar to 100 % without a reload", async () => {
    await page.evaluate(() => ((globalThis as any).__noReload = true));
    const id = await createBatch(40, 'live');
    await page.waitForSelector(row(id));
    const seen = new Set<number>();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = await page.locator(`${row(id)} .fill`).getAttribute('data-progress').catch(() => null);
      if (p !== null) seen.add(Number(p));
      if (seen.has(1) && (await page.locator(row(id)).getAttribute('data-status')) === 'completed') break;
      if (Date.now() > deadline) throw new Error(`progress seen: ${[...seen].join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...seen].some((p) => p > 0 && p < 1), `intermediate progress among ${[...seen].join(', ')}`).toBe(true);
    expect(await page.locator(`${row(id)} .counts`).innerText()).toBe('40 / 40');
    expect(await page.evaluate(() => (globalThis as any).__noReload)).toBe(true);
  });

  it('renders the charts with data', async () => {
    await page.click('#refresh');
    const charts: Array<[string, [number, number, number]]> = [
      ['#ch-rps canvas', [47, 111, 237]],
      ['#ch-tps canvas', [122, 90, 248]],
      ['#ch-done canvas', [26, 158, 90]],
      ['#ch-uploads canvas', [232, 163, 23]],
      ['#ch-created canvas', [47, 111, 237]],
    ];
    for (const [sel, rgb] of charts) {
      await expect.poll(() => colouredPixels(sel, rgb), { timeout: 10_000, message: sel }).toBeGreaterThan(20);
    }
  });

  it('uploads a file by drag and drop and creates a batch', async () => {
    const text = chatLines(6, { prefix: 'drop' });
    await page.evaluate((content) => {
      const g = globalThis as any;
      const dt = new g.DataTransfer();
      dt.items.add(new File([content], 'dropped.jsonl', { type: 'application/jsonl' }));
      g.document.getElementById('drop').dispatchEvent(new g.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, text);
    await expect.poll(() => page.locator('#upload-msg').innerText()).toContain('dropped.jsonl');
    await page.click('#create');
    await expect.poll(() => page.locator('#upload-msg').innerText(), { timeout: 15_000 }).toMatch(/Created batch_/);
    expect(await page.locator('#upload-bar').evaluate((el: any) => el.style.width as string)).toBe('100%');
    const id = /Created (batch_\w+)/.exec(await page.locator('#upload-msg').innerText())![1]!;
    await page.waitForSelector(row(id));
    expect((await waitDone(client, id)).request_counts).toMatchObject({ total: 6, completed: 6 });
    await page.waitForSelector(`${row(id)}[data-status="completed"]`);
  });

  it('opens the detail view of a batch', async () => {
    const first = page.locator('#rows tr[data-id] button.id').first();
    const id = await first.innerText();
    await first.click();
    await page.waitForSelector('#detail[open] dl.meta');
    expect(await page.locator('#detail-title').innerText()).toBe(id);
    expect(await page.locator('#detail-body').innerText()).toContain('Timeline');
    await page.click('#detail-close');
  });

  it('cancels and deletes a batch from the page', async () => {
    const id = await createBatch(400, 'slow');
    await waitFor(client, id, (b) => b.status === 'in_progress' && (b.request_counts?.completed ?? 0) > 0);
    await page.waitForSelector(`${row(id)} button.cancel`);
    // The README's screenshot (history in the charts, a batch running live) is refreshed only on
    // request — BESH_SCREENSHOT=docs/dashboard.png — so a test run leaves the work tree clean.
    await page.click('#refresh');
    await expect.poll(async () => Number(await page.locator(`${row(id)} .fill`).getAttribute('data-progress')), { timeout: 10_000 }).toBeGreaterThan(0.1);
    const shot = process.env.BESH_SCREENSHOT ? resolve(ROOT, process.env.BESH_SCREENSHOT) : join(tmpdir(), `besh-dashboard-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    await page.click(`${row(id)} button.cancel`);
    await page.waitForSelector(`${row(id)}[data-status="cancelled"]`, { timeout: 15_000 });
    expect((await client.batches.retrieve(id)).status).toBe('cancelled');

    page.once('dialog', (d) => void d.accept());
    await page.click(`${row(id)} button.delete`);
    await page.waitForSelector(row(id), { state: 'detached' });
    const r = await fetch(`${besh.baseURL}/batches/${id}`);
    expect(r.status).toBe(404);
  });

  it('had no console errors and no external requests', () => {
    expect(consoleErrors).toEqual([]);
  });
});
