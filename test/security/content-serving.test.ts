/**
 * Security issue 15, part 3: a file uploaded by one user must never run as the gateway's origin
 * in another user's browser (docs/SECURITY.md "Content serving"). Real gateway, real Chromium:
 * alice uploads evil.html whose script reads bob's private file and writes it where alice can
 * fetch it; bob, logged in with Basic, opens it. Before the fix the script ran with bob's rights
 * and the copy appeared on the server.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';
import { launchChromium, openAs, type LoggedIn } from '../webdav-ui/browser.ts';

const ALICE: [string, string] = ['alice', 'alice-uploads'];
const BOB: [string, string] = ['bob', 'bob-views'];
const SECRET = 'bob private: 4242-secret';

const STORED_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'";
const VIEWER_CSP = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'";

/** Reads bob's file and PUTs it where alice can read it; the page's title tells how far it got. */
const PAYLOAD = `(async () => {
  document.title = 'ran';
  const secret = await (await fetch('/team/bob/secret.txt', { credentials: 'include', cache: 'no-store' })).text();
  const put = await fetch('/team/drop/loot.txt', { method: 'PUT', body: secret, credentials: 'include' });
  document.title = 'stolen ' + put.status;
  return put.status;
})()`;
const EVIL_HTML = `<!doctype html><html><head><title>evil</title></head><body><p id="p">a harmless page</p><script>${PAYLOAD}</script></body></html>`;

/** Every request the gateway answered, from its debug log (what reached the server, whoever sent it). */
class RequestLog extends Writable {
  readonly entries: Array<{ method: string; url: string; status: number; user?: string }> = [];
  private partial = '';
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (!line.includes('"webdav request"')) continue;
      const e = JSON.parse(line) as { method: string; url: string; status: number; user?: string };
      this.entries.push({ method: e.method, url: e.url, status: e.status, user: e.user });
    }
    cb();
  }
  since(n: number): Array<{ method: string; url: string; status: number; user?: string }> {
    return this.entries.slice(n);
  }
}

const teamDir = mkdtempSync(join(tmpdir(), 'portico-sec-team-'));
const requests = new RequestLog();
let stack: DavStack;
useDav((s) => (stack = s), { [ALICE[0]]: ALICE[1], [BOB[0]]: BOB[1] }, {
  log: requests,
  // Everyone reads and writes the team share, except that only bob may use /bob.
  shares: [{ name: 'team', source: teamDir, rules: [{ path: '/bob', users: ['alice'], deny: ['read', 'write'] }] }],
});

let browser: Browser;
beforeAll(async () => {
  mkdirSync(join(teamDir, 'drop'));
  expect((await dav(stack, 'MKCOL', '/team/bob/', { auth: BOB })).status).toBe(201);
  expect((await dav(stack, 'PUT', '/team/bob/secret.txt', { auth: BOB, body: SECRET })).status).toBe(201);
  expect((await dav(stack, 'GET', '/team/bob/secret.txt', { auth: ALICE })).status).toBe(403);
  expect((await dav(stack, 'PUT', '/team/evil.html', { auth: ALICE, body: EVIL_HTML })).status).toBe(201);
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  rmSync(teamDir, { recursive: true, force: true });
});

const loot = (): string => join(teamDir, 'drop', 'loot.txt');

/** bob's page on the gateway runs the payload itself: proves the payload and bob's rights would do it. */
async function positiveControl(page: Page): Promise<void> {
  await page.goto(`${stack.origin}/team/`);
  expect(await page.evaluate(PAYLOAD)).toBe(201);
  expect(readFileSync(loot(), 'utf8')).toBe(SECRET);
  expect((await dav(stack, 'DELETE', '/team/drop/loot.txt', { auth: BOB })).status).toBe(204);
}

function readsOfSecret(since: number): number {
  return requests.since(since).filter((r) => r.url === '/team/bob/secret.txt').length;
}

