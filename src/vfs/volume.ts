/**
 * A volume is one share's view of one backend: name resolution (case-insensitive and
 * Unicode-normalisation-insensitive matching where needed) and the persistent file ids of its
 * names, kept in the metadata store.
 */
import { LRUCache } from 'lru-cache';
import type { Backend, BackendStat, ListPage } from './backend.ts';
import { VfsError, isVfsError } from './errors.ts';
import { baseName, joinPath, nameKey, normalizeName, normalizePath, parentPath, splitPath } from './path.ts';
import type { MetadataStore, NodeRow } from '../store/metadata-store.ts';
import type { FileId } from './types.ts';
import { initialChange, isReplaced } from './change-tracker.ts';
import { FoldedIndex, type FoldedIndexOptions } from './folded-index.ts';
import { ShareQuota, type QuotaOptions } from './quota.ts';

export interface VolumeOptions {
  /** false = Windows-style: names match regardless of case. */
  caseSensitive?: boolean;
  readOnly?: boolean;
  /** Bounds and TTL of the folded-name index (src/vfs/folded-index.ts); defaults for production. */
  foldedIndex?: FoldedIndexOptions;
  /** Per-share quota (src/vfs/quota.ts); absent, or neither limit set: none. */
  quota?: QuotaOptions;
}

/** Pages used when a name must be found by scanning a directory (case/normalisation mismatch). */
const SCAN_PAGE = 1000;
/** A scan gives up after this many entries (a hostile client must not make us list forever). */
const SCAN_MAX = 1_000_000;

export class Volume {
  readonly name: string;
  readonly backend: Backend;
  readonly caseSensitive: boolean;
  readonly readOnly: boolean;
  readonly rootId: FileId;
  private readonly store: MetadataStore;
  /** Whether names on this volume need a scan fallback when an exact stat misses. */
  private readonly foldCase: boolean;
  /** path (as stored on the backend) -> node row. Cleared wholesale on directory renames/deletes. */
  private readonly rows: LRUCache<string, NodeRow>;
  /** The same cached rows by id (change state is updated on the one row object). */
  private readonly byId = new Map<FileId, NodeRow>();
  /**
   * id -> share path (pathOf walks one store row per level): what makes an id-addressed operation
   * (NFS, SMB, FUSE) cost no query on a warm entry. Dropped with the rows on directory changes.
   */
  private readonly paths = new LRUCache<FileId, string>({ maxSize: 100_000, sizeCalculation: () => 1 });
  /**
   * The backend's native ids name files, not versions (BackendCapabilities.nativeIdentity): a
   * different one at a known name means the file was replaced (src/vfs/change-tracker.ts).
   */
  readonly identity: boolean;
  /**
   * Per directory, folded name -> stored name: a lookup whose exact spelling missed is answered
   * without listing the directory again (src/vfs/folded-index.ts).
   */
  readonly folded: FoldedIndex;
  /** Usage accounting and EDQUOT enforcement when the share has a quota (src/vfs/quota.ts). */
  readonly quota: ShareQuota | undefined;

  constructor(name: string, backend: Backend, store: MetadataStore, options: VolumeOptions = {}) {
    this.name = name;
    this.backend = backend;
    this.store = store;
    this.caseSensitive = options.caseSensitive ?? true;
    this.readOnly = options.readOnly ?? false;
    this.foldCase = !this.caseSensitive && backend.capabilities.caseSensitive;
    this.rootId = store.rootId(name);
    // maxSize with unit sizes, not max: the same bound, but memory grows with use instead of
    // 100,000 slots (about 3 MB per volume) being preallocated at start.
    this.rows = new LRUCache({
      maxSize: 100_000,
      sizeCalculation: () => 1,
      dispose: (row) => {
        if (this.byId.get(row.id) === row) this.byId.delete(row.id);
      },
    });
    this.identity = backend.capabilities.nativeIdentity === true;
    this.folded = new FoldedIndex((nfc) => this.key(nfc), options.foldedIndex);
    const q = options.quota;
    this.quota = q !== undefined && (q.bytes !== undefined || q.files !== undefined) ? new ShareQuota(name, backend, store, q) : undefined;
    if (this.quota === undefined) ShareQuota.forget(store, name);
  }

