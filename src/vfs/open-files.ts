/**
 * Open files: the handle table and I/O through handles — open (with its create, truncate, share-mode
 * and lease steps), read, write, fstat, ftruncate, flush, close (with delete-on-close), and the
 * handles' side of namespace changes (a deleted file's handles are orphaned, a renamed one's follow
 * it, a file moved by copy gets its read views reopened).
 *
 * `Vfs` (vfs.ts) stays the one public facade and keeps every public signature; its handle methods
 * call the OpenFiles it owns. OpenFiles gets what it needs of the VFS around it as a small typed
 * host (OpenFilesHost), not the whole Vfs. How a handle's bytes reach the backend (descriptor,
 * write stage, async write-back) is per-file data's concern (file-data.ts, `host.data`); removing a
 * file at its last close is the namespace's (namespace.ts unlinkPath/rmdirPath).
 */
import type { AllocateOp, BackendFile, BackendStat } from './backend.ts';
import { VfsError, isVfsError, toVfsError } from './errors.ts';
import { isSameOrDescendant } from './path.ts';
import type { Volume } from './volume.ts';
import type { WriteBack } from './write-back.ts';
import type { TreeMoves } from './tree-move/index.ts';
import type { FileData } from './file-data.ts';
import { Handle } from './handle.ts';
import { NO_TOKENS, SETTABLE_WIN_ATTRS, SHARE_ALL, type ChangeKind, type FileAttr, type FileId, type FlushOptions, type OpenOptions, type Tokens } from './types.ts';
import type { NodeRow } from '../store/metadata-store.ts';
import type { LockManager } from '../locks/lock-manager.ts';
import type { ShareModeTable } from '../locks/share-modes.ts';
import type { LeaseTable } from '../locks/leases.ts';


/** Lock owner id of a handle, for byte-range locks taken through it (SMB: the open is the owner). */
export function handleLockOwner(h: Handle): string {
  return `handle:${h.id}`;
}

/** What open files need of the VFS around them (given by Vfs, bound to its own state). */
export interface OpenFilesHost {
  readonly locks: LockManager;
  readonly shareModes: ShareModeTable;
  readonly leases: LeaseTable;
  readonly writeBack: WriteBack;
  readonly treeMoves: TreeMoves;
  /** Per-file data: creates, attaching a handle's data, flush and the last close's publish. */
  readonly data: FileData;
  volume(name: string): Volume;
  attr(v: Volume, row: NodeRow, st: BackendStat): FileAttr;
  emit(v: Volume, kind: ChangeKind, id: FileId, path: string, type: FileAttr['type'], oldPath?: string): bigint;
  checkTokenLocks(v: Volume, path: string, tokens: Tokens, what: { self: boolean; parent: boolean }): void;
  /** Ids of the existing ancestor directories of a backend path, root first. */
  ancestorIds(v: Volume, path: string): FileId[];
  /** Delete-on-close at the last close: the namespace primitives. */
  rmdirPath(v: Volume, path: string): Promise<void>;
  unlinkPath(v: Volume, path: string, fromClose: boolean): Promise<void>;
}

/**
 * Handle ids: a process-wide counter, not a random UUID (crypto.randomUUID cost ~0.7 KB and a
 * serialisation per open, issue 9). An id is only a key inside this process — the share-mode,
 * lease, durable-handle and client-record tables and `handle:<id>` lock owners — and is never sent
 * to a client or stored: protocols mint their own wire identifiers (SMB FileIds and durable
 * handle GUIDs, NFS stateids, FUSE fhs), and those that must be unguessable stay random there.
 * Unique for the life of the process (2^53 opens), which is all those tables need.
 */
let handleSeq = 0;

export class OpenFiles {
  private readonly handles = new Map<string, Handle>();
  /**
   * The open handles of each file: the handle itself while it is the only one (nearly always),
   * a Set from the second on — no Set allocated and emptied per open and close.
   */
  private readonly handlesByFile = new Map<FileId, Handle | Set<Handle>>();
  private readonly host: OpenFilesHost;

