/**
 * A pass-through Backend that times and counts every call, in the manner of a stacked Samba VFS
 * module: the VFS sees an ordinary Backend and never knows it is being measured.
 *
 * Cost per call: one performance.now() pair and a few additions on an OpStats resolved once per
 * (backend, op) at wrap time (metrics.ts explains why not prom-client's own counters here). Series
 * appear in /metrics only once an op has been called.
 *
 * Optional methods (rename, exchange, copy, symlink, readlink, link, createPatchWriter, readVersion) are defined only when the inner backend
 * has them, because the VFS treats their presence as part of the capability contract.
 */
import { performance } from 'node:perf_hooks';
import type {
  AllocateOp,
  Backend,
  BackendFile,
  BackendStat,
  BackendWriter,
  ContentVersion,
  FileOwner,
  ListOptions,
  ListPage,
  OpenFileOptions,
  PatchWriter,
  SetMetadata,
  StatFs,
  WriterOptions,
} from '../vfs/backend.ts';
import { VfsError } from '../vfs/errors.ts';
import type { Metrics, OpStats } from './metrics.ts';

/** Times one operation name for one backend label. */
class OpMeter {
  private readonly stats: OpStats;

  constructor(metrics: Metrics, label: string, op: string) {
    this.stats = metrics.backendStats(label, op);
  }

  /** Records a success started at t0 (performance.now()) and passes the result through. */
  ok<T>(t0: number, value: T): T {
    this.stats.recordOk((performance.now() - t0) / 1000);
    return value;
  }

  /**
   * Records how `p`, started at t0, settles and passes it through: `then` instead of an async
   * wrapper with an await (about 180 bytes and a microtask hop less per call, issue 9). Used on the
   * calls every open makes (openFile and the file's own methods); a synchronous throw by the inner
   * call is the caller's to catch and record with fail().
   */
  track<T>(t0: number, p: Promise<T>): Promise<T> {
    return p.then((v) => this.ok(t0, v), (e: unknown) => {
      throw this.fail(t0, e);
    });
  }

  /** Records a failure started at t0 and returns the error so the caller can rethrow it. */
  fail(t0: number, err: unknown): unknown {
    // A non-VfsError from a backend is a bug there; the protocols will treat it as EIO, so count it as such.
    this.stats.record(err instanceof VfsError ? err.code : 'EIO', (performance.now() - t0) / 1000);
    return err;
  }
}

const BACKEND_OPS = [
  'stat', 'list', 'read', 'readSmall', 'openFile', 'createWriter', 'mkdir', 'rmdir', 'unlink', 'rename', 'exchange', 'copy', 'symlink',
  'readlink', 'link', 'setMetadata', 'truncate', 'statfs', 'check', 'close',
  'file.read', 'file.write', 'file.truncate', 'file.sync', 'file.stat', 'file.close', 'file.allocate', 'file.seek', 'file.copyRange',
  'file.lend',
  'writer.write', 'writer.commit', 'writer.abort',
] as const;

type Op = (typeof BACKEND_OPS)[number];
type Meters = Record<Op, OpMeter>;

/**
 * A metered BackendFile: methods on the prototype, so wrapping a file allocates one object with two
 * fields instead of seven closures (issue 9: every open of every protocol wraps its file).
 */
class MeteredFile implements BackendFile {
  protected readonly f: BackendFile;
  protected readonly m: Meters;

  constructor(f: BackendFile, m: Meters) {
    this.f = f;
    this.m = m;
  }

  read(offset: number, length: number): Promise<Buffer> {
    const t = performance.now();
    try { return this.m['file.read'].track(t, this.f.read(offset, length)); } catch (e) { return Promise.reject(this.m['file.read'].fail(t, e)); }
  }

  write(offset: number, data: Uint8Array): Promise<number> {
    const t = performance.now();
    try { return this.m['file.write'].track(t, this.f.write(offset, data)); } catch (e) { return Promise.reject(this.m['file.write'].fail(t, e)); }
  }

  truncate(size: number): Promise<void> {
    const t = performance.now();
    try { return this.m['file.truncate'].track(t, this.f.truncate(size)); } catch (e) { return Promise.reject(this.m['file.truncate'].fail(t, e)); }
  }

