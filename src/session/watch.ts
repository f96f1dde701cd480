/**
 * Change watches (issue 9): what SMB2 CHANGE_NOTIFY, NFSv4 directory delegations (their recalls)
 * and directory cache revalidation are built on. `Session.watch(share, dir, options)` checks read
 * on `dir` through the session gate and returns a Watch: a stream of the changes at `dir`'s direct
 * children, or anywhere below it (`recursive`), made through any protocol — and, on backends that
 * can tell (capabilities.watch: local disks through inotify), outside Portico too.
 *
 * Decisions, and why:
 * - The source is the VFS's one change stream (`Vfs.events`): every protocol's changes pass the
 *   VFS, so a create over WebDAV reaches an SMB watch without either protocol knowing. One hub per
 *   Vfs listens to it while any watch exists (when none does, the VFS skips building events) and
 *   hands each event only to the watches it can concern: those whose directory is the event path's
 *   parent, and recursive ones on its ancestors — O(depth) map lookups per event, not O(watches).
 * - Paths are compared by key (NFC; case-folded on case-insensitive shares), so a name the backend
 *   lists in NFD or in another case still matches the watched directory. Events carry the paths as
 *   the VFS reports them (share-relative), plus names relative to the watched directory (SMB's
 *   FILE_NOTIFY_INFORMATION carries those; recursive ones contain '/').
 * - A watch follows its directory, not its path: a directory is found by its persistent id, so a
 *   watch (like the SMB handle or NFS file handle it serves) keeps watching the directory after it,
 *   or an ancestor, is renamed. When the directory is removed (or replaced by a rename over it), the
 *   watch ends with reason 'removed'; what was queued before stays deliverable.
 * - A rename with one side outside the watched scope (a move into or out of a non-recursive
 *   watch's directory, or of a recursive watch's tree) is reported as a create or a delete of the
 *   side inside: the watcher sees a name appear or go, which is all it can act on.
 * - Access: events the principal may not read are dropped (ShareAcl.allows per path: below a
 *   readable directory only rule paths can be denied, so this is a map walk, cheap). Checked when an
 *   event is queued — so hidden changes take no room and never cause an overflow that would reveal
 *   activity behind a rule — and again when it is delivered. A rename whose one side is hidden is
 *   a create or delete of the visible side, as for the scope.
 * - Bounded: each watch queues at most `queueLimit` events (default 1024). An event arriving at a
 *   full queue clears it and leaves one `overflow` marker (the event itself is dropped too): the
 *   consumer re-reads the directory (SMB answers STATUS_NOTIFY_ENUM_DIR; NFS clients re-read it),
 *   which covers everything that was dropped. Events after the marker queue behind it. Memory per
 *   watch never exceeds the bound, however long nobody reads.
 * - Filters are per kind, optionally per node type, because SMB's completion filter mixes both:
 *     FILE_NOTIFY_CHANGE_FILE_NAME  -> create/delete/rename of 'file' and 'symlink'
 *     FILE_NOTIFY_CHANGE_DIR_NAME   -> create/delete/rename of 'dir'
 *     ATTRIBUTES, CREATION, EA, SECURITY, LAST_ACCESS -> attrib
 *     SIZE, LAST_WRITE, STREAM_SIZE, STREAM_WRITE      -> modify
 *   e.g. `{ create: ['file', 'symlink'], delete: ['file', 'symlink'], rename: ['file', 'symlink'],
 *   modify: true }`. NFS directory delegations want create/delete/rename (and attrib for cached
 *   attributes). The filter applies after a rename became a create or a delete.
 * - A watch ends with its session (Session.end), on close(), or when its directory goes. A
 *   `for await` loop that breaks closes the watch, like events.on().
 * - Outside changes (local disks): one backend watcher per watched directory and mode (direct or
 *   recursive), shared by reference count between watches and closed with the last of them, at
 *   most MAX_OUTSIDE_WATCHERS per share (more watches still see Portico's changes; one warning).
 *   Reported paths are coalesced and looked at one at a time per share (Vfs.noticeOutside: the
 *   store's ids decide create/delete/modify, the path's cached metadata is dropped). Portico's own
 *   changes come back from inotify too (echoes), and are told apart by the change value: the last
 *   event at the path (remembered per path, bounded) carried the value a fresh stat still gives,
 *   because a stat after Portico's change only learns the file's new signature, while an outside
 *   change advances the value. Echoes are dropped, so a change made through Portico is reported
 *   once; a create or delete reported from outside first (its echo looked at before the VFS had
 *   recorded it, under load) is not reported again when the VFS emits it. Accepted limits, written
 *   down: an outside change to a file within the coalescing window (~50 ms) after a Portico change
 *   to it is taken for the echo; concurrent Portico and outside writes to one file, or a Portico
 *   write whose backend call outlasts the coalescing window, may give two modify events (creates
 *   and deletes are never doubled); an outside rename is a delete and a create (nothing tells it was one file); a
 *   backend that lost changes (inotify limits, floods) makes the watches of that directory overflow.
 */
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { VfsError } from '../vfs/errors.ts';
import { isSameOrDescendant, joinPath, nameKey, splitPath } from '../vfs/path.ts';
import type { BackendWatcher } from '../vfs/backend.ts';
import type { ChangeEvent, ChangeKind, FileId, NodeType } from '../vfs/types.ts';
import type { Vfs } from '../vfs/vfs.ts';

