/**
 * CHANGE_NOTIFY (MS-SMB2 3.3.5.19) on the core's change watches (src/session/watch.ts): changes
 * made through any protocol (and, on local disks, outside Portico) at a directory's children, or its
 * whole tree with SMB2_WATCH_TREE.
 *
 * - The first CHANGE_NOTIFY on a directory open starts a watch that lives with the open, as the
 *   change list of MS-FSA 2.1.5.10 does: changes between two requests are kept (bounded, below) and
 *   answered by the next one at once. A request with another completion filter or WATCH_TREE
 *   restarts the watch.
 * - A request with nothing to answer goes async (async.ts) and completes when a change comes:
 *   FILE_NOTIFY_INFORMATION entries (names relative to the directory, backslashes) for what is
 *   queued. More than the client's OutputBufferLength, or a watch queue that overflowed (more than
 *   MAX_NOTIFY_QUEUE changes unread), is STATUS_NOTIFY_ENUM_DIR with no entries: the client
 *   re-reads the directory, which covers everything dropped.
 * - Completion filter → the watch's filter: FILE_NAME → create/delete/rename of files and links,
 *   DIR_NAME → of directories, ATTRIBUTES/CREATION/LAST_ACCESS/EA/SECURITY → attribute changes,
 *   SIZE/LAST_WRITE/STREAM_SIZE/STREAM_WRITE → data changes. A create, delete or rename is
 *   ADDED/REMOVED/RENAMED_OLD_NAME+RENAMED_NEW_NAME, any other change MODIFIED.
 * - Bounds: MAX_NOTIFY_QUEUE changes per open, MAX_WATCHES_PER_SESSION directory opens with a
 *   watch per session (the next CHANGE_NOTIFY that would start one is INSUFFICIENT_RESOURCES), an
 *   OutputBufferLength up to MaxTransactSize (INVALID_PARAMETER past it), and async.ts's waits.
 * - Ends: CANCEL → STATUS_CANCELLED; CLOSE of the open, TREE_DISCONNECT, LOGOFF → STATUS_NOTIFY_CLEANUP
 *   (3.3.5.10 for CLOSE; Samba answers the same for the others); the directory deleted →
 *   STATUS_DELETE_PENDING once what was queued before has been answered; a lost connection ends it
 *   unanswered.
 */
import type { Smb2Header } from '../header.ts';
import { STATUS } from '../status.ts';
import { tryDecode, type FileId } from '../wire.ts';
import { ChangeNotifyFlags, decodeChangeNotifyRequest, encodeOutputResponse } from '../messages/info.ts';
import { encodeErrorResponse } from '../messages/error.ts';
import type { Session } from '../../../src/session/session.ts';
import type { Watch, WatchEvent, WatchFilter } from '../../../src/session/watch.ts';
import { NT, ntStatusOf } from '../errors.ts';
import { asyncRefusal, asyncTable, type AsyncFinal } from './async.ts';
import type { CommandResult } from './commands.ts';
import { MAX_IO, type Conn, type Open, type SmbServer, type SmbSession } from './server.ts';

/** Changes one directory open keeps unread before they become one NOTIFY_ENUM_DIR. */
export const MAX_NOTIFY_QUEUE = 512;
/** Directory opens of one SMB session with a watch at once (so at most 256 × 512 changes kept). */
export const MAX_WATCHES_PER_SESSION = 256;
const STATUS_NOTIFY_CLEANUP = 0x0000_010b;
const FILE_LIST_DIRECTORY = 0x1;

export const CompletionFilter = {
  FILE_NAME: 0x1, DIR_NAME: 0x2, ATTRIBUTES: 0x4, SIZE: 0x8, LAST_WRITE: 0x10, LAST_ACCESS: 0x20,
  CREATION: 0x40, EA: 0x80, SECURITY: 0x100, STREAM_NAME: 0x200, STREAM_SIZE: 0x400, STREAM_WRITE: 0x800,
} as const;
const Action = { ADDED: 1, REMOVED: 2, MODIFIED: 3, RENAMED_OLD_NAME: 4, RENAMED_NEW_NAME: 5 } as const;

