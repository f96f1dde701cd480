/**
 * A real `portico serve` process with the FUSE front-end mounted under a temp directory (and WebDAV
 * on 127.0.0.1 for cross-protocol checks), acting as the local user `fuser`.
 *
 * Why a separate process: a FUSE server must never be the process that uses its own mount. Node's
 * fs calls run on libuv's thread pool (4 threads); calls on the mount block those threads until
 * the server answers, and the server needs the same pool for its own disk I/O — a test calling
 * fs on a mount served in its own process deadlocks as soon as 4 calls are in flight. For the same
 * reason the tests here call the mount one fs call at a time (s3rver runs in the test process and
 * needs the pool too), and concurrency is driven from a child process (runNode).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fuseAvailability } from '../../protocols/fuse/native.ts';
import { mountPoints } from '../../protocols/fuse/mount.ts';
import { BIN, NODE, ROOT, cleanEnv, freePort, runCli } from '../cli/helpers.ts';

export { mountPoints };
export const USER = 'fuser';
export const PW = 'fuse-test-pw';
export const sh = promisify(execFile);

/** Why the FUSE tests cannot run here (undefined: they can). */
export function fuseUnusable(): string | undefined {
  const a = fuseAvailability();
  return a.available ? undefined : `${a.reason} (enable: ${a.enable})`;
}

export interface FuseStack {
  child: ChildProcess;
  mnt: string;
  tmp: string;
  /** WebDAV port (127.0.0.1). */
  port: number;
  /** Admin port (/health). */
  adminPort: number;
  stderr(): string;
  /** SIGTERM and wait for the exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startFuseStack(o: { shares: Record<string, unknown>[]; fuse?: Record<string, unknown>; tmp?: string }): Promise<FuseStack> {
  const tmp = o.tmp ?? mkdtempSync(join(tmpdir(), 'portico-fuse-'));
  const mnt = join(tmp, 'mnt');
  mkdirSync(mnt, { recursive: true });
  const port = await freePort();
  const adminPort = await freePort();
  const config = {
    server: { stateDir: join(tmp, 'state') },
    admin: { port: adminPort, listen: '127.0.0.1' },
    auth: { bcryptRounds: 4 },
    log: { level: 'warn', format: 'json', audit: { enabled: false } },
    protocols: {
      webdav: { port, listen: '127.0.0.1' },
      nfs: { port: 0 },
      smb: { port: 0 },
      fuse: { mountpoint: mnt, user: USER, ...o.fuse },
    },
    shares: o.shares,
  };
  const file = join(tmp, 'portico.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const added = await runCli(['user', 'add', USER, '--password-stdin', '--config', file], { input: `${PW}\n`, timeoutMs: 60_000 });
  if (added.code !== 0) throw new Error(`user add failed: ${added.stderr}`);
  const child = spawn(NODE, [BIN, 'serve', '--config', file], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`portico serve exited (${child.exitCode}): ${err}`);
      return mountPoints().get(mnt) === 'fuse.portico';
    }, 90_000, 'the FUSE mount');
  } catch (e) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw e;
  }
  return {
    child,
    mnt,
    tmp,
    port,
    adminPort,
    stderr: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export function removeTmp(tmp: string): void {
  rmSync(tmp, { recursive: true, force: true });
}

/** One HTTP request (WebDAV as USER; or any GET). */
export function http(port: number, method: string, path: string, body?: string | Buffer, auth = true): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (auth) headers.Authorization = `Basic ${Buffer.from(`${USER}:${PW}`).toString('base64')}`;
    if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs a Node script in a child process (concurrent use of a mount; see the header). */
export async function runNode(script: string, args: string[] = []): Promise<string> {
  const r = await sh(NODE, ['--input-type=module', '-e', script, ...args], { timeout: 120_000 });
  return r.stdout;
}
