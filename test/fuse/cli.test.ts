/**
 * `portico mount SOURCE DIR` as a process: the share is the mount's root; SIGTERM unmounts; a
 * mount left by a killed Portico (SIGKILL: the kernel keeps a dead mount, ENOTCONN) is cleaned at
 * the next start; a busy or non-empty mount point is refused with a clear error. And a machine
 * without the addon: `serve` runs and reports FUSE unavailable with the enabling command (log and
 * /health), `mount` fails with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, NODE, ROOT, cleanEnv, freePort, killQuietly, runCli } from '../cli/helpers.ts';
import { FUSE_ENABLE_COMMAND } from '../../protocols/fuse/native.ts';
import { fuseUnusable, http, mountPoints, removeTmp, sh, waitFor } from './helpers.ts';

const unusable = fuseUnusable();
if (unusable) console.warn(`FUSE CLI mount tests skipped: ${unusable}`);

const tmp = mkdtempSync(join(tmpdir(), 'portico-fuse-cli-'));
const children: ChildProcess[] = [];

function mountProc(src: string, dir: string, state: string, env: NodeJS.ProcessEnv = cleanEnv()): { child: ChildProcess; /** stdout (the log) and stderr */ err: () => string; exit: Promise<number | null> } {
  const child = spawn(NODE, [BIN, 'mount', src, dir, '--state', state, '--log-level', 'info'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return { child, err: () => err, exit: new Promise((r) => child.on('exit', (code) => r(code))) };
}

afterEach(() => {
  for (const c of children.splice(0)) killQuietly(c);
});

afterAll(async () => {
  for (const [dir, type] of mountPoints()) if (dir.startsWith(tmp) && type === 'fuse.portico') await sh('fusermount3', ['-u', '-z', dir]);
  removeTmp(tmp);
});

describe.skipIf(unusable !== undefined)('portico mount', () => {
  it('mounts the share as DIR itself, unmounts on SIGTERM; cleans a killed mount at the next start', async () => {
    const src = join(tmp, 'src1');
    const dir = join(tmp, 'mnt1');
    mkdirSync(src);
    mkdirSync(dir);
    writeFileSync(join(src, 'hello.txt'), 'hello');
    const state = join(tmp, 'state1');
    const first = mountProc(src, dir, state);
    await waitFor(() => mountPoints().get(dir) === 'fuse.portico', 90_000, 'the mount');
    expect(readFileSync(join(dir, 'hello.txt'), 'utf8')).toBe('hello');
    // Killed: no unmount happens; the kernel keeps a mount whose server is gone.
    first.child.kill('SIGKILL');
    await first.exit;
    expect(mountPoints().get(dir)).toBe('fuse.portico');
    expect(() => statSync(dir)).toThrow(/ENOTCONN/);
    // The next start finds it stale, unmounts it and mounts again.
    const second = mountProc(src, dir, state);
    await waitFor(() => {
      try {
        return readFileSync(join(dir, 'hello.txt'), 'utf8') === 'hello';
      } catch {
        return false;
      }
    }, 90_000, 'the mount after the stale one');
    expect(second.err()).toContain('stale mount');
    // Busy: a second Portico on the live mount point is refused.
    const busy = await runCli(['mount', src, dir, '--state', join(tmp, 'state1b')], { timeoutMs: 90_000 });
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/is busy: a FUSE file system \(fuse\.portico\) is mounted there/);
    second.child.kill('SIGTERM');
    expect(await second.exit).toBe(0);
    expect(mountPoints().has(dir)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  }, 240_000);

  it('refuses a non-empty mount point', async () => {
    const src = join(tmp, 'src2');
    const dir = join(tmp, 'mnt2');
    mkdirSync(src);
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    const r = await runCli(['mount', src, dir, '--state', join(tmp, 'state2')], { timeoutMs: 90_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`fuse: mount point ${dir} is not empty`);
    expect(mountPoints().has(dir)).toBe(false);
  }, 120_000);
});

describe('a machine without the FUSE addon', () => {
  const env = cleanEnv({ FUSE_ADDON_PATH: join(tmp, 'no-such-addon.node') });

  it('serve runs and reports FUSE unavailable with the enabling command (log, /health)', async () => {
    const src = join(tmp, 'src3');
    mkdirSync(src);
    const admin = await freePort();
    const child = spawn(NODE, [BIN, 'serve', src, '--state', join(tmp, 'state3'), '--admin-port', String(admin), '--webdav-port', '0', '--nfs-port', '0', '--smb-port', '0', '--log-level', 'info'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    let health: { status: string; protocols?: { fuse?: { available: boolean; reason?: string; enable?: string } } } | undefined;
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`serve exited: ${out}`);
      const r = await http(admin, 'GET', '/health', undefined, false).catch(() => undefined);
      if (r?.status === 200) health = JSON.parse(r.body.toString());
      return health !== undefined;
    }, 90_000, '/health');
    expect(health!.status).toBe('ok');
    expect(health!.protocols?.fuse).toEqual({ available: false, reason: expect.stringContaining('the FUSE addon is not built'), enable: FUSE_ENABLE_COMMAND });
    await waitFor(() => out.includes('fuse unavailable'), 10_000, 'the log line');
    expect(out).toContain(FUSE_ENABLE_COMMAND);
    child.kill('SIGTERM');
  }, 120_000);

  it('mount fails with the reason and the enabling command', async () => {
    const src = join(tmp, 'src4');
    const dir = join(tmp, 'mnt4');
    mkdirSync(src);
    mkdirSync(dir);
    const r = await runCli(['mount', src, dir, '--state', join(tmp, 'state4')], { env, timeoutMs: 90_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`FUSE unavailable: the FUSE addon is not built`);
    expect(r.stderr).toContain(`enable with: ${FUSE_ENABLE_COMMAND}`);
  }, 120_000);
});
