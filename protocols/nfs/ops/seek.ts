/**
 * SEEK (RFC 7862 §15.11): the core reports no holes, so data is everywhere below the size and
 * the only hole is the one at the end of the file.
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
      const size = BigInt((await io.view.fstat(io.h)).size);
      if (a.offset >= size) return fail(OP.SEEK, NFS4ERR.NXIO);
      return ok(OP.SEEK, a.what === DATA_CONTENT.DATA ? { eof: false, offset: a.offset } : { eof: true, offset: size });
    } finally {
      await io.done();
    }
  } catch (e) {
    return failWith(OP.SEEK, e);
  }
}
