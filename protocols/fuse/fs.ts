/**
 * FUSE semantics over the session's by-id operations (as protocols/nfs/ops does): each kernel
 * request the addon hands over becomes one or two Session calls, and its answer one fuse_reply_*.
 * The session decides every right (the mount runs as one principal; `default_permissions` is off,
 * so the kernel does not decide instead), the VFS does the work, errors pass `errnoOf` once.
 *
 * - Inodes are file ids (inodes.ts). With several shares the mount's root (inode 1) is a
 *   read-only directory of the shares the principal may see; with one (`--share`) inode 1 is that
 *   share's root.
 * - Requests run concurrently: the handler starts a promise per request and returns; replies are
 *   sent when each finishes, in any order.
 * - Open files are core handles in a table keyed by the FUSE file handle. flush (every close(2))
 *   flushes the handle, so an object-store share publishes at close and another protocol reads the
 *   data then; release closes it.
 * - Kernel caches: attributes and entries are kept `attrTimeout`/`entryTimeout` seconds; the page
 *   cache is kept across opens (keep_cache) while the file's change value is what the last open
 *   saw. A change made through another protocol (or outside, on local disks) reaches a recursive
 *   change watch on each share (src/session/watch.ts) and invalidates the kernel's inode and entry
 *   at once (fuse_lowlevel_notify_inval_*), so the mount does not show stale data for a timeout.
 *   Changes this mount made itself are not echoed back as invalidations (the kernel knows them).
 */
import { constants } from 'node:os';
import type { Logger } from 'pino';
import type { Principal } from '../../src/auth/authenticator.ts';
import type { Session } from '../../src/session/session.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import type { Watch, WatchEvent } from '../../src/session/watch.ts';
import { isVfsError, VfsError } from '../../src/vfs/errors.ts';
import type { FileAttr, OpenOptions, SetAttr } from '../../src/vfs/types.ts';
import type { AllocateOp } from '../../src/vfs/backend.ts';
import { SHARE_ALL } from '../../src/vfs/types.ts';
import type { Handle } from '../../src/vfs/vfs.ts';
import type { LockRange } from '../../src/locks/lock-manager.ts';
import { parentPath, splitPath } from '../../src/vfs/path.ts';
import { errnoOf } from './errors.ts';
import { InodeTable, ROOT_INO, type Inode } from './inodes.ts';
import { ATTR_LEN, OP, type NativeSession } from './native.ts';

const E = constants.errno;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFMT = 0o170000;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const O_EXCL = 0o200;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
// FUSE_SET_ATTR_* (fuse_lowlevel.h)
const SET_MODE = 1 << 0;
const SET_UID = 1 << 1;
const SET_GID = 1 << 2;
const SET_SIZE = 1 << 3;
const SET_ATIME = 1 << 4;
const SET_MTIME = 1 << 5;
const SET_ATIME_NOW = 1 << 7;
const SET_MTIME_NOW = 1 << 8;
// fcntl lock types and flock(2) operations (Linux).
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const WHOLE: LockRange = { start: 0n, end: 0xffff_ffff_ffff_ffffn };
// lseek(2) whence values the kernel forwards (the others it answers itself).
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const NS = 1_000_000_000n;
/** Pooled read buffers: FUSE reads are at most 1 MiB (max_pages 256). */
const READ_BUF = 1 << 20;
/**
 * Most bytes one copy_file_range request moves (the kernel asks for up to 4 GiB; a shorter answer
 * is a partial copy the caller continues, as cp and os.copy_file_range do), so one request does
 * not hold its system call for minutes.
 */
const COPY_MAX = 64 * 1024 * 1024;
/** fallocate(2) mode flags (linux/falloc.h) the mount passes to the core (Session.allocate). */
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;
/** The second invalidation after a change event (see follow()). */
const REINVALIDATE_MS = 300;

export interface FuseFsOptions {
  sessions: SessionManager;
  principal: Principal;
  /** Shares shown as subdirectories of the mount's root. */
  shares: string[];
  /** The share that is the mount's root (`--share NAME`); `shares` is then ignored. */
  single?: string;
  /** Seconds the kernel keeps attributes and names (FUSE attr_timeout / entry_timeout). */
  attrTimeout: number;
  entryTimeout: number;
  /** Invalidate the kernel's caches on changes from other protocols (default true). */
  invalidate?: boolean;
  logger?: Logger;
}

/**
 * A share's change-watch reader: events taken and finished so far, and own marks to end once the
 * first `after` events are finished (in order of `after`).
 */
interface Follower {
  w: Watch;
  taken: number;
  finished: number;
  later: Array<{ n: Inode; after: number }>;
}

function typeBits(a: FileAttr): number {
  return a.type === 'dir' ? S_IFDIR : a.type === 'symlink' ? S_IFLNK : S_IFREG;
}

/** FileAttr -> the addon's attribute layout (fuse_addon.cc FillStat), at `at` in `out`. */
function putAttr(out: Float64Array, at: number, ino: number, a: FileAttr): void {
  out[at] = ino;
  out[at + 1] = typeBits(a) | (a.mode & 0o7777);
  out[at + 2] = a.nlink;
  out[at + 3] = a.uid;
  out[at + 4] = a.gid;
  out[at + 5] = a.type === 'symlink' && a.target !== undefined ? Buffer.byteLength(a.target) : a.size;
  out[at + 6] = Math.ceil(a.allocated / 512);
  out[at + 7] = Number(a.atimeNs / NS);
  out[at + 8] = Number(a.atimeNs % NS);
  out[at + 9] = Number(a.mtimeNs / NS);
  out[at + 10] = Number(a.mtimeNs % NS);
  out[at + 11] = Number(a.ctimeNs / NS);
  out[at + 12] = Number(a.ctimeNs % NS);
  out[at + 13] = 4096;
}

