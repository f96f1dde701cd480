/**
 * cadaver (neon's WebDAV shell), driven one command at a time through stdin: each command is written
 * once the `dav:/share/> ` prompt is back, and its output is what came before the next prompt.
 * Credentials come from ~/.netrc (HOME is a temp dir). Between commands, curl (another client, no
 * lock token) checks what cadaver's LOCK really does on the server.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mustRun, serverNames, startDavServer, tempDir, urlFor, type DavServer } from './helpers.ts';

let server: DavServer;
let tmp: string;

beforeAll(async () => {
  server = await startDavServer();
  tmp = tempDir('cadaver');
  writeFileSync(join(tmp, '.netrc'), `machine 127.0.0.1\nlogin ${server.user}\npassword ${server.pass}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await server?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const PROMPT = /dav:[^\n]*> $/;

class Cadaver {
  private readonly child: ChildProcessWithoutNullStreams;
  private buf = '';
  private waiter: (() => void) | undefined;
  readonly transcript: string[] = [];

  constructor(url: string, home: string) {
    this.child = spawn('cadaver', [url], { cwd: home, env: { ...process.env, HOME: home, LC_ALL: 'C.UTF-8' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const take = (d: Buffer): void => {
      this.buf += d.toString('utf8');
      this.waiter?.();
    };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
    this.child.on('exit', () => this.waiter?.());
  }

  /** Output up to (not including) the next prompt. */
  private async untilPrompt(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!PROMPT.test(this.buf)) {
      if (this.child.exitCode !== null) throw new Error(`cadaver exited (${this.child.exitCode}):\n${this.buf}\n${this.transcript.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no cadaver prompt after ${timeoutMs} ms:\n${this.buf}`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 200);
      });
      this.waiter = undefined;
    }
    const out = this.buf.replace(PROMPT, '');
    this.buf = '';
    return out;
  }

  async start(): Promise<string> {
    return this.untilPrompt();
  }

  /** Runs one command; returns its output without the echoed command line. */
  async cmd(line: string): Promise<string> {
    this.child.stdin.write(line + '\n');
    const out = await this.untilPrompt();
    this.transcript.push(`> ${line}\n${out}`);
    // Without a terminal cadaver echoes the line it read.
    return out.startsWith(line + '\n') ? out.slice(line.length + 1) : out;
  }

  async quit(): Promise<void> {
    this.child.stdin.end('quit\n');
    await new Promise<void>((resolve) => {
      if (this.child.exitCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

async function curlStatus(args: string[]): Promise<number> {
  const r = await mustRun('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-u', `${server.user}:${server.pass}`, ...args], { timeoutMs: 30_000 });
  return Number(r.stdout);
}

describe(`cadaver against ${process.env.WEBDAV_CLIENTS_TARGET ?? 'portico'}`, () => {
  it('mkcol, put, ls, get, copy, move, lock/unlock (seen by another client), propset/propget, delete, rmcol', async () => {
    const local = join(tmp, 'local file.txt');
    const content = 'hello from cadaver — ünïcode\n'.repeat(100);
    writeFileSync(local, content);
    const cad = new Cadaver(server.url, tmp);
    try {
      const banner = await cad.start();
      expect(banner).not.toMatch(/Could not|failed/i);
      const ok = (out: string): void => expect(out, cad.transcript.join('\n')).toMatch(/succeeded/);

      ok(await cad.cmd('mkcol cdir'));
      expect(serverNames(server.dataDir)).toContain('cdir');

      ok(await cad.cmd('put "local file.txt" cdir/a.txt'));
      expect(readFileSync(join(server.dataDir, 'cdir', 'a.txt'), 'utf8')).toBe(content);

      const ls = await cad.cmd('ls cdir');
      ok(ls);
      expect(ls).toMatch(new RegExp(`a\\.txt\\s+${Buffer.byteLength(content)}\\s`));

      ok(await cad.cmd('get cdir/a.txt back.txt'));
      expect(readFileSync(join(tmp, 'back.txt'), 'utf8')).toBe(content);

      ok(await cad.cmd('copy cdir/a.txt cdir/b.txt'));
      ok(await cad.cmd('move cdir/b.txt cdir/c.txt'));
      expect(serverNames(join(server.dataDir, 'cdir'))).toEqual(['a.txt', 'c.txt']);
      expect(readFileSync(join(server.dataDir, 'cdir', 'c.txt'), 'utf8')).toBe(content);

      // LOCK: cadaver holds the token; another client without it is refused (423), cadaver is not.
      ok(await cad.cmd('lock cdir/c.txt'));
      const locks = await cad.cmd('showlocks');
      expect(locks).toMatch(/Lock token <[^>]+>/);
      expect(locks).toMatch(/exclusive/i);
      expect(await curlStatus(['-T', local, urlFor(server.url, 'cdir/c.txt')])).toBe(423);
      expect(await curlStatus(['-X', 'DELETE', urlFor(server.url, 'cdir/c.txt')])).toBe(423);
      ok(await cad.cmd('put "local file.txt" cdir/c.txt'));
      ok(await cad.cmd('unlock cdir/c.txt'));
      expect(await curlStatus(['-T', local, urlFor(server.url, 'cdir/c.txt')])).toBeLessThan(300);

      // Dead properties.
      ok(await cad.cmd('propset cdir/a.txt color "deep blue"'));
      const pg = await cad.cmd('propget cdir/a.txt color');
      expect(pg).toMatch(/Value of color is: deep blue/);
      const names = await cad.cmd('propnames cdir/a.txt');
      expect(names).toMatch(/color/);
      expect(names).toMatch(/DAV: getcontentlength/);

      const cat = await cad.cmd('cat cdir/c.txt');
      expect(cat).toContain('hello from cadaver — ünïcode');

      ok(await cad.cmd('delete cdir/a.txt'));
      expect(serverNames(join(server.dataDir, 'cdir'))).toEqual(['c.txt']);
      const ls2 = await cad.cmd('ls cdir');
      expect(ls2).not.toMatch(/a\.txt/);
      expect(ls2).toMatch(/c\.txt/);

      ok(await cad.cmd('rmcol cdir'));
      expect(serverNames(server.dataDir)).not.toContain('cdir');
      const missing = await cad.cmd('get cdir/c.txt nothing.txt');
      expect(missing).toMatch(/failed/);
      expect(missing).toMatch(/404/);
      await cad.quit();
    } finally {
      cad.kill();
    }
  }, 120_000);
});
