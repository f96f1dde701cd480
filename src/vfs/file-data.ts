/**
 * Per-file data and its write policy: how a handle's bytes reach the backend.
 *
 * - random-write backends (local disk): the handle's own descriptor, nothing staged;
 * - backends without random writes (object stores): one shared write stage per file on local disk
 *   (write-stage.ts), published atomically on flush and on the last close; a created file may be
 *   uploaded once, by its first publish (deferred-create.ts);
 * - shares with async write-back: the stage is journaled on a writer's close and uploaded in the
 *   background (write-back.ts); a stage that cannot be journaled is uploaded in-band;
 * - whole-content replacement (WebDAV PUT): the backend's atomic writer, or a journaled stage.
 *
 * `Vfs` (vfs.ts) stays the one public facade and keeps the handle table: open() calls createEmpty
 * and attachData here, flush()/close() call flush and release, replaceContent() is this one's.
 * FileData gets what it needs of the VFS around it as a small typed host (FileDataHost), not the
 * whole Vfs; it owns the stage tables (`stages`, read by Vfs.attr for a staged file's size, and
 * by setattr's truncate) and the per-volume deferred-create layers (given by addVolume).
 */
import { randomUUID } from 'node:crypto';
import type { Backend, BackendFile, BackendStat, FileOwner } from './backend.ts';
import { VfsError, isVfsError, toVfsError } from './errors.ts';
import { baseName } from './path.ts';
import type { Volume } from './volume.ts';
import type { ChangeTracker } from './change-tracker.ts';
import { WriteStage } from './write-stage.ts';
import type { CreatedFile, WriteBack } from './write-back.ts';
import type { DeferredCreates } from './deferred-create.ts';
import type { Handle } from './handle.ts';
import { NO_TOKENS, SHARE_ALL, type ChangeKind, type FileAttr, type FileId, type FlushOptions, type Tokens } from './types.ts';
import type { NodeRow } from '../store/metadata-store.ts';
import type { LockManager } from '../locks/lock-manager.ts';
import type { ShareModeTable } from '../locks/share-modes.ts';
import type { LeaseTable } from '../locks/leases.ts';
import type { ContentWriter, ReplaceOptions } from './vfs.ts';


/** What per-file data needs of the VFS around it (given by Vfs, bound to its own state). */
export interface FileDataHost {
  readonly locks: LockManager;
  readonly shareModes: ShareModeTable;
  readonly leases: LeaseTable;
  readonly writeBack: WriteBack;
  readonly changes: ChangeTracker;
  volume(name: string): Volume;
  attr(v: Volume, row: NodeRow, st: BackendStat): FileAttr;
  emit(v: Volume, kind: ChangeKind, id: FileId, path: string, type: FileAttr['type'], oldPath?: string): bigint;
  checkTokenLocks(v: Volume, path: string, tokens: Tokens, what: { self: boolean; parent: boolean }): void;
  /** The open handles of a file (the handle table stays in Vfs). */
  handlesOf(id: FileId): Iterable<Handle>;
}

export class FileData {
  /** The live write stage of each file being written (backends without random writes). */
  readonly stages = new Map<FileId, WriteStage>();
  /** Last-close work (publish, discard) still running per file: an open of the file waits for it. */
  private readonly stagesClosing = new Map<FileId, Promise<void>>();
  /** Whether the file has a live write stage or last-close work still running (OpenFiles.readSmall). */
  busy(id: FileId): boolean {
    return this.stages.has(id) || this.stagesClosing.has(id);
  }

  /** Handles opened through the write-back paths (async shares); their close/flush use them too. */
  private readonly wbHandles = new WeakSet<Handle>();
  /** Of those, the ones with write access (or a truncating open): they hold the file's upload. */
  private readonly wbWriters = new WeakSet<Handle>();
  /** Per volume without random writes: files created but not uploaded yet (src/vfs/deferred-create.ts). */
  readonly deferredCreates = new Map<string, DeferredCreates>();
  private readonly stageDir: string;
  private readonly host: FileDataHost;

  constructor(stageDir: string, host: FileDataHost) {
    this.stageDir = stageDir;
    this.host = host;
  }