  private cache(path: string, row: NodeRow): NodeRow {
    this.rows.set(path, row);
    this.byId.set(row.id, row);
    return row;
  }

  /** The cached row of an id (undefined when not cached: the store has it). */
  cachedRow(id: FileId): NodeRow | undefined {
    return this.byId.get(id);
  }

  /**
   * On identity backends, a row whose known native id differs from the stat's names a file that
   * was replaced outside Portico: the name gets a new row (new id), the old id goes stale.
   */
  private checked(path: string, row: NodeRow, st: BackendStat | undefined): NodeRow {
    if (!this.identity || st === undefined || !isReplaced(row, st)) return row;
    this.rows.delete(path);
    this.paths.delete(row.id);
    if (st.type === 'dir' || row.id === this.rootId) this.forgetCachedRows();
    return this.cache(path, this.store.replaceChild(row, initialChange(st)));
  }

  /** The one entry point for client paths on this volume: validated, normalised, no reserved names. */
  normalize(path: string): string {
    const caps = this.backend.capabilities;
    const p = normalizePath(path, caps.maxNameBytes);
    const reserved = caps.reservedPrefix;
    if (reserved !== undefined && (p.startsWith('/' + reserved) || p.includes('/' + reserved))) {
      throw new VfsError('EINVAL', `names starting with ${reserved} are reserved`, { path: p });
    }
    return p;
  }

  key(name: string): string {
    return nameKey(name, this.caseSensitive);
  }

  /**
   * Maps a normalised share path to the path as it exists on the backend, with its stat.
   * Returns stat undefined when the path does not exist (the parent chain may still exist: `parentExists`).
   */
  async resolve(path: string): Promise<{ path: string; stat: BackendStat | undefined }> {
    try {
      return { path, stat: await this.backend.stat(path) };
    } catch (e) {
      if (!isVfsError(e, 'ENOENT') || path === '/') throw e;
      // Exact miss. Only scan when a different spelling could match: case folding on a
      // case-sensitive backend, or non-ASCII names that may be stored in another normal form (NFD).
      if (this.exactLookupAuthoritative(path)) return { path, stat: undefined };
      return this.resolveByScan(path);
    }
  }

