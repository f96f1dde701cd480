/**
 * LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER (RFC 8881 §18.10–18.12, RFC 7530 §16.37) onto the one
 * lock manager (Session.lockHandle with an explicit owner id per NFS lock-owner: POSIX style, so
 * closing the open leaves them, as §9.1.4 wants, and SMB and WebDAV see them). A conflict is
 * DENIED without waiting (READW/WRITEW included: the client polls, §18.10.3). LOCK4denied names
 * the lock in the way as the core reports it (LockConflictError.holder; Session.testLock for
 * LOCKT, which takes nothing): its range, type and owner — an NFS lock-owner as the client sent it
 * (kept in the lock's info), another protocol's holder as clientid 0 and its principal's name.
 */
import { LockConflictError, WHOLE_FILE, MAX_OFFSET, type LockInfo, type LockRange } from '../../../src/locks/lock-manager.ts';
import { VfsError } from '../../../src/vfs/errors.ts';
import { LOCK_TYPE, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { Lock4Denied, LockArgs, LocktArgs, LockuArgs, ReleaseLockownerArgs } from '../xdr4/locks.ts';
import { fail, failWith, ok, resolveStateid, stateidOf, type OpContext } from '../server/context.ts';
import type { LockState, NfsClient, OpenState } from '../server/state.ts';
import { nfsstatOf } from '../errors.ts';

const ALL = 0xffff_ffff_ffff_ffffn;

function rangeOf(offset: bigint, length: bigint): LockRange | undefined {
  if (length === 0n) return undefined;
  if (length === ALL) return { start: offset, end: MAX_OFFSET };
  const end = offset + length;
  if (end > ALL) return undefined;
  return { start: offset, end };
}

const kindOf = (t: number): 'shared' | 'exclusive' => (t === LOCK_TYPE.READ_LT || t === LOCK_TYPE.READW_LT ? 'shared' : 'exclusive');
const ownerIdOf = (lockOwnerKey: string): string => `lo:${lockOwnerKey}`;

/** What an NFS lock carries in the core (LockInfo.info), so a conflict can name its lock-owner. */
interface NfsLockInfo {
  nfsLockOwner: { clientid: bigint; owner: Buffer };
}

function infoOf(clientid: bigint, owner: Buffer): NfsLockInfo {
  return { nfsLockOwner: { clientid, owner: Buffer.from(owner) } };
}

/** LOCK4denied for the lock in the way (RFC 8881 §18.10.2). */
export function denied(holder: LockInfo): Lock4Denied {
  const length = holder.range.end === MAX_OFFSET ? ALL : holder.range.end - holder.range.start;
  const locktype = holder.kind === 'shared' ? LOCK_TYPE.READ_LT : LOCK_TYPE.WRITE_LT;
  const nfs = (holder.info as Partial<NfsLockInfo> | undefined)?.nfsLockOwner;
  const owner = nfs !== undefined ? { clientid: nfs.clientid, owner: nfs.owner } : { clientid: 0n, owner: Buffer.from(holder.owner.principal ?? holder.owner.protocol) };
  return { offset: holder.range.start, length, locktype, owner };
}

function lockStateFor(c: OpContext, open: OpenState, lockOwnerKey: string, info: NfsLockInfo): LockState {
  for (const l of open.locks) if (l.lockOwnerKey === lockOwnerKey) return l;
  const other = c.srv.state.newOther();
  const l: LockState = { kind: 'lock', other, key: other.toString('hex'), seqid: 0, client: open.client, open, lockOwnerKey, ownerId: ownerIdOf(lockOwnerKey), info };
  open.locks.add(l);
  c.srv.state.states.set(l.key, l);
  return l;
}

export async function lock(c: OpContext, a: LockArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.LOCK, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.LOCK, NFS4ERR.ISDIR);
  const range = rangeOf(a.offset, a.length);
  if (!range) return fail(OP.LOCK, NFS4ERR.INVAL);
  let ls: LockState;
  if (a.locker.newLockOwner) {
    const st = resolveStateid(c, a.locker.openStateid);
    if (st.kind === 'error') return fail(OP.LOCK, st.status);
    if (st.kind !== 'open') return fail(OP.LOCK, NFS4ERR.BAD_STATEID);
    const lo = a.locker.lockOwner;
    ls = lockStateFor(c, st.open, `${lo.clientid}:${lo.owner.toString('hex')}`, infoOf(lo.clientid, lo.owner));
  } else {
    const st = resolveStateid(c, a.locker.lockStateid);
    if (st.kind === 'error') return fail(OP.LOCK, st.status);
    if (st.kind !== 'lock') return fail(OP.LOCK, NFS4ERR.BAD_STATEID);
    ls = st.lock;
  }
  if (ls.open.fileId !== cur.id) return fail(OP.LOCK, NFS4ERR.BAD_STATEID);
  // A write lock needs an open for writing, a read lock one for reading (§18.10.4).
  if ((kindOf(a.locktype) === 'exclusive' ? ls.open.access & 2 : ls.open.access & 1) === 0) return fail(OP.LOCK, NFS4ERR.OPENMODE);
  const h = ls.open.handles.find((x) => !x.closed);
  if (!h) return fail(OP.LOCK, NFS4ERR.BAD_STATEID);
  const view = ls.client.viewAs(c.principal);
  try {
    const o = { kind: kindOf(a.locktype), style: 'posix' as const, range, ownerId: ls.ownerId, info: ls.info };
    if (a.reclaim) await view.reclaimLock(h, o);
    else await view.lockHandle(h, o);
  } catch (e) {
    if (e instanceof LockConflictError) return { op: OP.LOCK, status: NFS4ERR.DENIED, res: { denied: denied(e.holder) } };
    if (a.reclaim && e instanceof VfsError && e.code === 'EINVAL') return fail(OP.LOCK, NFS4ERR.NO_GRACE);
    return failWith(OP.LOCK, e, 'lock');
  }
  ls.seqid++;
  c.currentStateid = stateidOf(ls);
  return ok(OP.LOCK, { stateid: stateidOf(ls) });
}

