/**
 * Open-file objects of the local backend: a BackendFile over a raw descriptor, and the streaming
 * writer that stages into a hidden temp file and lets the backend publish it on commit.
 *
 * fstat of an open descriptor is always made synchronously (`fstatSync`): once a file is open its
 * inode is in memory, so fstat never waits for the device on a local file system (a few µs), while
 * a thread-pool round trip costs ~20 µs of CPU plus a wake-up of the event loop. Small reads and
 * read-only closes are inline only while the breaker of inline-io.ts allows it, and so are the
 * first INLINE_MAX_WRITE bytes a writer stages (a small file) and those of a file created empty
 * through a LocalFile, with its close (the write breaker); other writes, truncates and fsync always
 * use the thread pool.
 */
import {
  close as closeCb, closeSync, fchmod, fchown, fdatasync, fstatSync, ftruncate, futimes, read as fsReadCb, readSync, write as fsWriteCb,
  writeSync, writev as fsWritevCb, writevSync, type BigIntStats,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { AllocateOp, BackendFile, BackendStat, BackendWriter, SetMetadata, TimeNs } from '../../src/vfs/backend.ts';
import type { LocalNative } from './native.ts';
import { toVfsError, VfsError } from '../../src/vfs/errors.ts';
import { baseName } from '../../src/vfs/path.ts';
import { INLINE_MAX_READ, INLINE_MAX_WRITE, type InlineIo } from './inline-io.ts';
import type { SharedFd } from './fd-cache.ts';

/** What a LocalWriter needs from its backend. */
export interface WriterHost {
  /**
   * Renames the temp file into place and closes descriptor `fd` (also when it fails); `durable`
   * settles once the new name is on stable storage (the directory fsync, when the backend fsyncs).
   */
  publish(fd: number, temp: string, path: string, exclusive: boolean, meta: SetMetadata | undefined): Promise<{ stat: BackendStat; durable: Promise<void> }>;
  discard(temp: string): Promise<void>;
}

/**
 * ns -> seconds as utimes() wants them. Rounded to the µs first: a double holds ~0.2 µs at today's
 * epoch and libuv truncates it, so reading a time back and writing it again must not drift by 1 µs.
 */
export function nsToSeconds(ns: TimeNs): number {
  return Number((ns + 500n) / 1000n) / 1e6;
}

export function toStat(name: string, st: BigIntStats, target?: string): BackendStat {
  const out: BackendStat = {
    name,
    type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file',
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    atimeNs: st.atimeNs,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    // The inode number alone is reused at once after a delete (ext4 hands the freed one to the next
    // create): with the birth time it names one file (src/vfs/change-tracker.ts, identity). Where the
    // file system keeps no birth time (libuv reports 0) a quickly reused inode can hide a replacement.
    nativeId: st.birthtimeNs !== 0n ? `${st.dev}:${st.ino}:${st.birthtimeNs}` : `${st.dev}:${st.ino}`,
  };
  // statx reports no btime on some filesystems; libuv leaves it 0 then.
  if (st.birthtimeNs !== 0n) out.birthtimeNs = st.birthtimeNs;
  if (target !== undefined) out.target = target;
  return out;
}

export async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const done = await readIntoAt(fh, offset, buf);
  return done === length ? buf : buf.subarray(0, done);
}

export async function readIntoAt(fh: FileHandle, offset: number, target: Uint8Array): Promise<number> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

export async function applyMetaToFd(fd: number, meta: SetMetadata): Promise<void> {
  if (meta.mode !== undefined) await fsCall((cb) => fchmod(fd, meta.mode! & 0o7777, cb));
  if (meta.uid !== undefined || meta.gid !== undefined) await fsCall((cb) => fchown(fd, meta.uid ?? -1, meta.gid ?? -1, cb));
  if (meta.atimeNs !== undefined || meta.mtimeNs !== undefined) {
    let { atimeNs, mtimeNs } = meta;
    if (atimeNs === undefined || mtimeNs === undefined) {
      const st = fstatSync(fd, { bigint: true });
      atimeNs ??= st.atimeNs;
      mtimeNs ??= st.mtimeNs;
    }
    await fsCall((cb) => futimes(fd, nsToSeconds(atimeNs!), nsToSeconds(mtimeNs!), cb));
  }
}

/**
 * Closes descriptors of LocalFiles that were dropped without close() (a bug elsewhere): the
 * descriptor is this object's alone until close(), so closing it here can never hit a reused number.
 */
const leakedFds = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // already gone
  }
});

/**
 * A dropped LocalFile over a cached descriptor (fd-cache.ts) gives up its use of it and never
 * closes it: the descriptor is the cache's and other files may be reading through it.
 */
const leakedShares = new FinalizationRegistry<SharedFd>((shared) => shared.release());

