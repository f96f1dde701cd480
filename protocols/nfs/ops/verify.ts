/**
 * VERIFY and NVERIFY (RFC 8881 §18.31, §18.15): the client's attribute values compared, as XDR,
 * with the current ones. An attribute Portico does not support is ATTRNOTSUPP; asking for
 * rdattr_error is INVAL (§18.31.3).
 */
import { attrListBytes, decodeAttrValues } from '../fattr4.ts';
import { FATTR4, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { VerifyArgs } from '../xdr4/attributes.ts';
import { bitmapHas } from '../xdr4/common.ts';
import { fail, failWith, type OpContext } from '../server/context.ts';
import { valuesOf } from './getattr.ts';

export async function verify(c: OpContext, a: VerifyArgs, op: typeof OP.VERIFY | typeof OP.NVERIFY): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(op, NFS4ERR.NOFILEHANDLE);
  const d = decodeAttrValues(a.attrs, { settable: false });
  if (!d.ok) return fail(op, d.status);
  if (bitmapHas(a.attrs.mask, FATTR4.RDATTR_ERROR)) return fail(op, NFS4ERR.INVAL);
  try {
    const v = await valuesOf(c, cur, a.attrs.mask);
    const mine = attrListBytes(a.attrs.mask, v);
    if (!mine) return fail(op, NFS4ERR.ATTRNOTSUPP);
    const same = mine.equals(a.attrs.vals);
    if (op === OP.VERIFY) return fail(op, same ? NFS4ERR.OK : NFS4ERR.NOT_SAME);
    return fail(op, same ? NFS4ERR.SAME : NFS4ERR.OK);
  } catch (e) {
    return failWith(op, e);
  }
}