/** Which changes a watch wants: per kind, all node types (true) or some; absent kinds are not wanted. */
export type WatchFilter = { readonly [K in ChangeKind]?: boolean | readonly NodeType[] };

export interface WatchOptions {
  /** The whole subtree, not only the direct children (default false). */
  recursive?: boolean;
  /** Default: every kind of change. */
  filter?: WatchFilter;
  /** Events held for the consumer before they are replaced by one overflow marker (default 1024). */
  queueLimit?: number;
}

export const DEFAULT_QUEUE_LIMIT = 1024;
export const MAX_QUEUE_LIMIT = 65_536;
/** Backend watchers (one per watched directory and mode) one share holds at most. */
export const MAX_OUTSIDE_WATCHERS = 256;
/** Outside paths waiting to be looked at, per share; more overflow every watch of the share. */
const MAX_OUTSIDE_PENDING = 16_384;
/** Paths whose last change value a share's hub remembers (to tell echoes of Portico's own changes). */
const RECENT_PATHS = 16_384;
/** Ids whose last create or delete a share's hub remembers (to drop a second report of one). */
const RECENT_IDS = 8192;

export interface WatchChange {
  kind: ChangeKind;
  /** Share-relative path (for a delete: the path it had). */
  path: string;
  /** `path` relative to the watched directory ('a' or, recursive, 'sub/a'). */
  name: string;
  /** Renames only: the path before. */
  oldPath?: string;
  oldName?: string;
  /** Persistent file id (NFS handles, SMB FileIds are made from it). */
  id: FileId;
  type: NodeType;
  /** The file's change value after the change (0 for a delete). */
  change: bigint;
}

/** Events were dropped: re-read the watched directory (SMB STATUS_NOTIFY_ENUM_DIR). */
export interface WatchOverflow {
  kind: 'overflow';
}

export type WatchEvent = WatchChange | WatchOverflow;

/** Why a watch ended: close(), its session ended, or its directory was removed. */
export type WatchEnd = 'closed' | 'session' | 'removed';

const OVERFLOW: WatchOverflow = Object.freeze({ kind: 'overflow' });

/** What Session.watch hands over. */
export interface WatchInit {
  /** The session: its watches end with it (endWatches). */
  owner: object;
  /** Whether the owner has ended meanwhile (the watch is then not started). */
  ownerEnded(): boolean;
  vfs: Vfs;
  volume: string;
  share: string;
  dirId: FileId;
  /** The directory's current share path. */
  dirPath: string;
  /** May the principal read this (share-relative, as the VFS reports it) path? */
  readable(path: string): boolean;
  logger: Logger | undefined;
}

const bySession = new WeakMap<object, Set<Watch>>();
const hubs = new WeakMap<Vfs, WatchHub>();

