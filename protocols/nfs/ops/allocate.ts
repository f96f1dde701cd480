/**
 * ALLOCATE and DEALLOCATE (RFC 7862 §15.1, §15.4) through the core's Session.allocate, the
 * operation FUSE fallocate uses. ALLOCATE reserves the range and grows the file to its end when it
 * lies past it (as Linux's nfsd: fallocate mode 0); on a share whose store has no allocation call
 * it only grows the file (nothing is reserved). DEALLOCATE frees the range (reads as zeros, the
 * size kept: PUNCH_HOLE|KEEP_SIZE); NOTSUPP where the store cannot punch (the core's ENOTSUP).
 * Both need the stateid of an open for writing (ioHandle's 'write').
 */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { AllocateArgs } from '../xdr4/io.ts';
import { fail, failWith, type OpContext } from '../server/context.ts';
import { ioHandle } from './read.ts';

export async function allocate(c: OpContext, a: AllocateArgs, kind: 'allocate' | 'deallocate'): Promise<OpResult> {
  const op = kind === 'allocate' ? OP.ALLOCATE : OP.DEALLOCATE;
  try {
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    if (a.length === 0n || a.offset > max || a.length > max || a.offset + a.length > max) return fail(op, a.length === 0n ? NFS4ERR.INVAL : NFS4ERR.FBIG);
    const io = await ioHandle(c, op, a.stateid, 'write');
    if ('status' in io) return fail(op, io.status);
    try {
      await io.view.allocate(io.h, kind === 'allocate' ? 'allocate' : 'punch', Number(a.offset), Number(a.length), kind === 'deallocate');
      return { op, status: NFS4ERR.OK, res: null };
    } finally {
      await io.done();
    }
  } catch (e) {
    return failWith(op, e);
  }
}
