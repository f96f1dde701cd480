/**
 * Metadata caches of the S3 backend, all bounded, all invalidated by the backend's own writes:
 *
 * - lookups: key -> what stat() found (a file HEAD, a directory, or "missing": the negative cache),
 *   for `ttlMs` (default 5 s; 0 disables it, so every stat asks S3). Objects changed by other S3
 *   clients are seen at the latest after the TTL.
 * - attrs: key -> the full stat of a file as of (ETag, LastModified). A listing only carries those
 *   two, so it can pick up the user metadata (mode, owner, explicit mtime) of every entry it has
 *   seen before without a HEAD per entry; the pair changes on any rewrite or metadata change, so
 *   a hit is never stale. Not subject to the TTL.
 * - pages: directory pages as list() returned them, per directory, for the TTL (a client that
 *   lists a directory again, or pages through it twice, asks S3 once). Any change the backend makes
 *   in a directory drops that directory's pages.
 * - snapshots: a directory's complete sorted listing, used only when names contain characters
 *   whose UTF-8 order differs from JavaScript string order (see listing.ts); TTL-bound.
 * - complete: directories whose whole membership we know as of a moment - one we just created
 *   (mkdir found nothing at or below the name) or one we listed completely - for the TTL from that
 *   moment, with the names they hold plus every name our own writes added or made uncertain since.
 *   A lookup of any other name in such a directory is a miss without a request (a negative entry
 *   for the whole directory): creating many files in a fresh or freshly listed directory (untar,
 *   cp -r, a client that lists before it creates) costs no HEAD + ListObjectsV2 per new name. The
 *   staleness is that of a cached listing page: a name another S3 client adds meanwhile shows after
 *   the TTL (or invalidate()).
 */
import { LRUCache } from 'lru-cache';
import type { BackendStat, ListPage } from '../../src/vfs/backend.ts';
import type { ObjectHead } from './keys.ts';
import type { S3Meters } from './s3-metrics.ts';
import { KeptLru } from '../../src/util/kept-lru.ts';

export type Lookup =
  | { kind: 'file'; head: ObjectHead; stat: BackendStat }
  /** `marker`: a `dir/` marker object exists (else the directory is implied by keys below it). */
  | { kind: 'dir'; marker: ObjectHead | undefined; stat: BackendStat }
  | { kind: 'missing' };

/** The KeptLru placeholder key of the caches a single file's change deletes from. */
const SPARE_KEY = '\0';

interface Timed<T> {
  value: T;
  expires: number;
}

interface Attr {
  etag: string;
  lastModifiedMs: number;
  head: ObjectHead;
  stat: BackendStat;
  /** LastModified is the PUT answer's Date, not the store's own value yet (S3Backend.published). */
  provisional?: boolean;
}

export interface Snapshot {
  entries: BackendStat[];
}

export class MetaCache {
  readonly ttlMs: number;
  private readonly lookups: LRUCache<string, Timed<Lookup>>;
  private readonly attrs: LRUCache<string, Attr>;
  private readonly snapshots: LRUCache<string, Timed<Snapshot>>;
  /** dirKey -> pages by `after` and limit, all expiring with the first. */
  private readonly pages: LRUCache<string, Timed<Map<string, ListPage>>>;
  /** key -> whether keys exist below `key/` (listing.ts asks for directories S3 lists late). */
  private readonly probes: LRUCache<string, Timed<boolean>>;
  /** dirKey -> names that may exist in it; every other name is missing (see above). */
  private readonly complete: LRUCache<string, Timed<Set<string>>>;
  /**
   * dirKey -> names our own writes made possible there, with the change clock of each: a listing
   * raced by our own write is completed with the names touched since it started (setComplete).
   */
  private readonly touched: LRUCache<string, Map<string, number>>;
  /** Highest clock of a touched map evicted (its names are unknown: a raced listing is dropped). */
  private evictedTouch = 0;
  /** dirKeys whose first page was truncated: a miss there does not try to learn the membership. */
  private readonly large: LRUCache<string, number>;
  /** dirKey -> clock of our last change in it (forgetListing), to tell a listing raced by our own write. */
  private readonly changedAt: LRUCache<string, number>;
  private clock = 0;
  /** Highest change clock evicted from changedAt (an absent entry may have been changed up to then). */
  private evictedChange = 0;
  private readonly meters: S3Meters;

