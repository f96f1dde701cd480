/**
 * Write staging for backends without random writes (object stores).
 *
 * An object can only be replaced whole, so writes go to a local temporary file (the stage) and the
 * file is published through an atomic BackendWriter on flush and on last close. One stage is shared
 * by every handle open on the same file, so two writers through two handles see each other's bytes
 * like they would on a disk. Nothing is visible to other readers until the upload commits, and a
 * failed upload leaves the previous object intact and the stage dirty, so a later flush can retry.
 *
 * A stage is in one of three modes:
 *
 * - `pending`: nothing changed yet; reads go to the backend. The first write or truncate decides
 *   the next mode from the file's current stat (taken then, not at open: a writer that closed
 *   meanwhile may have replaced the object).
 * - `whole`: the temp file holds the entire content (a created or truncated file, a small file, or a
 *   backend without `patchWrites`): the existing content is copied in at the first change and the
 *   whole file is uploaded at publish. Simple and cheap for small files.
 * - `sparse` (backends with `capabilities.patchWrites`, files of at least `patchMinBytes`): the temp
 *   file holds only the ranges written (at their own offsets, so it is a sparse file on disk), listed
 *   in an extent map; every other byte below `baseEnd` is the base version's (the content version
 *   {id, size} seen at the first change), and bytes at or past `baseEnd` (after a truncate down,
 *   then up or a write past the end) are zeros. Reads merge extents with `readVersion()` of the
 *   base. Publish streams the file through a PatchWriter: dirty extents as bytes, clean ranges as
 *   `copyBase()` (S3: UploadPartCopy, so a 1-byte change to a 40 GiB object moves about one part,
 *   not 80 GiB), zero ranges as zeros. If someone else replaced the object since the base was taken,
 *   the backend fails the publish with ESTALE — never a mix of two versions; the stage stays dirty
 *   (the client's close/flush gets the error). Decision: fail rather than fall back, because the
 *   clean bytes of the old version are no longer available to rebuild what the client wrote, and
 *   silently publishing the other writer's bytes around ours would be a mixed object.
 *   After a successful publish the stage rebases onto the object it just published (extents
 *   dropped), so later flushes only move what changed since.
 *
 * Writes that arrive while a publish runs are kept: their ranges stay dirty for the next publish
 * (a publish resolves with what it uploaded; the stage is clean only if nothing changed meanwhile).
 *
 * Durability across a crash (the write-back journal): `sync()` fsyncs the temp file, `snapshot()`
 * describes the stage as plain JSON and `WriteStage.restore()` reopens the same temp file from it;
 * a restored stage publishes the same object the original would have, or fails with ESTALE if the
 * base changed.
 *
 * Memory stays bounded: reads and publishes move at most COPY_CHUNK bytes at a time; the writer
 * bounds its own part buffers.
 */
import { open, mkdir, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Backend, BackendStat, BackendWriter, ContentVersion } from './backend.ts';
import { VfsError, toVfsError } from './errors.ts';
import { COPY_CHUNK } from './file-copy.ts';

const ZEROS = Buffer.alloc(COPY_CHUNK);
/** Stage directories this process has made (see the constructor). */
const madeDirs = new Set<string>();

export type StageMode = 'pending' | 'whole' | 'sparse';

/**
 * Everything needed to rebuild a stage over its (still existing) temp file: plain JSON. Take it
 * after `sync()` and while no write is in flight for a consistent pair of file and map. A snapshot
 * taken while a publish runs describes the stage before that publish (restoring it after the publish
 * completed fails with ESTALE: its base was replaced by that very publish), so take a fresh one
 * once publish() settles.
 */
export interface StageSnapshot {
  v: 1;
  /** The temp file (absolute; a relative one is resolved against the stage directory on restore). */
  file: string;
  /** Backend path at snapshot time (informational: restore() takes the current path). */
  path: string;
  mode: StageMode;
  /** Logical file size. */
  size: number;
  dirty: boolean;
  /** Sparse mode: the content version the clean ranges come from. Null otherwise. */
  base: ContentVersion | null;
  /** Sparse mode: base bytes show in [0, baseEnd) where no extent covers them; zeros past it. */
  baseEnd: number;
  /** Sparse mode: written ranges [start, end), sorted, disjoint, not adjacent. Empty otherwise. */
  extents: [number, number][];
}

