/**
 * Per-operation tests of the real NFS server with the project's own NFSv4.1 client (client41.ts):
 * the error cases of RFC 8881 a client depends on (NOFILEHANDLE, BADHANDLE, STALE after a delete,
 * NOTDIR, ISDIR, bad and stale stateids, SEQUENCE replays and misordering, OP_NOT_IN_SESSION),
 * the write path read back over WebDAV, RENAME's change_info of both directories, a lock conflict
 * between two clients, an xattr shown as a WebDAV dead property, and handles that survive a
 * restart of the gateway.
 */
import { mkdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FATTR4, NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { dav } from '../webdav/helpers.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type Stateid } from './client41.ts';
import { localNativeAvailability } from '../../backends/local/native.ts';

let stack: NfsStack;
let c: Nfs41Client;
const AUTH: [string, string] = ['root', 'Secret-Pass1'];

beforeAll(async () => {
  stack = await startNfs({ shares: [{ name: 'ro', source: 'memory:', readOnly: true }, { name: 'pub', source: 'memory:', guest: 'read' }] });
  c = await Nfs41Client.connect(stack.nfsPort);
  expect((await dav({ port: stack.davPort }, 'MKCOL', '/mem/dir', { auth: AUTH })).status).toBe(201);
  expect((await dav({ port: stack.davPort }, 'PUT', '/mem/file.txt', { body: 'file content\n', auth: AUTH })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  c?.close();
  await stack?.stop();
});

async function fhOf(path: string): Promise<Buffer> {
  const r = await c.call([...c.lookupPath(path), ops.getfh()]);
  expect(r.status).toBe(NFS4ERR.OK);
  return resultOf(r, OP.GETFH)!.body!.fh as Buffer;
}

async function createFile(dirPath: string, name: string, data: Buffer): Promise<{ fh: Buffer }> {
  const r = await c.call([...c.lookupPath(dirPath), ops.open(c.clientid, 'o1', name, { create: 'guarded' }), ops.getfh()]);
  expect(r.status).toBe(NFS4ERR.OK);
  const sid = resultOf(r, OP.OPEN)!.body!.stateid as Stateid;
  const fh = resultOf(r, OP.GETFH)!.body!.fh as Buffer;
  const w = await c.call([ops.putfh(fh), ops.write(sid, 0n, data), ops.close(sid)]);
  expect(w.status).toBe(NFS4ERR.OK);
  return { fh };
}

describe('filehandles', () => {
  it('NOFILEHANDLE without a current filehandle', async () => {
    const r = await c.call([ops.getattr([FATTR4.TYPE])]);
    expect(r.results.map((x) => x.status)).toEqual([NFS4ERR.OK, NFS4ERR.NOFILEHANDLE]);
    expect(r.status).toBe(NFS4ERR.NOFILEHANDLE);
    expect((await c.call([ops.lookup('x')])).status).toBe(NFS4ERR.NOFILEHANDLE);
    expect((await c.call([ops.restorefh()])).status).toBe(NFS4ERR.RESTOREFH);
  });

  it('BADHANDLE for bytes that are not a Portico handle, or a forged one', async () => {
    expect((await c.call([ops.putfh(Buffer.from('not a handle'))])).status).toBe(NFS4ERR.BADHANDLE);
    const fh = Buffer.from(await fhOf('/mem/file.txt'));
    fh[19] = (fh[19] ?? 0) ^ 1; // another id, same check value
    expect((await c.call([ops.putfh(fh)])).status).toBe(NFS4ERR.BADHANDLE);
  });

  it('STALE for the handle of a deleted file, also when the name is created again', async () => {
    const { fh } = await createFile('/mem', 'gone.txt', Buffer.from('x'));
    expect((await c.call([ops.putfh(fh), ops.getattr([FATTR4.SIZE])])).status).toBe(NFS4ERR.OK);
    expect((await c.call([...c.lookupPath('/mem'), ops.remove('gone.txt')])).status).toBe(NFS4ERR.OK);
    expect((await c.call([ops.putfh(fh), ops.getattr([FATTR4.SIZE])])).status).toBe(NFS4ERR.STALE);
    await createFile('/mem', 'gone.txt', Buffer.from('again'));
    expect((await c.call([ops.putfh(fh), ops.getattr([FATTR4.SIZE])])).status).toBe(NFS4ERR.STALE);
  });

  it('VERIFY and NVERIFY compare attribute values (SAME / NOT_SAME)', async () => {
    const file = await fhOf('/mem/file.txt');
    expect((await c.call([ops.putfh(file), ops.verifySize('verify', 13n)])).status).toBe(NFS4ERR.OK);
    expect((await c.call([ops.putfh(file), ops.verifySize('verify', 14n)])).status).toBe(NFS4ERR.NOT_SAME);
    expect((await c.call([ops.putfh(file), ops.verifySize('nverify', 13n)])).status).toBe(NFS4ERR.SAME);
    expect((await c.call([ops.putfh(file), ops.verifySize('nverify', 14n)])).status).toBe(NFS4ERR.OK);
  });

  it("GETATTR after LOOKUP answers the looked-up file's attributes, and fresh ones after a change in the same COMPOUND", async () => {
    const size = (r: Awaited<ReturnType<typeof c.call>>, i = 0): bigint => (r.results.filter((x) => x.op === OP.GETATTR)[i]!.body!.vals as Buffer).readBigUInt64BE(0);
    await createFile('/mem', 'looked.txt', Buffer.from('abc'));
    const dir = await fhOf('/mem');
    const r = await c.call([ops.putfh(dir), ops.lookup('looked.txt'), ops.getfh(), ops.getattr([FATTR4.SIZE]), ops.putfh(dir), ops.getattr([FATTR4.TYPE])]);
    expect(r.status).toBe(NFS4ERR.OK);
    expect(size(r)).toBe(3n);
    // The second GETATTR is the directory's (PUTFH in between): NF4DIR.
    expect((r.results.filter((x) => x.op === OP.GETATTR)[1]!.body!.vals as Buffer).readUInt32BE(0)).toBe(2);
    const open = await c.call([ops.putfh(dir), ops.open(c.clientid, 'o-looked', 'looked.txt', { access: 3 })]);
    const sid = resultOf(open, OP.OPEN)!.body!.stateid as Stateid;
    const w = await c.call([ops.putfh(dir), ops.lookup('looked.txt'), ops.getattr([FATTR4.SIZE]), ops.write(sid, 0n, Buffer.from('abcdefgh'), 2), ops.getattr([FATTR4.SIZE])]);
    expect(w.status).toBe(NFS4ERR.OK);
    expect([size(w, 0), size(w, 1)]).toEqual([3n, 8n]);
    expect((await c.call([ops.putfh(dir), ops.lookup('looked.txt'), ops.close(sid)])).status).toBe(NFS4ERR.OK);
  });

  it('READ says eof exactly when the data reaches the end of the file', async () => {
    const file = await fhOf('/mem/file.txt'); // "file content\n": 13 bytes
    const anon: Stateid = { seqid: 0, other: Buffer.alloc(12) };
    const read = async (offset: bigint, count: number): Promise<{ eof: boolean; data: string }> => {
      const r = await c.call([ops.putfh(file), ops.read(anon, offset, count)]);
      expect(r.status).toBe(NFS4ERR.OK);
      const b = resultOf(r, OP.READ)!.body! as { eof: boolean; data: Buffer };
      return { eof: b.eof, data: b.data.toString() };
    };
    expect(await read(0n, 13)).toEqual({ eof: true, data: 'file content\n' });
    expect(await read(0n, 12)).toEqual({ eof: false, data: 'file content' });
    expect(await read(0n, 5)).toEqual({ eof: false, data: 'file ' });
    expect(await read(5n, 100)).toEqual({ eof: true, data: 'content\n' });
    expect(await read(13n, 10)).toEqual({ eof: true, data: '' });
    expect(await read(0n, 1024 * 1024)).toEqual({ eof: true, data: 'file content\n' });
  });

  it('NOTDIR for a LOOKUP in a file, ISDIR for opening or reading a directory', async () => {
    const file = await fhOf('/mem/file.txt');
    expect((await c.call([ops.putfh(file), ops.lookup('x')])).status).toBe(NFS4ERR.NOTDIR);
    expect((await c.call([...c.lookupPath('/mem'), ops.open(c.clientid, 'o1', 'dir', { access: 1 })])).status).toBe(NFS4ERR.ISDIR);
    const dir = await fhOf('/mem/dir');
    expect((await c.call([ops.putfh(dir), ops.read({ seqid: 0, other: Buffer.alloc(12) }, 0n, 10)])).status).toBe(NFS4ERR.ISDIR);
    // OPEN without create of a directory (read or write) or a symlink, on disk too; a missing name is NOENT.
    mkdirSync(join(stack.diskDir, 'opendir'), { recursive: true });
    symlinkSync('file.txt', join(stack.diskDir, 'openlink'));
    for (const [name, status] of [['opendir', NFS4ERR.ISDIR], ['openlink', NFS4ERR.SYMLINK], ['missing', NFS4ERR.NOENT]] as const) {
      for (const access of [1, 3]) expect((await c.call([...c.lookupPath('/disk'), ops.open(c.clientid, 'o1', name, { access })])).status, `${name} ${access}`).toBe(status);
    }
    // LOOKUP from a symlink is SYMLINK, from a file NOTDIR — before the name's own error ('.': BADNAME).
    const link = resultOf(await c.call([...c.lookupPath('/disk'), ops.lookup('openlink'), ops.getfh()]), OP.GETFH)!.body!.fh as Buffer;
    expect((await c.call([ops.putfh(link), ops.lookup('x')])).status).toBe(NFS4ERR.SYMLINK);
    expect((await c.call([ops.putfh(link), ops.lookup('.')])).status).toBe(NFS4ERR.SYMLINK);
    expect((await c.call([ops.putfh(file), ops.lookup('..')])).status).toBe(NFS4ERR.NOTDIR);
    expect((await c.call([ops.putfh(dir), ops.lookup('.')])).status).toBe(NFS4ERR.BADNAME);
    expect((await c.call([ops.putfh(dir), ops.lookup('missing')])).status).toBe(NFS4ERR.NOENT);
  });

  it('handles survive a rename of their directory', async () => {
    expect((await dav({ port: stack.davPort }, 'MKCOL', '/mem/moving', { auth: AUTH })).status).toBe(201);
    const { fh } = await createFile('/mem/moving', 'inside.txt', Buffer.from('inside'));
    const mem = await fhOf('/mem');
    const r = await c.call([ops.putfh(mem), ops.savefh(), ops.putfh(mem), ops.rename('moving', 'moved')]);
    expect(r.status).toBe(NFS4ERR.OK);
    const cinfo = resultOf(r, OP.RENAME)!.body!;
    expect((cinfo.target as { after: bigint }).after).toBeGreaterThan((cinfo.target as { before: bigint }).before);
    expect((cinfo.source as { after: bigint }).after).toBeGreaterThan((cinfo.source as { before: bigint }).before);
    const rd = await c.call([ops.putfh(fh), ops.read({ seqid: 0, other: Buffer.alloc(12) }, 0n, 100)]);
    expect(rd.status).toBe(NFS4ERR.OK);
    expect((resultOf(rd, OP.READ)!.body!.data as Buffer).toString()).toBe('inside');
  });
});

describe('rights', () => {
  it('a read-only share answers ROFS to changes and ACCESS grants no write bits there', async () => {
    expect((await c.call([...c.lookupPath('/ro'), ops.open(c.clientid, 'o', 'new.txt', { create: 'unchecked' })])).status).toBe(NFS4ERR.ROFS);
    expect((await c.call([...c.lookupPath('/ro'), ops.mkdir('d')])).status).toBe(NFS4ERR.ROFS);
    const a = await c.call([...c.lookupPath('/ro'), ops.access(0x3f)]);
    expect(a.status).toBe(NFS4ERR.OK);
    expect(resultOf(a, OP.ACCESS)!.body).toEqual({ supported: 0x3f, access: 0x01 | 0x02 | 0x20 });
    const rw = await c.call([...c.lookupPath('/mem'), ops.access(0x3f)]);
    expect(resultOf(rw, OP.ACCESS)!.body).toEqual({ supported: 0x3f, access: 0x3f });
  });

  it('an unknown uid is squashed to the anonymous guest: it sees and reads guest shares only, and may not write', async () => {
    expect((await dav({ port: stack.davPort }, 'PUT', '/pub/readme.txt', { body: 'public\n', auth: AUTH })).status).toBe(201);
    const anon = await Nfs41Client.connect(stack.nfsPort, { uid: 4242 });
    try {
      const ls = await anon.call([ops.putrootfh(), ops.readdir()]);
      expect(resultOf(ls, OP.READDIR)!.body!.names).toEqual(['pub']);
      expect((await anon.call(anon.lookupPath('/mem'))).status).toBe(NFS4ERR.NOENT);
      const rd = await anon.call([...anon.lookupPath('/pub/readme.txt'), ops.read({ seqid: 0, other: Buffer.alloc(12) }, 0n, 100)]);
      expect((resultOf(rd, OP.READ)!.body!.data as Buffer).toString()).toBe('public\n');
      expect((await anon.call([...anon.lookupPath('/pub'), ops.open(anon.clientid, 'o', 'x.txt', { create: 'unchecked' })])).status).toBe(NFS4ERR.ACCESS);
      expect((await anon.call([...anon.lookupPath('/pub'), ops.remove('readme.txt')])).status).toBe(NFS4ERR.ACCESS);
    } finally {
      anon.close();
    }
  });
});

describe('stateids', () => {
  it('BAD_STATEID for an unknown stateid, STALE_STATEID for one of another server instance', async () => {
    const file = await fhOf('/mem/file.txt');
    const mine = Buffer.alloc(12);
    const open = await c.call([...c.lookupPath('/mem'), ops.open(c.clientid, 'o2', 'file.txt', { access: 1 })]);
    const sid = resultOf(open, OP.OPEN)!.body!.stateid as Stateid;
    sid.other.copy(mine, 0, 0, 4); // this boot's tag, an id never handed out
    mine.writeUInt32BE(0xfffffff0, 8);
    expect((await c.call([ops.putfh(file), ops.read({ seqid: 1, other: mine }, 0n, 10)])).status).toBe(NFS4ERR.BAD_STATEID);
    const other = Buffer.from(sid.other);
    other.writeUInt32BE((other.readUInt32BE(0) + 1) >>> 0, 0);
    expect((await c.call([ops.putfh(file), ops.read({ seqid: 1, other }, 0n, 10)])).status).toBe(NFS4ERR.STALE_STATEID);
    // A stateid of an open of another file is bad for this one; a seqid from the future too.
    const dirFile = await createFile('/mem/dir', 'f.txt', Buffer.from('f'));
    expect((await c.call([ops.putfh(dirFile.fh), ops.read(sid, 0n, 10)])).status).toBe(NFS4ERR.BAD_STATEID);
    expect((await c.call([ops.putfh(file), ops.read({ seqid: sid.seqid + 5, other: sid.other }, 0n, 10)])).status).toBe(NFS4ERR.BAD_STATEID);
    const rd = await c.call([ops.putfh(file), ops.read(sid, 0n, 100), ops.close(sid)]);
    expect(rd.status).toBe(NFS4ERR.OK);
    expect((resultOf(rd, OP.READ)!.body!.data as Buffer).toString()).toBe('file content\n');
    // After CLOSE the stateid is gone.
    expect((await c.call([ops.putfh(file), ops.read(sid, 0n, 10)])).status).toBe(NFS4ERR.BAD_STATEID);
  });

  it('an UNCHECKED create applies its mode only when it creates the file', async () => {
    const mode = async (): Promise<number> => {
      const r = await c.call([...c.lookupPath('/disk/modes.txt'), ops.getattr([FATTR4.MODE])]);
      return (resultOf(r, OP.GETATTR)!.body!.vals as Buffer).readUInt32BE(0);
    };
    for (const m of [0o600, 0o644]) {
      const r = await c.call([...c.lookupPath('/disk'), ops.open(c.clientid, 'om', 'modes.txt', { create: 'unchecked', mode: m })]);
      expect(r.status).toBe(NFS4ERR.OK);
      expect((await c.call([...c.lookupPath('/disk/modes.txt'), ops.close(resultOf(r, OP.OPEN)!.body!.stateid as Stateid)])).status).toBe(NFS4ERR.OK);
      expect(await mode()).toBe(0o600);
    }
  });

  it('a read-only open cannot WRITE (OPENMODE)', async () => {
    const open = await c.call([...c.lookupPath('/mem'), ops.open(c.clientid, 'o3', 'file.txt', { access: 1 })]);
    const sid = resultOf(open, OP.OPEN)!.body!.stateid as Stateid;
    const file = await fhOf('/mem/file.txt');
    expect((await c.call([ops.putfh(file), ops.write(sid, 0n, Buffer.from('x'))])).status).toBe(NFS4ERR.OPENMODE);
    expect((await c.call([ops.putfh(file), ops.close(sid)])).status).toBe(NFS4ERR.OK);
  });
});

describe('SEQUENCE', () => {
  it('a retransmitted request gets the cached reply and is not executed again', async () => {
    const seqid = ++c.slotSeq;
    const req = [c.sequence({ seqid, cacheThis: true }), ...c.lookupPath('/mem'), ops.mkdir('once')];
    const first = await c.raw(1, req);
    expect(first.status).toBe(NFS4ERR.OK);
    const again = await c.raw(1, [c.sequence({ seqid, cacheThis: true }), ...c.lookupPath('/mem'), ops.mkdir('once')]);
    expect(again.raw.equals(first.raw)).toBe(true);
    // Executed once: the next request on the slot creating it again finds it.
    expect((await c.call([...c.lookupPath('/mem'), ops.mkdir('once')])).status).toBe(NFS4ERR.EXIST);
  });

  it('an uncached retransmission is RETRY_UNCACHED_REP, a seqid out of order SEQ_MISORDERED', async () => {
    const seqid = ++c.slotSeq;
    expect((await c.raw(1, [c.sequence({ seqid, cacheThis: false }), ops.putrootfh()])).status).toBe(NFS4ERR.OK);
    expect((await c.raw(1, [c.sequence({ seqid, cacheThis: false }), ops.putrootfh()])).status).toBe(NFS4ERR.RETRY_UNCACHED_REP);
    expect((await c.raw(1, [c.sequence({ seqid: seqid + 2 }), ops.putrootfh()])).status).toBe(NFS4ERR.SEQ_MISORDERED);
    expect((await c.raw(1, [c.sequence({ seqid: 1, slot: 999 }), ops.putrootfh()])).status).toBe(NFS4ERR.BADSLOT);
    expect((await c.raw(1, [c.sequence({ seqid: 1, sessionid: Buffer.alloc(16, 7) }), ops.putrootfh()])).status).toBe(NFS4ERR.BADSESSION);
  });

  it('RECLAIM_COMPLETE once per client (COMPLETE_ALREADY), per file system with a filehandle', async () => {
    expect((await c.call([ops.reclaimComplete()])).status).toBe(NFS4ERR.COMPLETE_ALREADY);
    expect((await c.call([ops.reclaimComplete(true)])).status).toBe(NFS4ERR.NOFILEHANDLE);
    expect((await c.call([...c.lookupPath('/mem'), ops.reclaimComplete(true)])).status).toBe(NFS4ERR.OK);
  });

  it('4.1 operations need a SEQUENCE first, and SEQUENCE only first', async () => {
    expect((await c.raw(1, [ops.putrootfh()])).status).toBe(NFS4ERR.OP_NOT_IN_SESSION);
    expect((await c.call([ops.putrootfh(), c.sequence({ seqid: 12345 })])).status).toBe(NFS4ERR.SEQUENCE_POS);
  });
});

describe('4.0 client state', () => {
  it('SETCLIENTID, SETCLIENTID_CONFIRM, RENEW; a retransmitted OPEN and CLOSE get their first results', async () => {
    const v = Buffer.from('verifier');
    const sc = await c.raw(0, [ops.setclientid(v, `v40-${c.owner}`)]);
    expect(sc.status).toBe(NFS4ERR.OK);
    const { clientid, confirm } = sc.results[0]!.body as { clientid: bigint; confirm: Buffer };
    expect((await c.raw(0, [ops.renew(clientid)])).status).toBe(NFS4ERR.STALE_CLIENTID);
    expect((await c.raw(0, [ops.setclientidConfirm(clientid, Buffer.alloc(8))])).status).not.toBe(NFS4ERR.OK);
    expect((await c.raw(0, [ops.setclientidConfirm(clientid, confirm)])).status).toBe(NFS4ERR.OK);
    expect((await c.raw(0, [ops.renew(clientid)])).status).toBe(NFS4ERR.OK);
    expect((await c.raw(0, [ops.renew(clientid + 1000n)])).status).toBe(NFS4ERR.STALE_CLIENTID);
    const open = () => c.raw(0, [ops.putrootfh(), ops.lookup('mem'), ops.open40(7, clientid, 'o40', 'file.txt'), ops.getfh()]);
    const first = await open();
    expect(first.status).toBe(NFS4ERR.OK);
    const again = await open();
    expect(again.raw.equals(first.raw)).toBe(true);
    const sid = resultOf(first, OP.OPEN)!.body!.stateid as Stateid;
    expect(sid.seqid).toBe(1);
    const fh = resultOf(first, OP.GETFH)!.body!.fh as Buffer;
    const close = () => c.raw(0, [ops.putfh(fh), ops.close40(8, sid)]);
    const closed = await close();
    expect(closed.status).toBe(NFS4ERR.OK);
    expect((await close()).raw.equals(closed.raw)).toBe(true);
    // A new seqid for the closed stateid is no replay: the state is gone.
    expect((await c.raw(0, [ops.putfh(fh), ops.close40(9, sid)])).status).toBe(NFS4ERR.BAD_STATEID);
  });
});

describe('data and locks', () => {
  it('writes over NFS are read back over WebDAV; COMMIT returns the write verifier', async () => {
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));
    const r = await c.call([...c.lookupPath('/disk'), ops.open(c.clientid, 'o4', 'written.bin', { create: 'unchecked' }), ops.getfh()]);
    expect(r.status).toBe(NFS4ERR.OK);
    const sid = resultOf(r, OP.OPEN)!.body!.stateid as Stateid;
    const fh = resultOf(r, OP.GETFH)!.body!.fh as Buffer;
    const w1 = await c.call([ops.putfh(fh), ops.write(sid, 0n, data.subarray(0, 200_000), 0)]);
    expect(resultOf(w1, OP.WRITE)!.body!.committed).toBe(0);
    const w2 = await c.call([ops.putfh(fh), ops.write(sid, 200_000n, data.subarray(200_000), 0), ops.commit()]);
    expect(w2.status).toBe(NFS4ERR.OK);
    expect((resultOf(w2, OP.COMMIT)!.body!.verifier as Buffer).equals(resultOf(w1, OP.WRITE)!.body!.verifier as Buffer)).toBe(true);
    expect((await c.call([ops.putfh(fh), ops.close(sid)])).status).toBe(NFS4ERR.OK);
    const got = await dav({ port: stack.davPort }, 'GET', '/disk/written.bin', { auth: AUTH });
    expect(got.status).toBe(200);
    expect(got.body.equals(data)).toBe(true);
  });

  it('a byte-range lock of one client denies a conflicting one of another (DENIED), until LOCKU', async () => {
    const other = await Nfs41Client.connect(stack.nfsPort);
    try {
      const file = await fhOf('/mem/file.txt');
      const o1 = await c.call([...c.lookupPath('/mem'), ops.open(c.clientid, 'lk', 'file.txt')]);
      const s1 = resultOf(o1, OP.OPEN)!.body!.stateid as Stateid;
      const o2 = await other.call([...other.lookupPath('/mem'), ops.open(other.clientid, 'lk', 'file.txt')]);
      const s2 = resultOf(o2, OP.OPEN)!.body!.stateid as Stateid;
      const l1 = await c.call([ops.putfh(file), ops.lock(s1, c.clientid, 'lo', 0n, 100n)]);
      expect(l1.status).toBe(NFS4ERR.OK);
      const ls = resultOf(l1, OP.LOCK)!.body!.stateid as Stateid;
      expect((await other.call([ops.putfh(file), ops.lock(s2, other.clientid, 'lo', 50n, 10n)])).status).toBe(NFS4ERR.DENIED);
      expect((await other.call([ops.putfh(file), ops.lock(s2, other.clientid, 'lo', 100n, 10n)])).status).toBe(NFS4ERR.OK);
      expect((await c.call([ops.putfh(file), ops.locku(ls, 0n, 100n)])).status).toBe(NFS4ERR.OK);
      expect((await other.call([ops.putfh(file), ops.lock(s2, other.clientid, 'lo2', 50n, 10n)])).status).toBe(NFS4ERR.OK);
    } finally {
      other.close();
    }
  });

  it('a WebDAV lock makes an NFS WRITE fail with NFS4ERR_LOCKED until it is unlocked', async () => {
    expect((await dav({ port: stack.davPort }, 'PUT', '/mem/davlocked.txt', { body: 'dav\n', auth: AUTH })).status).toBe(201);
    const body =
      '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>';
    const lk = await dav({ port: stack.davPort }, 'LOCK', '/mem/davlocked.txt', { body, auth: AUTH, headers: { Depth: '0', Timeout: 'Second-60', 'Content-Type': 'application/xml' } });
    expect(lk.status).toBe(200);
    const token = String(lk.headers['lock-token']);
    const open = await c.call([...c.lookupPath('/mem'), ops.open(c.clientid, 'dl', 'davlocked.txt', { access: 3 }), ops.getfh()]);
    let status = open.status;
    if (status === NFS4ERR.OK) {
      const sid = resultOf(open, OP.OPEN)!.body!.stateid as Stateid;
      const fh = resultOf(open, OP.GETFH)!.body!.fh as Buffer;
      status = (await c.call([ops.putfh(fh), ops.write(sid, 0n, Buffer.from('nfs'))])).status;
      expect((await dav({ port: stack.davPort }, 'UNLOCK', '/mem/davlocked.txt', { auth: AUTH, headers: { 'Lock-Token': token } })).status).toBe(204);
      expect((await c.call([ops.putfh(fh), ops.write(sid, 0n, Buffer.from('nfs')), ops.close(sid)])).status).toBe(NFS4ERR.OK);
    }
    expect(status).toBe(NFS4ERR.LOCKED);
  });

  it('COPY (4.2) copies a range inside the server, SEEK finds data and the hole at the end', async () => {
    const src = await c.call([...c.lookupPath('/disk'), ops.open(c.clientid, 'cp', 'written.bin', { access: 1 }), ops.getfh()], 2);
    const ss = resultOf(src, OP.OPEN)!.body!.stateid as Stateid;
    const sfh = resultOf(src, OP.GETFH)!.body!.fh as Buffer;
    const dst = await c.call([...c.lookupPath('/disk'), ops.open(c.clientid, 'cp', 'copied.bin', { access: 3, create: 'unchecked' }), ops.getfh()], 2);
    const ds = resultOf(dst, OP.OPEN)!.body!.stateid as Stateid;
    const dfh = resultOf(dst, OP.GETFH)!.body!.fh as Buffer;
    const cp = await c.call([ops.putfh(sfh), ops.savefh(), ops.putfh(dfh), ops.copy(ss, ds, 1000n, 0n, 0n)], 2);
    expect(cp.status).toBe(NFS4ERR.OK);
    expect(resultOf(cp, OP.COPY)!.body).toMatchObject({ count: 299_000n, committed: 2, synchronous: true });
    const seek = await c.call([ops.putfh(dfh), ops.seek(ds, 10n, 1)], 2);
    expect(resultOf(seek, OP.SEEK)!.body).toEqual({ eof: true, offset: 299_000n });
    expect((await c.call([ops.putfh(dfh), ops.seek(ds, 299_000n, 0)], 2)).status).toBe(NFS4ERR.NXIO);
    expect((await c.call([ops.putfh(dfh), ops.close(ds)], 2)).status).toBe(NFS4ERR.OK);
    expect((await c.call([ops.putfh(sfh), ops.close(ss)], 2)).status).toBe(NFS4ERR.OK);
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));
    const got = await dav({ port: stack.davPort }, 'GET', '/disk/copied.bin', { auth: AUTH });
    expect(got.body.equals(data.subarray(1000))).toBe(true);
  });

  it('DEALLOCATE punches a hole SEEK then finds and ALLOCATE grows the file (local share); elsewhere ALLOCATE grows only, DEALLOCATE is NOTSUPP', async () => {
    const data = Buffer.alloc(64 * 1024, 9);
    for (const share of ['disk', 'mem']) {
      expect((await dav({ port: stack.davPort }, 'PUT', `/${share}/holes.bin`, { body: data, auth: AUTH })).status).toBe(201);
      const o = await c.call([...c.lookupPath(`/${share}`), ops.open(c.clientid, 'al', 'holes.bin', { access: 3 }), ops.getfh()], 2);
      const sid = resultOf(o, OP.OPEN)!.body!.stateid as Stateid;
      const fh = resultOf(o, OP.GETFH)!.body!.fh as Buffer;
      const helper = share === 'disk' && localNativeAvailability().available;
      const de = await c.call([ops.putfh(fh), ops.allocate(sid, 16_384n, 16_384n, true)], 2);
      expect(de.status).toBe(helper ? NFS4ERR.OK : NFS4ERR.NOTSUPP);
      const seek = await c.call([ops.putfh(fh), ops.seek(sid, 0n, 1)], 2);
      expect(resultOf(seek, OP.SEEK)!.body).toEqual(helper ? { eof: false, offset: 16_384n } : { eof: true, offset: 65_536n });
      expect((await c.call([ops.putfh(fh), ops.allocate(sid, 65_536n, 4096n)], 2)).status).toBe(NFS4ERR.OK);
      expect((await c.call([ops.putfh(fh), ops.allocate(sid, 0n, 0n)], 2)).status).toBe(NFS4ERR.INVAL);
      expect((await c.call([ops.putfh(fh), ops.close(sid)], 2)).status).toBe(NFS4ERR.OK);
      const want = Buffer.concat([data, Buffer.alloc(4096)]);
      if (helper) want.fill(0, 16_384, 32_768);
      const got = await dav({ port: stack.davPort }, 'GET', `/${share}/holes.bin`, { auth: AUTH });
      expect(got.body.equals(want)).toBe(true);
      if (helper) expect(statSync(join(stack.diskDir, 'holes.bin')).blocks).toBeLessThanOrEqual(128 - 32 + 8 + 8);
    }
  });

  it('an xattr set over NFS (4.2) is read back and shows as a WebDAV dead property', async () => {
    const file = await fhOf('/mem/file.txt');
    const set = await c.call([ops.putfh(file), ops.setxattr('color', Buffer.from('blue'))], 2);
    expect(set.status).toBe(NFS4ERR.OK);
    const get = await c.call([ops.putfh(file), ops.getxattr('color')], 2);
    expect((resultOf(get, OP.GETXATTR)!.body!.value as Buffer).toString()).toBe('blue');
    expect((await c.call([ops.putfh(file), ops.getxattr('nope')], 2)).status).toBe(NFS4ERR.NOXATTR);
    const pf = await dav({ port: stack.davPort }, 'PROPFIND', '/mem/file.txt', { auth: AUTH, headers: { Depth: '0' } });
    expect(pf.text).toMatch(/color[^>]*>blue</);
  });
});

describe('restart', () => {
  it('a handle from before a restart finds its file after it; the old session is BADSESSION', async () => {
    const fh = await fhOf('/disk/written.bin');
    const port = stack.nfsPort;
    const tmp = stack.tmp;
    c.close();
    await stack.stop({ keep: true });
    stack = await startNfs({ tmp, nfsPort: port });
    const old = c;
    c = await Nfs41Client.connect(stack.nfsPort);
    const r = await c.call([ops.putfh(fh), ops.getattr([FATTR4.SIZE])]);
    expect(r.status).toBe(NFS4ERR.OK);
    const stale = await Nfs41Client.connect(stack.nfsPort, { session: false });
    try {
      stale.sessionid = old.sessionid;
      expect((await stale.call([ops.putrootfh()])).status).toBe(NFS4ERR.BADSESSION);
    } finally {
      stale.close();
    }
  });
});
