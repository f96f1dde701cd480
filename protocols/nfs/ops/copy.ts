/**
 * COPY (RFC 7862 §15.2), intra-server and synchronous: the saved filehandle and source stateid
 * name the source, the current ones the destination. Inside the store where it can
 * (Session.copyRange: copy_file_range on a local share with its native helper, both opens through
 * one session); otherwise the bytes go through the two open handles in 1 MiB pieces. Flushed
 * before the reply (committed FILE_SYNC). Inter-server copies (a source server list) are NOTSUPP.
 */
import { NFS4ERR, OP, STABLE_HOW } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { CopyArgs } from '../xdr4/io.ts';
import { fail, failWith, type OpContext } from '../server/context.ts';
import { ioHandle } from './read.ts';
import { isVfsError } from '../../../src/vfs/errors.ts';

const REQS = { consecutive: true, synchronous: true };

/** A COPY moves its bytes in pieces of this size (reads into one buffer, writes from it). */
const COPY_CHUNK = 1024 * 1024;

export async function copy(c: OpContext, a: CopyArgs): Promise<OpResult> {
  if (!c.cur || !c.saved) return fail(OP.COPY, NFS4ERR.NOFILEHANDLE);
  if (a.srcServers.length > 0) return fail(OP.COPY, NFS4ERR.NOTSUPP);
  const dstFh = c.cur;
  try {
    c.cur = c.saved;
    const src = await ioHandle(c, OP.COPY, a.srcStateid, 'read');
    c.cur = dstFh;
    if ('status' in src) return fail(OP.COPY, src.status);
    try {
      const dst = await ioHandle(c, OP.COPY, a.dstStateid, 'write');
      if ('status' in dst) return fail(OP.COPY, dst.status);
      try {
        const size = BigInt((await src.view.fstat(src.h)).size);
        if (a.srcOffset > size) return fail(OP.COPY, NFS4ERR.INVAL);
        const end = a.count === 0n || a.srcOffset + a.count > size ? size : a.srcOffset + a.count;
        let done = 0n;
        // Inside the store: one call (the count may be short; the client asks again for the rest).
        const inStore = src.view === dst.view && end > a.srcOffset
          ? await src.view.copyRange(src.h, Number(a.srcOffset), dst.h, Number(a.dstOffset), Number(end - a.srcOffset)).catch((e: unknown) => {
            if (isVfsError(e, 'ENOTSUP')) return undefined;
            throw e;
          })
          : undefined;
        if (inStore !== undefined) done = BigInt(inStore);
        else {
          const buf = Buffer.allocUnsafe(COPY_CHUNK);
          while (a.srcOffset + done < end) {
            const want = Number(end - a.srcOffset - done < BigInt(COPY_CHUNK) ? end - a.srcOffset - done : BigInt(COPY_CHUNK));
            const n = await src.view.readInto(src.h, Number(a.srcOffset + done), buf.subarray(0, want));
            if (n === 0) break;
            await dst.view.write(dst.h, Number(a.dstOffset + done), buf.subarray(0, n));
            done += BigInt(n);
          }
        }
        await dst.view.flush(dst.h);
        return { op: OP.COPY, status: NFS4ERR.OK, res: { response: { count: done, committed: STABLE_HOW.FILE_SYNC, verifier: c.srv.writeVerifier }, requirements: REQS } };
      } finally {
        await dst.done();
      }
    } finally {
      await src.done();
    }
  } catch (e) {
    c.cur = dstFh;
    return failWith(OP.COPY, e);
  }
}