/** Writes and truncates that arrive while a sparse publish runs (kept dirty after it). */
interface During {
  extents: [number, number][];
  minSize: number;
}

export class WriteStage {
  refs = 0;
  dirty = false;
  size: number;
  /** Current backend path (kept up to date across renames by the VFS). */
  path: string;
  private mode: StageMode;
  private base: ContentVersion | undefined;
  private baseEnd = 0;
  private extents: [number, number][] = [];
  /** Bumped by every change: a publish clears `dirty` only if it did not move. */
  private gen = 0;
  private during: During | undefined;
  private starting: Promise<void> | undefined;
  private publishing: Promise<void> = Promise.resolve();
  private fh: FileHandle | undefined;
  private readonly tmpPath: string;
  private readonly backend: Backend;
  /** Every file operation waits for it: the temp file's open (or a memory stage's spill to it). */
  private ready: Promise<void>;
  /**
   * A memory stage (WriteStage.inMemory): the content while it is at most `memLimit` bytes, no temp
   * file yet. Undefined once spilled to the file (or for a file stage).
   */
  private mem: Buffer | undefined;
  private memLimit = 0;
  private readonly dir: string;

  /**
   * Synchronous so that concurrent opens of one file find and share the same stage; the temporary
   * file is opened in the background and every method waits for it. `empty` = the file starts
   * empty (created or truncated): nothing will be downloaded. `restoreFrom` is internal (restore()).
   */
  constructor(dir: string, backend: Backend, path: string, empty: boolean, restoreFrom?: StageSnapshot, memory?: number) {
    this.backend = backend;
    this.path = path;
    this.dir = dir;
    if (memory !== undefined && restoreFrom === undefined && empty) {
      // A memory stage: the temp file is made only if the content outgrows `memory` or must be on disk.
      this.tmpPath = join(dir, `stage-${randomBytes(12).toString('hex')}`);
      this.size = 0;
      this.mode = 'whole';
      this.dirty = true;
      this.mem = Buffer.alloc(0);
      this.memLimit = memory;
      this.ready = Promise.resolve();
    } else if (restoreFrom !== undefined) {
      const s = restoreFrom;
      this.tmpPath = resolve(dir, s.file);
      this.mode = s.mode;
      this.size = s.size;
      this.dirty = s.dirty;
      this.base = s.base ?? undefined;
      this.baseEnd = s.baseEnd;
      this.extents = s.extents.map(([a, b]) => [a, b]);
      const tmp = this.tmpPath;
      // Never 'w': the content is what we are restoring.
      this.ready = (async () => {
        this.fh = await open(tmp, 'r+');
      })();
    } else {
      const tmp = join(dir, `stage-${randomBytes(12).toString('hex')}`);
      this.tmpPath = tmp;
      this.size = 0;
      this.mode = empty ? 'whole' : 'pending';
      this.dirty = empty;
      this.ready = (async () => {
        this.fh = await openNew(dir, tmp);
      })();
    }
    // Failures surface on first use; never as an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /**
   * Rebuilds a stage from a snapshot over its existing temp file (not truncated), e.g. after a
   * crash. `path` is the file's current backend path. Throws EINVAL for a malformed snapshot; a
   * missing temp file surfaces (ENOENT) on first use.
   */
  static restore(dir: string, backend: Backend, path: string, snap: StageSnapshot): WriteStage {
    if (!validSnapshot(snap)) throw new VfsError('EINVAL', 'malformed write-stage snapshot', { path });
    return new WriteStage(dir, backend, path, false, snap);
  }

  /**
   * An empty (created or truncated) whole stage held in memory while its content is at most `limit`
   * bytes: a small WebDAV PUT on an async share is journaled with its content (write-back.ts
   * INLINE_MAX_BYTES) and uploaded from memory, so its temp file would only be written, read back
   * and removed (open, pwritev, pread, pread, close, unlink: six thread-pool round trips per PUT).
   * It spills to its temp file (from then on a file stage) when a write or truncate goes past
   * `limit`, and when it must be on disk: sync(), persist(). snapshot() names the temp file either
   * way; a snapshot of a memory stage is only journaled together with the content.
   */
  static inMemory(dir: string, backend: Backend, path: string, limit: number): WriteStage {
    return new WriteStage(dir, backend, path, true, undefined, limit);
  }

  /** Whether the content is in memory only (no temp file written yet). */
  get inMemoryOnly(): boolean {
    return this.mem !== undefined;
  }

  /**
   * A memory stage goes to its temp file (not synced): every later operation works on the file.
   * Synchronous up to the hand-over, so a write arriving meanwhile goes after the spilled bytes.
   */
  private spill(): void {
    const data = this.mem;
    if (data === undefined) return;
    this.mem = undefined;
    const content = data.subarray(0, this.size);
    const before = this.ready;
    this.ready = (async () => {
      await before;
      this.fh = await openNew(this.dir, this.tmpPath);
      await writeAll(this.fh, content, 0);
    })();
    this.ready.catch(() => undefined);
  }

  /** The content is in the temp file (a memory stage spills; nothing is synced). */
  async persist(): Promise<void> {
    this.spill();
    await this.ready;
  }

  /** Copies `data` into the memory stage at `offset` (within memLimit), growing its buffer. */
  private memWrite(offset: number, data: Uint8Array): void {
    const end = offset + data.length;
    let buf = this.mem!;
    if (end > buf.length) {
      const grown = Buffer.alloc(Math.min(this.memLimit, Math.max(end, buf.length * 2, 4096)));
      // The whole old buffer: a writev's earlier chunks are past `size` until it returns.
      buf.copy(grown, 0, 0, buf.length);
      this.mem = buf = grown;
    }
    buf.set(data, offset);
  }

  /** Plain JSON description of the stage (see StageSnapshot). */
  snapshot(): StageSnapshot {
    return {
      v: 1,
      file: this.tmpPath,
      path: this.path,
      mode: this.mode,
      size: this.size,
      dirty: this.dirty,
      base: this.base === undefined ? null : { id: this.base.id, size: this.base.size },
      baseEnd: this.baseEnd,
      extents: this.extents.map(([a, b]) => [a, b]),
    };
  }

  /** Makes the temp file's content durable (fsync). */
  async sync(): Promise<void> {
    this.spill();
    await this.ready;
    await this.fh!.sync();
  }

  /** The first change: decides between whole and sparse staging. */
  private begin(): Promise<void> {
    if (this.mode !== 'pending') return this.ready;
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async start(): Promise<void> {
    await this.ready;
    if (this.mode !== 'pending') return;
    const st = await this.backend.stat(this.path);
    const b = this.backend;
    if (b.capabilities.patchWrites === true && b.createPatchWriter !== undefined && b.readVersion !== undefined
      && st.nativeId !== undefined && st.size > 0 && st.size >= (b.capabilities.patchMinBytes ?? 0)) {
      this.base = { id: st.nativeId, size: st.size };
      this.baseEnd = st.size;
      this.extents = [];
      this.size = st.size;
      this.mode = 'sparse';
      return;
    }
    // Whole: copy the current content in.
    const fh = this.fh!;
    const size = st.size;
    for (let off = 0; off < size;) {
      const buf = await this.backend.read(this.path, off, Math.min(COPY_CHUNK, size - off));
      if (buf.length === 0) break;
      await writeAll(fh, buf, off);
      off += buf.length;
    }
    this.size = size;
    this.mode = 'whole';
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (this.mode === 'pending') return this.backend.read(this.path, offset, length);
    if (this.mem !== undefined) {
      const e = Math.min(this.size, offset + length);
      return e <= offset ? Buffer.alloc(0) : Buffer.from(this.mem.subarray(offset, e));
    }
    await this.ready;
    const end = Math.min(this.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    if (this.mode === 'whole') {
      const buf = Buffer.allocUnsafe(end - offset);
      const got = await readAt(this.fh!, buf, 0, buf.length, offset);
      // Bytes past what the temp file holds (after a truncate up) read as zeros.
      buf.fill(0, got);
      return buf;
    }
    // Sparse: a read entirely inside one clean base range is the base's bytes as they come.
    const segs = this.segments(offset, end, this.extents, this.baseEnd);
    if (segs.length === 1 && segs[0]!.kind === 'base') return this.readBase(offset, end);
    const buf = Buffer.alloc(end - offset);
    for (const s of segs) {
      if (s.kind === 'file') {
        const got = await readAt(this.fh!, buf, s.start - offset, s.end - s.start, s.start);
        buf.fill(0, s.start - offset + got, s.end - offset);
      } else if (s.kind === 'base') {
        const data = await this.readBase(s.start, s.end);
        buf.set(data, s.start - offset);
      }
    }
    return buf;
  }

  /**
   * Like read(), into `target` (from its start); returns the bytes read. A whole stage reads
   * straight into it: a stream of reads (a WebDAV GET of a pending file) allocates nothing.
   */
  async readInto(offset: number, target: Uint8Array): Promise<number> {
    if (this.mode !== 'whole' || this.mem !== undefined) {
      const buf = await this.read(offset, target.length);
      target.set(buf);
      return buf.length;
    }
    await this.ready;
    const end = Math.min(this.size, offset + target.length);
    if (end <= offset) return 0;
    const got = await readAt(this.fh!, target, 0, end - offset, offset);
    target.fill(0, got, end - offset);
    return end - offset;
  }

  private async readBase(start: number, end: number): Promise<Buffer> {
    const data = await this.backend.readVersion!(this.path, this.base!, start, end - start);
    if (data.length === end - start) return data;
    // A base shorter than it claimed: treat the missing tail as changed content.
    throw new VfsError('ESTALE', 'base version shorter than recorded', { path: this.path });
  }

  async write(offset: number, data: Uint8Array): Promise<number> {
    await this.begin();
    if (this.mem !== undefined && offset <= this.size && offset + data.length <= this.memLimit) this.memWrite(offset, data);
    else {
      this.spill();
      await this.ready;
      await writeAll(this.fh!, data, offset);
    }
    const end = offset + data.length;
    if (this.mode === 'sparse' && data.length > 0) {
      addExtent(this.extents, offset, end);
      if (this.during !== undefined) addExtent(this.during.extents, offset, end);
    }
    this.size = Math.max(this.size, end);
    this.dirty = true;
    this.gen++;
    return data.length;
  }

  /** The chunks one after the other from `offset`, as one vectored write (a request body's socket chunks). */
  async writev(offset: number, chunks: readonly Uint8Array[]): Promise<number> {
    await this.begin();
    let n = 0;
    for (const c of chunks) n += c.length;
    if (this.mem !== undefined && offset <= this.size && offset + n <= this.memLimit) {
      let at = offset;
      for (const c of chunks) {
        this.memWrite(at, c);
        at += c.length;
      }
    } else {
      this.spill();
      await this.ready;
      await writevAll(this.fh!, chunks, offset);
    }
    const end = offset + n;
    if (this.mode === 'sparse' && n > 0) {
      addExtent(this.extents, offset, end);
      if (this.during !== undefined) addExtent(this.during.extents, offset, end);
    }
    this.size = Math.max(this.size, end);
    this.dirty = true;
    this.gen++;
    return n;
  }

  async truncate(size: number): Promise<void> {
    this.spill();
    await this.begin();
    if (this.mode === 'sparse') {
      if (size < this.size) {
        trimExtents(this.extents, size);
        this.baseEnd = Math.min(this.baseEnd, size);
        await this.fh!.truncate(size);
      }
      if (this.during !== undefined) {
        trimExtents(this.during.extents, size);
        this.during.minSize = Math.min(this.during.minSize, size);
      }
    } else {
      await this.fh!.truncate(size);
    }
    this.size = size;
    this.dirty = true;
    this.gen++;
  }

  /**
   * Uploads the staged content when dirty; returns the new stat (or undefined when clean).
   * Concurrent calls run one after the other (a second one usually finds the stage clean).
   */
  publish(): Promise<BackendStat | undefined> {
    const run = this.publishing.then(() => this.publishNow());
    this.publishing = run.then(() => undefined, () => undefined);
    return run;
  }

  private async publishNow(): Promise<BackendStat | undefined> {
    if (!this.dirty) return undefined;
    await this.begin();
    const gen = this.gen;
    if (this.mode === 'whole') {
      const st = await this.publishWhole();
      if (this.gen === gen) this.dirty = false;
      return st;
    }
    const during: During = { extents: [], minSize: Infinity };
    this.during = during;
    try {
      const st = await this.publishSparse();
      // Rebase onto what was just published: the extents written meanwhile stay dirty.
      if (st.nativeId === undefined) throw new VfsError('EIO', 'published object has no content identity', { path: this.path });
      this.base = { id: st.nativeId, size: st.size };
      this.baseEnd = Math.min(st.size, during.minSize);
      this.extents = during.extents;
      if (this.gen === gen) {
        this.dirty = false;
        if (this.extents.length === 0) await this.fh!.truncate(0).catch(() => undefined);
      }
      return st;
    } finally {
      this.during = undefined;
    }
  }

  private async publishWhole(): Promise<BackendStat> {
    const size = this.size;
    const w = await this.backend.createWriter(this.path, { sizeHint: size });
    try {
      await this.sendFromFile(w, 0, size);
      return await w.commit();
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw toVfsError(e, this.path);
    }
  }

  /**
   * Bytes [start, end) of the temp file into the writer, in fresh COPY_CHUNK buffers (a writer may
   * keep the chunk it was given). Bytes the temp file does not hold (a hole left by a truncate up,
   * or cut by a truncate running meanwhile) go as zeros; a cut range stays dirty for the next publish.
   */
  private async sendFromFile(w: BackendWriter, start: number, end: number): Promise<void> {
    if (this.mem !== undefined) {
      // A fresh copy: the writer may keep it, and the stage may change after this publish started.
      if (end > start) await w.write(Buffer.from(this.mem.subarray(start, end)));
      return;
    }
    await this.ready;
    for (let off = start; off < end;) {
      const want = Math.min(COPY_CHUNK, end - off);
      const buf = Buffer.allocUnsafe(want);
      const got = await readAt(this.fh!, buf, 0, want, off);
      buf.fill(0, got);
      await w.write(buf);
      off += want;
    }
  }

  private async publishSparse(): Promise<BackendStat> {
    const size = this.size;
    const segs = this.segments(0, size, this.extents.map(([a, b]) => [a, b]), this.baseEnd);
    const needsBase = segs.some((s) => s.kind === 'base');
    // Nothing of the old version left (rewritten or truncated away): a plain writer, no base check.
    const w: BackendWriter & { copyBase?: (s: number, e: number) => Promise<void> } = needsBase
      ? await this.backend.createPatchWriter!(this.path, this.base!, { sizeHint: size })
      : await this.backend.createWriter(this.path, { sizeHint: size });
    try {
      for (const s of segs) {
        if (s.kind === 'base') await w.copyBase!(s.start, s.end);
        else if (s.kind === 'zero') {
          for (let off = s.start; off < s.end; off += COPY_CHUNK) await w.write(ZEROS.subarray(0, Math.min(COPY_CHUNK, s.end - off)));
        } else await this.sendFromFile(w, s.start, s.end);
      }
      return await w.commit();
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw toVfsError(e, this.path);
    }
  }

  /** [start, end) split into written ('file'), base and zero ranges. */
  private segments(start: number, end: number, extents: [number, number][], baseEnd: number): { kind: 'file' | 'base' | 'zero'; start: number; end: number }[] {
    const out: { kind: 'file' | 'base' | 'zero'; start: number; end: number }[] = [];
    const gap = (a: number, b: number): void => {
      const c = Math.min(b, Math.max(a, baseEnd));
      if (a < c) out.push({ kind: 'base', start: a, end: c });
      if (c < b) out.push({ kind: 'zero', start: c, end: b });
    };
    let pos = start;
    for (let i = firstEndingAfter(extents, start); i < extents.length && pos < end; i++) {
      const [a, b] = extents[i]!;
      if (a >= end) break;
      if (pos < a) gap(pos, a);
      const s = Math.max(pos, a);
      const e = Math.min(end, b);
      if (s < e) out.push({ kind: 'file', start: s, end: e });
      pos = Math.max(pos, e);
    }
    if (pos < end) gap(pos, end);
    return out;
  }

  async discard(): Promise<void> {
    if (this.mem !== undefined) {
      // Never on disk.
      this.mem = undefined;
      this.ready = Promise.reject(new VfsError('EBADF', 'write stage discarded', { path: this.path }));
      this.ready.catch(() => undefined);
      return;
    }
    await this.ready.catch(() => undefined);
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
    // One unlink (fs.rm is an lstat and then the unlink: two thread-pool round trips per stage).
    await unlink(this.tmpPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

/**
 * Creates a stage's temp file. The directory is made once per process (a recursive mkdir per stage
 * was one more thread-pool round trip on every small PUT of an async share); if it went away since,
 * the open fails with ENOENT and it is made again.
 */
async function openNew(dir: string, tmp: string): Promise<FileHandle> {
  if (madeDirs.has(dir)) {
    try {
      return await open(tmp, 'w+', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  madeDirs.add(dir);
  return open(tmp, 'w+', 0o600);
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
}

async function writevAll(fh: FileHandle, chunks: readonly Uint8Array[], position: number): Promise<void> {
  let rest = chunks.filter((c) => c.length > 0);
  let at = position;
  while (rest.length > 0) {
    let n = (await fh.writev(rest, at)).bytesWritten;
    at += n;
    // A short write (rare): go on with what is left.
    while (rest.length > 0 && n >= rest[0]!.length) {
      n -= rest[0]!.length;
      rest = rest.slice(1);
    }
    if (n > 0) rest = [rest[0]!.subarray(n), ...rest.slice(1)];
  }
}

/** Reads up to `length` bytes at `position` into buf[at..]; returns how many (fewer at the file's end). */
async function readAt(fh: FileHandle, buf: Uint8Array, at: number, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, at + got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** Index of the first extent whose end is after `pos` (extents are sorted and disjoint). */
function firstEndingAfter(extents: [number, number][], pos: number): number {
  let lo = 0;
  let hi = extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (extents[mid]![1] <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Adds [start, end) to a sorted list of disjoint, non-adjacent ranges, merging what it touches. */
export function addExtent(extents: [number, number][], start: number, end: number): void {
  if (end <= start) return;
  // First range that ends at or after start (touching counts: adjacent ranges merge).
  let lo = 0;
  let hi = extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (extents[mid]![1] < start) lo = mid + 1;
    else hi = mid;
  }
  let j = lo;
  let s = start;
  let e = end;
  while (j < extents.length && extents[j]![0] <= end) {
    s = Math.min(s, extents[j]![0]);
    e = Math.max(e, extents[j]![1]);
    j++;
  }
  extents.splice(lo, j - lo, [s, e]);
}

/** Cuts a sorted range list at `size`. */
export function trimExtents(extents: [number, number][], size: number): void {
  let n = extents.length;
  while (n > 0 && extents[n - 1]![0] >= size) n--;
  extents.length = n;
  const last = extents[n - 1];
  if (last !== undefined && last[1] > size) last[1] = size;
}

function validSnapshot(s: StageSnapshot): boolean {
  const int = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof s !== 'object' || s === null || s.v !== 1 || typeof s.file !== 'string' || s.file === '') return false;
  if (s.mode !== 'pending' && s.mode !== 'whole' && s.mode !== 'sparse') return false;
  if (!int(s.size) || !int(s.baseEnd) || typeof s.dirty !== 'boolean' || !Array.isArray(s.extents)) return false;
  if (s.mode === 'sparse' && (s.base === null || typeof s.base !== 'object' || typeof s.base.id !== 'string' || !int(s.base.size))) return false;
  let prev = -1;
  for (const r of s.extents) {
    if (!Array.isArray(r) || r.length !== 2 || !int(r[0]) || !int(r[1]) || r[0] >= r[1] || r[0] <= prev) return false;
    prev = r[1];
  }
  return true;
}