  sync(): Promise<void> {
    const t = performance.now();
    try { return this.m['file.sync'].track(t, this.f.sync()); } catch (e) { return Promise.reject(this.m['file.sync'].fail(t, e)); }
  }

  stat(): Promise<BackendStat> {
    const t = performance.now();
    try { return this.m['file.stat'].track(t, this.f.stat()); } catch (e) { return Promise.reject(this.m['file.stat'].fail(t, e)); }
  }

  close(): Promise<void> {
    const t = performance.now();
    try { return this.m['file.close'].track(t, this.f.close()); } catch (e) { return Promise.reject(this.m['file.close'].fail(t, e)); }
  }

  // The optional file calls (capabilities fileAllocate, sparseSeek, rangeCopy, descriptorReads), on the prototype:
  // the VFS calls them only when the capability says the inner file has them; ENOTSUP otherwise.
  allocate(op: AllocateOp, offset: number, length: number, keepSize: boolean): Promise<void> {
    const t = performance.now();
    if (this.f.allocate === undefined) return Promise.reject(new VfsError('ENOTSUP', 'no allocate on this backend'));
    try { return this.m['file.allocate'].track(t, this.f.allocate(op, offset, length, keepSize)); } catch (e) { return Promise.reject(this.m['file.allocate'].fail(t, e)); }
  }

  seekData(offset: number, what: 'data' | 'hole'): Promise<number | undefined> {
    const t = performance.now();
    if (this.f.seekData === undefined) return Promise.reject(new VfsError('ENOTSUP', 'no hole map on this backend'));
    try { return this.m['file.seek'].track(t, this.f.seekData(offset, what)); } catch (e) { return Promise.reject(this.m['file.seek'].fail(t, e)); }
  }

  copyRange(offset: number, target: BackendFile, targetOffset: number, length: number): Promise<number> {
    const t = performance.now();
    if (this.f.copyRange === undefined) return Promise.reject(new VfsError('ENOTSUP', 'no range copy on this backend'));
    // The inner file copies into the inner target: a metered target is unwrapped (one layer each).
    const inner = target instanceof MeteredFile ? target.f : target;
    try { return this.m['file.copyRange'].track(t, this.f.copyRange(offset, inner, targetOffset, length)); } catch (e) { return Promise.reject(this.m['file.copyRange'].fail(t, e)); }
  }

  /** A read the caller makes through the descriptor (a splice): file.lend, not file.read. */
  lendDescriptor<T>(use: (fd: number) => Promise<T>): Promise<T> {
    const t = performance.now();
    if (this.f.lendDescriptor === undefined) return Promise.reject(new VfsError('ENOTSUP', 'no descriptor on this backend'));
    try { return this.m['file.lend'].track(t, this.f.lendDescriptor(use)); } catch (e) { return Promise.reject(this.m['file.lend'].fail(t, e)); }
  }

  /** A write the file makes or the caller makes through its descriptor (FUSE, from its request buffer): file.write. */
  writeVia(offset: number, data: Uint8Array, use: (fd: number) => Promise<number>): Promise<number> {
    const t = performance.now();
    if (this.f.writeVia === undefined) return Promise.reject(new VfsError('ENOTSUP', 'no descriptor on this backend'));
    try { return this.m['file.write'].track(t, this.f.writeVia(offset, data, use)); } catch (e) { return Promise.reject(this.m['file.write'].fail(t, e)); }
  }
}

/** The same with readInto, for inner files that have it (its presence is part of the contract). */
class MeteredReadIntoFile extends MeteredFile {
  // Counted as file.read: the same operation without the allocation.
  readInto(offset: number, target: Uint8Array): Promise<number> {
    const t = performance.now();
    try { return this.m['file.read'].track(t, this.f.readInto!(offset, target)); } catch (e) { return Promise.reject(this.m['file.read'].fail(t, e)); }
  }
}

function wrapFile(f: BackendFile, m: Meters): BackendFile {
  return f.readInto ? new MeteredReadIntoFile(f, m) : new MeteredFile(f, m);
}