export class FuseFs {
  readonly inodes = new InodeTable();
  private readonly session: Session;
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  private native: NativeSession | undefined;
  private slabs: Buffer[] = [];
  private readonly readBufs: Buffer[] = [];
  private readonly watches: Watch[] = [];
  /** The change watch's reader of each share (follow()). */
  private readonly followers = new Map<string, Follower>();
  /**
   * RELEASEs being answered: the program's close(2) has returned (the kernel sends RELEASE after
   * it, asynchronously), but the core handle is still closing. A rename waits for them all, a
   * setattr for those of its inode (below). Value: the inode.
   */
  private readonly releasing = new Map<Promise<void>, number>();
  /**
   * WRITEs the addon answered from the thread pool (writeFd) whose core write is not complete yet
   * (the change event follows the answer); other requests wait for them (handler).
   */
  private readonly writing = new Set<Promise<void>>();
  /** Blocking lock waits in flight by request id: a FUSE_INTERRUPT of one aborts its wait. */
  private readonly waits = new Map<number, AbortController>();
  private readonly o: FuseFsOptions;
  private readonly rootAttr: FileAttr;
  /** Requests answered, by kind (tests and the bench read it). */
  readonly counts = new Map<number, number>();
  /** Invalidations sent to the kernel (tests). */
  invalidations = 0;

  constructor(o: FuseFsOptions) {
    this.o = o;
    this.session = o.sessions.openSession({ principal: o.principal, protocol: 'fuse', clientAddress: 'fuse' });
    const now = BigInt(Date.now()) * 1_000_000n;
    this.rootAttr = {
      id: 0n, type: 'dir', size: 0, allocated: 0, mode: 0o555, uid: 0, gid: 0, nlink: 2,
      atimeNs: now, mtimeNs: now, ctimeNs: now, birthtimeNs: now, change: 1n, winAttributes: 0,
    };
  }

  private get multi(): boolean {
    return this.o.single === undefined;
  }

  /** Resolves share roots (inode 1 for a single share) and starts the change watches. */
  async start(native: NativeSession): Promise<void> {
    this.native = native;
    this.slabs = native.slabs();
    if (this.o.single !== undefined) {
      const a = await this.session.getattr(this.o.single, '/');
      this.inodes.intern(this.o.single, a.id, true, ROOT_INO);
    }
    if (this.o.invalidate === false) return;
    for (const share of this.o.single !== undefined ? [this.o.single] : this.o.shares) {
      try {
        const w = await this.session.watch(share, '/', { recursive: true });
        this.watches.push(w);
        void this.follow(share, w);
      } catch (e) {
        this.o.logger?.warn({ share, err: e }, 'fuse: no change watch on the share; the kernel cache follows other protocols only after its timeouts');
      }
    }
  }

  async close(): Promise<void> {
    for (const w of this.watches.splice(0)) w.close();
    for (const h of this.handles.values()) await this.session.close(h).catch(() => undefined);
    this.handles.clear();
    await this.session.end();
  }

  // ---------------------------------------------------------------- invalidation

  private async follow(share: string, w: Watch): Promise<void> {
    const f: Follower = { w, taken: 0, finished: 0, later: [] };
    this.followers.set(share, f);
    try {
      for (;;) {
        // Counted in queue entries (take() skips those the principal may no longer see).
        const before = w.queued;
        const [ev] = w.take(1);
        const consumed = before - w.queued;
        f.taken += consumed;
        if (ev === undefined) {
          f.finished += consumed;
          this.settle(f);
          if (!(await w.wait())) return;
          continue;
        }
        try {
          await this.followOne(share, ev);
        } finally {
          // An overflow replaced the queue: the entries counted before it are gone, so all marks end
          // (at worst one of our own changes comes back as a needless invalidation).
          f.finished = ev.kind === 'overflow' ? Math.max(f.finished + consumed, f.later.at(-1)?.after ?? 0) : f.finished + consumed;
          this.settle(f);
        }
      }
    } catch (e) {
      this.o.logger?.warn({ share, err: e }, 'fuse: change watch ended');
    } finally {
      this.followers.delete(share);
      f.finished = Infinity;
      this.settle(f);
      w.close();
    }
  }

  /** Ends the own marks of requests whose events have all been looked at now (see done()). */
  private settle(f: Follower): void {
    let i = 0;
    for (; i < f.later.length && f.later[i]!.after <= f.finished; i++) {
      const n = f.later[i]!.n;
      n.ownOps = (n.ownOps ?? 1) - 1;
    }
    if (i > 0) f.later.splice(0, i);
  }