interface NotifyState {
  watch: Watch;
  filter: number;
  tree: boolean;
  /**
   * The first request's OutputBufferLength: the open's change buffer, as in Windows and Samba — a
   * later request never gets more than fits it (so once a small first request overflowed, every
   * answer is NOTIFY_ENUM_DIR: smbtorture smb2.notify.valid-req).
   */
  bufferSize: number;
}
const states = new WeakMap<Open, NotifyState>();
const bySession = new WeakMap<SmbSession, Set<Watch>>();

/** The session's watches that still run or hold changes. */
function watchesOf(sess: SmbSession): Set<Watch> {
  let set = bySession.get(sess);
  if (!set) bySession.set(sess, (set = new Set()));
  for (const w of set) if (w.ended !== undefined && w.queued === 0) set.delete(w);
  return set;
}

/** The watch filter for an SMB completion filter ({} when it asks for nothing Portico reports: such a request waits until cancelled or closed, as on Windows). */
export function watchFilter(completion: number): WatchFilter {
  const names: ('file' | 'symlink' | 'dir')[] = [];
  if (completion & CompletionFilter.FILE_NAME) names.push('file', 'symlink');
  if (completion & CompletionFilter.DIR_NAME) names.push('dir');
  const attrib = (completion & (CompletionFilter.ATTRIBUTES | CompletionFilter.CREATION | CompletionFilter.LAST_ACCESS | CompletionFilter.EA | CompletionFilter.SECURITY)) !== 0;
  const modify = (completion & (CompletionFilter.SIZE | CompletionFilter.LAST_WRITE | CompletionFilter.STREAM_SIZE | CompletionFilter.STREAM_WRITE)) !== 0;
  return {
    ...(names.length > 0 ? { create: names, delete: names, rename: names } : {}),
    ...(attrib ? { attrib: true } : {}),
    ...(modify ? { modify: true } : {}),
  };
}

