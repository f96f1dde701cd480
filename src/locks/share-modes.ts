/**
 * Open-handle share arbitration: Windows share modes (MS-FSA 2.1.5.1.2.2 "Algorithm to Check Sharing
 * Access to an Existing Stream or Directory") and delete-pending state (MS-FSA 2.1.5.14.3
 * FileDispositionInformation). NFSv4 OPEN share_access/share_deny maps onto the same table
 * (RFC 8881 §9.7), so an SMB deny-write open also refuses an NFS write open and vice versa.
 *
 * Opens with no data access (read/write/delete all false: SMB stat-style opens for attributes) neither
 * conflict nor restrict others; MS-FSA skips them on both sides, as IoCheckShareAccess does.
 */
import { VfsError } from '../vfs/errors.ts';
import type { FileId } from './lock-manager.ts';

export interface Access {
  read: boolean;
  write: boolean;
  delete: boolean;
}

export interface OpenRecord {
  handleId: string;
  fileId: FileId;
  owner: string;
  /** What this open may do (read = FILE_READ_DATA|FILE_EXECUTE, write = FILE_WRITE_DATA|FILE_APPEND_DATA). */
  access: Access;
  /** What others may do while this open exists (FILE_SHARE_*). */
  share: Access;
  deleteOnClose: boolean;
}

/** Share mode of protocols without deny modes (WebDAV, FUSE, NFS with OPEN4_SHARE_DENY_NONE). */
export const SHARE_ALL: Readonly<Access> = Object.freeze({ read: true, write: true, delete: true });

/**
 * NFSv4 OPEN share_access (OPEN4_SHARE_ACCESS_READ=1, WRITE=2, BOTH=3) and share_deny
 * (OPEN4_SHARE_DENY_NONE=0, READ=1, WRITE=2, BOTH=3) as access/share bits. NFS has no delete deny.
 */
export function nfsShareToAccess(shareAccess: number, shareDeny: number): { access: Access; share: Access } {
  return {
    access: { read: (shareAccess & 1) !== 0, write: (shareAccess & 2) !== 0, delete: false },
    share: { read: (shareDeny & 1) === 0, write: (shareDeny & 2) === 0, delete: true },
  };
}

function hasData(a: Access): boolean {
  return a.read || a.write || a.delete;
}

/** MS-FSA 2.1.5.1.2.2, both directions. */
export function shareConflict(existing: Pick<OpenRecord, 'access' | 'share'>, next: { access: Access; share: Access }): boolean {
  if (!hasData(next.access) || !hasData(existing.access)) return false;
  return (
    (next.access.read && !existing.share.read) ||
    (next.access.write && !existing.share.write) ||
    (next.access.delete && !existing.share.delete) ||
    (existing.access.read && !next.share.read) ||
    (existing.access.write && !next.share.write) ||
    (existing.access.delete && !next.share.delete)
  );
}

function checkAccess(a: Access, what: string): Access {
  if (a === null || typeof a !== 'object' || typeof a.read !== 'boolean' || typeof a.write !== 'boolean' || typeof a.delete !== 'boolean') {
    throw new VfsError('EINVAL', `EINVAL: ${what} must have boolean read/write/delete`);
  }
  return { read: a.read, write: a.write, delete: a.delete };
}

function copy(rec: OpenRecord): OpenRecord {
  return { ...rec, access: { ...rec.access }, share: { ...rec.share } };
}

interface FileShares {
  opens: Map<string, OpenRecord>;
  deletePending: boolean;
}

/** 'open' also follows a downgrade, with the narrowed record (same handleId). */
export type ShareModeEvent = { type: 'open' | 'close'; rec: OpenRecord };

export class ShareModeTable {
  readonly #files = new Map<FileId, FileShares>();
  readonly #handles = new Map<string, OpenRecord>();
  readonly #listeners = new Set<(ev: ShareModeEvent) => void>();
  /**
   * Called before a new open is checked (client-records.ts: the grace period refuses opens that
   * conflict with state a client may still reclaim); throws to refuse.
   */
  guard: ((rec: OpenRecord) => void) | undefined;
  /**
   * Asked about an existing open that conflicts with a new one: true when that open may be closed
   * to let the new one in (durable-handles.ts: a disconnected durable handle without handle
   * caching, MS-SMB2 3.3.5.9). The table then forgets it; the hook closes the rest.
   */
  evict: ((existing: OpenRecord) => boolean) | undefined;

