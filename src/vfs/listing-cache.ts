/**
 * Whole directory listings kept for a short time, so that a client paging through a large
 * directory again (an NFS READDIR pass, a WebDAV PROPFIND Depth 1) costs no backend stat per entry
 * (docs/ARCHITECTURE.md "Cost per operation", listing cache).
 *
 * A listing is kept only when it was paged from its first name to its last without a change in
 * between, and it is served only while all of these hold:
 * - the directory's fresh stat (every readdir stats the directory anyway) shows the signature the
 *   listing was built under (mtime, ctime, size, native id): a name added or removed outside
 *   Portico changes the directory's mtime and ctime. A directory changed within RACY_MS (or the
 *   backend's capabilities.directoryTimeGranularityMs) of the build is not kept (a change in the same clock tick would leave the times as they were), and
 *   backends without directory times (object stores) keep none;
 * - no change through Portico touched the directory or a member since the build (Vfs.emit drops
 *   the listing of the changed name's directory, and a directory rename or removal drops them
 *   all; a change while a listing was being built keeps it from being stored: the drop ends the
 *   build, and its next page starts none). A change in another directory does not: a drop used
 *   to void every build in progress (a global epoch), so under writes anywhere in the gateway a
 *   large directory's listing was never kept and each of its passes stat'ed every entry again.
 * - a pass (its first page) starts at most `ttlMs` (the attribute cache's TTL) after the listing
 *   was complete, and its later pages come within PASS_MS: a member's attributes changed outside
 *   Portico (an outside write, chmod: no directory time moves) show in a pass that starts ttlMs
 *   after the last one built ended, and at once where a change watch reports them
 *   (Vfs.noticeOutside drops the listing).
 * A listing holding a file with several names (hard links) is not kept: a change through another
 * name, in another directory, would not drop it.
 * Bounded: at most MAX_ENTRIES entries over all listings (least recently used go first), at most
 * MAX_LISTING in one.
 */
import { LRUCache } from 'lru-cache';
import type { BackendStat, ListPage } from './backend.ts';

/** A directory changed this recently when its listing was built is not kept (unless the backend says its times are finer). */
const RACY_MS = 2000;
const MAX_ENTRIES = 200_000;
const MAX_LISTING = 100_000;
/** How long after its first page a pass may go on taking pages from the listing it started on. */
const PASS_MS = 30_000;

interface Listing {
  sig: string;
  /** When the listing was complete (performance.now()). */
  at: number;
  entries: BackendStat[];
}

interface Building {
  sig: string;
  entries: BackendStat[];
  /** The `after` the next page must be asked with to continue this build. */
  next: string;
}

function signature(st: BackendStat): string {
  return `${st.mtimeNs}:${st.ctimeNs}:${st.size}:${st.nativeId ?? ''}`;
}

/** Index of the entry named `name` in entries sorted by name, or -1. */
function indexOf(entries: readonly BackendStat[], name: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.name < name) lo = mid + 1;
    else hi = mid;
  }
  return lo < entries.length && entries[lo]!.name === name ? lo : -1;
}

export class ListingCache {
  readonly ttlMs: number;
  private readonly done: LRUCache<string, Listing>;
  /** Builds in progress by directory: a drop of the directory deletes its build (it may hold a stale member). */
  private readonly building = new Map<string, Building>();
  /** Drops so far; per directory, the count at its last drop (bounded: see drop); below `floor`, every directory's. */
  private drops = 0;
  private readonly lastDrop = new Map<string, number>();
  private floor = 0;

  constructor(ttlMs: number) {
    this.ttlMs = ttlMs;
    this.done = new LRUCache({ maxSize: MAX_ENTRIES, sizeCalculation: (l) => Math.max(1, l.entries.length) });
  }