/** Starts a watch (Session.watch, after the gate checked read on the directory). */
export async function openWatch(init: WatchInit, options: WatchOptions = {}): Promise<Watch> {
  const limit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUEUE_LIMIT) {
    throw new VfsError('EINVAL', `queueLimit must be an integer from 1 to ${MAX_QUEUE_LIMIT}`);
  }
  let hub = hubs.get(init.vfs);
  if (hub === undefined) hubs.set(init.vfs, (hub = new WatchHub(init.vfs, init.logger)));
  const w = new Watch(hub, init, options, limit);
  let mine = bySession.get(init.owner);
  if (mine === undefined) bySession.set(init.owner, (mine = new Set()));
  mine.add(w);
  await hub.add(w);
  if (init.ownerEnded()) {
    w.end('session');
    throw new VfsError('EBADF', 'session closed');
  }
  return w;
}

/** Ends every watch of a session (Session.end). */
export function endWatches(owner: object): void {
  const mine = bySession.get(owner);
  if (mine === undefined) return;
  bySession.delete(owner);
  for (const w of mine) w.end('session');
}

function parentKey(key: string): string {
  const cut = key.lastIndexOf('/');
  return cut <= 0 ? '/' : key.slice(0, cut);
}

/**
 * A change watch on one directory. Read events with `take()` (what is queued, without waiting)
 * and `wait()` (until something is queued), or with `for await (const e of watch)`.
 */
export class Watch implements AsyncIterable<WatchEvent> {
  readonly share: string;
  /** @internal The share's volume (its canonical name). */
  readonly volume: string;
  /** The watched directory's persistent id. */
  readonly dirId: FileId;
  readonly recursive: boolean;
  /** Most events held at once (an overflow marker counts as one). */
  readonly queueLimit: number;
  /** Overflow markers produced so far. */
  overflows = 0;
  /** @internal hub bookkeeping: the directory's share path and key, and its backend watcher. */
  path: string;
  key: string;
  depth: number;
  outsideKey: string | undefined;
  private readonly hub: WatchHub;
  private readonly owner: object;
  private readonly filter: WatchFilter | undefined;
  private readonly readable: (path: string) => boolean;
  private queue: WatchEvent[] = [];
  private head = 0;
  private waiters: Array<(ready: boolean) => void> = [];
  private endReason: WatchEnd | undefined;

  constructor(hub: WatchHub, init: WatchInit, options: WatchOptions, limit: number) {
    this.hub = hub;
    this.owner = init.owner;
    this.share = init.share;
    this.volume = init.volume;
    this.dirId = init.dirId;
    this.recursive = options.recursive === true;
    this.queueLimit = limit;
    this.filter = options.filter;
    this.readable = init.readable;
    this.path = init.dirPath;
    this.key = hub.keyOf(init.volume, init.dirPath);
    this.depth = splitPath(init.dirPath).length;
  }

  /** The watched directory's current share path (it follows renames). */
  get dir(): string {
    return this.path;
  }

  /** Events waiting to be taken. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Why the watch ended; undefined while it runs. */
  get ended(): WatchEnd | undefined {
    return this.endReason;
  }

