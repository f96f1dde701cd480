/**
 * The namespace operations of the VFS: mkdir, unlink, rmdir, rename (atomic, by copy for a file,
 * or a journaled tree move for a directory on stores without atomic rename), symlink, readlink,
 * link, and setattr's work (applySetattr, also fsetattr's).
 *
 * `Vfs` (vfs.ts) stays the one public facade and keeps every public signature; its namespace
 * methods call the NamespaceOps it owns. NamespaceOps gets what it needs of the VFS around it as a
 * small typed host (NamespaceHost), not the whole Vfs: volumes, attributes and change events, the
 * token-lock check, the lock, share-mode and lease tables, write-back and tree moves, and the three
 * things a name change does to open handles (the handle table stays with the open files).
 * unlinkPath and rmdirPath are the primitives a removal ends in, also for delete-on-close and
 * removeTree (tree-ops.ts): share modes and token locks are checked by their callers.
 */
import type { Backend, BackendStat, FileOwner } from './backend.ts';
import { VfsError, isVfsError } from './errors.ts';
import { baseName, isSameOrDescendant, joinPath, nameKey, parentPath } from './path.ts';
import type { Volume } from './volume.ts';
import type { WriteBack } from './write-back.ts';
import type { WriteStage } from './write-stage.ts';
import type { TreeMoves } from './tree-move/index.ts';
import type { Handle } from './handle.ts';
import type { ChangeTimes } from './change-times.ts';
import { copyFileData } from './tree-ops.ts';
import { NO_TOKENS, SETTABLE_WIN_ATTRS, type ChangeKind, type FileAttr, type FileId, type SetAttr, type Tokens } from './types.ts';
import type { NodeRow } from '../store/metadata-store.ts';
import type { LockManager } from '../locks/lock-manager.ts';
import type { ShareModeTable } from '../locks/share-modes.ts';
import type { LeaseTable } from '../locks/leases.ts';


/** What the namespace operations need of the VFS around them (given by Vfs, bound to its own state). */
export interface NamespaceHost {
  readonly locks: LockManager;
  readonly shareModes: ShareModeTable;
  readonly changeTimes: ChangeTimes;
  readonly leases: LeaseTable;
  readonly writeBack: WriteBack;
  readonly treeMoves: TreeMoves;
  volume(name: string): Volume;
  /** The resolved path and stat of an existing node, else ENOENT. */
  existing(v: Volume, path: string): Promise<{ path: string; stat: BackendStat }>;
  attr(v: Volume, row: NodeRow, st: BackendStat): FileAttr;
  emit(v: Volume, kind: ChangeKind, id: FileId, path: string, type: FileAttr['type'], oldPath?: string, exchange?: 1 | 2): bigint;
  checkTokenLocks(v: Volume, path: string, tokens: Tokens, what: { self: boolean; parent: boolean }): void;
  /** The live write stage of a file (backends without random writes), if any. */
  stageOf(id: FileId): WriteStage | undefined;
  /** Open handles of a deleted file keep working but must not resurrect it on close. */
  orphan(id: FileId): void;
  /** Whether a handle other than `except` is open below the directory `path`. */
  openBelow(v: Volume, path: string, except?: Handle): boolean;
  /** Handles at or below `from` now name `to`; returns them. */
  retargetHandles(from: string, to: string, v: Volume): Handle[];
  /** After an exchange of two names: handles below each now name the other. */
  exchangeHandles(a: string, b: string, v: Volume): void;
  /** After a rename by copy: the handles' read views reopen on the copies. */
  reopenMoved(v: Volume, handles: Handle[]): Promise<void>;
}

export class NamespaceOps {
  private readonly host: NamespaceHost;

  constructor(host: NamespaceHost) {
    this.host = host;
  }

