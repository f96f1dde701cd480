/**
 * NFS operations that are thin translations of the core for stateful protocols (issue 9), with
 * two of the project's NFSv4.1 clients: LOCK and LOCKT answer DENIED naming the lock in the way
 * (its range, type and lock-owner as its client sent it), OPEN_DOWNGRADE narrows the share mode
 * in the core's table so another client's open comes in, and a COMMIT by another client makes a
 * client's unstable writes durable (an object-store share, where unflushed writes are staged).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { dav } from '../webdav/helpers.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type Stateid } from './client41.ts';

let stack: NfsStack;
let c: Nfs41Client;
let other: Nfs41Client;
const AUTH: [string, string] = ['root', 'Secret-Pass1'];

beforeAll(async () => {
  stack = await startNfs({ shares: [{ name: 'obj', source: 'memory:objectstore' }] });
  c = await Nfs41Client.connect(stack.nfsPort);
  other = await Nfs41Client.connect(stack.nfsPort);
}, 60_000);

afterAll(async () => {
  c?.close();
  other?.close();
  await stack?.stop();
});

async function openFile(cl: Nfs41Client, dir: string, owner: string, name: string, o: { access?: number; deny?: number; create?: 'guarded' | 'unchecked' } = {}): Promise<{ status: number; sid: Stateid; fh: Buffer }> {
  const r = await cl.call([...cl.lookupPath(dir), ops.open(cl.clientid, owner, name, o), ops.getfh()]);
  if (r.status !== NFS4ERR.OK) return { status: r.status, sid: undefined as never, fh: undefined as never };
  return { status: r.status, sid: resultOf(r, OP.OPEN)!.body!.stateid as Stateid, fh: resultOf(r, OP.GETFH)!.body!.fh as Buffer };
}

describe('LOCK4denied names the lock in the way', () => {
  it('LOCK: DENIED carries the holder\'s range, type and lock-owner, not the request\'s', async () => {
    expect((await dav({ port: stack.davPort }, 'PUT', '/mem/locked.txt', { body: 'x'.repeat(100), auth: AUTH })).status).toBe(201);
    const a = await openFile(c, '/mem', 'oa', 'locked.txt', { access: 3 });
    const b = await openFile(other, '/mem', 'ob', 'locked.txt', { access: 3 });
    expect((await c.call([ops.putfh(a.fh), ops.lock(a.sid, c.clientid, 'holder', 10n, 20n)])).status).toBe(NFS4ERR.OK);
    const r = await other.call([ops.putfh(b.fh), ops.lock(b.sid, other.clientid, 'asker', 25n, 50n, false)]);
    expect(r.status).toBe(NFS4ERR.DENIED);
    const d = resultOf(r, OP.LOCK)!.body!;
    expect([d.offset, d.length, d.locktype, d.clientid]).toEqual([10n, 20n, 2, c.clientid]);
    expect((d.owner as Buffer).toString()).toBe('holder');
  });

  it('LOCKT: DENIED names the holder; the holder\'s own test and a free range are OK; nothing is taken', async () => {
    const a = await openFile(c, '/mem', 'ta', 'tested.txt', { access: 3, create: 'unchecked' });
    expect((await c.call([ops.putfh(a.fh), ops.lock(a.sid, c.clientid, 'tholder', 0n, 8n, false)])).status).toBe(NFS4ERR.OK);
    const r = await other.call([ops.putfh(a.fh), ops.lockt(other.clientid, 'tasker', 4n, 100n)]);
    expect(r.status).toBe(NFS4ERR.DENIED);
    const d = resultOf(r, OP.LOCKT)!.body!;
    expect([d.offset, d.length, d.locktype, d.clientid]).toEqual([0n, 8n, 1, c.clientid]);
    expect((d.owner as Buffer).toString()).toBe('tholder');
    expect((await other.call([ops.putfh(a.fh), ops.lockt(other.clientid, 'tasker', 4n, 100n, false)])).status).toBe(NFS4ERR.OK);
    expect((await other.call([ops.putfh(a.fh), ops.lockt(other.clientid, 'tasker', 8n, 100n)])).status).toBe(NFS4ERR.OK);
    expect((await c.call([ops.putfh(a.fh), ops.lockt(c.clientid, 'tholder', 0n, 8n)])).status).toBe(NFS4ERR.OK);
    // The tests took nothing: a write lock on the free range by the asker still comes.
    const b = await openFile(other, '/mem', 'tb', 'tested.txt', { access: 3 });
    expect((await other.call([ops.putfh(b.fh), ops.lock(b.sid, other.clientid, 'tasker', 8n, 100n)])).status).toBe(NFS4ERR.OK);
  });
});

describe('OPEN_DOWNGRADE in the core', () => {
  it('a downgrade from deny-write lets another client\'s write open in, on the same stateid', async () => {
    const a = await openFile(c, '/mem', 'da', 'deny.txt', { access: 3, deny: 2, create: 'unchecked' });
    expect(a.status).toBe(NFS4ERR.OK);
    expect((await openFile(other, '/mem', 'db', 'deny.txt', { access: 2 })).status).toBe(NFS4ERR.SHARE_DENIED);
    const dg = await c.call([ops.putfh(a.fh), ops.openDowngrade40(0, a.sid, 1, 0)]);
    expect(dg.status).toBe(NFS4ERR.OK);
    const sid = resultOf(dg, OP.OPEN_DOWNGRADE)!.body!.stateid as Stateid;
    expect((await openFile(other, '/mem', 'db', 'deny.txt', { access: 2 })).status).toBe(NFS4ERR.OK);
    expect((await c.call([ops.putfh(a.fh), ops.read(sid, 0n, 10)])).status).toBe(NFS4ERR.OK);
    expect((await c.call([ops.putfh(a.fh), ops.write(sid, 0n, Buffer.from('no'))])).status).toBe(NFS4ERR.OPENMODE);
  });
});

describe('COMMIT', () => {
  it('commits what any client wrote to the file (object store: staged until then)', async () => {
    const a = await openFile(c, '/obj', 'ca', 'commit.txt', { access: 3, create: 'unchecked' });
    expect((await c.call([ops.putfh(a.fh), ops.write(a.sid, 0n, Buffer.from('unstable'), 0)])).status).toBe(NFS4ERR.OK);
    // The store's object itself (every reader through Portico sees the stage at once).
    const stored = async (): Promise<string> => (await stack.gateway.vfs!.volume('obj').backend.read('/commit.txt', 0, 100)).toString();
    expect(await stored()).toBe('');
    expect((await other.call([ops.putfh(a.fh), ops.commit()])).status).toBe(NFS4ERR.OK);
    expect(await stored()).toBe('unstable');
    expect((await c.call([ops.putfh(a.fh), ops.close(a.sid)])).status).toBe(NFS4ERR.OK);
  });
});
