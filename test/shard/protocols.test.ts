/**
 * A shard set over NFS and SMB with real clients: libnfs (nfs-ls, nfs-cat) and the project's NFSv4.1
 * client read and list it, smbclient gets files; every change is refused with each protocol's
 * read-only error (NFS4ERR_ROFS; SMB: smbclient reports the refusal and nothing changes).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { pack } from '../../backends/shard/pack.ts';
import { LocalShardStore } from '../../backends/shard/store.ts';
import { Nfs41Client, ops, resultOf, type Stateid } from '../nfs/client41.ts';
import { startNfs, type NfsStack } from '../nfs/gateway.ts';
import { smbclient } from '../smb/gateway.ts';
import { makeTree, type TreeFile } from './tree.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-proto-'));
const ANON: Stateid = { seqid: 0, other: Buffer.alloc(12) };
let files: TreeFile[];
let stack: NfsStack;
let c: Nfs41Client;

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: Buffer; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, killSignal: 'SIGKILL', encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, out: `${stdout.toString()}${stderr.toString()}` });
    });
  });
}

beforeAll(async () => {
  ({ files } = makeTree(join(tmp, 'src'), 200, { seed: 31 }));
  await pack(join(tmp, 'src'), new LocalShardStore(join(tmp, 'set')), { shardSize: 256 * 1024, workers: 0 });
  stack = await startNfs({ smb: true, users: [{ name: 'root', uid: 0 }], shares: [{ name: 'shard', source: `shard+${pathToFileURL(join(tmp, 'set')).href}` }] });
  c = await Nfs41Client.connect(stack.nfsPort);
}, 60_000);

afterAll(async () => {
  c?.close();
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const top = (): TreeFile[] => files.filter((f) => f.path.split('/').length === 2 && f.data.length > 0);

describe('shard set over NFS', () => {
  it('libnfs lists and reads files', async () => {
    const url = (p: string): string => `nfs://127.0.0.1/shard${p}?version=4&nfsport=${stack.nfsPort}`;
    const ls = await run('nfs-ls', [url('/')]);
    expect(ls.code, ls.out).toBe(0);
    for (const f of top().slice(0, 20)) expect(ls.out).toContain(f.path.slice(1));
    for (const f of top().filter((x) => /^[\w./-]+$/.test(x.path)).slice(0, 10)) {
      const r = await run('nfs-cat', [url(f.path)]);
      expect(r.code, r.out).toBe(0);
      expect(r.stdout.equals(f.data), f.path).toBe(true);
    }
  });

  it('every change answers NFS4ERR_ROFS', async () => {
    const f = top()[0]!;
    const name = f.path.slice(1);
    const rd = await c.call([...c.lookupPath(`/shard${f.path}`), ops.read(ANON, 0n, 1 << 20)]);
    expect((resultOf(rd, OP.READ)!.body!.data as Buffer).equals(f.data)).toBe(true);
    const changes = [
      [ops.open(c.clientid, 'w1', name, { access: 3 })],
      [ops.open(c.clientid, 'w2', 'new.txt', { create: 'unchecked', access: 2 })],
      [ops.mkdir('d')],
      [ops.remove(name)],
      [ops.savefh(), ops.rename(name, 'g.txt')],
      [ops.lookup(name), ops.write(ANON, 0n, Buffer.from('x'))],
    ];
    for (const list of changes) {
      const r = await c.call([...c.lookupPath('/shard'), ...list], 2);
      expect(r.status, `${list.map((o) => o.op)}`).toBe(NFS4ERR.ROFS);
    }
  });
});

describe('shard set over SMB', () => {
  it('smbclient gets files; put, mkdir and del are refused and change nothing', async () => {
    const f = top().find((x) => /^\/[\w.-]+$/.test(x.path))!;
    const out = join(tmp, 'got.bin');
    const base = ['//127.0.0.1/shard', '-p', String(stack.smbPort), '-U', 'root%Secret-Pass1'];
    const g = await smbclient([...base, '-c', `get ${f.path.slice(1)} ${out}`]);
    expect(g.code, g.out).toBe(0);
    expect(readFileSync(out).equals(f.data)).toBe(true);
    for (const cmd of [`put ${out} new.txt`, 'mkdir newdir', `del ${f.path.slice(1)}`]) {
      const r = await smbclient([...base, '-c', cmd]);
      expect(r.out, cmd).toMatch(/NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED)/);
    }
    const ls = await smbclient([...base, '-c', 'ls']);
    expect(ls.out).toContain(f.path.slice(1));
    expect(ls.out).not.toMatch(/new\.txt|newdir/);
  });
});
