/**
 * Local directory backend.
 *
 * Confinement: a share path is mapped to `<realpath(root)><path>` and no symbolic link is ever
 * followed, anywhere in the path. Final components are opened with O_NOFOLLOW (or lstat'ed);
 * intermediate directories are checked with an lstat walk whose verified results are cached, so
 * hot paths pay no extra syscalls. Because something outside Portico may swap a directory for a
 * symlink after it was verified, every opened descriptor is also confined to the root: opened by
 * openat2 beneath the root's descriptor with no symbolic link allowed on the way (the native
 * helper's openBeneath, for the opens made inline), or else checked after the open (readlink of
 * /proc/self/fd/N); directory listings read through that confined descriptor.
 */
import {
  close as closeCb, closeSync, constants as C, existsSync, fchown as fchownCb, fchownSync, fdatasync as fdatasyncCb, fstatSync, fsync as fsyncCb, ftruncate, linkSync, lstatSync, mkdirSync,
  open as openCb, openSync, promises as fsp, readSync, readlinkSync, realpathSync, renameSync, statSync, statfsSync, unlinkSync, type BigIntStats,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import type {
  Backend, BackendCapabilities, BackendFile, BackendStat, BackendWatcher, BackendWatchListener, BackendWriter, FileOwner, ListOptions, ListPage,
  OpenFileOptions, SetMetadata, StatFs, WriterOptions,
} from '../../src/vfs/backend.ts';
import { toVfsError, VfsError } from '../../src/vfs/errors.ts';
import { baseName, isSameOrDescendant, joinPath, parentPath } from '../../src/vfs/path.ts';
import { applyMetaToFd, LocalFile, LocalWriter, nsToSeconds, readAt, toStat } from './local-file.ts';
import type { WriterHost } from './local-file.ts';
import { INLINE_BATCH, InlineIo, isLocalFileSystem, yieldToLoop } from './inline-io.ts';
import { NATIVE_FIELDS, decodeStatPage, lstatBatch } from './stat-batch.ts';
import { firstAfter } from '../paging.ts';
import { mapLimit } from '../../src/util/map-limit.ts';
import { LocalWatches, type LocalWatchOptions } from './local-watch.ts';
import { FD_CACHE_MAX, ReadFdCache } from './fd-cache.ts';
import { localNative, type LocalNative } from './native.ts';

/** Only root may give a file to another user; files this process makes are its own already. */
const PROCESS_UID = process.getuid?.() ?? -1;
const PROCESS_GID = process.getgid?.() ?? -1;
function needsChown(owner: FileOwner): boolean {
  return PROCESS_UID === 0 && (owner.uid !== PROCESS_UID || owner.gid !== PROCESS_GID);
}

/** Prefix of the hidden temp files createWriter() and copy() stage in the target directory. */
export const TEMP_PREFIX = '.portico-tmp-';

export interface LocalBackendOptions {
  /**
   * Durability of whole-file writes (WebDAV PUT, copies through the VFS writer). true (default):
   * a commit is acknowledged only once the data and the name are on stable storage — the temp
   * file is fdatasync'ed before the rename and the directory fsync'ed after it (concurrent commits
   * into one directory share that directory fsync). false: the commit returns after the rename and
   * the kernel writes back later (what nginx, Apache mod_dav and rclone do): much faster for small
   * files, but a power loss (not a process crash) can lose writes acknowledged in the last ~30 s or
   * leave them empty. Readers never see a partial file either way.
   */
  fsync?: boolean;
  /**
   * Lookups and small reads made with synchronous system calls while they complete in memory time,
   * with a breaker that falls back to the thread pool when they are slow (inline-io.ts). 'auto'
   * (default): on local file systems only; true: also on network/FUSE ones; false: never.
   */
  inlineIo?: boolean | 'auto';
  /** Limits of the watches of outside changes (local-watch.ts). */
  watch?: LocalWatchOptions;
  /**
   * Read-only descriptors kept open for reuse (fd-cache.ts), at most this many (default
   * FD_CACHE_MAX; 0: none).
   */
  readFdCache?: number;
  /**
   * The native helper (backends/local/native: renameat2, fallocate, SEEK_DATA/SEEK_HOLE,
   * copy_file_range): by default the built addon when it loads; null runs without it (the
   * capabilities it gives are then absent, as on a machine without the addon).
   */
  native?: LocalNative | null;
}

/** Directory fsyncs of one directory: commits queued for the next one, and whether one runs. */
interface DirSync {
  running: boolean;
  queued: Array<{ resolve: () => void; reject: (e: unknown) => void }>;
}

// O_NONBLOCK: opening a FIFO someone left in the share must not hang a worker thread; it has no
// effect on regular files.
const O_READ = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const NO_TARGETS: Array<number | string> = [];
const O_DIR = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const OS_ERRNO = osConstants.errno;
/** errno number -> its first name (EAGAIN, not EWOULDBLOCK; ENOTSUP, not EOPNOTSUPP). */
const ERRNO_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(OS_ERRNO)) if (!ERRNO_NAMES.has(v)) ERRNO_NAMES.set(v, k);

/** An fs-style error (code, errno, syscall) for a native call's -errno answer: toVfsError maps it as Node's. */
function errnoError(errno: number, path: string): Error {
  const code = ERRNO_NAMES.get(errno) ?? 'EIO';
  return Object.assign(new Error(`${code}: open '${path}'`), { code, errno: -errno, syscall: 'open' });
}

const LIST_STAT_CONCURRENCY = 64;
/**
 * A batch of INLINE_BATCH inline lstats slower than this counts as one slow call: ~150 µs a name
 * on average, far above memory speed (~5 µs), so the names came from the device.
 */
const INLINE_SLOW_BATCH_MS = 20;
/**
 * Directory timestamps tick coarsely (kernel jiffies, NFS seconds): a directory changed within this
 * window of being read may change again without a visible mtime/ctime change, so a fresh listing
 * does not trust a name cache taken in that window (the "racy git" problem).
 */
const RACY_WINDOW_NS = 2_000_000_000n;

