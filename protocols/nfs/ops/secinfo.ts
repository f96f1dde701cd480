/**
 * SECINFO and SECINFO_NO_NAME (RFC 8881 §18.29, §18.45): AUTH_SYS only. Both consume the current
 * filehandle in 4.1 (§2.6.3.1.1.8), so a client must PUTFH again. The name of an export this
 * client's address may not use answers NFS4ERR_ACCESS, as LOOKUP of it does (every export offers
 * the same one flavor, so there is never a flavor to switch to: WRONGSEC does not arise).
 */
import { NFS4ERR, OP, SECINFO_STYLE } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { SecinfoArgs, SecinfoNoNameArgs } from '../xdr4/security.ts';
import { accessIn, fail, failWith, ok, type OpContext } from '../server/context.ts';

const FLAVORS = { flavors: [{ flavor: 1 }] };

export async function secinfo(c: OpContext, a: SecinfoArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.SECINFO, NFS4ERR.NOFILEHANDLE);
  try {
    if (cur.kind === 'pseudo') {
      const exp = c.srv.exports.byShareName(a.name);
      if (!exp) return fail(OP.SECINFO, NFS4ERR.NOENT);
      if (accessIn(c, exp) === 'none') return fail(OP.SECINFO, NFS4ERR.ACCESS);
    } else {
      await c.view.lookup(cur.share, cur.id, a.name);
    }
  } catch (e) {
    return failWith(OP.SECINFO, e);
  }
  if (c.minor > 0) c.cur = undefined;
  return ok(OP.SECINFO, FLAVORS);
}

export function secinfoNoName(c: OpContext, a: SecinfoNoNameArgs): OpResult {
  if (!c.cur) return fail(OP.SECINFO_NO_NAME, NFS4ERR.NOFILEHANDLE);
  if (a.style === SECINFO_STYLE.PARENT && c.cur.kind === 'pseudo') return fail(OP.SECINFO_NO_NAME, NFS4ERR.NOENT);
  c.cur = undefined;
  return ok(OP.SECINFO_NO_NAME, FLAVORS);
}
