/** LINK (RFC 8881 §18.9): the saved filehandle is the file, the current one the directory (Session.linkIn). */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { NameArgs } from '../xdr4/namespace.ts';
import { changeAround, fail, failWith, ok, viewFor, type OpContext } from '../server/context.ts';

export async function link(c: OpContext, a: NameArgs): Promise<OpResult> {
  const dir = c.cur;
  const file = c.saved;
  if (!dir || !file) return fail(OP.LINK, NFS4ERR.NOFILEHANDLE);
  if (dir.kind === 'pseudo' || file.kind === 'pseudo') return fail(OP.LINK, NFS4ERR.ROFS);
  if (dir.share !== file.share) return fail(OP.LINK, NFS4ERR.XDEV);
  try {
    const [d, f] = await Promise.all([c.view.getattrById(dir.share, dir.id), c.view.getattrById(file.share, file.id)]);
    if (d.type !== 'dir') return fail(OP.LINK, NFS4ERR.NOTDIR);
    if (f.type === 'dir') return fail(OP.LINK, NFS4ERR.ISDIR);
    const { cinfo } = await changeAround(c, dir, () => viewFor(c).linkIn(dir.share, file.id, dir.id, a.name));
    return ok(OP.LINK, { cinfo });
  } catch (e) {
    return failWith(OP.LINK, e);
  }
}