  /**
   * Creates an empty file: exclusive on request. On random-write backends the descriptor of the
   * create is kept for the handle (no close and reopen).
   *
   * Object stores: when the creating handle has write access (so its close publishes the file
   * anyway), the empty upload is skipped: the file is announced to the volume's deferred-create
   * layer, which shows it on this gateway until the handle's first publish writes it, once
   * (src/vfs/deferred-create.ts has the decision and its limits). S3: create + write + close drops
   * from 7 requests to 2-4. With async write-back the publish is the write-back's upload: the
   * writer's close journals the stage with the create (`nw`, createdOf), as a staged PUT of a new
   * file does, so a restart announces the file again; a create + write + close + unlink then makes
   * no request to the store at all (before: HEAD, PUT, HEAD at the create, and the DELETE of that
   * empty object at the unlink — 14-19 ms of a FUSE small-file cycle's ~50 on s3rver). Otherwise
   * (no write access) the empty object is uploaded at once, visible to every client.
   */
  async createEmpty(v: Volume, path: string, mode: number | undefined, exclusive: boolean, willWrite = false, owner?: FileOwner): Promise<{ st: BackendStat; file?: BackendFile }> {
    if (v.backend.capabilities.randomWrites) {
      const file = await v.backend.openFile(path, { write: true, create: true, exclusive, mode: mode ?? 0o644, ...(owner ? { owner } : {}) });
      if (!exclusive) {
        // Without O_EXCL the file may have existed (a race with another creator): report what is there.
        try {
          return { st: await file.stat(), file };
        } catch (e) {
          await file.close().catch(() => undefined);
          throw e;
        }
      }
      const now = BigInt(Date.now()) * 1_000_000n;
      return { st: { name: baseName(path), type: 'file', size: 0, mtimeNs: now, ctimeNs: now, atimeNs: now }, file };
    }
    const deferred = this.deferredCreates.get(v.name);
    if (deferred !== undefined && willWrite) {
      const st = await deferred.create(path, mode ?? 0o644, exclusive, owner);
      if (st !== undefined) return { st };
    }
    const w = await v.backend.createWriter(path, { exclusive, mode: mode ?? 0o644, sizeHint: 0, ...(owner ? { owner } : {}) });
    return { st: await w.commit() };
  }

  async attachData(v: Volume, h: Handle, truncate: boolean): Promise<void> {
    const caps = v.backend.capabilities;
    if (caps.randomWrites) {
      h.file = await v.backend.openFile(h.path, { write: h.access.write, truncate });
      if (truncate) this.host.emit(v, 'modify', h.fileId, h.path, 'file');
      return;
    }
    if (this.host.writeBack.active(v.name)) return this.attachStaged(v, h, truncate);
    if (truncate) {
      const w = await v.backend.createWriter(h.path, { sizeHint: 0 });
      await w.commit();
      this.host.emit(v, 'modify', h.fileId, h.path, 'file');
    }
    h.file = await v.backend.openFile(h.path, { write: false });
    if (!h.access.write) {
      // Another handle's writes not published yet are in its stage: a reader shares it, so it reads
      // what getattr reports (the staged size) — reading the object instead gave a WebDAV GET a
      // Content-Length longer than its body. Without a stage the object is the content.
      const live = this.stages.get(h.fileId);
      if (live !== undefined) {
        live.refs++;
        h.stage = live;
      }
      return;
    }
    {
      // A stage still uploading from the last close must land before a new one reads the object.
      await this.stagesClosing.get(h.fileId);
      let stage = this.stages.get(h.fileId);
      if (!stage) {
        // A file created but not uploaded yet (deferred create) is empty: nothing to load, and the
        // stage starts dirty, so the last close publishes it even when nothing was written.
        const pending = this.deferredCreates.get(v.name)?.isPending(h.path) === true;
        stage = new WriteStage(this.stageDir, v.backend, h.path, pending);
        this.stages.set(h.fileId, stage);
      }
      stage.refs++;
      h.stage = stage;
    }
  }

