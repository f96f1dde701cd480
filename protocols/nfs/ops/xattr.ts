/**
 * GETXATTR, SETXATTR, LISTXATTRS, REMOVEXATTR (RFC 8276 §8.4) on the session's xattrs (space
 * `user`: the same rows WebDAV shows as dead properties). LISTXATTRS cookies are indexes into
 * the sorted name list; names are sent without the `user.` prefix (the client adds it). All by
 * file id (Session.getXattrById and friends): no path resolved here, so a rename in between or a
 * hard-linked file's surviving name changes nothing.
 */
import { NFS4ERR, OP, SETXATTR4 } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { ListxattrsArgs, SetxattrArgs, XattrNameArgs } from '../xdr4/xattr.ts';
import { fail, failWith, ok, viewFor, type FileFh, type OpContext } from '../server/context.ts';

function fileOf(c: OpContext, op: number): FileFh | OpResult {
  if (!c.cur) return fail(op, NFS4ERR.NOFILEHANDLE);
  if (c.cur.kind === 'pseudo') return fail(op, NFS4ERR.NOTSUPP);
  return c.cur;
}

export async function getxattr(c: OpContext, a: XattrNameArgs): Promise<OpResult> {
  const f = fileOf(c, OP.GETXATTR);
  if ('op' in f) return f;
  try {
    return ok(OP.GETXATTR, { value: await c.view.getXattrById(f.share, f.id, a.name) });
  } catch (e) {
    return failWith(OP.GETXATTR, e, 'xattr');
  }
}

const MODES = { [SETXATTR4.EITHER]: 'either', [SETXATTR4.CREATE]: 'create', [SETXATTR4.REPLACE]: 'replace' } as const;

export async function setxattr(c: OpContext, a: SetxattrArgs): Promise<OpResult> {
  const f = fileOf(c, OP.SETXATTR);
  if ('op' in f) return f;
  try {
    const before = (await c.view.getattrById(f.share, f.id)).change;
    await viewFor(c).setXattrById(f.share, f.id, a.name, Buffer.from(a.value), { mode: MODES[a.option as 0 | 1 | 2] ?? 'either' });
    const after = (await c.view.getattrById(f.share, f.id)).change;
    return ok(OP.SETXATTR, { cinfo: { atomic: false, before, after } });
  } catch (e) {
    return failWith(OP.SETXATTR, e, 'xattr');
  }
}

export async function listxattrs(c: OpContext, a: ListxattrsArgs): Promise<OpResult> {
  const f = fileOf(c, OP.LISTXATTRS);
  if ('op' in f) return f;
  try {
    const all = (await c.view.listXattrsById(f.share, f.id)).map((e) => e.name).sort();
    const names: string[] = [];
    let bytes = 8 + 4 + 4;
    let i = Number(a.cookie);
    if (i > all.length) return fail(OP.LISTXATTRS, NFS4ERR.BAD_COOKIE);
    for (; i < all.length; i++) {
      const n = 4 + ((Buffer.byteLength(all[i] as string) + 3) & ~3);
      if (bytes + n > a.maxcount) break;
      bytes += n;
      names.push(all[i] as string);
    }
    if (names.length === 0 && i < all.length) return fail(OP.LISTXATTRS, NFS4ERR.TOOSMALL);
    return ok(OP.LISTXATTRS, { cookie: BigInt(i), names, eof: i >= all.length });
  } catch (e) {
    return failWith(OP.LISTXATTRS, e, 'xattr');
  }
}

export async function removexattr(c: OpContext, a: XattrNameArgs): Promise<OpResult> {
  const f = fileOf(c, OP.REMOVEXATTR);
  if ('op' in f) return f;
  try {
    const before = (await c.view.getattrById(f.share, f.id)).change;
    await viewFor(c).removeXattrById(f.share, f.id, a.name);
    const after = (await c.view.getattrById(f.share, f.id)).change;
    return ok(OP.REMOVEXATTR, { cinfo: { atomic: false, before, after } });
  } catch (e) {
    return failWith(OP.REMOVEXATTR, e, 'xattr');
  }
}
