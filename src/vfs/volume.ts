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
const ASCII = /^[\x00-\x7f]*$/;
/**
 * A name's NFC form; ASCII is its own (no ICU call). On a file's first access (row(), newRow())
 * `normalize` showed in the server's profile at ~1 µs a call (4,000 first GETs, load ~12); in a
 * tight loop 100-300 ns against 70-90 ns for the test.
 */
const nfcOf = (name: string): string => (ASCII.test(name) ? name : name.normalize('NFC'));
/** Characters of listed paths Volume.listedRows keeps (over all directories; 10,000 names of 100 chars: 1 M). */
const MAX_LISTED_PATH_CHARS = 4_000_000;
/** A scan gives up after this many entries (a hostile client must not make us list forever). */
const SCAN_MAX = 1_000_000;

/** A listed page's names as Volume.listedRows looked them up (index i: the page's ith entry). */
export interface ListedRows {
  paths: string[];
  nfcs: string[];
  keys: string[];
  cached: (NodeRow | undefined)[];
  known: Map<string, NodeRow | null> | undefined;
  gen: number;
  /** No two names of the page have the same key (no dedup needed). */
  distinct: boolean;
}

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
   * Rows cached under several paths (hard links: every name of a file shares its one row object,
   * so change state never diverges between names). An eviction of one name must not drop the
   * object from byId while another name still holds it: these leave byId only when their id goes.
   */
  private readonly shared = new WeakSet<NodeRow>();
  /**
   * Paths whose row was resolved by native identity (names of files with nlink > 1), with the
   * name's own link id (its readdir cookie; null for the file's own name): a cached row met with
   * nlink > 1 at a path not in here was taken before the file had other names, and is resolved
   * again (Volume.row). Dropped with the path's row on every change of the name, cleared with the
   * rows; a stale member only skips that check.
   */
  private readonly linkedPaths = new Map<string, bigint | null>();
  /** Advances whenever the row cache is dropped wholesale (forgetRows): see listedRows. */
  private gen = 0;
  /**
   * Per listed directory, name -> its backend path: a listing paged again (the listing cache gives
   * the same name strings) looks its rows up by the same path strings, whose hash V8 keeps, instead
   * of building and hashing a new string per name (most of a warm listing's row-cache cost).
   * Bounded by MAX_LISTED_PATH_CHARS over all directories (then it starts again).
   */
  private readonly listedPaths = new Map<string, Map<string, string>>();
  private listedPathChars = 0;
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
        if (this.byId.get(row.id) === row && !this.shared.has(row)) this.byId.delete(row.id);
      },
    });
    this.identity = backend.capabilities.nativeIdentity === true;
    this.folded = new FoldedIndex((nfc) => this.key(nfc), options.foldedIndex);
    const q = options.quota;
    this.quota = q !== undefined && (q.bytes !== undefined || q.files !== undefined) ? new ShareQuota(name, backend, store, q) : undefined;
    if (this.quota === undefined) ShareQuota.forget(store, name);
  }

  private cache(path: string, row: NodeRow): NodeRow {
    // Another name of the same file already cached: the one row object serves both (hard links).
    const have = this.byId.get(row.id);
    if (have !== undefined && have !== row) {
      row = have;
      this.shared.add(row);
    }
    this.rows.set(path, row);
    this.byId.set(row.id, row);
    return row;
  }

  /**
   * Whether a stat shows a file with several names whose one id is kept by native identity (hard
   * links on identity backends: docs/ARCHITECTURE.md "Hard links"). Files with one name never
   * reach the link tables: their lookups cost what they did before.
   */
  private linked(st: BackendStat | undefined): st is BackendStat & { nativeId: string } {
    return st !== undefined && st.type === 'file' && st.nlink !== undefined && st.nlink > 1 && this.identity && st.nativeId !== undefined;
  }

  /** The row of a name of a file with several names: its one id, by native identity. */
  private linkedRow(path: string, parent: FileId, st: BackendStat & { nativeId: string }): NodeRow {
    const name = baseName(path).normalize('NFC');
    const { row, merged, link } = this.store.linkedChild(this.name, parent, name, this.key(name), st.nativeId, initialChange(st));
    // Two ids were found to name one file and one went (rare): names cached with it must not serve it.
    if (merged !== undefined) this.forgetRows();
    this.rows.delete(path);
    this.paths.delete(row.id);
    if (this.linkedPaths.size >= 100_000) this.linkedPaths.clear();
    this.linkedPaths.set(path, link ?? null);
    const cached = this.cache(path, row);
    this.shared.add(cached);
    return cached;
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
    if (!this.identity || st === undefined) return row;
    if (!isReplaced(row, st)) {
      // A name cached before its file had other names (a link made outside Portico since):
      // resolved once by native identity, so that every name gives the one id.
      if (this.linked(st) && path !== '/' && !this.linkedPaths.has(path)) return this.linkedRow(path, this.row(parentPath(path)).id, st);
      return row;
    }
    this.rows.delete(path);
    this.linkedPaths.delete(path);
    this.paths.delete(row.id);
    if (st.type === 'dir' || row.id === this.rootId) this.forgetCachedRows();
    if (path === '/') return this.cache(path, this.store.replaceChild(row, initialChange(st)));
    // The name, not necessarily the row: a file with other names keeps its id under one of them
    // (MetadataStore.dropName), and an other name of it just stops being one.
    const parent = this.row(parentPath(path)).id;
    const name = baseName(path).normalize('NFC');
    if (this.linked(st)) {
      this.store.dropName(this.name, parent, this.key(name));
      return this.linkedRow(path, parent, st);
    }
    return this.cache(path, this.store.replaceName(this.name, parent, name, this.key(name), initialChange(st)));
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
      if (this.linked(st)) return this.checked(path, this.linkedRow(path, parent.id, st), st);
      const name = nfcOf(baseName(path));
      row = this.store.ensureChild(this.name, parent.id, name, this.key(name), st && initialChange(st));
    }
    return this.checked(path, this.cache(path, row), st);
  }

  /** True when a miss of the exact name means the name does not exist (no scan would find it). */
  exactLookupAuthoritative(path: string): boolean {
    return !this.foldCase && ASCII.test(path);
  }

  /**
   * Row for a name just created: insert first (the common case), look up only on conflict. On an
   * identity backend, a conflicting row that names another file (a stale row left by an outside
   * delete) is replaced, so the new file neither takes the old id nor inherits its properties.
   */
  newRow(path: string, st?: BackendStat): NodeRow {
    if (path === '/') return this.row(path);
    const parent = this.row(parentPath(path));
    const name = nfcOf(baseName(path));
    const init = st && initialChange(st);
    const row = this.store.insertChild(this.name, parent.id, name, this.key(name), init);
    this.rows.delete(path);
    this.folded.added(parentPath(path), baseName(path), st?.type === 'dir');
    const r = this.checked(path, this.cache(path, row), st);
    // The new file's path by its id, as pathOf would walk it: the next operation by id (an NFS
    // GETATTR or WRITE by handle, FUSE by inode) costs no store SELECT. Only for a row of its own
    // (a name of a file with several names resolves through the link tables), and an ASCII path
    // (the stored names walkPath joins are the NFC forms: for ASCII, the path's own).
    if (r.id === row.id && !this.linkedPaths.has(path) && !this.shared.has(r) && ASCII.test(path)) this.paths.set(r.id, path);
    return r;
  }

  /**
   * Before a listed page's childRow calls, one pass over its names: each name's path, NFC form and
   * key, and its cached row, looked up once (what childRow and cookieAt then take instead of
   * looking again).
   * - The page's cached rows become the most recent, so the rows its misses add evict other rows,
   *   not the page's own next names. Otherwise a directory larger than the row cache misses on
   *   every name of every listing: each miss evicts the least recent row, which is the next name
   *   listed (a second listing of 100,000 entries: 8.6-12.7 s → 3.0-4.1 s).
   * - `known`: the stored rows of the names whose rows are not cached, in one store query (name ->
   *   row, null: none yet), so a first listing of a directory costs one query per page instead of
   *   one per name. None when the store has hard-link rows (a linked name's resolution may move
   *   other rows of the directory between two childRow calls).
   * `gen` is the row cache's generation: a cached row taken here is used by childRow only while no
   *   wholesale drop of the cache (forgetRows) came in between.
   */
  listedRows(parentPathStr: string, parent: NodeRow, entries: readonly BackendStat[]): ListedRows {
    const n = entries.length;
    const paths = new Array<string>(n);
    const nfcs = new Array<string>(n);
    const keys = new Array<string>(n);
    const cached = new Array<NodeRow | undefined>(n);
    let misses = 0;
    let renamed = false;
    const prefix = parentPathStr === '/' ? '/' : parentPathStr + '/';
    let memo = this.listedPaths.get(parentPathStr);
    if (memo === undefined || this.listedPathChars > MAX_LISTED_PATH_CHARS) {
      if (this.listedPathChars > MAX_LISTED_PATH_CHARS) {
        this.listedPaths.clear();
        this.listedPathChars = 0;
      }
      this.listedPaths.set(parentPathStr, (memo = new Map()));
      this.listedPathChars += parentPathStr.length + 64;
    }
    for (let i = 0; i < n; i++) {
      const name = entries[i]!.name;
      let path = memo.get(name);
      if (path === undefined) {
        path = prefix + name;
        memo.set(name, path);
        this.listedPathChars += path.length;
      }
      // ASCII is its own NFC form (the common case costs no ICU call).
      const nfc = ASCII.test(name) ? name : name.normalize('NFC');
      // (A backend listing the same name twice, sorted so next to each other, is deduplicated too.)
      if (nfc !== name || (i > 0 && entries[i - 1]!.name === name)) renamed = true;
      paths[i] = path;
      nfcs[i] = nfc;
      keys[i] = this.key(nfc);
      const row = this.rows.get(path);
      cached[i] = row;
      if (row === undefined) misses++;
    }
    let known: Map<string, NodeRow | null> | undefined;
    if (misses >= 2 && !this.store.hasLinks) {
      const missKeys = new Map<string, string>();
      for (let i = 0; i < n; i++) if (cached[i] === undefined) missKeys.set(entries[i]!.name, keys[i]!);
      if (missKeys.size >= 2) {
        const rows = this.store.childrenByKeys(this.name, parent.id, [...missKeys.values()]);
        known = new Map();
        for (const [name, key] of missKeys) known.set(name, rows.get(key) ?? null);
      }
    }
    // Two names of the page can share a key only when keys fold case or a name is not its own NFC
    // form (or a name is listed twice).
    return { paths, nfcs, keys, cached, known, gen: this.gen, distinct: this.caseSensitive && !renamed };
  }

  /**
   * Row of the `i`th name of a page given its parent's row and its listed stat (readdir, a whole
   * page at once, after listedRows).
   */
  childRow(l: ListedRows, i: number, parent: NodeRow, st: BackendStat): NodeRow {
    const path = l.paths[i]!;
    const hint = l.cached[i];
    const cached = hint !== undefined && l.gen === this.gen ? hint : this.rows.get(path);
    if (cached) return this.checked(path, cached, st);
    if (this.linked(st)) return this.checked(path, this.linkedRow(path, parent.id, st), st);
    const nfc = l.nfcs[i]!;
    const row = this.store.ensureChild(this.name, parent.id, nfc, l.keys[i]!, initialChange(st), l.known?.get(st.name));
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
      // An ancestor whose path is cached ends the walk with the path the rest of it would find:
      // `paths` is dropped on every change that moves or ends a directory. A file just created
      // (NFS GETATTR or FUSE getattr of it by id) then costs no query for its directory and each
      // directory above (two SELECTs per GETATTR one level down).
      const above = cur.parent === 0n ? undefined : this.paths.get(cur.parent);
      if (above !== undefined) return (above === '/' ? '/' : above + '/') + segs.reverse().join('/');
      cur = cur.parent === 0n ? undefined : this.store.getNode(cur.parent);
    }
    if (!cur) throw new VfsError('ESTALE');
    return '/' + segs.reverse().join('/');
  }

  /**
   * The readdir cookie of a name: its file's id, or for another name of a file with several (a
   * hard link) that name's own link id, so that two names of one file in one directory resume
   * apart. The row's own (parent, key) answers without a query for every name but those.
   */
  cookieOf(dirPath: string, dirId: FileId, name: string, row: NodeRow): bigint {
    return this.cookieAt(joinPath(dirPath, name), dirId, this.key(name.normalize('NFC')), row);
  }

  /** cookieOf given the name's backend path and its key (a listed page's, from listedRows). */
  cookieAt(path: string, dirId: FileId, key: string, row: NodeRow): bigint {
    if (row.parent === dirId && row.key === key) return row.id;
    const known = this.linkedPaths.get(path);
    if (known !== undefined) return known ?? row.id;
    return this.store.lookupLink(this.name, dirId, key)?.id ?? row.id;
  }

  /**
   * A hard link made through Portico: `path` is one more name of the file at `existing` (`st`, the
   * new name's stat). The name is recorded as a link of the file's id at once.
   */
  linkAdded(existing: string, path: string, st: BackendStat): NodeRow {
    const src = this.row(existing, st);
    const parent = this.row(parentPath(path));
    const name = baseName(path).normalize('NFC');
    const link = this.store.addLink(this.name, parent.id, name, this.key(name), src.id, st.nativeId);
    this.rows.delete(path);
    this.linkedPaths.set(path, link === src.id ? null : link);
    this.folded.added(parentPath(path), baseName(path), false);
    const row = this.cache(path, src);
    this.shared.add(row);
    return row;
  }

  /**
   * An id whose own name is gone outside Portico while the file has other names (a hard link):
   * the first other name that still holds the file (same native identity) becomes the id's own
   * name. Returns the new path, or undefined when no other name does.
   */
  async relocate(id: FileId): Promise<string | undefined> {
    const links = this.store.linksOf(id);
    if (links.length === 0) return undefined;
    const row = this.store.getNode(id);
    if (!row || row.vol !== this.name) return undefined;
    for (const l of links) {
      let path: string;
      try {
        path = joinPath(this.pathOf(l.parent), l.name);
      } catch {
        continue;
      }
      const st = await this.backend.stat(path).catch(() => undefined);
      if (st === undefined || (row.native !== null && st.nativeId !== row.native)) continue;
      if (!this.store.promoteLink(l.id)) continue;
      this.paths.delete(id);
      const stale: string[] = [];
      for (const [p, r] of this.rows.entries()) if (r.id === id) stale.push(p);
      for (const p of stale) this.rows.delete(p);
      return path;
    }
    return undefined;
  }

  /**
   * Whether removing the name `path` of file `id` leaves the file under another name (hard links:
   * the name is a link row, or the file's own row has links). No query when the store has no link
   * rows at all.
   */
  keepsFile(path: string, id: FileId): boolean {
    if (!this.store.hasLinks || path === '/') return false;
    const parent = this.existingId(parentPath(path));
    if (parent === undefined) return false;
    const key = this.key(normalizeName(baseName(path)));
    const own = this.store.lookupChild(this.name, parent, key);
    if (own === undefined) return this.store.lookupLink(this.name, parent, key)?.target === id;
    return own.id === id && this.store.linksOf(id).length > 0;
  }

  /** Records a rename in the id store (ids below a directory follow automatically). */
  moved(from: string, to: string, type: string): void {
    const row = this.row(from);
    const parent = this.row(parentPath(to));
    const name = normalizeName(baseName(to));
    // One name moves: a hard link's other names stay where they are (MetadataStore.moveName).
    const fromName = normalizeName(baseName(from));
    this.store.moveName(this.name, this.row(parentPath(from)).id, this.key(fromName), row.id, parent.id, name, this.key(name));
    this.linkedPaths.delete(from);
    this.linkedPaths.delete(to);
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

  /**
   * Records an exchange of two names (renameat2 RENAME_EXCHANGE) in the id store: each name's id
   * moves to the other name (ids follow the files), in one store transaction. Both rows go through
   * a temporary key no name can have (names hold no NUL), since a directory holds each key once.
   */
  exchanged(a: string, b: string, aType: string, bType: string): void {
    const ra = this.row(a);
    const rb = this.row(b);
    const pa = this.row(parentPath(a)).id;
    const pb = this.row(parentPath(b)).id;
    const na = normalizeName(baseName(a));
    const nb = normalizeName(baseName(b));
    const tmp = '\0exchange';
    this.store.transaction(() => {
      this.store.moveName(this.name, pa, this.key(na), ra.id, pa, tmp, tmp);
      this.store.moveName(this.name, pb, this.key(nb), rb.id, pa, na, this.key(na));
      this.store.moveName(this.name, pa, tmp, ra.id, pb, nb, this.key(nb));
    });
    for (const p of [a, b]) this.linkedPaths.delete(p);
    // Both names stay; what they are (a directory or not) may change.
    this.folded.removed(parentPath(a), baseName(a));
    this.folded.added(parentPath(a), baseName(a), bType === 'dir');
    this.folded.removed(parentPath(b), baseName(b));
    this.folded.added(parentPath(b), baseName(b), aType === 'dir');
    if (aType === 'dir' || bType === 'dir') {
      this.forgetRows();
      this.folded.forgetTree(a);
      this.folded.forgetTree(b);
    } else {
      this.rows.delete(a);
      this.rows.delete(b);
      this.paths.delete(ra.id);
      this.paths.delete(rb.id);
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
      return id === undefined ? [] : this.store.deleteSubtree(id);
    }
    this.rows.delete(path);
    this.linkedPaths.delete(path);
    if (id === undefined) return [];
    this.paths.delete(id);
    // The name goes, and the file with it unless it has other names (hard links: dropName keeps
    // the id under one of them and returns nothing).
    const parent = path === '/' ? undefined : this.existingId(parentPath(path));
    // A cached row is the store's row of the name (every change through Portico updates both), so
    // its id spares dropName the lookup.
    const ids = parent === undefined ? this.store.deleteSubtree(id) : this.store.dropName(this.name, parent, this.key(normalizeName(baseName(path))), cached?.id, true);
    for (const x of ids) this.byId.delete(x);
    return ids;
  }

  /** Id of a path only if the store already knows it (no insert). */
  existingId(path: string): FileId | undefined {
    return this.rows.get(path)?.id ?? this.lookupExisting(path);
  }

  private lookupExisting(path: string): FileId | undefined {
    let id = this.rootId;
    for (const seg of splitPath(path)) {
      const key = this.key(seg.normalize('NFC'));
      const r = this.store.lookupChild(this.name, id, key);
      if (r) id = r.id;
      else {
        // Another name of a file (a hard link): the file's id.
        const l = this.store.lookupLink(this.name, id, key);
        if (!l) return undefined;
        id = l.target;
      }
    }
    return id;
  }

  /** Forgets every cached row and folded-name index (a cache refresh, a tree move's end). */
  forgetCachedRows(): void {
    this.forgetRows();
    this.folded.clear();
  }

  private forgetRows(): void {
    this.gen++;
    this.rows.clear();
    this.byId.clear();
    this.paths.clear();
    this.linkedPaths.clear();
  }

  /**
   * A page Vfs.readdir listed (fills the folded index of a directory paged from start to end); `l`:
   * its listedRows; `source`: the kept listing it came from (ListingCache.page), if any.
   */
  listed(dir: string, after: string | undefined, page: ListPage, l?: ListedRows, source?: object): void {
    this.folded.listed(dir, after, page, l?.keys, source);
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
    this.linkedPaths.delete(path);
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
