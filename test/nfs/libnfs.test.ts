/**
 * A real NFSv4 client (libnfs's nfs-ls / nfs-cat / nfs-cp, Debian libnfs-utils) against the wire
 * layer. With the NOTSUPP stub dispatcher it must get a clean NFS error — an exit status and a
 * message naming the NFS status, not a hang or a crash — and the server must go on answering.
 * With the test-only toy dispatcher (a fixed tree) it mounts, lists and reads: the result
 * encoders (GETATTR, READDIR, OPEN, READ with its zero-copy data) are what a real client parses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOY_BIG, toyDispatcher } from './toy-dispatcher.ts';
import { RpcClient, callRecord, startServer } from './helpers.ts';
import type { RpcServer } from '../../protocols/nfs/rpc-server.ts';

let server: RpcServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, out: `${stdout}${stderr}`, timedOut: !!e?.killed });
    });
  });
}

describe('libnfs against the stub server', () => {
  for (const [tool, path] of [
    ['nfs-ls', '/'],
    ['nfs-cat', '/share/file.txt'],
  ] as const) {
    it(`${tool} gets a clean NFS4ERR_NOTSUPP and the server stays up`, async () => {
      const s = await startServer();
      server = s.server;
      const r = await run(tool, [`nfs://127.0.0.1${path}?version=4&nfsport=${s.port}`]);
      expect(r.timedOut).toBe(false);
      expect(r.code).not.toBe(0);
      expect(r.code).not.toBeNull();
      // libnfs 4.0 starts a 4.0 mount with SETCLIENTID; the stub refuses it.
      expect(r.out).toMatch(/NFS4ERR_NOTSUPP/);
      const c = await RpcClient.connect(s.port);
      try {
        expect((await c.call(1, callRecord({ xid: 1, proc: 0 }))).reply).toEqual({ kind: 'success' });
      } finally {
        c.close();
      }
    });
  }
});

describe('libnfs against the toy dispatcher', () => {
  it('mounts, lists, reads a small and a 3 MiB file, and gets NFS4ERR_NOENT for a missing path', async () => {
    const s = await startServer({ dispatcher: toyDispatcher });
    server = s.server;
    const url = (path: string): string => `nfs://127.0.0.1${path}?version=4&nfsport=${s.port}`;
    const ls = await run('nfs-ls', [url('/')]);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/^d\S+\s+2\s+0\s+0\s+0 sub$/m);
    expect(ls.out).toMatch(/^-rw-r--r--\s+1\s+0\s+0\s+12000 hello.txt$/m);
    expect((await run('nfs-ls', [url('/sub')])).out).toMatch(/inner\.txt/);
    const cat = await run('nfs-cat', [url('/sub/inner.txt')]);
    expect(cat).toMatchObject({ code: 0, out: 'inner\n' });
    const dir = mkdtempSync(join(tmpdir(), 'portico-nfs-'));
    try {
      const cp = await run('nfs-cp', [url('/sub/big.bin'), join(dir, 'big.bin')]);
      expect(cp.code).toBe(0);
      expect(readFileSync(join(dir, 'big.bin')).equals(TOY_BIG)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const missing = await run('nfs-ls', [url('/nope')]);
    expect(missing.code).not.toBe(0);
    expect(missing.out).toMatch(/NFS4ERR_NOENT/);
  });
});
