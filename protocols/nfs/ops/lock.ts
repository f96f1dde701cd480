/**
 * LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER (RFC 8881 §18.10–18.12, RFC 7530 §16.37) onto the one
 * lock manager (Session.lockHandle with an explicit owner id per NFS lock-owner: POSIX style, so
 * closing the open leaves them, as §9.1.4 wants, and SMB and WebDAV see them). A conflict is
 * DENIED without waiting (READW/WRITEW included: the client polls, §18.10.3). The core does not
 * say which lock conflicts, so LOCK4denied names the range asked for and an anonymous owner.
 * LOCKT asks Session.locksOn for the file's locks.
 */
import { WHOLE_FILE, MAX_OFFSET, type LockRange } from '../../../src/locks/lock-manager.ts';
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

function denied(a: { offset: bigint; length: bigint; locktype: number }): Lock4Denied {
  return { offset: a.offset, length: a.length, locktype: a.locktype, owner: { clientid: 0n, owner: Buffer.alloc(0) } };
}

function lockStateFor(c: OpContext, open: OpenState, lockOwnerKey: string): LockState {
  for (const l of open.locks) if (l.lockOwnerKey === lockOwnerKey) return l;
  const other = c.srv.state.newOther();
  const l: LockState = { kind: 'lock', other, key: other.toString('hex'), seqid: 0, client: open.client, open, lockOwnerKey, ownerId: ownerIdOf(lockOwnerKey) };
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
    ls = lockStateFor(c, st.open, `${a.locker.lockOwner.clientid}:${a.locker.lockOwner.owner.toString('hex')}`);
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
    const o = { kind: kindOf(a.locktype), style: 'posix' as const, range, ownerId: ls.ownerId };
    if (a.reclaim) await view.reclaimLock(h, o);
    else await view.lockHandle(h, o);
  } catch (e) {
    if (e instanceof VfsError && e.code === 'ELOCKED') return { op: OP.LOCK, status: NFS4ERR.DENIED, res: { denied: denied(a) } };
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
    const client: NfsClient | undefined = c.client ?? c.srv.state.clients.get(a.owner.clientid);
    const mine = client ? `${client.session.id}:${ownerIdOf(`${a.owner.clientid}:${a.owner.owner.toString('hex')}`)}` : undefined;
    const path = await c.view.pathOf(cur.share, cur.id);
    const locks = await c.view.locksOn(cur.share, path);
    const want = kindOf(a.locktype);
    for (const l of locks) {
      if (l.fileId !== cur.id || l.owner.id === mine) continue;
      if (want === 'shared' && l.kind === 'shared') continue;
      if (l.range.start < range.end && range.start < l.range.end) {
        const length = l.range.end === MAX_OFFSET ? ALL : l.range.end - l.range.start;
        return { op: OP.LOCKT, status: NFS4ERR.DENIED, res: { denied: { offset: l.range.start, length, locktype: l.kind === 'shared' ? LOCK_TYPE.READ_LT : LOCK_TYPE.WRITE_LT, owner: { clientid: 0n, owner: Buffer.from(l.owner.principal ?? '') } } } };
      }
    }
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
