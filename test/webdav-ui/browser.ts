/**
 * Debian's Chromium driven by playwright-core (no browser download: see /work/shared/CLIENTS.md),
 * plus the one user scenario the UI must pass against any server that renders it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: run scripts/install-test-peers.sh (package chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

export interface LoggedIn {
  context: BrowserContext;
  page: Page;
  /** Console errors (CSP violations show up here), page exceptions and failed asset loads. */
  problems: string[];
}

export async function openAs(browser: Browser, user: string, password: string, opts: { javaScriptEnabled?: boolean; viewport?: { width: number; height: number } } = {}): Promise<LoggedIn> {
  const context = await browser.newContext({
    httpCredentials: { username: user, password },
    acceptDownloads: true,
    locale: 'en-GB',
    timezoneId: 'Europe/Paris',
    viewport: opts.viewport ?? { width: 1100, height: 800 },
    javaScriptEnabled: opts.javaScriptEnabled ?? true,
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d|status of 5\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.url().includes('/.portico-ui/') && r.status() !== 200) problems.push(`asset ${r.url()} -> ${r.status()}`);
  });
  return { context, page, problems };
}

/** What the scenario needs to know about the server under test, beyond HTTP. */
export interface FlowTarget {
  origin: string;
  /** URL path of an empty, writable collection, ending with '/', e.g. '/data/'. */
  collection: string;
  /** Breadcrumb labels of the collection (the share, then each folder). */
  collectionCrumbs: string[];
  user: string;
  password: string;
  /** Reads a file through the backend (not through the UI), relative to the collection. */
  readBack(rel: string): Promise<Buffer | undefined>;
  /** 'file', 'dir' or undefined, relative to the collection. */
  kindOf(rel: string): Promise<'file' | 'dir' | undefined>;
  /** Makes a PUT of 'denied.txt' into the collection answer 403; the returned function undoes it. */
  denyWrites(): Promise<() => Promise<void>>;
  /** Where to save the screenshot (checked by eye during development). */
  screenshot: string;
}

export const NASTY = 'Résumé & notes — 日本 "q" <1>.txt';

function row(page: Page, name: string) {
  return page.locator('#listing tbody tr').filter({ has: page.getByRole('link', { name, exact: true }) });
}