/** FILE_NOTIFY_INFORMATION entries (MS-FSCC 2.7.1) for `events`; undefined on overflow or past `max` bytes. */
export function notifyBuffer(events: WatchEvent[], max: number): Buffer | undefined {
  const entries: [number, string][] = [];
  for (const e of events) {
    if (e.kind === 'overflow') return undefined;
    const win = (n: string) => n.replace(/\//g, '\\');
    if (e.kind === 'rename') entries.push([Action.RENAMED_OLD_NAME, win(e.oldName ?? e.name)], [Action.RENAMED_NEW_NAME, win(e.name)]);
    else entries.push([e.kind === 'create' ? Action.ADDED : e.kind === 'delete' ? Action.REMOVED : Action.MODIFIED, win(e.name)]);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for (const [i, [action, name]] of entries.entries()) {
    const n = Buffer.from(name, 'utf16le');
    const len = 12 + n.length;
    const padded = i === entries.length - 1 ? len : (len + 3) & ~3;
    if (size + len > max) return undefined;
    const b = Buffer.alloc(padded);
    b.writeUInt32LE(i === entries.length - 1 ? 0 : padded, 0);
    b.writeUInt32LE(action, 4);
    b.writeUInt32LE(n.length, 8);
    n.copy(b, 12);
    parts.push(b);
    size += padded;
  }
  return Buffer.concat(parts);
}

/** Waiting CHANGE_NOTIFYs by the VFS id of their directory, for deletePending. */
const deletePendingWaits = new Map<bigint, Set<() => void>>();

/**
 * A directory open marked delete-on-close was closed: the directory is delete pending (it goes
 * when its last open does), and every CHANGE_NOTIFY waiting on it, through any open of any session,
 * answers STATUS_DELETE_PENDING at once, as Windows does (smbtorture smb2.notify.rmdir1-4).
 */
export function deletePending(dirId: bigint): void {
  for (const f of [...(deletePendingWaits.get(dirId) ?? [])]) f();
}

/** The open goes (CLOSE, TREE_DISCONNECT): its watch ends, a waiting CHANGE_NOTIFY answers NOTIFY_CLEANUP. */
export function endNotify(o: Open): void {
  const st = states.get(o);
  if (!st) return;
  states.delete(o);
  st.watch.close();
}

export async function changeNotify(srv: SmbServer, conn: Conn, sess: SmbSession, h: Smb2Header, el: Buffer, view: Session, openOf: (id: FileId) => Open | undefined): Promise<CommandResult> {
  const fail = (status: number): CommandResult => ({ resp: srv.error(conn, h, status) });
  const d = tryDecode(() => decodeChangeNotifyRequest(el));
  if (!d.ok) return fail(STATUS.INVALID_PARAMETER);
  const q = d.value;
  const o = openOf(q.fileId);
  if (!o) return fail(STATUS.FILE_CLOSED);
  if (o.kind !== 'dir' || !o.handle || o.tree.share === undefined) return fail(STATUS.INVALID_PARAMETER);
  if (!(o.grantedAccess & FILE_LIST_DIRECTORY)) return fail(STATUS.ACCESS_DENIED);
  if (q.outputBufferLength > MAX_IO) return fail(STATUS.INVALID_PARAMETER);
  const tree = (q.flags & ChangeNotifyFlags.WATCH_TREE) !== 0;
  let st = states.get(o);
  if (!st || st.filter !== q.completionFilter || st.tree !== tree || st.watch.ended === 'closed' || st.watch.ended === 'session') {
    st?.watch.close();
    states.delete(o);
    const filter = watchFilter(q.completionFilter);
    const live = watchesOf(sess);
    if (live.size >= MAX_WATCHES_PER_SESSION) return fail(NT.INSUFFICIENT_RESOURCES);
    let watch: Watch;
    try {
      watch = await view.watch(o.tree.share, o.handle.path, { recursive: tree, filter, queueLimit: MAX_NOTIFY_QUEUE });
    } catch (e) {
      return fail(ntStatusOf(e));
    }
    if (!sess.opens.has(o.volatile)) {
      // Closed while the watch was being set up.
      watch.close();
      return fail(STATUS.FILE_CLOSED);
    }
    states.set(o, (st = { watch, filter: q.completionFilter, tree, bufferSize: q.outputBufferLength }));
    live.add(watch);
  }
  // How a watch that ended answers: its directory deleted, or its open or session gone.
  const over = (w: Watch): AsyncFinal =>
    w.ended === 'removed' ? { status: NT.DELETE_PENDING, body: (b) => encodeErrorResponse(b) } : { status: STATUS_NOTIFY_CLEANUP, body: (b) => encodeOutputResponse(b, Buffer.alloc(0)) };
  const answer = (): AsyncFinal | undefined => {
    const events = st.watch.take();
    if (events.length === 0) return undefined;
    const out = notifyBuffer(events, Math.min(q.outputBufferLength, st.bufferSize));
    return { status: out ? 0 : STATUS.NOTIFY_ENUM_DIR, body: (w) => encodeOutputResponse(w, out ?? Buffer.alloc(0)) };
  };
  const now = answer();
  if (now) return { resp: srv.response(conn, h, now.status, now.body) };
  if (st.watch.ended !== undefined) {
    const f = over(st.watch);
    return { resp: srv.response(conn, h, f.status, f.body) };
  }
  const table = asyncTable(srv, conn);
  // A CANCEL that arrived while this request was still queued.
  if (table.takeCancelled(h.messageId)) return fail(STATUS.CANCELLED);
  const refused = asyncRefusal(h);
  if (refused !== undefined) return fail(refused);
  const op = table.start(sess, h);
  if (!op) return fail(NT.INSUFFICIENT_RESOURCES);
  const watch = st.watch;
  const dirId = o.handle.fileId;
  const stop = new AbortController();
  const onDeletePending = (): void => {
    op.finish({ status: NT.DELETE_PENDING, body: (w) => encodeErrorResponse(w) });
    stop.abort();
  };
  let set = deletePendingWaits.get(dirId);
  if (!set) deletePendingWaits.set(dirId, (set = new Set()));
  set.add(onDeletePending);
  void (async () => {
    try {
      for (;;) {
        const ready = await watch.wait(AbortSignal.any([op.abort.signal, stop.signal]));
        if (stop.signal.aborted) return;
        const a = ready ? answer() : undefined;
        if (a) return op.finish(a);
        if (op.abort.signal.aborted) return op.finish({ status: STATUS.CANCELLED, body: (w) => encodeErrorResponse(w) });
        if (!ready) return op.finish(over(watch));
        // Another request on the open took the events first: wait again.
      }
    } finally {
      set.delete(onDeletePending);
      if (set.size === 0 && deletePendingWaits.get(dirId) === set) deletePendingWaits.delete(dirId);
    }
  })();
  return { resp: op.interim(), async: op };
}
