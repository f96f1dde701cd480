/**
 * Tree operations of the VFS: recursive copy (within a share or into another) and recursive
 * removal, member by member, with per-node errors collected for the caller (WebDAV answers them in
 * a 207 multistatus) and the session's per-node checks (TreeGuard).
 *
 * `Vfs` (vfs.ts) stays the one public facade: its copy() and removeTree() call the TreeOps it
 * owns. TreeOps gets what it needs of the VFS around it as a small typed host (TreeOpsHost), not
 * the whole Vfs: the namespace primitives a removal ends in (unlinkPath, rmdirPath), the token-lock
 * check, change events, and the shared tables (leases, share modes, store, write-back).
 */
import type { BackendStat, FileOwner } from './backend.ts';
import { VfsError, toVfsError } from './errors.ts';
import { isSameOrDescendant, joinPath } from './path.ts';
import type { Volume } from './volume.ts';
import { streamFile } from './file-copy.ts';
import type { WriteBack } from './write-back.ts';
import { NO_TOKENS, type ChangeKind, type FileAttr, type FileId, type Tokens } from './types.ts';
import type { MetadataStore } from '../store/metadata-store.ts';
import type { ShareModeTable } from '../locks/share-modes.ts';
import type { LeaseTable } from '../locks/leases.ts';
import { Slicer } from '../util/slicer.ts';

export interface TreeError {
  path: string;
  error: VfsError;
}

/**
 * Per-node checks and reports for the recursive operations (copy, removeTree), supplied by the
 * session layer: the VFS itself decides no permission. A check throws to skip the node: the node
 * is reported as a TreeError and its subtree is not entered (a copy does not copy it, a removal
 * keeps it and so its ancestors).
 */
export interface TreeGuard {
  /** Copy: may the source node at `path` be read? */
  source?(path: string): void;
  /** Copy: may a node be created at `path` in the target? Removal: may the node be removed? */
  target?(path: string): void;
  /** Copy: may a symbolic link to `target` be created at `path`? */
  link?(target: string, path: string): void;
  /** Every node touched (`error` undefined) or skipped or failed: for the audit log. */
  visited?(op: 'copy' | 'remove', path: string, error: VfsError | undefined, to?: string): void;
}


/** What the tree operations need of the VFS around them (given by Vfs, bound to its own state). */
export interface TreeOpsHost {
  readonly store: MetadataStore;
  readonly leases: LeaseTable;
  readonly shareModes: ShareModeTable;
  readonly writeBack: WriteBack;
  volume(name: string): Volume;
  /** The resolved path and stat of an existing node, else ENOENT. */
  existing(v: Volume, path: string): Promise<{ path: string; stat: BackendStat }>;
  checkTokenLocks(v: Volume, path: string, tokens: Tokens, what: { self: boolean; parent: boolean }): void;
  emit(v: Volume, kind: ChangeKind, id: FileId, path: string, type: FileAttr['type'], oldPath?: string): bigint;
  /** The namespace primitives one removed member ends in (share modes and token locks already checked). */
  rmdirPath(v: Volume, path: string): Promise<void>;
  unlinkPath(v: Volume, path: string, fromClose: boolean): Promise<void>;
}

/** Every entry of a directory, page by page. */
export async function* listAll(v: Volume, path: string): AsyncGenerator<BackendStat> {
  let after: string | undefined;
  for (;;) {
    const page = await v.backend.list(path, after === undefined ? { limit: 1000 } : { after, limit: 1000 });
    yield* page.entries;
    if (page.next === undefined) return;
    after = page.next;
  }
}

/**
 * One file's data: server-side copy within a backend that has it, else streamed from the source
 * backend into the target's atomic writer (`w`: another volume, for copies across shares).
 */
export async function copyFileData(v: Volume, from: string, to: string, w: Volume = v, mode?: number, owner?: FileOwner): Promise<BackendStat> {
  if (v === w && v.backend.capabilities.serverSideCopy && v.backend.copy) return v.backend.copy(from, to);
  const options = v === w ? {} : { sizeHint: (await v.backend.stat(from)).size, ...(mode === undefined ? {} : { mode }), ...(owner ? { owner } : {}) };
  return streamFile(v.backend, from, w.backend, to, options);
}

export class TreeOps {
  private readonly host: TreeOpsHost;

  constructor(host: TreeOpsHost) {
    this.host = host;
  }

