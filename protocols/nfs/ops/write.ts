/**
 * WRITE and COMMIT (RFC 8881 §18.32, §18.3). WRITE goes through the open's core handle (the data
 * is a view of the request record, written before the call returns). UNSTABLE writes are answered
 * UNSTABLE and made durable by COMMIT (Session.flushFile: every handle's writes to the file); DATA_SYNC
 * and FILE_SYNC flush at once and answer FILE_SYNC. The verifier is new on every start, so a client
 * whose unstable writes a restart may have lost sends them again.
 */
import { NFS4ERR, OP, STABLE_HOW } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { CommitArgs, WriteArgs } from '../xdr4/io.ts';
import { fail, failWith, ok, type OpContext } from '../server/context.ts';
import { ioHandle } from './read.ts';

export async function write(c: OpContext, a: WriteArgs): Promise<OpResult> {
  try {
    const io = await ioHandle(c, OP.WRITE, a.stateid, 'write');
    if ('status' in io) return fail(OP.WRITE, io.status);
    try {
      // More than maxwrite: a short write (§18.32.3 lets the server write less; the client sends the rest).
      const max = c.cur?.kind === 'file' ? c.cur.exp.maxWrite : c.srv.exports.maxWrite;
      const data = a.data.length > max ? a.data.subarray(0, max) : a.data;
      if (a.offset + BigInt(data.length) > BigInt(Number.MAX_SAFE_INTEGER)) return fail(OP.WRITE, NFS4ERR.FBIG);
      const n = await io.view.write(io.h, Number(a.offset), data);
      let committed: number = STABLE_HOW.UNSTABLE;
      if (a.stable !== STABLE_HOW.UNSTABLE) {
        await io.view.flush(io.h);
        committed = STABLE_HOW.FILE_SYNC;
      }
      return ok(OP.WRITE, { count: n, committed, verifier: c.srv.writeVerifier });
    } finally {
      await io.done();
    }
  } catch (e) {
    return failWith(OP.WRITE, e);
  }
}

export async function commit(c: OpContext, _a: CommitArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.COMMIT, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.COMMIT, NFS4ERR.ISDIR);
  try {
    const attr = await c.view.getattrById(cur.share, cur.id);
    if (attr.type === 'dir') return fail(OP.COMMIT, NFS4ERR.ISDIR);
    if (attr.type !== 'file') return fail(OP.COMMIT, NFS4ERR.SYMLINK);
    // COMMIT names no stateid: everything written to the file through any handle, of any client
    // or protocol, is made durable (Session.flushFile), as a server's COMMIT commits the file.
    await c.view.flushFile(cur.share, cur.id);
    return ok(OP.COMMIT, { verifier: c.srv.writeVerifier });
  } catch (e) {
    return failWith(OP.COMMIT, e);
  }
}