interface NameCacheEntry {
  key: string;
  names: string[];
  racy: boolean;
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/**
 * ENOENT for a name that does not exist, without a stack trace: every PUT of a new file looks its
 * name up first, and capturing a stack for an expected miss was ~3% of a small PUT's CPU.
 */
function missing(path: string): VfsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new VfsError('ENOENT', undefined, { path });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Temp names: a random per-process part (two gateways on one directory never collide; O_EXCL would
 * refuse a collision anyway) and a counter. randomBytes per name cost ~10 µs of every PUT.
 */
const TEMP_PROCESS = randomBytes(6).toString('hex');
let tempCounter = 0;
function tempName(): string {
  return `${TEMP_PREFIX}${TEMP_PROCESS}-${(tempCounter++).toString(36)}`;
}

/** statfs f_type of ext2/3/4, xfs, btrfs, tmpfs, f2fs, zfs, bcachefs, overlayfs: ns file times from the kernel clock. */
const FINE_TIME_FS = new Set<number>([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0xf2f52010, 0x2fc12fc1, 0xca451a4e, 0x794c7630]);

function fileSystemType(dir: string): number {
  try {
    return Number(statfsSync(dir).type) >>> 0;
  } catch {
    return 0;
  }
}

export class LocalBackend implements Backend, WriterHost {
  readonly kind = 'local';
  readonly capabilities: BackendCapabilities = {
    atomicRename: true,
    serverSideCopy: true,
    randomWrites: true,
    emptyDirectories: true,
    caseSensitive: true,
    // utimes() takes seconds as a double: about µs resolution survives, not ns.
    timestampPrecisionNs: 1000,
    hardLinks: true,
    symlinks: true,
    sparseFiles: true,
    posixMetadata: true,
    birthTime: true,
    maxFileSize: Number.MAX_SAFE_INTEGER,
    maxNameBytes: 255,
    reservedPrefix: TEMP_PREFIX,
    // device:inode: a file keeps it through every change but an atomic replace (which the VFS announces).
    nativeIdentity: true,
    // Outside changes through inotify (local-watch.ts).
    watch: true,
    // Every LocalFile reads through one descriptor (lendDescriptor: the FUSE front-end splices from it).
    descriptorReads: true,
  };
  /** The native helper (native.ts), when loaded: exchange, allocation, hole map, range copy. */
  readonly native: LocalNative | undefined;
  /** Listings stat through the native helper (statNamesNative); false without it or without statx. */
  private nativeStats: boolean;
  /**
   * A descriptor of the root for the native readSmall's openat2 (opened at its first use, closed by
   * close(); -1 when it cannot be opened, or after close()). Decision: one descriptor per backend
   * for its life, because openat2 beneath it confines an open without the /proc readlink (~3 µs of
   * a small GET). If the root directory itself is renamed while the gateway runs, reads through it
   * keep finding the directory it was (every other path-based call resolves the root's path anew).
   */
  private rootDirFd: number | undefined;

  private rootFd(): number {
    if (this.rootDirFd !== undefined) return this.rootDirFd;
    try {
      this.rootDirFd = openSync(this.root, C.O_RDONLY | C.O_DIRECTORY);
    } catch {
      this.rootDirFd = -1;
    }
    return this.rootDirFd;
  }

  /** The native helper's openBeneath (openConfinedFd's inline opens, kernel-confined), when the helper has it. */
  private readonly openBeneath: LocalNative['openBeneath'];
  /** The native helper's readSmall (readSmallSync in one call), when the helper has it. */
  private readonly nativeReadSmall: LocalNative['readSmall'];
  /** readSmall's stat figures (one entry of decodeStatPage's layout), reused by every call. */
  private readonly readSmallStat = new ArrayBuffer(NATIVE_FIELDS * 8);
  /** Absolute, symlink-free path of the share root. */
  readonly root: string;
  private readonly rootPrefix: string;
  private readonly fsync: boolean;
  private readonly procFd: boolean;
  /** When synchronous lookups and small reads may be made (inline-io.ts). */
  readonly io: InlineIo;
  /** The breaker of inline small-file writes (temp create, first bytes, close, rename). */
  readonly wio: InlineIo;
  private readonly dirSyncs = new Map<string, DirSync>();
  /** Directory fsyncs made so far (diagnostics and tests: concurrent commits share them). */
  dirFsyncs = 0;
  /**
   * Share paths of directories verified to be real directories (with every ancestor). The TTL bounds
   * how long an outside swap of a verified directory for a symlink goes unnoticed by path-based
   * operations; opened descriptors are checked regardless.
   */
  private readonly verifiedDirs = new LRUCache<string, true>({ max: 2048, ttl: 2000, ttlResolution: 50 });
  /** Watches of outside changes, made at the first watch() (local-watch.ts). */
  private watches: LocalWatches | undefined;
  private readonly watchOptions: LocalWatchOptions;
  /** Read-only descriptors reused while their file is unchanged (fd-cache.ts); undefined: off. */
  readonly fdCache: ReadFdCache | undefined;
  /**
   * Counts the backend's forgetting of paths: an open that started before a change to its path
   * may have opened the file as it was, so its descriptor is cached only when nothing was
   * forgotten meanwhile.
   */
  private forgets = 0;
  private readonly nameCache = new LRUCache<string, NameCacheEntry>({
    max: 256,
    maxSize: 2_000_000,
    sizeCalculation: (e) => e.names.length + 1,
  });

  constructor(root: string, options: LocalBackendOptions = {}) {
    const abs = resolve(root);
    try {
      mkdirSync(abs, { recursive: true });
      this.root = realpathSync(abs);
      if (!statSync(this.root).isDirectory()) throw new VfsError('ENOTDIR', `share root ${abs} is not a directory`);
    } catch (e) {
      if (e instanceof VfsError) throw e;
      throw new VfsError(toVfsError(e).code, `cannot use ${abs} as a share root: ${(e as Error).message}`, { cause: e });
    }
    this.rootPrefix = this.root === '/' ? '/' : this.root + '/';
    // File systems whose times come from the kernel's clock at its tick (1-10 ms) or finer.
    if (FINE_TIME_FS.has(fileSystemType(this.root))) this.capabilities.directoryTimeGranularityMs = 20;
    this.fsync = options.fsync ?? true;
    this.procFd = existsSync('/proc/self/fd');
    this.native = options.native === null ? undefined : (options.native ?? localNative());
    // renameat2(RENAME_EXCHANGE) through the helper; a file system without it answers EINVAL then,
    // reported as ENOTSUP (exchange below).
    // With the helper: exchange of names, fallocate (reservation, punching, zeroing), the hole map
    // and in-kernel range copies (native/README.md).
    this.nativeStats = typeof this.native?.statNames === 'function' && typeof this.native.statNamesAsync === 'function';
    this.nativeReadSmall = typeof this.native?.readSmall === 'function' ? this.native.readSmall.bind(this.native) : undefined;
    this.openBeneath = typeof this.native?.openBeneath === 'function' ? this.native.openBeneath.bind(this.native) : undefined;
    if (this.native !== undefined) {
      Object.assign(this.capabilities, { atomicExchange: true, fileAllocate: true, sparseSeek: true, rangeCopy: true });
    }
    const inline = options.inlineIo ?? 'auto';
    this.io = new InlineIo(inline === 'auto' ? isLocalFileSystem(this.root) : inline);
    this.wio = InlineIo.forWrites(this.io.enabled);
    this.watchOptions = options.watch ?? {};
    const fdMax = options.readFdCache ?? FD_CACHE_MAX;
    // A descriptor leaving the cache is read-only: its close has nothing to flush (inline when allowed).
    const closeFd = (fd: number): void => {
      if (this.io.ok) this.io.run(() => closeSync(fd));
      else closeCb(fd, () => undefined);
    };
    this.fdCache = fdMax > 0 ? new ReadFdCache({ max: fdMax, closeFd }) : undefined;
  }