  /**
   * A page of `dir` from a kept listing valid for `dirStat`, or undefined (ask the backend).
   * `source` names the kept listing the page came from (the same object for every page of it, a
   * new one once it is built again): pages with one source hold the same names as before.
   */
  page(dir: string, dirStat: BackendStat, after: string | undefined, limit: number): (ListPage & { source: object }) | undefined {
    if (this.ttlMs <= 0) return undefined;
    const l = this.done.get(dir);
    if (l === undefined) return undefined;
    // A pass (its first page) starts from a listing at most ttlMs old; its later pages come from
    // the same listing while the pass goes on (a 10,000-entry pass takes ~0.2-3 s on a busy host).
    const age = performance.now() - l.at;
    if (age > (after === undefined ? this.ttlMs : this.ttlMs + PASS_MS) || l.sig !== signature(dirStat)) {
      this.done.delete(dir);
      return undefined;
    }
    const e = l.entries;
    let start = 0;
    if (after !== undefined) {
      let lo = 0;
      let hi = e.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (e[mid]!.name <= after) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    const entries = e.slice(start, start + limit);
    const out: ListPage & { source: object } = { entries, source: l };
    if (start + limit < e.length && entries.length > 0) out.next = entries[entries.length - 1]!.name;
    return out;
  }

  /**
   * Taken before asking the backend for a page, and given to listed(): a drop of the directory
   * while the page was being listed keeps that page out of any build. (The drop deletes a build
   * in progress, but a build starts only once its first page is back, after the drop: that first
   * page, listed before the change, would have entered the listing.)
   */
  mark(): number {
    return this.drops;
  }

  /** A page the backend listed (`mark`: mark() before the backend was asked): continues (or starts) the build of the directory's listing. */
  listed(dir: string, dirStat: BackendStat, after: string | undefined, page: ListPage, changeable: boolean, racyMs = RACY_MS, mark?: number): void {
    if (this.ttlMs <= 0 || !changeable) return;
    if (mark !== undefined && (mark < this.floor || (this.lastDrop.get(dir) ?? -1) > mark)) {
      this.building.delete(dir);
      return;
    }
    const sig = signature(dirStat);
    let b = this.building.get(dir);
    if (after === undefined) {
      const changed = Number((dirStat.mtimeNs > dirStat.ctimeNs ? dirStat.mtimeNs : dirStat.ctimeNs) / 1_000_000n);
      if (Date.now() - changed < racyMs) {
        this.building.delete(dir);
        return;
      }
      if (this.building.size >= 1000) this.building.clear();
      b = { sig, entries: [], next: '' };
      this.building.set(dir, b);
    } else {
      // A client resumes from the last entry its reply had room for, which may lie inside the page
      // the backend gave (an NFS READDIR packs what fits): the build continues from that entry.
      const at = b === undefined || b.sig !== sig ? -1 : b.next === after ? b.entries.length : indexOf(b.entries, after) + 1;
      if (b === undefined || at <= 0) {
        this.building.delete(dir);
        return;
      }
      b.entries.length = at;
    }
    let linked = false;
    for (const x of page.entries) {
      // A file with several names (hard links) can change through a name in another directory,
      // whose change drops only that directory's listing: such a listing is not kept.
      if (x.type !== 'dir' && x.nlink !== undefined && x.nlink > 1) linked = true;
      b.entries.push(x);
    }
    if (linked || b.entries.length > MAX_LISTING) {
      this.building.delete(dir);
      return;
    }
    if (page.next !== undefined) {
      b.next = page.next;
      return;
    }
    this.building.delete(dir);
    this.done.set(dir, { sig: b.sig, at: performance.now(), entries: b.entries });
  }

  /** A change through Portico (or one seen outside) in the directory `dir`. */
  drop(dir: string): void {
    this.noteDrop(dir);
    this.done.delete(dir);
    this.building.delete(dir);
  }

  /**
   * A directory renamed or removed: the listings (and builds) of `dir` and of every directory
   * below it go; the others stay (the listing of its parent is the caller's to drop). Keys are
   * `<volume>\0<path>`: `dir` is one such key.
   */
  dropTree(dir: string): void {
    // Pages of any directory below may be in flight: every one is refused (rare: a directory moved or removed).
    this.floor = ++this.drops;
    const sep = dir.indexOf('\0');
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const below = (k: string): boolean => k === dir || (k.startsWith(prefix) && k.indexOf('\0') === sep);
    for (const k of [...this.done.keys()]) if (below(k)) this.done.delete(k);
    for (const k of [...this.building.keys()]) if (below(k)) this.building.delete(k);
  }

  private noteDrop(dir: string): void {
    this.drops++;
    // Bounded: past 10,000 directories, forget them and refuse every page listed before now.
    if (this.lastDrop.size >= 10_000 && !this.lastDrop.has(dir)) {
      this.lastDrop.clear();
      this.floor = this.drops;
    }
    this.lastDrop.set(dir, this.drops);
  }

  /** A cache refresh: every listing goes. */
  clear(): void {
    this.floor = ++this.drops;
    this.done.clear();
    this.building.clear();
  }
}
