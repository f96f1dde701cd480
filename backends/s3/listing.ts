/**
 * Directory pages from ListObjectsV2 (delimiter '/'), in the order the backend contract asks for:
 * names sorted by JavaScript string order, resumable after any name.
 *
 * S3 lists keys in UTF-8 byte order, which differs from the contract's order in two ways:
 *
 * 1. A directory is the common prefix `D/`, which S3 sorts after the names `D` + c for every c
 *    below '/' ("D-1", "D.txt", "D 2"), while by name `D` sorts before them. Such a `D/` can only
 *    be missing from a page if S3 stopped (truncated) inside the run of names starting with `D`,
 *    i.e. if D is a prefix of the page's last name followed by a character below '/'. For those few
 *    candidates (usually one: "name.ext" -> "name") a ListObjectsV2 with prefix `D/` and MaxKeys=1
 *    (cached for the metadata TTL) tells whether the directory exists, and it is added to the
 *    page. Names not above `after` are dropped, so the later S3 entry of the same directory is not
 *    returned twice.
 * 2. Code points U+E000..U+FFFF sort before U+10000.. in UTF-8 but after them in UTF-16. When a
 *    name or `after` contains any code unit >= U+D800, pages are served from a complete, sorted
 *    snapshot of the directory (cached for the metadata TTL) instead. Without such names, UTF-8
 *    order and UTF-16 order agree, and StartAfter = `after` selects exactly the later names.
 *
 * Entries get the full stat of a file when the metadata cache knows its (ETag, LastModified) pair
 * (or, with listMetadata 'head', after a HEAD of each unknown file); else the listing's own data
 * with default mode and owner.
 */
import type { BackendStat, ListPage } from '../../src/vfs/backend.ts';
import { dirStat, fileStat, hasOrderHazard, type MetaDefaults } from './keys.ts';
import type { Lookup, MetaCache } from './meta-cache.ts';
import type { S3Transport } from './transport.ts';

export interface ListHost {
  transport: S3Transport;
  meta: MetaCache;
  defaults: MetaDefaults;
  baseNs: bigint;
  /** 'listing': listing data only; 'head': HEAD files whose metadata is not cached. */
  listMetadata: 'listing' | 'head';
  /** Full lookup of a child key (used by listMetadata 'head'). */
  headFile(key: string, name: string): Promise<Lookup>;
  /** Whether directory `name` of `dirKey` exists (cached). */
  probeDir(dirKey: string, name: string, path: string): Promise<boolean>;
}

const HEAD_CONCURRENCY = 16;

class Collector {
  readonly entries = new Map<string, BackendStat>();
  private readonly host: ListHost;
  private readonly dirKey: string;
  private readonly after: string | undefined;
  /** Files whose full metadata must be fetched (listMetadata 'head'). */
  readonly unknown: { key: string; name: string }[] = [];

  constructor(host: ListHost, dirKey: string, after: string | undefined) {
    this.host = host;
    this.dirKey = dirKey;
    this.after = after;
  }

  private wanted(name: string): boolean {
    return name !== '' && name !== '.' && name !== '..' && (this.after === undefined || name > this.after);
  }

  file(k: { key: string; size: number; etag: string; lastModified: Date | undefined }): void {
    const name = k.key.slice(this.dirKey.length);
    if (!this.wanted(name)) return;
    // A file and a directory of one name: the file wins, as in stat().
    const known = this.host.meta.attr(k.key, k.etag, k.lastModified);
    if (known !== undefined) {
      this.entries.set(name, { ...known, name });
      return;
    }
    this.entries.set(name, fileStat(name, { size: k.size, etag: k.etag, lastModified: k.lastModified, meta: {} }, this.host.defaults, this.host.baseNs));
    if (this.host.listMetadata === 'head') this.unknown.push({ key: k.key, name });
  }

  dir(name: string): void {
    if (!this.wanted(name) || this.entries.get(name)?.type === 'file') return;
    const l = this.host.meta.get(this.dirKey + name);
    this.entries.set(name, l?.kind === 'dir' ? { ...l.stat, name } : dirStat(name, undefined, this.host.defaults, this.host.baseNs));
  }

  async fill(): Promise<void> {
    const todo = this.unknown.splice(0);
    const worker = async (): Promise<void> => {
      for (let t = todo.pop(); t !== undefined; t = todo.pop()) {
        const l = await this.host.headFile(t.key, t.name);
        if (l.kind === 'file') this.entries.set(t.name, { ...l.stat, name: t.name });
      }
    };
    await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, todo.length) }, worker));
  }
}

