/**
 * Read-only descriptors of the local backend kept open for reuse.
 *
 * Why: a read-only open of a small file cost five system calls — openat, readlink of
 * /proc/self/fd/N (confinement), statx, pread, close — and the readlink alone (the kernel builds
 * the path from the dentries) cost more than the open. NFS READ, SMB and WebDAV GETs of a hot
 * file open it again and again. A descriptor reused while the file is unchanged costs one fstat
 * (which the caller's stat of the open file reuses) and the pread.
 *
 * When a cached descriptor may be reused: it was opened and confined (local-backend.ts
 * openConfinedFd) at most `ttlMs` ago, and an fstat of it now shows the same ctime, mtime, size
 * and link count as at the open, and a link count above zero. What that catches, outside Portico:
 * - a write, truncate, chmod or chown of the file (its ctime moves; a write that lands within the
 *   same timestamp tick still changes the size, or the mtime at the next tick);
 * - a delete, and a rename of another file over it (the link count drops: to zero when it was the
 *   only link);
 * - a rename of the file itself (ctime moves on Linux file systems).
 * What only the TTL bounds: a directory above the file renamed or replaced (the file's inode does
 * not change), and a rename of the file itself within the ctime tick of its previous change (on
 * kernels without fine-grained timestamps for a file whose ctime was read since). The TTL is the
 * attribute cache's default (1 s: `attrCacheMs`), which already bounds how long outside changes
 * that only a stat shows go unseen through Portico.
 * Portico's own changes drop the descriptor at once: the backend forgets a path on every change it
 * makes there (write opens, publishes, renames, deletes, links, metadata changes) and on every
 * invalidation the VFS passes down (outside changes seen by a watch, `portico cache refresh`).
 *
 * Confinement stays what it was: a descriptor enters the cache only after the open's confinement
 * check, and a file moved outside the root is a rename of it (ctime) or of a directory above it
 * (TTL).
 *
 * A descriptor is closed only once it has left the cache (evicted, expired, forgotten) AND its last
 * user (an open LocalFile) released it, so no number is ever closed while a read may still use it.
 * Bounded: at most `max` descriptors (LRU); expired ones are swept once per TTL while any is held,
 * so a file deleted outside does not keep its disk space for long.
 */
import { fstatSync, type BigIntStats } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { isSameOrDescendant } from '../../src/vfs/path.ts';

/** Default bound of cached descriptors per backend. */
export const FD_CACHE_MAX = 256;
/** Default TTL of a cached descriptor, ms (as the VFS attribute cache's default). */
export const FD_CACHE_TTL_MS = 1000;

/** One descriptor shared by the cache and the files reading through it. */
export class SharedFd {
  readonly fd: number;
  /** performance.now() at the open (when it was confined). */
  readonly openedAt: number;
  readonly ctimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly size: bigint;
  readonly nlink: bigint;
  private users = 0;
  private cached = true;
  private readonly closeFd: (fd: number) => void;

  constructor(fd: number, st: BigIntStats, openedAt: number, closeFd: (fd: number) => void) {
    this.fd = fd;
    this.openedAt = openedAt;
    this.ctimeNs = st.ctimeNs;
    this.mtimeNs = st.mtimeNs;
    this.size = st.size;
    this.nlink = st.nlink;
    this.closeFd = closeFd;
  }

  /** Another file reads through it. */
  acquire(): void {
    this.users++;
  }

  /** A file that read through it closed (or was collected unclosed). */
  release(): void {
    if (--this.users === 0 && !this.cached) this.closeFd(this.fd);
  }

  /** It left the cache: closed now when nobody uses it, else by the last release. */
  uncache(): void {
    if (!this.cached) return;
    this.cached = false;
    if (this.users === 0) this.closeFd(this.fd);
  }

  /** Whether the file behind it is as it was at the open (see the file comment). */
  unchanged(st: BigIntStats): boolean {
    return st.nlink > 0n && st.nlink === this.nlink && st.ctimeNs === this.ctimeNs && st.mtimeNs === this.mtimeNs && st.size === this.size;
  }
}

export interface FdCacheOptions {
  /** Descriptors kept at most (LRU). */
  max?: number;
  ttlMs?: number;
  /** Closes a descriptor that left the cache and its last user. */
  closeFd: (fd: number) => void;
}

export class ReadFdCache {
  private readonly entries: LRUCache<string, SharedFd>;
  private readonly ttlMs: number;
  private readonly closeFd: (fd: number) => void;
  private sweeper: NodeJS.Timeout | undefined;
  /** Reuses, misses of a held descriptor (changed, expired) and descriptors added (tests, diagnostics). */
  hits = 0;
  stale = 0;
  added = 0;

  constructor(o: FdCacheOptions) {
    this.ttlMs = o.ttlMs ?? FD_CACHE_TTL_MS;
    this.closeFd = o.closeFd;
    this.entries = new LRUCache<string, SharedFd>({ max: Math.max(1, o.max ?? FD_CACHE_MAX), dispose: (e) => e.uncache() });
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached descriptor of `path` with one more user and its fstat now, when it may be reused;
   * else undefined (a stale one is dropped).
   */
  take(path: string): { shared: SharedFd; st: BigIntStats } | undefined {
    const e = this.entries.get(path);
    if (e === undefined) return undefined;
    let st: BigIntStats | undefined;
    if (performance.now() - e.openedAt <= this.ttlMs) {
      try {
        st = fstatSync(e.fd, { bigint: true });
      } catch {
        st = undefined;
      }
    }
    if (st === undefined || !e.unchanged(st)) {
      this.stale++;
      this.entries.delete(path);
      return undefined;
    }
    this.hits++;
    e.acquire();
    return { shared: e, st };
  }

  /**
   * Keeps `fd`, just opened read-only and confined at `openedAt`, of the regular file `path` with
   * stat `st`; returns it with its first user (the caller).
   */
  add(path: string, fd: number, st: BigIntStats, openedAt: number): SharedFd {
    const e = new SharedFd(fd, st, openedAt, this.closeFd);
    e.acquire();
    this.entries.set(path, e);
    this.added++;
    this.sweeper ??= setInterval(() => this.sweep(), this.ttlMs).unref();
    return e;
  }

  /** Drops the descriptor of `path` (Portico changed the file, or something was seen to change it). */
  forget(path: string): void {
    if (this.entries.size > 0) this.entries.delete(path);
  }

  /** Drops the descriptors of `path` and of everything below it (a directory moved or went). */
  forgetBelow(path: string): void {
    if (this.entries.size === 0) return;
    for (const key of [...this.entries.keys()]) if (isSameOrDescendant(key, path)) this.entries.delete(key);
  }

  /** Drops every descriptor (backend closing). */
  clear(): void {
    this.entries.clear();
    this.stopSweeper();
  }

  /** Drops the expired descriptors; stops once none is held. */
  private sweep(): void {
    const now = performance.now();
    for (const [key, e] of [...this.entries.entries()]) if (now - e.openedAt > this.ttlMs) this.entries.delete(key);
    if (this.entries.size === 0) this.stopSweeper();
  }

  private stopSweeper(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
