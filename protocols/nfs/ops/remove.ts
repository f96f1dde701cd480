/** REMOVE (RFC 8881 §18.25) on Session.removeIn: files, links and empty directories. */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { NameArgs } from '../xdr4/namespace.ts';
import { changeAround, fail, failWith, ok, viewFor, type OpContext } from '../server/context.ts';

export async function remove(c: OpContext, a: NameArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.REMOVE, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.REMOVE, NFS4ERR.ROFS);
  if (a.name === '.' || a.name === '..') return fail(OP.REMOVE, NFS4ERR.BADNAME);
  try {
    const dir = await c.view.getattrById(cur.share, cur.id);
    if (dir.type !== 'dir') return fail(OP.REMOVE, NFS4ERR.NOTDIR);
    const view = viewFor(c);
    const { cinfo } = await changeAround(c, cur, () => view.removeIn(cur.share, cur.id, a.name), dir.change);
    return ok(OP.REMOVE, { cinfo });
  } catch (e) {
    return failWith(OP.REMOVE, e);
  }
}