describe('an uploaded HTML file opened by another user', () => {
  let session: LoggedIn | undefined;
  afterAll(async () => {
    await session?.context.close();
  });

  it('is saved by the browser, not rendered: its script never runs', async () => {
    session = await openAs(browser, BOB[0], BOB[1]);
    const { page } = session;
    await positiveControl(page);

    const mark = requests.entries.length;
    const download = page.waitForEvent('download', { timeout: 10_000 }).catch((e: Error) => e);
    await page.goto(`${stack.origin}/team/evil.html`).catch((e: Error) => expect(e.message).toMatch(/Download is starting/));
    await new Promise((r) => setTimeout(r, 1000));
    // Server side: the GET of evil.html reached the gateway; nothing read the secret, nothing was written.
    expect(requests.since(mark).some((r) => r.url === '/team/evil.html' && r.status === 200)).toBe(true);
    expect(readsOfSecret(mark)).toBe(0);
    expect(requests.since(mark).filter((r) => r.method !== 'GET')).toEqual([]);
    expect(existsSync(loot())).toBe(false);
    const d = await download;
    if (d instanceof Error) throw d;
    expect(d.suggestedFilename()).toBe('evil.html');
    expect(readFileSync((await d.path())!, 'utf8')).toBe(EVIL_HTML);
  });

  it('rendered anyway (Content-Disposition dropped on the way), runs no script, and is not the gateway origin', async () => {
    session ??= await openAs(browser, BOB[0], BOB[1]);
    const { page, problems } = session;
    let dropped: string | undefined;
    await page.route('**/team/evil.html', async (route) => {
      const response = await route.fetch();
      const headers = response.headers();
      dropped = headers['content-disposition'];
      delete headers['content-disposition'];
      await route.fulfill({ response, headers });
    });
    const mark = requests.entries.length;
    const problemsBefore = problems.length;
    await page.goto(`${stack.origin}/team/evil.html`);
    expect(await page.locator('#p').textContent()).toBe('a harmless page');
    await new Promise((r) => setTimeout(r, 1000));
    expect(await page.title()).toBe('evil'); // not 'ran', not 'stolen'
    expect(problems.slice(problemsBefore).join('\n')).toMatch(/Blocked script execution.*sandboxed/);
    expect(readsOfSecret(mark)).toBe(0);
    expect(existsSync(loot())).toBe(false);

    // Even a script that did run (here put there by the test harness, past CSP) is in an opaque
    // origin: it can neither read bob's file nor write one.
    expect(await page.evaluate('origin')).toBe('null');
    const outcome = await page.evaluate(`${PAYLOAD}.then((s) => 'status ' + s, (e) => 'failed: ' + e)`);
    expect(outcome).toMatch(/^failed: TypeError/);
    await new Promise((r) => setTimeout(r, 500));
    expect(requests.since(mark).filter((r) => r.url === '/team/drop/loot.txt' && r.method === 'PUT' && r.status < 300)).toEqual([]);
    expect(existsSync(loot())).toBe(false);
    expect(dropped).toMatch(/^attachment;/);
    await page.unroute('**/team/evil.html');
  });
});