/** The whole user story: upload, progress, sort, rename, mkdir, navigate, delete, download, errors. */
export async function runUserFlow(page: Page, t: FlowTarget, scratch: string): Promise<void> {
  await mkdir(scratch, { recursive: true });
  const big = randomBytes(5 * 1024 * 1024 + 123);
  const nasty = Buffer.from('accents, ampersand & CJK: 日本\n'.repeat(50));
  const small = Buffer.from('small file\n');
  await writeFile(join(scratch, 'big.bin'), big);
  await writeFile(join(scratch, NASTY), nasty);
  await writeFile(join(scratch, 'small.txt'), small);

  const resp = await page.goto(t.origin + t.collection);
  expect(resp?.status()).toBe(200);
  expect(resp?.headers()['content-type']).toMatch(/^text\/html/);
  await expect.poll(() => page.locator('#tools').isVisible()).toBe(true);

  // Upload three files through the real file chooser.
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'Upload files', exact: true }).click();
  await (await chooser).setFiles([join(scratch, 'big.bin'), join(scratch, NASTY), join(scratch, 'small.txt')]);
  const panel = page.locator('#uploads');
  await expect.poll(() => panel.isVisible()).toBe(true);
  expect(await panel.locator('li progress').count()).toBe(3);
  expect(await panel.locator('progress[aria-label="Total upload progress"]').count()).toBe(1);
  await expect.poll(() => panel.locator('h2').textContent(), { timeout: 30_000 }).toBe('Uploaded 3 files');
  for (const p of await panel.locator('progress').all()) {
    expect(await p.evaluate((e) => (e as unknown as { value: number; max: number }).value === (e as unknown as { max: number }).max)).toBe(true);
  }
  await expect.poll(() => page.locator('#messages .msg.ok span').first().textContent()).toMatch(/Uploaded 3 files \(5\.0 MB\)/);
  for (const name of ['big.bin', NASTY, 'small.txt']) await expect.poll(() => row(page, name).count()).toBe(1);
  expect((await t.readBack('big.bin'))?.equals(big)).toBe(true);
  expect((await t.readBack(NASTY))?.equals(nasty)).toBe(true);
  expect(await row(page, 'big.bin').locator('td.s').textContent()).toBe('5.0 MB');

  // Sorting: size descending puts the biggest file first among files.
  await page.getByRole('button', { name: 'Size', exact: true }).click();
  expect(await page.locator('th[data-key="size"]').getAttribute('aria-sort')).toBe('descending');
  expect(await page.locator('#listing tbody tr[data-type="file"] th').first().textContent()).toBe('big.bin');
  await page.getByRole('button', { name: 'Name', exact: true }).click();
  expect(await page.locator('th[data-key="name"]').getAttribute('aria-sort')).toBe('ascending');

  // Rename with the keyboard; then a rename onto an existing name is refused with Overwrite: F.
  await row(page, 'small.txt').getByRole('button', { name: 'Rename small.txt' }).click();
  const input = page.getByRole('textbox', { name: 'New name for small.txt' });
  await expect.poll(() => input.evaluate((e) => e === (e as unknown as { ownerDocument: { activeElement: unknown } }).ownerDocument.activeElement)).toBe(true);
  await input.fill('renamed.txt');
  await input.press('Enter');
  await expect.poll(() => row(page, 'renamed.txt').count()).toBe(1);
  expect(await row(page, 'small.txt').count()).toBe(0);
  expect((await t.readBack('renamed.txt'))?.equals(small)).toBe(true);
  expect(await t.kindOf('small.txt')).toBeUndefined();

  await row(page, 'renamed.txt').getByRole('button', { name: 'Rename renamed.txt' }).click();
  await page.getByRole('textbox', { name: 'New name for renamed.txt' }).fill('big.bin');
  await page.getByRole('textbox', { name: 'New name for renamed.txt' }).press('Enter');
  await expect.poll(() => page.locator('#messages .msg.err span').last().textContent()).toMatch(/^Renaming “renamed\.txt” to “big\.bin” failed: 412( Precondition Failed)? — A file with that name exists\.$/);
  await page.getByRole('textbox', { name: 'New name for renamed.txt' }).press('Escape');
  expect(await page.locator('form.rename').count()).toBe(0);
  expect((await t.readBack('big.bin'))?.equals(big)).toBe(true);

  // New folder whose name needs percent-encoding, then into it and back by breadcrumb.
  const folder = 'New folder #1? 100%';
  await page.getByLabel('New folder', { exact: true }).fill(folder);
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await expect.poll(() => row(page, folder).count()).toBe(1);
  expect(await row(page, folder).getAttribute('data-type')).toBe('dir');
  expect(await t.kindOf(folder)).toBe('dir');
  await row(page, folder).locator('th a').click();
  await expect.poll(() => page.locator('h1').textContent()).toBe(folder);
  expect(new URL(page.url()).pathname).toBe(`${t.collection}${encodeURIComponent(folder)}/`);
  expect(await page.locator('#listing .empty').textContent()).toBe('This folder is empty.');
  expect(await page.locator('.crumbs a').allTextContents()).toEqual([...t.collectionCrumbs, folder]);
  expect(await page.locator('.crumbs a[aria-current="page"]').textContent()).toBe(folder);
  await page.locator('.crumbs a').nth(-2).click();
  await expect.poll(() => new URL(page.url()).pathname).toBe(t.collection);

  // Delete after confirming the dialog.
  let question = '';
  page.once('dialog', (d) => {
    question = d.message();
    void d.accept();
  });
  await row(page, 'renamed.txt').getByRole('button', { name: 'Delete renamed.txt' }).click();
  await expect.poll(() => row(page, 'renamed.txt').count()).toBe(0);
  expect(question).toBe('Delete “renamed.txt”?');
  expect(await t.kindOf('renamed.txt')).toBeUndefined();

  // Download the file with the awkward name and compare bytes.
  const download = page.waitForEvent('download');
  await row(page, NASTY).getByRole('link', { name: `Download ${NASTY}` }).click();
  const d = await download;
  // Chromium replaces characters Windows forbids in file names; the rest (unicode, &) is kept.
  expect(d.suggestedFilename()).toBe(NASTY.replace(/["<>]/g, '_'));
  expect((await readFile((await d.path())!)).equals(nasty)).toBe(true);

  // A refused upload says why, in the live region.
  await writeFile(join(scratch, 'denied.txt'), 'no');
  const undo = await t.denyWrites();
  try {
    const chooser2 = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Upload files', exact: true }).click();
    await (await chooser2).setFiles([join(scratch, 'denied.txt')]);
    await expect.poll(() => panel.locator('h2').textContent()).toBe('Uploaded 0 of 1 file');
    await expect.poll(() => page.locator('#messages[aria-live] .msg.err span').last().textContent()).toMatch(/^Upload of “denied\.txt” failed: 403( Forbidden)? — You do not have write access\.$/);
    expect(await panel.locator('li.fail .st').textContent()).toMatch(/403/);
  } finally {
    await undo();
  }
  expect(await t.kindOf('denied.txt')).toBeUndefined();

  await page.screenshot({ path: t.screenshot, fullPage: true });
}
