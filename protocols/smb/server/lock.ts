/**
 * LOCK (MS-SMB2 3.3.5.14) on the shared lock manager with Windows semantics, owned by the open
 * (its CLOSE releases them). A request either unlocks ranges (every element UNLOCK) or takes them,
 * all or none — a conflict undoes the ones this request took.
 *
 * Blocking requests (one element without FAIL_IMMEDIATELY; with more elements every one must have
 * it, 3.3.5.14.2, as Samba and Windows require) that cannot be granted at once wait in the lock
 * manager — where WebDAV, NFS and other SMB opens release their locks, so any of them wakes it — and
 * go async (async.ts): STATUS_PENDING now, the final response when granted. The wait ends with
 * STATUS_CANCELLED on CANCEL, and with STATUS_RANGE_NOT_LOCKED when its open goes (CLOSE, TREE_DISCONNECT,
 * LOGOFF: the lock manager fails the waits of an owner it releases), as Samba answers; a lost
 * connection ends it unanswered.
 */
import type { Smb2Header } from '../header.ts';
import { STATUS } from '../status.ts';
import { tryDecode, type FileId } from '../wire.ts';
import { LockFlags, decodeLockRequest } from '../messages/file-ops.ts';
import { encodeEmpty } from '../messages/simple.ts';
import { encodeErrorResponse } from '../messages/error.ts';
import { isVfsError } from '../../../src/vfs/errors.ts';
import type { Session } from '../../../src/session/session.ts';
import type { LockRange } from '../../../src/locks/lock-manager.ts';
import { NT, ntStatusOf } from '../errors.ts';
import { asyncRefusal, asyncTable } from './async.ts';
import type { CommandResult } from './commands.ts';
import type { Conn, Open, SmbServer, SmbSession } from './server.ts';

const STATUS_INVALID_LOCK_RANGE = 0xc000_01a1;

export async function lock(srv: SmbServer, conn: Conn, sess: SmbSession, h: Smb2Header, el: Buffer, view: Session, openOf: (id: FileId) => Open | undefined): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const d = tryDecode(() => decodeLockRequest(el));
  if (!d.ok) return fail(STATUS.INVALID_PARAMETER);
  const q = d.value;
  const o = openOf(q.fileId);
  if (!o) return fail(STATUS.FILE_CLOSED);
  if (o.kind !== 'file' || !o.handle) return fail(STATUS.INVALID_PARAMETER);
  const handle = o.handle;
  const ranges: LockRange[] = [];
  for (const l of q.locks) {
    const end = l.offset + l.length;
    // The last byte locked must be within 64 bits: max/1 is valid, max/2 is not (smbtorture smb2.lock.lock).
    if (end > 0x1_0000_0000_0000_0000n) return fail(STATUS_INVALID_LOCK_RANGE);
    ranges.push({ start: l.offset, end });
  }
  if (q.locks[0]!.flags === LockFlags.UNLOCK) {
    // In order, each element exactly UNLOCK (3.3.5.14.1): the first failure answers, what was
    // unlocked before it stays unlocked (smbtorture smb2.lock.multiple-unlock).
    for (const [i, l] of q.locks.entries()) {
      if (l.flags !== LockFlags.UNLOCK) return fail(STATUS.INVALID_PARAMETER);
      try {
        await view.unlockHandle(handle, ranges[i]!, 'windows');
      } catch (e) {
        return fail(ntStatusOf(e, 'lock'));
      }
    }
    return { resp: srv.response(conn, h, 0, encodeEmpty) };
  }
  // Each element SHARED or EXCLUSIVE, optionally FAIL_IMMEDIATELY; nothing else (3.3.5.14.2).
  const LOCK_FLAGS = new Set([LockFlags.SHARED, LockFlags.EXCLUSIVE, LockFlags.SHARED | LockFlags.FAIL_IMMEDIATELY, LockFlags.EXCLUSIVE | LockFlags.FAIL_IMMEDIATELY]);
  if (q.locks.some((l) => !LOCK_FLAGS.has(l.flags))) return fail(STATUS.INVALID_PARAMETER);
  const blocking = !(q.locks[0]!.flags & LockFlags.FAIL_IMMEDIATELY);
  if (q.locks.length > 1 && q.locks.some((l) => !(l.flags & LockFlags.FAIL_IMMEDIATELY))) return fail(STATUS.INVALID_PARAMETER);
  const kindOf = (flags: number) => (flags & LockFlags.EXCLUSIVE ? 'exclusive' : 'shared') as 'exclusive' | 'shared';
  const taken: LockRange[] = [];
  for (const [i, l] of q.locks.entries()) {
    try {
      await view.lockHandle(handle, { kind: kindOf(l.flags), style: 'windows', range: ranges[i]! });
      taken.push(ranges[i]!);
    } catch (e) {
      for (const r of taken) await view.unlockHandle(handle, r, 'windows').catch(() => undefined);
      if (!(blocking && isVfsError(e, 'ELOCKED'))) return fail(ntStatusOf(e, 'lock'));
      return wait(srv, conn, sess, h, view, o, kindOf(l.flags), ranges[i]!);
    }
  }
  return { resp: srv.response(conn, h, 0, encodeEmpty) };
}

/** A blocking lock that conflicts: it waits in the lock manager, answered STATUS_PENDING now. */
function wait(srv: SmbServer, conn: Conn, sess: SmbSession, h: Smb2Header, view: Session, o: Open, kind: 'exclusive' | 'shared', range: LockRange): CommandResult {
  const table = asyncTable(srv, conn);
  // A CANCEL that arrived while this request was still queued.
  if (table.takeCancelled(h.messageId)) return { resp: srv.error(conn, h, STATUS.CANCELLED) };
  const refused = asyncRefusal(h);
  if (refused !== undefined) return { resp: srv.error(conn, h, refused) };
  const op = table.start(sess, h);
  if (!op) return { resp: srv.error(conn, h, NT.INSUFFICIENT_RESOURCES) };
  view.lockHandle(o.handle!, { kind, style: 'windows', range, wait: { signal: op.abort.signal } }).then(
    () => op.finish({ status: 0, body: encodeEmpty }),
    (e: unknown) => {
      // ECANCELED without a CANCEL: the lock manager dropped the wait because its open went.
      const status = isVfsError(e, 'ECANCELED') ? NT.RANGE_NOT_LOCKED : ntStatusOf(e, 'lock');
      op.finish({ status, body: (w) => encodeErrorResponse(w) });
    },
  );
  return { resp: op.interim(), async: op };
}
