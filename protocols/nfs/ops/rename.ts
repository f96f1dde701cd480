/**
 * RENAME (RFC 8881 §18.26): the saved filehandle is the source directory, the current one the
 * target (Session.renameIn, replacing a target as POSIX rename does). change_info4 of both
 * directories from their change attributes before and after. Across shares: XDEV.
 */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { RenameArgs } from '../xdr4/namespace.ts';
import type { ChangeInfo4 } from '../xdr4/common.ts';
import { fail, failWith, ok, viewFor, type OpContext } from '../server/context.ts';

export async function rename(c: OpContext, a: RenameArgs): Promise<OpResult> {
  const to = c.cur;
  const from = c.saved;
  if (!to || !from) return fail(OP.RENAME, NFS4ERR.NOFILEHANDLE);
  if (to.kind === 'pseudo' || from.kind === 'pseudo') return fail(OP.RENAME, NFS4ERR.ROFS);
  if (to.share !== from.share) return fail(OP.RENAME, NFS4ERR.XDEV);
  for (const n of [a.oldName, a.newName]) if (n === '.' || n === '..') return fail(OP.RENAME, NFS4ERR.BADNAME);
  try {
    const [fd, td] = await Promise.all([c.view.getattrById(from.share, from.id), c.view.getattrById(to.share, to.id)]);
    if (fd.type !== 'dir' || td.type !== 'dir') return fail(OP.RENAME, NFS4ERR.NOTDIR);
    await viewFor(c).renameIn(from.share, from.id, a.oldName, to.id, a.newName, { replace: true });
    const after = async (id: bigint, before: bigint): Promise<ChangeInfo4> => ({
      atomic: false,
      before,
      after: (await c.view.getattrById(to.share, id).catch(() => undefined))?.change ?? before + 1n,
    });
    return ok(OP.RENAME, { source: await after(from.id, fd.change), target: await after(to.id, td.change) });
  } catch (e) {
    return failWith(OP.RENAME, e);
  }
}