function wrapWriter(w: BackendWriter, m: Meters): BackendWriter {
  const wrapped: BackendWriter = {
    async write(chunk: Uint8Array): Promise<void> {
      const t = performance.now();
      try { return m['writer.write'].ok(t, await w.write(chunk)); } catch (e) { throw m['writer.write'].fail(t, e); }
    },
    async commit(meta?: SetMetadata): Promise<BackendStat> {
      const t = performance.now();
      try { return m['writer.commit'].ok(t, await w.commit(meta)); } catch (e) { throw m['writer.commit'].fail(t, e); }
    },
    async abort(): Promise<void> {
      const t = performance.now();
      try { return m['writer.abort'].ok(t, await w.abort()); } catch (e) { throw m['writer.abort'].fail(t, e); }
    },
  };
  if (w.writev) {
    const writev = w.writev.bind(w);
    // Counted as writer.write: the same operation for several chunks at once.
    wrapped.writev = async (chunks: readonly Uint8Array[]): Promise<void> => {
      const t = performance.now();
      try { return m['writer.write'].ok(t, await writev(chunks)); } catch (e) { throw m['writer.write'].fail(t, e); }
    };
  }
  return wrapped;
}

/**
 * Wraps `backend` so every call is recorded under `portico_backend_*{backend=label}`.
 * `label` is normally the share name.
 */
