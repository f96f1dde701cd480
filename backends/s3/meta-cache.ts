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
 */
import { LRUCache } from 'lru-cache';
import type { BackendStat, ListPage } from '../../src/vfs/backend.ts';
import type { ObjectHead } from './keys.ts';
import type { S3Meters } from './s3-metrics.ts';

export type Lookup =
  | { kind: 'file'; head: ObjectHead; stat: BackendStat }
  /** `marker`: a `dir/` marker object exists (else the directory is implied by keys below it). */
  | { kind: 'dir'; marker: ObjectHead | undefined; stat: BackendStat }
  | { kind: 'missing' };

interface Timed<T> {
  value: T;
  expires: number;
}

interface Attr {
  etag: string;
  lastModifiedMs: number;
  head: ObjectHead;
  stat: BackendStat;
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
  private readonly meters: S3Meters;

  constructor(o: { ttlMs: number; maxEntries?: number }, meters: S3Meters) {
    this.ttlMs = Math.max(0, o.ttlMs);
    const max = o.maxEntries ?? 100_000;
    this.lookups = new LRUCache({ max });
    this.attrs = new LRUCache({ max });
    this.snapshots = new LRUCache({ max: 64 });
    this.pages = new LRUCache({ max: 1024 });
    this.probes = new LRUCache({ max: 10_000 });
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

  set(key: string, value: Lookup): void {
    if (value.kind === 'file') this.setAttr(key, value.head, value.stat);
    this.probes.delete(key);
    if (this.ttlMs === 0) return;
    this.lookups.set(key, { value, expires: Date.now() + this.ttlMs });
  }

  setAttr(key: string, head: ObjectHead, stat: BackendStat): void {
    this.attrs.set(key, { etag: head.etag, lastModifiedMs: head.lastModified?.getTime() ?? -1, head, stat });
  }

  /** The full stat of a listed file, when its (ETag, LastModified) pair is one we have seen. */
  attr(key: string, etag: string, lastModified: Date | undefined): BackendStat | undefined {
    const a = this.attrs.get(key);
    if (a === undefined || a.etag !== etag || a.lastModifiedMs !== (lastModified?.getTime() ?? -1)) return undefined;
    return a.stat;
  }

  /** Forget what we know about one key (our own write or delete changed it). */
  forget(key: string): void {
    this.lookups.delete(key);
    this.attrs.delete(key);
    this.probes.delete(key);
  }

  probe(key: string): boolean | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.probes.get(key);
    return e === undefined || e.expires <= Date.now() ? undefined : e.value;
  }

  setProbe(key: string, exists: boolean): void {
    if (this.ttlMs > 0) this.probes.set(key, { value: exists, expires: Date.now() + this.ttlMs });
  }

  snapshot(dirKey: string): Snapshot | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.snapshots.get(dirKey);
    if (e === undefined || e.expires <= Date.now()) return undefined;
    return e.value;
  }

  setSnapshot(dirKey: string, s: Snapshot): void {
    if (this.ttlMs === 0) return;
    this.snapshots.set(dirKey, { value: s, expires: Date.now() + this.ttlMs });
  }

  page(dirKey: string, after: string | undefined, limit: number): ListPage | undefined {
    if (this.ttlMs === 0) return undefined;
    const e = this.pages.get(dirKey);
    if (e === undefined || e.expires <= Date.now()) return undefined;
    const p = e.value.get(`${limit}\u0000${after ?? ''}`);
    return p === undefined ? undefined : copyPage(p);
  }

  setPage(dirKey: string, after: string | undefined, limit: number, page: ListPage): void {
    if (this.ttlMs === 0) return;
    let e = this.pages.get(dirKey);
    if (e === undefined || e.expires <= Date.now()) this.pages.set(dirKey, (e = { value: new Map(), expires: Date.now() + this.ttlMs }));
    // Bounded: a directory paged with ever new `after` values keeps at most this many pages.
    if (e.value.size >= 256) e.value.clear();
    e.value.set(`${limit}\u0000${after ?? ''}`, copyPage(page));
  }

  /** A directory's membership (or an entry's stat) changed. */
  forgetListing(dirKey: string): void {
    this.snapshots.delete(dirKey);
    this.pages.delete(dirKey);
  }

  /** Drops everything cached for keys starting with `prefix` ('' = everything). */
  invalidate(prefix: string): number {
    let n = 0;
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

function copyPage(p: ListPage): ListPage {
  const out: ListPage = { entries: p.entries.map((e) => ({ ...e })) };
  if (p.next !== undefined) out.next = p.next;
  return out;
}