  /**
   * attachData on shares with async write-back (src/vfs/write-back.ts). Every open shares the file's
   * stage when it has one — live, or pending upload — so reads see the staged content. A writer (or
   * a truncating open) holds the file's upload: no attempt starts while it is attached. It does not
   * wait for an attempt already running (a hung store would hang the open): that attempt publishes
   * what it read, the stage keeps every write that arrived meanwhile dirty (WriteStage generations),
   * and the entry is uploaded again after the writer's close — the same rule as a sync-mode flush
   * racing another handle's writes.
   */
  private async attachStaged(v: Volume, h: Handle, truncate: boolean): Promise<void> {
    const wb = this.host.writeBack;
    const writes = h.access.write || truncate;
    if (writes) wb.hold(h.fileId);
    let stage: WriteStage | undefined;
    try {
      // An in-band upload of a close that could not be journaled must land first (as in sync mode).
      if (writes) await this.stagesClosing.get(h.fileId);
      h.file = await v.backend.openFile(h.path, { write: false });
      stage = this.stages.get(h.fileId) ?? wb.stageOf(h.fileId);
      if (!stage && !writes) {
        // A reader of a file nobody stages reads the object, as in sync mode.
        return;
      }
      if (!stage) {
        // A truncating open is a content change like any write: staged (an empty, dirty stage) and
        // uploaded after the close, not an empty PUT now. So is a file just announced to the
        // deferred-create layer (createEmpty): empty, and dirty so that the writer's close journals
        // it (with its create) even when nothing was written.
        const pending = this.deferredCreates.get(v.name)?.isPending(h.path) === true;
        stage = new WriteStage(this.stageDir, v.backend, h.path, truncate || pending);
        if (truncate) {
          truncate = false;
          this.host.emit(v, 'modify', h.fileId, h.path, 'file');
        }
      }
      this.stages.set(h.fileId, stage);
      stage.refs++;
      h.stage = stage;
      this.wbHandles.add(h);
      if (writes) this.wbWriters.add(h);
      if (truncate) {
        await stage.truncate(0);
        this.host.emit(v, 'modify', h.fileId, h.path, 'file');
      }
    } catch (e) {
      if (h.stage !== undefined) {
        const st = h.stage;
        h.stage = undefined;
        this.wbHandles.delete(h);
        this.wbWriters.delete(h);
        if (--st.refs === 0) {
          this.stages.delete(h.fileId);
          if (!wb.has(h.fileId)) await st.discard();
        }
      }
      if (writes) wb.release(h.fileId);
      throw e;
    }
  }

  /** Makes everything written through this handle durable (object stores: uploaded; async write-back: journaled). */
  async flush(h: Handle, opts?: FlushOptions): Promise<void> {
    try {
      if (h.stage && !h.orphaned && this.wbHandles.has(h)) {
        // Async write-back: durable on this gateway (journaled); uploaded once the last writer
        // closes. A stage that cannot be journaled is uploaded now, as in sync mode.
        if (!this.wbWriters.has(h) || !h.stage.dirty) return;
        const stage = h.stage;
        await this.host.writeBack.commit(h.volume.name, h.fileId, h.path, stage, this.createdOf(h)).catch(async () => {
          if (await stage.publish()) await this.reopenReader(h);
        });
      } else if (h.stage && !h.orphaned) {
        if (await h.stage.publish()) await this.reopenReader(h);
      } else if (h.file && h.access.write && opts?.durable !== false) await h.file.sync();
    } catch (e) {
      throw toVfsError(e, h.path);
    }
  }

  /**
   * How the handle's file was created when it is still only announced to the deferred-create layer
   * (not in the store): the write-back journal record carries it, so a restart announces it again.
   */
  private createdOf(h: Handle): CreatedFile | undefined {
    return this.deferredCreates.get(h.volume.name)?.pendingCreate(h.path);
  }

  /** After an object is replaced, readers must see the new object. */
  private async reopenReader(h: Handle): Promise<void> {
    for (const other of this.host.handlesOf(h.fileId)) {
      if (!other.file || other.orphaned) continue;
      const old = other.file;
      other.file = await other.volume.backend.openFile(other.path, { write: false });
      await old.close().catch(() => undefined);
    }
  }

  /**
   * A closing handle lets go of its stage: the last one publishes it (sync), or a writer's close
   * journals it for upload (async write-back, closeStaged). Throws what the publish threw; the
   * caller (Vfs.close) closes the handle either way.
   */
  async release(h: Handle): Promise<void> {
    if (h.stage && this.wbHandles.has(h)) await this.closeStaged(h, h.stage);
    else if (h.stage) {
      const stage = h.stage;
      stage.refs--;
      if (stage.refs === 0) {
        this.stages.delete(h.fileId);
        const orphaned = h.orphaned;
        await this.trackClosing(h.fileId, async () => {
          try {
            if (!orphaned) await stage.publish();
          } finally {
            await stage.discard();
          }
        });
      } else if (h.access.write && !h.orphaned && ![...this.host.handlesOf(h.fileId)].some((o) => o !== h && o.stage === stage && o.access.write)) {
        // The last writer's close publishes (the sync-mode promise: closed means in the store),
        // even while readers still share the stage; they keep reading it, rebased on what was
        // published, and the last of them discards it.
        await this.trackClosing(h.fileId, async () => void (await stage.publish()));
      }
    }
  }