  /**
   * A request ended: its own marks end too — but only once the change watch has looked at every
   * event queued so far. The core queues a change's event during the call that makes it, while the
   * watch's reader may still be busy with earlier events (each can await a lookup); a mark dropped
   * at the reply would let the request's own events through as foreign (measured: all 1,000 creates
   * of a small-file loop came back as entry invalidations, each costing a lookup here and another
   * LOOKUP from the kernel).
   */
  private done(touched: Inode[]): void {
    for (const n of touched) {
      const f = this.followers.get(n.share);
      // The events this request queued are among the first `after` the reader takes.
      const after = f === undefined ? 0 : f.taken + f.w.queued;
      if (f !== undefined && after > f.finished) f.later.push({ n, after });
      else n.ownOps = (n.ownOps ?? 1) - 1;
    }
  }

  private async followOne(share: string, ev: WatchEvent): Promise<void> {
    {
      {
        const native = this.native;
        if (!native) return;
        if (ev.kind === 'overflow') return;
        const node = this.inodes.find(share, ev.id);
        if (node && (node.ownOps ?? 0) > 0) return;
        if (node) {
          native.invalInode(node.ino);
          this.invalidations++;
          // Once more a little later: on object-store shares an event can come before the new
          // state is what a lookup reads (a publish still landing), and a kernel that asked in
          // between would keep the old attributes for a whole timeout (seen: 1 run in 6 on s3rver).
          const ino = node.ino;
          setTimeout(() => this.native?.invalInode(ino), REINVALIDATE_MS).unref();
        }
        if (ev.kind === 'create' || ev.kind === 'delete' || ev.kind === 'rename') {
          for (const p of ev.kind === 'rename' && ev.oldPath !== undefined ? [ev.oldPath, ev.path] : [ev.path]) {
            const parent = await this.inoOfPath(share, parentPath(p));
            if (parent === undefined) continue;
            if ((this.inodes.get(parent)?.ownOps ?? 0) > 0) continue;
            native.invalEntry(parent, splitPath(p).at(-1) ?? '');
            this.invalidations++;
          }
        }
      }
    }
  }

  /** The kernel-known inode of a share path, if any (no reference made). */
  private async inoOfPath(share: string, path: string): Promise<number | undefined> {
    if (path === '/' && !this.multi) return ROOT_INO;
    try {
      const a = await this.session.getattr(share, path);
      return this.inodes.find(share, a.id)?.ino;
    } catch {
      return undefined;
    }
  }

  /**
   * Marks a file as changed by this mount until the request ends: change events about it that
   * arrive meanwhile are this request's own, which the kernel knows (no invalidation). Decision: no
   * time window after the request — an event that arrives later costs one needless invalidation,
   * while a window would hide another protocol's change made just after ours (stale for a timeout).
   */
  private own(n: Inode | undefined, touched: Inode[]): void {
    if (!n) return;
    n.ownOps = (n.ownOps ?? 0) + 1;
    touched.push(n);
  }

  /** RELEASE's work: the flock of the open file description, the core handle, the cache mark. */
  private async release(s: Session, h: Handle, ino: number, lastFlock: number, lockOwner: string, touched: Inode[]): Promise<void> {
    // The last close of an open file description releases its flock.
    if (lastFlock && s.anyLocks) await s.unlockHandle(h, WHOLE, 'posix', `flock:${lockOwner}`).catch(() => undefined);
    const n = this.inodes.get(ino);
    if (h.access.write) this.own(n, touched);
    await s.close(h);
    // What the page cache now holds is this close's content: keep it at the next open.
    if (n && h.access.write) n.openChange = (await s.getattrById(n.share, n.id).catch(() => undefined))?.change;
  }

  // ---------------------------------------------------------------- dispatch

  /** The addon's request handler (fuse_addon.cc CallJs). */
  readonly handler = (op: number, id: number, ino: number, name: string, name2: string, n1: number, n2: number, n3: number, data: Buffer | Float64Array | undefined): void => {
    if (op === OP.EXIT) return;
    if (op === OP.FORGET) {
      this.inodes.forget(ino, n1);
      return;
    }
    if (op === OP.INTERRUPT) {
      // The waiter's process got a signal (killed, or a handler runs): its lock request leaves
      // the lock manager's queue (ECANCELED, answered EINTR), so nothing is granted to it later.
      // An interrupt of a request that is not waiting (answered meanwhile) changes nothing.
      this.waits.get(id)?.abort();
      return;
    }
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    const native = this.native!;
    const touched: Inode[] = [];
    let p: Promise<void>;
    try {
      // WRITEs answered from the thread pool (below, WRITE) complete in the core after their answer:
      // a request that may show their effect (close, fsync, stat, a rename, an unlink...) starts after
      // them, so that what it returns — a close(2) above all, after which other protocols read the
      // file — comes after the writes it follows are done everywhere. READs need not wait (the bytes
      // are in the file); nor do WRITEs (the kernel orders them).
      if (this.writing.size > 0 && op !== OP.WRITE && op !== OP.READ) {
        p = Promise.all(this.writing).then(() => this.run(native, touched, op, id, ino, name, name2, n1, n2, n3, data));
      } else {
        p = this.run(native, touched, op, id, ino, name, name2, n1, n2, n3, data);
      }
    } catch (e) {
      p = Promise.reject(e);
    }
    p.finally(() => this.done(touched)).catch((e: unknown) => {
      if (!isVfsError(e)) this.o.logger?.error({ err: e, op }, 'fuse: request failed below the protocol');
      try {
        native.replyErr(id, errnoOf(e));
      } catch {
        // already answered (the error came from a reply call) or unmounted
      }
    });
  };