export function instrumentBackend(backend: Backend, metrics: Metrics, label: string): Backend {
  const b = backend;
  const m = {} as Meters;
  for (const op of BACKEND_OPS) m[op] = new OpMeter(metrics, label, op);

  const wrapped: Backend = {
    get kind(): string {
      return b.kind;
    },
    get capabilities() {
      return b.capabilities;
    },
    async stat(path: string): Promise<BackendStat> {
      const t = performance.now();
      try { return m.stat.ok(t, await b.stat(path)); } catch (e) { throw m.stat.fail(t, e); }
    },
    async list(path: string, options: ListOptions): Promise<ListPage> {
      const t = performance.now();
      try { return m.list.ok(t, await b.list(path, options)); } catch (e) { throw m.list.fail(t, e); }
    },
    async read(path: string, offset: number, length: number): Promise<Buffer> {
      const t = performance.now();
      try { return m.read.ok(t, await b.read(path, offset, length)); } catch (e) { throw m.read.fail(t, e); }
    },
    openFile(path: string, options: OpenFileOptions): Promise<BackendFile> {
      const t = performance.now();
      let p: Promise<BackendFile>;
      try { p = b.openFile(path, options); } catch (e) { return Promise.reject(m.openFile.fail(t, e)); }
      return p.then((f) => wrapFile(m.openFile.ok(t, f), m), (e: unknown) => {
        throw m.openFile.fail(t, e);
      });
    },
    async createWriter(path: string, options?: WriterOptions): Promise<BackendWriter> {
      const t = performance.now();
      try { return wrapWriter(m.createWriter.ok(t, await b.createWriter(path, options)), m); } catch (e) { throw m.createWriter.fail(t, e); }
    },
    async mkdir(path: string, mode?: number, owner?: FileOwner): Promise<BackendStat> {
      const t = performance.now();
      try { return m.mkdir.ok(t, await b.mkdir(path, mode, owner)); } catch (e) { throw m.mkdir.fail(t, e); }
    },
    async rmdir(path: string): Promise<void> {
      const t = performance.now();
      try { return m.rmdir.ok(t, await b.rmdir(path)); } catch (e) { throw m.rmdir.fail(t, e); }
    },
    async unlink(path: string): Promise<void> {
      const t = performance.now();
      try { return m.unlink.ok(t, await b.unlink(path)); } catch (e) { throw m.unlink.fail(t, e); }
    },
    async setMetadata(path: string, meta: SetMetadata): Promise<BackendStat> {
      const t = performance.now();
      try { return m.setMetadata.ok(t, await b.setMetadata(path, meta)); } catch (e) { throw m.setMetadata.fail(t, e); }
    },
    async truncate(path: string, size: number): Promise<void> {
      const t = performance.now();
      try { return m.truncate.ok(t, await b.truncate(path, size)); } catch (e) { throw m.truncate.fail(t, e); }
    },
    async statfs(): Promise<StatFs> {
      const t = performance.now();
      try { return m.statfs.ok(t, await b.statfs()); } catch (e) { throw m.statfs.fail(t, e); }
    },
    async check(): Promise<void> {
      const t = performance.now();
      try { return m.check.ok(t, await b.check()); } catch (e) { throw m.check.fail(t, e); }
    },
    async close(): Promise<void> {
      const t = performance.now();
      try { return m.close.ok(t, await b.close()); } catch (e) { throw m.close.fail(t, e); }
    },
  };

  if (b.rename) {
    const rename = b.rename.bind(b);
    wrapped.rename = async (from: string, to: string): Promise<void> => {
      const t = performance.now();
      try { return m.rename.ok(t, await rename(from, to)); } catch (e) { throw m.rename.fail(t, e); }
    };
  }
  if (b.exchange) {
    const exchange = b.exchange.bind(b);
    wrapped.exchange = async (x: string, y: string): Promise<void> => {
      const t = performance.now();
      try { return m.exchange.ok(t, await exchange(x, y)); } catch (e) { throw m.exchange.fail(t, e); }
    };
  }
  if (b.copy) {
    const copy = b.copy.bind(b);
    wrapped.copy = async (from: string, to: string): Promise<BackendStat> => {
      const t = performance.now();
      try { return m.copy.ok(t, await copy(from, to)); } catch (e) { throw m.copy.fail(t, e); }
    };
  }
  if (b.symlink) {
    const symlink = b.symlink.bind(b);
    wrapped.symlink = async (target: string, path: string, owner?: FileOwner): Promise<BackendStat> => {
      const t = performance.now();
      try { return m.symlink.ok(t, await symlink(target, path, owner)); } catch (e) { throw m.symlink.fail(t, e); }
    };
  }
  if (b.readlink) {
    const readlink = b.readlink.bind(b);
    wrapped.readlink = async (path: string): Promise<string> => {
      const t = performance.now();
      try { return m.readlink.ok(t, await readlink(path)); } catch (e) { throw m.readlink.fail(t, e); }
    };
  }
  if (b.link) {
    const link = b.link.bind(b);
    wrapped.link = async (existing: string, path: string): Promise<BackendStat> => {
      const t = performance.now();
      try { return m.link.ok(t, await link(existing, path)); } catch (e) { throw m.link.fail(t, e); }
    };
  }
  // Patch writes (capabilities.patchWrites): counted as createWriter / read; copyBase is forwarded.
  if (b.createPatchWriter) {
    const createPatchWriter = b.createPatchWriter.bind(b);
    wrapped.createPatchWriter = async (path: string, base: ContentVersion, options?: WriterOptions): Promise<PatchWriter> => {
      const t = performance.now();
      try {
        const w = m.createWriter.ok(t, await createPatchWriter(path, base, options));
        return { ...wrapWriter(w, m), copyBase: (start: number, end: number) => w.copyBase(start, end) };
      } catch (e) { throw m.createWriter.fail(t, e); }
    };
  }
  if (b.readVersion) {
    const readVersion = b.readVersion.bind(b);
    wrapped.readVersion = async (path: string, version: ContentVersion, offset: number, length: number): Promise<Buffer> => {
      const t = performance.now();
      try { return m.read.ok(t, await readVersion(path, version, offset, length)); } catch (e) { throw m.read.fail(t, e); }
    };
  }
  // Maintenance calls: forwarded without timing.
  if (b.readSmallSync) {
    const readSmallSync = b.readSmallSync.bind(b);
    // Counted when it answered: an undefined is no request of its own (the open that follows is).
    wrapped.readSmallSync = (path: string, maxBytes: number) => {
      const t = performance.now();
      const r = readSmallSync(path, maxBytes);
      return r === undefined ? undefined : m.readSmall.ok(t, r);
    };
  }
  if (b.recover) wrapped.recover = b.recover.bind(b);
  if (b.invalidate) wrapped.invalidate = b.invalidate.bind(b);
  if (b.willCreate) wrapped.willCreate = b.willCreate.bind(b);
  // Change watches (capabilities.watch): the watcher's events are not backend calls to time.
  if (b.watch) wrapped.watch = b.watch.bind(b);
  return wrapped;
}
