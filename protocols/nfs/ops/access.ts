/**
 * ACCESS (RFC 8881 §18.1) from Session.access: the ACL decides once for every protocol; NFS maps
 * read/write onto the ACCESS4 bits. EXECUTE follows read, and for files also a mode with an x bit
 * (the client runs what the server says it may). XA* bits exist from 4.2 (RFC 8276 §8.4.1.1).
 */
import { VfsError } from '../../../src/vfs/errors.ts';
import { ACCESS4, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { AccessArgs } from '../xdr4/attributes.ts';
import { accessIn, fail, failWith, ok, type OpContext } from '../server/context.ts';

const BASE = ACCESS4.READ | ACCESS4.LOOKUP | ACCESS4.MODIFY | ACCESS4.EXTEND | ACCESS4.DELETE | ACCESS4.EXECUTE;
const XA = ACCESS4.XAREAD | ACCESS4.XAWRITE | ACCESS4.XALIST;

export async function access(c: OpContext, a: AccessArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.ACCESS, NFS4ERR.NOFILEHANDLE);
  const supported = a.access & (c.minor >= 2 ? BASE | XA : BASE);
  if (cur.kind === 'pseudo') {
    return ok(OP.ACCESS, { supported, access: supported & (ACCESS4.READ | ACCESS4.LOOKUP | ACCESS4.EXECUTE) });
  }
  try {
    // No read right on the file itself: ACCESS answers "nothing" rather than failing (§18.1.3).
    const attr = await c.view.getattrById(cur.share, cur.id).catch((e: unknown) => {
      if (e instanceof VfsError && e.code === 'EACCES') return undefined;
      throw e;
    });
    if (!attr) return ok(OP.ACCESS, { supported, access: 0 });
    const path = await c.view.pathOf(cur.share, cur.id);
    const r = c.view.access(cur.share, path);
    const write = r.write && !r.readOnlyShare && accessIn(c, cur.exp) === 'rw';
    let granted = 0;
    if (r.read) granted |= ACCESS4.READ | ACCESS4.XAREAD | ACCESS4.XALIST;
    if (r.read && attr.type === 'dir') granted |= ACCESS4.LOOKUP | ACCESS4.EXECUTE;
    if (r.read && attr.type !== 'dir' && (attr.mode & 0o111) !== 0) granted |= ACCESS4.EXECUTE;
    if (write) granted |= ACCESS4.MODIFY | ACCESS4.EXTEND | ACCESS4.XAWRITE;
    if (write && attr.type === 'dir') granted |= ACCESS4.DELETE;
    return ok(OP.ACCESS, { supported, access: granted & supported });
  } catch (e) {
    return failWith(OP.ACCESS, e);
  }
}