  /** Up to `max` queued events, oldest first, without waiting ([] when none). */
  take(max = Infinity): WatchEvent[] {
    const out: WatchEvent[] = [];
    while (out.length < max && this.head < this.queue.length) {
      const e = this.queue[this.head++]!;
      if (e.kind === 'overflow') {
        out.push(e);
        continue;
      }
      // Checked again at delivery, with the principal as it is now.
      const seen = this.admit(e);
      if (seen !== undefined) out.push(seen);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /**
   * Resolves true once an event is queued, false when the watch has ended with nothing queued or
   * `signal` aborts.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    if (this.queued > 0) return Promise.resolve(true);
    if (this.endReason !== undefined || signal?.aborted === true) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((f) => f !== done);
        resolve(false);
      };
      const done = (ready: boolean): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(ready);
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WatchEvent, void, undefined> {
    try {
      for (;;) {
        const [e] = this.take(1);
        if (e !== undefined) yield e;
        else if (!(await this.wait())) return;
      }
    } finally {
      this.close();
    }
  }

  close(): void {
    this.end('closed');
  }

  /** @internal Ends the watch; a removed directory's queued events stay deliverable. */
  end(reason: WatchEnd): void {
    if (reason !== 'removed') {
      this.queue = [];
      this.head = 0;
    }
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    this.hub.remove(this);
    bySession.get(this.owner)?.delete(this);
    this.wake();
  }

  /** @internal Does the path with this key lie in the watched scope? */
  covers(key: string): boolean {
    if (!this.recursive) return key !== '/' && parentKey(key) === this.key;
    if (key === this.key) return false;
    return this.key === '/' ? key !== '/' : key.startsWith(this.key + '/');
  }

  /** @internal A VFS change event that may concern this watch (keys precomputed by the hub). */
  offer(ev: ChangeEvent, key: string, oldKey: string | undefined): void {
    const inNew = this.covers(key);
    const inOld = oldKey !== undefined && this.covers(oldKey);
    let c: WatchChange;
    if (ev.kind === 'rename' && inOld && inNew) {
      c = { kind: 'rename', path: ev.path, name: this.rel(ev.path), oldPath: ev.oldPath!, oldName: this.rel(ev.oldPath!), id: ev.id, type: ev.type, change: ev.change };
    } else if (ev.kind === 'rename' && inOld) {
      c = { kind: 'delete', path: ev.oldPath!, name: this.rel(ev.oldPath!), id: ev.id, type: ev.type, change: 0n };
    } else if (inNew) {
      c = { kind: ev.kind === 'rename' ? 'create' : ev.kind, path: ev.path, name: this.rel(ev.path), id: ev.id, type: ev.type, change: ev.change };
    } else {
      return;
    }
    const seen = this.admit(c);
    if (seen !== undefined) this.push(seen);
  }

  /** @internal Changes were lost (backend watcher): the consumer must re-read. */
  overflow(): void {
    if (this.endReason !== undefined) return;
    this.queue = [OVERFLOW];
    this.head = 0;
    this.overflows++;
    this.wake();
  }

  /** @internal The directory (or an ancestor) was renamed: it is now at `path`. */
  moved(path: string, key: string): void {
    this.path = path;
    this.key = key;
    this.depth = splitPath(path).length;
  }

  private rel(path: string): string {
    return splitPath(path).slice(this.depth).join('/');
  }

  /** The ACL and the filter: the change as this principal may see it, or undefined. */
  private admit(c: WatchChange): WatchChange | undefined {
    let out = c;
    if (c.kind === 'rename') {
      const n = this.readable(c.path);
      const o = this.readable(c.oldPath!);
      if (!n && !o) return undefined;
      if (!o) out = { kind: 'create', path: c.path, name: c.name, id: c.id, type: c.type, change: c.change };
      else if (!n) out = { kind: 'delete', path: c.oldPath!, name: c.oldName!, id: c.id, type: c.type, change: 0n };
    } else if (!this.readable(c.path)) {
      return undefined;
    }
    if (this.filter !== undefined) {
      const want = this.filter[out.kind];
      if (want === undefined || want === false) return undefined;
      if (want !== true && !want.includes(out.type)) return undefined;
    }
    return out;
  }

  private push(e: WatchChange): void {
    if (this.endReason !== undefined) return;
    if (this.queued >= this.queueLimit) {
      // The marker replaces everything queued; the re-read it asks for covers this event too.
      if (!(this.queued === 1 && this.queue[this.head] === OVERFLOW)) this.overflow();
      return;
    }
    this.queue.push(e);
    this.wake();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.queued > 0;
    const waiters = this.waiters;
    this.waiters = [];
    for (const f of waiters) f(ready);
  }
}

/** One backend watcher, shared by the watches of one directory and mode. */
interface OutsideWatcher {
  refs: number;
  watcher: BackendWatcher | undefined;
  closed: boolean;
  ready: Promise<void>;
  lostLogged: boolean;
}

/** The watches of one volume (share), indexed by directory key. */
class VolumeWatches {
  readonly name: string;
  readonly caseSensitive: boolean;
  /** Whether the backend reports outside changes (capabilities.watch). */
  readonly outsideCapable: boolean;
  readonly all = new Set<Watch>();
  readonly direct = new Map<string, Set<Watch>>();
  readonly subtree = new Map<string, Set<Watch>>();
  readonly byDirId = new Map<FileId, Set<Watch>>();
  readonly outside = new Map<string, OutsideWatcher>();
  /** Path key -> change value, file id and type of the last event there: tells echoes of Portico's own changes (and the type of a file gone before its echo was looked at). */
  readonly recent = new LRUCache<string, { change: bigint; id: FileId; type: NodeType }>({ max: RECENT_PATHS });
  /** Id -> whether its last event was a create or a delete: a second report of either is dropped. */
  readonly lastBirthOrDeath = new LRUCache<FileId, 'create' | 'delete'>({ max: RECENT_IDS });
  /** Outside paths to look at -> found only by a walk (BackendWatchListener.change). */
  readonly pending = new Map<string, boolean>();
  draining = false;
  limitLogged = false;

  constructor(name: string, caseSensitive: boolean, outsideCapable: boolean) {
    this.name = name;
    this.caseSensitive = caseSensitive;
    this.outsideCapable = outsideCapable;
  }

  key(path: string): string {
    return nameKey(path.normalize('NFC'), this.caseSensitive);
  }

  index(w: Watch): void {
    this.all.add(w);
    addTo(w.recursive ? this.subtree : this.direct, w.key, w);
    addTo(this.byDirId, w.dirId, w);
  }

  unindex(w: Watch): void {
    this.all.delete(w);
    removeFrom(w.recursive ? this.subtree : this.direct, w.key, w);
    removeFrom(this.byDirId, w.dirId, w);
  }

  /** Watches an event at `key` may concern: its parent's direct watches, its ancestors' recursive ones. */
  collect(key: string, out: Set<Watch>): void {
    if (key === '/') return;
    let k = parentKey(key);
    const direct = this.direct.get(k);
    if (direct !== undefined) for (const w of direct) out.add(w);
    if (this.subtree.size === 0) return;
    for (;;) {
      const rec = this.subtree.get(k);
      if (rec !== undefined) for (const w of rec) out.add(w);
      if (k === '/') return;
      k = parentKey(k);
    }
  }
}

function addTo<K>(m: Map<K, Set<Watch>>, k: K, w: Watch): void {
  let s = m.get(k);
  if (s === undefined) m.set(k, (s = new Set()));
  s.add(w);
}

function removeFrom<K>(m: Map<K, Set<Watch>>, k: K, w: Watch): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(w);
  if (s.size === 0) m.delete(k);
}

/** The watches of one Vfs: one listener on its change stream, dispatch, backend watchers. */
class WatchHub {
  private readonly vfs: Vfs;
  private readonly logger: Logger | undefined;
  private readonly volumes = new Map<string, VolumeWatches>();
  private listening = false;
  private readonly listener = (ev: ChangeEvent): void => {
    // Called inside VFS operations: a failure here must never fail the operation that changed.
    try {
      this.dispatch(ev);
    } catch (e) {
      this.logger?.error({ err: e, volume: ev.volume, path: ev.path }, 'change watch dispatch failed');
    }
  };

