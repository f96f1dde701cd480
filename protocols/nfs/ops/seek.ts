/**
 * SEEK (RFC 7862 §15.11) through the core's Session.seekData: the store's holes on a local share
 * with its native helper (lseek SEEK_DATA/SEEK_HOLE); elsewhere the core reports no holes, so data
 * is everywhere below the size and the only hole is the one at the end of the file.
 */
import { DATA_CONTENT, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { SeekArgs } from '../xdr4/io.ts';
import { fail, failWith, ok, type OpContext } from '../server/context.ts';
import { ioHandle } from './read.ts';

export async function seek(c: OpContext, a: SeekArgs): Promise<OpResult> {
  try {
    const io = await ioHandle(c, OP.SEEK, a.stateid, 'read');
    if ('status' in io) return fail(OP.SEEK, io.status);
    try {
      if (a.offset > BigInt(Number.MAX_SAFE_INTEGER)) return fail(OP.SEEK, NFS4ERR.NXIO);
      const found = await io.view.seekData(io.h, Number(a.offset), a.what === DATA_CONTENT.DATA ? 'data' : 'hole');
      if (found === undefined) return fail(OP.SEEK, NFS4ERR.NXIO);
      // sr_eof: the result is the end of the file (a hole found there, the implicit one).
      const size = (await io.view.fstat(io.h)).size;
      return ok(OP.SEEK, { eof: found >= size, offset: BigInt(found) });
    } finally {
      await io.done();
    }
  } catch (e) {
    return failWith(OP.SEEK, e);
  }
}
