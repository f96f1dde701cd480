/**
 * CLOSE, OPEN_CONFIRM (4.0), OPEN_DOWNGRADE and DELEGRETURN (RFC 8881 §18.2, §18.18, §18.6;
 * RFC 7530 §16.18). CLOSE closes the open's core handles; its locks stay with their lock-owner
 * until LOCKU / RELEASE_LOCKOWNER / FREE_STATEID or the client's end (POSIX locks in the core belong
 * to their owner, not to a handle). OPEN_DOWNGRADE narrows the open's core handles in place
 * (Session.downgrade: the share-mode table sees the lesser access and deny at once, so another
 * client's open the old deny refused now comes in; no close and reopen, so locks stay). Portico requires no OPEN_CONFIRM (rflags never carries
 * CONFIRM); one sent anyway bumps the seqid.
 */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { CloseArgs, OpenConfirmArgs, OpenDowngradeArgs, StateidArgs } from '../xdr4/open.ts';
import { fail, failWith, ok, resolveStateid, type OpContext } from '../server/context.ts';
import { openKey } from './open.ts';
import { nfsShareToAccess } from '../../../src/locks/share-modes.ts';

export async function close(c: OpContext, a: CloseArgs): Promise<OpResult> {
  if (!c.cur) return fail(OP.CLOSE, NFS4ERR.NOFILEHANDLE);
  const st = resolveStateid(c, a.stateid);
  if (st.kind === 'error') return fail(OP.CLOSE, st.status);
  if (st.kind !== 'open') return fail(OP.CLOSE, NFS4ERR.BAD_STATEID);
  const open = st.open;
  const view = open.client.viewAs(c.principal);
  c.srv.state.states.delete(open.key);
  open.client.opens.delete(openKey(open));
  try {
    for (const h of open.handles) if (!h.closed) await view.close(h);
  } catch (e) {
    return failWith(OP.CLOSE, e);
  } finally {
    open.handles.length = 0;
  }
  open.seqid++;
  // RFC 8881 §18.2.4: the returned stateid is meaningless; a 4.1 server should send the invalid one.
  return ok(OP.CLOSE, { stateid: c.minor > 0 ? { seqid: 0xffffffff, other: Buffer.alloc(12) } : { seqid: open.seqid, other: open.other } });
}

export function openConfirm(c: OpContext, a: OpenConfirmArgs): OpResult {
  if (!c.cur) return fail(OP.OPEN_CONFIRM, NFS4ERR.NOFILEHANDLE);
  const st = resolveStateid(c, a.stateid);
  if (st.kind === 'error') return fail(OP.OPEN_CONFIRM, st.status);
  if (st.kind !== 'open') return fail(OP.OPEN_CONFIRM, NFS4ERR.BAD_STATEID);
  st.open.seqid++;
  return ok(OP.OPEN_CONFIRM, { stateid: { seqid: st.open.seqid, other: st.open.other } });
}

export async function openDowngrade(c: OpContext, a: OpenDowngradeArgs): Promise<OpResult> {
  if (!c.cur) return fail(OP.OPEN_DOWNGRADE, NFS4ERR.NOFILEHANDLE);
  const st = resolveStateid(c, a.stateid);
  if (st.kind === 'error') return fail(OP.OPEN_DOWNGRADE, st.status);
  if (st.kind !== 'open') return fail(OP.OPEN_DOWNGRADE, NFS4ERR.BAD_STATEID);
  const acc = a.shareAccess & 3;
  // §18.18.3: only to a subset of what the open holds.
  if (acc === 0 || (acc & ~st.open.access) !== 0 || (a.shareDeny & ~st.open.deny) !== 0) return fail(OP.OPEN_DOWNGRADE, NFS4ERR.INVAL);
  // Each core handle (an upgrade adds one) keeps what it had of the new access and of the new
  // deny: never more than before, so every step is a core downgrade.
  const want = nfsShareToAccess(acc, a.shareDeny);
  const view = st.open.client.viewAs(c.principal);
  try {
    for (const h of st.open.handles) {
      if (h.closed) continue;
      const access = { read: h.access.read && want.access.read, write: h.access.write && want.access.write, delete: h.access.delete && want.access.delete };
      const share = { read: h.share.read || want.share.read, write: h.share.write || want.share.write, delete: h.share.delete || want.share.delete };
      await view.downgrade(h, { access, share });
    }
  } catch (e) {
    return failWith(OP.OPEN_DOWNGRADE, e);
  }
  st.open.access = acc;
  st.open.deny = a.shareDeny;
  st.open.seqid++;
  return ok(OP.OPEN_DOWNGRADE, { stateid: { seqid: st.open.seqid, other: st.open.other } });
}

export function delegreturn(c: OpContext, _a: StateidArgs): OpResult {
  if (!c.cur) return fail(OP.DELEGRETURN, NFS4ERR.NOFILEHANDLE);
  // No delegation is ever granted, so none can be returned.
  return fail(OP.DELEGRETURN, NFS4ERR.BAD_STATEID);
}