  constructor(vfs: Vfs, logger: Logger | undefined) {
    this.vfs = vfs;
    this.logger = logger;
  }

  keyOf(volume: string, path: string): string {
    return this.volumeOf(volume).key(path);
  }

  private volumeOf(volume: string): VolumeWatches {
    let vw = this.volumes.get(volume);
    if (vw === undefined) {
      const v = this.vfs.volume(volume);
      vw = new VolumeWatches(volume, v.caseSensitive, v.backend.capabilities.watch === true);
      this.volumes.set(volume, vw);
    }
    return vw;
  }

  async add(w: Watch): Promise<void> {
    const vw = this.volumeOf(w.volume);
    vw.index(w);
    if (!this.listening) {
      this.vfs.events.on('change', this.listener);
      this.listening = true;
    }
    await this.acquire(vw, w);
  }

  remove(w: Watch): void {
    const vw = this.volumes.get(w.volume);
    if (vw === undefined || !vw.all.has(w)) return;
    vw.unindex(w);
    this.release(vw, w);
    if (vw.all.size === 0) {
      vw.pending.clear();
      this.volumes.delete(vw.name);
    }
    if (this.volumes.size === 0 && this.listening) {
      this.vfs.events.off('change', this.listener);
      this.listening = false;
    }
  }

