/**
 * Folded-name index: per directory, name key (case-folded and NFC, as the share compares names) ->
 * the name as stored on the backend. What lets a case-insensitive share over a case-sensitive
 * backend (and any share over names stored in NFD) answer a lookup whose exact spelling missed
 * without listing the directory again: Windows probes missing names all the time (desktop.ini,
 * thumbs.db, `~$` lock files, every name before a create), and each such miss used to page through
 * the whole directory (Volume.findInDir).
 *
 * - Filled by one full listing of the directory (the first miss there; concurrent misses share it)
 *   and by readdir when a client pages through a directory from its start to its end (`listed`).
 * - Kept current by Portico's own namespace changes (Volume.newRow/removed/moved call added/removed):
 *   a bulk copy into a directory keeps its index instead of rebuilding it per created name.
 * - Outside changes (another program on the disk, another S3 client): an index is used for `ttlMs`
 *   from the end of the listing that built it (so outside changes made while a large directory is
 *   listed can be missed for that long too); change-watch reports (Vfs.noticeOutside) and
 *   `portico cache refresh` drop it at once. The exact-spelling stat still runs first (Volume.resolve),
 *   so a name created outside Portico in the spelling the client asks for is found at once; only a
 *   name created outside in *another* spelling can be missed, for at most `ttlMs`.
 * - When a key has several stored spellings (names differing only in case on a case-sensitive disk),
 *   the first in listing order is the answer, as readdir shows (Vfs.readdir) and as the scan found.
 * - Bounded: at most `maxDirs` directories and `maxEntries` names (LRU); a directory with more than
 *   `maxDirEntries` names is not indexed (remembered for `oversizedMs`): its misses page through it
 *   as before (Volume.findInDir), stopping at the first match; so does a miss while `maxBuilds`
 *   other directories are being listed for their index.
 */
import { LRUCache } from 'lru-cache';
import type { ListPage } from './backend.ts';
import { isSameOrDescendant } from './path.ts';

export const FOLDED_INDEX_DEFAULTS = {
  ttlMs: 2000,
  maxDirs: 1024,
  maxEntries: 400_000,
  maxDirEntries: 100_000,
  oversizedMs: 60_000,
  /**
   * Directories listed at once to build an index; a miss in yet another one pages through it as
   * before. What bounds memory against misses in many large directories at the same time.
   */
  maxBuilds: 8,
};

export type FoldedIndexOptions = Partial<typeof FOLDED_INDEX_DEFAULTS>;

/** One page of a directory listing from `after` (undefined: the start). */
export type ListFn = (dir: string, after: string | undefined) => Promise<ListPage>;

/** What the index knows of a key: the stored name (and whether it is a directory), or that it is missing. */
export interface FoldedEntry {
  name: string;
  dir: boolean;
}

class DirIndex {
  /** key -> first stored name in listing order. */
  readonly names = new Map<string, string>();
  /** Keys whose (first) name is a directory. */
  readonly dirs = new Set<string>();
  /** Keys with more than one stored spelling. */
  readonly multi = new Set<string>();
  /** Set when a change could not be applied to it while it was being built: it is not installed. */
  stale = false;
  /**
   * Ms timestamp its age counts from: the end of the scan that built it (a long listing of a large
   * directory must still be usable), the start of a readdir pass (a client may page slowly).
   */
  at: number;
  readonly dir: string;
  /** The kept listing (ListingCache.page's source) every page of the pass that built it came from. */
  source: object | undefined;
  constructor(at: number, dir: string) {
    this.at = at;
    this.dir = dir;
  }

  add(key: string, name: string, dir: boolean): void {
    const cur = this.names.get(key);
    if (cur === undefined) {
      this.names.set(key, name);
      if (dir) this.dirs.add(key);
      return;
    }
    if (cur === name) {
      if (dir) this.dirs.add(key);
      else this.dirs.delete(key);
      return;
    }
    this.multi.add(key);
    // The first in listing order (JavaScript string order, as backends sort) is the answer.
    if (name < cur) {
      this.names.set(key, name);
      if (dir) this.dirs.add(key);
      else this.dirs.delete(key);
    }
  }

  /** false when the index can no longer tell (a name of a key with several spellings went). */
  remove(key: string, name: string): boolean {
    const cur = this.names.get(key);
    if (cur === undefined) return true;
    if (this.multi.has(key)) return cur !== name;
    if (cur !== name) return true;
    this.names.delete(key);
    this.dirs.delete(key);
    return true;
  }
}

/** A readdir pass from the start of a directory, collecting its pages. */
interface Listing {
  index: DirIndex;
  /** The last name of the last page: the next page must start after it. */
  last: string | undefined;
  /**
   * A pass over the same kept listing as the installed index was built from: `index` is that
   * installed index (Portico's changes reach it as the installed one), not filled again; its age
   * restarts at `start` when the pass ends.
   */
  reuse: boolean;
  start: number;
  source: object | undefined;
}