  /** The stat of a file object from its head (keys.ts fileStat with the backend's defaults), for corrections. */
  private readonly restat: ((key: string, head: ObjectHead) => BackendStat) | undefined;

  constructor(o: { ttlMs: number; maxEntries?: number; restat?: (key: string, head: ObjectHead) => BackendStat }, meters: S3Meters) {
    this.ttlMs = Math.max(0, o.ttlMs);
    this.restat = o.restat;
    const max = o.maxEntries ?? 100_000;
    // KeptLru: a delete never empties these (lru-cache then resets all `max` slots: ~0.8 ms); the
    // placeholder key is no object key (paths have no NUL) and matches no invalidate() prefix.
    this.lookups = new KeptLru<string, Timed<Lookup>>({ max }, SPARE_KEY, { value: { kind: 'missing' }, expires: 0 });
    this.attrs = new KeptLru<string, Attr>({ max }, SPARE_KEY, Object.freeze({}) as Attr);
    this.snapshots = new LRUCache({ max: 64 });
    this.pages = new LRUCache({ max: 1024 });
    this.probes = new KeptLru<string, Timed<boolean>>({ max: 10_000 }, SPARE_KEY, { value: false, expires: 0 });
    this.complete = new LRUCache({ max: 1024 });
    this.large = new LRUCache({ max: 1024 });
    this.touched = new LRUCache({
      max: 1024,
      dispose: (m, _k, reason) => {
        if (reason === 'set') return;
        for (const c of m.values()) if (c > this.evictedTouch) this.evictedTouch = c;
      },
    });
    this.changedAt = new LRUCache({
      max: 10_000,
      dispose: (v, _k, reason) => {
        if (reason !== 'set' && v > this.evictedChange) this.evictedChange = v;
      },
    });
    this.meters = meters;
  }