  /**
   * close() of a handle opened through attachStaged. When no writer is left on a dirty stage, it is
   * journaled (fsync + record: durable here) and its upload queued; the close returns without
   * waiting for the store. A stage that cannot be journaled (journal unwritable, maxPendingUploads
   * reached) is uploaded in-band, as in sync mode.
   */
  private async closeStaged(h: Handle, stage: WriteStage): Promise<void> {
    const wb = this.host.writeBack;
    const writer = this.wbWriters.delete(h);
    stage.refs--;
    try {
      const otherWriters = [...(this.host.handlesOf(h.fileId))].some((o) => o !== h && this.wbWriters.has(o));
      // A reader's close journals only a dirty stage that is not pending yet (changed by a setattr
      // truncate while only readers had it open); a pending one is journaled already.
      if (!h.orphaned && stage.dirty && !otherWriters && (writer || !wb.has(h.fileId))) {
        // commit() registers the pending stage before its first await: an open arriving meanwhile
        // finds it there once it leaves this.stages.
        const journaled = wb.commit(h.volume.name, h.fileId, h.path, stage, this.createdOf(h));
        if (stage.refs === 0) this.stages.delete(h.fileId);
        await journaled.catch((e: unknown) => this.publishInBand(h, stage, e));
        return;
      }
      if (stage.refs === 0) {
        this.stages.delete(h.fileId);
        if (!wb.has(h.fileId)) await stage.discard();
      }
    } finally {
      if (writer) wb.release(h.fileId);
    }
  }

  private async publishInBand(h: Handle, stage: WriteStage, why: unknown): Promise<void> {
    if (!isVfsError(why, 'EAGAIN')) this.host.writeBack.logWarn({ err: why, share: h.volume.name, path: h.path }, 'write-back: could not journal a close; uploading in-band');
    await this.trackClosing(h.fileId, async () => {
      try {
        await stage.publish();
      } finally {
        // Discard unless someone reopened it meanwhile or a pending upload still owns it.
        if (stage.refs === 0 && this.stages.get(h.fileId) !== stage && !this.host.writeBack.has(h.fileId)) await stage.discard();
      }
    });
  }

  /**
   * Runs a stage's last-close work (publish, discard), registered in stagesClosing until it settles
   * so that an open of the same file meanwhile waits for it instead of reading a half-published state.
   */
  private async trackClosing(fileId: FileId, work: () => Promise<void>): Promise<void> {
    const done = work();
    const settled = done.catch(() => undefined);
    this.stagesClosing.set(fileId, settled);
    try {
      await done;
    } finally {
      if (this.stagesClosing.get(fileId) === settled) this.stagesClosing.delete(fileId);
    }
  }