  /**
   * Component by component from the root: the exact spelling first, then the directory's folded
   * index. A directory component the fresh index knows under one spelling needs no stat; the last
   * component's exact spelling was just stat'ed by resolve() when everything before it matched
   * exactly, so a miss there costs nothing beyond that stat once its directory is indexed.
   */
  private async resolveByScan(path: string): Promise<{ path: string; stat: BackendStat | undefined }> {
    let cur = '/';
    let exact = true;
    const segs = splitPath(path);
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i]!;
      const last = i === segs.length - 1;
      const key = this.key(seg.normalize('NFC'));
      if (!last) {
        const hit = this.folded.peek(cur, key, true);
        if (hit?.dir) {
          exact &&= hit.name === seg;
          cur = joinPath(cur, hit.name);
          continue;
        }
      }
      let st: BackendStat | undefined;
      // The last name needs no stat of its own when resolve() just stat'ed it (everything before it
      // matched exactly), or when its directory's fresh index answers for it (one spelling or none).
      if (!(last && (exact || this.folded.peek(cur, key, true) !== undefined))) {
        try {
          st = await this.backend.stat(joinPath(cur, seg));
          cur = joinPath(cur, seg);
        } catch (e) {
          if (!isVfsError(e, 'ENOENT')) throw e;
        }
      }
      if (st === undefined) {
        const found = await this.findFolded(cur, key);
        if (!found) {
          // Missing from here on: the rest keeps the client's spelling (for creates).
          return { path: segs.slice(i).reduce((p, s) => joinPath(p, s), cur), stat: undefined };
        }
        exact = false;
        cur = joinPath(cur, found.name);
        st = found;
      }
      if (last) return { path: cur, stat: st };
      if (st.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    }
    return { path: cur, stat: await this.backend.stat(cur) };
  }

  /**
   * A name of `dir` by its key, through the folded index. A name the index holds but the backend no
   * longer has (removed outside Portico) drops the index and asks again once.
   */
  private async findFolded(dir: string, key: string): Promise<BackendStat | undefined> {
    const list = (d: string, after: string | undefined) => this.backend.list(d, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE });
    for (let attempt = 0; attempt < 2; attempt++) {
      let name: string | null | undefined;
      try {
        name = await this.folded.lookup(dir, key, list);
      } catch (e) {
        // The directory itself went away (a stale index of its parent): nothing below it exists.
        if (isVfsError(e, 'ENOENT') || isVfsError(e, 'ENOTDIR')) return undefined;
        throw e;
      }
      if (name === undefined) return this.findInDir(dir, key);
      if (name === null) return undefined;
      try {
        return await this.backend.stat(joinPath(dir, name));
      } catch (e) {
        if (!isVfsError(e, 'ENOENT')) throw e;
        this.folded.forget(dir);
      }
    }
    return undefined;
  }

  /** Pages through a directory too large for the folded index, up to the first match. */
  private async findInDir(dir: string, key: string): Promise<BackendStat | undefined> {
    let after: string | undefined;
    let seen = 0;
    for (;;) {
      const page = await this.backend.list(dir, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE });
      for (const e of page.entries) {
        if (this.key(e.name.normalize('NFC')) === key) return e;
      }
      seen += page.entries.length;
      if (page.next === undefined || seen >= SCAN_MAX) return undefined;
      after = page.next;
    }
  }

  /**
   * The node row (id, Windows attributes, birth override, change state) for an existing backend
   * path. With the path's current stat, a row created now starts with its change state, and a
   * replaced file is noticed (see checked()).
   */
  row(path: string, st?: BackendStat): NodeRow {
    const cached = this.rows.get(path);
    if (cached) return this.checked(path, cached, st);
    let row: NodeRow | undefined;
    if (path === '/') row = this.store.getNode(this.rootId)!;
    else {
      const parent = this.row(parentPath(path));
      const name = baseName(path).normalize('NFC');
      row = this.store.ensureChild(this.name, parent.id, name, this.key(name), st && initialChange(st));
    }
    return this.checked(path, this.cache(path, row), st);
  }

  /** True when a miss of the exact name means the name does not exist (no scan would find it). */
  exactLookupAuthoritative(path: string): boolean {
    return !this.foldCase && /^[\x00-\x7f]*$/.test(path);
  }

  /**
   * Row for a name just created: insert first (the common case), look up only on conflict. On an
   * identity backend, a conflicting row that names another file (a stale row left by an outside
   * delete) is replaced, so the new file neither takes the old id nor inherits its properties.
   */
  newRow(path: string, st?: BackendStat): NodeRow {
    if (path === '/') return this.row(path);
    const parent = this.row(parentPath(path));
    const name = baseName(path).normalize('NFC');
    const init = st && initialChange(st);
    const row = this.store.insertChild(this.name, parent.id, name, this.key(name), init);
    this.rows.delete(path);
    this.folded.added(parentPath(path), baseName(path), st?.type === 'dir');
    return this.checked(path, this.cache(path, row), st);
  }

  /** Row of a child given its parent's row and its listed stat (readdir, a whole page at once). */
  childRow(parentPathStr: string, parent: NodeRow, name: string, st?: BackendStat): NodeRow {
    const path = joinPath(parentPathStr, name);
    const cached = this.rows.get(path);
    if (cached) return this.checked(path, cached, st);
    const nfc = name.normalize('NFC');
    const row = this.store.ensureChild(this.name, parent.id, nfc, this.key(nfc), st && initialChange(st));
    return this.checked(path, this.cache(path, row), st);
  }

  /** Current backend path of an id, or ESTALE when the id is unknown or belongs to another volume. */
  pathOf(id: FileId): string {
    const hit = this.paths.get(id);
    if (hit !== undefined) return hit;
    const path = this.walkPath(id);
    this.paths.set(id, path);
    return path;
  }

  private walkPath(id: FileId): string {
    const segs: string[] = [];
    let cur = this.store.getNode(id);
    for (let depth = 0; cur && cur.id !== this.rootId; depth++) {
      if (cur.vol !== this.name || depth > 4096) throw new VfsError('ESTALE');
      segs.push(cur.name);
      cur = cur.parent === 0n ? undefined : this.store.getNode(cur.parent);
    }
    if (!cur) throw new VfsError('ESTALE');
    return '/' + segs.reverse().join('/');
  }

  /** Records a rename in the id store (ids below a directory follow automatically). */
  moved(from: string, to: string, type: string): void {
    const row = this.row(from);
    const parent = this.row(parentPath(to));
    const name = normalizeName(baseName(to));
    this.store.moveNode(this.name, row.id, parent.id, name, this.key(name));
    this.folded.removed(parentPath(from), baseName(from));
    this.folded.added(parentPath(to), baseName(to), type === 'dir');
    if (type === 'dir') {
      this.forgetRows();
      this.folded.forgetTree(from);
      this.folded.forgetTree(to);
    } else {
      const replaced = this.rows.get(to);
      if (replaced !== undefined) this.paths.delete(replaced.id);
      this.rows.delete(from);
      this.rows.delete(to);
      this.paths.delete(row.id);
    }
  }

  /** Forgets a deleted name and everything below it. Returns the ids that were removed. */
  removed(path: string, type: string): FileId[] {
    const cached = this.rows.get(path);
    const id = cached?.id ?? this.lookupExisting(path);
    this.folded.removed(parentPath(path), baseName(path));
    if (type === 'dir') {
      this.forgetRows();
      this.folded.forgetTree(path);
    } else {
      this.rows.delete(path);
      if (id !== undefined) this.paths.delete(id);
    }
    return id === undefined ? [] : this.store.deleteSubtree(id);
  }

  /** Id of a path only if the store already knows it (no insert). */
  existingId(path: string): FileId | undefined {
    return this.rows.get(path)?.id ?? this.lookupExisting(path);
  }

  private lookupExisting(path: string): FileId | undefined {
    let id = this.rootId;
    for (const seg of splitPath(path)) {
      const r = this.store.lookupChild(this.name, id, this.key(seg.normalize('NFC')));
      if (!r) return undefined;
      id = r.id;
    }
    return id;
  }

  /** Forgets every cached row and folded-name index (a cache refresh, a tree move's end). */
  forgetCachedRows(): void {
    this.forgetRows();
    this.folded.clear();
  }

  private forgetRows(): void {
    this.rows.clear();
    this.byId.clear();
    this.paths.clear();
  }

  /** A page Vfs.readdir listed (fills the folded index of a directory paged from start to end). */
  listed(dir: string, after: string | undefined, page: ListPage): void {
    this.folded.listed(dir, after, page);
  }

  /** The id of a backend path when its row is cached (no store query, no insert). */
  cachedId(path: string): FileId | undefined {
    return this.rows.get(path)?.id;
  }

  /**
   * Something changed at `path` outside Portico (a change-watch report, Vfs.noticeOutside): its
   * cached row is dropped so the next read sees the store, and the folded-name indexes of its
   * directory and (when it is one) of itself, whose members may have changed.
   */
  invalidate(path: string): void {
    this.rows.delete(path);
    if (path !== '/') this.folded.forget(parentPath(path));
    this.folded.forgetTree(path);
  }

  setWinAttributes(path: string, attrs: number): void {
    const r = this.row(path);
    this.store.setWinAttributes(r.id, attrs);
    r.attrs = BigInt(attrs);
  }

  setBirthTime(path: string, ns: bigint | null): void {
    const r = this.row(path);
    this.store.setBirthTime(r.id, ns);
    r.birth = ns;
  }
}