  /** A fresh lookup for `key` (the file key; directories are cached under it too). */
  get(key: string): Lookup | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.lookups.get(key);
    if (e === undefined || e.expires <= Date.now()) {
      if (e !== undefined) this.lookups.delete(key);
      this.meters.miss('meta');
      return undefined;
    }
    this.meters.hit('meta');
    return e.value;
  }

  /** `provisional`: a file's LastModified is not the store's own yet (attr() corrects it from a listing). */
  set(key: string, value: Lookup, provisional = false): void {
    if (value.kind === 'file') this.setAttr(key, value.head, value.stat, provisional);
    if (value.kind !== 'missing') this.mayExist(key);
    this.probes.delete(key);
    if (this.ttlMs === 0) return;
    this.lookups.set(key, { value, expires: Date.now() + this.ttlMs });
  }

  setAttr(key: string, head: ObjectHead, stat: BackendStat, provisional = false): void {
    this.attrs.set(key, { etag: head.etag, lastModifiedMs: head.lastModified?.getTime() ?? -1, head, stat, ...(provisional ? { provisional } : {}) });
  }

  /**
   * The full stat of a listed file, when its (ETag, LastModified) pair is one we have seen. A
   * provisional entry (our own PUT, its LastModified taken from the answer's Date) with the listed
   * ETag takes the listed LastModified - the store's own - and so does its cached lookup: the
   * file's mtime and ctime move once, to the store's value, and a listing and a stat agree again.
   */
  attr(key: string, etag: string, lastModified: Date | undefined): BackendStat | undefined {
    const a = this.attrs.get(key);
    if (a === undefined || a.etag !== etag) return undefined;
    if (a.lastModifiedMs === (lastModified?.getTime() ?? -1)) return a.stat;
    if (a.provisional !== true || lastModified === undefined || this.restat === undefined) return undefined;
    const head = { ...a.head, lastModified };
    const stat = this.restat(key, head);
    this.attrs.set(key, { etag, lastModifiedMs: lastModified.getTime(), head, stat });
    const l = this.lookups.peek(key);
    if (l !== undefined && l.value.kind === 'file' && l.value.head.etag === etag) l.value = { kind: 'file', head, stat };
    return stat;
  }

  /** Forget what we know about one key (our own write or delete changed it). */
  forget(key: string): void {
    this.lookups.delete(key);
    this.attrs.delete(key);
    this.probes.delete(key);
    this.mayExist(key);
  }

  /**
   * Records that directory `dirKey` holds exactly `names` now (a complete listing, or [] for a
   * directory just created). Large directories are not recorded (memory).
   */
  setComplete(dirKey: string, names: Iterable<string>, since?: number): void {
    if (this.ttlMs === 0) return;
    const set = new Set(names);
    // Our own write landed in the directory while its membership was being read: the answer may
    // miss it. Add every name we touched there since (a superset is safe: a name in the set is
    // only ever asked for); when those are not known any more, drop the answer.
    if (since !== undefined && this.changedSince(dirKey, since)) {
      if (this.evictedTouch > since) return;
      const t = this.touched.get(dirKey);
      if (t === undefined) return;
      for (const [name, at] of t) if (at >= since) set.add(name);
    }
    if (set.size > COMPLETE_MAX_NAMES) return;
    this.complete.set(dirKey, { value: set, expires: Date.now() + this.ttlMs });
  }

  /** True when `key` is known missing because its directory's membership is known (see above). */
  knownMissing(key: string): boolean {
    if (this.ttlMs === 0) return false;
    const cut = key.lastIndexOf('/', key.length - 2) + 1;
    const e = this.complete.get(key.slice(0, cut));
    if (e === undefined) return false;
    if (e.expires <= Date.now()) {
      this.complete.delete(key.slice(0, cut));
      return false;
    }
    return !e.value.has(key.slice(cut));
  }

  /**
   * Whether a create in `dirKey` should list the directory to learn its membership: the cache is on,
   * the membership is not known already, or known but past half its TTL (refreshed ahead, so a run
   * of creates never finds it expired: each expiry used to cost the next new names a HEAD +
   * ListObjectsV2 each until the new listing came back), and the directory was not found too large
   * for one page within the TTL.
   */
  wantsMembership(dirKey: string): boolean {
    if (this.ttlMs === 0) return false;
    const c = this.complete.get(dirKey);
    if (c !== undefined && c.expires - Date.now() > this.ttlMs / 2) return false;
    const l = this.large.get(dirKey);
    return l === undefined || l <= Date.now();
  }

  /** `dirKey` has more names than one listing page: remembered for the TTL. */
  setLarge(dirKey: string): void {
    if (this.ttlMs > 0) this.large.set(dirKey, Date.now() + this.ttlMs);
  }

  /** A name that may now exist in its directory (our own write; or unknown): never a "known miss". */
  private mayExist(key: string): void {
    if (this.complete.size === 0) return;
    const cut = key.lastIndexOf('/', key.length - 2) + 1;
    const e = this.complete.get(key.slice(0, cut));
    if (e === undefined) return;
    e.value.add(key.slice(cut));
    if (e.value.size > COMPLETE_MAX_NAMES) this.complete.delete(key.slice(0, cut));
  }

  private touch(dirKey: string, name: string): void {
    if (this.ttlMs === 0) return;
    let t = this.touched.get(dirKey);
    if (t === undefined) this.touched.set(dirKey, (t = new Map()));
    t.delete(name);
    t.set(name, this.clock);
    // Bounded: the oldest names go first (a listing that old has finished long since).
    if (t.size > COMPLETE_MAX_NAMES) {
      const [oldest, at] = t.entries().next().value as [string, number];
      t.delete(oldest);
      if (at > this.evictedTouch) this.evictedTouch = at;
    }
  }

  probe(key: string): boolean | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.probes.get(key);
    return e === undefined || e.expires <= Date.now() ? undefined : e.value;
  }

  setProbe(key: string, exists: boolean): void {
    if (exists) this.mayExist(key);
    if (this.ttlMs > 0) this.probes.set(key, { value: exists, expires: Date.now() + this.ttlMs });
  }

  snapshot(dirKey: string): Snapshot | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.snapshots.get(dirKey);
    if (e === undefined || e.expires <= Date.now()) return undefined;
    return e.value;
  }

  /** `since`: the change clock when the listing started (now()); a listing our own write raced is not kept. */
  setSnapshot(dirKey: string, s: Snapshot, since?: number): void {
    if (this.ttlMs === 0 || (since !== undefined && this.changedSince(dirKey, since))) return;
    this.snapshots.set(dirKey, { value: s, expires: Date.now() + this.ttlMs });
  }

  page(dirKey: string, after: string | undefined, limit: number): ListPage | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.pages.get(dirKey);
    if (e === undefined || e.expires <= Date.now()) return undefined;
    const p = e.value.get(`${limit}\u0000${after ?? ''}`);
    return p === undefined ? undefined : copyPage(p);
  }

  /**
   * `since`: the change clock when the listing started (now()). A page our own write raced (an
   * upload that landed while it was listed: async write-back uploads land in the background) may
   * miss that name; it is not kept (it was: the name then vanished from listings for the TTL).
   */
  setPage(dirKey: string, after: string | undefined, limit: number, page: ListPage, since?: number): void {
    if (this.ttlMs === 0 || (since !== undefined && this.changedSince(dirKey, since))) return;
    let e = this.pages.get(dirKey);
    if (e === undefined || e.expires <= Date.now()) this.pages.set(dirKey, (e = { value: new Map(), expires: Date.now() + this.ttlMs }));
    // Bounded: a directory paged with ever new `after` values keeps at most this many pages.
    if (e.value.size >= 256) e.value.clear();
    e.value.set(`${limit}\u0000${after ?? ''}`, copyPage(page));
  }

  /** A directory's membership (or an entry's stat) changed; `name`: the entry our write touched. */
  forgetListing(dirKey: string, name?: string): void {
    this.snapshots.delete(dirKey);
    this.pages.delete(dirKey);
    this.changedAt.set(dirKey, ++this.clock);
    if (name !== undefined) this.touch(dirKey, name);
  }

  /** The change clock now: pass it to setComplete() to ignore a membership raced by our own change. */
  now(): number {
    return this.clock;
  }

  private changedSince(dirKey: string, since: number): boolean {
    const at = this.changedAt.get(dirKey);
    return at === undefined ? this.evictedChange > since : at > since;
  }

  /** Drops everything cached for keys starting with `prefix` ('' = everything). */
  invalidate(prefix: string): number {
    let n = 0;
    // Directory memberships answer for names below them: drop those at or above the prefix too.
    for (const k of [...this.large.keys()]) if (k.startsWith(prefix) || prefix.startsWith(k)) this.large.delete(k);
    for (const k of [...this.complete.keys()]) {
      if (k.startsWith(prefix) || prefix.startsWith(k)) {
        this.complete.delete(k);
        n++;
      }
    }
    for (const cache of [this.lookups, this.attrs, this.snapshots, this.probes, this.pages] as LRUCache<string, object>[]) {
      if (prefix === '') {
        n += cache.size;
        cache.clear();
        continue;
      }
      for (const k of [...cache.keys()]) {
        if (k.startsWith(prefix)) {
          cache.delete(k);
          n++;
        }
      }
    }
    return n;
  }
}

/** Directories with more names than this are not recorded as complete (memory). */
const COMPLETE_MAX_NAMES = 10_000;

function copyPage(p: ListPage): ListPage {
  const out: ListPage = { entries: p.entries.map((e) => ({ ...e })) };
  if (p.next !== undefined) out.next = p.next;
  return out;
}