  private dispatch(ev: ChangeEvent): void {
    const vw = this.volumes.get(ev.volume);
    if (vw === undefined) return;
    const key = vw.key(ev.path);
    if (vw.outside.size > 0) {
      vw.recent.set(key, { change: ev.change, id: ev.id, type: ev.type });
      // A Portico create (or delete) whose echo was looked at before the VFS recorded it (a slow
      // backend call under load) was reported from the outside first: the second report is dropped.
      if (ev.kind === 'create' || ev.kind === 'delete') {
        if (vw.lastBirthOrDeath.get(ev.id) === ev.kind) return;
        vw.lastBirthOrDeath.set(ev.id, ev.kind);
      }
    }
    const oldKey = ev.oldPath !== undefined ? vw.key(ev.oldPath) : undefined;
    const targets = new Set<Watch>();
    vw.collect(key, targets);
    if (oldKey !== undefined) vw.collect(oldKey, targets);
    for (const w of targets) w.offer(ev, key, oldKey);
    if (ev.kind === 'delete') this.removed(vw, ev, key);
    else if (ev.kind === 'rename' && ev.exchange !== undefined) {
      if (ev.exchange === 1) this.exchanged(vw, oldKey!, ev.oldPath!, key, ev.path);
    } else if (ev.kind === 'rename' && ev.type === 'dir') this.renamed(vw, ev, key, oldKey!);
  }

  /**
   * Two names were exchanged (ChangeEvent.exchange): watches at or below either now watch the same
   * place below the other, all moved in one pass (two renames one after the other would move the
   * first side's watches back with the second, and end the second's as if replaced).
   */
  private exchanged(vw: VolumeWatches, aKey: string, aPath: string, bKey: string, bPath: string): void {
    for (const w of [...vw.all]) {
      const inA = isSameOrDescendant(w.key, aKey);
      if (!inA && !isSameOrDescendant(w.key, bKey)) continue;
      const [fromPath, toPath] = inA ? [aPath, bPath] : [bPath, aPath];
      const path = splitPath(w.path).slice(splitPath(fromPath).length).reduce((p, s) => joinPath(p, s), toPath);
      vw.unindex(w);
      this.release(vw, w);
      w.moved(path, vw.key(path));
      vw.index(w);
      void this.acquire(vw, w);
    }
  }

  /** A watched directory, or one above it, was removed: those watches end. */
  private removed(vw: VolumeWatches, ev: ChangeEvent, key: string): void {
    const ended = new Set<Watch>(vw.byDirId.get(ev.id));
    if (ev.type === 'dir') for (const w of vw.all) if (isSameOrDescendant(w.key, key)) ended.add(w);
    for (const w of ended) w.end('removed');
  }

  /** Watches follow their directory (by id) through renames of it or of an ancestor. */
  private renamed(vw: VolumeWatches, ev: ChangeEvent, key: string, oldKey: string): void {
    const cut = splitPath(ev.oldPath!).length;
    for (const w of [...vw.all]) {
      if (w.dirId !== ev.id && !isSameOrDescendant(w.key, oldKey)) {
        // A directory renamed over the watched (empty) one replaced it: its id is gone.
        if (w.key === key) w.end('removed');
        continue;
      }
      const path = splitPath(w.path).slice(cut).reduce((p, s) => joinPath(p, s), ev.path);
      vw.unindex(w);
      this.release(vw, w);
      w.moved(path, vw.key(path));
      vw.index(w);
      void this.acquire(vw, w);
    }
  }

