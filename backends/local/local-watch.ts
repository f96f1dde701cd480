/**
 * Changes made to a local share's directory by others than Portico (a shell, rsync, another
 * program on the host), for change watches (Backend.watch; src/session/watch.ts).
 *
 * One non-recursive `fs.watch` (one inotify watch) per directory. Node's own `recursive: true` is
 * not used on Linux: it adds an inotify watch per *file* as well, walks the tree synchronously
 * with a stat per entry on the event loop, and reports every existing entry as a change when it
 * starts, so a recursive watch on a large share would block the gateway and flood its watches. A
 * recursive watcher here walks directories only (readdir with file types, no stat), adding a watch
 * to each before reading it, so nothing created meanwhile is missed; a directory that appears
 * later is watched and walked the same way, and its members are reported (they are new).
 *
 * Bounded: one backend's watchers together hold at most `maxDirs` directory watches (default
 * 4096; inotify's per-user limit is often 8192); past it, or when the kernel refuses one (ENOSPC),
 * the watcher reports `lost` once and the rest of its tree is not watched. Changes are coalesced
 * over `coalesceMs` (default 50 ms): a write, its chmod and its close are one report of the path;
 * at most `maxPending` (default 8192) paths wait, more in one window are reported as `lost`.
 *
 * Never follows symbolic links: directories are found by their directory entries' type (a link to
 * a directory is a link), so a walk cannot leave the share. A directory swapped for a link between
 * its listing and its watch would be watched through the link; its events name paths inside the
 * share, which the VFS stats through the confined backend (ELOOP), so nothing outside is reported.
 * On network file systems inotify sees only changes made on this machine.
 */
import { lstatSync, watch as fsWatch, promises as fsp, type Dirent, type FSWatcher } from 'node:fs';
import type { InlineIo } from './inline-io.ts';
import type { BackendWatcher, BackendWatchListener } from '../../src/vfs/backend.ts';
import { VfsError, toVfsError } from '../../src/vfs/errors.ts';
import { baseName, isSameOrDescendant, joinPath } from '../../src/vfs/path.ts';

export interface LocalWatchOptions {
  /** Directory watches one backend holds at once, all its watchers together (default 4096). */
  maxDirs?: number;
  /** How long changes are gathered before they are reported (default 50 ms). */
  coalesceMs?: number;
  /** Paths one watcher gathers in a window before it reports `lost` instead (default 8192). */
  maxPending?: number;
}

/** Every watcher of one local backend, and their shared budget of directory watches. */
export class LocalWatches {
  private readonly root: string;
  private readonly reservedPrefix: string;
  readonly maxDirs: number;
  readonly coalesceMs: number;
  readonly maxPending: number;
  private dirs = 0;
  private readonly watchers = new Set<TreeWatcher>();
  /** The backend's inline-call breaker (inline-io.ts): recheck's lstat is made inline when it allows. */
  readonly io: InlineIo | undefined;

  constructor(root: string, reservedPrefix: string, options: LocalWatchOptions = {}, io?: InlineIo) {
    this.root = root;
    this.reservedPrefix = reservedPrefix;
    this.io = io;
    this.maxDirs = options.maxDirs ?? 4096;
    this.coalesceMs = options.coalesceMs ?? 50;
    this.maxPending = options.maxPending ?? 8192;
  }

  /** Directory watches held now (diagnostics and tests). */
  get watchedDirs(): number {
    return this.dirs;
  }

  /**
   * Watches `dir` (a verified, symlink-free directory of the share). Resolves once every directory
   * of a recursive watch is watched (at most maxDirs of them), so what changes afterwards is seen.
   */
  async watch(dir: string, recursive: boolean, listener: BackendWatchListener): Promise<BackendWatcher> {
    const w = new TreeWatcher(this, dir, recursive, listener);
    this.watchers.add(w);
    try {
      await w.ready;
    } catch (e) {
      w.close();
      throw toVfsError(e, dir);
    }
    return w;
  }

  closeAll(): void {
    for (const w of [...this.watchers]) w.close();
  }

  abs(path: string): string {
    if (path === '/') return this.root;
    return this.root === '/' ? path : this.root + path;
  }

  reserved(name: string): boolean {
    return name.startsWith(this.reservedPrefix);
  }

  take(): boolean {
    if (this.dirs >= this.maxDirs) return false;
    this.dirs++;
    return true;
  }

  give(): void {
    this.dirs--;
  }

  ended(w: TreeWatcher): void {
    this.watchers.delete(w);
  }
}

class TreeWatcher implements BackendWatcher {
  private readonly set: LocalWatches;
  private readonly recursive: boolean;
  private readonly listener: BackendWatchListener;
  /** Backend path -> its inotify watch. */
  private readonly dirs = new Map<string, FSWatcher>();
  /** Paths to report -> found only by a walk (see BackendWatchListener.change). */
  private pending = new Map<string, boolean>();
  /** Names reported with 'rename' in this window: directories may have appeared or gone. */
  private appearedOrGone = new Set<string>();
  private lostReason: string | undefined;
  private limitReported = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly ready: Promise<void>;

  constructor(set: LocalWatches, dir: string, recursive: boolean, listener: BackendWatchListener) {
    this.set = set;
    this.recursive = recursive;
    this.listener = listener;
    // The top directory must be watchable: its failure is the caller's (ENOENT, ENOTDIR, ENOSPC).
    if (!set.take()) throw new VfsError('ENOSPC', `the local watch limit of ${set.maxDirs} directories is reached`, { path: dir });
    try {
      this.dirs.set(dir, this.open(dir));
    } catch (e) {
      set.give();
      throw toVfsError(e, dir);
    }
    this.ready = recursive ? this.walk(dir, false) : Promise.resolve();
  }

