/**
 * A real NFSv4 client (libnfs's nfs-ls / nfs-cat, Debian libnfs-utils) against the wire layer with
 * the NOTSUPP stub dispatcher: it must get a clean NFS error — an exit status and a message
 * naming the NFS status, not a hang or a crash — and the server must go on answering.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
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
