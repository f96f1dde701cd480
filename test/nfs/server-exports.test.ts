/**
 * Per-export client restrictions (shares[].nfs.clients) and the wire bounds of protocols.nfs, with
 * the project's own client on 127.0.0.1: an export whose list does not match 127.0.0.1 is refused
 * with NFS4ERR_ACCESS at LOOKUP, SECINFO and PUTFH and is absent from the pseudo-root; an export
 * that is ro for 127.0.0.1 reads but answers ROFS to every change (and ACCESS grants no write
 * bits), while the same operations succeed on an export without a list; maxCompoundOps,
 * maxReadBytes and maxWriteBytes bound COMPOUNDs, READ, WRITE, maxread/maxwrite and CREATE_SESSION.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { ACCESS4, FATTR4, NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { dav } from '../webdav/helpers.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type Stateid } from './client41.ts';

const AUTH: [string, string] = ['root', 'Secret-Pass1'];

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, out: `${stdout}${stderr}` });
    });
  });
}
const ANON: Stateid = { seqid: 0, other: Buffer.alloc(12) };

describe('shares[].nfs.clients', () => {
  let stack: NfsStack;
  let c: Nfs41Client;

  beforeAll(async () => {
    stack = await startNfs({
      shares: [
        { name: 'elsewhere', source: 'memory:', nfs: { clients: [{ match: '192.0.2.0/24' }, { match: '2001:db8::/32' }] } },
        { name: 'rohere', source: 'memory:', nfs: { clients: [{ match: '127.0.0.1', access: 'ro' }, { match: '*' }] } },
        { name: 'rwhere', source: 'memory:', nfs: { clients: [{ match: '10.0.0.0/8', access: 'ro' }, { match: '127.0.0.0/8', access: 'rw' }] } },
      ],
    });
    c = await Nfs41Client.connect(stack.nfsPort);
    for (const s of ['elsewhere', 'rohere', 'rwhere']) {
      expect((await dav({ port: stack.davPort }, 'PUT', `/${s}/f.txt`, { body: 'content\n', auth: AUTH })).status).toBe(201);
    }
  }, 60_000);

  afterAll(async () => {
    c?.close();
    await stack?.stop();
  });

  it('an export the address does not match: ACCESS at LOOKUP, SECINFO and PUTFH, and not listed', async () => {
    expect((await c.call(c.lookupPath('/elsewhere'))).status).toBe(NFS4ERR.ACCESS);
    expect((await c.call([ops.putrootfh(), ops.secinfo('elsewhere')])).status).toBe(NFS4ERR.ACCESS);
    expect((await c.call([ops.putrootfh(), ops.secinfo('rohere')])).status).toBe(NFS4ERR.OK);
    const ls = await c.call([ops.putrootfh(), ops.readdir()]);
    expect(resultOf(ls, OP.READDIR)!.body!.names).toEqual(['disk', 'mem', 'rohere', 'rwhere']);
    // A handle of the export (as a client elsewhere would hold it) is refused too.
    const srv = stack.nfs.server!;
    const exp = srv.exports.byShareName('elsewhere')!;
    const root = srv.base.as({ user: 'root', uid: 0, gid: 0, groups: [], guest: false });
    const fh = srv.fh.forFile(exp, await srv.rootId(root, 'elsewhere')).bytes;
    expect((await c.call([ops.putfh(fh), ops.getattr([FATTR4.TYPE])])).status).toBe(NFS4ERR.ACCESS);
    expect((await c.call([ops.putfh(fh), ops.readdir()])).results.map((r) => r.status)).toEqual([NFS4ERR.OK, NFS4ERR.ACCESS]);
  });

  it('libnfs: the refused export is not listed and nfs-ls of it fails with NFS4ERR_ACCESS; the ro one reads', async () => {
    const url = (path: string): string => `nfs://127.0.0.1${path}?version=4&nfsport=${stack.nfsPort}`;
    const root = await run('nfs-ls', [url('/')]);
    expect(root.code).toBe(0);
    expect(root.out).toMatch(/ rohere$/m);
    expect(root.out).not.toMatch(/elsewhere/);
    const refused = await run('nfs-ls', [url('/elsewhere')]);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/NFS4ERR_ACCESS/);
    expect((await run('nfs-cat', [url('/rohere/f.txt')])).out).toBe('content\n');
  });

  it('an export that is ro for the address reads, answers ROFS to changes, grants no write ACCESS bits', async () => {
    const rd = await c.call([...c.lookupPath('/rohere/f.txt'), ops.read(ANON, 0n, 100)]);
    expect((resultOf(rd, OP.READ)!.body!.data as Buffer).toString()).toBe('content\n');
    const opened = await c.call([...c.lookupPath('/rohere'), ops.open(c.clientid, 'ro1', 'f.txt', { access: 1 }), ops.getfh()]);
    expect(opened.status).toBe(NFS4ERR.OK);
    const sid = resultOf(opened, OP.OPEN)!.body!.stateid as Stateid;
    expect((await c.call([ops.putfh(resultOf(opened, OP.GETFH)!.body!.fh as Buffer), ops.close(sid)])).status).toBe(NFS4ERR.OK);
    const changes = [
      [ops.open(c.clientid, 'ro2', 'f.txt', { access: 3 })],
      [ops.open(c.clientid, 'ro3', 'new.txt', { create: 'unchecked', access: 2 })],
      [ops.mkdir('d')],
      [ops.remove('f.txt')],
      [ops.rename('f.txt', 'g.txt')],
      [ops.lookup('f.txt'), ops.write(ANON, 0n, Buffer.from('x'))],
      [ops.lookup('f.txt'), ops.setxattr('user.k', Buffer.from('v'))],
    ];
    for (const list of changes) {
      const r = await c.call([...c.lookupPath('/rohere'), ...list], 2);
      expect(r.status, `${list.map((o) => o.op)}`).toBe(NFS4ERR.ROFS);
    }
    const a = await c.call([...c.lookupPath('/rohere'), ops.access(0x3f)]);
    expect(resultOf(a, OP.ACCESS)!.body).toEqual({ supported: 0x3f, access: ACCESS4.READ | ACCESS4.LOOKUP | ACCESS4.EXECUTE });
    // The same changes where the address is rw (the second entry of rwhere's list).
    expect((await c.call([...c.lookupPath('/rwhere'), ops.mkdir('d')])).status).toBe(NFS4ERR.OK);
    expect((await c.call([...c.lookupPath('/rwhere/f.txt'), ops.write(ANON, 0n, Buffer.from('C'))])).status).toBe(NFS4ERR.OK);
    expect((await c.call([...c.lookupPath('/rwhere'), ops.access(0x3f)])).results.at(-1)!.body).toEqual({ supported: 0x3f, access: 0x3f });
    expect((await dav({ port: stack.davPort }, 'GET', '/rohere/f.txt', { auth: AUTH })).body.toString()).toBe('content\n');
    expect((await dav({ port: stack.davPort }, 'GET', '/rwhere/f.txt', { auth: AUTH })).body.toString()).toBe('Content\n');
  });
});

describe('shares[].nfs.clients[].squash', () => {
  let stack: NfsStack;
  let root: Nfs41Client;
  let alice: Nfs41Client;

  beforeAll(async () => {
    stack = await startNfs({
      config: { 'protocols.nfs.squash': 'root' },
      users: [{ name: 'root', uid: 0 }, { name: 'alice', uid: 1001 }],
      shares: [
        { name: 'trusted', source: 'memory:', nfs: { clients: [{ match: '127.0.0.1', squash: 'none' }] } },
        { name: 'anonall', source: 'memory:', guest: 'read', nfs: { clients: [{ match: '*', squash: 'all' }] } },
      ],
    });
    expect((await dav({ port: stack.davPort }, 'PUT', '/anonall/pub.txt', { body: 'public\n', auth: AUTH })).status).toBe(201);
    root = await Nfs41Client.connect(stack.nfsPort, { uid: 0 });
    alice = await Nfs41Client.connect(stack.nfsPort, { uid: 1001 });
  }, 60_000);

  afterAll(async () => {
    root?.close();
    alice?.close();
    await stack?.stop();
  });

  it('uid 0 is squashed by the server (root) but not in the export whose entry says none', async () => {
    const ls = await root.call([ops.putrootfh(), ops.readdir()]);
    expect(resultOf(ls, OP.READDIR)!.body!.names).toEqual(['anonall', 'trusted']);
    expect((await root.call(root.lookupPath('/mem'))).status).toBe(NFS4ERR.NOENT);
    const made = await root.call([...root.lookupPath('/trusted'), ops.mkdir('by-root'), ops.getattr([FATTR4.OWNER])]);
    expect(made.status).toBe(NFS4ERR.OK);
    expect((resultOf(made, OP.GETATTR)!.body!.vals as Buffer).subarray(4, 5).toString()).toBe('0');
    // Back in the pseudo-root and into a squash-all export: the anonymous guest again.
    const back = await root.call([...root.lookupPath('/trusted'), ops.lookupp(), ops.lookup('anonall'), ops.mkdir('nope')]);
    expect(back.status).toBe(NFS4ERR.ACCESS);
  });

  it('a known uid is squashed in the export whose entry says all: it reads as the guest and may not write', async () => {
    const rd = await alice.call([...alice.lookupPath('/anonall/pub.txt'), ops.read(ANON, 0n, 100)]);
    expect((resultOf(rd, OP.READ)!.body!.data as Buffer).toString()).toBe('public\n');
    expect((await alice.call([...alice.lookupPath('/anonall'), ops.mkdir('d')])).status).toBe(NFS4ERR.ACCESS);
    expect((await alice.call([...alice.lookupPath('/mem'), ops.mkdir('d')])).status).toBe(NFS4ERR.OK);
  });
});

describe('protocols.nfs wire bounds', () => {
  let stack: NfsStack;
  let c: Nfs41Client;

  beforeAll(async () => {
    stack = await startNfs({ config: { 'protocols.nfs.maxCompoundOps': 8, 'protocols.nfs.maxReadBytes': 65536, 'protocols.nfs.maxWriteBytes': 65536 } });
    c = await Nfs41Client.connect(stack.nfsPort);
  }, 60_000);

  afterAll(async () => {
    c?.close();
    await stack?.stop();
  });

  it('maxCompoundOps: a longer COMPOUND runs nothing (RESOURCE in 4.0, TOO_MANY_OPS in 4.1)', async () => {
    const nine = Array.from({ length: 9 }, () => ops.putrootfh());
    const r40 = await c.raw(0, nine);
    expect(r40.status).toBe(NFS4ERR.RESOURCE);
    expect(r40.results).toEqual([]);
    expect((await c.raw(1, [c.sequence(), ...nine.slice(1)])).status).toBe(NFS4ERR.TOO_MANY_OPS);
    c.slotSeq--; // refused before SEQUENCE ran: the slot did not advance
    expect((await c.raw(0, nine.slice(1))).status).toBe(NFS4ERR.OK);
  });

  it('maxReadBytes / maxWriteBytes: maxread and maxwrite, a short READ and a short WRITE', async () => {
    const g = await c.call([...c.lookupPath('/mem'), ops.getattr([FATTR4.MAXREAD, FATTR4.MAXWRITE])]);
    const vals = resultOf(g, OP.GETATTR)!.body!.vals as Buffer;
    expect([vals.readBigUInt64BE(0), vals.readBigUInt64BE(8)]).toEqual([65536n, 65536n]);
    const data = Buffer.alloc(100_000, 7);
    const o = await c.call([...c.lookupPath('/mem'), ops.open(c.clientid, 'w', 'big.bin', { create: 'unchecked' }), ops.getfh()]);
    const sid = resultOf(o, OP.OPEN)!.body!.stateid as Stateid;
    const fh = resultOf(o, OP.GETFH)!.body!.fh as Buffer;
    const w = await c.call([ops.putfh(fh), ops.write(sid, 0n, data)]);
    expect(resultOf(w, OP.WRITE)!.body!.count).toBe(65536);
    const w2 = await c.call([ops.putfh(fh), ops.write(sid, 65536n, data.subarray(65536))]);
    expect(resultOf(w2, OP.WRITE)!.body!.count).toBe(100_000 - 65536);
    const rd = await c.call([ops.putfh(fh), ops.read(sid, 0n, 100_000)]);
    expect((resultOf(rd, OP.READ)!.body!.data as Buffer).length).toBe(65536);
    expect(resultOf(rd, OP.READ)!.body!.eof).toBe(false);
    expect((await c.call([ops.putfh(fh), ops.close(sid)])).status).toBe(NFS4ERR.OK);
  });

  it('CREATE_SESSION negotiates at most maxCompoundOps operations and maxWrite/maxRead + headers', async () => {
    const s = await Nfs41Client.connect(stack.nfsPort, { session: false });
    try {
      await s.createSession();
      expect(s.foreAttrs).toEqual([0, 65536 + 32768, 65536 + 32768, 65536, 8, 8]);
    } finally {
      s.close();
    }
  });
});
