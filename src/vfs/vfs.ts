/**
 * The VFS core: POSIX-like semantics with Windows share modes over any Backend.
 *
 * Protocols never call this directly: they go through a Session (src/session), which checks rights,
 * audits and counts. Every path argument is a share-relative path that this class normalises with
 * the one validator (src/vfs/path.ts) before anything else sees it.
 *
 * One lock manager and one share-mode table serve every protocol, so a WebDAV lock, an SMB
 * byte-range lock or share mode and an NFSv4 open/lock all see each other.
 *
 * Shape (issue 9). `Vfs` is the one public facade: every caller (src/session, protocols, tests)
 * uses only its methods, whose names and signatures do not depend on where the work lives. It
 * keeps the shared state (volumes, lock/share-mode/lease tables, change tracker, attribute cache,
 * change events, write-back, tree moves) and the helpers every concern uses (attr, existing, emit,
 * checkTokenLocks, ancestorIds), and it does itself what is small: attributes and lookups by id,
 * readdir and its cookies, properties, xattrs, outside changes, lifecycle. The big concerns live
 * in files named after them, each a class that gets a small typed host interface of what it needs
 * (bound here, in the constructor) rather than the whole Vfs:
 *
 * - open-files.ts  OpenFiles (OpenFilesHost): the handle table, open/read/write/truncate/flush/
 *                  close, delete-on-close, handles following renames and deletes;
 * - file-data.ts   FileData (FileDataHost): per-file data and its write policy — write stages,
 *                  attach/publish, async write-back's handles, deferred creates, replaceContent;
 * - namespace.ts   NamespaceOps (NamespaceHost): mkdir, unlink, rmdir, rename, symlink, link, setattr;
 * - tree-ops.ts    TreeOps (TreeOpsHost): recursive copy and removal (TreeError, TreeGuard);
 * - tree-move/     TreeMoves (TreeMoveHost): journaled directory moves without atomic rename.
 */
import { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { AllocateOp, BackendStat, BackendWatcher, FileOwner, BackendWatchListener, ListPage } from './backend.ts';
import { VfsError, isVfsError } from './errors.ts';
import { baseName, joinPath, parentPath } from './path.ts';
import { Volume, type VolumeOptions } from './volume.ts';
import { ChangeTracker, REPLACED } from './change-tracker.ts';
import { AttrCache, ATTR_CACHE_TTL_MS } from './attr-cache.ts';
import { ListingCache } from './listing-cache.ts';
import { TreeOps, type TreeError, type TreeGuard } from './tree-ops.ts';
import { NamespaceOps } from './namespace.ts';
import { FileData } from './file-data.ts';
import { OpenFiles, handleLockOwner } from './open-files.ts';
import { WriteBack, type WriteBackLogger, type WriteBackOptions } from './write-back.ts';
import { TreeMoves, type TreeMoveOptions, type TreeMoveReport } from './tree-move/index.ts';
import type { VolumeStack } from './volume-stack.ts';
import { ChangeTimes } from './change-times.ts';
import { Handle } from './handle.ts';
import {
  NO_TOKENS,
  SETTABLE_WIN_ATTRS,
  WinAttr,
  type Access,
  type ChangeEvent,
  type ChangeKind,
  type DirEntry,
  type FileAttr,
  type FileId,
  type FlushOptions,
  type OpenOptions,
  type ReaddirOptions,
  type ReaddirResult,
  type SetAttr,
  type StatFsResult,
  type Tokens,
} from './types.ts';
import type { MetadataStore, NodeRow, PropChange, PropRow } from '../store/metadata-store.ts';
import { LockManager, WHOLE_FILE, type LockRange } from '../locks/lock-manager.ts';
import { ShareModeTable } from '../locks/share-modes.ts';
import { LeaseTable } from '../locks/leases.ts';
import type { Registry } from 'prom-client';
import { checkXattrName, findXattr, listOf, planRemove, planSet, STREAM_NS, XATTR_NS, type XattrEntry, type XattrSetMode, type XattrSpace } from './xattrs.ts';

export { Handle };

export interface VfsOptions {
  store: MetadataStore;
  /** Where write stages for object-store backends live (default: <tmpdir>/portico-stage). */
  stageDir?: string;
  locks?: LockManager;
  /**
   * Journal and lost+found of the async write-back (src/vfs/write-back.ts); required for shares
   * with `writeBack: async`. The gateway uses <stateDir>/writeback.
   */
  writeBackDir?: string;
  /** Registry for the portico_writeback_* metrics. */
  metricsRegistry?: Registry;
  logger?: WriteBackLogger;
  /** Directory renames on backends without atomic rename (src/vfs/tree-move/): concurrency, retries, logger. */
  treeMoves?: TreeMoveOptions;
  /**
   * How long attributes and name lookups by id may be answered from memory (src/vfs/attr-cache.ts;
   * outside changes show within it). 0 = off. Default ATTR_CACHE_TTL_MS.
   */
  attrCacheMs?: number;
}

/** addVolume() options: the volume's own plus the share's write-back settings. */
export interface AddVolumeOptions extends VolumeOptions {
  writeBack?: Partial<WriteBackOptions>;
}

export { NO_TOKENS, type Tokens } from './types.ts';

export interface ReplaceOptions {
  /** Identity of the writer (for share modes), like OpenOptions.owner. */
  owner: string;
  tokens?: Tokens;
  mode?: number;
  sizeHint?: number;
  /** Fail with EEXIST when the file exists (checked at start and again, atomically, at commit). */
  exclusive?: boolean;
  /** Owner of the file when this creates it (a replaced file keeps its owner and mode). */
  creator?: FileOwner;
}

/** A whole-content writer from Vfs.replaceContent(): write chunks, then commit() or abort(). */
export interface ContentWriter {
  /** True when the file did not exist at start. */
  readonly created: boolean;
  /**
   * The replaced file's attributes as the start's own lookup found them (undefined when created):
   * lets a caller evaluate preconditions (WebDAV If-Match) without a lookup of its own.
   */
  readonly existing: FileAttr | undefined;
  /** The writer may keep `chunk` until commit: pass a buffer that is not reused. */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * The chunks in order, as one backend write where the backend can (local: one pwritev), else one
   * by one: no concatenation into one buffer first. Same ownership rule as write().
   */
  writev(chunks: readonly Uint8Array[]): Promise<void>;
  commit(): Promise<FileAttr>;
  abort(): Promise<void>;
}

/**
 * Dead properties one file may keep (WebDAV PROPPATCH, across requests): every allprop PROPFIND
 * renders a file's properties in one piece, and a listing sends each member's, so an unbounded set
 * is unbounded work per request (docs/SECURITY.md). Past it a PROPPATCH fails whole with ENOSPC
 * (507). xattrs and named streams have their own, smaller bounds (xattrs.ts).
 */
const DEAD_PROPS_BOUND = { rows: 1024, bytes: 1024 * 1024, exceptNs: [XATTR_NS, STREAM_NS] };

export type { TreeError, TreeGuard } from './tree-ops.ts';

const READDIR_DEFAULT = 1000;
const READDIR_MAX = 10_000;
/** The last entries of a readdir page whose backend names are kept for resuming (cookieName). */
const RESUME_NAMES = 8;

/** A directory's key in the listing cache. */
function listingKey(v: Volume, dir: string): string {
  return `${v.name}\0${dir}`;
}

export class Vfs {
  readonly store: MetadataStore;
  readonly locks: LockManager;
  readonly shareModes = new ShareModeTable();
  /** ChangeTimes Portico set over the backend's ctime (change-times.ts). */
  readonly changeTimes = new ChangeTimes();
  /** Leases, oplocks and delegations, broken before every conflicting operation (src/locks/leases.ts). */
  readonly leases: LeaseTable = new LeaseTable({
    opensOn: (id) => this.shareModes.opensOn(id),
    ancestorsOf: (vol, id) => {
      try {
        return this.ancestors(vol, this.pathOf(vol, id));
      } catch {
        return [];
      }
    },
  });
  /** 'change' events (ChangeEvent): SMB CHANGE_NOTIFY, cache invalidation, WebDAV ETags. */
  readonly events = new EventEmitter();
  private readonly volumes = new Map<string, Volume>();
  private readonly changes: ChangeTracker;
  private readonly attrCache: AttrCache;
  /** Whole listings of directories paged through, served again without a stat per entry (listing-cache.ts). */
  private readonly listings: ListingCache;
  /**
   * Names of recently listed entries, so a cookie stays resumable after its entry is deleted.
   * maxSize with unit sizes, not max: the same bound without preallocating 50,000 slots up front.
   */
  private readonly cookieNames = new LRUCache<string, string>({ maxSize: 50_000, sizeCalculation: () => 1 });
  /** Async write-back: journaled stages uploading in the background (src/vfs/write-back.ts). */
  readonly writeBack: WriteBack;
  /** Journaled directory moves on backends without atomic rename (src/vfs/tree-move/). */
  readonly treeMoves: TreeMoves;
  /** Recursive copy and removal (src/vfs/tree-ops.ts), given what it needs of this Vfs as a TreeOpsHost. */
  private readonly trees: TreeOps;
  /**
   * Per-file data and its write policy (src/vfs/file-data.ts): write stages, attach/publish on
   * open, flush and close, async write-back's handles, deferred creates, whole-content replaces.
   */
  private readonly data: FileData;
  /** mkdir, unlink, rmdir, rename, links, setattr (src/vfs/namespace.ts), given a NamespaceHost. */
  private readonly names: NamespaceOps;
  /**
   * The handle table and I/O through handles (src/vfs/open-files.ts): open, read, write, truncate,
   * flush, close, delete-on-close, handles following renames and deletes.
   */
  private readonly files: OpenFiles;

  constructor(options: VfsOptions) {
    this.store = options.store;
    this.locks = options.locks ?? new LockManager();
    this.changes = new ChangeTracker(this.store);
    this.attrCache = new AttrCache(options.attrCacheMs);
    this.listings = new ListingCache(options.attrCacheMs ?? ATTR_CACHE_TTL_MS);
    const stageDir = options.stageDir ?? join(tmpdir(), 'portico-stage');
    this.events.setMaxListeners(0);
    this.writeBack = new WriteBack({
      ...(options.writeBackDir !== undefined ? { dir: options.writeBackDir } : {}),
      stageDir,
      host: {
        backendOf: (vol) => this.volumes.get(vol)?.backend,
        fileIdOf: (vol, path) => this.volume(vol).row(path).id,
      },
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.metricsRegistry ? { registry: options.metricsRegistry } : {}),
    });
    // What a directory move needs of the VFS around it (src/vfs/tree-move/moves.ts TreeMoveHost).
    this.treeMoves = new TreeMoves(this.store, {
      writeBack: this.writeBack,
      busyBelow: (v, dir) => this.files.busyBelow(v, dir),
      handlesMoved: (v, from, to) => this.files.reopenMoved(v, this.files.retargetHandles(from, to, v)),
      releaseLocks: (id) => this.locks.releaseFile(id),
      orphan: (id) => this.files.orphan(id),
      renamed: (v, dirId, from, to) => this.emit(v, 'rename', dirId, to, 'dir', from),
    }, options.treeMoves);
    this.data = new FileData(stageDir, {
      locks: this.locks,
      shareModes: this.shareModes,
      leases: this.leases,
      writeBack: this.writeBack,
      changes: this.changes,
      volume: (name) => this.volume(name),
      attr: (v, row, st) => this.attr(v, row, st),
      emit: (v, kind, id, path, type, oldPath) => this.emit(v, kind, id, path, type, oldPath),
      checkTokenLocks: (v, path, tokens, what) => this.checkTokenLocks(v, path, tokens, what),
      handlesOf: (id) => this.files.handlesOf(id),
    });
    this.names = new NamespaceOps({
      locks: this.locks,
      shareModes: this.shareModes,
      changeTimes: this.changeTimes,
      leases: this.leases,
      writeBack: this.writeBack,
      treeMoves: this.treeMoves,
      volume: (name) => this.volume(name),
      existing: (v, path) => this.existing(v, path),
      attr: (v, row, st) => this.attr(v, row, st),
      emit: (v, kind, id, path, type, oldPath, exchange) => this.emit(v, kind, id, path, type, oldPath, exchange),
      checkTokenLocks: (v, path, tokens, what) => this.checkTokenLocks(v, path, tokens, what),
      stageOf: (id) => this.data.stages.get(id),
      orphan: (id) => this.files.orphan(id),
      openBelow: (v, path, except) => this.files.openBelow(v, path, except),
      retargetHandles: (from, to, v) => this.files.retargetHandles(from, to, v),
      exchangeHandles: (a, b, v) => this.files.exchangeHandles(a, b, v),
      reopenMoved: (v, handles) => this.files.reopenMoved(v, handles),
    });
    this.files = new OpenFiles({
      locks: this.locks,
      shareModes: this.shareModes,
      leases: this.leases,
      writeBack: this.writeBack,
      treeMoves: this.treeMoves,
      data: this.data,
      volume: (name) => this.volume(name),
      attr: (v, row, st) => this.attr(v, row, st),
      emit: (v, kind, id, path, type, oldPath) => this.emit(v, kind, id, path, type, oldPath),
      checkTokenLocks: (v, path, tokens, what) => this.checkTokenLocks(v, path, tokens, what),
      ancestorIds: (v, path) => this.ancestorIds(v, path),
      rmdirPath: (v, path) => this.names.rmdirPath(v, path),
      unlinkPath: (v, path, fromClose) => this.names.unlinkPath(v, path, fromClose),
    });
    this.trees = new TreeOps({
      store: this.store,
      leases: this.leases,
      shareModes: this.shareModes,
      writeBack: this.writeBack,
      volume: (name) => this.volume(name),
      existing: (v, path) => this.existing(v, path),
      checkTokenLocks: (v, path, tokens, what) => this.checkTokenLocks(v, path, tokens, what),
      emit: (v, kind, id, path, type, oldPath) => this.emit(v, kind, id, path, type, oldPath),
      rmdirPath: (v, path) => this.names.rmdirPath(v, path),
      unlinkPath: (v, path, fromClose) => this.names.unlinkPath(v, path, fromClose),
    });
  }

  /**
   * Adds a share over a finished backend stack (buildVolumeStack, src/vfs/volume-stack.ts: the
   * layers and their order are decided there, not here). The VFS keeps the layers it drives: the
   * deferred-create layer, and the tree-move guard, in which journaled moves of a previous run are
   * guarded from here on (resumeTreeMoves() finishes them).
   */
  addVolume(name: string, stack: VolumeStack, options: AddVolumeOptions = {}): Volume {
    if (this.volumes.has(name)) throw new VfsError('EEXIST', `volume ${name} exists`);
    // A directory move on storage without atomic rename must be guarded: refuse a stack without it.
    if (!stack.storage.capabilities.atomicRename && stack.backend !== stack.treeMoveGuard.backend) {
      throw new VfsError('EINVAL', `volume ${name}: the backend stack lacks its tree-move guard on top (build it with buildVolumeStack)`);
    }
    const { writeBack, ...volumeOptions } = options;
    this.writeBack.configure(name, writeBack);
    if (stack.deferredCreates !== undefined) this.data.deferredCreates.set(name, stack.deferredCreates);
    this.treeMoves.attach(name, stack.treeMoveGuard);
    const v = new Volume(name, stack.backend, this.store, volumeOptions);
    this.volumes.set(name, v);
    this.treeMoves.recover(v);
    return v;
  }

  /**
   * Start-up step after addVolume() (and recoverWriteBack(), whose pending uploads must be known
   * to follow a move), before serving: finishes directory renames a previous run left journaled.
   * Resolves once each was tried; one that fails again is retried in the background, its tree
   * refusing changes (EBUSY) meanwhile.
   */
  resumeTreeMoves(volume?: string): Promise<TreeMoveReport> {
    return this.treeMoves.resume(volume);
  }

  /**
   * Start-up step after every addVolume(), before serving: reopens the stages the write-back
   * journal lists and resumes their uploads in the background; removes every other file of the
   * stage directory (stages of a previous run that were never journaled died with their handles).
   * Returns the number of resumed uploads.
   */
  recoverWriteBack(options: { deferUploads?: boolean } = {}): Promise<number> {
    return this.writeBack.recover({ defer: options.deferUploads === true });
  }

  /** After recoverWriteBack({ deferUploads: true }) (and resumeTreeMoves()): uploads may start. */
  startWriteBackUploads(): void {
    this.writeBack.startUploads();
  }

  volume(name: string): Volume {
    const v = this.volumes.get(name);
    if (!v) throw new VfsError('ENOENT', `no share named ${name}`);
    return v;
  }

  volumeNames(): string[] {
    return [...this.volumes.keys()];
  }

  // ---------------------------------------------------------------- attributes

  private attr(v: Volume, row: NodeRow, st: BackendStat): FileAttr {
    // A file being written through a stage (backends without random writes) shows the stage's size,
    // as a local file would (NFS clients GETATTR after their WRITEs). With async write-back, a file
    // whose upload is pending shows its staged size and mtime (the store still has the previous
    // content, or an empty object).
    if (st.type === 'file') {
      const staged = this.writeBack.active(v.name) ? this.writeBack.staged(row.id) : undefined;
      if (staged !== undefined) st = { ...st, size: staged.size, mtimeNs: staged.mtimeNs, ctimeNs: staged.mtimeNs > st.ctimeNs ? staged.mtimeNs : st.ctimeNs };
      else if (this.data.stages.size > 0) {
        const live = this.data.stages.get(row.id);
        if (live?.dirty) st = { ...st, size: live.size };
      }
    }
    const dir = st.type === 'dir';
    // Object stores have no directory times that move with the children: Portico keeps one (emit).
    if (dir && row.dirMtime !== null && row.dirMtime > st.mtimeNs) st = { ...st, mtimeNs: row.dirMtime, ctimeNs: row.dirMtime > st.ctimeNs ? row.dirMtime : st.ctimeNs };
    let change = this.changes.observe(row, st, v.identity);
    // A row fetched without its stat may name a file replaced outside: it shows its last state
    // here, and the next lookup with a stat gives the name its new id (Volume.row).
    if (change === REPLACED) change = row.chg;
    let win = Number(row.attrs) & SETTABLE_WIN_ATTRS;
    if (dir) win |= WinAttr.DIRECTORY;
    if (win === 0) win = WinAttr.NORMAL;
    const a: FileAttr = {
      id: row.id,
      type: st.type,
      size: st.size,
      allocated: Math.ceil(st.size / 4096) * 4096,
      mode: st.mode ?? (dir ? 0o755 : 0o644),
      uid: st.uid ?? 0,
      gid: st.gid ?? 0,
      nlink: st.nlink ?? (dir ? 2 : 1),
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: this.changeTimes.apply(row.id, st.ctimeNs),
      birthtimeNs: row.birth ?? st.birthtimeNs ?? (st.ctimeNs < st.mtimeNs ? st.ctimeNs : st.mtimeNs),
      change,
      winAttributes: win,
    };
    if (st.target !== undefined) a.target = st.target;
    return a;
  }

  private async existing(v: Volume, path: string): Promise<{ path: string; stat: BackendStat }> {
    const r = await v.resolve(path);
    if (!r.stat) throw new VfsError('ENOENT', undefined, { path });
    return { path: r.path, stat: r.stat };
  }

  async getattr(volume: string, path: string): Promise<FileAttr> {
    const v = this.volume(volume);
    const p = v.normalize(path);
    const r = await this.existing(v, p);
    return this.attr(v, v.row(r.path, r.stat), r.stat);
  }

  /** Current share path of a file id (ESTALE when the id is gone); cached per volume. */
  pathOf(volume: string, id: FileId): string {
    return this.volume(volume).pathOf(id);
  }

  // ---------------------------------------------------------------- by id (NFS, SMB, FUSE)

  /**
   * Attributes by id: from the attribute cache when warm (attr-cache.ts), else one stat. ESTALE
   * when the id is unknown or of another volume, when its file is gone, or when the name now holds
   * another file (replaced outside Portico).
   */
  async getattrById(volume: string, id: FileId): Promise<FileAttr> {
    const v = this.volume(volume);
    const path = v.pathOf(id);
    const hit = this.attrCache.get(id);
    if (hit) return hit;
    let r = await v.resolve(path);
    // The id's own name is gone outside Portico, but the file may live on under another (a hard link).
    if (!r.stat) {
      const moved = await v.relocate(id);
      if (moved !== undefined) r = await v.resolve(moved);
    }
    if (!r.stat) throw new VfsError('ESTALE', undefined, { path });
    const row = v.row(r.path, r.stat);
    if (row.id !== id) throw new VfsError('ESTALE', undefined, { path });
    const a = this.attr(v, row, r.stat);
    this.attrCache.set(a);
    return a;
  }

  /**
   * An id whose own name is gone outside Portico while the file lives on under another name (a
   * hard link): moves the id to that name (Volume.relocate, as getattrById does) and returns it.
   * Undefined when the id's name still exists (the caller's ENOENT was about something else) or no
   * other name holds the file. For the by-id operations besides getattr (Session.byId).
   */
  async relocateId(volume: string, id: FileId): Promise<string | undefined> {
    const v = this.volume(volume);
    const path = v.pathOf(id);
    if ((await v.backend.stat(path).catch(() => undefined)) !== undefined) return undefined;
    const moved = await v.relocate(id);
    if (moved !== undefined) this.attrCache.drop(id);
    return moved;
  }

  /**
   * A name in a directory given by id and path (the caller's pathOf; `name` already normalised by
   * normalizeName): the child's attributes, from the name and attribute caches when warm.
   */
  async lookupIn(volume: string, dirId: FileId, dir: string, name: string): Promise<FileAttr> {
    const v = this.volume(volume);
    const key = v.key(name);
    const hit = this.attrCache.child(dirId, key);
    if (hit) return hit;
    const r = await this.existing(v, v.normalize(joinPath(dir, name)));
    const a = this.attr(v, v.row(r.path, r.stat), r.stat);
    this.attrCache.setChild(dirId, key, a);
    return a;
  }

  /** Ids of every ancestor directory of a path, root first (for depth-infinity WebDAV locks). */
  ancestors(volume: string, path: string): FileId[] {
    const v = this.volume(volume);
    return this.ancestorIds(v, v.normalize(path));
  }

  async statfs(volume: string): Promise<StatFsResult> {
    const v = this.volume(volume);
    const st = await v.backend.statfs();
    return v.quota ? v.quota.statfs(st) : st;
  }

  /**
   * A change made through Portico: advances the file's change attribute, and on a namespace change
   * (create, delete, rename) its parent directory's (both, for a rename across directories) —
   * NFS clients revalidate cached directories by it (change_info4) — and, where the backend keeps
   * no directory times, the parent's mtime too. Then tells the listeners.
   */
  private emit(v: Volume, kind: ChangeKind, id: FileId, path: string, type: FileAttr['type'], oldPath?: string, exchange?: 1 | 2): bigint {
    this.attrCache.drop(id);
    // A renamed or removed directory moves or ends every listing at and below it (at both names
    // of a rename: it may have replaced an empty directory); the name's directory changes either
    // way. Listings elsewhere stay (every listing used to go: a build tool's temporary
    // directories made each pass of a large directory elsewhere list and stat it again).
    if (type === 'dir' && (kind === 'rename' || kind === 'delete')) {
      this.listings.dropTree(listingKey(v, path));
      if (oldPath !== undefined) this.listings.dropTree(listingKey(v, oldPath));
    }
    this.listings.drop(listingKey(v, parentPath(path)));
    if (oldPath !== undefined) this.listings.drop(listingKey(v, parentPath(oldPath)));
    let change = 0n;
    if (kind !== 'delete') {
      const row = v.cachedRow(id) ?? this.store.getNode(id);
      if (row) change = this.changes.bump(row);
    }
    if (kind === 'create' || kind === 'delete' || kind === 'rename') {
      const dir = parentPath(path);
      if (oldPath === undefined) this.touchDir(v, dir, type, [baseName(path)]);
      else if (parentPath(oldPath) === dir) this.touchDir(v, dir, type, [baseName(path), baseName(oldPath)]);
      else {
        this.touchDir(v, dir, type, [baseName(path)]);
        this.touchDir(v, parentPath(oldPath), type, [baseName(oldPath)]);
      }
    }
    if (this.events.listenerCount('change') > 0) {
      const ev: ChangeEvent = { volume: v.name, kind, id, path, type, change };
      if (oldPath !== undefined) ev.oldPath = oldPath;
      if (exchange !== undefined) ev.exchange = exchange;
      this.events.emit('change', ev);
    }
    return change;
  }

  /**
   * A directory's membership changed through Portico (emit): `names` (its entries that changed)
   * were created, removed or renamed, and `childType` is what they name.
   *
   * A file's create, remove or rename keeps the directory's cached attributes (AttrCache.touchDir)
   * with the new change value, instead of dropping them: NFS asks the
   * directory's attributes before and after every create and remove (change_info4), and with
   * clients creating and removing in one directory each ask was a stat and a store write (the
   * change tracker learning the new signature). A directory's create, remove or rename still drops
   * them (its parent's link count moves). The stat that learns the directory's new signature runs
   * right after, off the request (learnDir), one at a time per directory: an outside change made
   * after it still advances the change value at the next stat, as before.
   */
  private touchDir(v: Volume, dir: string, childType: FileAttr['type'], names: readonly string[]): void {
    let row: NodeRow;
    try {
      row = v.row(dir);
    } catch {
      return;
    }
    const change = this.changes.bump(row);
    // Where Portico keeps the directory's time (no backend directory times), it is the truth now;
    // elsewhere the kept attributes keep the times last seen until the learning stat shows the
    // backend's (an estimate from this clock could run ahead of the file system's coarser one, and
    // the time seen would then go back).
    let mtime: bigint | undefined;
    if (v.backend.capabilities.constantDirectoryTimes) {
      const now = BigInt(Date.now()) * 1_000_000n;
      if (row.dirMtime === null || now > row.dirMtime) {
        row.dirMtime = now;
        this.store.setDirMtime(row.id, now);
      }
      mtime = row.dirMtime;
    }
    if (childType === 'dir') {
      this.attrCache.dropDir(row.id);
      return;
    }
    const keys = names.map((n) => v.key(n.normalize('NFC')));
    const kept = this.attrCache.touchDir(row.id, keys, (a) => {
      if (mtime === undefined || mtime <= a.mtimeNs) return { ...a, change };
      return { ...a, change, mtimeNs: mtime, ctimeNs: mtime > a.ctimeNs ? mtime : a.ctimeNs };
    });
    // Backends without directory times (object stores: a directory's "stat" may be a listing)
    // show no outside change in a directory's stat for the learning stat to catch: none is made.
    if (kept && mtime === undefined) this.learnDir(v, row.id);
  }

  /** Directories whose kept attributes wait for the stat that learns their signature (touchDir). */
  private readonly dirLearns = new Map<FileId, { again: boolean }>();

  private learnDir(v: Volume, id: FileId): void {
    const job = this.dirLearns.get(id);
    if (job !== undefined) {
      job.again = true;
      return;
    }
    const j = { again: false };
    this.dirLearns.set(id, j);
    setImmediate(() => void this.runLearn(v, id, j));
  }

  /**
   * Stats a directory whose attributes touchDir kept, and caches what the stat shows (the change
   * tracker learns its signature). A stat during which the directory changed again through
   * Portico is not learned from (it may show the state before that change: the next stat would
   * then take the change for an outside one); after a few such, the attributes are dropped and
   * the next ask stats, as before touchDir kept any.
   */
  private async runLearn(v: Volume, id: FileId, job: { again: boolean }): Promise<void> {
    try {
      for (let i = 0; i < 4; i++) {
        job.again = false;
        const path = v.pathOf(id);
        const before = v.cachedRow(id)?.chg;
        if (before === undefined) break;
        const r = await v.resolve(path);
        if (job.again || v.cachedRow(id)?.chg !== before) continue;
        if (!r.stat || r.stat.type !== 'dir') break;
        const row = v.row(r.path, r.stat);
        if (row.id !== id) break;
        this.attrCache.set(this.attr(v, row, r.stat));
        return;
      }
      this.attrCache.dropDir(id);
    } catch {
      // Gone, renamed away or the store closed: the next ask finds out.
      this.attrCache.dropDir(id);
    } finally {
      this.dirLearns.delete(id);
    }
  }

  // ---------------------------------------------------------------- open files (open-files.ts)

  /** Opens or creates a file or directory and returns its handle (OpenFiles.open, src/vfs/open-files.ts). */
  open(volume: string, path: string, opts: OpenOptions): Promise<Handle> {
    return this.files.open(volume, path, opts);
  }

  /** A whole small file and its attributes without a handle, or undefined (OpenFiles.readSmall). */
  readSmall(volume: string, path: string, maxBytes: number): { attr: FileAttr; data: Buffer } | undefined {
    return this.files.readSmall(volume, path, maxBytes);
  }

  /** A live handle by its id (EBADF when unknown or closed). */
  handle(id: string): Handle {
    return this.files.handle(id);
  }

  read(h: Handle, offset: number, length: number): Promise<Buffer> {
    return this.files.read(h, offset, length);
  }

  /**
   * Reads into a caller's buffer (from its start): no allocation per call, so streaming reads and
   * protocol replies can reuse one buffer. Returns the bytes read (fewer at end of file).
   */
  readInto(h: Handle, offset: number, target: Uint8Array): Promise<number> {
    return this.files.readInto(h, offset, target);
  }

  /** A read the kernel moves from the store's descriptor; undefined where it cannot (OpenFiles.readVia). */
  readVia(h: Handle, offset: number, length: number, send: (fd: number, offset: number, length: number) => Promise<number>): Promise<number | undefined> {
    return this.files.readVia(h, offset, length, send);
  }

  write(h: Handle, offset: number, data: Uint8Array): Promise<number> {
    return this.files.write(h, offset, data);
  }

  /** A write the caller makes through the store's descriptor where it can (OpenFiles.writeVia). */
  writeVia(h: Handle, offset: number, data: Uint8Array, send: (fd: number, offset: number, length: number) => Promise<number>): Promise<number> {
    return this.files.writeVia(h, offset, data, send);
  }

  /** fallocate(2) through a handle: reserve, punch or zero a range (OpenFiles.allocate). */
  allocate(h: Handle, op: AllocateOp, offset: number, length: number, keepSize: boolean): Promise<void> {
    return this.files.allocate(h, op, offset, length, keepSize);
  }

  /** lseek SEEK_DATA / SEEK_HOLE through a handle; undefined: none (OpenFiles.seekData). */
  seekData(h: Handle, offset: number, what: 'data' | 'hole'): Promise<number | undefined> {
    return this.files.seekData(h, offset, what);
  }

  /** copy_file_range inside the store between two handles; ENOTSUP where it cannot (OpenFiles.copyRange). */
  copyRange(src: Handle, srcOffset: number, dst: Handle, dstOffset: number, length: number): Promise<number> {
    return this.files.copyRange(src, srcOffset, dst, dstOffset, length);
  }

  /**
   * Attributes of an opened file as the open's own lookup found them, without another backend call
   * (undefined for a handle that created or truncated its file); see OpenFiles.attrAtOpen.
   */
  attrAtOpen(h: Handle): FileAttr | undefined {
    return this.files.attrAtOpen(h);
  }

  fstat(h: Handle): Promise<FileAttr> {
    return this.files.fstat(h);
  }

  /**
   * Makes everything written through this handle durable (object stores: uploaded). With
   * `{ durable: false }` only what other clients need to see it: a staged write is published (an
   * object store has nothing else to read), but a descriptor the bytes went to directly (random-write
   * stores: local) is not synced to disk — POSIX close(2) does not fsync either, and the FUSE mount
   * flushes at every close (a small-file create/write/close paid an fdatasync each).
   */
  flush(h: Handle, opts?: FlushOptions): Promise<void> {
    return this.files.flush(h, opts);
  }

  /**
   * Makes everything written to a file through any of its open handles durable (NFS COMMIT, which
   * names no stateid; FUSE fsync of a file opened twice). Returns how many handles were flushed.
   */
  async flushFile(volume: string, id: FileId): Promise<number> {
    const v = this.volume(volume);
    let n = 0;
    for (const h of [...this.files.handlesOf(id)]) {
      if (h.volume !== v || h.closed || !h.access.write) continue;
      await this.files.flush(h);
      n++;
    }
    return n;
  }

  /**
   * Narrows an open handle's access and share mode in place (NFS OPEN_DOWNGRADE; an SMB open
   * replaced by a lesser one): the share-mode table sees the narrower open at once, so an open
   * the old mode refused may now come in. Only to a subset: access no wider, share no narrower
   * (fewer denies), else EINVAL. Dropping write flushes what was written first.
   */
  async downgrade(h: Handle, access: Access, share: Access): Promise<void> {
    this.files.handle(h.id);
    for (const k of ['read', 'write', 'delete'] as const) {
      if (access[k] && !h.access[k]) throw new VfsError('EINVAL', `downgrade cannot add ${k} access`, { path: h.path });
      if (!share[k] && h.share[k]) throw new VfsError('EINVAL', `downgrade cannot deny ${k} to others`, { path: h.path });
    }
    if (h.access.write && !access.write) await this.files.flush(h);
    this.shareModes.downgrade(h.id, access, share);
    Object.assign(h.access, { read: access.read, write: access.write, delete: access.delete });
    Object.assign(h.share, { read: share.read, write: share.write, delete: share.delete });
  }

  close(h: Handle): Promise<void> {
    return this.files.close(h);
  }

  /** SMB FileDispositionInformation: mark or unmark delete-on-close through a handle. */
  setDeleteOnClose(h: Handle, pending: boolean): void {
    this.files.setDeleteOnClose(h, pending);
  }

  ftruncate(h: Handle, size: number): Promise<void> {
    return this.files.ftruncate(h, size);
  }

  // ---------------------------------------------------------------- lock checks (shared by every concern)

  /**
   * Namespace check for token locks (WebDAV's semantics, RFC 4918 §7.5-7.7): changing a resource needs the tokens of
   * its locks and of depth-infinity locks above it; adding or removing a member of a collection needs
   * the tokens of the collection's locks (depth 0 or infinity). `self` = the resource changes,
   * `parent` = its membership in its parent collection changes.
   */
  private checkTokenLocks(v: Volume, path: string, tokens: Tokens, what: { self: boolean; parent: boolean }): void {
    if (this.locks.size === 0) return;
    const ancestors = this.ancestorIds(v, path);
    const check = (id: FileId | undefined, includeAncestors: FileId[]): void => {
      if (id === undefined) return;
      for (const l of this.locks.locksOn(id, { includeAncestors })) {
        if (l.style === 'token' && !tokens.has(l.token)) throw new VfsError('ELOCKED', undefined, { path });
      }
    };
    if (what.self && path !== '/') check(v.existingId(path), ancestors);
    if (what.parent && path !== '/') check(ancestors.at(-1), ancestors.slice(0, -1));
  }

  /** Ids of the existing ancestor directories of a backend path, root first. */
  private ancestorIds(v: Volume, path: string): FileId[] {
    const out: FileId[] = [];
    let p = path;
    while (p !== '/') {
      p = parentPath(p);
      out.unshift(v.row(p).id);
    }
    return out;
  }

  // ---------------------------------------------------------------- whole-content replacement (file-data.ts)

  /**
   * Replaces a file's whole content atomically, or creates it (WebDAV PUT, SMB/FUSE "write whole
   * file" paths); readers see the old content until commit(). FileData.replaceContent.
   */
  replaceContent(volume: string, path: string, opts: ReplaceOptions): Promise<ContentWriter> {
    return this.data.replaceContent(volume, path, opts);
  }

  // ---------------------------------------------------------------- namespace (namespace.ts)

  mkdir(volume: string, path: string, mode?: number, tokens: Tokens = NO_TOKENS, creator?: FileOwner): Promise<FileAttr> {
    return this.names.mkdir(volume, path, mode, tokens, creator);
  }

  unlink(volume: string, path: string, tokens: Tokens = NO_TOKENS): Promise<void> {
    return this.names.unlink(volume, path, tokens);
  }

  /** A file, link or empty directory removed from one lookup of its name (NamespaceOps.remove). */
  remove(volume: string, path: string, tokens: Tokens, decide: (type: BackendStat['type']) => void): Promise<void> {
    return this.names.remove(volume, path, tokens, decide);
  }

  rmdir(volume: string, path: string, tokens: Tokens = NO_TOKENS): Promise<void> {
    return this.names.rmdir(volume, path, tokens);
  }

  /**
   * rename(2) semantics: replaces a file with a file, or a directory with an empty directory; refuses
   * to move a directory into itself. Open handles follow the file (NamespaceOps.rename).
   * `exchange`: renameat2(RENAME_EXCHANGE), the two existing names swap (NamespaceOps.exchange).
   */
  rename(volume: string, from: string, to: string, options: { replace?: boolean; exchange?: boolean; tokens?: Tokens; through?: Handle } = {}): Promise<void> {
    return this.names.rename(volume, from, to, options);
  }

  symlink(volume: string, target: string, path: string, tokens: Tokens = NO_TOKENS, creator?: FileOwner): Promise<FileAttr> {
    return this.names.symlink(volume, target, path, tokens, creator);
  }

  readlink(volume: string, path: string): Promise<string> {
    return this.names.readlink(volume, path);
  }

  /** Hard link: on identity backends (local disks) every name of a file gives its one id (docs/ARCHITECTURE.md "Hard links"). */
  link(volume: string, existingPath: string, path: string, tokens: Tokens = NO_TOKENS): Promise<FileAttr> {
    return this.names.link(volume, existingPath, path, tokens);
  }

  setattr(volume: string, path: string, set: SetAttr, tokens: Tokens = NO_TOKENS): Promise<FileAttr> {
    return this.names.setattr(volume, path, set, tokens);
  }

  async fsetattr(h: Handle, set: SetAttr): Promise<FileAttr> {
    this.files.live(h);
    this.checkTokenLocks(h.volume, h.path, h.lockTokens, { self: true, parent: false });
    if (set.size !== undefined) {
      await this.ftruncate(h, set.size);
      set = { ...set };
      delete set.size;
    }
    const st = await h.volume.backend.stat(h.path);
    return this.names.applySetattr(h.volume, h.path, st, set);
  }

  // ---------------------------------------------------------------- tree operations (tree-ops.ts)

  /**
   * Copies a file, or a directory (depth 0: the directory alone; infinity: the tree); errors on
   * members are collected, not thrown. The work is TreeOps.copy (src/vfs/tree-ops.ts).
   */
  copy(volume: string, from: string, to: string, options: { replace?: boolean; depth?: 0 | 'infinity'; tokens?: Tokens; toVolume?: string; guard?: TreeGuard; creator?: FileOwner } = {}): Promise<TreeError[]> {
    return this.trees.copy(volume, from, to, options);
  }

  /** Removes a file or a whole tree, children first (TreeOps.removeTree, src/vfs/tree-ops.ts). */
  removeTree(volume: string, path: string, tokens: Tokens = NO_TOKENS, guard?: TreeGuard): Promise<TreeError[]> {
    return this.trees.removeTree(volume, path, tokens, guard);
  }

  // ---------------------------------------------------------------- directories

  /**
   * One page of a directory, sorted by name. Each entry's cookie is its file id, which stays valid
   * across restarts; a cookie whose entry was since deleted still resumes while its name is in the
   * recent-names table, otherwise EBADCOOKIE.
   */
  async readdir(volume: string, path: string, options: ReaddirOptions = {}): Promise<ReaddirResult> {
    const v = this.volume(volume);
    const r = await this.existing(v, v.normalize(path));
    if (r.stat.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    const limit = Math.min(Math.max(1, options.limit ?? READDIR_DEFAULT), READDIR_MAX);
    const dirRow = v.row(r.path);
    let after: string | undefined;
    if (options.cookie !== undefined && options.cookie !== 0n) after = this.cookieName(v, dirRow.id, options.cookie);
    // A listing paged through before and still valid for the directory's fresh stat costs no
    // backend call and no stat per entry (listing-cache.ts says when it is valid).
    // Not where directory times do not move (object stores), nor with async write-back (an upload
    // landing later changes a member's stat without a change event).
    const cacheable = v.backend.capabilities.constantDirectoryTimes !== true && !this.writeBack.active(v.name);
    const lkey = listingKey(v, r.path);
    const kept = cacheable ? this.listings.page(lkey, r.stat, after, limit) : undefined;
    let page: ListPage | undefined = kept;
    if (page === undefined) {
      const mark = this.listings.mark();
      page = await v.backend.list(r.path, after === undefined ? { limit } : { after, limit });
      this.listings.listed(lkey, r.stat, after, page, cacheable, v.backend.capabilities.directoryTimeGranularityMs, mark);
    }
    // Each name's path, key and cached row, looked up once; the stored rows of the page's uncached
    // names in one query (no awaits below: nothing changes them meanwhile).
    const listed = v.listedRows(r.path, dirRow, page.entries);
    v.listed(r.path, after, page, listed, kept?.source);
    const seen = listed.distinct ? undefined : new Set<string>();
    // New ids join the metadata store's group commit (one transaction for many rows).
    const entries: DirEntry[] = [];
    for (let i = 0; i < page.entries.length; i++) {
      const e = page.entries[i]!;
      // Two names that differ only in case (possible on a case-sensitive disk) cannot both be
      // addressed through a case-insensitive share: the first in order is shown.
      const key = listed.keys[i]!;
      if (seen !== undefined) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      const row = v.childRow(listed, i, dirRow, e);
      const attr = this.attr(v, row, e);
      // A name's cookie is its file's id, or its own link id for another name of a file (hard links).
      const cookie = v.cookieAt(listed.paths[i]!, dirRow.id, key, row);
      entries.push({ name: listed.nfcs[i]!, cookie, attr });
      // Clients resume from a cookie near the end of a page: the last one, or — an NFS READDIR
      // packs what fits its reply — one a few entries before it. Their backend names are kept in
      // case the entry is deleted before they come back, and so that resuming needs no id-store
      // query (other cookies resolve through it: a SELECT per READDIR call, ~3% of a pass).
      if (i >= page.entries.length - RESUME_NAMES) this.cookieNames.set(`${dirRow.id}:${cookie}`, e.name);
    }
    return { entries, eof: page.next === undefined };
  }

  private cookieName(v: Volume, dirId: FileId, cookie: bigint): string {
    const recent = this.cookieNames.get(`${dirId}:${cookie}`);
    if (recent !== undefined) return recent;
    const node = this.store.getNode(cookie);
    if (node && node.parent === dirId && node.vol === v.name) return node.name;
    const link = this.store.getLink(cookie);
    if (link && link.parent === dirId && link.vol === v.name) return link.name;
    throw new VfsError('EBADCOOKIE');
  }

  // ---------------------------------------------------------------- properties

  async getProps(volume: string, path: string): Promise<PropRow[]> {
    const v = this.volume(volume);
    const r = await this.existing(v, v.normalize(path));
    return this.store.getProps(v.row(r.path).id);
  }

  /** Atomic: every change applies or none does. */
  async setProps(volume: string, path: string, changes: PropChange[], tokens: Tokens = NO_TOKENS): Promise<void> {
    const v = this.volume(volume);
    const r = await this.existing(v, v.normalize(path));
    this.checkTokenLocks(v, r.path, tokens, { self: true, parent: false });
    const row = v.row(r.path);
    this.store.setProps(row.id, changes, DEAD_PROPS_BOUND);
    this.emit(v, 'attrib', row.id, r.path, r.stat.type);
  }

  // ---------------------------------------------------------------- extended attributes and named streams
  // NFS xattrs (RFC 8276) and SMB named streams as rows of the property store: they follow the file
  // id like dead properties do. Mapping, limits and why: xattrs.ts.

  /** One xattr's (or stream's) value; ENODATA when the file has none of that name. */
  async getXattr(volume: string, path: string, name: string, space: XattrSpace = 'user'): Promise<Uint8Array> {
    checkXattrName(name, space);
    const { id } = await this.xattrFile(volume, path);
    const value = space === 'user' ? this.store.getProp(id, XATTR_NS, name) : findXattr(this.store.getProps(id), name, space)?.value;
    if (value === undefined) throw new VfsError('ENODATA', undefined, { path });
    return value;
  }

  /** Names and value sizes of a file's xattrs (or streams), in name order. */
  async listXattrs(volume: string, path: string, space: XattrSpace = 'user'): Promise<XattrEntry[]> {
    const { id } = await this.xattrFile(volume, path);
    return listOf(this.store.getProps(id), space);
  }

  /**
   * Sets one xattr: `create` fails with EEXIST when it exists, `replace` with ENODATA when it does
   * not, `either` (the default) does both (RFC 8276 §8.4.1). Token locks apply as to setProps; the
   * change is an 'attrib' event, so the change attribute advances and watches see it.
   */
  async setXattr(
    volume: string,
    path: string,
    name: string,
    value: Uint8Array,
    opts: { mode?: XattrSetMode; space?: XattrSpace } = {},
    tokens: Tokens = NO_TOKENS,
  ): Promise<void> {
    const { v, path: p, id, type } = await this.xattrFile(volume, path, tokens);
    // No await between reading the rows and writing: the mode and limit checks hold at the write.
    this.store.setProps(id, [planSet(this.store.getProps(id), name, value, opts.mode ?? 'either', opts.space ?? 'user')]);
    this.emit(v, 'attrib', id, p, type);
  }

  /** Removes one xattr (or stream); ENODATA when there is none of that name. */
  async removeXattr(volume: string, path: string, name: string, space: XattrSpace = 'user', tokens: Tokens = NO_TOKENS): Promise<void> {
    const { v, path: p, id, type } = await this.xattrFile(volume, path, tokens);
    this.store.setProps(id, [planRemove(this.store.getProps(id), name, space)]);
    this.emit(v, 'attrib', id, p, type);
  }

  /**
   * The file an xattr operation is about; with tokens, checks token locks as a change. The row is
   * taken with the current stat, so a file replaced outside Portico is a new file without the old
   * one's xattrs (change-tracker.ts).
   */
  private async xattrFile(volume: string, path: string, tokens?: Tokens): Promise<{ v: Volume; path: string; id: FileId; type: FileAttr['type'] }> {
    const v = this.volume(volume);
    const r = await this.existing(v, v.normalize(path));
    if (tokens !== undefined) this.checkTokenLocks(v, r.path, tokens, { self: true, parent: false });
    return { v, path: r.path, id: v.row(r.path, r.stat).id, type: r.stat.type };
  }

  /** Forgets cached metadata of a volume at and below a path (backend caches and resolved names). */
  invalidate(volume: string, path: string): void {
    const v = this.volume(volume);
    const p = v.normalize(path);
    v.forgetCachedRows();
    this.attrCache.clear();
    this.listings.clear();
    v.backend.invalidate?.(p);
  }

  // ---------------------------------------------------------------- outside changes (change watches)

  /**
   * For change watches (src/session/watch.ts): the backend's watcher of changes made outside
   * Portico at the children of the directory `dir` (or anywhere below it), or undefined when the
   * backend cannot tell them (capabilities.watch). Each path it reports goes to noticeOutside().
   */
  async watchOutside(volume: string, dir: string, recursive: boolean, listener: BackendWatchListener): Promise<BackendWatcher | undefined> {
    const v = this.volume(volume);
    if (v.backend.capabilities.watch !== true || v.backend.watch === undefined) return undefined;
    const r = await this.existing(v, v.normalize(dir));
    if (r.stat.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path: dir });
    return v.backend.watch(r.path, recursive, listener);
  }

  /**
   * A path a backend watcher reported, turned into a change event like Portico's own. Its cached
   * metadata is dropped and it is looked at afresh: a name the store does not know is a create (it
   * gets its id now); a known name that is gone is a delete (its ids go, as for a delete through
   * Portico; the type is 'dir' when the store knew members of it, else the one `lastType` knows for
   * that id (the last event at the path through Portico: an empty directory made and removed
   * through Portico, its echo looked at once it was gone), else 'file'; a name nobody ever
   * looked up or listed has no id, and no client can miss it); a known name that now holds another
   * file (a new id) is a delete and a create; else a modify (a file whose mtime and ctime moved
   * together: content) or an attrib (ctime alone: chmod, chown, touch) — for a directory only the
   * attrib: its content changes are its members' own events (and advance its value). The event
   * carries the change value the fresh stat gave, and is not emitted when `own(path, change)` says
   * the last event at the path carried that value: the report was Portico's own change echoed. A
   * path only `found` in a directory that appeared is news only when unknown (a create).
   */
  async noticeOutside(
    volume: string, path: string, own: (path: string, change: bigint) => boolean, found = false,
    lastType: (path: string, id: FileId) => FileAttr['type'] | undefined = () => undefined,
  ): Promise<void> {
    const v = this.volume(volume);
    v.normalize(path); // a name no client could address (reserved, invalid) is not reported
    const known = v.existingId(path);
    if (found && known !== undefined) return;
    v.invalidate(path);
    v.backend.invalidate?.(path);
    this.listings.drop(listingKey(v, path));
    if (path !== '/') this.listings.drop(listingKey(v, parentPath(path)));
    let attr: FileAttr | undefined;
    try {
      attr = await this.getattr(volume, path);
    } catch (e) {
      if (!isVfsError(e, 'ENOENT') && !isVfsError(e, 'ENOTDIR')) throw e;
    }
    // Not through emit(): the fresh stat already advanced the change value of an outside change.
    const send = (kind: ChangeKind, id: FileId, type: FileAttr['type'], change: bigint): void => {
      if (this.events.listenerCount('change') > 0) this.events.emit('change', { volume: v.name, kind, id, path, type, change } satisfies ChangeEvent);
    };
    // Gone now, but the store no longer has the name where this report found it: a rename or
    // delete through Portico ran while the path was being looked at, and its own event tells it
    // (reporting the name's absence too gave watchers a second delete; seen under load).
    if (attr === undefined && known !== undefined && v.existingId(path) !== known) return;
    if (known !== undefined && attr?.id !== known) {
      const type = this.store.children(known, '', 1).length > 0 ? 'dir' : (lastType(path, known) ?? 'file');
      if (attr === undefined) v.removed(path, type);
      send('delete', known, type, 0n);
    }
    if (attr === undefined) return;
    if (attr.id !== known) send('create', attr.id, attr.type, attr.change);
    else if (own(path, attr.change)) return;
    else if (attr.type !== 'dir') send(attr.type === 'file' && attr.mtimeNs === attr.ctimeNs ? 'modify' : 'attrib', attr.id, attr.type, attr.change);
    else if (attr.ctimeNs > attr.mtimeNs) send('attrib', attr.id, attr.type, attr.change);
  }

  // ---------------------------------------------------------------- lifecycle

  openHandles(): Handle[] {
    return this.files.list();
  }

  /** Closes every handle (publishing staged writes), the lock manager and the backends. */
  async shutdown(): Promise<void> {
    // A running directory move stops between objects; the next start finishes it (journaled).
    await this.treeMoves.close();
    for (const h of this.files.list()) await this.close(h).catch(() => undefined);
    // Async write-back: pending uploads get the shares' shutdownDrainMs; the rest stays journaled
    // and is uploaded by the next start.
    await this.writeBack.drain();
    await this.writeBack.close();
    this.locks.close();
    // Quota counters are saved as clean (the next start trusts them without a scan).
    for (const v of this.volumes.values()) await v.quota?.close();
    for (const v of this.volumes.values()) await v.backend.close().catch(() => undefined);
  }
}

export { WHOLE_FILE };

export { handleLockOwner };