  /**
   * Replaces a file's whole content atomically, or creates it: the bytes stream into the backend's
   * atomic writer (local: a reserved-prefix temp file renamed on commit; S3: PUT or multipart
   * upload), so readers see the old content until commit() and never a partial file; abort() or a
   * failure leaves the old content. An existing file keeps its identity — id, properties, WebDAV
   * locks, Windows attributes — because only its content changes (WebDAV PUT, SMB/FUSE
   * "write whole file" paths). While the upload runs it counts as an open with write access for
   * share modes; Windows byte-range locks and WebDAV locks (without their tokens) refuse it.
   */
  async replaceContent(volume: string, path: string, opts: ReplaceOptions): Promise<ContentWriter> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    const tokens = opts.tokens ?? NO_TOKENS;
    const r = await v.resolve(p);
    if (r.stat) {
      if (opts.exclusive) throw new VfsError('EEXIST', undefined, { path: p });
      if (r.stat.type === 'dir') throw new VfsError('EISDIR', undefined, { path: p });
      if (r.stat.type === 'symlink') throw new VfsError('ELOOP', 'cannot write through a symbolic link', { path: p });
    } else if (r.path === '/') throw new VfsError('EISDIR', undefined, { path: p });
    const checks = (): FileId | undefined => {
      const id = r.stat ? v.row(r.path, r.stat).id : undefined;
      this.host.checkTokenLocks(v, r.path, tokens, { self: id !== undefined, parent: id === undefined });
      if (id !== undefined && this.host.locks.size > 0) {
        for (const l of this.host.locks.locksOn(id)) if (l.style === 'windows') throw new VfsError('ELOCKED', undefined, { path: p });
      }
      return id;
    };
    const existingId = checks();
    if (existingId !== undefined && this.host.leases.size > 0) await this.host.leases.beforeWrite(existingId, opts.owner);
    const existing = r.stat && existingId !== undefined ? this.host.attr(v, v.row(r.path), r.stat) : undefined;
    // Quota: the declared size is checked now, the bytes reserved as they come, counted at commit.
    const qw = v.quota?.writer(r.path, existing?.size ?? 0, existingId === undefined, opts.sizeHint);
    const recId = `replace:${randomUUID()}`;
    if (existingId !== undefined) {
      this.host.shareModes.open({ handleId: recId, fileId: existingId, owner: opts.owner, access: { read: false, write: true, delete: false }, share: SHARE_ALL, deleteOnClose: false });
    }
    let w: Awaited<ReturnType<Backend['createWriter']>>;
    // Async write-back: the body goes to a local stage, journaled at commit (write-back.ts stagedReplace).
    const staged = this.host.writeBack.stagedReplace(v.name, v.backend, r.path, { existing: r.stat, sizeHint: opts.sizeHint, exclusive: opts.exclusive ?? false, mode: opts.mode ?? 0o644, owner: opts.creator });
    try {
      // A replaced file keeps its owner and mode: on a local disk the new content is a new inode.
      const keep = existing !== undefined && v.backend.capabilities.posixMetadata ? { mode: existing.mode, owner: { uid: existing.uid, gid: existing.gid } } : undefined;
      const owner = keep?.owner ?? opts.creator;
      w = staged ?? await v.backend.createWriter(r.path, { exclusive: opts.exclusive ?? false, mode: keep?.mode ?? opts.mode ?? 0o644, ...(owner ? { owner } : {}), ...(opts.sizeHint !== undefined ? { sizeHint: opts.sizeHint } : {}) });
    } catch (e) {
      if (existingId !== undefined) this.host.shareModes.close(recId);
      qw?.release();
      throw toVfsError(e, p);
    }
    let settled = false;
    const finish = (): void => {
      settled = true;
      if (existingId !== undefined) this.host.shareModes.close(recId);
      qw?.release();
    };
    const maxSize = v.backend.capabilities.maxFileSize;
    let size = 0;
    return {
      created: existingId === undefined,
      existing,
      write: async (chunk: Uint8Array): Promise<void> => {
        if (settled) throw new VfsError('EBADF', 'writer already committed or aborted');
        size += chunk.length;
        if (size > maxSize) throw new VfsError('EFBIG', undefined, { path: p });
        qw?.grow(size);
        try {
          await w.write(chunk);
        } catch (e) {
          throw toVfsError(e, p);
        }
      },
      writev: async (chunks: readonly Uint8Array[]): Promise<void> => {
        if (settled) throw new VfsError('EBADF', 'writer already committed or aborted');
        for (const c of chunks) size += c.length;
        if (size > maxSize) throw new VfsError('EFBIG', undefined, { path: p });
        qw?.grow(size);
        try {
          if (w.writev) await w.writev(chunks);
          else for (const c of chunks) await w.write(c);
        } catch (e) {
          throw toVfsError(e, p);
        }
      },
      commit: async (): Promise<FileAttr> => {
        if (settled) throw new VfsError('EBADF', 'writer already committed or aborted');
        // A pending async upload of this file must not land after the new content: held (a running
        // attempt finishes first), then dropped once the new content is committed.
        let wbRelease: (() => void) | undefined;
        try {
          if (existingId !== undefined && this.host.writeBack.has(existingId)) wbRelease = await this.host.writeBack.pause([existingId]);
          checks();
          // The new content may come as a new inode (an atomic replace): not a replacement of the file.
          if (existingId !== undefined) this.host.changes.expect(v.row(r.path));
          qw?.grow(size);
          const st = await w.commit();
          finish();
          if (wbRelease !== undefined) await this.host.writeBack.cancel(existingId!);
          const existed = existingId !== undefined && v.existingId(r.path) === existingId;
          qw?.commit(r.path, size, existed);
          if (existingId !== undefined) v.quota?.forgetSize(existingId);
          const row = existed ? v.row(r.path) : v.newRow(r.path, st);
          const shown = staged !== undefined ? await staged.journal(row.id) : st;
          this.host.emit(v, existed ? 'modify' : 'create', row.id, r.path, 'file');
          return this.host.attr(v, row, shown);
        } catch (e) {
          if (!settled) {
            await w.abort().catch(() => undefined);
            finish();
          }
          throw toVfsError(e, p);
        } finally {
          wbRelease?.();
        }
      },
      abort: async (): Promise<void> => {
        if (settled) return;
        finish();
        await w.abort().catch(() => undefined);
      },
    };
  }
}
