/** READLINK (RFC 8881 §18.24) on Session.readlinkById; a non-link is INVAL. */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import { fail, failWith, ok, type OpContext } from '../server/context.ts';

export async function readlink(c: OpContext): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.READLINK, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.READLINK, NFS4ERR.INVAL);
  try {
    const attr = await c.view.getattrById(cur.share, cur.id);
    if (attr.type !== 'symlink') return fail(OP.READLINK, attr.type === 'dir' ? NFS4ERR.ISDIR : NFS4ERR.INVAL);
    return ok(OP.READLINK, { link: await c.view.readlinkById(cur.share, cur.id) });
  } catch (e) {
    return failWith(OP.READLINK, e);
  }
}
