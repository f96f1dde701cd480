/**
 * READ (RFC 8881 §18.22) through the open (or lock) state's core handle, Session.readInto into one
 * buffer that the reply sends by reference. The anonymous and bypass stateids read through a
 * short-lived handle (§8.2.3); so does an open without read access (a client filling its page
 * cache around a write, which §18.22.3 lets a server allow), with the caller's read right checked
 * by the open.
 */
import type { Handle } from '../../../src/vfs/vfs.ts';
import type { Session } from '../../../src/session/session.ts';
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { ReadArgs } from '../xdr4/io.ts';
import { fail, failWith, handleWith, ok, resolveStateid, type OpContext } from '../server/context.ts';
import type { Stateid4 } from '../xdr4/common.ts';
import { READ_SLAB, takeReadBuffer } from '../read-buffers.ts';

/** A handle for I/O on the current file through a stateid, and how to let it go afterwards. */
export async function ioHandle(
  c: OpContext,
  op: number,
  sid: Stateid4,
  want: 'read' | 'write',
): Promise<{ h: Handle; view: Session; done: () => Promise<void> } | { status: number }> {
  const cur = c.cur;
  if (!cur) return { status: NFS4ERR.NOFILEHANDLE };
  if (cur.kind === 'pseudo') return { status: NFS4ERR.ISDIR };
  const st = resolveStateid(c, sid);
  if (st.kind === 'error') return { status: st.status };
  if (st.kind !== 'special') {
    if (st.open.fileId !== cur.id) return { status: NFS4ERR.BAD_STATEID };
    const view = st.open.client.viewAs(c.principal);
    const h = handleWith(st.open, want);
    if (h) return { h, view, done: async () => {} };
    if (want === 'write') return { status: NFS4ERR.OPENMODE };
  }
  const attr = await c.view.getattrById(cur.share, cur.id);
  if (attr.type === 'dir') return { status: NFS4ERR.ISDIR };
  if (attr.type !== 'file') return { status: NFS4ERR.INVAL };
  const view = c.view;
  const h = await view.openById(cur.share, cur.id, { access: { read: want === 'read', write: want === 'write', delete: false }, owner: `anonymous-${op}` });
  return { h, view, done: () => view.close(h) };
}

export async function read(c: OpContext, a: ReadArgs): Promise<OpResult> {
  try {
    const io = await ioHandle(c, OP.READ, a.stateid, 'read');
    if ('status' in io) return fail(OP.READ, io.status);
    try {
      const count = Math.min(a.count, c.cur?.kind === 'file' ? c.cur.exp.maxRead : c.srv.exports.maxRead);
      if (a.offset > BigInt(Number.MAX_SAFE_INTEGER)) return ok(OP.READ, { eof: true, data: Buffer.alloc(0) });
      // A read below the slab size asks one byte more: getting it means there is more (not eof),
      // without an fstat per READ (a small file's open+read+close paid a third syscall for it).
      // A 1 MiB READ keeps its slab-sized buffer and asks the size after a full read instead.
      const extra = count > 0 && count < READ_SLAB ? 1 : 0;
      // Pooled unless the reply is kept for a replay (it would be resent after the buffer's reuse).
      const buf = c.cacheThis ? Buffer.allocUnsafe(count + extra) : takeReadBuffer(count + extra);
      const got = count === 0 ? 0 : await io.view.readInto(io.h, Number(a.offset), buf);
      const n = Math.min(got, count);
      let eof = got < count + extra;
      if (!eof && extra === 0) eof = Number(a.offset) + n >= (await io.view.fstat(io.h)).size;
      return ok(OP.READ, { eof, data: buf.subarray(0, n) });
    } finally {
      await io.done();
    }
  } catch (e) {
    return failWith(OP.READ, e);
  }
}
