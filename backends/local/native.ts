/**
 * Loading the local backend's optional native helper (backends/local/native, README there):
 * renameat2, fallocate, lseek SEEK_DATA/SEEK_HOLE and copy_file_range, which Node's fs does not
 * have. Without it the local backend declares the capabilities they give absent and behaves as
 * before (no exchange of names, no real allocation or hole punching, no hole map, range copies
 * through Portico).
 */
import { loadAddon, type AddonLoad } from '../../src/util/native-addon.ts';

export interface LocalNative {
  renameat2(oldDirFd: number, oldName: string, newDirFd: number, newName: string, flags: number): Promise<number>;
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<number>;
  /** lseek with SEEK_DATA or SEEK_HOLE: the offset found (ENXIO at or past the end, or no data after offset). */
  seek(fd: number, offset: number, whence: number): Promise<number>;
  /** Positioned copy of up to `length` bytes; fewer at the source's end (0 past it). */
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, length: number): Promise<number>;
  /**
   * lstat of each name in the directory `dirFd` (statx AT_SYMLINK_NOFOLLOW, readlinkat for links),
   * synchronously; the figures in one buffer (decodeStatPage). Absent from an addon built before it.
   */
  statNames?(dirFd: number, names: readonly string[]): NativeStatPage;
  /** statNames on libuv's thread pool: one round trip for the whole page. */
  statNamesAsync?(dirFd: number, names: readonly string[]): Promise<NativeStatPage>;
  /**
   * A small regular file read whole in one synchronous call: open(path, O_RDONLY | O_NOFOLLOW |
   * O_NONBLOCK), the descriptor confined by its /proc path (== root or under rootPrefix) — or, given
   * a descriptor of the root and the path below it, openat2 beneath it with no symbolic link on the
   * way, which needs no /proc check — statx into
   * statOut (STAT_FIELDS int64, decodeStatPage's layout), read, close. Undefined whenever anything is
   * unusual (the caller takes the general path). Absent from an addon built before it.
   */
  readSmall?(path: string, root: string, rootPrefix: string, maxBytes: number, statOut: ArrayBuffer, rootFd?: number, relPath?: string): Buffer | undefined;
  /**
   * open(2) of `relPath` (no leading '/'; '.' for the root) below the root's descriptor by openat2
   * with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, O_CLOEXEC added,
   * synchronously: the kernel confines the open (O_CREAT included), so no /proc check follows. The
   * descriptor, or -errno; -ENOSYS where openat2 is missing or filtered. Absent from an addon built
   * before it.
   */
  openBeneath?(rootFd: number, relPath: string, flags: number, mode: number): number;
  RENAME_NOREPLACE: number;
  RENAME_EXCHANGE: number;
  FALLOC_FL_KEEP_SIZE: number;
  FALLOC_FL_PUNCH_HOLE: number;
  FALLOC_FL_ZERO_RANGE: number;
  SEEK_DATA: number;
  SEEK_HOLE: number;
}

/** What statNames answers: STAT_FIELDS int64 per name (local_addon.cc), and [index, target, ...] of its links. */
export interface NativeStatPage {
  nums: ArrayBuffer;
  targets: Array<number | string>;
}

/** The command that builds it (README, test warnings). */
export const LOCAL_NATIVE_ENABLE = 'npm run build:local (needs a C++ compiler)';

/**
 * The build's output, or LOCAL_ADDON_PATH (an addon built elsewhere; '' turns it off). Named like
 * FUSE_ADDON_PATH, outside PORTICO_*: those are configuration keys (src/config/load.ts).
 */
const ADDON_PATH = process.env.LOCAL_ADDON_PATH ?? new URL('./native/build/Release/portico_local.node', import.meta.url).pathname;

let loaded: AddonLoad<LocalNative> | undefined;

function load(): AddonLoad<LocalNative> {
  return (loaded ??=
    process.platform !== 'linux'
      ? { error: 'the local backend\'s native helper is Linux-only' }
      : loadAddon<LocalNative>(ADDON_PATH, 'the local backend\'s native helper', 'LOCAL_ADDON_PATH'));
}

export type LocalNativeAvailability = { available: true } | { available: false; reason: string; enable: string };

export function localNativeAvailability(): LocalNativeAvailability {
  const l = load();
  return 'error' in l ? { available: false, reason: l.error, enable: LOCAL_NATIVE_ENABLE } : { available: true };
}

/** The helper's module, or undefined when it is not available. */
export function localNative(): LocalNative | undefined {
  const l = load();
  return 'mod' in l ? l.mod : undefined;
}