export async function lockt(c: OpContext, a: LocktArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.LOCKT, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.LOCKT, NFS4ERR.ISDIR);
  const range = rangeOf(a.offset, a.length);
  if (!range) return fail(OP.LOCKT, NFS4ERR.INVAL);
  try {
    const attr = await c.view.getattrById(cur.share, cur.id);
    if (attr.type === 'dir') return fail(OP.LOCKT, NFS4ERR.ISDIR);
    if (attr.type !== 'file') return fail(OP.LOCKT, NFS4ERR.INVAL);
    // The tester's own locks are no conflict: asked as its lock-owner, through its client's state.
    const client: NfsClient | undefined = c.client ?? c.srv.state.clients.get(a.owner.clientid);
    const view = client ? client.viewAs(c.principal) : c.view;
    const ownerId = ownerIdOf(`${a.owner.clientid}:${a.owner.owner.toString('hex')}`);
    const holder = await view.testLock(cur.share, cur.id, { kind: kindOf(a.locktype), style: 'posix', range, ownerId });
    if (holder !== undefined) return { op: OP.LOCKT, status: NFS4ERR.DENIED, res: { denied: denied(holder) } };
    return ok(OP.LOCKT, null);
  } catch (e) {
    return failWith(OP.LOCKT, e, 'lock');
  }
}

export async function locku(c: OpContext, a: LockuArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.LOCKU, NFS4ERR.NOFILEHANDLE);
  const range = rangeOf(a.offset, a.length);
  if (!range) return fail(OP.LOCKU, NFS4ERR.INVAL);
  const st = resolveStateid(c, a.stateid);
  if (st.kind === 'error') return fail(OP.LOCKU, st.status);
  if (st.kind !== 'lock') return fail(OP.LOCKU, NFS4ERR.BAD_STATEID);
  const ls = st.lock;
  const h = ls.open.handles.find((x) => !x.closed);
  try {
    if (h) await ls.client.viewAs(c.principal).unlockHandle(h, range, 'posix', ls.ownerId);
  } catch (e) {
    // Unlocking a range that holds no lock is no error for POSIX locks (§18.12.3 lets it pass).
    if (!(e instanceof VfsError && e.code === 'ENOTLOCKED')) return failWith(OP.LOCKU, e, 'lock');
  }
  ls.seqid++;
  return ok(OP.LOCKU, { stateid: stateidOf(ls) });
}

/** Drops a lock state, releasing whatever it still holds. */
export async function freeLockState(c: OpContext, ls: LockState): Promise<void> {
  const h = ls.open.handles.find((x) => !x.closed);
  if (h) await ls.client.viewAs(c.principal).unlockHandle(h, WHOLE_FILE, 'posix', ls.ownerId).catch(() => {});
  ls.open.locks.delete(ls);
  c.srv.state.states.delete(ls.key);
}

export async function releaseLockowner(c: OpContext, a: ReleaseLockownerArgs): Promise<OpResult> {
  const client = c.srv.state.clients.get(a.owner.clientid);
  if (!client) return fail(OP.RELEASE_LOCKOWNER, NFS4ERR.STALE_CLIENTID);
  const key = `${a.owner.clientid}:${a.owner.owner.toString('hex')}`;
  try {
    for (const o of client.opens.values()) for (const l of [...o.locks]) if (l.lockOwnerKey === key) await freeLockState(c, l);
  } catch (e) {
    return fail(OP.RELEASE_LOCKOWNER, nfsstatOf(e));
  }
  return ok(OP.RELEASE_LOCKOWNER, null);
}
