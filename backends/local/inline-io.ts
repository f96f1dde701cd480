/**
 * Synchronous ("inline") system calls for the local backend's cheap cases, with a breaker.
 *
 * Why: every asynchronous fs call in Node is a round trip through the libuv thread pool — a queue
 * lock, a worker wake-up, the system call, an eventfd write and an event-loop wake-up — about 20 µs
 * of CPU and, on a busy machine, a context switch each way. A 4 KiB WebDAV GET made five of them
 * (lstat, open, readlink, read, close): more than the HTTP work itself. When the kernel answers
 * from its caches (dentries, inodes, page cache) the same calls made synchronously take 2-5 µs
 * each. That is what nginx and Apache do (blocking calls in their workers).
 *
 * The risk of a synchronous call is that it waits for the device (a cold cache on a disk, a slow
 * network or FUSE file system) and the whole event loop waits with it. So:
 * - by default ('auto') inline calls are made only on local file systems (ext4, xfs, btrfs, tmpfs,
 *   ... by statfs type): a hung NFS or FUSE server must not freeze the whole gateway;
 * - only calls that usually complete in memory are made inline: lstat, read-only open, fstat,
 *   readlink, reads of at most INLINE_MAX_READ bytes, the close of a read-only descriptor, and a
 *   whole small-file write — creating the temp file, its first INLINE_MAX_WRITE bytes (page cache),
 *   its close and the rename that publishes it (a journaled metadata change each on ext4/xfs, ~5-15
 *   µs when the journal is not committing); likewise a file created through openFile (NFS OPEN
 *   create, SMB CREATE, FUSE create), its first INLINE_MAX_WRITE bytes while it was empty at the
 *   open, and its close. Larger writes, truncates, unlinks, directory changes and fsync always use
 *   the thread pool (fsync always waits for the device; a long stream of writes is what the kernel
 *   throttles when dirty pages pile up);
 * - writes have a breaker of their own (`InlineIo.forWrites`), with a much lower threshold: a
 *   create or rename normally takes 15-50 µs, but on a file system busy with journal commits or
 *   discards (seen here after deleting many files: ~0.9 ms per create, for minutes) each one stalls
 *   the event loop for that long without ever reaching INLINE_SLOW_MS. INLINE_SLOW_WRITE_MS sends
 *   writes back to the thread pool (where the stall costs only that request) while lookups and
 *   reads stay inline.
 * - every inline call is timed. A call slower than INLINE_SLOW_MS may have gone to the device, or
 *   the process may just have been preempted on a busy machine (the two look the same from here),
 *   so one slow call proves nothing; INLINE_SLOW_PER_SECOND of them within a second, or one call
 *   over INLINE_STALL_MS, trips the breaker: the backend uses the thread pool for everything for
 *   INLINE_BACKOFF_MS, then tries inline calls again. A cold disk costs a few stalls per back-off
 *   period, not one per request. (Reads from a cold SSD, ~0.1 ms, stay inline: about what a
 *   thread-pool round trip costs anyway; a disk seek, 5-15 ms, counts.)
 * - before it trips, the breaker asks the kernel whether the slow calls were preemption: the
 *   thread's run delay (time runnable but waiting for a CPU, /proc/thread-self/schedstat, read only
 *   when a call was slow) since the window's first slow call. When it grew by at least as much as
 *   the slow calls took, the machine was short of CPU, not waiting for a device, and the breaker
 *   stays closed. Measured on the shared 2-core development VM at load 8-16: the read breaker
 *   tripped within seconds of a 4 KiB GET load and stayed tripped, so every GET made three
 *   thread-pool round trips (open, pread, close: ~6 futex calls and an event-loop wake-up each)
 *   instead of three inline calls — more CPU on a machine that had none to spare. A device stall
 *   on a CPU-starved machine can be taken for preemption; the event loop then waits for the
 *   device as it already waits for the CPU, and a single call over INLINE_STALL_MS still trips
 *   unless the run delay explains it too.
 * - long loops (a directory page's lstats) yield to the event loop every INLINE_BATCH calls.
 *
 * `inlineIo: false` (share option) turns it off, `true` forces it on a network file system.
 */
import { readFileSync, statfsSync } from 'node:fs';

/**
 * A synchronous call slower than this may have waited for the device. Well above a cold SSD read
 * (~0.1 ms, fine to wait for inline) and above most preemptions: on a 2-core machine at load 8, a
 * tight loop of lstat calls saw ~10 calls a second over 1 ms but only ~1 over 5 ms.
 */
export const INLINE_SLOW_MS = 5;
/** The write breaker's threshold: a create, small write, close or rename slower than this is slow. */
export const INLINE_SLOW_WRITE_MS = 0.5;
/** This many slow calls within one second trip the breaker. */
export const INLINE_SLOW_PER_SECOND = 10;
/** One call this slow trips the breaker at once. */
export const INLINE_STALL_MS = 100;
/** How long the thread pool is used after the breaker tripped. */
export const INLINE_BACKOFF_MS = 10_000;
/** Reads up to this size may be made inline (one small file, a PROPFIND-sized page of data). */
export const INLINE_MAX_READ = 64 * 1024;
/** A writer's first bytes up to this offset may be written inline (a small file: one 4 KiB PUT). */
export const INLINE_MAX_WRITE = 64 * 1024;
/** Inline calls made in a row before yielding to the event loop. */
export const INLINE_BATCH = 128;

