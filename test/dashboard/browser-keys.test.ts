import { existsSync, readFileSync } from 'node:fs';

import OpenAI from 'openai';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type MockServer, startMockServer } from '../../src/mock/index.js';
import { chatLines, upload, waitDone } from '../helpers/batches.js';
import { type BeshProcess, startBesh, tempDir } from '../helpers/besh-process.js';
import { type CreatedKey, createKey as createProjectKey, revokeKey } from '../helpers/keys.js';

// The dashboard with API keys on: a BESH with BESH_ADMIN_KEY and project keys made with
// `besh keys create` before it starts.
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const ADMIN_KEY = 'besh-admin-key-for-the-browser-test-7c1f9a';
const KEY_STORAGE = 'besh.apiKey';

let mock: MockServer;
let besh: BeshProcess;
let dir: { path: string; remove(): void };
let research: CreatedKey;
let spare: CreatedKey;
let researchClient: OpenAI;
let rivalClient: OpenAI;
let researchWarm: string;
let rivalBatch: string;
let browser: Browser;
let page: Page;

/** Every request the page made, with its Authorization header. */
const requests: Array<{ method: string; url: string; auth: string | undefined }> = [];
const consoleMessages: string[] = [];
const consoleErrors: string[] = [];
/** While signed out the page meets 401s by design, which Chromium logs as "Failed to load resource". */
let expect401 = true;

const createKey = (project: string, name: string): Promise<CreatedKey> => createProjectKey(dir.path, project, { name });

const createBatch = async (client: OpenAI, lines: number, prefix: string): Promise<string> => {
  const file = await upload(client, chatLines(lines, { prefix }));
  return (await client.batches.create({ input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '24h' })).id;
};
const row = (id: string): string => `tr[data-id="${id}"]`;
const apiRequests = (from = 0) => requests.slice(from).filter((r) => r.url.startsWith(`${besh.url}/v1/`));
const visible = (sel: string): Promise<boolean> => page.locator(sel).isVisible();

async function enterKey(key: string): Promise<void> {
  await page.fill('#key-input', key);
  await page.click('#key-submit');
}