  constructor(host: OpenFilesHost) {
    this.host = host;
  }

  /** Every open handle. */
  list(): Handle[] {
    return [...this.handles.values()];
  }

  /** The open handles of a file. */
  handlesOf(id: FileId): Iterable<Handle> {
    const e = this.handlesByFile.get(id);
    return e === undefined ? [] : e instanceof Handle ? [e] : e;
  }

  /** A handle open for writing or delete strictly below `dir` (a directory move must wait: TreeMoveHost.busyBelow). */
  busyBelow(v: Volume, dir: string): string | undefined {
    for (const h of this.handles.values()) {
      if (h.volume === v && h.path !== dir && isSameOrDescendant(h.path, dir) && (h.access.write || h.access.delete)) return h.path;
    }
    return undefined;
  }

  async open(volume: string, path: string, opts: OpenOptions): Promise<Handle> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    const disp = opts.disposition ?? 'open';
    const expect = opts.expect ?? 'any';
    const share = opts.share ?? SHARE_ALL;
    const tokens = opts.lockTokens ?? NO_TOKENS;
    // An exclusive create needs no lookup first where the exact name is authoritative: the backend's
    // exclusive create reports EEXIST itself (one round trip less per new file). A plain read-only
    // open on a random-access backend (the local disk) opens first and takes the attributes from
    // the descriptor: one round trip instead of a stat, then an open. It falls back to the general
    // path (resolve, then open) whenever anything is unusual — a symbolic link (O_NOFOLLOW refuses
    // it), a name that needs the case/normalisation scan, a non-regular file, any error — so those
    // keep their answers; a miss on a name whose exact lookup is authoritative is ENOENT at once.
    // Inline rather than a helper method: one async frame and hop less per open (issue 9, ~0.5 KB).
    let early: { st: BackendStat; file: BackendFile | undefined } | undefined;
    if (disp === 'open' && expect !== 'dir' && !opts.access.write && !opts.access.delete && !opts.deleteOnClose && v.backend.capabilities.randomWrites && p !== '/' && !this.host.writeBack.active(v.name)) {
      let file: BackendFile | undefined;
      try {
        file = await v.backend.openFile(p, { write: false });
      } catch (e) {
        if (isVfsError(e, 'ENOENT') && v.exactLookupAuthoritative(p)) throw new VfsError('ENOENT', undefined, { path: p });
      }
      if (file !== undefined) {
        let fst: BackendStat | undefined;
        try {
          fst = await file.stat();
        } catch {
          fst = undefined;
        }
        if (fst?.type === 'file') early = { st: fst, file };
        else {
          await file.close().catch(() => undefined);
          if (fst?.type === 'dir') early = { st: fst, file: undefined };
        }
      }
    }
    let r = early !== undefined ? { path: p, stat: early.st } : disp === 'create' && v.exactLookupAuthoritative(p) ? { path: p, stat: undefined } : await v.resolve(p);
    // Not inside a directory being renamed by copy (object stores): its close could not publish (tree-move/guard.ts).
    if (opts.access.write || opts.access.delete || opts.deleteOnClose) this.host.treeMoves.assertNotMoving(v.name, r.path);
    let st: BackendStat | undefined = r.stat;
    let created = false;
    // The descriptor the handle reads through when openForRead opened it (a directory's was closed).
    let createdFile: BackendFile | undefined = early?.file;
    if (st) {
      if (disp === 'create') throw new VfsError('EEXIST', undefined, { path: p });
      if (disp === 'truncate' || disp === 'createOrTruncate') this.host.checkTokenLocks(v, r.path, tokens, { self: true, parent: false });
      if (st.type === 'dir' && expect === 'file') throw new VfsError('EISDIR', undefined, { path: p });
      if (st.type !== 'dir' && expect === 'dir') throw new VfsError('ENOTDIR', undefined, { path: p });
      if (st.type === 'dir' && (opts.access.write || disp === 'truncate' || disp === 'createOrTruncate')) {
        throw new VfsError('EISDIR', undefined, { path: p });
      }
      if (st.type === 'symlink') throw new VfsError('ELOOP', 'cannot open a symbolic link', { path: p });
    } else {
      if (disp === 'open' || disp === 'truncate') throw new VfsError('ENOENT', undefined, { path: p });
      if (r.path === '/') throw new VfsError('EEXIST', undefined, { path: p });
      this.host.checkTokenLocks(v, r.path, tokens, { self: false, parent: true });
      v.quota?.check(1, 0, p);
      if (expect === 'dir') {
        try {
          st = await v.backend.mkdir(r.path, opts.mode, opts.creator);
          created = true;
        } catch (e) {
          // Another open made the name between the lookup and the mkdir (two SMB clients' OPEN_IF of
          // one directory at once: smbtorture smb2.create mkdir-dup). Only an exclusive create may
          // fail on that; the others open what is there now, with the checks an existing name gets.
          if (disp === 'create' || !isVfsError(e, 'EEXIST')) throw e;
          const again = await v.resolve(p);
          if (again.stat === undefined) throw e;
          r = again;
          st = again.stat;
          if (st.type === 'symlink') throw new VfsError('ELOOP', 'cannot open a symbolic link', { path: p });
          if (st.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path: p });
          if (opts.access.write || disp === 'createOrTruncate') throw new VfsError('EISDIR', undefined, { path: p });
        }
      } else {
        ({ st, file: createdFile } = await this.host.data.createEmpty(v, r.path, opts.mode, disp === 'create', opts.access.write, opts.creator));
        created = true;
      }
    }
    // Others' leases are broken, and the breaks acknowledged, before the open acts (leases.ts).
    if (!created && this.host.leases.size > 0) await this.host.leases.beforeOpen(v.row(r.path, st).id, { owner: opts.owner, access: opts.access, share, truncate: disp === 'truncate' || disp === 'createOrTruncate' }, this.host.shareModes);
    const row = created ? v.newRow(r.path, st) : v.row(r.path, st);
    const h = new Handle({
      id: `h${++handleSeq}`,
      volume: v,
      fileId: row.id,
      type: st.type,
      access: { ...opts.access },
      share: { ...share },
      owner: opts.owner,
      path: r.path,
      lockTokens: tokens,
    });
    // Share modes are checked before anything destructive (a sharing violation must not truncate).
    h.file = createdFile;
    h.created = created;
    try {
      this.host.shareModes.open({
      handleId: h.id,
      fileId: row.id,
      owner: opts.owner,
      access: h.access,
      share: h.share,
        deleteOnClose: opts.deleteOnClose ?? false,
      });
    } catch (e) {
      await createdFile?.close().catch(() => undefined);
      if (created) await this.host.data.deferredCreates.get(v.name)?.abandon(r.path);
      throw e;
    }
    try {
      // FILE_DELETE_ON_CLOSE marks the file delete-pending when this open closes (MS-FSA 2.1.5.5
      // phase 1, ShareModeTable.close), not now: other opens that share delete still succeed
      // meanwhile, as on Windows and Samba (test/smb/delete-on-close.test.ts).
      if (created && opts.winAttributes !== undefined) v.setWinAttributes(r.path, opts.winAttributes & SETTABLE_WIN_ATTRS);
      const truncate = !created && (disp === 'truncate' || disp === 'createOrTruncate');
      if (st.type === 'file' && !h.file) await this.host.data.attachData(v, h, truncate);
      if (truncate && st.type === 'file') v.quota?.truncated(r.path, row.id, st.size);
    } catch (e) {
      this.host.shareModes.close(h.id);
      await h.file?.close().catch(() => undefined);
      if (created) await this.host.data.deferredCreates.get(v.name)?.abandon(r.path);
      throw toVfsError(e, p);
    }
    this.handles.set(h.id, h);
    if (!created && disp !== 'truncate' && disp !== 'createOrTruncate') h.openStat = st;
    const others = this.handlesByFile.get(row.id);
    if (others === undefined) this.handlesByFile.set(row.id, h);
    else if (others instanceof Handle) this.handlesByFile.set(row.id, new Set([others, h]));
    else others.add(h);
    if (created) v.quota?.add(r.path, 1, st.type === 'file' ? st.size : 0);
    if (created) this.host.emit(v, 'create', row.id, r.path, st.type);
    return h;
  }

  /**
   * A whole small regular file and its attributes without a handle (WebDAV GET of a small file,
   * Session.readFile): the backend reads it in one synchronous step (Backend.readSmallSync), so
   * nothing can happen to the file between its open and its close, and the open has no window in
   * which another open could see it — it needs no handle, share-mode record or lease of its own,
   * only the checks an open for reading would make against what exists: undefined (the caller
   * opens the file as usual, which gives every other case its answer) whenever the file has an
   * open handle, a share-mode record or delete-pending state, a write stage, a pending upload,
   * byte-range locks or leases exist anywhere, or the backend cannot answer at once (larger than
   * `maxBytes`, not a regular file, an error). Like the read-only open it stands for, it takes the
   * file's row (and so its id) and the attributes the open would have given.
   */
  readSmall(volume: string, path: string, maxBytes: number): { attr: FileAttr; data: Buffer } | undefined {
    const v = this.host.volume(volume);
    const readSmallSync = v.backend.readSmallSync;
    if (readSmallSync === undefined || this.host.locks.size > 0 || this.host.leases.size > 0 || this.host.writeBack.active(v.name)) return undefined;
    const p = v.normalize(path);
    if (p === '/') return undefined;
    const r = readSmallSync.call(v.backend, p, maxBytes);
    if (r === undefined || r.stat.type !== 'file') return undefined;
    const row = v.row(p, r.stat);
    if (this.handlesByFile.has(row.id) || this.host.shareModes.hasOpens(row.id) || this.host.data.busy(row.id)) return undefined;
    return { attr: this.host.attr(v, row, r.stat), data: r.data };
  }

  handle(id: string): Handle {
    const h = this.handles.get(id);
    if (!h || h.closed) throw new VfsError('EBADF');
    return h;
  }

  live(h: Handle): void {
    if (h.closed) throw new VfsError('EBADF');
  }

  /** Lock rules for I/O through a handle: one rule for every protocol, in LockManager.checkIo. */
  private checkIo(h: Handle, start: number, length: number, access: 'read' | 'write'): void {
    if (this.host.locks.size === 0 || length === 0) return;
    const range = { start: BigInt(start), end: BigInt(start) + BigInt(length) };
    const ancestors = access === 'write' ? this.host.ancestorIds(h.volume, h.path) : [];
    try {
      this.host.locks.checkIo(h.fileId, { ownerId: handleLockOwner(h), tokens: h.lockTokens }, range, access, ancestors);
    } catch (e) {
      if (isVfsError(e, 'ELOCKED')) throw new VfsError('ELOCKED', undefined, { path: h.path });
      throw e;
    }
  }

  async read(h: Handle, offset: number, length: number): Promise<Buffer> {
    this.live(h);
    if (h.type === 'dir') throw new VfsError('EISDIR');
    if (!h.access.read) throw new VfsError('EBADF', 'handle not open for reading');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new VfsError('EINVAL');
    this.checkIo(h, offset, length, 'read');
    try {
      if (h.stage) return await h.stage.read(offset, length);
      return await h.file!.read(offset, length);
    } catch (e) {
      throw toVfsError(e, h.path);
    }
  }

  /**
   * Reads into a caller's buffer (from its start): no allocation per call, so streaming reads and
   * protocol replies can reuse one buffer. Returns the bytes read (fewer at end of file).
   */
  async readInto(h: Handle, offset: number, target: Uint8Array): Promise<number> {
    this.live(h);
    if (h.type === 'dir') throw new VfsError('EISDIR');
    if (!h.access.read) throw new VfsError('EBADF', 'handle not open for reading');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new VfsError('EINVAL');
    this.checkIo(h, offset, target.length, 'read');
    try {
      if (!h.stage && h.file!.readInto) return await h.file!.readInto(offset, target);
      if (h.stage) return await h.stage.readInto(offset, target);
      const buf = await h.file!.read(offset, target.length);
      target.set(buf);
      return buf.length;
    } catch (e) {
      throw toVfsError(e, h.path);
    }
  }

  /**
   * Reads `length` bytes at `offset` through the store's own descriptor instead of into Portico's
   * memory: `send` gets the descriptor of the handle's file and moves the bytes in the kernel (FUSE:
   * a splice to /dev/fuse) and returns how many it sent. The checks are readInto's (open for
   * reading, byte-range locks); the rights were decided at open. Only for a handle whose bytes are
   * all in the store's file (no write stage; capabilities.descriptorReads: local): undefined
   * otherwise, and the caller reads with readInto. The descriptor stays open until `send` settles.
   */
  async readVia(h: Handle, offset: number, length: number, send: (fd: number, offset: number, length: number) => Promise<number>): Promise<number | undefined> {
    this.live(h);
    if (h.type === 'dir') throw new VfsError('EISDIR');
    if (!h.access.read) throw new VfsError('EBADF', 'handle not open for reading');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new VfsError('EINVAL');
    const file = h.file;
    if (h.volume.backend.capabilities.descriptorReads !== true || h.stage !== undefined || file?.lendDescriptor === undefined) return undefined;
    this.checkIo(h, offset, length, 'read');
    try {
      return await file.lendDescriptor((fd) => send(fd, offset, length));
    } catch (e) {
      throw toVfsError(e, h.path);
    }
  }

  /**
   * write() whose bytes the caller writes through the store's descriptor (`send`: the FUSE addon
   * pwrites them from its request buffer on a thread-pool thread and answers the kernel itself), after
   * the same checks, quota and leases, and with the same change event once `send` has settled.
   * Where the handle's bytes do not all go to a descriptor (a write stage, an object store, memory)
   * the core writes `data` itself and `send` is not called.
   */
  async writeVia(h: Handle, offset: number, data: Uint8Array, send: (fd: number, offset: number, length: number) => Promise<number>): Promise<number> {
    const file = h.file;
    if (h.volume.backend.capabilities.descriptorReads !== true || h.stage !== undefined || file?.writeVia === undefined) return this.write(h, offset, data);
    return this.write(h, offset, data, () => file.writeVia!(offset, data, (fd) => send(fd, offset, data.length)));
  }

  async write(h: Handle, offset: number, data: Uint8Array, via?: () => Promise<number>): Promise<number> {
    this.live(h);
    if (h.type === 'dir') throw new VfsError('EISDIR');
    if (!h.access.write) throw new VfsError('EBADF', 'handle not open for writing');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new VfsError('EINVAL');
    if (offset + data.length > h.volume.backend.capabilities.maxFileSize) throw new VfsError('EFBIG');
    this.checkIo(h, offset, data.length, 'write');
    if (this.host.leases.size > 0) await this.host.leases.beforeWrite(h.fileId, h);
    // Quota: growth past the limit fails before the bytes land (counted now, undone on failure).
    const grew = h.volume.quota ? await h.volume.quota.resize(h, offset + data.length) : 0;
    let n: number;
    try {
      // `via` (writeVia) only while there is still no stage (one may have come during the awaits).
      n = h.stage ? await h.stage.write(offset, data) : via !== undefined ? await via() : await h.file!.write(offset, data);
    } catch (e) {
      h.volume.quota?.undo(h, grew);
      throw toVfsError(e, h.path);
    }
    this.host.emit(h.volume, 'modify', h.fileId, h.path, 'file');
    return n;
  }

  /**
   * Attributes of an opened file as the open's own lookup found them, without another backend call
   * (undefined for a handle that created or truncated its file). For a reader that opens a file
   * only to send it (WebDAV GET): the same information as a getattr just before the open, one round
   * trip less than fstat. Like that getattr, it may predate a change someone makes after the open.
   */
  attrAtOpen(h: Handle): FileAttr | undefined {
    this.live(h);
    const st = h.openStat;
    if (st === undefined || h.stage?.dirty) return undefined;
    return this.host.attr(h.volume, h.volume.row(h.path), st);
  }

  async fstat(h: Handle): Promise<FileAttr> {
    this.live(h);
    // The open descriptor answers on random-write backends (fstat). On object stores the backend
    // file is the version the open found: a pending upload landing meanwhile (async write-back)
    // makes it stale, so ask for the file as it is now (cached by the backend).
    const st = h.file && h.volume.backend.capabilities.randomWrites ? await h.file.stat() : await h.volume.backend.stat(h.path);
    if (h.stage?.dirty) st.size = h.stage.size;
    return this.host.attr(h.volume, h.volume.row(h.path), st);
  }

  /** Makes everything written through this handle durable (object stores: uploaded; FileData.flush). */
  async flush(h: Handle, opts?: FlushOptions): Promise<void> {
    this.live(h);
    await this.host.data.flush(h, opts);
  }

  async close(h: Handle): Promise<void> {
    if (h.closed) return;
    let failure: unknown;
    // FileData.release only acts on a handle with a write stage: a plain descriptor's close skips
    // the call (one async hop and its promise less per close).
    if (h.stage) {
      try {
        await this.host.data.release(h);
      } catch (e) {
        failure = e;
      }
    }
    h.closed = true;
    if (h.file) {
      try {
        await h.file.close();
      } catch {
        // ignored, as it always was: what the handle owed the backend was released above
      }
    }
    this.handles.delete(h.id);
    if (this.host.leases.size > 0) this.host.leases.closed(h);
    const set = this.handlesByFile.get(h.fileId);
    let last = false;
    if (set === h) last = true;
    else if (set instanceof Set) {
      set.delete(h);
      last = set.size === 0;
    }
    if (last) this.handlesByFile.delete(h.fileId);
    if (last) h.volume.quota?.lastClose(h.fileId);
    const res = this.host.shareModes.close(h.id);
    if (res?.last && res.deletePending && !h.orphaned) {
      try {
        if (h.type === 'dir') await this.host.rmdirPath(h.volume, h.path);
        else await this.host.unlinkPath(h.volume, h.path, true);
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure) throw toVfsError(failure, h.path);
  }

  /** SMB FileDispositionInformation: mark or unmark delete-on-close through a handle. */
  setDeleteOnClose(h: Handle, pending: boolean): void {
    this.live(h);
    if (pending && h.type === 'dir') {
      // Windows refuses to mark a non-empty directory (STATUS_DIRECTORY_NOT_EMPTY); checked at close too.
    }
    this.host.shareModes.setDeletePending(h.fileId, h.id, pending);
  }

  async ftruncate(h: Handle, size: number): Promise<void> {
    this.live(h);
    if (!h.access.write) throw new VfsError('EBADF', 'handle not open for writing');
    if (!Number.isSafeInteger(size) || size < 0) throw new VfsError('EINVAL');
    this.checkIo(h, Math.min(size, Number.MAX_SAFE_INTEGER - 1), 1, 'write');
    if (this.host.leases.size > 0) await this.host.leases.beforeWrite(h.fileId, h);
    const grew = h.volume.quota ? await h.volume.quota.resize(h, size, true) : 0;
    try {
      if (h.stage) await h.stage.truncate(size);
      else await h.file!.truncate(size);
    } catch (e) {
      h.volume.quota?.undo(h, grew);
      throw e;
    }
    this.host.emit(h.volume, 'modify', h.fileId, h.path, 'file');
  }

  /**
   * fallocate(2) through a handle open for writing (FUSE fallocate; NFSv4.2 ALLOCATE/DEALLOCATE
   * could use it). Where the backend has an allocation call (capabilities.fileAllocate: a local
   * share with its native helper) the range is reserved, punched ('punch': keeps the size) or
   * zeroed in the store. Elsewhere 'allocate' only grows the size to the range's end (the new
   * bytes read as zeros; nothing is reserved, so a later write can still fail with ENOSPC/EDQUOT)
   * and 'punch'/'zero' are ENOTSUP. A handle with a write stage (stores without random writes) has
   * its bytes in Portico, not in the store: the same fallback, never a call on the store's file.
   */
  async allocate(h: Handle, op: AllocateOp, offset: number, length: number, keepSize: boolean): Promise<void> {
    this.live(h);
    if (h.type === 'dir') throw new VfsError('EISDIR');
    if (!h.access.write) throw new VfsError('EBADF', 'handle not open for writing');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length <= 0) throw new VfsError('EINVAL');
    const end = offset + length;
    if (end > h.volume.backend.capabilities.maxFileSize) throw new VfsError('EFBIG');
    const file = h.file;
    if (h.volume.backend.capabilities.fileAllocate !== true || file?.allocate === undefined || h.stage !== undefined) {
      if (op !== 'allocate') throw new VfsError('ENOTSUP', `no ${op === 'punch' ? 'hole punching' : 'range zeroing'} on this share`, { path: h.path });
      if (!keepSize && end > (await this.fstat(h)).size) await this.ftruncate(h, end);
      return;
    }
    this.checkIo(h, offset, length, 'write');
    if (this.host.leases.size > 0) await this.host.leases.beforeWrite(h.fileId, h);
    // Quota counts sizes: only a range that may grow the file is counted (punching keeps the size).
    const grows = !keepSize && op !== 'punch';
    const grew = grows && h.volume.quota ? await h.volume.quota.resize(h, end) : 0;
    try {
      await file.allocate(op, offset, length, keepSize || op === 'punch');
    } catch (e) {
      h.volume.quota?.undo(h, grew);
      throw toVfsError(e, h.path);
    }
    this.host.emit(h.volume, 'modify', h.fileId, h.path, 'file');
  }

  /**
   * lseek SEEK_DATA / SEEK_HOLE through a handle: the next data or hole at or after `offset`,
   * undefined when there is none (ENXIO). From the store's hole map where it has one
   * (capabilities.sparseSeek); elsewhere, and for a handle whose bytes are staged in Portico, the
   * file has no holes: data everywhere below the size, the one hole at its end.
   */
  async seekData(h: Handle, offset: number, what: 'data' | 'hole'): Promise<number | undefined> {
    this.live(h);
    if (h.type === 'dir') throw new VfsError('EISDIR');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new VfsError('EINVAL');
    const file = h.file;
    if (h.volume.backend.capabilities.sparseSeek === true && file?.seekData !== undefined && h.stage === undefined) {
      try {
        return await file.seekData(offset, what);
      } catch (e) {
        throw toVfsError(e, h.path);
      }
    }
    const size = (await this.fstat(h)).size;
    if (offset >= size) return undefined;
    return what === 'data' ? offset : size;
  }

  /**
   * copy_file_range(2) between two handles inside the store (capabilities.rangeCopy on both
   * shares' backends: a local share with its native helper): up to `length` bytes from `srcOffset`
   * of `src` to `dstOffset` of `dst`, fewer at the source's end (0 past it). ENOTSUP when the store
   * cannot (another backend, two file systems, overlapping ranges of one file, a handle whose
   * bytes are staged in Portico): the caller then copies through Portico (read and write).
   */
  async copyRange(src: Handle, srcOffset: number, dst: Handle, dstOffset: number, length: number): Promise<number> {
    this.live(src);
    this.live(dst);
    if (src.type === 'dir' || dst.type === 'dir') throw new VfsError('EISDIR');
    if (!src.access.read || !dst.access.write) throw new VfsError('EBADF');
    for (const n of [srcOffset, dstOffset, length]) if (!Number.isSafeInteger(n) || n < 0) throw new VfsError('EINVAL');
    const from = src.file;
    const to = dst.file;
    if (
      src.volume.backend.capabilities.rangeCopy !== true || dst.volume.backend.capabilities.rangeCopy !== true ||
      from?.copyRange === undefined || to === undefined || src.stage !== undefined || dst.stage !== undefined
    ) {
      throw new VfsError('ENOTSUP', 'no range copy inside the store here', { path: dst.path });
    }
    let n: number;
    try {
      n = Math.min(length, (await from.stat()).size - srcOffset);
    } catch (e) {
      throw toVfsError(e, src.path);
    }
    if (n <= 0) return 0;
    if (dstOffset + n > dst.volume.backend.capabilities.maxFileSize) throw new VfsError('EFBIG');
    this.checkIo(src, srcOffset, n, 'read');
    this.checkIo(dst, dstOffset, n, 'write');
    if (this.host.leases.size > 0) await this.host.leases.beforeWrite(dst.fileId, dst);
    const grew = dst.volume.quota ? await dst.volume.quota.resize(dst, dstOffset + n) : 0;
    let copied: number;
    try {
      copied = await from.copyRange(srcOffset, to, dstOffset, n);
    } catch (e) {
      dst.volume.quota?.undo(dst, grew);
      throw toVfsError(e, dst.path);
    }
    if (copied > 0) this.host.emit(dst.volume, 'modify', dst.fileId, dst.path, 'file');
    return copied;
  }

  /** Open handles of a deleted file keep working (POSIX) but must not resurrect it on close. */
  orphan(id: FileId): void {
    for (const h of this.handlesOf(id)) h.orphaned = true;
  }

  /** After an exchange of two names (neither inside the other): handles below each name the other. */
  exchangeHandles(a: string, b: string, v: Volume): void {
    for (const h of this.handles.values()) {
      if (h.volume !== v) continue;
      const from = isSameOrDescendant(h.path, a) ? a : isSameOrDescendant(h.path, b) ? b : undefined;
      if (from === undefined) continue;
      h.path = (from === a ? b : a) + h.path.slice(from.length);
      if (h.stage) h.stage.path = h.path;
    }
  }

  /** Handles at or below `from` now name `to`; returns them. */
  /** Whether a handle other than `except` is open strictly below the directory `path` of `v`. */
  openBelow(v: Volume, path: string, except?: Handle): boolean {
    for (const h of this.handles.values()) {
      if (h !== except && h.volume === v && h.path !== path && isSameOrDescendant(h.path, path)) return true;
    }
    return false;
  }

  retargetHandles(from: string, to: string, v: Volume): Handle[] {
    const out: Handle[] = [];
    for (const h of this.handles.values()) {
      if (h.volume !== v || !isSameOrDescendant(h.path, from)) continue;
      h.path = to + h.path.slice(from.length);
      if (h.stage) h.stage.path = h.path;
      out.push(h);
    }
    return out;
  }

  /**
   * After a rename by copy: the handles' open objects were deleted, so their read views reopen on
   * the copies. A failure keeps the old view (reads of cached data still work; others get ESTALE).
   */
  async reopenMoved(v: Volume, handles: Handle[]): Promise<void> {
    const writable = v.backend.capabilities.randomWrites;
    await Promise.all(handles.map(async (h) => {
      if (h.type !== 'file' || h.file === undefined || h.orphaned || h.closed) return;
      const old = h.file;
      try {
        h.file = await v.backend.openFile(h.path, { write: writable && h.access.write });
      } catch {
        return;
      }
      await old.close().catch(() => undefined);
    }));
  }
}