/**
 * statfs f_type of local, block-device or memory file systems (linux/magic.h): ext2/3/4, xfs,
 * btrfs, tmpfs, ramfs, zfs, f2fs, overlayfs, jfs, reiserfs, bcachefs, squashfs, erofs, exfat, vfat,
 * ntfs3/ntfs. Anything else (nfs, cifs/smb, fuse, ceph, 9p, ...) is not inline under 'auto'.
 */
const LOCAL_FS_TYPES = new Set<number>([
  0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x858458f6, 0x2fc12fc1, 0xf2f52010, 0x794c7630, 0x3153464a, 0x52654973,
  0xca451a4e, 0x73717368, 0xe0f5e1e2, 0x2011bab0, 0x4d44, 0x7366746e, 0x5346544e,
]);

/** Whether the file system holding `dir` is one 'auto' makes inline calls on. */
export function isLocalFileSystem(dir: string): boolean {
  try {
    return LOCAL_FS_TYPES.has(Number(statfsSync(dir).type) >>> 0);
  } catch {
    return false;
  }
}

/**
 * The calling thread's run delay in ms: how long it has been runnable but waiting for a CPU since
 * it started (field 2 of /proc/thread-self/schedstat, ns). Undefined where the kernel does not say.
 */
export function threadRunDelayMs(): number | undefined {
  try {
    const f = readFileSync('/proc/thread-self/schedstat', 'latin1');
    const ns = Number(f.split(' ')[1]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

export class InlineIo {
  readonly enabled: boolean;
  /** A call slower than this counts as slow. */
  private readonly slowMs: number;
  private readonly runDelayMs: () => number | undefined;
  /** Date.now() until which the thread pool is used; 0 = inline allowed. */
  private asyncUntil = 0;
  private windowStart = 0;
  private slowInWindow = 0;
  /** ms the window's slow calls took, its first excepted (it was slow before the run delay was read). */
  private slowMsInWindow = 0;
  /** The run delay when the window's first slow call ended. */
  private runDelayAtStart: number | undefined;
  /** Times the breaker tripped (tests, diagnostics). */
  trips = 0;
  /** Times slow calls were put down to preemption and the breaker stayed closed (tests, diagnostics). */
  contended = 0;

  /** `runDelayMs`: the thread's run delay so far (threadRunDelayMs; tests give their own). */
  constructor(enabled: boolean, slowMs = INLINE_SLOW_MS, runDelayMs: () => number | undefined = threadRunDelayMs) {
    this.enabled = enabled;
    this.slowMs = slowMs;
    this.runDelayMs = runDelayMs;
  }

  /** The breaker for small-file writes (see the file comment). */
  static forWrites(enabled: boolean, runDelayMs?: () => number | undefined): InlineIo {
    return new InlineIo(enabled, INLINE_SLOW_WRITE_MS, runDelayMs);
  }

  /** Whether synchronous calls may be made now. */
  get ok(): boolean {
    if (!this.enabled) return false;
    if (this.asyncUntil === 0) return true;
    if (Date.now() < this.asyncUntil) return false;
    this.asyncUntil = 0;
    return true;
  }

  /** Runs one synchronous call, timed (its result counts whatever the time). */
  run<T>(call: () => T): T {
    const t0 = performance.now();
    try {
      return call();
    } finally {
      const ms = performance.now() - t0;
      if (ms > this.slowMs) this.slow(ms);
    }
  }

  /** Records a slow call (or batch of calls) of `ms` milliseconds. */
  slow(ms: number): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      if (ms >= INLINE_STALL_MS) return this.trip();
      // Nothing to compare this call with: the run delay is read after it.
      this.windowStart = now;
      this.slowInWindow = 1;
      this.slowMsInWindow = 0;
      this.runDelayAtStart = this.runDelayMs();
      return;
    }
    this.slowMsInWindow += ms;
    if (ms < INLINE_STALL_MS && ++this.slowInWindow < INLINE_SLOW_PER_SECOND) return;
    if (this.preempted()) {
      // The CPU, not the device: start over (the run delay from here on is the next window's).
      this.contended++;
      this.windowStart = now;
      this.slowInWindow = 1;
      this.slowMsInWindow = 0;
      this.runDelayAtStart = this.runDelayMs();
      return;
    }
    this.trip();
  }

  /** Whether the thread waited for a CPU since the window's first slow call as long as its later slow calls took. */
  private preempted(): boolean {
    const start = this.runDelayAtStart;
    if (start === undefined) return false;
    const end = this.runDelayMs();
    return end !== undefined && end - start >= this.slowMsInWindow;
  }

  trip(): void {
    this.asyncUntil = Date.now() + INLINE_BACKOFF_MS;
    this.slowInWindow = 0;
    this.trips++;
  }
}

/** Lets other callbacks run (between batches of inline calls). */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
