/**
 * A scripted cadaver session (commands on stdin, credentials from a private ~/.netrc) against the
 * real stack: mkcol, put, ls, lock (held across put and discover), unlock, move, get, propset and
 * propget; a lock left by one cadaver session blocks other clients (it outlives the requests).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dav, run, startDav, type DavStack } from './helpers.ts';

let stack: DavStack;
let home: string;

beforeAll(async () => {
  stack = await startDav();
  await stack.addUser('alice', 'cadaver-pw');
  home = mkdtempSync(join(tmpdir(), 'portico-cadaver-'));
  writeFileSync(join(home, '.netrc'), 'machine 127.0.0.1\nlogin alice\npassword cadaver-pw\n', { mode: 0o600 });
  writeFileSync(join(home, 'local.txt'), 'hello from cadaver\n');
});

afterAll(async () => {
  await stack?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

function cadaver(commands: string[]): ReturnType<typeof run> {
  return run('cadaver', [`${stack.origin}/disk/`], { cwd: home, input: commands.join('\n') + '\nquit\n', env: { ...process.env, HOME: home }, timeoutMs: 60_000 });
}

describe('cadaver', () => {
  it('runs a scripted session', async () => {
    const r = await cadaver([
      'mkcol docs',
      'put local.txt docs/a.txt',
      'ls docs',
      'lock docs/a.txt',
      'discover docs/a.txt',
      'put local.txt docs/a.txt',
      'unlock docs/a.txt',
      'move docs/a.txt docs/b.txt',
      'get docs/b.txt fetched.txt',
      'propset docs/b.txt color red',
      'propget docs/b.txt color',
      'ls docs',
    ]);
    const out = r.stdout;
    expect(out).toContain("Creating `docs': succeeded.");
    expect(out).toContain("Uploading local.txt to `/disk/docs/a.txt':");
    expect(out).toContain("Locking `docs/a.txt': succeeded.");
    expect(out).toMatch(/Lock token <opaquelocktoken:[0-9a-f-]+>/);
    expect(out).toContain("Unlocking `docs/a.txt': succeeded.");
    expect(out).toContain("Moving `/disk/docs/a.txt' to `/disk/docs/b.txt':  succeeded.");
    expect(out).toContain('Value of color is: red');
    expect(out).not.toMatch(/failed/i);
    expect(readFileSync(join(home, 'fetched.txt'), 'utf8')).toBe('hello from cadaver\n');
    expect(readFileSync(join(stack.diskDir, 'docs', 'b.txt'), 'utf8')).toBe('hello from cadaver\n');
  });

  it('leaves a lock that outlives the session and blocks other writers', async () => {
    const r = await cadaver(['lock docs/b.txt']);
    expect(r.stdout).toContain("Locking `docs/b.txt': succeeded.");
    const put = await dav(stack, 'PUT', '/disk/docs/b.txt', { auth: ['alice', 'cadaver-pw'], body: 'other client' });
    expect(put.status).toBe(423);
    expect(put.text).toContain('<D:lock-token-submitted><D:href>/disk/docs/b.txt</D:href>');
  });
});