  /**
   * Copies a file, or a directory (depth 0: the directory alone; infinity: the tree). With
   * replace, an existing target is removed first (WebDAV Overwrite: T). Errors on individual
   * members are collected, not thrown (WebDAV answers them in a 207 multistatus).
   *
   * `toVolume` copies into another volume (another share, possibly another backend): file data
   * is streamed from one backend's reader into the other's atomic writer (no server-side copy
   * across backends), dead properties and Windows attributes follow, and the copies get new ids.
   */
  async copy(volume: string, from: string, to: string, options: { replace?: boolean; depth?: 0 | 'infinity'; tokens?: Tokens; toVolume?: string; guard?: TreeGuard; creator?: FileOwner } = {}): Promise<TreeError[]> {
    const tokens = options.tokens ?? NO_TOKENS;
    const v = this.host.volume(volume);
    const w = options.toVolume === undefined ? v : this.host.volume(options.toVolume);
    const f = v.normalize(from);
    const t = w.normalize(to);
    const src = await this.host.existing(v, f);
    if (v === w) {
      if (f === t) throw new VfsError('EINVAL', 'source and destination are the same', { path: t });
      if (src.stat.type === 'dir' && (options.depth ?? 'infinity') === 'infinity' && isSameOrDescendant(t, f)) {
        throw new VfsError('EINVAL', 'cannot copy a directory into itself', { path: t });
      }
    }
    const dst = await w.resolve(t);
    this.host.checkTokenLocks(w, dst.path, tokens, { self: false, parent: true });
    if (dst.stat) {
      if (options.replace === false) throw new VfsError('EEXIST', undefined, { path: t });
      const g = options.guard;
      const errs = await this.removeTree(w.name, dst.path, tokens, g && { target: g.target, visited: g.visited });
      if (errs.length > 0) return errs;
    }
    const errors: TreeError[] = [];
    const slicer = new Slicer();
    try {
      await this.copyNode(v, src.path, src.stat, w, dst.path, options.depth ?? 'infinity', errors, options.guard, options.creator, slicer);
    } finally {
      slicer.close();
    }
    return errors;
  }

  /** `creator`: the copies belong to who copies (cp without -p); a server-side copy keeps the source's. */
  private async copyNode(v: Volume, from: string, st: BackendStat, w: Volume, to: string, depth: 0 | 'infinity', errors: TreeError[], guard: TreeGuard | undefined, creator: FileOwner | undefined, slicer: Slicer): Promise<void> {
    try {
      guard?.source?.(from);
      guard?.target?.(to);
      w.quota?.check(1, st.type === 'file' ? st.size : 0, to);
      const srcRow = v.row(from);
      let out: BackendStat;
      if (st.type === 'dir') out = await w.backend.mkdir(to, st.mode, creator);
      else if (st.type === 'symlink' && v.backend.readlink) {
        if (!w.backend.symlink) throw new VfsError('ENOTSUP', 'the destination share cannot store symbolic links', { path: to });
        const target = await v.backend.readlink(from);
        guard?.link?.(target, to);
        out = await w.backend.symlink(target, to, creator);
      } else {
        // A pending async upload holds the latest content: land it before copying the object.
        await this.host.writeBack.uploadNow(srcRow.id);
        out = await copyFileData(v, from, to, w, st.mode, creator);
      }
      const row = w.newRow(to, out);
      w.quota?.add(to, 1, out.type === 'file' ? out.size : 0);
      this.host.store.copyProps(srcRow.id, row.id);
      if (srcRow.attrs !== 0n) w.setWinAttributes(to, Number(srcRow.attrs));
      this.host.emit(w, 'create', row.id, to, out.type);
      guard?.visited?.('copy', from, undefined, to);
    } catch (e) {
      const error = toVfsError(e, from);
      errors.push({ path: from, error });
      guard?.visited?.('copy', from, error, to);
      return;
    }
    if (st.type === 'dir' && depth === 'infinity') {
      for await (const e of listAll(v, from)) {
        // A big tree on a fast backend (memory) is work without waits: it yields between members.
        await slicer.breathe();
        await this.copyNode(v, joinPath(from, e.name), e, w, joinPath(to, e.name), depth, errors, guard, creator, slicer);
      }
    }
  }

  /**
   * Removes a file or a whole tree, children first. Members that cannot be removed (sharing
   * violation, permission) are reported and their ancestors are kept.
   */
  async removeTree(volume: string, path: string, tokens: Tokens, guard?: TreeGuard): Promise<TreeError[]> {
    const v = this.host.volume(volume);
    const p = v.normalize(path);
    if (p === '/') throw new VfsError('EBUSY', 'cannot remove the share root', { path: p });
    const r = await this.host.existing(v, p);
    if (this.host.leases.size > 0) await this.host.leases.beforeNamespace(v.name, [v.row(r.path).id], r.stat.type === 'dir' ? [v.row(r.path).id] : []);
    const errors: TreeError[] = [];
    const slicer = new Slicer();
    try {
      await this.removeNode(v, r.path, r.stat, errors, tokens, guard, slicer);
    } finally {
      slicer.close();
    }
    return errors;
  }

  private async removeNode(v: Volume, path: string, st: BackendStat, errors: TreeError[], tokens: Tokens, guard: TreeGuard | undefined, slicer: Slicer): Promise<boolean> {
    const fail = (e: unknown): false => {
      const error = toVfsError(e, path);
      errors.push({ path, error });
      guard?.visited?.('remove', path, error);
      return false;
    };
    try {
      // Checked before the children are listed: a node the principal may not remove is not entered.
      guard?.target?.(path);
    } catch (e) {
      return fail(e);
    }
    let ok = true;
    if (st.type === 'dir') {
      const children: BackendStat[] = [];
      for await (const e of listAll(v, path)) children.push(e);
      for (const c of children) {
        await slicer.breathe();
        ok = (await this.removeNode(v, joinPath(path, c.name), c, errors, tokens, guard, slicer)) && ok;
      }
      if (!ok) return false;
    }
    try {
      this.host.checkTokenLocks(v, path, tokens, { self: true, parent: true });
      this.host.shareModes.checkDelete(v.row(path).id);
      if (st.type === 'dir') await this.host.rmdirPath(v, path);
      else await this.host.unlinkPath(v, path, false);
      guard?.visited?.('remove', path, undefined);
      return true;
    } catch (e) {
      return fail(e);
    }
  }
}