  private open(dir: string): FSWatcher {
    // persistent: false: a watch never keeps the process alive on its own.
    const w = fsWatch(this.set.abs(dir), { persistent: false }, (type, name) => this.event(dir, type, name));
    // A watched directory that goes away ends its watch with an error on some kernels: it is
    // dropped; its parent's watch (or the VFS) reports the removal itself.
    w.on('error', () => this.drop(dir));
    return w;
  }

  private event(dir: string, type: string, name: string | Buffer | null): void {
    if (this.closed) return;
    if (name === null) {
      this.lose('a change without a name');
      return;
    }
    const n = typeof name === 'string' ? name : name.toString('utf8');
    // Atomic-write temp files are the backend's own: their final rename is reported by name.
    if (this.set.reserved(n)) return;
    const path = joinPath(dir, n);
    this.report(path, false);
    if (this.recursive && type === 'rename') this.appearedOrGone.add(path);
    // The watched directory itself moved or went (inotify's IN_MOVE_SELF, IN_DELETE_SELF): node
    // names it by its own base name, like a child of that name. Both are looked at.
    if (n === baseName(dir) && dir !== '/') this.report(dir, false);
  }

  private report(path: string, found: boolean): void {
    const was = this.pending.get(path);
    if (was !== undefined) {
      if (was && !found) this.pending.set(path, false);
    } else if (this.pending.size >= this.set.maxPending) {
      this.lose(`more than ${this.set.maxPending} changes within ${this.set.coalesceMs} ms`);
    } else {
      this.pending.set(path, found);
    }
    this.schedule();
  }

  private lose(reason: string): void {
    this.pending.clear();
    this.lostReason = reason;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), this.set.coalesceMs).unref();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.closed) return;
    const pending = this.pending;
    const dirsToCheck = this.appearedOrGone;
    const lost = this.lostReason;
    this.pending = new Map();
    this.appearedOrGone = new Set();
    this.lostReason = undefined;
    if (lost !== undefined) this.listener.lost(lost);
    for (const [p, found] of pending) this.listener.change(p, found);
    for (const p of dirsToCheck) void this.recheck(p);
  }

  /** A name appeared or went away below a recursive watch: watch a new directory, drop a gone one. */
  private async recheck(path: string): Promise<void> {
    let isDir = false;
    const abs = this.set.abs(path);
    try {
      // Inline when the backend's breaker allows (a local file system answering from its caches):
      // every name a loop of creates and unlinks touches comes here, Portico's own included, and a
      // thread-pool lstat cost ~50 µs of the event loop's time each (8% of a FUSE small-file
      // cycle's JS time), an inline one a few µs.
      const io = this.set.io;
      isDir = io?.ok === true ? io.run(() => lstatSync(abs, { throwIfNoEntry: false }))?.isDirectory() === true : (await fsp.lstat(abs)).isDirectory();
    } catch {
      // gone
    }
    if (this.closed) return;
    if (!isDir) {
      this.dropTree(path);
    } else if (!this.dirs.has(path) && this.add(path)) {
      // New to this watcher: made or moved in (by anyone), so what it holds may be new too.
      await this.walk(path, true);
    }
  }

  /** Watches one more directory; false when the budget is spent or it cannot be watched. */
  private add(dir: string): boolean {
    if (!this.set.take()) {
      if (!this.limitReported) {
        this.limitReported = true;
        this.listener.lost(`the local watch limit of ${this.set.maxDirs} directories is reached: changes below ${dir} are not seen`);
      }
      return false;
    }
    try {
      this.dirs.set(dir, this.open(dir));
      return true;
    } catch (e) {
      this.set.give();
      const code = (e as NodeJS.ErrnoException).code;
      // Gone again already, or not ours to read: nothing to watch there. ENOSPC: the kernel's limit.
      if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EACCES') this.listener.lost(`cannot watch ${dir}: ${code ?? (e as Error).message}`);
      return false;
    }
  }

  /**
   * Watches every directory below `top` (already watched), breadth first; `report` reports each
   * member found (for a directory that is itself new).
   */
  private async walk(top: string, report: boolean): Promise<void> {
    const queue = [top];
    for (let i = 0; i < queue.length && !this.closed; i++) {
      const dir = queue[i]!;
      let entries: Dirent[];
      try {
        entries = await fsp.readdir(this.set.abs(dir), { withFileTypes: true });
      } catch {
        continue;
      }
      if (this.closed) return;
      for (const e of entries) {
        if (this.set.reserved(e.name)) continue;
        const path = joinPath(dir, e.name);
        if (report) this.report(path, true);
        // Dirent types come from the directory entry (lstat-like): a link is never a directory here.
        if (e.isDirectory() && !this.dirs.has(path)) {
          if (!this.add(path)) {
            if (this.limitReported) return;
            continue;
          }
          queue.push(path);
        }
      }
      // The queue holds the walk's frontier only: done entries are released as it goes.
      if (i > 1024) {
        queue.splice(0, i + 1);
        i = -1;
      }
    }
  }

  private drop(dir: string): void {
    const w = this.dirs.get(dir);
    if (w === undefined) return;
    w.close();
    this.dirs.delete(dir);
    this.set.give();
  }

  private dropTree(path: string): void {
    // Only a watched directory has watched directories below it (a walk adds parents first).
    if (!this.dirs.has(path)) return;
    for (const dir of [...this.dirs.keys()]) if (isSameOrDescendant(dir, path)) this.drop(dir);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    for (const dir of [...this.dirs.keys()]) this.drop(dir);
    this.set.ended(this);
  }
}