export class FoldedIndex {
  private readonly o: typeof FOLDED_INDEX_DEFAULTS;
  private readonly key: (name: string) => string;
  private readonly dirs: LRUCache<string, DirIndex>;
  /** Builds in progress (a scan, or a readdir pass), so Portico's changes meanwhile reach them too. */
  private readonly building = new Map<string, Set<DirIndex>>();
  private readonly scans = new Map<string, Promise<DirIndex | undefined>>();
  private readonly listings: LRUCache<string, Listing>;
  private readonly oversized: LRUCache<string, true>;
  /** Counters for tests and benchmarks. */
  readonly stats = { builds: 0, hits: 0, misses: 0, oversized: 0 };

  /** `key`: the share's name key of an NFC name (Volume.key). */
  constructor(key: (name: string) => string, options: FoldedIndexOptions = {}) {
    this.o = { ...FOLDED_INDEX_DEFAULTS, ...options };
    this.key = key;
    this.dirs = new LRUCache({ max: this.o.maxDirs, maxSize: this.o.maxEntries, sizeCalculation: (d) => d.names.size + 1 });
    // Readdir passes in progress: bounded by count and by the names they hold together.
    this.listings = new LRUCache({ max: 64, maxSize: this.o.maxEntries, sizeCalculation: (l) => (l.reuse ? 1 : l.index.names.size + 1), dispose: (l) => this.endBuild(l.index) });
    this.oversized = new LRUCache({ max: 1024, ttl: this.o.oversizedMs });
  }

  private keyOf(name: string): string {
    return this.key(name.normalize('NFC'));
  }

  private fresh(dir: string): DirIndex | undefined {
    const d = this.dirs.get(dir);
    if (d === undefined) return undefined;
    if (Date.now() - d.at > this.o.ttlMs) {
      this.dirs.delete(dir);
      return undefined;
    }
    return d;
  }

  /**
   * From a fresh index only (never lists): the entry of `key` in `dir`, null when the index says it
   * is missing, undefined when there is no fresh index. `single`: only a key with one stored
   * spelling (one that an exact-spelling stat could not contradict).
   */
  peek(dir: string, key: string, single = false): FoldedEntry | null | undefined {
    const d = this.fresh(dir);
    if (d === undefined) return undefined;
    const name = d.names.get(key);
    if (name === undefined) return null;
    if (single && d.multi.has(key)) return undefined;
    return { name, dir: d.dirs.has(key) };
  }

  /**
   * The stored name of `key` in `dir` (null: missing), building the directory's index by listing it
   * when there is no fresh one; undefined when the directory is too large to index (the caller
   * pages through it itself). Listing errors (the directory went away) propagate.
   */
  async lookup(dir: string, key: string, list: ListFn): Promise<string | null | undefined> {
    let hit = this.peek(dir, key);
    if (hit === undefined) {
      if (this.oversized.has(dir)) return undefined;
      let scan = this.scans.get(dir);
      if (scan === undefined) {
        if (this.scans.size >= this.o.maxBuilds) return undefined;
        scan = this.build(dir, list).finally(() => this.scans.delete(dir));
        this.scans.set(dir, scan);
      }
      const built = await scan;
      hit = this.peek(dir, key);
      // Not installed (a newer index won, or it aged already): the listing just made still answers,
      // unless a change it could not follow came meanwhile.
      if (hit === undefined && built !== undefined && !built.stale) {
        const name = built.names.get(key);
        hit = name === undefined ? null : { name, dir: built.dirs.has(key) };
      }
      // Too large, or changed under the listing: the caller pages through the directory.
      if (hit === undefined) return undefined;
    }
    if (hit === null) this.stats.misses++;
    else this.stats.hits++;
    return hit === null ? null : hit.name;
  }

  /** Lists `dir` into a new index and installs it; undefined when too large or changed meanwhile. */
  private async build(dir: string, list: ListFn): Promise<DirIndex | undefined> {
    this.stats.builds++;
    const index = new DirIndex(Date.now(), dir);
    this.startBuild(dir, index);
    try {
      let after: string | undefined;
      for (;;) {
        const page = await list(dir, after);
        if (index.stale) return undefined;
        for (const e of page.entries) index.add(this.keyOf(e.name), e.name, e.type === 'dir');
        if (index.names.size > this.o.maxDirEntries) {
          this.stats.oversized++;
          this.oversized.set(dir, true);
          return undefined;
        }
        if (page.next === undefined || page.entries.length === 0) break;
        after = page.next;
      }
      index.at = Date.now();
      this.install(dir, index);
      return index;
    } finally {
      this.endBuild(index);
    }
  }

