/**
 * Loading the optional addon (protocols/fuse/native, libfuse3's low-level API). Portico runs
 * without it: `fuseAvailability()` says why FUSE cannot be used and the exact command that enables
 * it, for the log, /health and `portico mount`.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';

/** Attribute layout of the addon's Float64Arrays (fuse_addon.cc FillStat). */
export const ATTR_LEN = 14;

/** Request kinds the addon hands to JS (fuse_addon.cc enum Op); 0 is the exit notice. */
export const OP = {
  EXIT: 0,
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  MKNOD: 6,
  MKDIR: 7,
  UNLINK: 8,
  RMDIR: 9,
  SYMLINK: 10,
  RENAME: 11,
  LINK: 12,
  OPEN: 13,
  READ: 14,
  WRITE: 15,
  FLUSH: 16,
  RELEASE: 17,
  FSYNC: 18,
  READDIR: 19,
  READDIRPLUS: 20,
  STATFS: 21,
  SETXATTR: 22,
  GETXATTR: 23,
  LISTXATTR: 24,
  REMOVEXATTR: 25,
  CREATE: 26,
  GETLK: 27,
  SETLK: 28,
  FLOCK: 29,
  /** FUSE_INTERRUPT of the request `id` (a blocking lock wait); answers nothing itself. */
  INTERRUPT: 30,
  LSEEK: 31,
  COPY_FILE_RANGE: 32,
  FALLOCATE: 33,
} as const;

export type FuseHandler = (op: number, id: number, ino: number, name: string, name2: string, n1: number, n2: number, n3: number, data: Buffer | Float64Array | undefined) => void;

export interface NativeSession {
  mount(): void;
  /** Lazy unmount as root (umount2 MNT_DETACH); false when that was refused (run fusermount3 -u -z). */
  unmount(): boolean;
  replyErr(id: number, errno: number): void;
  replyEntry(id: number, attr: Float64Array, attrTimeout: number, entryTimeout: number): void;
  replyCreate(id: number, attr: Float64Array, attrTimeout: number, entryTimeout: number, fh: number, flags: number): void;
  replyAttr(id: number, attr: Float64Array, timeout: number): void;
  replyOpen(id: number, fh: number, flags: number): void;
  replyBuf(id: number, data: Uint8Array, length?: number): void;
  /**
   * A READ answered from descriptor `fd` (`length` bytes at `offset`, fewer at its end), spliced to
   * /dev/fuse on the thread pool: resolves with the bytes sent once done (the caller keeps `fd` open
   * until then). Always answers the request, with an error if reading fails. Absent in addons built
   * before it (fs.ts then reads into a buffer).
   */
  replyFd?(id: number, fd: number, offset: number, length: number): Promise<number>;
  /**
   * A WRITE whose bytes are in a slab, written to `fd` at `offset` and answered from a thread-pool
   * thread (fuse_addon.cc FdWrite); resolves with the bytes written, rejects with the write's error
   * (the kernel has that answer already). Absent in older builds.
   */
  writeFd?(id: number, fd: number, offset: number): Promise<number>;
  replyWrite(id: number, count: number): void;
  replyReadlink(id: number, target: string): void;
  replyStatfs(id: number, values: Float64Array): void;
  replyXattr(id: number, data: Uint8Array): void;
  replyDir(id: number, plus: boolean, names: string[], attrs: Float64Array, offsets: Float64Array, attrTimeout: number, entryTimeout: number): number;
  replyLock(id: number, type: number, start: number, len: number): void;
  /** lseek SEEK_DATA/SEEK_HOLE: the offset found. */
  replyLseek(id: number, offset: number): void;
  /** The write slabs (made once, before mount): a WRITE's bytes arrive in one (fuse_addon.cc). */
  slabs(): Buffer[];
  invalInode(ino: number): void;
  invalEntry(parent: number, name: string): void;
}

interface NativeModule {
  FuseSession: new (mountpoint: string, options: string[], writeback: boolean, handler: FuseHandler, onExit: () => void) => NativeSession;
  FUSE_MAJOR: number;
  FUSE_MINOR: number;
}

/** The command that makes FUSE available on a Debian machine (README, log, /health). */
export const FUSE_ENABLE_COMMAND = 'apt-get install fuse3 libfuse3-dev && npm run build:fuse';

/** Where the addon is: the build's output, or FUSE_ADDON_PATH (packagers; tests of a machine without it). */
export const ADDON_PATH = process.env.FUSE_ADDON_PATH ?? new URL('./native/build/Release/portico_fuse.node', import.meta.url).pathname;

export type FuseAvailability =
  | { available: true; libfuse: string }
  | { available: false; reason: string; enable: string };

let loaded: { mod: NativeModule } | { error: string } | undefined;

function load(): { mod: NativeModule } | { error: string } {
  if (loaded) return loaded;
  if (!existsSync(ADDON_PATH)) {
    loaded = { error: `the FUSE addon is not built (${ADDON_PATH} is missing: libfuse3-dev was not installed when the build ran)` };
  } else {
    try {
      loaded = { mod: createRequire(import.meta.url)(ADDON_PATH) as NativeModule };
    } catch (e) {
      loaded = { error: `the FUSE addon does not load: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return loaded;
}

export function fuseAvailability(): FuseAvailability {
  const l = load();
  if ('error' in l) return { available: false, reason: l.error, enable: FUSE_ENABLE_COMMAND };
  if (!existsSync('/dev/fuse')) return { available: false, reason: '/dev/fuse does not exist (no fuse kernel module, or a container without the device)', enable: 'modprobe fuse (or run the container with --device /dev/fuse --cap-add SYS_ADMIN)' };
  return { available: true, libfuse: `${l.mod.FUSE_MAJOR}.${l.mod.FUSE_MINOR}` };
}

/** The addon's module; throws with the reason and the enabling command when it is unavailable. */
export function nativeModule(): NativeModule {
  const a = fuseAvailability();
  if (!a.available) throw new Error(`FUSE unavailable: ${a.reason}; enable with: ${a.enable}`);
  return (load() as { mod: NativeModule }).mod;
}