  async mkdir(volume: string, path: string, mode?: number, tokens: Tokens = NO_TOKENS, creator?: FileOwner): Promise<FileAttr> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    const r = await v.resolve(p);
    if (r.stat) throw new VfsError('EEXIST', undefined, { path: p });
    this.host.checkTokenLocks(v, r.path, tokens, { self: false, parent: true });
    v.quota?.check(1, 0, p);
    const st = await v.backend.mkdir(r.path, mode ?? 0o755, creator);
    const row = v.newRow(r.path, st);
    v.quota?.add(r.path, 1, 0);
    this.host.emit(v, 'create', row.id, r.path, 'dir');
    return this.host.attr(v, row, st);
  }

  async unlink(volume: string, path: string, tokens: Tokens = NO_TOKENS): Promise<void> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    const r = await this.host.existing(v, p);
    if (r.stat.type === 'dir') throw new VfsError('EISDIR', undefined, { path: p });
    await this.unlinkResolved(v, r.path, tokens);
  }

  /**
   * Removes whatever the name holds, a file, link or empty directory, from one lookup of it (an
   * unlink or rmdir would look it up again). `decide` is told what was found before anything
   * changes, and may refuse by throwing (the session checks the right to remove there).
   */
  async remove(volume: string, path: string, tokens: Tokens, decide: (type: BackendStat['type']) => void): Promise<void> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    if (p === '/') {
      decide('dir');
      throw new VfsError('EBUSY', 'cannot remove the share root', { path: p });
    }
    const r = await this.host.existing(v, p);
    decide(r.stat.type);
    if (r.stat.type === 'dir') await this.rmdirResolved(v, r.path, tokens);
    else await this.unlinkResolved(v, r.path, tokens);
  }

  private async unlinkResolved(v: Volume, path: string, tokens: Tokens): Promise<void> {
    this.host.checkTokenLocks(v, path, tokens, { self: true, parent: true });
    const id = v.row(path).id;
    if (this.host.leases.size > 0) await this.host.leases.beforeNamespace(v.name, [id]);
    this.host.shareModes.checkDelete(id);
    await this.unlinkPath(v, path, false);
  }

  async unlinkPath(v: Volume, path: string, fromClose: boolean): Promise<void> {
    const row = v.row(path);
    // A pending async upload must not land after the delete (it would bring the file back).
    const wbRelease = this.host.writeBack.has(row.id) ? await this.host.writeBack.pause([row.id]) : undefined;
    const size = v.quota ? await v.quota.sizeOf(path, row.id) : 0;
    try {
      await v.backend.unlink(path);
    } catch (e) {
      if (!(fromClose && isVfsError(e, 'ENOENT'))) {
        wbRelease?.();
        throw e;
      }
    }
    // The name goes; the file (its id, handles, locks, pending upload) only when it had no other
    // name: a hard link's other names keep it.
    if (v.keepsFile(path, row.id)) {
      wbRelease?.();
      v.removed(path, 'file');
      v.quota?.add(path, -1, -size);
      this.host.emit(v, 'delete', row.id, path, 'file');
      return;
    }
    // Orphaned first: a close racing this must not journal the deleted file again.
    this.host.orphan(row.id);
    if (wbRelease !== undefined || this.host.writeBack.has(row.id)) await this.host.writeBack.cancel(row.id).finally(() => wbRelease?.());
    v.removed(path, 'file');
    v.quota?.replaced(path, row.id, { type: 'file', size });
    this.host.locks.releaseFile(row.id);
    this.host.emit(v, 'delete', row.id, path, 'file');
  }

  async rmdir(volume: string, path: string, tokens: Tokens = NO_TOKENS): Promise<void> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    if (p === '/') throw new VfsError('EBUSY', 'cannot remove the share root', { path: p });
    const r = await this.host.existing(v, p);
    if (r.stat.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path: p });
    await this.rmdirResolved(v, r.path, tokens);
  }

  private async rmdirResolved(v: Volume, path: string, tokens: Tokens): Promise<void> {
    this.host.checkTokenLocks(v, path, tokens, { self: true, parent: true });
    if (this.host.leases.size > 0) await this.host.leases.beforeNamespace(v.name, [], [v.row(path).id]);
    this.host.shareModes.checkDelete(v.row(path).id);
    await this.rmdirPath(v, path);
  }

  async rmdirPath(v: Volume, path: string): Promise<void> {
    const row = v.row(path);
    await v.backend.rmdir(path);
    for (const id of v.removed(path, 'dir')) this.host.locks.releaseFile(id);
    v.quota?.add(path, -1, 0);
    this.host.emit(v, 'delete', row.id, path, 'dir');
  }

  /**
   * rename(2) semantics: replaces a file with a file, or a directory with an empty directory; refuses
   * to move a directory into itself. Open handles follow the file.
   */
  async rename(volume: string, from: string, to: string, options: { replace?: boolean; exchange?: boolean; tokens?: Tokens; through?: Handle } = {}): Promise<void> {
    if (options.exchange === true) return this.exchange(volume, from, to, options.tokens ?? NO_TOKENS);
    const tokens = options.tokens ?? NO_TOKENS;
    const v = this.host.volume(volume);
    const f = v.normalize(from);
    const t = v.normalize(to);
    if (f === '/' || t === '/') throw new VfsError('EBUSY', 'cannot rename the share root', { path: '/' });
    if (f === t) {
      await this.host.existing(v, f);
      return;
    }
    if (isSameOrDescendant(v.key(t), v.key(f)) && v.key(t) !== v.key(f)) throw new VfsError('EINVAL', 'cannot move a directory into itself', { path: t });
    const src = await this.host.existing(v, f);
    const dst = await v.resolve(t);
    // Two names of one file (hard links): rename(2) does nothing and reports success.
    if (dst.stat && dst.path !== src.path && v.identity && src.stat.type === 'file' && src.stat.nativeId !== undefined && src.stat.nativeId === dst.stat.nativeId) return;
    const srcRow = v.row(src.path);
    this.host.checkTokenLocks(v, src.path, tokens, { self: true, parent: true });
    this.host.checkTokenLocks(v, dst.path, tokens, { self: dst.stat !== undefined && dst.path !== src.path, parent: true });
    // Moving a directory moves its members' URLs: a token lock on any of them needs its token, as a
    // removal of the tree would (RFC 4918 §7.5: a lock on a member is a lock on its URL).
    if (src.stat.type === 'dir' && this.host.locks.size > 0) {
      for (const l of this.host.locks.locksBelow(srcRow.id)) {
        if (l.style === 'token' && !tokens.has(l.token)) throw new VfsError('ELOCKED', undefined, { path: src.path });
      }
    }
    if (this.host.leases.size > 0) {
      await this.host.leases.beforeNamespace(v.name, dst.stat && dst.path !== src.path ? [srcRow.id, v.row(dst.path).id] : [srcRow.id], src.stat.type === 'dir' ? [srcRow.id] : []);
    }
    let target = dst.path;
    if (dst.stat && dst.path !== src.path) {
      if (options.replace === false) throw new VfsError('EEXIST', undefined, { path: t });
      if (src.stat.type === 'dir' && dst.stat.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path: t });
      if (src.stat.type !== 'dir' && dst.stat.type === 'dir') throw new VfsError('EISDIR', undefined, { path: t });
      if (dst.stat.type === 'dir') {
        const page = await v.backend.list(dst.path, { limit: 1 });
        if (page.entries.length > 0) throw new VfsError('ENOTEMPTY', undefined, { path: t });
      }
      this.host.shareModes.checkDelete(v.row(dst.path).id);
    } else if (dst.path === src.path) {
      // Case-only rename on a case-insensitive share: same file, new spelling.
      target = joinPath(parentPath(src.path), baseName(t));
    }
    // A rename made through an open of the file (SMB SET_INFO FileRenameInformation) is checked
    // against the other opens only: that open's own share mode does not refuse it.
    this.host.shareModes.checkDelete(srcRow.id, options.through?.fileId === srcRow.id ? options.through.id : undefined);
    if (src.path !== '/' && parentPath(src.path) !== src.path) this.host.shareModes.checkRenameIn(v.row(parentPath(src.path)).id);
    // A directory renamed through an open of it (SMB) with a file open below it: EACCES, as Windows
    // and Samba refuse it (STATUS_ACCESS_DENIED; smbtorture smb2.rename.rename_dir_openfile). A
    // path-level rename (NFS RENAME, WebDAV MOVE) keeps POSIX's answer: it moves, the handles follow.
    if (options.through && src.stat.type === 'dir' && this.host.openBelow(v, src.path, options.through)) {
      throw new VfsError('EACCES', 'a file below the directory is open', { path: src.path });
    }
    const replacedId = dst.stat && dst.path !== src.path ? v.row(dst.path).id : undefined;
    // Pending async uploads at or below the source, and of a replaced target, must not land while
    // the names move: held here, then retargeted (or cancelled) below.
    const wbIds = this.host.writeBack.idsUnder(volume, src.path);
    if (replacedId !== undefined && this.host.writeBack.has(replacedId)) wbIds.push(replacedId);
    const wbRelease = wbIds.length > 0 ? await this.host.writeBack.pause(wbIds) : undefined;
    const atomic = v.backend.capabilities.atomicRename && v.backend.rename !== undefined;
    // A case-insensitive share: the replaced file's name in another spelling than the client gave
    // (readme.MD over README.md). As on Windows, the result takes the client's spelling: the
    // rename replaces the file under its stored name, then renames it to the new spelling (on a
    // case-sensitive store, renaming straight to readme.MD would leave README.md beside it). Not for
    // directories on stores without atomic rename (a journaled tree move; they keep the old spelling).
    const stored = target;
    if (replacedId !== undefined && baseName(t) !== baseName(dst.path) && (atomic || src.stat.type !== 'dir')) target = joinPath(parentPath(dst.path), baseName(t));
    v.quota?.moved(src.path, target, src.stat.type, src.stat.size);
    if (!atomic && src.stat.type === 'dir') {
      // A journaled tree move (src/vfs/tree-move/). It owns the id update, the handles, the
      // pending uploads and the change event, now or when it completes in the background.
      await this.host.treeMoves.renameTree(v, src.path, src.stat, target, srcRow.id, replacedId, wbRelease);
      if (replacedId !== undefined) v.quota?.replaced(dst.path, replacedId, dst.stat!);
      return;
    }
    let leave: (() => void) | undefined;
    try {
      if (atomic) {
        await v.backend.rename!(src.path, stored);
        if (stored !== target) await v.backend.rename!(stored, target);
      } else {
        // Copy + delete of one file: refused in or around a tree being moved, and a tree move
        // starting meanwhile waits for it (else it could strand the delete half).
        leave = this.host.treeMoves.enter(volume, [src.path, stored, target]);
        await this.moveByCopy(v, src.path, src.stat, stored, dst.stat);
        if (stored !== target) await this.moveByCopy(v, stored, src.stat, target, undefined);
      }
    } catch (e) {
      wbRelease?.();
      throw e;
    } finally {
      leave?.();
    }
    if (replacedId !== undefined) {
      this.host.orphan(replacedId);
      this.host.locks.releaseFile(replacedId);
      v.quota?.replaced(dst.path, replacedId, dst.stat!);
    }
    v.moved(src.path, target, src.stat.type);
    if (stored !== target) v.invalidate(stored);
    const moved = this.host.retargetHandles(src.path, target, v);
    // The old object is gone: open read views move to the new one (S3 reads would find nothing).
    if (!atomic) await this.host.reopenMoved(v, moved);
    if (wbRelease !== undefined) {
      try {
        if (replacedId !== undefined) await this.host.writeBack.cancel(replacedId);
        await this.host.writeBack.moved(volume, src.path, target);
      } finally {
        wbRelease();
      }
    }
    this.host.emit(v, 'rename', srcRow.id, target, src.stat.type, src.path);
  }

  /**
   * renameat2(RENAME_EXCHANGE): the files or directories at `a` and `b` swap names in one atomic
   * step of the backend (capabilities.atomicExchange; ENOTSUP elsewhere: there is no safe emulation,
   * since a swap through a third name leaves a moment where one name is missing, and a crash there
   * leaves it missing). Both must exist (ENOENT); types may differ; neither may be inside the other
   * (EINVAL). Each side is checked as the rename that moves it would be: token locks on the name,
   * its parent and (a directory) its members, leases, share modes of the file and its parent. Ids,
   * handles, locks, pending uploads and properties follow the files; both names' listings, change
   * values and watches see a rename (two events, one per file).
   *
   * Write-back: pending uploads at or below either name are held while the names swap, then go to
   * the file's new name (WriteBack.exchanged), as a rename's do. Unflushed data of an open file is
   * in its stage or descriptor, both bound to the file, not the name, so nothing is flushed first.
   */
  private async exchange(volume: string, a: string, b: string, tokens: Tokens): Promise<void> {
    const v = this.host.volume(volume);
    const pa = v.normalize(a);
    const pb = v.normalize(b);
    if (pa === '/' || pb === '/') throw new VfsError('EBUSY', 'cannot exchange the share root', { path: '/' });
    const ra = await this.host.existing(v, pa);
    const rb = await this.host.existing(v, pb);
    // One file under two spellings or two hard links: nothing changes (as renameat2 answers).
    if (ra.path === rb.path) return;
    if (v.identity && ra.stat.type === 'file' && ra.stat.nativeId !== undefined && ra.stat.nativeId === rb.stat.nativeId) return;
    if (isSameOrDescendant(v.key(rb.path), v.key(ra.path)) || isSameOrDescendant(v.key(ra.path), v.key(rb.path))) {
      throw new VfsError('EINVAL', 'cannot exchange a directory with a name inside it', { path: rb.path });
    }
    if (!v.backend.capabilities.atomicExchange || v.backend.exchange === undefined) {
      throw new VfsError('ENOTSUP', 'this share\'s backend cannot exchange two names atomically', { path: ra.path });
    }
    const sides = [ra, rb].map((r) => ({ path: r.path, stat: r.stat, row: v.row(r.path) }));
    for (const side of sides) {
      this.host.checkTokenLocks(v, side.path, tokens, { self: true, parent: true });
      if (side.stat.type === 'dir' && this.host.locks.size > 0) {
        for (const l of this.host.locks.locksBelow(side.row.id)) {
          if (l.style === 'token' && !tokens.has(l.token)) throw new VfsError('ELOCKED', undefined, { path: side.path });
        }
      }
    }
    if (this.host.leases.size > 0) {
      await this.host.leases.beforeNamespace(v.name, sides.map((x) => x.row.id), sides.filter((x) => x.stat.type === 'dir').map((x) => x.row.id));
    }
    for (const side of sides) {
      this.host.shareModes.checkDelete(side.row.id);
      this.host.shareModes.checkRenameIn(v.row(parentPath(side.path)).id);
    }
    const [x, y] = sides as [typeof sides[0], typeof sides[0]];
    const wbIds = [...this.host.writeBack.idsUnder(volume, x.path), ...this.host.writeBack.idsUnder(volume, y.path)];
    const wbRelease = wbIds.length > 0 ? await this.host.writeBack.pause(wbIds) : undefined;
    try {
      await v.backend.exchange(x.path, y.path);
    } catch (e) {
      wbRelease?.();
      throw e;
    }
    v.quota?.moved(x.path, y.path, x.stat.type, x.stat.size);
    v.quota?.moved(y.path, x.path, y.stat.type, y.stat.size);
    v.exchanged(x.path, y.path, x.stat.type, y.stat.type);
    this.host.exchangeHandles(x.path, y.path, v);
    if (wbRelease !== undefined) {
      try {
        await this.host.writeBack.exchanged(volume, x.path, y.path);
      } finally {
        wbRelease();
      }
    }
    this.host.emit(v, 'rename', x.row.id, y.path, x.stat.type, x.path, 1);
    this.host.emit(v, 'rename', y.row.id, x.path, y.stat.type, y.path, 2);
  }

  /**
   * File rename on a backend without atomic rename: server-side copy (S3 CopyObject), then delete
   * the source. Not atomic, but a crash leaves at worst both names, never neither. Directories go
   * through TreeMoves.renameTree() (src/vfs/tree-move/).
   */
  private async moveByCopy(v: Volume, from: string, st: BackendStat, to: string, _dstStat: BackendStat | undefined): Promise<void> {
    if (st.type === 'dir') throw new VfsError('EISDIR', 'directories are moved by renameTree', { path: from });
    // On a case-insensitive store a case-only rename copies the object onto itself, then deletes it.
    if (!v.backend.capabilities.caseSensitive && nameKey(from, false) === nameKey(to, false)) {
      throw new VfsError('ENOTSUP', 'case-only rename on a case-insensitive backend without atomic rename', { path: to });
    }
    await copyFileData(v, from, to);
    await v.backend.unlink(from);
  }

  async symlink(volume: string, target: string, path: string, tokens: Tokens = NO_TOKENS, creator?: FileOwner): Promise<FileAttr> {
    const v = this.host.volume(volume);
    if (!v.backend.capabilities.symlinks || !v.backend.symlink) throw new VfsError('ENOTSUP', 'backend has no symbolic links');
    const p = v.normalize(path);
    if (target.length === 0 || target.includes('\0') || Buffer.byteLength(target) > 4096) throw new VfsError('EINVAL', 'bad symlink target');
    const r = await v.resolve(p);
    if (r.stat) throw new VfsError('EEXIST', undefined, { path: p });
    this.host.checkTokenLocks(v, r.path, tokens, { self: false, parent: true });
    v.quota?.check(1, 0, p);
    const st = await v.backend.symlink(target, r.path, creator);
    const row = v.newRow(r.path, st);
    v.quota?.add(r.path, 1, 0);
    this.host.emit(v, 'create', row.id, r.path, 'symlink');
    return this.host.attr(v, row, st);
  }

  async readlink(volume: string, path: string): Promise<string> {
    const v = this.host.volume(volume);
    const r = await this.host.existing(v, v.normalize(path));
    if (r.stat.type !== 'symlink' || !v.backend.readlink) throw new VfsError('EINVAL', 'not a symbolic link', { path });
    return v.backend.readlink(r.path);
  }

  /**
   * Hard link. On identity backends the new name is recorded as one more name of the file's id
   * (Volume.linkAdded), so every name gives one id (docs/ARCHITECTURE.md "Hard links"); the file's
   * change attribute advances (its link count changed) through the 'create' event.
   */
  async link(volume: string, existingPath: string, path: string, tokens: Tokens = NO_TOKENS): Promise<FileAttr> {
    const v = this.host.volume(volume);
    if (!v.backend.capabilities.hardLinks || !v.backend.link) throw new VfsError('ENOTSUP', 'backend has no hard links');
    const src = await this.host.existing(v, v.normalize(existingPath));
    if (src.stat.type === 'dir') throw new VfsError('EPERM', 'cannot hard-link a directory');
    const p = v.normalize(path);
    const r = await v.resolve(p);
    if (r.stat) throw new VfsError('EEXIST', undefined, { path: p });
    this.host.checkTokenLocks(v, r.path, tokens, { self: false, parent: true });
    // A hard link counts its size once more, as a scan of names does.
    v.quota?.check(1, src.stat.type === 'file' ? src.stat.size : 0, p);
    const st = await v.backend.link(src.path, r.path);
    const row = v.identity && st.nativeId !== undefined ? v.linkAdded(src.path, r.path, st) : v.newRow(r.path, st);
    v.quota?.add(r.path, 1, st.type === 'file' ? st.size : 0);
    this.host.emit(v, 'create', row.id, r.path, 'file');
    return this.host.attr(v, row, st);
  }

  async setattr(volume: string, path: string, set: SetAttr, tokens: Tokens = NO_TOKENS): Promise<FileAttr> {
    const v = this.host.volume(volume);
    const r = await this.host.existing(v, v.normalize(path));
    this.host.checkTokenLocks(v, r.path, tokens, { self: true, parent: false });
    return this.applySetattr(v, r.path, r.stat, set);
  }

  async applySetattr(v: Volume, path: string, st: BackendStat, set: SetAttr): Promise<FileAttr> {
    const row = v.row(path);
    // A pending async upload lands first: a change applied to the object now would be overwritten
    // by it (rsync sets mtime right after close). A file open for writing is left alone (sync rules).
    if (this.host.writeBack.has(row.id)) await this.host.writeBack.uploadNow(row.id);
    let kind: ChangeKind = 'attrib';
    if (set.size !== undefined) {
      if (st.type === 'dir') throw new VfsError('EISDIR', undefined, { path });
      if (!Number.isSafeInteger(set.size) || set.size < 0) throw new VfsError('EINVAL', 'bad size', { path });
      if (set.size > v.backend.capabilities.maxFileSize) throw new VfsError('EFBIG', undefined, { path });
      if (this.host.leases.size > 0) await this.host.leases.beforeWrite(row.id);
      const stage = this.host.stageOf(row.id);
      const old = v.quota?.openSize(row.id) ?? (stage?.dirty ? stage.size : st.size);
      v.quota?.check(0, set.size - old, path);
      if (stage) await stage.truncate(set.size);
      else await v.backend.truncate(path, set.size);
      v.quota?.resized(path, row.id, old, set.size);
      kind = 'modify';
    }
    const meta: Parameters<Backend['setMetadata']>[1] = {};
    if (set.mode !== undefined) meta.mode = set.mode & 0o7777;
    if (set.uid !== undefined) meta.uid = set.uid;
    if (set.gid !== undefined) meta.gid = set.gid;
    if (set.atimeNs !== undefined) meta.atimeNs = set.atimeNs;
    if (set.mtimeNs !== undefined) meta.mtimeNs = set.mtimeNs;
    let out = st;
    if (Object.keys(meta).length > 0) out = await v.backend.setMetadata(path, meta);
    else if (kind === 'modify') out = await v.backend.stat(path);
    if (set.birthtimeNs !== undefined) v.setBirthTime(path, set.birthtimeNs);
    if (set.winAttributes !== undefined) v.setWinAttributes(path, set.winAttributes & SETTABLE_WIN_ATTRS);
    // ChangeTime: as set, or now for a change only Portico's store sees (change-times.ts).
    if (set.ctimeNs !== undefined) this.host.changeTimes.set(row.id, set.ctimeNs, out.ctimeNs);
    else if (set.winAttributes !== undefined || set.birthtimeNs !== undefined) this.host.changeTimes.set(row.id, BigInt(Date.now()) * 1_000_000n, out.ctimeNs);
    this.host.emit(v, kind, row.id, path, st.type);
    return this.host.attr(v, v.row(path), out);
  }
}
