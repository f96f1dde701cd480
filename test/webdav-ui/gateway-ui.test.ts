/**
 * The same browser user story against the real gateway: `portico serve` with a config file, local
 * users made with `portico user add`, Chromium logging in with HTTP Basic. A path rule denies
 * alice writes to /denied.txt, so the refused upload is a real 403 from the ACL; bob may only read.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, NODE, ROOT, cleanEnv, freePort, killQuietly, runCli } from '../cli/helpers.ts';
import { launchChromium, openAs, runUserFlow } from './browser.ts';

const ALICE = 'alice';
const ALICE_PASS = 'Correct horse 1 & ü';
const BOB = 'bob';
const BOB_PASS = 'bob-reads-only';

let browser: Browser;
let tmp: string;
let data: string;
let port: number;
let child: ChildProcess | undefined;
let output = '';

async function waitForWebdav(proc: ChildProcess, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`serve exited early with code ${proc.exitCode}:\n${output}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/.portico-ui/style.css`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`webdav did not answer within ${deadlineMs} ms:\n${output}`);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-ui-gw-'));
  data = join(tmp, 'data');
  mkdirSync(data);
  port = await freePort();
  const config = join(tmp, 'portico.yaml');
  writeFileSync(
    config,
    `server:
  listen: 127.0.0.1
  stateDir: ./state
admin:
  port: 0
log:
  level: warn
  audit:
    enabled: false
auth:
  bcryptRounds: 4
  firstRun: loopback-only
protocols:
  webdav:
    port: ${port}
  nfs:
    port: 0
  smb:
    port: 0
shares:
  - name: data
    source: ./data
    access:
      - users: [${ALICE}]
        rights: [read, write]
      - users: [${BOB}]
        rights: [read]
    rules:
      - path: /denied.txt
        users: [${ALICE}]
        deny: [write]
`,
  );
  for (const [user, pass] of [
    [ALICE, ALICE_PASS],
    [BOB, BOB_PASS],
  ] as const) {
    const r = await runCli(['user', 'add', user, '--password-stdin', '-c', config], { input: `${pass}\n`, env: cleanEnv() });
    expect(r.code, r.stderr).toBe(0);
  }
  const proc = (child = spawn(NODE, [BIN, 'serve', '-c', config], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  await waitForWebdav(proc, 20_000);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  killQuietly(child);
  rmSync(tmp, { recursive: true, force: true });
});

async function kindOf(rel: string): Promise<'file' | 'dir' | undefined> {
  try {
    return statSync(join(data, rel)).isDirectory() ? 'dir' : 'file';
  } catch {
    return undefined;
  }
}

describe('browser UI on the real gateway', () => {
  it('runs the whole user story through Portico WebDAV', async () => {
    const session = await openAs(browser, ALICE, ALICE_PASS);
    try {
      await runUserFlow(session.page, {
        origin: `http://127.0.0.1:${port}`,
        collection: '/data/',
        collectionCrumbs: ['Shares', 'data'],
        user: ALICE,
        password: ALICE_PASS,
        readBack: async (rel) => readFile(join(data, rel)).catch(() => undefined),
        kindOf,
        denyWrites: async () => async () => undefined, // the path rule in the config does it
        screenshot: process.env.PORTICO_UI_SCREENSHOT?.replace(/\.png$/, '-gateway.png') ?? join(tmp, 'gateway.png'),
      }, join(tmp, 'src'));
      // The list of shares is reachable from the breadcrumb.
      await session.page.getByRole('link', { name: 'Shares', exact: true }).click();
      await expect.poll(() => session.page.locator('h1').textContent()).toBe('Shares');
      expect(await session.page.locator('#listing tbody th a').allTextContents()).toEqual(['data']);
      expect(session.problems).toEqual([]);
    } finally {
      await session.context.close();
    }
  });

  it('shows a read-only page to a user who may only read', async () => {
    const session = await openAs(browser, BOB, BOB_PASS);
    try {
      const { page } = session;
      await page.goto(`http://127.0.0.1:${port}/data/`);
      await expect.poll(() => page.locator('html.js').count()).toBe(1);
      expect(await page.locator('.ro').textContent()).toBe('Read-only');
      expect(await page.locator('#tools').count()).toBe(0);
      expect(await page.getByRole('button', { name: /Rename|Delete|Upload/ }).count()).toBe(0);
      const download = page.waitForEvent('download');
      await page.getByRole('link', { name: 'Download big.bin', exact: true }).click();
      expect((await readFile((await (await download).path())!)).equals(await readFile(join(data, 'big.bin')))).toBe(true);
      expect(session.problems).toEqual([]);
    } finally {
      await session.context.close();
    }
  });
});