  /** Async factory, for symmetry with backends that need to connect. */
  static async open(root: string, options: LocalBackendOptions = {}): Promise<LocalBackend> {
    return new LocalBackend(root, options);
  }

  private abs(path: string): string {
    if (path === '/') return this.root;
    return this.root === '/' ? path : this.root + path;
  }

  /** Ensures every directory above `path` is a real directory (ELOOP on a symlink). */
  private parentOk(path: string): Promise<void> | undefined {
    const dir = parentPath(path);
    if (dir === '/' || this.verifiedDirs.has(dir)) return undefined;
    return this.walk(dir);
  }

  private async walk(dir: string): Promise<void> {
    if (dir === '/' || this.verifiedDirs.has(dir)) return;
    await this.walk(parentPath(dir));
    let st: BigIntStats;
    try {
      st = this.io.ok ? this.io.run(() => lstatSync(this.abs(dir), { bigint: true })) : await fsp.lstat(this.abs(dir), { bigint: true });
    } catch (e) {
      throw toVfsError(e, dir);
    }
    if (st.isSymbolicLink()) throw new VfsError('ELOOP', undefined, { path: dir });
    if (!st.isDirectory()) throw new VfsError('ENOTDIR', undefined, { path: dir });
    this.verifiedDirs.set(dir, true);
  }

  /** Drops cached knowledge of `path` itself (it was created, replaced or removed as a non-directory). */
  private forgetOne(path: string): void {
    this.nameCache.delete(parentPath(path));
    this.nameCache.delete(path);
    this.verifiedDirs.delete(path);
    this.forgetFd(path);
  }

  /** Drops the cached read descriptor of `path`: the file changed, or may have. */
  private forgetFd(path: string): void {
    this.forgets++;
    this.fdCache?.forget(path);
  }

  /** Drops cached knowledge of `path` and everything below it (a directory may have moved or gone). */
  private forgetTree(path: string): void {
    this.forgetOne(path);
    for (const key of this.verifiedDirs.keys()) {
      if (isSameOrDescendant(key, path)) this.verifiedDirs.delete(key);
    }
    for (const key of this.nameCache.keys()) {
      if (isSameOrDescendant(key, path)) this.nameCache.delete(key);
    }
    this.fdCache?.forgetBelow(path);
  }

  /** Path of the object behind an open descriptor, as the kernel sees it. */
  private fdPath(fh: FileHandle | number): string {
    return `/proc/self/fd/${typeof fh === 'number' ? fh : fh.fd}`;
  }

  /** Whether descriptor `fd` lies inside the root, by its /proc path (only where `procFd`). */
  private fdInsideRoot(fd: number): boolean {
    const real = readlinkSync(this.fdPath(fd));
    return real === this.root || real.startsWith(this.rootPrefix);
  }

  /**
   * Throws ELOOP unless descriptor `fd` (opened for `path`) lies inside the root. The /proc
   * readlink is synchronous: the kernel answers it from the open file's dentry (no device I/O,
   * ~2 µs), where a thread-pool round trip would cost ten times that.
   */
  private async checkConfined(fd: number, path: string): Promise<void> {
    let inside: boolean;
    try {
      if (this.procFd) {
        inside = this.fdInsideRoot(fd);
      } else {
        // No /proc: re-walk the parents uncached and check the descriptor is what the path names.
        for (let dir = parentPath(path); dir !== '/'; dir = parentPath(dir)) {
          if (!(await fsp.lstat(this.abs(dir))).isDirectory()) throw new VfsError('ELOOP', undefined, { path: dir });
        }
        const a = fstatSync(fd, { bigint: true });
        const b = await fsp.lstat(this.abs(path), { bigint: true });
        inside = a.dev === b.dev && a.ino === b.ino;
      }
    } catch (e) {
      throw toVfsError(e, path);
    }
    if (!inside) throw new VfsError('ELOOP', 'path resolves outside the share root', { path });
  }