/**
 * How long after the open the open's own fstat answers the first stat() (the VFS asks for the
 * attributes right after opening to read): within it, the file could as well have changed just
 * after that stat as just after the open.
 */
const OPEN_STAT_MS = 1;

function fsRead(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsReadCb(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

function fsWrite(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWriteCb(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

function fsWritev(fd: number, bufs: readonly Uint8Array[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWritevCb(fd, bufs as NodeJS.ArrayBufferView[], pos, (e, n) => (e ? reject(e) : resolve(n))));
}

function fsCall(call: (cb: (e: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => call((e) => (e ? reject(e) : resolve())));
}

/**
 * Thread-pool calls in flight on one raw descriptor. Like a FileHandle, its owner closes the
 * descriptor only once they have settled: a number released early could be reused by another open
 * while a call still writes through it.
 */
class FdCalls {
  private inFlight = 0;
  private waiters: Array<() => void> = [];

  async run<T>(call: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await call();
    } finally {
      if (--this.inFlight === 0) {
        const w = this.waiters;
        this.waiters = [];
        for (const resolve of w) resolve();
      }
    }
  }

  /** Whether no call is in flight. */
  get idle(): boolean {
    return this.inFlight === 0;
  }

  /** Resolves once no call is in flight. */
  settled(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * A file opened for random access, over a raw descriptor (not a FileHandle): small reads, fstat
 * and the close of a read-only descriptor can then be made inline (inline-io.ts), and the
 * callback API costs less per call than fs/promises. Like a FileHandle, close() waits for the
 * calls in flight, so a descriptor number is never released while a thread-pool call still uses it.
 */
export class LocalFile implements BackendFile {
  private readonly fd: number;
  private readonly path: string;
  private readonly writable: boolean;
  private readonly io: InlineIo;
  private closed = false;
  private readonly calls = new FdCalls();
  /** The cached descriptor this file reads through (fd-cache.ts): released, never closed, at close(). */
  private readonly shared: SharedFd | undefined;
  /** The fstat made by the open, and when: answers the first stat() within OPEN_STAT_MS. */
  private openStat: BigIntStats | undefined;
  private readonly openedAt: number;
  /**
   * The write breaker, for a file its open found empty (a create): its first INLINE_MAX_WRITE
   * bytes are written inline and its descriptor is closed inline while the breaker allows it, as
   * LocalWriter does for a small file (no page of an empty file has to be read from the device
   * first, and the close of a file that was never truncated starts no writeback on ext4). Dropped
   * by a truncate.
   */
  private writeIo: InlineIo | undefined;

  constructor(fd: number, path: string, writable: boolean, io: InlineIo, opened?: { shared?: SharedFd; st?: BigIntStats; writeIo?: InlineIo }) {
    this.fd = fd;
    this.path = path;
    this.writable = writable;
    this.io = io;
    this.shared = opened?.shared;
    this.openStat = opened?.st;
    this.writeIo = writable ? opened?.writeIo : undefined;
    this.openedAt = this.openStat !== undefined ? performance.now() : 0;
    if (this.shared !== undefined) leakedShares.register(this, this.shared, this);
    else leakedFds.register(this, fd, this);
  }

  private live(): number {
    if (this.closed) throw new VfsError('EBADF', undefined, { path: this.path });
    return this.fd;
  }

  /** Runs a thread-pool call on the descriptor, counted so close() can wait for it. */
  private async tracked<T>(call: (fd: number) => Promise<T>): Promise<T> {
    const fd = this.live();
    try {
      return await this.calls.run(() => call(fd));
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    const n = await this.readInto(offset, buf);
    return n === length ? buf : buf.subarray(0, n);
  }

  async readInto(offset: number, target: Uint8Array): Promise<number> {
    if (target.length <= INLINE_MAX_READ && this.io.ok) {
      const fd = this.live();
      try {
        return this.io.run(() => {
          let done = 0;
          while (done < target.length) {
            const n = readSync(fd, target, done, target.length - done, offset + done);
            if (n === 0) break;
            done += n;
          }
          return done;
        });
      } catch (e) {
        throw toVfsError(e, this.path);
      }
    }
    return this.tracked(async (fd) => {
      let done = 0;
      while (done < target.length) {
        const n = await fsRead(fd, target, done, target.length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    });
  }

  async write(offset: number, data: Uint8Array): Promise<number> {
    // The open's fstat no longer describes the file.
    this.openStat = undefined;
    const wio = this.writeIo;
    // Inline only when no thread-pool call is in flight on the descriptor: one still running was
    // asked for first and must not land after this write.
    if (wio !== undefined && this.inlineWrite(offset, data.length)) {
      const fd = this.live();
      try {
        return wio.run(() => {
          let done = 0;
          while (done < data.length) done += writeSync(fd, data, done, data.length - done, offset + done);
          return done;
        });
      } catch (e) {
        throw toVfsError(e, this.path);
      }
    }
    return this.tracked(async (fd) => {
      let done = 0;
      while (done < data.length) done += await fsWrite(fd, data, done, data.length - done, offset + done);
      return done;
    });
  }

  async truncate(size: number): Promise<void> {
    this.openStat = undefined;
    this.writeIo = undefined;
    return this.tracked((fd) => fsCall((cb) => ftruncate(fd, size, cb)));
  }

  async sync(): Promise<void> {
    return this.tracked((fd) => fsCall((cb) => fdatasync(fd, cb)));
  }

  /**
   * The native helper (native.ts), set by the backend when loaded: allocate, seekData and
   * copyRange use it on this descriptor (the backend declares fileAllocate, sparseSeek and
   * rangeCopy only then).
   */
  native: LocalNative | undefined;

  private helper(): LocalNative {
    if (this.native === undefined) throw new VfsError('ENOTSUP', 'the local backend\'s native helper is not loaded', { path: this.path });
    return this.native;
  }

  /** BackendFile.allocate: fallocate(2) on the descriptor (EOPNOTSUPP from the file system: ENOTSUP). */
  async allocate(op: AllocateOp, offset: number, length: number, keepSize: boolean): Promise<void> {
    const n = this.helper();
    const mode = op === 'punch' ? n.FALLOC_FL_PUNCH_HOLE | n.FALLOC_FL_KEEP_SIZE : (op === 'zero' ? n.FALLOC_FL_ZERO_RANGE : 0) | (keepSize ? n.FALLOC_FL_KEEP_SIZE : 0);
    this.openStat = undefined;
    this.writeIo = undefined;
    await this.tracked((fd) => n.fallocate(fd, mode, offset, length));
  }

  /** BackendFile.seekData: lseek SEEK_DATA/SEEK_HOLE on the descriptor; ENXIO is "none". */
  async seekData(offset: number, what: 'data' | 'hole'): Promise<number | undefined> {
    const n = this.helper();
    const fd = this.live();
    try {
      return await this.calls.run(() => n.seek(fd, offset, what === 'data' ? n.SEEK_DATA : n.SEEK_HOLE));
    } catch (e) {
      if ((e as { code?: unknown }).code === 'ENXIO') return undefined;
      throw toVfsError(e, this.path);
    }
  }

  /**
   * BackendFile.copyRange: copy_file_range(2) between this descriptor and the target's (another
   * LocalFile: both confined when opened). The kernel clones or copies inside the file system; the
   * bytes never reach user space. Two file systems, overlapping ranges of one file or a file system
   * without it: ENOTSUP (the caller copies through Portico).
   */
  async copyRange(offset: number, target: BackendFile, targetOffset: number, length: number): Promise<number> {
    const n = this.helper();
    if (!(target instanceof LocalFile)) throw new VfsError('ENOTSUP', 'range copy to a file of another backend', { path: this.path });
    const fd = this.live();
    const tfd = target.live();
    target.openStat = undefined;
    target.writeIo = undefined;
    try {
      return await this.calls.run(() => target.calls.run(() => n.copyFileRange(fd, offset, tfd, targetOffset, length)));
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'EXDEV' || code === 'EINVAL' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        throw new VfsError('ENOTSUP', `copy_file_range: ${String(code)}`, { path: this.path, cause: e });
      }
      throw toVfsError(e, this.path);
    }
  }

  /**
   * BackendFile.lendDescriptor: the descriptor, counted as a call in flight until `use` settles, so
   * close() never releases the number while the kernel still reads through it (a reused number would
   * send another file's bytes).
   */
  async lendDescriptor<T>(use: (fd: number) => Promise<T>): Promise<T> {
    const fd = this.live();
    return this.calls.run(() => use(fd));
  }

  /**
   * BackendFile.writeVia: a write write() would make inline is made so; any other lends the
   * descriptor of the file (its own, opened for writing), counted as a call in flight until `use`
   * settles, as a thread-pool write is: a later inline write waits its turn (write()), and close()
   * waits for it.
   */
  async writeVia(offset: number, data: Uint8Array, use: (fd: number) => Promise<number>): Promise<number> {
    if (!this.writable || this.shared !== undefined) throw new VfsError('EBADF', 'not open for writing', { path: this.path });
    if (this.inlineWrite(offset, data.length)) return this.write(offset, data);
    // The open's fstat no longer describes the file.
    this.openStat = undefined;
    return this.tracked(use);
  }

  /** Whether write() makes a write of `length` bytes at `offset` inline now. */
  private inlineWrite(offset: number, length: number): boolean {
    const wio = this.writeIo;
    return wio !== undefined && offset + length <= INLINE_MAX_WRITE && this.calls.idle && wio.ok;
  }

  async stat(): Promise<BackendStat> {
    try {
      const fd = this.live();
      const first = this.openStat;
      if (first !== undefined) {
        this.openStat = undefined;
        if (performance.now() - this.openedAt <= OPEN_STAT_MS) return toStat(baseName(this.path), first);
      }
      return toStat(baseName(this.path), fstatSync(fd, { bigint: true }));
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.calls.settled();
    if (this.shared !== undefined) {
      leakedShares.unregister(this);
      this.shared.release();
      return;
    }
    leakedFds.unregister(this);
    try {
      // A read-only descriptor has nothing to flush: closed inline when allowed. A written one may
      // flush on close (network file systems report write errors there): thread pool.
      if (!this.writable && this.io.ok) this.io.run(() => closeSync(this.fd));
      else if (this.writeIo?.ok) this.writeIo.run(() => closeSync(this.fd));
      else await fsCall((cb) => closeCb(this.fd, cb));
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }
}

/**
 * The streaming writer: bytes go to a hidden temp file (a raw descriptor) that the backend
 * publishes under the real name on commit. Small files are written inline while the breaker allows
 * it (the first INLINE_MAX_WRITE bytes of a file, in calls of at most that size): a 4 KiB PUT then
 * makes no thread-pool round trip for its data (~40-60 µs each on a busy 2-core machine, more than
 * the write itself). Larger uploads use the thread pool from the first byte past that limit, so a
 * long stream of writes that the kernel throttles (dirty-page limits) never holds the event loop.
 */
export class LocalWriter implements BackendWriter {
  private readonly backend: WriterHost;
  private readonly fd: number;
  private readonly io: InlineIo;
  private readonly path: string;
  private readonly temp: string;
  private readonly exclusive: boolean;
  private position = 0;
  private done = false;
  /** Thread-pool writes in flight: commit and abort wait for them before the descriptor is closed. */
  private readonly calls = new FdCalls();

  constructor(backend: WriterHost, fd: number, io: InlineIo, path: string, temp: string, exclusive: boolean) {
    this.backend = backend;
    this.fd = fd;
    this.io = io;
    this.path = path;
    this.temp = temp;
    this.exclusive = exclusive;
  }

  /** Whether `bytes` more, starting at `pos`, may be written inline. */
  private inline(pos: number, bytes: number): boolean {
    return pos + bytes <= INLINE_MAX_WRITE && this.io.ok;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    // Reserve the range before awaiting, so overlapping calls still land in order.
    let pos = this.position;
    this.position += chunk.length;
    let off = 0;
    try {
      if (this.inline(pos, chunk.length)) {
        this.io.run(() => {
          while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off, pos + off);
        });
        return;
      }
      await this.calls.run(async () => {
        while (off < chunk.length) {
          const n = await fsWrite(this.fd, chunk, off, chunk.length - off, pos);
          off += n;
          pos += n;
        }
      });
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  /**
   * Writes several chunks in order with one pwritev(2) (socket chunks of an HTTP body, 16-64 KiB
   * each, without first copying them into one buffer). A short write continues with the rest.
   */
  async writev(chunks: readonly Uint8Array[]): Promise<void> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    let total = 0;
    for (const c of chunks) total += c.length;
    let pos = this.position;
    this.position += total;
    const inline = this.inline(pos, total);
    try {
      let rest: Uint8Array[] = chunks.filter((c) => c.length > 0);
      while (rest.length > 0) {
        // Linux takes at most IOV_MAX (1024) buffers per call.
        const batch = rest.length > 1024 ? rest.slice(0, 1024) : rest;
        let n = inline ? this.io.run(() => writevSync(this.fd, batch, pos)) : await this.calls.run(() => fsWritev(this.fd, batch, pos));
        if (n === 0) throw new VfsError('EIO', 'pwritev wrote nothing', { path: this.path });
        pos += n;
        const next: Uint8Array[] = [];
        for (let i = 0; i < rest.length; i++) {
          const c = rest[i]!;
          if (n >= c.length) {
            n -= c.length;
            continue;
          }
          next.push(n === 0 ? c : c.subarray(n));
          n = 0;
        }
        rest = next;
      }
    } catch (e) {
      throw toVfsError(e, this.path);
    }
  }

  async commit(meta?: SetMetadata): Promise<BackendStat> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    this.done = true;
    await this.calls.settled();
    let published: { stat: BackendStat; durable: Promise<void> };
    try {
      published = await this.backend.publish(this.fd, this.temp, this.path, this.exclusive, meta);
    } catch (e) {
      // publish closed the descriptor (also when it failed).
      await this.backend.discard(this.temp);
      throw toVfsError(e, this.path);
    }
    try {
      await published.durable;
    } catch (e) {
      throw toVfsError(e, this.path);
    }
    return published.stat;
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.calls.settled();
    await fsCall((cb) => closeCb(this.fd, cb)).catch(() => {});
    await this.backend.discard(this.temp);
  }
}