function sorted(m: Map<string, BackendStat>): BackendStat[] {
  return [...m.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Thrown inside a page walk when a name needs the snapshot path. */
class OrderHazard extends Error {}

export async function listPage(host: ListHost, dirKey: string, after: string | undefined, limit: number, path: string): Promise<ListPage> {
  limit = Math.max(1, Math.floor(limit));
  if (after !== undefined && hasOrderHazard(after)) return fromSnapshot(host, dirKey, after, limit, path);
  try {
    return await fastPage(host, dirKey, after, limit, path);
  } catch (e) {
    if (e instanceof OrderHazard) return fromSnapshot(host, dirKey, after, limit, path);
    throw e;
  }
}

async function fastPage(host: ListHost, dirKey: string, after: string | undefined, limit: number, path: string): Promise<ListPage> {
  const c = new Collector(host, dirKey, after);
  let token: string | undefined;
  let lastKey = '';
  let truncated = false;
  for (let first = true; ; first = false) {
    const r = await host.transport.list(dirKey, {
      delimiter: '/',
      startAfter: first && after !== undefined ? dirKey + after : undefined,
      token,
      maxKeys: Math.min(1000, limit + 1),
    }, path);
    for (const k of r.keys) {
      if (k.key === dirKey) continue;
      if (hasOrderHazard(k.key.slice(dirKey.length))) throw new OrderHazard();
      c.file(k);
      if (k.key > lastKey) lastKey = k.key;
    }
    for (const p of r.prefixes) {
      if (hasOrderHazard(p.slice(dirKey.length))) throw new OrderHazard();
      c.dir(p.slice(dirKey.length, -1));
      if (p > lastKey) lastKey = p;
    }
    truncated = r.truncated && r.token !== undefined;
    token = r.token;
    if (!truncated || c.entries.size >= limit) break;
  }
  if (truncated) await addHiddenDirs(host, c, dirKey, lastKey.slice(dirKey.length), after, path);
  await c.fill();
  const all = sorted(c.entries);
  const entries = all.slice(0, limit);
  const page: ListPage = { entries };
  if ((truncated || all.length > limit) && entries.length > 0) page.next = (entries.at(-1) as BackendStat).name;
  return page;
}

/** Directories that S3 would list after the page but that sort inside it by name (see above). */
async function addHiddenDirs(host: ListHost, c: Collector, dirKey: string, lastName: string, after: string | undefined, path: string): Promise<void> {
  const probes: Promise<void>[] = [];
  for (let i = 1; i < lastName.length; i++) {
    if (lastName.charCodeAt(i) >= 0x2f) continue;
    const d = lastName.slice(0, i);
    if (c.entries.has(d) || (after !== undefined && !(d > after))) continue;
    probes.push(host.probeDir(dirKey, d, path).then((exists) => {
      if (exists) c.dir(d);
    }));
  }
  await Promise.all(probes);
}

async function fromSnapshot(host: ListHost, dirKey: string, after: string | undefined, limit: number, path: string): Promise<ListPage> {
  let snap = host.meta.snapshot(dirKey);
  if (snap === undefined) {
    const since = host.meta.now();
    const c = new Collector(host, dirKey, undefined);
    let token: string | undefined;
    for (;;) {
      const r = await host.transport.list(dirKey, { delimiter: '/', token, maxKeys: 1000 }, path);
      for (const k of r.keys) if (k.key !== dirKey) c.file(k);
      for (const p of r.prefixes) c.dir(p.slice(dirKey.length, -1));
      if (!r.truncated || r.token === undefined) break;
      token = r.token;
    }
    await c.fill();
    snap = { entries: sorted(c.entries) };
    host.meta.setSnapshot(dirKey, snap, since);
  }
  const all = snap.entries;
  // First index with name > after (binary search on the sorted snapshot).
  let lo = 0;
  let hi = all.length;
  while (after !== undefined && lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((all[mid] as BackendStat).name <= after) lo = mid + 1;
    else hi = mid;
  }
  const entries = all.slice(lo, lo + limit).map((e) => ({ ...e }));
  const page: ListPage = { entries };
  if (lo + limit < all.length && entries.length > 0) page.next = (entries.at(-1) as BackendStat).name;
  return page;
}