  /** Closes `fh` and throws ELOOP unless the descriptor lies inside the root. */
  private async confine(fh: FileHandle, path: string): Promise<void> {
    try {
      await this.checkConfined(fh.fd, path);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  /**
   * openConfined for a raw descriptor (LocalFile, LocalWriter): the same rules. `inline`: a plain
   * open (no create, no truncate) or an exclusive create, made synchronously while the breaker
   * allows it.
   */
  private async openConfinedFd(path: string, flags: number, mode: number | undefined, inline: boolean, owner?: FileOwner): Promise<number> {
    const walking = this.parentOk(path);
    if (walking) await walking;
    const abs = this.abs(path);
    const truncate = (flags & C.O_TRUNC) !== 0;
    const base = flags & ~C.O_TRUNC;
    const open = (f: number): Promise<number> => new Promise((res, rej) => openCb(abs, f, mode ?? 0o666, (e, fd) => (e ? rej(e) : res(fd))));
    let fd: number | undefined;
    let created = false;
    // The inline opens go beneath the root's descriptor where the native helper can (openat2: the
    // kernel confines them, no /proc readlink after); `confined` says the last one did.
    let confined = false;
    const openNow = (f: number): number => {
      const beneath = this.openBeneath;
      // No root descriptor (it could not be opened, or the backend is closed): the /proc way.
      const rootFd = beneath === undefined ? -1 : this.rootFd();
      if (beneath !== undefined && rootFd >= 0) {
        const r = beneath(rootFd, path === '/' ? '.' : path.slice(1), f, mode ?? 0o666);
        if (r >= 0) {
          confined = true;
          return r;
        }
        // A link on the way (ELOOP; EXDEV: out of the root) goes the /proc way, which decides as
        // before (a link whose target is inside the root is accepted there); so does a missing
        // openat2. Any other failure is the open's answer.
        if (r !== -OS_ERRNO.ELOOP && r !== -OS_ERRNO.EXDEV && r !== -OS_ERRNO.ENOSYS && r !== -OS_ERRNO.EAGAIN && r !== -OS_ERRNO.EPERM) throw errnoError(-r, path);
      }
      confined = false;
      return openSync(abs, f, mode ?? 0o666);
    };
    try {
      const creates = (base & C.O_CREAT) !== 0;
      const io = creates ? this.wio : this.io;
      if (inline && (!creates || (base & C.O_EXCL) !== 0) && !truncate && io.ok) {
        fd = io.run(() => openNow(base));
        created = creates;
      } else if (inline && creates && io.ok) {
        // A plain create, inline: O_EXCL first (so that a file made here is known to be ours),
        // else the file as it is; one that vanished in between goes to the loop below.
        try {
          fd = io.run(() => openNow(base | C.O_EXCL));
          created = true;
        } catch (e) {
          if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
          try {
            fd = io.run(() => openNow(base & ~C.O_CREAT));
          } catch (e2) {
            if ((e2 as { code?: unknown }).code !== 'ENOENT') throw e2;
          }
        }
      }
      if (fd === undefined) confined = false;
      if (fd === undefined && ((base & C.O_CREAT) === 0 || (base & C.O_EXCL) !== 0)) {
        fd = await open(base);
        created = (base & C.O_CREAT) !== 0;
      } else {
        for (let attempt = 0; fd === undefined; attempt++) {
          try {
            fd = await open(base | C.O_EXCL);
            created = true;
          } catch (e) {
            if ((e as { code?: unknown }).code !== 'EEXIST' || attempt >= 3) throw e;
            // Exists: open it as it is (it may vanish again meanwhile; then retry the create).
            fd = await open(base & ~C.O_CREAT).catch((e2: unknown) => {
              if ((e2 as { code?: unknown }).code === 'ENOENT') return undefined;
              throw e2;
            });
          }
        }
      }
    } catch (e) {
      throw toVfsError(e, path);
    }
    const closeFd = (): Promise<void> => new Promise((res) => closeCb(fd!, () => res()));
    try {
      if (!confined) await this.checkConfined(fd, path);
    } catch (e) {
      if (inline && !created) closeSync(fd);
      else await closeFd();
      if (created) await fsp.unlink(abs).catch(() => {});
      throw e;
    }
    if (truncate && !created) {
      try {
        await new Promise<void>((res, rej) => ftruncate(fd!, 0, (e) => (e ? rej(e) : res())));
      } catch (e) {
        await closeFd();
        throw toVfsError(e, path);
      }
    }
    if (created && owner !== undefined && needsChown(owner)) {
      // A file that exists but cannot take its creator's owner (a file system without owners)
      // is still the file that was asked for: the owner stays the service user's.
      if (inline && this.wio.ok) {
        try {
          fchownSync(fd, owner.uid, owner.gid);
        } catch {
          // as above
        }
      } else await new Promise<void>((res) => fchownCb(fd!, owner.uid, owner.gid, () => res()));
    }
    return fd;
  }

  /**
   * Opens `path` and confines the descriptor. Nothing that changes data happens before the check:
   * O_TRUNC is applied afterwards with ftruncate, and a create is done as O_EXCL first so that, if
   * the file turns out to be outside the root, we know it is ours to remove.
   */
  private async openConfined(path: string, flags: number, mode?: number): Promise<FileHandle> {
    await this.parentOk(path);
    const abs = this.abs(path);
    const truncate = (flags & C.O_TRUNC) !== 0;
    const base = flags & ~C.O_TRUNC;
    let fh: FileHandle | undefined;
    let created = false;
    try {
      if ((base & C.O_CREAT) === 0 || (base & C.O_EXCL) !== 0) {
        fh = await fsp.open(abs, base, mode);
        created = (base & C.O_CREAT) !== 0;
      } else {
        for (let attempt = 0; fh === undefined; attempt++) {
          try {
            fh = await fsp.open(abs, base | C.O_EXCL, mode);
            created = true;
          } catch (e) {
            if ((e as { code?: unknown }).code !== 'EEXIST' || attempt >= 3) throw e;
            // Exists: open it as it is (it may vanish again meanwhile; then retry the create).
            fh = await fsp.open(abs, base & ~C.O_CREAT).catch((e2: unknown) => {
              if ((e2 as { code?: unknown }).code === 'ENOENT') return undefined;
              throw e2;
            });
          }
        }
      }
    } catch (e) {
      throw toVfsError(e, path);
    }
    try {
      await this.confine(fh, path);
    } catch (e) {
      if (created) await fsp.unlink(abs).catch(() => {});
      throw e;
    }
    if (truncate && !created) {
      try {
        await fh.truncate(0);
      } catch (e) {
        await fh.close().catch(() => {});
        throw toVfsError(e, path);
      }
    }
    return fh;
  }

  private async lstatPath(path: string): Promise<BackendStat> {
    const abs = this.abs(path);
    const st = await fsp.lstat(abs, { bigint: true });
    const target = st.isSymbolicLink() ? await fsp.readlink(abs) : undefined;
    return toStat(baseName(path), st, target);
  }

  async stat(path: string): Promise<BackendStat> {
    try {
      const walking = this.parentOk(path);
      if (walking) await walking;
      if (this.io.ok) {
        const abs = this.abs(path);
        // throwIfNoEntry: a miss (every PUT of a new file) costs no Error with a stack trace.
        const st = this.io.run(() => lstatSync(abs, { bigint: true, throwIfNoEntry: false }));
        if (st === undefined) throw missing(path);
        return toStat(baseName(path), st, st.isSymbolicLink() ? readlinkSync(abs) : undefined);
      }
      return await this.lstatPath(path);
    } catch (e) {
      throw toVfsError(e, path);
    }
  }

  /** lstat of one listed name, inline; undefined when it was removed since the readdir. */
  private lstatEntrySync(base: string, name: string): BackendStat | undefined {
    const p = `${base}/${name}`;
    const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
    if (st === undefined) return undefined;
    let target: string | undefined;
    if (st.isSymbolicLink()) {
      try {
        target = readlinkSync(p);
      } catch {
        target = undefined;
      }
    }
    return toStat(name, st, target);
  }

  /**
   * lstat of a page of names: inline in batches of INLINE_BATCH with a yield to the event loop
   * between them while the breaker allows it (a batch slower than INLINE_SLOW_BATCH_MS trips it),
   * the rest in one batch on a worker thread (stat-batch.ts), or through the thread pool
   * (LIST_STAT_CONCURRENCY at a time) where no worker can run.
   */
  private async statNames(fd: number, base: string, names: readonly string[]): Promise<Array<BackendStat | undefined>> {
    if (this.nativeStats) {
      const done = await this.statNamesNative(fd, base, names);
      if (done !== undefined) return done;
    }
    const out = new Array<BackendStat | undefined>(names.length);
    let i = 0;
    while (i < names.length && this.io.ok) {
      const end = Math.min(i + INLINE_BATCH, names.length);
      const t0 = performance.now();
      for (; i < end; i++) out[i] = this.io.run(() => this.lstatEntrySync(base, names[i]!));
      const ms = performance.now() - t0;
      if (ms > INLINE_SLOW_BATCH_MS) this.io.slow(ms);
      if (i < names.length) await yieldToLoop();
    }
    if (i < names.length) {
      // Off the event loop: one worker-thread round trip for the rest of the page (stat-batch.ts),
      // else one thread-pool round trip per name.
      const batch = lstatBatch(base, i === 0 ? names : names.slice(i));
      const rest = batch !== undefined ? await batch : await mapLimit(names.slice(i), LIST_STAT_CONCURRENCY, async (name) => {
        try {
          const st = await fsp.lstat(`${base}/${name}`, { bigint: true });
          const target = st.isSymbolicLink() ? await fsp.readlink(`${base}/${name}`).catch(() => undefined) : undefined;
          return toStat(name, st, target);
        } catch (e) {
          // Removed between readdir and lstat: not part of the listing any more.
          if ((e as { code?: unknown }).code === 'ENOENT') return undefined;
          throw e;
        }
      });
      for (let k = 0; k < rest.length; k++) out[i + k] = rest[k];
    }
    return out;
  }

  /**
   * statNames through the native helper (statNames / statNamesAsync: statx and readlinkat on the
   * listing's own descriptor, the figures of a batch in one buffer): inline in batches of
   * INLINE_BATCH, each one call timed by the breaker as one inline call (a batch of 128 takes
   * ~0.3 ms, so one slower than INLINE_SLOW_MS is as suspect as a single slow lstat), a yield to the
   * event loop between them; once the breaker has tripped, the rest of the page in one thread-pool
   * round trip. Why: an lstatSync per name cost ~7 µs of CPU in a listing (a BigIntStats, its
   * BigInts, toStat's conversions) against ~2.7 µs for the system call (protocols/nfs/README.md,
   * issue 10, fifth round). Undefined (the caller stats through Node) when the helper answers
   * ENOSYS (no statx: it is then not asked again) or on a big-endian machine.
   */
  private async statNamesNative(fd: number, base: string, names: readonly string[]): Promise<Array<BackendStat | undefined> | undefined> {
    const n = this.native!;
    const out = new Array<BackendStat | undefined>(names.length);
    let i = 0;
    try {
      while (i < names.length) {
        const inline = this.io.ok;
        const end = inline ? Math.min(i + INLINE_BATCH, names.length) : names.length;
        const part = i === 0 && end === names.length ? names : names.slice(i, end);
        const page = inline ? this.io.run(() => n.statNames!(fd, part)) : await n.statNamesAsync!(fd, part);
        const stats = decodeStatPage(part, page.nums, page.targets);
        if (stats === undefined) {
          this.nativeStats = false;
          return undefined;
        }
        for (let k = 0; k < stats.length; k++) out[i + k] = stats[k];
        i = end;
        if (i < names.length) await yieldToLoop();
      }
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOSYS') throw e;
      this.nativeStats = false;
      return i === 0 ? undefined : [...out.slice(0, i), ...(await this.statNames(fd, base, names.slice(i)))];
    }
    return out;
  }

  async list(path: string, options: ListOptions): Promise<ListPage> {
    const limit = Math.max(1, Math.floor(options.limit));
    const inline = this.io.ok;
    const fd = await this.openConfinedFd(path, O_DIR, undefined, true);
    try {
      // Reading through the verified descriptor keeps an outside swap of `path` from redirecting us.
      const base = this.procFd ? this.fdPath(fd) : this.abs(path);
      const names = await this.sortedNames(path, fd, base, options.after === undefined);
      const start = firstAfter(names, options.after);
      const pageNames = names.slice(start, start + limit);
      const stats = await this.statNames(fd, base, pageNames);
      const entries = stats.filter((s): s is BackendStat => s !== undefined);
      const page: ListPage = { entries };
      if (start + limit < names.length && pageNames.length > 0) page.next = pageNames[pageNames.length - 1] as string;
      return page;
    } catch (e) {
      throw toVfsError(e, path);
    } finally {
      if (inline) closeSync(fd);
      else await new Promise<void>((res) => closeCb(fd, () => res()));
    }
  }

  /**
   * The directory's visible names, sorted. Cached per directory identity + mtime + ctime so a
   * 100,000-entry directory is read once and then paged by binary search.
   */
  private async sortedNames(path: string, fd: number, base: string, fresh: boolean): Promise<string[]> {
    const st = fstatSync(fd, { bigint: true });
    const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
    const hit = this.nameCache.get(path);
    if (hit !== undefined && hit.key === key && !(fresh && hit.racy)) return hit.names;
    const names = (await fsp.readdir(base)).filter((n) => !n.startsWith(TEMP_PREFIX));
    names.sort();
    const changed = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
    this.nameCache.set(path, { key, names, racy: nowNs() - changed < RACY_WINDOW_NS });
    return names;
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    const fh = await this.openConfined(path, O_READ);
    try {
      return await readAt(fh, offset, length);
    } catch (e) {
      throw toVfsError(e, path);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async openFile(path: string, options: OpenFileOptions): Promise<BackendFile> {
    const readOnly = !options.write && !options.create && !options.truncate;
    const cache = readOnly ? this.fdCache : undefined;
    if (cache !== undefined) {
      const hit = cache.take(path);
      if (hit !== undefined) return this.localFile(hit.shared.fd, path, false, this.io, hit);
    }
    let flags = (options.write ? C.O_RDWR : C.O_RDONLY) | C.O_NOFOLLOW | C.O_NONBLOCK;
    if (options.create) flags |= C.O_CREAT | (options.exclusive ? C.O_EXCL : 0);
    if (options.truncate) flags |= C.O_TRUNC;
    // Portico is about to change the file through a descriptor of its own: readers reopen.
    if (!readOnly) this.forgetFd(path);
    const forgets = this.forgets;
    const openedAt = performance.now();
    // A create is made inline while the write breaker allows it (openConfinedFd), and so are the
    // first bytes and the close of a file it made (LocalFile `writeIo`): a small file's create,
    // write and close (NFS OPEN+WRITE+CLOSE, SMB CREATE+WRITE+CLOSE, FUSE create/write/release)
    // then make no thread-pool round trip (~20-50 µs of CPU each on this 2-core VM).
    const creates = options.create === true;
    const fd = await this.openConfinedFd(path, flags, options.mode ?? 0o666, !options.write || creates, options.owner);
    if (creates) this.nameCache.delete(parentPath(path));
    if (cache === undefined) {
      if (!creates || !options.write || options.truncate) return this.localFile(fd, path, options.write, this.io);
      // An exclusive create made the file, empty; a plain one may have found it: empty or not, its
      // fstat says. A non-empty file's writes may need its pages read from the device first:
      // thread pool. (Not kept as the first stat()'s answer: a setattr by path may follow at once.)
      let empty = options.exclusive === true;
      if (!empty) {
        try {
          const st = fstatSync(fd, { bigint: true });
          empty = st.isFile() && st.size === 0n;
        } catch {
          empty = false;
        }
      }
      return this.localFile(fd, path, true, this.io, empty ? { writeIo: this.wio } : undefined);
    }
    // The fstat that decides whether to cache it is also the caller's first stat() (LocalFile).
    let st: BigIntStats | undefined;
    try {
      st = fstatSync(fd, { bigint: true });
    } catch {
      st = undefined;
    }
    if (st === undefined || !st.isFile() || this.forgets !== forgets) return this.localFile(fd, path, false, this.io, { st });
    return this.localFile(fd, path, false, this.io, { shared: cache.add(path, fd, st, openedAt), st });
  }

  /** A LocalFile with the native helper when loaded (allocate, seekData, copyRange). */
  private localFile(...args: ConstructorParameters<typeof LocalFile>): LocalFile {
    const f = new LocalFile(...args);
    f.native = this.native;
    return f;
  }

  /**
   * Backend.readSmallSync: a small regular file read whole, synchronously, with the rules of
   * openFile's read-only open — parents verified (else undefined: the general path walks them),
   * O_NOFOLLOW, the descriptor confined by its /proc path — through the read-only descriptor cache
   * (a hit costs an fstat and the pread; a miss's descriptor is cached as openFile caches it). A
   * regular file larger than `maxBytes` stays cached for the open that follows. Undefined, never an
   * error, whenever anything is unusual: the general path then gives the answer.
   */
  readSmallSync(path: string, maxBytes: number): { stat: BackendStat; data: Buffer } | undefined {
    if (!this.io.ok || path === '/') return undefined;
    const cache = this.fdCache;
    const hit = cache?.take(path);
    if (hit !== undefined) {
      try {
        return this.readWhole(hit.shared.fd, path, hit.st, maxBytes);
      } finally {
        hit.shared.release();
      }
    }
    // Parents not verified yet: the general path walks them (and answers ELOOP/ENOTDIR there).
    const dir = parentPath(path);
    if (!this.procFd || (dir !== '/' && !this.verifiedDirs.has(dir))) return undefined;
    const readSmall = this.nativeReadSmall;
    if (readSmall !== undefined) {
      // The same open, confinement check, stat and read in one native call; the descriptor is not
      // cached (a small file read whole needs none: the next read of it is one call again).
      const out = this.readSmallStat;
      let data: Buffer | undefined;
      try {
        const rootFd = this.rootFd();
        data = this.io.run(() => readSmall(this.abs(path), this.root, this.rootPrefix, maxBytes, out, rootFd, path.slice(1)));
      } catch {
        return undefined;
      }
      if (data === undefined) return undefined;
      const st = decodeStatPage([baseName(path)], out, NO_TARGETS)?.[0];
      return st === undefined ? undefined : { stat: st, data };
    }
    const openedAt = performance.now();
    let fd: number;
    let st: BigIntStats;
    try {
      fd = this.io.run(() => openSync(this.abs(path), O_READ));
    } catch {
      return undefined;
    }
    try {
      if (!this.io.run(() => this.fdInsideRoot(fd))) {
        closeSync(fd);
        return undefined;
      }
      st = fstatSync(fd, { bigint: true });
    } catch {
      closeSync(fd);
      return undefined;
    }
    if (!st.isFile() || cache === undefined) {
      try {
        return this.readWhole(fd, path, st, maxBytes);
      } finally {
        closeSync(fd);
      }
    }
    const shared = cache.add(path, fd, st, openedAt);
    try {
      return this.readWhole(fd, path, st, maxBytes);
    } finally {
      shared.release();
    }
  }

  /**
   * The `st.size` bytes of an open regular file of at most `maxBytes` (undefined when it is not
   * one, is larger, or is not that long any more).
   */
  private readWhole(fd: number, path: string, st: BigIntStats, maxBytes: number): { stat: BackendStat; data: Buffer } | undefined {
    if (!st.isFile() || st.size > BigInt(maxBytes)) return undefined;
    const size = Number(st.size);
    const data = Buffer.allocUnsafe(size);
    let done = 0;
    try {
      this.io.run(() => {
        while (done < size) {
          const n = readSync(fd, data, done, size - done, done);
          if (n === 0) break;
          done += n;
        }
      });
    } catch {
      return undefined;
    }
    return done === size ? { stat: toStat(baseName(path), st), data } : undefined;
  }

  async createWriter(path: string, options: WriterOptions = {}): Promise<BackendWriter> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const temp = joinPath(parentPath(path), tempName());
    const fd = await this.openConfinedFd(temp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, options.mode ?? 0o666, true, options.owner);
    return new LocalWriter(this, fd, this.wio, path, temp, options.exclusive === true);
  }

  /**
   * @internal LocalWriter's commit: publish `temp` at `path`. The fdatasync (when durable) always
   * uses the thread pool; the close and the rename are inline while the breaker allows it (journaled
   * metadata changes that complete in memory), else two thread-pool calls side by side.
   */
  async publish(fd: number, temp: string, path: string, exclusive: boolean, meta: SetMetadata | undefined): Promise<{ stat: BackendStat; durable: Promise<void> }> {
    const closeAsync = (): Promise<void> => new Promise<void>((res, rej) => closeCb(fd, (e) => (e ? rej(toVfsError(e, path)) : res())));
    // Settles once the descriptor is closed; a close error still fails the commit.
    let closing: Promise<void> = Promise.resolve();
    try {
      if (this.fsync) await new Promise<void>((res, rej) => fdatasyncCb(fd, (e) => (e ? rej(e) : res())));
      if (meta !== undefined) await applyMetaToFd(fd, meta);
      await this.parentOk(path);
    } catch (e) {
      await closeAsync().catch(() => undefined);
      throw toVfsError(e, path);
    }
    const tempAbs = this.abs(temp);
    const abs = this.abs(path);
    if (this.wio.ok) {
      // Set before the close: a close that fails has still released the descriptor (never twice).
      let closeTried = false;
      try {
        this.wio.run(() => {
          closeTried = true;
          closeSync(fd);
          if (exclusive) {
            // link(2) fails with EEXIST atomically; rename(2) would silently replace.
            linkSync(tempAbs, abs);
            unlinkSync(tempAbs);
          } else {
            renameSync(tempAbs, abs);
          }
        });
      } catch (e) {
        if (!closeTried) await closeAsync().catch(() => undefined);
        throw toVfsError(e, path);
      } finally {
        this.forgetOne(path);
      }
    } else {
      // The descriptor is closed while the name is published (two thread-pool calls side by side
      // instead of one after the other); a close error still fails the commit.
      closing = closeAsync();
      closing.catch(() => undefined);
      try {
        if (exclusive) {
          await fsp.link(tempAbs, abs);
          await fsp.unlink(tempAbs);
        } else {
          await fsp.rename(tempAbs, abs);
        }
      } catch (e) {
        throw toVfsError(e, path);
      } finally {
        this.forgetOne(path);
      }
    }
    await closing;
    // After the rename: rename(2) changes the inode's ctime, part of the change signature.
    let st: BigIntStats;
    try {
      st = this.io.ok ? this.io.run(() => lstatSync(abs, { bigint: true })) : await fsp.lstat(abs, { bigint: true });
    } catch (e) {
      throw toVfsError(e, path);
    }
    return { stat: toStat(baseName(path), st), durable: this.fsync ? this.syncDir(parentPath(path)) : Promise.resolve() };
  }

  /**
   * fsync(2) of a directory, so that names renamed into it survive a power loss. Group commit:
   * callers queue (after their rename) and each directory fsync covers every caller queued before
   * it started, so concurrent commits into one directory share one.
   */
  private syncDir(dir: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let s = this.dirSyncs.get(dir);
      if (s === undefined) this.dirSyncs.set(dir, (s = { running: false, queued: [] }));
      s.queued.push({ resolve, reject });
      if (!s.running) void this.runDirSyncs(dir, s);
    });
  }

  private async runDirSyncs(dir: string, s: DirSync): Promise<void> {
    s.running = true;
    while (s.queued.length > 0) {
      const batch = s.queued;
      s.queued = [];
      try {
        // Opening and closing a directory are lookups (inline when allowed); the fsync is not.
        const fd = this.io.ok ? this.io.run(() => openSync(this.abs(dir), O_DIR)) : await new Promise<number>((res, rej) => openCb(this.abs(dir), O_DIR, (e, n) => (e ? rej(e) : res(n))));
        try {
          this.dirFsyncs++;
          await new Promise<void>((res, rej) => fsyncCb(fd, (e) => (e ? rej(e) : res())));
        } catch (e) {
          // A file system that cannot fsync a directory (some FUSE and network ones) has nothing to flush.
          if ((e as { code?: unknown }).code !== 'EINVAL') throw e;
        } finally {
          closeSync(fd);
        }
        for (const w of batch) w.resolve();
      } catch (e) {
        const err = toVfsError(e, dir);
        for (const w of batch) w.reject(err);
      }
    }
    s.running = false;
    this.dirSyncs.delete(dir);
  }

  /** @internal */
  async discard(temp: string): Promise<void> {
    await fsp.unlink(this.abs(temp)).catch(() => {});
  }

  async mkdir(path: string, mode?: number, owner?: FileOwner): Promise<BackendStat> {
    try {
      if (path === '/') throw new VfsError('EEXIST', undefined, { path });
      await this.parentOk(path);
      await fsp.mkdir(this.abs(path), mode ?? 0o777);
      if (owner !== undefined && needsChown(owner)) await fsp.lchown(this.abs(path), owner.uid, owner.gid).catch(() => undefined);
      this.nameCache.delete(parentPath(path));
      return await this.lstatPath(path);
    } catch (e) {
      throw toVfsError(e, path);
    }
  }

  async rmdir(path: string): Promise<void> {
    try {
      if (path === '/') throw new VfsError('EBUSY', 'cannot remove the share root', { path });
      await this.parentOk(path);
      await fsp.rmdir(this.abs(path));
    } catch (e) {
      throw toVfsError(e, path);
    } finally {
      this.forgetTree(path);
    }
  }

  async unlink(path: string): Promise<void> {
    try {
      if (path === '/') throw new VfsError('EISDIR', undefined, { path });
      await this.parentOk(path);
      await fsp.unlink(this.abs(path));
    } catch (e) {
      // POSIX allows EPERM for unlink(dir); Linux says EISDIR. Report EISDIR either way.
      if ((e as { code?: unknown }).code === 'EPERM') {
        const st = await fsp.lstat(this.abs(path)).catch(() => undefined);
        if (st?.isDirectory()) throw new VfsError('EISDIR', undefined, { path, cause: e });
      }
      throw toVfsError(e, path);
    } finally {
      this.forgetOne(path);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      if (from === '/' || to === '/') throw new VfsError('EBUSY', 'cannot rename the share root', { path: from });
      await this.parentOk(from);
      await this.parentOk(to);
      await fsp.rename(this.abs(from), this.abs(to));
    } catch (e) {
      throw toVfsError(e, from);
    } finally {
      this.forgetTree(from);
      this.forgetTree(to);
    }
  }

  /**
   * Backend.exchange: renameat2(RENAME_EXCHANGE) through the native helper, on descriptors of the
   * two parent directories opened and confined as every open is (O_NOFOLLOW, /proc check) and the
   * two last names: a rename never follows a symbolic link in its last component, so neither side
   * can reach outside the root. A file system without the flag (the kernel's EINVAL; the VFS has
   * already refused a directory with a name inside it) gives ENOTSUP.
   */
  async exchange(a: string, b: string): Promise<void> {
    const n = this.native;
    if (n === undefined) throw new VfsError('ENOTSUP', 'the local backend\'s native helper is not loaded', { path: a });
    if (a === '/' || b === '/') throw new VfsError('EBUSY', 'cannot exchange the share root', { path: a });
    let da: FileHandle | undefined;
    let db: FileHandle | undefined;
    try {
      da = await this.openConfined(parentPath(a), O_DIR);
      db = parentPath(b) === parentPath(a) ? da : await this.openConfined(parentPath(b), O_DIR);
      await n.renameat2(da.fd, baseName(a), db.fd, baseName(b), n.RENAME_EXCHANGE);
    } catch (e) {
      if ((e as { code?: unknown }).code === 'EINVAL') throw new VfsError('ENOTSUP', 'the file system cannot exchange names (renameat2 RENAME_EXCHANGE)', { path: a, cause: e });
      throw toVfsError(e, a);
    } finally {
      if (db !== undefined && db !== da) await db.close().catch(() => {});
      await da?.close().catch(() => {});
      this.forgetTree(a);
      this.forgetTree(b);
    }
  }

  async copy(from: string, to: string): Promise<BackendStat> {
    const src = await this.openConfined(from, O_READ);
    let temp: string | undefined;
    try {
      const st = fstatSync(src.fd, { bigint: true });
      if (st.isDirectory()) throw new VfsError('EISDIR', undefined, { path: from });
      if (!st.isFile()) throw new VfsError('EINVAL', 'not a regular file', { path: from });
      await this.parentOk(to);
      temp = joinPath(parentPath(to), tempName());
      // Copy from the confined descriptor, never from the path: the kernel clones when it can
      // (reflink) and copy_file_range()s otherwise; libuv also copies the mode.
      const source = this.procFd ? this.fdPath(src) : this.abs(from);
      await fsp.copyFile(source, this.abs(temp), C.COPYFILE_EXCL | C.COPYFILE_FICLONE);
      await fsp.utimes(this.abs(temp), nsToSeconds(st.atimeNs), nsToSeconds(st.mtimeNs));
      await fsp.rename(this.abs(temp), this.abs(to));
      temp = undefined;
      this.forgetOne(to);
      return await this.lstatPath(to);
    } catch (e) {
      if (temp !== undefined) await this.discard(temp);
      throw toVfsError(e, to);
    } finally {
      await src.close().catch(() => {});
    }
  }

  async symlink(target: string, path: string, owner?: FileOwner): Promise<BackendStat> {
    try {
      await this.parentOk(path);
      await fsp.symlink(target, this.abs(path));
      if (owner !== undefined && needsChown(owner)) await fsp.lchown(this.abs(path), owner.uid, owner.gid).catch(() => undefined);
      this.forgetOne(path);
      return await this.lstatPath(path);
    } catch (e) {
      throw toVfsError(e, path);
    }
  }

  async readlink(path: string): Promise<string> {
    try {
      await this.parentOk(path);
      return await fsp.readlink(this.abs(path));
    } catch (e) {
      throw toVfsError(e, path);
    }
  }

  async link(existing: string, path: string): Promise<BackendStat> {
    try {
      await this.parentOk(existing);
      await this.parentOk(path);
      // linkat() without AT_SYMLINK_FOLLOW: linking a symlink links the symlink itself.
      await fsp.link(this.abs(existing), this.abs(path));
      this.forgetOne(path);
      return await this.lstatPath(path);
    } catch (e) {
      throw toVfsError(e, path);
    }
  }

  async setMetadata(path: string, meta: SetMetadata): Promise<BackendStat> {
    this.forgetFd(path);
    try {
      await this.parentOk(path);
      const abs = this.abs(path);
      const st = await fsp.lstat(abs, { bigint: true });
      const isLink = st.isSymbolicLink();
      // Linux cannot chmod a symlink (and chmod(2) would follow it): mode is skipped for symlinks.
      if (meta.mode !== undefined && !isLink) await this.chmodNoFollow(path, meta.mode & 0o7777);
      if (meta.uid !== undefined || meta.gid !== undefined) await fsp.lchown(abs, meta.uid ?? -1, meta.gid ?? -1);
      if (meta.atimeNs !== undefined || meta.mtimeNs !== undefined) {
        await fsp.lutimes(abs, nsToSeconds(meta.atimeNs ?? st.atimeNs), nsToSeconds(meta.mtimeNs ?? st.mtimeNs));
      }
      // birthtimeNs cannot be set on Linux; the VFS keeps its own override.
      return await this.lstatPath(path);
    } catch (e) {
      throw toVfsError(e, path);
    }
  }

  /** fchmod through an O_NOFOLLOW descriptor, so a symlink swapped in meanwhile is never followed. */
  private async chmodNoFollow(path: string, mode: number): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(this.abs(path), O_READ);
    } catch (e) {
      // No read permission (only possible when not running as root): the lstat above said "not a symlink".
      if ((e as { code?: unknown }).code !== 'EACCES') throw e;
      await fsp.chmod(this.abs(path), mode);
      return;
    }
    await this.confine(fh, path);
    try {
      await fh.chmod(mode);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    this.forgetFd(path);
    const fh = await this.openConfined(path, C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    try {
      await fh.truncate(size);
    } catch (e) {
      throw toVfsError(e, path);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async statfs(): Promise<StatFs> {
    try {
      const s = await fsp.statfs(this.root);
      return {
        totalBytes: s.blocks * s.bsize,
        freeBytes: s.bfree * s.bsize,
        availableBytes: s.bavail * s.bsize,
        totalFiles: s.files,
        freeFiles: s.ffree,
        blockSize: s.bsize,
      };
    } catch (e) {
      throw toVfsError(e, '/');
    }
  }

  async check(): Promise<void> {
    let ok = false;
    try {
      ok = (await fsp.stat(this.root)).isDirectory();
    } catch (e) {
      throw new VfsError('EIO', `share root ${this.root} is not reachable`, { cause: e });
    }
    if (!ok) throw new VfsError('EIO', `share root ${this.root} is not a directory`);
  }

  async close(): Promise<void> {
    this.watches?.closeAll();
    this.fdCache?.clear();
    if (this.rootDirFd !== undefined && this.rootDirFd >= 0) closeSync(this.rootDirFd);
    this.rootDirFd = -1;
  }

  /**
   * Outside changes at or below `dir` (local-watch.ts). The directory and its ancestors are
   * verified as real directories first (no symlink on the way), as for every path-based operation.
   */
  async watch(dir: string, recursive: boolean, listener: BackendWatchListener): Promise<BackendWatcher> {
    await this.walk(dir);
    this.watches ??= new LocalWatches(this.root, TEMP_PREFIX, this.watchOptions, this.io);
    return this.watches.watch(dir, recursive, listener);
  }

  /** Directories watched for outside changes now, all watchers together (diagnostics and tests). */
  get watchedDirs(): number {
    return this.watches?.watchedDirs ?? 0;
  }

  /**
   * Drops what is cached about `path` and below (listings, verified directories): called for a
   * change seen made outside Portico, so a directory swapped for a symlink there is not trusted
   * for the rest of the verified-directory window, and by `portico cache refresh`.
   */
  invalidate(path: string): void {
    this.forgetTree(path);
  }

  /**
   * Removes temp files left by writers that never committed (crash, kill) and are older than
   * `maxAgeMs`. Walks the whole tree without following symlinks; returns how many were removed.
   */
  /**
   * Temp files older than a minute at startup belong to writes that died with a previous process
   * (a live write renames its temp file within its own request); younger ones may be another
   * process's write in progress on the same directory, so they are left alone.
   */
  recover(): Promise<number> {
    return this.cleanupTemps(60_000);
  }

  async cleanupTemps(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    let removed = 0;
    const walkDir = async (abs: string): Promise<void> => {
      const dirents = await fsp.readdir(abs, { withFileTypes: true }).catch(() => []);
      for (const d of dirents) {
        const child = `${abs}/${d.name}`;
        if (d.isDirectory()) {
          await walkDir(child);
        } else if (d.isFile() && d.name.startsWith(TEMP_PREFIX)) {
          const st = await fsp.lstat(child).catch(() => undefined);
          if (st !== undefined && st.mtimeMs < cutoff && (await fsp.unlink(child).then(() => true, () => false))) removed++;
        }
      }
    };
    await walkDir(this.root);
    return removed;
  }
}