  /** Open and close events (client-records.ts keeps clients' opens for reclaim after a restart). */
  onChange(listener: (ev: ShareModeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #emit(type: ShareModeEvent['type'], rec: OpenRecord): void {
    for (const l of this.#listeners) {
      try {
        l({ type, rec });
      } catch {
        // a listener's failure must not leave the table half-updated
      }
    }
  }

  /** Would an open with this access and share mode conflict with the file's opens now? (No change.) */
  wouldConflict(fileId: FileId, access: Access, share: Access): boolean {
    const next = { access, share };
    for (const existing of this.#files.get(fileId)?.opens.values() ?? []) if (shareConflict(existing, next)) return true;
    return false;
  }

  /** Registers an open or throws ESHARING; EDELETEPENDING if the file is delete-pending (checked first, as Windows does). */
  open(rec: OpenRecord): void {
    if (rec === null || typeof rec !== 'object' || typeof rec.handleId !== 'string' || typeof rec.fileId !== 'bigint') {
      throw new VfsError('EINVAL', 'EINVAL: open record needs handleId and bigint fileId');
    }
    if (this.#handles.has(rec.handleId)) throw new VfsError('EINVAL', `EINVAL: handle ${rec.handleId} already open`);
    const stored: OpenRecord = {
      handleId: rec.handleId,
      fileId: rec.fileId,
      owner: rec.owner,
      access: checkAccess(rec.access, 'access'),
      share: checkAccess(rec.share, 'share'),
      deleteOnClose: rec.deleteOnClose === true,
    };
    // FILE_DELETE_ON_CLOSE without DELETE access is refused at create time (MS-SMB2 3.3.5.9).
    if (stored.deleteOnClose && !stored.access.delete) throw new VfsError('EACCES', 'EACCES: delete-on-close needs delete access');
    this.guard?.(stored);
    let fs = this.#files.get(rec.fileId);
    if (fs !== undefined) {
      if (fs.deletePending) throw new VfsError('EDELETEPENDING');
      // Deleting the entry being visited is safe in a Map iteration (evict), so no copy per open.
      for (const existing of fs.opens.values()) {
        if (!shareConflict(existing, stored)) continue;
        if (this.evict?.(copy(existing)) !== true) throw new VfsError('ESHARING');
        this.close(existing.handleId);
      }
      fs = this.#files.get(rec.fileId);
    }
    if (fs === undefined) this.#files.set(rec.fileId, { opens: new Map([[stored.handleId, stored]]), deletePending: false });
    else fs.opens.set(stored.handleId, stored);
    this.#handles.set(stored.handleId, stored);
    if (this.#listeners.size > 0) this.#emit('open', copy(stored));
  }

  /**
   * Removes the open. A delete-on-close handle marks the file delete-pending as it closes; when
   * `last && deletePending` the caller deletes the file (the table has already forgotten it).
   */
  close(handleId: string): { fileId: FileId; last: boolean; deletePending: boolean } | undefined {
    const rec = this.#handles.get(handleId);
    if (rec === undefined) return undefined;
    this.#handles.delete(handleId);
    const fs = this.#files.get(rec.fileId);
    if (this.#listeners.size > 0) this.#emit('close', copy(rec));
    if (fs === undefined) return { fileId: rec.fileId, last: true, deletePending: false };
    fs.opens.delete(handleId);
    if (rec.deleteOnClose) fs.deletePending = true;
    const last = fs.opens.size === 0;
    const deletePending = fs.deletePending;
    if (last) this.#files.delete(rec.fileId);
    return { fileId: rec.fileId, last, deletePending };
  }

  /**
   * Narrows an open in place (NFS OPEN_DOWNGRADE, Vfs.downgrade): access no wider and share no
   * narrower than before (EINVAL otherwise), so it can never conflict with an open already here.
   */
  downgrade(handleId: string, access: Access, share: Access): void {
    const rec = this.#handles.get(handleId);
    if (rec === undefined) throw new VfsError('EBADF', `EBADF: handle ${handleId} is not open`);
    const a = checkAccess(access, 'access');
    const s = checkAccess(share, 'share');
    for (const k of ['read', 'write', 'delete'] as const) {
      if ((a[k] && !rec.access[k]) || (!s[k] && rec.share[k])) throw new VfsError('EINVAL', 'EINVAL: a downgrade only narrows access and widens sharing');
    }
    if (rec.deleteOnClose && !a.delete) throw new VfsError('EINVAL', 'EINVAL: a delete-on-close open keeps delete access');
    rec.access = a;
    rec.share = s;
    // Told as an open of the same handle again: the records kept for reclaim after a restart
    // (client-records.ts) then hold the narrowed modes, which a reclaim must not exceed.
    if (this.#listeners.size > 0) this.#emit('open', copy(rec));
  }

  /** SMB2 SET_INFO FileDispositionInformation(Ex); needs DELETE access on the handle (else EACCES). */
  setDeletePending(fileId: FileId, handleId: string, pending: boolean): void {
    const rec = this.#handles.get(handleId);
    if (rec === undefined || rec.fileId !== fileId) throw new VfsError('EBADF', `EBADF: handle ${handleId} is not open on this file`);
    if (!rec.access.delete) throw new VfsError('EACCES', 'EACCES: handle lacks delete access');
    const fs = this.#files.get(fileId);
    if (fs !== undefined) fs.deletePending = pending;
  }

  isDeletePending(fileId: FileId): boolean {
    return this.#files.get(fileId)?.deletePending ?? false;
  }

  /** Whether any open (or delete-pending state) exists on the file: the handle-less read's test (OpenFiles.readSmall). */
  hasOpens(fileId: FileId): boolean {
    return this.#files.has(fileId);
  }

  opensOn(fileId: FileId): OpenRecord[] {
    return [...(this.#files.get(fileId)?.opens.values() ?? [])].map(copy);
  }

  /**
   * Path-level rename/unlink (NFS REMOVE, WebDAV DELETE/MOVE, FUSE unlink) behaves like a DELETE-access
   * open that shares everything: it fails when an open with data access does not share delete.
   * `exceptHandleId`: the open the operation is made through (SMB SET_INFO rename), whose own share
   * mode does not stand in its way — only the other opens' do.
   */
  checkDelete(fileId: FileId, exceptHandleId?: string): void {
    for (const existing of this.#files.get(fileId)?.opens.values() ?? []) {
      if (existing.handleId === exceptHandleId) continue;
      if (shareConflict(existing, { access: { read: false, write: false, delete: true }, share: SHARE_ALL })) {
        throw new VfsError('ESHARING');
      }
    }
  }

  /**
   * A name in directory `dirId` is renamed away: the directory's opens must allow it as an open
   * that adds an entry (write) and shares read and write but not delete would — so an open of the
   * directory with DELETE access, or one that shares nothing, refuses it (ESHARING). This is how
   * Windows and Samba answer a rename under a directory held open (smbtorture smb2.rename
   * share_delete_and_delete_access, no_share_delete_but_delete_access,
   * no_share_delete_no_delete_access; a LIST_DIRECTORY open that shares all, as Explorer and
   * change notifications keep, allows it).
   */
  checkRenameIn(dirId: FileId): void {
    const next = { access: { read: false, write: true, delete: false }, share: { read: true, write: true, delete: false } };
    for (const existing of this.#files.get(dirId)?.opens.values() ?? []) {
      if (shareConflict(existing, next)) throw new VfsError('ESHARING');
    }
  }

  /** Drops every open and the delete-pending state of a file that no longer exists under this id. */
  forget(fileId: FileId): void {
    const fs = this.#files.get(fileId);
    if (fs === undefined) return;
    for (const h of fs.opens.keys()) this.#handles.delete(h);
    this.#files.delete(fileId);
  }
}