  private node(ino: number): Inode {
    const n = this.inodes.get(ino);
    if (!n) throw new VfsError('ESTALE', `unknown inode ${ino}`);
    return n;
  }

  /** A directory inode inside a share (not the multi-share root). */
  private dirNode(ino: number): Inode {
    if (ino === ROOT_INO && this.multi) throw new VfsError('EACCES', 'the mount root lists the shares and cannot be changed');
    return this.node(ino);
  }

  private fh(n: number): Handle {
    const h = this.handles.get(n);
    if (!h) throw new VfsError('EBADF');
    return h;
  }

  private entry(id: number, n: Inode, a: FileAttr): void {
    const buf = new Float64Array(ATTR_LEN);
    putAttr(buf, 0, n.ino, a);
    this.native!.replyEntry(id, buf, this.o.attrTimeout, this.o.entryTimeout);
  }

  private attrReply(id: number, ino: number, a: FileAttr): void {
    const buf = new Float64Array(ATTR_LEN);
    putAttr(buf, 0, ino, a);
    this.native!.replyAttr(id, buf, this.o.attrTimeout);
  }

  private async run(native: NativeSession, touched: Inode[], op: number, id: number, ino: number, name: string, name2: string, n1: number, n2: number, n3: number, data: Buffer | Float64Array | undefined): Promise<void> {
    const s = this.session;
    switch (op) {
      case OP.LOOKUP: {
        if (ino === ROOT_INO && this.multi) {
          if (!this.o.shares.includes(name)) throw new VfsError('ENOENT');
          const a = await s.getattr(name, '/');
          this.entry(id, this.inodes.intern(name, a.id, true), a);
          return;
        }
        const dir = this.node(ino);
        const a = await s.lookup(dir.share, dir.id, name);
        this.entry(id, this.inodes.intern(dir.share, a.id, true), a);
        return;
      }
      case OP.GETATTR: {
        if (ino === ROOT_INO && this.multi) return this.attrReply(id, ino, this.rootAttr);
        const n = this.node(ino);
        const h = n3 >= 0 ? this.handles.get(n3) : undefined;
        this.attrReply(id, ino, h ? await s.fstat(h) : await s.getattrById(n.share, n.id));
        return;
      }
      case OP.SETATTR: {
        const n = this.dirNode(ino);
        const set = setAttrOf(n1, data as Float64Array);
        this.own(n, touched);
        // The file's RELEASEs the kernel sent before this SETATTR (close(2) then utimes/chmod, as
        // cp -p, rsync and tar do) finish first. Until then the core still sees a writer: with
        // async write-back the pending upload is not run first (a file open for writing is left
        // alone), the new mtime goes to the store's object, and the RELEASE then journals the
        // stage with the close time, which getattr shows and the upload later writes over the
        // set mtime (scenario "mtime set by the client is kept" through FUSE on the async S3
        // share failed under load; test/fuse/ops.test.ts "an mtime set right after close is kept":
        // 5 of 15 files lost it at load 30 before this wait).
        if (this.releasing.size > 0) {
          const mine = [...this.releasing].filter(([, i]) => i === ino).map(([p]) => p);
          if (mine.length > 0) await Promise.allSettled(mine);
        }
        const h = n3 >= 0 ? this.handles.get(n3) : undefined;
        const a = h && set.size !== undefined ? await s.fsetattr(h, set) : await s.setattrById(n.share, n.id, set);
        this.attrReply(id, ino, a);
        return;
      }
      case OP.READLINK: {
        const n = this.node(ino);
        native.replyReadlink(id, await s.readlinkById(n.share, n.id));
        return;
      }
      case OP.MKNOD: {
        if ((n1 & S_IFMT) !== S_IFREG && (n1 & S_IFMT) !== 0) throw new VfsError('EPERM', 'only regular files can be made on a Portico mount');
        const dir = this.dirNode(ino);
        this.own(dir, touched);
        const h = await s.openIn(dir.share, dir.id, name, { ...this.openOpts(2), disposition: 'create', mode: n1 & 0o7777 });
        try {
          const a = await s.attrAtOpen(h);
          this.entry(id, this.inodes.intern(dir.share, a.id, true), a);
        } finally {
          await s.close(h);
        }
        return;
      }
      case OP.MKDIR: {
        const dir = this.dirNode(ino);
        this.own(dir, touched);
        const a = await s.mkdirIn(dir.share, dir.id, name, n1 & 0o7777);
        const n = this.inodes.intern(dir.share, a.id, true);
        this.own(n, touched);
        this.entry(id, n, a);
        return;
      }
      case OP.UNLINK:
      case OP.RMDIR: {
        const dir = this.dirNode(ino);
        const a = await s.lookup(dir.share, dir.id, name);
        if (op === OP.UNLINK && a.type === 'dir') throw new VfsError('EISDIR');
        if (op === OP.RMDIR && a.type !== 'dir') throw new VfsError('ENOTDIR');
        this.own(dir, touched);
        this.own(this.inodes.find(dir.share, a.id), touched);
        await s.removeIn(dir.share, dir.id, name);
        native.replyErr(id, 0);
        return;
      }
      case OP.SYMLINK: {
        const dir = this.dirNode(ino);
        this.own(dir, touched);
        const a = await s.symlinkIn(dir.share, dir.id, name, name2);
        this.entry(id, this.inodes.intern(dir.share, a.id, true), a);
        return;
      }
      case OP.RENAME: {
        const from = this.dirNode(ino);
        const to = this.dirNode(n1);
        if (from.share !== to.share) throw new VfsError('EXDEV');
        // RENAME_EXCHANGE swaps the two names (the core's exchange: atomic where the share's backend
        // can, ENOTSUP elsewhere, which renameat2 reports as EINVAL: "not supported by the file system").
        if (n2 & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || n2 === (RENAME_NOREPLACE | RENAME_EXCHANGE)) throw new VfsError('EINVAL');
        this.own(from, touched);
        this.own(to, touched);
        // Files closed just before: the kernel queued their RELEASEs ahead of this RENAME, so they
        // are in `releasing` now. The core refuses to move a directory (on stores without atomic
        // rename) while a file inside is open for writing, and a program that wrote a file,
        // closed it and renames its directory must not get EBUSY from a handle it no longer has.
        if (this.releasing.size > 0) await Promise.allSettled([...this.releasing.keys()]);
        const moved = await s.lookup(from.share, from.id, name).catch(() => undefined);
        if (moved) this.own(this.inodes.find(from.share, moved.id), touched);
        if (n2 & RENAME_EXCHANGE) {
          const other = await s.lookup(to.share, to.id, name2).catch(() => undefined);
          if (other) this.own(this.inodes.find(to.share, other.id), touched);
          try {
            await s.renameIn(from.share, from.id, name, to.id, name2, { exchange: true });
          } catch (e) {
            if (isVfsError(e, 'ENOTSUP')) throw new VfsError('EINVAL', 'RENAME_EXCHANGE: this share cannot exchange names atomically');
            throw e;
          }
          native.replyErr(id, 0);
          return;
        }
        await s.renameIn(from.share, from.id, name, to.id, name2, { replace: (n2 & RENAME_NOREPLACE) === 0 });
        native.replyErr(id, 0);
        return;
      }
      case OP.LINK: {
        const n = this.node(ino);
        const dir = this.dirNode(n1);
        if (n.share !== dir.share) throw new VfsError('EXDEV');
        this.own(dir, touched);
        this.own(n, touched);
        const a = await s.linkIn(dir.share, n.id, dir.id, name);
        this.entry(id, this.inodes.intern(dir.share, a.id, true), a);
        return;
      }
      case OP.OPEN: {
        const n = this.node(ino);
        // A RELEASE of this file the kernel sent before this OPEN (close(2), then open again) ends
        // first: its content is what the page cache holds, and keep_cache compares with it.
        if (this.releasing.size > 0) {
          const mine = [...this.releasing].filter(([, i]) => i === ino).map(([p]) => p);
          if (mine.length > 0) await Promise.allSettled(mine);
        }
        const acc = n1 & O_ACCMODE;
        const opts = this.openOpts(acc);
        if (n1 & O_TRUNC && acc !== 0) {
          opts.disposition = 'truncate';
          this.own(n, touched);
        }
        const h = await s.openById(n.share, n.id, opts);
        const fh = this.nextFh++;
        this.handles.set(fh, h);
        native.replyOpen(id, fh, await this.keepCache(n, h));
        return;
      }
      case OP.CREATE: {
        const dir = this.dirNode(ino);
        const acc = n2 & O_ACCMODE;
        const disposition = n2 & O_EXCL ? 'create' : n2 & O_TRUNC ? 'createOrTruncate' : 'openOrCreate';
        this.own(dir, touched);
        const h = await s.openIn(dir.share, dir.id, name, { ...this.openOpts(acc), disposition, mode: n1 & 0o7777 });
        const fh = this.nextFh++;
        this.handles.set(fh, h);
        const a = await s.attrAtOpen(h);
        const n = this.inodes.intern(dir.share, a.id, true);
        this.own(n, touched);
        n.openChange = a.change;
        const buf = new Float64Array(ATTR_LEN);
        putAttr(buf, 0, n.ino, a);
        native.replyCreate(id, buf, this.o.attrTimeout, this.o.entryTimeout, fh, 0);
        return;
      }
      case OP.READ: {
        const h = this.fh(n3);
        // From the store's descriptor where the handle's bytes are all in it (a local share; no
        // write stage): the kernel splices them to /dev/fuse, they never enter Portico's memory.
        if (native.replyFd !== undefined && (await s.readVia(h, n2, n1, (fd, off, len) => native.replyFd!(id, fd, off, len))) !== undefined) return;
        // Into a pooled buffer (a new Buffer per read made V8 collect garbage often, as writes
        // did); fuse_reply_buf copies it to the kernel at once, so it is free again after.
        const buf = n1 <= READ_BUF ? (this.readBufs.pop() ?? Buffer.allocUnsafeSlow(READ_BUF)) : Buffer.allocUnsafeSlow(n1);
        const got = await s.readInto(h, n2, buf.subarray(0, n1));
        native.replyBuf(id, buf, got);
        // Back to the pool only after a read that completed (a failed one may still be filled late).
        if (buf.length === READ_BUF && this.readBufs.length < 16) this.readBufs.push(buf);
        return;
      }
      case OP.WRITE: {
        const h = this.fh(n3);
        const n = this.inodes.get(ino);
        this.own(n, touched);
        // The bytes are in a slab (name2: "index@offset", n1: the length) that is reused once this
        // request is answered, so the write completes before the reply; or in their own Buffer.
        let bytes = data as Buffer;
        if (name2 !== '') {
          const at = name2.indexOf('@');
          const off = at < 0 ? 0 : Number(name2.slice(at + 1));
          bytes = this.slabs[Number(at < 0 ? name2 : name2.slice(0, at))]!.subarray(off, off + n1);
          if (native.writeFd !== undefined) {
            // On a local share the addon writes them from the slab to the file's descriptor and
            // answers the kernel from the thread pool (Session.writeVia, after the core's checks);
            // elsewhere the core writes them and the answer is given here.
            // The writer has its answer before the core's change event (attribute cache, change
            // value, watches): until then the write is in `writing`, which other requests wait for.
            let finish = undefined as (() => void) | undefined;
            try {
              const count = await s.writeVia(h, n2, bytes, (fd, offset) => {
                const w: Promise<void> = new Promise((r) => {
                  finish = () => {
                    this.writing.delete(w);
                    r();
                  };
                });
                this.writing.add(w);
                return native.writeFd!(id, fd, offset);
              });
              if (finish === undefined) native.replyWrite(id, count);
            } finally {
              finish?.();
            }
            return;
          }
        }
        const count = await s.write(h, n2, bytes);
        native.replyWrite(id, count);
        return;
      }
      case OP.FLUSH: {
        const h = this.handles.get(n3);
        if (h && h.access.write) {
          this.own(this.inodes.get(ino), touched);
          // What another protocol needs to read the bytes (a staged write is published), not an
          // fsync: close(2) does not make data durable, FSYNC (below) does.
          await s.flush(h, { durable: false });
        }
        // close(2) releases the closing process's POSIX locks on the file (fcntl semantics).
        if (h && s.anyLocks) await s.unlockHandle(h, WHOLE, 'posix', `posix:${name}`).catch(() => undefined);
        native.replyErr(id, 0);
        return;
      }
      case OP.GETLK:
      case OP.SETLK: {
        const h = this.fh(n3);
        const v = data as Float64Array;
        const type = v[0]!;
        const start = BigInt(Math.max(0, v[1]!));
        const range: LockRange = { start, end: v[2]! > 0 ? start + BigInt(v[2]!) : WHOLE.end };
        const ownerId = `posix:${name}`;
        if (op === OP.GETLK) {
          const n = this.node(ino);
          const c = await s.testLock(n.share, n.id, { kind: type === F_WRLCK ? 'exclusive' : 'shared', style: 'posix', range, ownerId });
          if (!c) return native.replyLock(id, F_UNLCK, 0, 0);
          const len = c.range.end >= WHOLE.end ? 0 : Number(c.range.end - c.range.start);
          native.replyLock(id, c.kind === 'exclusive' ? F_WRLCK : F_RDLCK, Number(c.range.start), len);
          return;
        }
        if (type === F_UNLCK) {
          await s.unlockHandle(h, range, 'posix', ownerId).catch((e: unknown) => {
            if (!(isVfsError(e) && e.code === 'ENOTLOCKED')) throw e;
          });
        } else {
          // F_SETLKW waits in the lock manager until granted or interrupted (FUSE_INTERRUPT).
          await this.lockWait(id, v[3] !== 0, (wait) => s.lockHandle(h, { kind: type === F_WRLCK ? 'exclusive' : 'shared', style: 'posix', range, ownerId, ...wait }));
        }
        native.replyErr(id, 0);
        return;
      }
      case OP.FLOCK: {
        // flock(2) locks are whole-file locks of the open file description, in the same manager.
        const h = this.fh(n3);
        const ownerId = `flock:${name}`;
        if (n1 & LOCK_UN) {
          await s.unlockHandle(h, WHOLE, 'posix', ownerId).catch(() => undefined);
        } else {
          const kind = n1 & LOCK_EX ? 'exclusive' : n1 & LOCK_SH ? 'shared' : undefined;
          if (!kind) throw new VfsError('EINVAL');
          await this.lockWait(id, (n1 & LOCK_NB) === 0, (wait) => s.lockHandle(h, { kind, style: 'posix', range: WHOLE, ownerId, ...wait }));
        }
        native.replyErr(id, 0);
        return;
      }
      case OP.RELEASE: {
        const h = this.handles.get(n3);
        this.handles.delete(n3);
        if (h) {
          // Registered before the first await: a request the kernel sent after this one sees it.
          const closing = this.release(s, h, ino, n2, name, touched);
          this.releasing.set(closing, ino);
          try {
            await closing;
          } finally {
            this.releasing.delete(closing);
          }
        }
        native.replyErr(id, 0);
        return;
      }
      case OP.FSYNC: {
        const h = this.handles.get(n3);
        const n = this.node(ino);
        if (h) await s.flush(h);
        else await s.flushFile(n.share, n.id);
        native.replyErr(id, 0);
        return;
      }
      case OP.READDIR:
      case OP.READDIRPLUS:
        return this.readdir(native, op === OP.READDIRPLUS, id, ino, n1, n2);
      case OP.STATFS: {
        const share = ino === ROOT_INO && this.multi ? this.o.shares[0] : this.node(ino).share;
        const v = new Float64Array(9);
        if (share !== undefined) {
          const st = await s.statfs(share);
          const bs = st.blockSize > 0 ? st.blockSize : 4096;
          v.set([bs, bs, Math.floor(st.totalBytes / bs), Math.floor(st.freeBytes / bs), Math.floor(st.availableBytes / bs), st.totalFiles, st.freeFiles, st.freeFiles, 255]);
        }
        native.replyStatfs(id, v);
        return;
      }
      case OP.GETXATTR: {
        const n = this.xattrNode(ino);
        const key = userXattr(name, E.ENODATA);
        native.replyXattr(id, await s.getXattrById(n.share, n.id, key));
        return;
      }
      case OP.LISTXATTR: {
        if (ino === ROOT_INO && this.multi) return native.replyXattr(id, Buffer.alloc(0));
        const n = this.node(ino);
        const list = await s.listXattrsById(n.share, n.id);
        native.replyXattr(id, Buffer.from(list.map((x) => `user.${x.name}\0`).join('')));
        return;
      }
      case OP.SETXATTR: {
        const n = this.xattrNode(ino);
        const key = userXattr(name, E.EOPNOTSUPP);
        const mode = n1 & XATTR_CREATE ? 'create' : n1 & XATTR_REPLACE ? 'replace' : 'either';
        this.own(n, touched);
        await s.setXattrById(n.share, n.id, key, data as Buffer, { mode });
        native.replyErr(id, 0);
        return;
      }
      case OP.REMOVEXATTR: {
        const n = this.xattrNode(ino);
        const key = userXattr(name, E.ENODATA);
        this.own(n, touched);
        await s.removeXattrById(n.share, n.id, key);
        native.replyErr(id, 0);
        return;
      }
      case OP.LSEEK: {
        // SEEK_DATA / SEEK_HOLE through the core (Session.seekData): the store's hole map on a local
        // share with its native helper; elsewhere no holes (as NFS SEEK answers,
        // protocols/nfs/ops/seek.ts): data below the size, the one hole at the end. The size is the
        // handle's in the core, not the kernel's cached one.
        if (n2 !== SEEK_DATA && n2 !== SEEK_HOLE) throw new VfsError('EINVAL');
        if (n1 < 0) throw new VfsError('EINVAL');
        const off = await s.seekData(this.fh(n3), n1, n2 === SEEK_DATA ? 'data' : 'hole');
        if (off === undefined) return native.replyErr(id, E.ENXIO);
        native.replyLseek(id, off);
        return;
      }
      case OP.COPY_FILE_RANGE: {
        // Inside the store where it can (Session.copyRange: copy_file_range(2) on a local share with
        // its native helper; the bytes never leave the kernel). Elsewhere (object stores, two file
        // systems, staged bytes) Portico reads from the source handle and writes to the
        // destination's, so the bytes do not cross the kernel twice. Handles of two shares work too.
        const v = data as Float64Array;
        const [offIn, fhIn, inoOut, offOut, fhOut, len, flags] = [v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!];
        if (flags !== 0) throw new VfsError('EINVAL', 'copy_file_range flags');
        const src = this.fh(fhIn);
        const dst = this.fh(fhOut);
        if (!src.access.read || !dst.access.write) throw new VfsError('EBADF');
        this.own(this.inodes.get(inoOut), touched);
        const want = Math.min(len, COPY_MAX);
        const inStore = await s.copyRange(src, offIn, dst, offOut, want).catch((e: unknown) => {
          if (isVfsError(e, 'ENOTSUP')) return undefined;
          throw e;
        });
        if (inStore !== undefined) return native.replyWrite(id, inStore);
        const buf = this.readBufs.pop() ?? Buffer.allocUnsafeSlow(READ_BUF);
        let done = 0;
        while (done < want) {
          const got = await s.readInto(src, offIn + done, buf.subarray(0, Math.min(READ_BUF, want - done)));
          if (got === 0) break;
          const put = await s.write(dst, offOut + done, buf.subarray(0, got));
          done += put;
          if (put < got) break;
        }
        if (this.readBufs.length < 16) this.readBufs.push(buf);
        native.replyWrite(id, done);
        return;
      }
      case OP.FALLOCATE: {
        // Through the core (Session.allocate). Mode 0 reserves [offset, offset+length) and grows the
        // size to its end; KEEP_SIZE reserves only; PUNCH_HOLE|KEEP_SIZE frees the range; ZERO_RANGE
        // (with or without KEEP_SIZE) makes it read as zeros. Reservation, punching and zeroing need
        // an allocation call in the store (a local share with its native helper): elsewhere mode 0
        // only grows the size (nothing reserved), KEEP_SIZE does nothing, punching and zeroing are
        // EOPNOTSUPP. Collapsing and inserting ranges, and PUNCH_HOLE without KEEP_SIZE: EOPNOTSUPP.
        const keep = (n1 & FALLOC_FL_KEEP_SIZE) !== 0;
        const rest = n1 & ~FALLOC_FL_KEEP_SIZE;
        let op: AllocateOp;
        if (rest === 0) op = 'allocate';
        else if (rest === FALLOC_FL_PUNCH_HOLE && keep) op = 'punch';
        else if (rest === FALLOC_FL_ZERO_RANGE) op = 'zero';
        else throw new VfsError('ENOTSUP', `fallocate mode ${n1}`);
        const v = data as Float64Array;
        const [offset, length] = [v[0]!, v[1]!];
        if (offset < 0 || length <= 0) throw new VfsError('EINVAL');
        const h = this.fh(n3);
        if (!h.access.write) throw new VfsError('EBADF');
        this.own(this.inodes.get(ino), touched);
        await s.allocate(h, op, offset, length, keep);
        native.replyErr(id, 0);
        return;
      }
      default:
        native.replyErr(id, E.ENOSYS);
    }
  }