  private startBuild(dir: string, index: DirIndex): void {
    let set = this.building.get(dir);
    if (set === undefined) this.building.set(dir, (set = new Set()));
    set.add(index);
  }

  private endBuild(index: DirIndex): void {
    const dir = index.dir;
    const set = this.building.get(dir);
    if (set === undefined) return;
    set.delete(index);
    if (set.size === 0) this.building.delete(dir);
  }

  private install(dir: string, index: DirIndex): void {
    if (index.stale || Date.now() - index.at > this.o.ttlMs) return;
    const cur = this.dirs.get(dir);
    if (cur !== undefined && cur.at > index.at) return;
    this.dirs.set(dir, index);
  }

  /**
   * A page Vfs.readdir listed: a pass from the start of the directory (`after` undefined) that
   * reaches its end with each page starting after the previous one's last name becomes its index.
   * `keys`: the names' keys when the caller has them (index i: the page's ith entry). `source`: the
   * kept listing the page came from (ListingCache.page), if any: a pass over the one the installed
   * index was built from renews that index instead of building the same one again.
   */
  listed(dir: string, after: string | undefined, page: ListPage, keys?: readonly string[], source?: object): void {
    let l: Listing | undefined;
    if (after === undefined) {
      this.listings.delete(dir);
      if (this.oversized.has(dir)) return;
      const now = Date.now();
      // The same kept listing as the installed index was built from (no change through Portico
      // since, or the listing would have been dropped): the pass would build that index again.
      const cur = source === undefined ? undefined : this.dirs.peek(dir);
      if (cur !== undefined && cur.source === source && !cur.stale && now - cur.at <= this.o.ttlMs) {
        l = { index: cur, last: undefined, reuse: true, start: now, source };
      } else {
        const index = new DirIndex(now, dir);
        index.source = source;
        this.startBuild(dir, index);
        l = { index, last: undefined, reuse: false, start: now, source };
      }
      this.listings.set(dir, l);
    } else {
      l = this.listings.get(dir);
      if (l === undefined) return;
      if (l.last !== after || l.index.stale || (l.reuse && source !== l.source)) {
        this.listings.delete(dir);
        return;
      }
      if (source !== l.source) l.index.source = undefined;
    }
    if (!l.reuse) {
      const entries = page.entries;
      const index = l.index;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        index.add(keys?.[i] ?? this.keyOf(e.name), e.name, e.type === 'dir');
      }
      if (index.names.size > this.o.maxDirEntries) {
        this.listings.delete(dir);
        return;
      }
    }
    l.last = page.entries.at(-1)?.name ?? l.last;
    if (page.next === undefined) {
      this.listings.delete(dir);
      if (!l.reuse) this.install(dir, l.index);
      else if (this.dirs.peek(dir) === l.index && Date.now() - l.start <= this.o.ttlMs && l.start >= l.index.at) l.index.at = l.start;
    } else this.listings.set(dir, l); // its size is counted again
  }

  /** `name` was created in `dir` through Portico (or appeared there by a rename). */
  added(dir: string, name: string, isDir: boolean): void {
    const key = this.keyOf(name);
    const d = this.dirs.get(dir);
    if (d !== undefined) {
      d.add(key, name, isDir);
      if (d.names.size > this.o.maxDirEntries) this.dirs.delete(dir);
    }
    for (const b of this.building.get(dir) ?? []) b.add(key, name, isDir);
  }

  /** `name` left `dir` through Portico (deleted, or renamed away). */
  removed(dir: string, name: string): void {
    const key = this.keyOf(name);
    const d = this.dirs.get(dir);
    if (d !== undefined && !d.remove(key, name)) this.dirs.delete(dir);
    for (const b of this.building.get(dir) ?? []) if (!b.remove(key, name)) b.stale = true;
  }

  /** Forgets what is known of one directory (an outside change was reported in it). */
  forget(dir: string): void {
    this.dirs.delete(dir);
    for (const b of this.building.get(dir) ?? []) b.stale = true;
  }

  /** Forgets a directory and everything below it (it was removed, renamed or replaced). */
  forgetTree(dir: string): void {
    for (const k of [...this.dirs.keys()]) if (isSameOrDescendant(k, dir)) this.dirs.delete(k);
    for (const [k, set] of this.building) if (isSameOrDescendant(k, dir)) for (const b of set) b.stale = true;
    for (const k of [...this.oversized.keys()]) if (isSameOrDescendant(k, dir)) this.oversized.delete(k);
  }

  clear(): void {
    this.dirs.clear();
    this.oversized.clear();
    for (const set of this.building.values()) for (const b of set) b.stale = true;
  }

  /** Number of indexed directories (tests). */
  get size(): number {
    return this.dirs.size;
  }
}
