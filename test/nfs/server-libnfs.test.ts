/**
 * libnfs (nfs-ls, nfs-cat, nfs-cp with ?version=4) against the real gateway's NFS server: the
 * pseudo-root lists the exports, files written over WebDAV are listed and read back byte for byte
 * over NFS (cross-protocol), a missing path is NFS4ERR_NOENT and a path a rule denies is
 * NFS4ERR_ACCESS. libnfs runs as root here: the stack maps uid 0 to the user "root" (squash none).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dav } from '../webdav/helpers.ts';
import { startNfs, type NfsStack } from './gateway.ts';

let stack: NfsStack;
const AUTH: [string, string] = ['root', 'Secret-Pass1'];
const BIG = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 777 }, (_, i) => (i * 131 + (i >> 9)) & 0xff));

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; stdout: Buffer }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, killSignal: 'SIGKILL', encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, out: `${stdout.toString()}${stderr.toString()}`, stdout });
    });
  });
}
const url = (path: string): string => `nfs://127.0.0.1${path}?version=4&nfsport=${stack.nfsPort}`;

beforeAll(async () => {
  stack = await startNfs({
    shares: [{ name: 'ruled', source: 'memory:', rules: [{ path: '/secret', users: ['root'], deny: ['read'] }] }],
  });
  for (const [share, path, body] of [
    ['disk', '/hello.txt', Buffer.from('hello over webdav\n')],
    ['disk', '/big.bin', BIG],
    ['ruled', '/open.txt', Buffer.from('open\n')],
  ] as const) {
    expect((await dav({ port: stack.davPort }, 'PUT', `/${share}${path}`, { body, auth: AUTH })).status).toBe(201);
  }
  expect((await dav({ port: stack.davPort }, 'MKCOL', '/disk/sub', { auth: AUTH })).status).toBe(201);
  expect((await dav({ port: stack.davPort }, 'MKCOL', '/ruled/secret', { auth: AUTH })).status).toBe(201);
  expect((await dav({ port: stack.davPort }, 'PUT', '/disk/sub/inner.txt', { body: 'inner\n', auth: AUTH })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('libnfs against the real NFS server', () => {
  it('lists the exports in the pseudo-root and a share written over WebDAV', async () => {
    const root = await run('nfs-ls', [url('/')]);
    expect(root.code).toBe(0);
    expect(root.out).toMatch(/^d\S+.* disk$/m);
    expect(root.out).toMatch(/^d\S+.* mem$/m);
    const disk = await run('nfs-ls', [url('/disk')]);
    expect(disk.code).toBe(0);
    expect(disk.out).toMatch(/^-\S+\s+1\s+0\s+0\s+18 hello\.txt$/m);
    expect(disk.out).toMatch(new RegExp(`^-\\S+\\s+1\\s+0\\s+0\\s+${BIG.length} big\\.bin$`, 'm'));
    expect(disk.out).toMatch(/^d\S+.* sub$/m);
    expect((await run('nfs-ls', [url('/disk/sub')])).out).toMatch(/inner\.txt/);
  });

  it('reads files written over WebDAV, small and 3 MiB, byte for byte', async () => {
    expect((await run('nfs-cat', [url('/disk/hello.txt')])).stdout.toString()).toBe('hello over webdav\n');
    expect((await run('nfs-cat', [url('/disk/sub/inner.txt')])).stdout.toString()).toBe('inner\n');
    const dir = mkdtempSync(join(tmpdir(), 'portico-nfs-cp-'));
    try {
      const cp = await run('nfs-cp', [url('/disk/big.bin'), join(dir, 'big.bin')]);
      expect(cp.code).toBe(0);
      expect(readFileSync(join(dir, 'big.bin')).equals(BIG)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers NFS4ERR_NOENT for a missing file and a missing share', async () => {
    const missing = await run('nfs-cat', [url('/disk/nope.txt')]);
    expect(missing.code).not.toBe(0);
    expect(missing.out).toMatch(/NFS4ERR_NOENT/);
    const share = await run('nfs-ls', [url('/noshare')]);
    expect(share.code).not.toBe(0);
    expect(share.out).toMatch(/NFS4ERR_NOENT/);
  });

  it('answers NFS4ERR_ACCESS where a path rule denies read, and hides the member from the listing', async () => {
    expect((await run('nfs-cat', [url('/ruled/open.txt')])).stdout.toString()).toBe('open\n');
    const denied = await run('nfs-ls', [url('/ruled/secret')]);
    expect(denied.code).not.toBe(0);
    expect(denied.out).toMatch(/NFS4ERR_ACCESS/);
    const ls = await run('nfs-ls', [url('/ruled')]);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/open\.txt/);
    expect(ls.out).not.toMatch(/secret/);
  });
});
