/**
 * Strict NFSv4.0 owner seqids (RFC 7530 §9.1.7) with the project's own client, on 4.0 COMPOUNDs:
 * the next seqid runs; the same one again gets the cached reply (byte for byte, executed once —
 * a GUARDED create retransmitted does not answer EXIST — also when both arrive together); any
 * other is BAD_SEQID and runs nothing; errors that do not advance the sequence (NOFILEHANDLE,
 * BAD_STATEID...) leave it where it was, others (NOENT) advance it and are replayed too. The same
 * for lock-owners (LOCK, LOCKU), OPEN_DOWNGRADE and CLOSE.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NFS4ERR, OP } from '../../protocols/nfs/nfs4-types.ts';
import { dav } from '../webdav/helpers.ts';
import { startNfs, type NfsStack } from './gateway.ts';
import { Nfs41Client, ops, resultOf, type OpEnc, type Stateid } from './client41.ts';

let stack: NfsStack;
let c: Nfs41Client;
let clientid: bigint;
const AUTH: [string, string] = ['root', 'Secret-Pass1'];

beforeAll(async () => {
  stack = await startNfs();
  c = await Nfs41Client.connect(stack.nfsPort, { session: false });
  const sc = await c.raw(0, [ops.setclientid(Buffer.from('verifier'), `seqid40-${c.owner}`)]);
  expect(sc.status).toBe(NFS4ERR.OK);
  const body = sc.results[0]!.body as { clientid: bigint; confirm: Buffer };
  clientid = body.clientid;
  expect((await c.raw(0, [ops.setclientidConfirm(clientid, body.confirm)])).status).toBe(NFS4ERR.OK);
  expect((await dav({ port: stack.davPort }, 'PUT', '/mem/a.txt', { body: 'aaaa\n', auth: AUTH })).status).toBe(201);
}, 60_000);

afterAll(async () => {
  c?.close();
  await stack?.stop();
});

const inMem = (...list: OpEnc[]) => c.raw(0, [ops.putrootfh(), ops.lookup('mem'), ...list]);
const statusOf = (r: { results: { op: number; status: number }[] }, op: number) => resultOf(r as never, op)?.status;

describe('open-owner seqids', () => {
  it('the next seqid runs, the same one replays (executed once), others are BAD_SEQID', async () => {
    const create = (seqid: number) => inMem(ops.create40(seqid, clientid, 'owner-a', 'created.txt'), ops.getfh());
    const first = await create(10);
    expect(first.status).toBe(NFS4ERR.OK);
    // A GUARDED create run twice would answer EXIST: the retransmission gets the first reply.
    const again = await create(10);
    expect(again.status).toBe(NFS4ERR.OK);
    expect(resultOf(again, OP.OPEN)!.body).toEqual(resultOf(first, OP.OPEN)!.body);
    expect(resultOf(again, OP.GETFH)!.body).toEqual(resultOf(first, OP.GETFH)!.body);
    for (const bad of [12, 9, 0, 0xffffffff]) {
      expect(statusOf(await inMem(ops.open40(bad, clientid, 'owner-a', 'a.txt')), OP.OPEN), `seqid ${bad}`).toBe(NFS4ERR.BAD_SEQID);
    }
    // BAD_SEQID ran nothing and advanced nothing: 11 is still the next.
    const next = await inMem(ops.open40(11, clientid, 'owner-a', 'a.txt'), ops.getfh());
    expect(next.status).toBe(NFS4ERR.OK);
    const sid = resultOf(next, OP.OPEN)!.body!.stateid as Stateid;
    const fh = resultOf(next, OP.GETFH)!.body!.fh as Buffer;
    // OPEN_DOWNGRADE and CLOSE go by the stateid's owner; 11 was the OPEN's, no retransmission of it.
    expect(statusOf(await c.raw(0, [ops.putfh(fh), ops.openDowngrade40(11, sid, 1)]), OP.OPEN_DOWNGRADE)).toBe(NFS4ERR.BAD_SEQID);
    const close = () => c.raw(0, [ops.putfh(fh), ops.close40(12, sid)]);
    const closed = await close();
    expect(closed.status).toBe(NFS4ERR.OK);
    expect((await close()).raw.equals(closed.raw)).toBe(true);
    expect(statusOf(await c.raw(0, [ops.putfh(fh), ops.close40(14, sid)]), OP.CLOSE)).toBe(NFS4ERR.BAD_SEQID);
    // The state is gone: the next seqid reaches CLOSE, which finds no state.
    expect(statusOf(await c.raw(0, [ops.putfh(fh), ops.close40(13, sid)]), OP.CLOSE)).toBe(NFS4ERR.BAD_STATEID);
  });

  it('errors that do not advance the sequence leave it; others advance it and are replayed', async () => {
    // NOFILEHANDLE (no PUTFH before OPEN): not advancing, 20 stays the first seqid.
    expect((await c.raw(0, [ops.open40(20, clientid, 'owner-b', 'a.txt')])).status).toBe(NFS4ERR.NOFILEHANDLE);
    expect((await inMem(ops.open40(20, clientid, 'owner-b', 'missing.txt'))).status).toBe(NFS4ERR.NOENT);
    // NOENT advances: the same seqid is the replay of that NOENT, even for another name.
    const replay = await inMem(ops.open40(20, clientid, 'owner-b', 'a.txt'));
    expect(replay.status).toBe(NFS4ERR.NOENT);
    const ok = await inMem(ops.open40(21, clientid, 'owner-b', 'a.txt'), ops.getfh());
    expect(ok.status).toBe(NFS4ERR.OK);
    const sid = resultOf(ok, OP.OPEN)!.body!.stateid as Stateid;
    const fh = resultOf(ok, OP.GETFH)!.body!.fh as Buffer;
    // BAD_STATEID (a stateid seqid from the future): not advancing, 22 is still the next.
    expect((await c.raw(0, [ops.putfh(fh), ops.close40(22, { ...sid, seqid: sid.seqid + 5 })])).status).toBe(NFS4ERR.BAD_STATEID);
    expect((await c.raw(0, [ops.putfh(fh), ops.close40(22, sid)])).status).toBe(NFS4ERR.OK);
  });

  it('a retransmission arriving while the first still runs waits for it and gets its reply', async () => {
    const create = () => inMem(ops.create40(30, clientid, 'owner-c', 'together.txt'), ops.getfh());
    const [x, y] = await Promise.all([create(), create()]);
    expect([x.status, y.status]).toEqual([NFS4ERR.OK, NFS4ERR.OK]);
    expect(resultOf(y, OP.OPEN)!.body).toEqual(resultOf(x, OP.OPEN)!.body);
    const fh = resultOf(x, OP.GETFH)!.body!.fh as Buffer;
    expect((await c.raw(0, [ops.putfh(fh), ops.close40(31, resultOf(x, OP.OPEN)!.body!.stateid as Stateid)])).status).toBe(NFS4ERR.OK);
  });
});

describe('lock-owner seqids', () => {
  it('LOCK and LOCKU follow the lock-owner sequence; the first LOCK the open-owner sequence', async () => {
    const o = await inMem(ops.create40(40, clientid, 'owner-d', 'locked.txt'), ops.getfh());
    expect(o.status).toBe(NFS4ERR.OK);
    const open = resultOf(o, OP.OPEN)!.body!.stateid as Stateid;
    const fh = resultOf(o, OP.GETFH)!.body!.fh as Buffer;
    const onFile = (op: OpEnc) => c.raw(0, [ops.putfh(fh), op]);
    // The first LOCK: open_seqid is the open-owner's next (41), lock_seqid starts the lock-owner.
    expect(statusOf(await onFile(ops.lock40({ open, openSeqid: 43, lockSeqid: 0, clientid, owner: 'lo-d' }, 0n, 10n)), OP.LOCK)).toBe(NFS4ERR.BAD_SEQID);
    const l1 = await onFile(ops.lock40({ open, openSeqid: 41, lockSeqid: 0, clientid, owner: 'lo-d' }, 0n, 10n));
    expect(l1.status).toBe(NFS4ERR.OK);
    const lock = resultOf(l1, OP.LOCK)!.body!.stateid as Stateid;
    // Retransmitted: the same reply, the lock state's seqid not bumped twice.
    expect((await onFile(ops.lock40({ open, openSeqid: 41, lockSeqid: 0, clientid, owner: 'lo-d' }, 0n, 10n))).raw.equals(l1.raw)).toBe(true);
    const l2 = await onFile(ops.lock40({ lock, lockSeqid: 1 }, 20n, 10n));
    expect(l2.status).toBe(NFS4ERR.OK);
    const lock2 = resultOf(l2, OP.LOCK)!.body!.stateid as Stateid;
    expect(lock2.seqid).toBe(lock.seqid + 1);
    expect((await onFile(ops.lock40({ lock, lockSeqid: 1 }, 20n, 10n))).raw.equals(l2.raw)).toBe(true);
    expect(statusOf(await onFile(ops.lock40({ lock: lock2, lockSeqid: 3 }, 40n, 10n)), OP.LOCK)).toBe(NFS4ERR.BAD_SEQID);
    const u = await onFile(ops.locku40(2, lock2, 0n, 10n));
    expect(u.status).toBe(NFS4ERR.OK);
    expect((await onFile(ops.locku40(2, lock2, 0n, 10n))).raw.equals(u.raw)).toBe(true);
    expect(statusOf(await onFile(ops.locku40(5, resultOf(u, OP.LOCKU)!.body!.stateid as Stateid, 20n, 10n)), OP.LOCKU)).toBe(NFS4ERR.BAD_SEQID);
    expect((await onFile(ops.locku40(3, resultOf(u, OP.LOCKU)!.body!.stateid as Stateid, 20n, 10n))).status).toBe(NFS4ERR.OK);
    // The open-owner goes on at 42 (the first LOCK used 41).
    expect(statusOf(await onFile(ops.close40(41, open)), OP.CLOSE)).toBe(NFS4ERR.BAD_SEQID);
    expect((await onFile(ops.close40(42, open))).status).toBe(NFS4ERR.OK);
  });
});