  // ---------------------------------------------------------------- outside changes

  private async acquire(vw: VolumeWatches, w: Watch): Promise<void> {
    if (!vw.outsideCapable) return;
    const okey = (w.recursive ? 'r' : 'd') + w.key;
    let entry = vw.outside.get(okey);
    if (entry === undefined) {
      if (vw.outside.size >= MAX_OUTSIDE_WATCHERS) {
        if (!vw.limitLogged) {
          vw.limitLogged = true;
          this.logger?.warn({ share: vw.name, limit: MAX_OUTSIDE_WATCHERS }, 'change watches: outside-change watcher limit reached; further watches see changes made through Portico only');
        }
        return;
      }
      const created: OutsideWatcher = { refs: 0, watcher: undefined, closed: false, ready: Promise.resolve(), lostLogged: false };
      created.ready = this.vfs
        .watchOutside(vw.name, w.path, w.recursive, {
          change: (path, found) => this.outsideChange(vw, path, found === true),
          lost: (reason) => this.outsideLost(vw, okey, created, reason),
        })
        .then(
          (watcher) => {
            if (created.closed) watcher?.close();
            else created.watcher = watcher;
          },
          (e: unknown) => this.logger?.warn({ err: e, share: vw.name, dir: w.path }, 'change watches: cannot watch for outside changes'),
        );
      vw.outside.set(okey, (entry = created));
    }
    entry.refs++;
    w.outsideKey = okey;
    await entry.ready;
  }

  private release(vw: VolumeWatches, w: Watch): void {
    const okey = w.outsideKey;
    if (okey === undefined) return;
    w.outsideKey = undefined;
    const entry = vw.outside.get(okey);
    if (entry === undefined || --entry.refs > 0) return;
    entry.closed = true;
    entry.watcher?.close();
    vw.outside.delete(okey);
  }

  private outsideChange(vw: VolumeWatches, path: string, found: boolean): void {
    if (this.volumes.get(vw.name) !== vw) return;
    if (vw.pending.size >= MAX_OUTSIDE_PENDING) {
      vw.pending.clear();
      this.logger?.warn({ share: vw.name }, 'change watches: too many outside changes at once; watches overflow');
      for (const w of vw.all) if (w.outsideKey !== undefined) w.overflow();
      return;
    }
    // A path reported as changed and as found is a change.
    if (!found || !vw.pending.has(path)) vw.pending.set(path, found);
    if (!vw.draining) void this.drain(vw);
  }

  /** Looks at reported paths one at a time: a path reported twice meanwhile is looked at once. */
  private async drain(vw: VolumeWatches): Promise<void> {
    vw.draining = true;
    const own = (path: string, change: bigint): boolean => vw.recent.get(vw.key(path))?.change === change;
    // The type the last Portico event at the path gave that file: an echo looked at after the file
    // is gone again (mkdir then rmdir, under load) is reported as a delete, and an empty directory
    // the store knows no members of must not become a file's delete (smbtorture smb2.notify.tree's
    // FILE_NAME-only watches counted one: 2 runs of 8 at load 33-37).
    const lastType = (path: string, id: FileId): NodeType | undefined => {
      const r = vw.recent.get(vw.key(path));
      return r?.id === id ? r.type : undefined;
    };
    try {
      while (vw.pending.size > 0 && this.volumes.get(vw.name) === vw) {
        const [path, found] = vw.pending.entries().next().value!;
        vw.pending.delete(path);
        try {
          await this.vfs.noticeOutside(vw.name, path, own, found, lastType);
        } catch (e) {
          this.logger?.debug({ err: e, share: vw.name, path }, 'change watches: outside change not reported');
        }
      }
    } finally {
      vw.draining = false;
    }
  }

  private outsideLost(vw: VolumeWatches, okey: string, entry: OutsideWatcher, reason: string): void {
    if (!entry.lostLogged) {
      entry.lostLogged = true;
      this.logger?.warn({ share: vw.name, reason }, 'change watches: outside changes were missed; watches overflow');
    }
    for (const w of vw.all) if (w.outsideKey === okey) w.overflow();
  }
}