beforeAll(async () => {
  if (!haveChromium) return;
  mock = await startMockServer({ host: '127.0.0.1', port: 0, latencyMs: 250 });
  dir = tempDir('besh-keys-');
  [research, spare] = await Promise.all([createKey('research', 'browser'), createKey('research', 'spare')]);
  besh = await startBesh(
    { OPENAI_API_BASE: `${mock.url}/v1`, LOG_LEVEL: 'warn', MAX_WORKERS: '4', BESH_SHUTDOWN_GRACE_MS: '300', BESH_ADMIN_KEY: ADMIN_KEY },
    { dataDir: dir.path },
  );
  researchClient = new OpenAI({ baseURL: besh.baseURL, apiKey: research.key, maxRetries: 0, timeout: 30_000 });
  // The admin key acting for another project (the SDK's `project` sends OpenAI-Project).
  rivalClient = new OpenAI({ baseURL: besh.baseURL, apiKey: ADMIN_KEY, project: 'rival', maxRetries: 0, timeout: 30_000 });
  [researchWarm, rivalBatch] = await Promise.all([createBatch(researchClient, 4, 'warm'), createBatch(rivalClient, 3, 'rival')]);
  await Promise.all([waitDone(researchClient, researchWarm), waitDone(rivalClient, rivalBatch)]);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  // A context of its own: a second tab shares the page's localStorage.
  page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true })).newPage();
  page.on('console', (m) => {
    consoleMessages.push(m.text());
    if (m.type() === 'error' && !(expect401 && /status of 401/.test(m.text()))) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The event stream is aborted on purpose when the key or the project in view changes.
    if (new URL(r.url()).pathname !== '/v1/events') consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  page.on('request', (r) => {
    requests.push({ method: r.method(), url: r.url(), auth: r.headers().authorization });
    const url = r.url();
    if (!url.startsWith(besh.url) && !url.startsWith('data:') && !url.startsWith(`blob:${besh.url}/`)) consoleErrors.push(`external request: ${url}`);
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await besh?.stop();
  await mock?.close();
  dir?.remove();
});

describe.skipIf(!haveChromium)('dashboard with API keys in Chromium', () => {
  it('without a key shows the key form and no data', async () => {
    const me = page.waitForResponse((r) => r.url() === `${besh.url}/v1/me`);
    await page.goto(besh.url);
    expect((await me).status()).toBe(401);
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await visible('#app')).toBe(false);
    expect(await visible('#open-banner')).toBe(false);
    expect(await visible('#who')).toBe(false);
    expect(await page.locator('#rows tr').count()).toBe(0);
    expect(await page.locator('#cards .card').count()).toBe(0);
    // Nothing but "who am I" was asked, without a key; no batch id reached the page.
    const api = apiRequests();
    expect(api.map((r) => new URL(r.url).pathname)).toEqual(['/v1/me']);
    expect(api[0]!.auth).toBeUndefined();
    expect(await page.content()).not.toContain(researchWarm);
  });

  it("shows the server's message for a wrong key and keeps nothing", async () => {
    await enterKey('besh-sk-not-a-key-of-this-server-0000000000');
    await expect.poll(() => page.locator('#key-msg').innerText()).toBe('Incorrect API key provided.');
    expect(await page.evaluate((k) => (globalThis as any).localStorage.getItem(k), KEY_STORAGE)).toBeNull();
    expect(await visible('#app')).toBe(false);
    expect(await page.locator('#rows tr').count()).toBe(0);
  });

  it("with a project key shows only that project's batches, sending the key on every call", async () => {
    const from = requests.length;
    await enterKey(research.key);
    await page.waitForSelector('#conn.live');
    await page.waitForSelector(row(researchWarm));
    expect401 = false;
    expect(await visible('#login')).toBe(false);
    expect(await page.locator('#who').innerText()).toBe('project research · project key');
    expect(await visible('#project-filter')).toBe(false);
    expect(await visible('#th-project')).toBe(false);
    expect(await page.locator('#upload-project').innerText()).toBe('→ project research');
    // The admin's batch in project 'rival' stays out of this key's view.
    expect(await page.locator('#rows tr[data-id]').count()).toBe(1);
    expect(await page.locator(row(rivalBatch)).count()).toBe(0);
    expect(await page.locator('#page-info').innerText()).toContain('1 batches');
    expect(await page.evaluate((k) => (globalThis as any).localStorage.getItem(k), KEY_STORAGE)).toBe(research.key);

    const api = apiRequests(from);
    const paths = new Set(api.map((r) => new URL(r.url).pathname));
    for (const p of ['/v1/me', '/v1/events', '/v1/batches/dashboard', '/v1/batches/analytics/live', '/v1/batches/analytics/timeline']) expect(paths).toContain(p);
    expect(api.filter((r) => r.auth !== `Bearer ${research.key}`).map((r) => r.url)).toEqual([]);
  });

  it("moves a running batch's progress to 100 % live over the keyed event stream", async () => {
    await page.evaluate(() => ((globalThis as any).__noReload = true));
    const id = await createBatch(researchClient, 60, 'live');
    await page.waitForSelector(row(id));
    // A progress tick patches the row in place; a table reload builds new rows. A row node that
    // was seen before and shows more progress now was moved by an event of the stream.
    const probe = () =>
      page.evaluate((sel) => {
        const tr = (globalThis as any).document.querySelector(sel);
        if (!tr) return null;
        const same = tr.__probe === true;
        tr.__probe = true;
        return { same, progress: Number(tr.querySelector('.fill')?.getAttribute('data-progress')), status: tr.getAttribute('data-status') as string };
      }, row(id));
    const seen = new Set<number>();
    let inPlace = 0;
    let last: number | null = null;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = await probe();
      if (p) {
        seen.add(p.progress);
        if (p.same && last !== null && p.progress > last) inPlace++;
        last = p.progress;
        if (p.progress === 1 && p.status === 'completed') break;
      }
      if (Date.now() > deadline) throw new Error(`progress seen: ${[...seen].join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...seen].some((p) => p > 0 && p < 1), `intermediate progress among ${[...seen].join(', ')}`).toBe(true);
    expect(inPlace, 'progress ticks applied to the row in place').toBeGreaterThan(0);
    expect(await page.locator(`${row(id)} .counts`).innerText()).toBe('60 / 60');
    expect(await page.evaluate(() => (globalThis as any).__noReload)).toBe(true);
  });

  it('downloads an output file with the key', async () => {
    const b = await researchClient.batches.retrieve((await page.locator('#rows tr[data-status="completed"]').first().getAttribute('data-id'))!);
    expect(b.output_file_id).toBeTruthy();
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`${row(b.id)} button.output`)]);
    expect(download.suggestedFilename()).toBe(`${b.id}_output.jsonl`);
    const saved = readFileSync(await download.path(), 'utf8');
    const expected = await (await researchClient.files.content(b.output_file_id!)).text();
    expect(saved).toBe(expected);
    expect(saved.split('\n').filter((l) => l !== '')).toHaveLength(b.request_counts!.total);
    const fetched = requests.filter((r) => r.url === `${besh.url}/v1/files/${b.output_file_id}/content`);
    expect(fetched.length).toBeGreaterThan(0);
    expect(fetched.every((r) => r.auth === `Bearer ${research.key}`)).toBe(true);
  });

  it('uploads a file and creates a batch with the key', async () => {
    const from = requests.length;
    await page.evaluate((content) => {
      const g = globalThis as any;
      const dt = new g.DataTransfer();
      dt.items.add(new File([content], 'keyed.jsonl', { type: 'application/jsonl' }));
      g.document.getElementById('drop').dispatchEvent(new g.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, chatLines(5, { prefix: 'keyed' }));
    await expect.poll(() => page.locator('#upload-msg').innerText()).toContain('keyed.jsonl');
    await page.click('#create');
    await expect.poll(() => page.locator('#upload-msg').innerText(), { timeout: 15_000 }).toMatch(/Created batch_/);
    const id = /Created (batch_\w+)/.exec(await page.locator('#upload-msg').innerText())![1]!;
    // The project key can read it: it was made in project 'research'.
    expect((await waitDone(researchClient, id)).request_counts).toMatchObject({ total: 5, completed: 5 });
    await page.waitForSelector(`${row(id)}[data-status="completed"]`);
    const posts = apiRequests(from).filter((r) => r.method === 'POST');
    expect(posts.map((r) => new URL(r.url).pathname)).toEqual(['/v1/files', '/v1/batches']);
    expect(posts.every((r) => r.auth === `Bearer ${research.key}`)).toBe(true);
  });

  it('never puts the key in a URL, the page or the console', async () => {
    expect(await page.content()).not.toContain(research.key);
    expect(await page.locator('#key-input').inputValue()).toBe('');
    expect(requests.filter((r) => r.url.includes(research.key))).toEqual([]);
    expect(page.url()).not.toContain(research.key);
    expect(consoleMessages.filter((m) => m.includes(research.key) || m.includes(ADMIN_KEY))).toEqual([]);
  });

  it('forgets the key on request (in every tab), and drops a key revoked while in use', async () => {
    // A second tab of the same browser signs in with the remembered key, and follows the first out.
    const tab = await page.context().newPage();
    tab.on('pageerror', (e) => consoleErrors.push(`pageerror (tab): ${e.message}`));
    await tab.goto(besh.url);
    await tab.waitForSelector(row(researchWarm));
    expect(await tab.locator('#who').innerText()).toBe('project research · project key');
    expect401 = true; // signed out, "who am I" answers 401
    await page.click('#signout');
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.locator('#key-msg').innerText()).toBe('Key forgotten.');
    await tab.locator('#login').waitFor({ state: 'visible' });
    expect(await tab.locator('#key-msg').innerText()).toBe('The key was forgotten in another tab.');
    expect(await tab.locator('#rows tr').count()).toBe(0);
    await tab.close();
    expect(await page.evaluate((k) => (globalThis as any).localStorage.getItem(k), KEY_STORAGE)).toBeNull();
    expect(await page.locator('#rows tr').count()).toBe(0);
    expect(await page.locator('#cards .card').count()).toBe(0);

    await enterKey(spare.key);
    await page.waitForSelector(row(researchWarm));
    expect401 = false;
    expect(consoleErrors).toEqual([]);
    // From the revocation on, any call of the page (the 10 s refresh too) may meet a 401.
    expect401 = true;
    expect((await revokeKey(dir.path, spare.id)).code).toBe(0);
    await page.click('#refresh');
    await expect.poll(() => page.locator('#key-msg').innerText(), { timeout: 10_000 }).toBe('This API key has been revoked.');
    expect(await visible('#app')).toBe(false);
    expect(await page.locator('#rows tr').count()).toBe(0);
    expect(await page.evaluate((k) => (globalThis as any).localStorage.getItem(k), KEY_STORAGE)).toBeNull();
  });

  it('with the admin key shows every project, and the project filter narrows the view', async () => {
    const from = requests.length;
    await enterKey(ADMIN_KEY);
    await page.waitForSelector('#conn.live');
    await page.waitForSelector(row(rivalBatch));
    expect401 = false;
    expect(await page.locator('#who').innerText()).toBe('admin key · default');
    expect(await page.locator(row(researchWarm)).count()).toBe(1);
    expect(await visible('#project-filter')).toBe(true);
    await expect.poll(async () => (await page.locator('#project option').allInnerTexts()).sort()).toEqual(['All projects', 'default', 'research', 'rival']);
    expect(await visible('#th-project')).toBe(true);
    expect(await page.locator(`${row(rivalBatch)} td.project`).innerText()).toBe('rival');
    expect(await page.locator(`${row(researchWarm)} td.project`).innerText()).toBe('research');

    await page.selectOption('#project', 'rival');
    await page.waitForSelector(row(researchWarm), { state: 'detached' });
    expect(await page.locator('#rows tr[data-id]').count()).toBe(1);
    expect(await page.locator(row(rivalBatch)).count()).toBe(1);
    expect(await visible('#th-project')).toBe(false);
    expect(await page.locator('#upload-project').innerText()).toBe('→ project rival');
    await page.waitForSelector('#conn.live');
    const scopedCalls = apiRequests(from).filter((r) => new URL(r.url).searchParams.get('project') === 'rival');
    const scopedPaths = new Set(scopedCalls.map((r) => new URL(r.url).pathname));
    for (const p of ['/v1/events', '/v1/batches/dashboard', '/v1/batches/analytics/live', '/v1/batches/analytics/timeline']) expect(scopedPaths).toContain(p);
    expect(scopedCalls.every((r) => r.auth === `Bearer ${ADMIN_KEY}`)).toBe(true);

    await page.selectOption('#project', '');
    await page.waitForSelector(row(researchWarm));
    expect(await visible('#th-project')).toBe(true);
  });

  it('had no console errors and no external requests', () => {
    expect(consoleErrors).toEqual([]);
  });
});
