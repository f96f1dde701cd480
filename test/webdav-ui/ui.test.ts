/**
 * The browser UI in real Chromium against a small real HTTP server (mini-dav-server.ts) over a
 * temp directory: the full user story, drag and drop, read-only, no JavaScript, truncation, size.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { launchChromium, openAs, runUserFlow, type LoggedIn } from './browser.ts';
import { MiniDavServer } from './mini-dav-server.ts';

const USER = 'alice';
const PASS = 'pa:ss wörd';

let browser: Browser;
let tmp: string;
let root: string;
let server: MiniDavServer;
let session: LoggedIn | undefined;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-ui-'));
  root = join(tmp, 'root');
  await mkdir(root);
  server = new MiniDavServer({ root, share: 'data', user: USER, password: PASS });
  await server.start();
});
afterEach(async () => {
  await session?.context.close();
  session = undefined;
  await server.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function kindOf(rel: string): Promise<'file' | 'dir' | undefined> {
  try {
    return statSync(join(root, rel)).isDirectory() ? 'dir' : 'file';
  } catch {
    return undefined;
  }
}

describe('browser UI against a minimal WebDAV server', () => {
  it('uploads with progress, sorts, renames, creates a folder, deletes, downloads and reports errors', async () => {
    session = await openAs(browser, USER, PASS);
    const shot = process.env.PORTICO_UI_SCREENSHOT ?? join(tmp, 'ui.png');
    await runUserFlow(session.page, {
      origin: server.origin,
      collection: '/data/',
      collectionCrumbs: ['Shares', 'data'],
      user: USER,
      password: PASS,
      readBack: async (rel) => readFile(join(root, rel)).catch(() => undefined),
      kindOf,
      denyWrites: async () => {
        server.putStatus = 403;
        return async () => {
          server.putStatus = undefined;
        };
      },
      screenshot: shot,
    }, join(tmp, 'src'));
    expect(statSync(shot).size).toBeGreaterThan(10_000);

    // The page spoke WebDAV as RFC 4918 wants it: absolute Destination, Overwrite: F on rename.
    const moves = server.log.filter((r) => r.method === 'MOVE');
    expect(moves[0]?.url).toBe('/data/small.txt');
    expect(moves[0]?.headers.destination).toBe(`${server.origin}/data/renamed.txt`);
    expect(moves[0]?.headers.overwrite).toBe('F');
    const puts = server.log.filter((r) => r.method === 'PUT').map((r) => r.url);
    expect(puts).toContain(`/data/${encodeURIComponent('Résumé & notes — 日本 "q" <1>.txt')}`);
    expect(server.log.some((r) => r.method === 'MKCOL' && r.url === '/data/New%20folder%20%231%3F%20100%25/')).toBe(true);
    expect(session.problems).toEqual([]);
  });

  it('shows uploads in progress and cancels them', async () => {
    let release = (): void => undefined;
    server.putGate = new Promise<void>((r) => (release = r));
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Upload files', exact: true }).click();
    await (await chooser).setFiles([
      { name: 'slow 1.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(300_000, 1) },
      { name: 'slow 2.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1000, 2) },
      { name: 'slow 3.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1000, 3) },
      { name: 'queued.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1000, 4) },
    ]);
    const panel = page.locator('#uploads');
    await expect.poll(() => panel.locator('h2').textContent()).toBe('Uploading 4 files');
    // Three at a time: the body of each is sent, the server has not answered yet, the fourth waits.
    await expect.poll(() => panel.locator('li .st').allTextContents()).toEqual(['Finishing…', 'Finishing…', 'Finishing…', 'Waiting']);
    expect(Number(await panel.locator('header .st').textContent().then((t) => t!.replace('%', '')))).toBeGreaterThan(90);
    expect(await panel.locator('li').first().locator('progress').evaluate((p) => (p as unknown as { value: number }).value)).toBe(300_000);
    if (process.env.PORTICO_UI_SCREENSHOT) await page.screenshot({ path: process.env.PORTICO_UI_SCREENSHOT.replace(/\.png$/, '-progress.png') });
    await panel.getByRole('button', { name: 'Cancel', exact: true }).click();
    await expect.poll(() => panel.locator('h2').textContent()).toBe('Uploaded 0 of 4 files');
    expect(await panel.locator('li .st').allTextContents()).toEqual(['Cancelled', 'Cancelled', 'Cancelled', 'Cancelled']);
    expect(await page.locator('#messages .msg.err').count()).toBe(0); // cancelling is not an error
    release();
    await panel.getByRole('button', { name: 'Close', exact: true }).click();
    expect(await panel.isVisible()).toBe(false);
    await new Promise((r) => setTimeout(r, 200));
    expect(await kindOf('slow 1.bin')).toBeUndefined();
    expect(await kindOf('queued.bin')).toBeUndefined();
    expect(session.problems).toEqual([]);
  });

  it('shows the other server errors in words', async () => {
    await writeFile(join(root, 'a.txt'), 'x');
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    const cases: [number, RegExp][] = [
      [507, /^Upload of “a\.txt” failed: 507 Insufficient Storage — No space left\.$/],
      [423, /^Upload of “a\.txt” failed: 423 Locked — Locked/],
      [409, /^Upload of “a\.txt” failed: 409 Conflict — Folder no longer exists\.$/],
    ];
    page.on('dialog', (d) => void d.accept()); // "a.txt already exists. Replace?"
    for (const [status, message] of cases) {
      server.putStatus = status;
      const chooser = page.waitForEvent('filechooser');
      await page.getByRole('button', { name: 'Upload files', exact: true }).click();
      await (await chooser).setFiles({ name: 'a.txt', mimeType: 'text/plain', buffer: Buffer.from('new') });
      await expect.poll(() => page.locator('#messages .msg.err span').last().textContent()).toMatch(message);
    }
    server.putStatus = undefined;
    // MKCOL onto an existing name.
    await page.getByLabel('New folder', { exact: true }).fill('a.txt');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.locator('#messages .msg.err span').last().textContent()).toMatch(/^Creating folder “a\.txt” failed: 405 Method Not Allowed — A file or folder with that name already exists\.$/);
    // Invalid names never reach the server.
    await page.getByLabel('New folder', { exact: true }).fill('a/b');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.locator('#messages .msg.err span').last().textContent()).toBe('A name cannot contain “/”.');
    expect(server.log.filter((r) => r.method === 'MKCOL').length).toBe(1);
    // Messages can be dismissed with a real button.
    const before = await page.locator('#messages .msg').count();
    await page.locator('#messages .msg').last().getByRole('button', { name: 'Dismiss message' }).click();
    expect(await page.locator('#messages .msg').count()).toBe(before - 1);
    expect(await readFile(join(root, 'a.txt'), 'utf8')).toBe('x');
    expect(session.problems).toEqual([]);
  });

  it('uploads files and folders dropped on the page', async () => {
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    await expect.poll(() => page.locator('#tools').isVisible()).toBe(true);
    // A synthetic drop carries File objects like a real one (Playwright cannot drag from the desktop).
    // Scripts as strings: the project compiles without the DOM library.
    const dropEvent = (type: string, target: string): string => `(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped one'], 'drop 1.txt', { type: 'text/plain' }));
      dt.items.add(new File(['dropped two'], 'drop#2.txt'));
      document.querySelector(${JSON.stringify(target)}).dispatchEvent(new DragEvent(${JSON.stringify(type)}, { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`;
    await page.evaluate(dropEvent('dragenter', 'body'));
    await expect.poll(() => page.locator('#drop').isVisible()).toBe(true);
    await page.evaluate(dropEvent('drop', 'h1'));
    await expect.poll(() => page.locator('#uploads h2').textContent()).toBe('Uploaded 2 files');
    expect(await page.locator('#drop').isVisible()).toBe(false);
    expect(await readFile(join(root, 'drop 1.txt'), 'utf8')).toBe('dropped one');
    expect(await readFile(join(root, 'drop#2.txt'), 'utf8')).toBe('dropped two');
    await expect.poll(() => page.getByRole('link', { name: 'drop#2.txt', exact: true }).count()).toBe(1);
    expect(session.problems).toEqual([]);
  });

  it('uploads a folder picked with the folder button, creating its subfolders', async () => {
    const src = join(tmp, 'pick', 'Album');
    await mkdir(join(src, 'inner dir'), { recursive: true });
    await writeFile(join(src, 'one.txt'), '1');
    await writeFile(join(src, 'inner dir', 'two.txt'), '22');
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Upload folder', exact: true }).click();
    await (await chooser).setFiles(src);
    await expect.poll(() => page.locator('#uploads h2').textContent()).toBe('Uploaded 2 files');
    expect(await readFile(join(root, 'Album', 'one.txt'), 'utf8')).toBe('1');
    expect(await readFile(join(root, 'Album', 'inner dir', 'two.txt'), 'utf8')).toBe('22');
    await expect.poll(() => page.getByRole('link', { name: 'Album', exact: true }).count()).toBe(1);
    expect(session.problems).toEqual([]);
  });

  it('hides every write control on a read-only share and still lists and downloads', async () => {
    await server.stop();
    server = new MiniDavServer({ root, share: 'data', user: USER, password: PASS, readOnly: true });
    await server.start();
    await writeFile(join(root, 'keep.txt'), 'keep');
    await mkdir(join(root, 'sub'));
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    await expect.poll(() => page.locator('html.js').count()).toBe(1);
    expect(await page.locator('#tools').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Rename|Delete|Upload/ }).count()).toBe(0);
    expect(await page.locator('.ro').textContent()).toBe('Read-only');
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Download keep.txt', exact: true }).click();
    expect(await readFile((await (await download).path())!, 'utf8')).toBe('keep');
    expect(session.problems).toEqual([]);
  });

  it('browses and downloads without JavaScript, with no write controls shown', async () => {
    await mkdir(join(root, 'a & b'));
    await writeFile(join(root, 'a & b', 'in.txt'), 'inside');
    await symlink('in.txt', join(root, 'a & b', 'link.txt'));
    session = await openAs(browser, USER, PASS, { javaScriptEnabled: false });
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    expect(await page.locator('#tools').isVisible()).toBe(false);
    expect(await page.locator('noscript').count()).toBe(1);
    await page.getByRole('link', { name: 'a & b', exact: true }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('a & b');
    expect(await page.locator('time').first().textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    expect(await page.locator('a.i-link').textContent()).toBe('link.txt');
    await page.getByRole('link', { name: 'Parent folder' }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/data/');
    await page.getByRole('link', { name: 'Shares', exact: true }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('Shares');
    expect(await page.locator('#listing tbody th a').allTextContents()).toEqual(['data']);
  });

  it('says when the listing is truncated, shows local dates and keeps folders first in every order', async () => {
    for (let i = 0; i < 6; i++) await writeFile(join(root, `f${i}.txt`), 'x'.repeat(i * 100));
    await mkdir(join(root, 'zz-folder'));
    server.listLimit = 5;
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    expect(await page.locator('#truncated').textContent()).toMatch(/only the first 5 are shown/);
    server.listLimit = undefined;
    // The date is rewritten in the browser's time zone and locale (en-GB, Europe/Paris).
    const t = page.locator('time').first();
    const iso = await t.getAttribute('datetime');
    const expected = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'Europe/Paris' }).format(new Date(iso!));
    expect(await t.textContent()).toBe(expected);
    // After a change the listing refreshes itself and the notice goes away.
    await page.getByLabel('New folder', { exact: true }).fill('aa-folder');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => page.locator('#truncated').count()).toBe(0);
    await page.getByRole('button', { name: 'Modified', exact: true }).click();
    const types = await page.locator('#listing tbody tr[data-name]').evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { type: string } }).dataset.type));
    expect(types.slice(0, 2)).toEqual(['dir', 'dir']);
    expect(types.length).toBe(8);
    // The chosen order survives a reload.
    await page.reload();
    expect(await page.locator('th[data-key="mtime"]').getAttribute('aria-sort')).toBe('descending');
    expect(session.problems).toEqual([]);
  });

  it('is usable on a phone-sized screen and small over the wire', async () => {
    await writeFile(join(root, 'a-rather-long-file-name-that-must-wrap-on-small-screens-without-scrolling.txt'), 'x');
    await writeFile(join(root, 'notes.md'), 'n'.repeat(2048));
    await mkdir(join(root, 'Photos 2024'));
    session = await openAs(browser, USER, PASS, { viewport: { width: 375, height: 700 } });
    const { page } = session;
    const loaded: string[] = [];
    // Bodies are read as each response arrives; all of them are awaited before counting (the
    // 'response' listener is not awaited by Playwright: counting at networkidle raced them).
    const bodies: Promise<number>[] = [];
    page.on('response', (r) => {
      if (r.status() !== 200) return; // the 401 challenge before the browser sends credentials
      loaded.push(new URL(r.url()).pathname);
      bodies.push(r.body().then((b) => b.length, () => 0));
    });
    await page.goto(`${server.origin}/data/`);
    await page.waitForLoadState('networkidle');
    const bytes = (await Promise.all(bodies)).reduce((a, b) => a + b, 0);
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
    expect(overflow).toBeLessThanOrEqual(0);
    expect(await page.locator('th.m').isVisible()).toBe(false);
    expect(loaded.sort()).toEqual(['/.portico-ui/app.js', '/.portico-ui/icon.svg', '/.portico-ui/style.css', '/data/']);
    expect(bytes).toBeGreaterThan(5_000);
    expect(bytes).toBeLessThan(30_000);
    if (process.env.PORTICO_UI_SCREENSHOT) await page.screenshot({ path: process.env.PORTICO_UI_SCREENSHOT.replace(/\.png$/, '-phone.png'), fullPage: true });
  });

  it('shows hostile names as text and links them exactly', async () => {
    const names = ['<img src=x onerror=alert(1)>', `it's "quoted"`, '#1 ?q=a&b=c 100%', 'ünï çødé', '.hidden', ' lead and trail '];
    for (const n of names) await writeFile(join(root, n), `content of ${n}`);
    await mkdir(join(root, '<b>x</b>'.replace('/', '_')));
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`${server.origin}/data/`);
    const shown = await page.locator('#listing tbody th a').allTextContents();
    expect(shown.sort()).toEqual([...names, '<b>x<_b>'].sort());
    expect(await page.locator('#listing img, #listing b').count()).toBe(0);
    for (const n of names) {
      const href = await page.getByRole('link', { name: n, exact: true }).getAttribute('href');
      expect(href).toBe(`/data/${encodeURIComponent(n)}`);
      const res = await page.request.get(server.origin + href!);
      expect(await res.text()).toBe(`content of ${n}`);
    }
    await page.getByRole('link', { name: '<b>x<_b>', exact: true }).click();
    await expect.poll(() => page.locator('h1').textContent()).toBe('<b>x<_b>');
    expect(await page.title()).toBe('<b>x<_b> · Portico');
    expect(dialogs).toEqual([]);
    expect(session.problems).toEqual([]);
  });

  it('can be driven with the keyboard alone', async () => {
    await writeFile(join(root, 'doc.txt'), 'x');
    session = await openAs(browser, USER, PASS);
    const { page } = session;
    await page.goto(`${server.origin}/data/`);
    await expect.poll(() => page.locator('#tools').isVisible()).toBe(true);
    // Tab order: breadcrumbs, Upload files, Upload folder, New folder field.
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Shares');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Upload files');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.id')).toBe('mkdir-name');
    await page.keyboard.type('Made by keys');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate('document.activeElement.textContent')).toBe('Made by keys'); // focus follows the new row
    // Rename doc.txt: Tab to its Rename button, Space opens the field with the stem selected.
    const rename = page.getByRole('button', { name: 'Rename doc.txt', exact: true });
    await rename.focus();
    await page.keyboard.press('Space');
    expect(await page.evaluate('[document.activeElement.selectionStart, document.activeElement.selectionEnd]')).toEqual([0, 3]);
    await page.keyboard.type('paper');
    await page.keyboard.press('Escape');
    expect(await page.evaluate('document.activeElement.getAttribute("aria-label")')).toBe('Rename doc.txt');
    await page.keyboard.press('Enter');
    await page.keyboard.type('paper');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate('document.activeElement.textContent')).toBe('paper.txt');
    expect(await readFile(join(root, 'paper.txt'), 'utf8')).toBe('x');
    // Delete with Enter on the button and Enter on the confirm dialog.
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete paper.txt', exact: true }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => kindOf('paper.txt')).toBeUndefined();
    await expect.poll(() => page.evaluate('document.activeElement.id')).toBe('title');
    expect(session.problems).toEqual([]);
  });

  it('serves only its own assets', async () => {
    const res = await fetch(`${server.origin}/.portico-ui/app.js?v=anything`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    for (const bad of ['index.ts', 'assets.ts', '..%2findex.ts', 'app.js/', 'APP.JS', '']) {
      expect((await fetch(`${server.origin}/.portico-ui/${bad}`)).status).toBe(404);
    }
    // Everything else needs credentials.
    expect((await fetch(`${server.origin}/data/`, { headers: { Accept: 'text/html' } })).status).toBe(401);
  });
});