describe('the UI page under its strict policy', () => {
  it('still works, and will not load a script uploaded to the same origin', async () => {
    expect((await dav(stack, 'PUT', '/team/drop/evil.js', { auth: ALICE, body: 'window.pwned = 1;' })).status).toBe(201);
    const session = await openAs(browser, ALICE[0], ALICE[1]);
    try {
      const { page, problems } = session;
      const resp = await page.goto(`${stack.origin}/team/`);
      expect(resp?.headers()['content-security-policy']).toMatch(/^default-src 'none'; script-src 'nonce-/);
      await expect.poll(() => page.locator('html.js').count()).toBe(1); // app.js ran
      expect(await page.evaluate('[...document.styleSheets].map((s) => s.cssRules.length > 10)')).toEqual([true]); // style.css applied
      await expect.poll(() => page.locator('#tools').isVisible()).toBe(true);
      // New folder through the UI: a same-origin MKCOL with the page's Origin header.
      await page.getByLabel('New folder', { exact: true }).fill('made by the UI');
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await expect.poll(() => existsSync(join(teamDir, 'made by the UI'))).toBe(true);
      expect(problems).toEqual([]);

      // An injected <script src> of an uploaded file (what an HTML injection would add) is refused.
      await page.evaluate(`document.head.append(Object.assign(document.createElement('script'), { src: '/team/drop/evil.js' }))`);
      await new Promise((r) => setTimeout(r, 500));
      expect(await page.evaluate('window.pwned')).toBeUndefined();
      expect(problems.join('\n')).toMatch(/evil\.js.*violates the following Content Security Policy directive: "script-src 'nonce-/);
    } finally {
      await session.context.close();
    }
  });

  it('sends a fresh nonce with every page, the one the page uses', async () => {
    const nonces = [];
    for (let i = 0; i < 2; i++) {
      const r = await dav(stack, 'GET', '/team/', { auth: BOB, headers: { Accept: 'text/html' } });
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toMatch(/^default-src 'none'; script-src 'nonce-([A-Za-z0-9+/=]{24})'; style-src 'nonce-\1'; img-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'$/);
      const nonce = /'nonce-([^']+)'/.exec(csp)![1]!;
      expect(r.text.match(/<script[^>]*>/g)).toEqual([expect.stringMatching(new RegExp(`^<script nonce="${nonce.replace(/[+/]/g, '\\$&')}" src="/\\.portico-ui/app\\.js\\?v=`))]);
      expect(r.text).toContain(`<link rel="stylesheet" nonce="${nonce}" href="/.portico-ui/style.css?v=`);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      nonces.push(nonce);
    }
    expect(nonces[0]).not.toBe(nonces[1]);
  });
});

describe('policy headers of stored content', () => {
  const cases: Array<[string, string, boolean]> = [
    // name, policy, attachment
    ['notes.txt', STORED_CSP, false],
    ['page.html', STORED_CSP, true],
    ['page.htm', STORED_CSP, true],
    ['page.xhtml', STORED_CSP, true],
    ['html', STORED_CSP, true], // no extension: the whole name is looked up, and means text/html
    ['pic.svg', STORED_CSP, true],
    ['data.xml', STORED_CSP, true],
    ['style.xsl', STORED_CSP, true],
    ['feed.rss', STORED_CSP, true],
    ['code.js', STORED_CSP, true],
    ['mod.mjs', STORED_CSP, true],
    ['pic.png', STORED_CSP, false],
    ['data.json', STORED_CSP, false],
    ['site.css', STORED_CSP, false],
    ['blob.bin', STORED_CSP, false],
    ['doc.pdf', VIEWER_CSP, false],
    ['clip.mp4', VIEWER_CSP, false],
    ['tone.wav', VIEWER_CSP, false],
  ];

  it('every file gets nosniff and a policy; active types are attachments, on GET, HEAD and ranges', async () => {
    expect((await dav(stack, 'MKCOL', '/team/types/', { auth: ALICE })).status).toBe(201);
    for (const [name, csp, attachment] of cases) {
      expect((await dav(stack, 'PUT', `/team/types/${name}`, { auth: ALICE, body: 'x'.repeat(20) })).status, name).toBe(201);
      for (const [method, headers, status] of [
        ['GET', {}, 200],
        ['HEAD', {}, 200],
        ['GET', { Range: 'bytes=0-3' }, 206],
        ['GET', { Range: 'bytes=0-1,4-5' }, 206],
      ] as const) {
        const r = await dav(stack, method, `/team/types/${name}`, { auth: BOB, headers });
        expect(r.status, `${method} ${name}`).toBe(status);
        expect(r.headers['x-content-type-options'], name).toBe('nosniff');
        expect(r.headers['content-security-policy'], name).toBe(csp);
        expect(r.headers['content-disposition'], name).toBe(attachment ? `attachment; filename="${name}"; filename*=UTF-8''${name}` : undefined);
      }
    }
  });

  it('names the file in Content-Disposition per RFC 6266 / RFC 8187, whatever its characters', async () => {
    const name = `Ré'sumé "q" (1)*100% 日本.html`;
    const href = `/team/${encodeURIComponent(name)}`;
    expect((await dav(stack, 'PUT', href, { auth: ALICE, body: '<p>x</p>' })).status).toBe(201);
    const r = await dav(stack, 'GET', href, { auth: BOB });
    const cd = String(r.headers['content-disposition']);
    const m = /^attachment; filename="([\x20-\x7e]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)$/.exec(cd);
    expect(m, cd).not.toBeNull();
    expect(m![1]).toBe(`R_'sum_ _q_ (1)*100_ __.html`);
    expect(decodeURIComponent(m![2]!)).toBe(name);

    // Chromium takes the name from filename* (and replaces '"' and '*', as for any download).
    const session = await openAs(browser, BOB[0], BOB[1]);
    try {
      const download = session.page.waitForEvent('download');
      await session.page.goto(`${stack.origin}${href}`).catch(() => undefined);
      expect((await download).suggestedFilename()).toBe(name.replace(/["*]/g, '_'));
    } finally {
      await session.context.close();
    }
  });
});

/** A 2x2 PNG, one second of a 400 Hz tone as 8 kHz PCM WAV, a one-page PDF. */
function png(): Buffer {
  return Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFElEQVR4nGP4z8DwHwyBNBgwMAAAZwYH+W9uqZ0AAAAASUVORK5CYII=', 'base64');
}
function wav(): Buffer {
  const n = 8000;
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 400 * i) / 8000)), 44 + i * 2);
  return b;
}
function pdf(): Buffer {
  const text = 'BT /F1 24 Tf 40 100 Td (Portico PDF) Tj ET';
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${text.length} >>\nstream\n${text}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

describe("the browser's own viewers under these policies", () => {
  it('shows images, text and PDF, and plays audio', async () => {
    mkdirSync(join(teamDir, 'view'));
    writeFileSync(join(teamDir, 'view', 'pic.png'), png());
    writeFileSync(join(teamDir, 'view', 'tone.wav'), wav());
    writeFileSync(join(teamDir, 'view', 'doc.pdf'), pdf());
    writeFileSync(join(teamDir, 'view', 'notes.txt'), 'plain words '.repeat(400));
    const session = await openAs(browser, BOB[0], BOB[1]);
    try {
      const { page, problems } = session;
      const open = async (name: string, csp: string): Promise<void> => {
        expect((await dav(stack, 'HEAD', `/team/view/${name}`, { auth: BOB })).headers['content-security-policy']).toBe(csp);
        await page.goto(`${stack.origin}/team/view/${name}`);
      };
      await open('pic.png', STORED_CSP);
      await expect.poll(() => page.evaluate(`document.querySelector('img')?.naturalWidth`)).toBe(2);
      await open('notes.txt', STORED_CSP);
      expect(await page.evaluate(`getComputedStyle(document.querySelector('pre')).whiteSpace`)).toBe('pre-wrap');
      // Under `sandbox` this stays at readyState 0: the media viewer's CORS fetch from an opaque origin fails.
      await open('tone.wav', VIEWER_CSP);
      await expect.poll(() => page.evaluate(`document.querySelector('video')?.readyState ?? -1`), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      expect(await page.evaluate(`document.querySelector('video').duration`)).toBeCloseTo(1, 1);
      await open('doc.pdf', VIEWER_CSP);
      await expect
        .poll(
          async () => {
            const viewer = page.frames().find((f) => f.url().startsWith('chrome-extension://'));
            if (!viewer) return 'no viewer';
            return viewer
              .evaluate(
                `document.querySelector('pdf-viewer')?.shadowRoot?.querySelector('viewer-toolbar')?.shadowRoot` +
                  `?.querySelector('viewer-page-selector')?.docLength ?? 'loading'`,
              )
              .catch(() => 'loading');
          },
          { timeout: 15_000 },
        )
        .toBe(1); // pages in the document the viewer loaded
      expect(problems).toEqual([]);
    } finally {
      await session.context.close();
    }
  });
});
