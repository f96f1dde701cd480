/**
 * CREATE (RFC 8881 §18.4): directories (Session.mkdirIn) and symbolic links (Session.symlinkIn);
 * devices, sockets and FIFOs are BADTYPE (the core stores none). Attributes other than the mode
 * are applied after the create; the new object becomes the current filehandle.
 */
import { decodeAttrValues } from '../fattr4.ts';
import { NF4, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { CreateArgs } from '../xdr4/namespace.ts';
import { bitmapOf } from '../xdr4/common.ts';
import { changeAround, fail, failWith, ok, viewFor, type OpContext } from '../server/context.ts';
import { setAttrOf } from './setattr.ts';

export async function create(c: OpContext, a: CreateArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.CREATE, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.CREATE, NFS4ERR.ROFS);
  const t = a.objtype;
  // Regular files are made by OPEN; devices, sockets and FIFOs have no place in the core.
  if (t.type !== NF4.DIR && t.type !== NF4.LNK) return fail(OP.CREATE, NFS4ERR.BADTYPE);
  if (a.name === '.' || a.name === '..') return fail(OP.CREATE, NFS4ERR.BADNAME);
  const d = decodeAttrValues(a.attrs, { settable: true });
  if (!d.ok) return fail(OP.CREATE, d.status);
  const bad = await c.srv.idmap.numeric(d.values);
  if (bad !== undefined) return fail(OP.CREATE, bad);
  const s = setAttrOf(d.values);
  if (!s.ok) return fail(OP.CREATE, s.status);
  const view = viewFor(c);
  try {
    const dir = await c.view.getattrById(cur.share, cur.id);
    if (dir.type !== 'dir') return fail(OP.CREATE, dir.type === 'symlink' ? NFS4ERR.SYMLINK : NFS4ERR.NOTDIR);
    const { value: made, cinfo } = await changeAround(c, cur, () =>
      t.type === NF4.DIR ? view.mkdirIn(cur.share, cur.id, a.name, s.set.mode ?? 0o755) : view.symlinkIn(cur.share, cur.id, a.name, (t as { linkData: string }).linkData),
      dir.change,
    );
    // The mode went with mkdir (a symlink's has no meaning); a size is not a directory's.
    const rest = { ...s.set };
    delete rest.size;
    delete rest.mode;
    let set = d.attrs;
    if (Object.keys(rest).length > 0) {
      try {
        await view.setattrById(cur.share, made.id, rest);
      } catch {
        set = [];
      }
    }
    c.cur = c.srv.fh.forFile(cur.exp, made.id);
    return ok(OP.CREATE, { cinfo, attrSet: bitmapOf(set) });
  } catch (e) {
    return failWith(OP.CREATE, e);
  }
}