  /**
   * A lock request that may wait (F_SETLKW, flock without LOCK_NB): the wait is cancellable by the
   * request's FUSE_INTERRUPT, with the abort signal SMB CANCEL uses for its waits (the lock manager
   * drops the waiter and rejects with ECANCELED, which answers EINTR).
   */
  private async lockWait<T>(id: number, wait: boolean, lock: (w: { wait?: { signal: AbortSignal } }) => Promise<T>): Promise<T> {
    if (!wait) return lock({});
    const ac = new AbortController();
    this.waits.set(id, ac);
    try {
      return await lock({ wait: { signal: ac.signal } });
    } finally {
      this.waits.delete(id);
    }
  }

  private xattrNode(ino: number): Inode {
    if (ino === ROOT_INO && this.multi) throw new VfsError('ENODATA');
    return this.node(ino);
  }

  private openOpts(acc: number): OpenOptions {
    // Share modes: a POSIX open denies nothing to others (Samba's local opens do the same).
    return {
      access: { read: acc !== 1, write: acc !== 0, delete: false },
      share: SHARE_ALL,
      owner: `fuse:${this.nextFh}`,
      expect: 'file',
    };
  }

  /** keep_cache when the file is as the last open of this mount saw it (FOPEN_KEEP_CACHE). */
  private async keepCache(n: Inode, h: Handle): Promise<number> {
    const a = await this.session.attrAtOpen(h).catch(() => undefined);
    const keep = a !== undefined && n.openChange !== undefined && n.openChange === a.change;
    if (a) n.openChange = a.change;
    return keep ? 1 : 0;
  }

