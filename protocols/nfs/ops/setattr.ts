/**
 * SETATTR (RFC 8881 §18.30) on Session.setattrById, or Session.fsetattr through the open named by
 * the stateid (a size change of an open file goes through its handle, so the open's write access
 * and the core's share modes apply). Owners are numeric strings (uid/gid), or name@domain when a
 * domain is configured (server/idmap.ts turns them into numbers first); anything else is BADOWNER.
 * time_*_set to server time is the server's clock now.
 */
import type { SetAttr } from '../../../src/vfs/types.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import { decodeAttrValues, type AttrValues } from '../fattr4.ts';
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { SetattrArgs } from '../xdr4/attributes.ts';
import { bitmapOf, type NfsTime4 } from '../xdr4/common.ts';
import { handleWith, resolveStateid, type OpContext } from '../server/context.ts';
import { nfsstatOf } from '../errors.ts';
import { SUPPORTED } from '../server/attrs.ts';
import { bitmapHas } from '../xdr4/common.ts';

const ns = (t: NfsTime4): bigint => t.seconds * 1_000_000_000n + BigInt(t.nseconds);
const NUMERIC = /^\d{1,10}$/;

export function setAttrOf(v: AttrValues): { ok: true; set: SetAttr } | { ok: false; status: number } {
  const set: SetAttr = {};
  const now = BigInt(Date.now()) * 1_000_000n;
  if (v.size !== undefined) {
    if (v.size > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, status: NFS4ERR.FBIG };
    set.size = Number(v.size);
  }
  if (v.mode !== undefined) set.mode = v.mode & 0o7777;
  if (v.owner !== undefined) {
    if (!NUMERIC.test(v.owner)) return { ok: false, status: NFS4ERR.BADOWNER };
    set.uid = Number(v.owner);
  }
  if (v.ownerGroup !== undefined) {
    if (!NUMERIC.test(v.ownerGroup)) return { ok: false, status: NFS4ERR.BADOWNER };
    set.gid = Number(v.ownerGroup);
  }
  if (v.timeAccessSet) set.atimeNs = v.timeAccessSet.how === 1 ? ns(v.timeAccessSet.time) : now;
  if (v.timeModifySet) set.mtimeNs = v.timeModifySet.how === 1 ? ns(v.timeModifySet.time) : now;
  if (v.timeCreate) set.birthtimeNs = ns(v.timeCreate);
  return { ok: true, set };
}

export async function setattr(c: OpContext, a: SetattrArgs): Promise<OpResult> {
  const res = (status: number, attrs: number[] = []): OpResult => ({ op: OP.SETATTR, status, res: { attrsSet: bitmapOf(attrs) } });
  const cur = c.cur;
  if (!cur) return res(NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return res(NFS4ERR.ROFS);
  const d = decodeAttrValues(a.attrs, { settable: true });
  if (!d.ok) return res(d.status);
  const supported = SUPPORTED[c.minor] ?? [];
  if (d.attrs.some((n) => !bitmapHas(supported, n))) return res(NFS4ERR.ATTRNOTSUPP);
  const bad = await c.srv.idmap.numeric(d.values);
  if (bad !== undefined) return res(bad);
  const s = setAttrOf(d.values);
  if (!s.ok) return res(s.status);
  if (d.attrs.length === 0) return res(NFS4ERR.OK);
  try {
    let h: Handle | undefined;
    let view = c.view;
    const st = resolveStateid(c, a.stateid);
    if (st.kind === 'error') return res(st.status);
    if (s.set.size !== undefined && st.kind !== 'special') {
      if (st.open.fileId !== cur.id) return res(NFS4ERR.BAD_STATEID);
      h = handleWith(st.open, 'write');
      if (!h) return res(NFS4ERR.OPENMODE);
      // The handle belongs to the open's client (4.0 COMPOUNDs carry no session naming it).
      view = st.open.client.viewAs(c.principal);
    }
    const attr = await c.view.getattrById(cur.share, cur.id);
    if (s.set.size !== undefined && attr.type !== 'file') return res(attr.type === 'dir' ? NFS4ERR.ISDIR : NFS4ERR.INVAL);
    if (h) await view.fsetattr(h, s.set);
    else await c.view.setattrById(cur.share, cur.id, s.set);
    return res(NFS4ERR.OK, d.attrs);
  } catch (e) {
    return res(nfsstatOf(e));
  }
}