  private async readdir(native: NativeSession, plus: boolean, id: number, ino: number, size: number, off: number): Promise<void> {
    const names: string[] = [];
    const attrs: FileAttr[] = [];
    const ids: bigint[] = [];
    const shares: string[] = [];
    const offs: number[] = [];
    if (ino === ROOT_INO && this.multi) {
      for (let i = off; i < this.o.shares.length; i++) {
        const share = this.o.shares[i]!;
        const a = await this.session.getattr(share, '/').catch(() => undefined);
        if (!a) continue;
        names.push(share);
        attrs.push(a);
        ids.push(a.id);
        shares.push(share);
        offs.push(i + 1);
      }
    } else {
      const dir = this.node(ino);
      // An entry takes 24 bytes + name (plain) or 152 + name (plus) in the kernel's buffer: ask
      // for about what fits; what does not is asked again from the last offset that did.
      const limit = Math.max(1, Math.ceil(size / (plus ? 170 : 40)));
      const page = await this.session.readdirById(dir.share, dir.id, { ...(off > 0 ? { cookie: BigInt(off) } : {}), limit });
      for (const e of page.entries) {
        names.push(e.name);
        attrs.push(e.attr);
        ids.push(e.attr.id);
        shares.push(dir.share);
        offs.push(Number(e.cookie));
      }
    }
    const buf = new Float64Array(names.length * ATTR_LEN);
    for (let i = 0; i < names.length; i++) {
      const num = plus ? (this.inodes.find(shares[i]!, ids[i]!)?.ino ?? this.inodes.intern(shares[i]!, ids[i]!, false).ino) : this.inodes.peek(shares[i]!, ids[i]!);
      putAttr(buf, i * ATTR_LEN, num, attrs[i]!);
    }
    const added = native.replyDir(id, plus, names, buf, Float64Array.from(offs), this.o.attrTimeout, this.o.entryTimeout);
    if (plus) {
      // The kernel holds a reference to each entry that fit; entries made for the rest get none.
      for (let i = 0; i < names.length; i++) {
        const n = this.inodes.find(shares[i]!, ids[i]!)!;
        if (i < added) n.lookups++;
        else if (n.lookups === 0) this.inodes.forget(n.ino, 0);
      }
    }
  }
}

/** FUSE setattr's mask and values -> the core's SetAttr. */
function setAttrOf(toSet: number, v: Float64Array): SetAttr {
  const set: SetAttr = {};
  if (toSet & SET_MODE) set.mode = v[0]! & 0o7777;
  if (toSet & SET_UID) set.uid = v[1]!;
  if (toSet & SET_GID) set.gid = v[2]!;
  if (toSet & SET_SIZE) set.size = v[3]!;
  const now = BigInt(Date.now()) * 1_000_000n;
  if (toSet & SET_ATIME_NOW) set.atimeNs = now;
  else if (toSet & SET_ATIME) set.atimeNs = BigInt(v[4]!) * NS + BigInt(v[5]!);
  if (toSet & SET_MTIME_NOW) set.mtimeNs = now;
  else if (toSet & SET_MTIME) set.mtimeNs = BigInt(v[6]!) * NS + BigInt(v[7]!);
  return set;
}

/** `user.NAME` -> NAME; other Linux namespaces are not kept (src/vfs/xattrs.ts). */
function userXattr(name: string, otherwise: number): string {
  if (name.startsWith('user.') && name.length > 5) return name.slice(5);
  throw new VfsError(otherwise === E.ENODATA ? 'ENODATA' : 'ENOTSUP', `xattr namespace of ${name} is not kept`);
}

