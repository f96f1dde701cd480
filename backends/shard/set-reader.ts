/**
 * Reading a shard set: the catalog (re-checked at most every `catalogCheckMs`), shard indexes
 * (loaded on first use by one tail read, kept in an LRU bounded in bytes, single flight), lookups
 * by path, directory listings merged across shards and generations with tombstones applied, and
 * verified payload reads. The backend (shard-backend.ts), the packer (incremental packs) and
 * `portico shard verify`/`ls` all read through this one class.
 */
import { LRUCache } from 'lru-cache';
import { VfsError } from '../../src/vfs/errors.ts';
import { baseName } from '../../src/vfs/path.ts';
import { ShardRouter, emptyCatalog, parseCatalog, subtreeBounds, type Catalog, type CatalogShard } from './catalog.ts';
import { ShardFormatError, comparePathBytes, type ShardEntry, type ShardIndex } from './format.ts';
import { openShard, readChunkTable, readChunked, readWhole, type RangeSource } from './format-read.ts';
import { ShardReaderStats, type ShardMetricsSource } from './metrics.ts';
import type { ShardStore } from './store.ts';

export interface SetReaderOptions {
  /** Bytes of decoded indexes kept in memory (default 256 MiB). */
  indexCacheBytes?: number;
  /** Bytes of decoded small files kept for repeated reads of one file (default 32 MiB). */
  dataCacheBytes?: number;
  /** How often the catalog is checked for a new version, in ms (default 5000; 0 = before every operation). */
  catalogCheckMs?: number;
  /** Called with every integrity failure (a log line); the caller gets EIO. */
  onCorruption?: (info: { shard: string; path?: string; message: string }) => void;
}

/** A visible entry and where it lives. */
export interface Located {
  shard: CatalogShard;
  entry: ShardEntry;
}

export interface Child {
  name: string;
  /** Undefined for a directory implied by deeper paths only (its own entry is in another generation). */
  located?: Located;
  type: 'file' | 'dir';
}

export class ShardSetReader implements ShardMetricsSource {
  readonly store: ShardStore;
  /** Read, cache and integrity counters (metrics.ts exposes them on a gateway's /metrics). */
  readonly stats = new ShardReaderStats();
  private readonly o: Required<Omit<SetReaderOptions, 'onCorruption'>> & Pick<SetReaderOptions, 'onCorruption'>;
  private router: ShardRouter = new ShardRouter(emptyCatalog());
  private version: string | undefined;
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  private loadedOnce = false;
  private readonly indexes: LRUCache<string, ShardIndex>;
  private readonly loading = new Map<string, Promise<ShardIndex>>();
  private readonly listings = new LRUCache<string, Child[]>({ max: 256, maxSize: 4_000_000, sizeCalculation: (v) => Math.max(1, v.length) });
  private readonly data: LRUCache<string, Buffer>;
  private readonly tables = new LRUCache<string, Uint32Array>({ max: 1024 });
  private readonly sources = new Map<string, RangeSource>();

  constructor(store: ShardStore, o: SetReaderOptions = {}) {
    this.store = store;
    this.o = {
      indexCacheBytes: o.indexCacheBytes ?? 256 * 1024 * 1024,
      dataCacheBytes: o.dataCacheBytes ?? 32 * 1024 * 1024,
      catalogCheckMs: o.catalogCheckMs ?? 5000,
      onCorruption: o.onCorruption,
    };
    this.indexes = new LRUCache<string, ShardIndex>({ maxSize: this.o.indexCacheBytes, sizeCalculation: (v) => Math.max(1, v.bytes) });
    this.data = new LRUCache<string, Buffer>({ maxSize: Math.max(1, this.o.dataCacheBytes), sizeCalculation: (v) => Math.max(1, v.length) });
  }

  get catalog(): Catalog {
    return this.router.catalog;
  }

  /** Loads the catalog when it is due for a check and changed. */
  async refresh(force = false): Promise<void> {
    if (!force && this.loadedOnce && performance.now() - this.checkedAt < this.o.catalogCheckMs) return;
    if (this.refreshing !== undefined) return this.refreshing;
    this.refreshing = (async () => {
      try {
        const v = await this.store.catalogVersion();
        if (v !== undefined && v === this.version) return;
        const got = await this.store.readCatalog();
        if (got === undefined) {
          if (!this.loadedOnce) throw new VfsError('ENOENT', `no shard set at ${this.store.label} (no catalog.json)`);
          return;
        }
        let catalog: Catalog;
        try {
          catalog = parseCatalog(got.data);
        } catch (e) {
          this.stats.failure('catalog');
          this.o.onCorruption?.({ shard: 'catalog.json', message: (e as Error).message });
          throw new VfsError('EIO', `${this.store.label}: ${(e as Error).message}`, { cause: e });
        }
        this.router = new ShardRouter(catalog);
        this.stats.catalogLoads++;
        this.version = got.version;
        this.listings.clear();
        this.loadedOnce = true;
      } finally {
        this.checkedAt = performance.now();
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** The catalog is checked again at the next operation. */
  expire(): void {
    this.checkedAt = -Infinity;
  }

  source(shard: CatalogShard): RangeSource {
    let s = this.sources.get(shard.name);
    if (s === undefined || s.size !== shard.size) {
      s = this.store.shardSource(shard);
      this.sources.set(shard.name, s);
    }
    return s;
  }

  private fail(shard: CatalogShard, e: unknown, path?: string): never {
    if (e instanceof ShardFormatError) {
      this.stats.failure(e.part);
      this.o.onCorruption?.({ shard: shard.name, ...(path !== undefined ? { path } : {}), message: e.message });
      throw new VfsError('EIO', `corrupt shard ${shard.name}: ${e.message}`, path !== undefined ? { path, cause: e } : { cause: e });
    }
    throw e;
  }

  /** The decoded index of a shard: cached, one load at a time per shard. */
  index(shard: CatalogShard): Promise<ShardIndex> {
    const have = this.indexes.get(shard.name);
    if (have !== undefined) {
      this.stats.indexHits++;
      return Promise.resolve(have);
    }
    let p = this.loading.get(shard.name);
    if (p === undefined) {
      this.stats.indexLoads++;
      p = (async () => {
        try {
          const { footer, index } = await openShard(this.source(shard));
          if (footer.indexCrc !== shard.indexCrc || index.count !== shard.entries) {
            throw new ShardFormatError('footer', `index checksum ${footer.indexCrc} / ${index.count} entries, the catalog says ${shard.indexCrc} / ${shard.entries}`);
          }
          this.indexes.set(shard.name, index);
          return index;
        } catch (e) {
          return this.fail(shard, e);
        } finally {
          this.loading.delete(shard.name);
        }
      })();
      this.loading.set(shard.name, p);
    }
    return p;
  }

  /** The visible entry at `path`, or undefined. */
  async lookup(path: string): Promise<Located | undefined> {
    await this.refresh();
    const key = Buffer.from(path, 'utf8');
    for (const shard of this.router.route(key)) {
      const idx = await this.index(shard);
      const i = idx.find(key);
      if (i < 0) continue;
      // Newest generation first: a tombstone hiding this entry hides every older one too.
      if (this.router.hidden(path, shard.generation)) return undefined;
      return { shard, entry: idx.entry(i) };
    }
    return undefined;
  }

  /** Direct children of `dir`, sorted by name in JavaScript (UTF-16) order. */
  async children(dir: string): Promise<Child[]> {
    await this.refresh();
    const cached = this.listings.get(dir);
    if (cached !== undefined) return cached;
    const [lo, hi] = subtreeBounds(dir);
    const base = lo.toString('utf8');
    const found = new Map<string, { gen: number; child: Child }>();
    for (const shard of this.router.overlapping(lo, hi)) {
      const idx = await this.index(shard);
      let i = idx.lowerBound(lo);
      while (i < idx.count) {
        const pb = idx.pathBytes(i);
        if (comparePathBytes(pb, hi) >= 0) break;
        const rest = pb.subarray(lo.length);
        const slash = rest.indexOf(0x2f);
        if (slash < 0) {
          const name = rest.toString('utf8');
          const prev = found.get(name);
          if (prev === undefined || prev.gen < shard.generation || prev.child.located === undefined) {
            found.set(name, { gen: shard.generation, child: { name, located: { shard, entry: idx.entry(i) }, type: idx.isDir(i) ? 'dir' : 'file' } });
          }
          i++;
        } else {
          const name = rest.subarray(0, slash).toString('utf8');
          if (!found.has(name)) found.set(name, { gen: shard.generation, child: { name, type: 'dir' } });
          i = idx.lowerBound(Buffer.from(`${base}${name}0`, 'utf8'));
        }
      }
    }
    const out: Child[] = [];
    for (const { gen, child } of found.values()) {
      if (this.router.hidden(`${base}${child.name}`, gen)) continue;
      out.push(child);
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.listings.set(dir, out);
    return out;
  }

  /** Bytes [offset, offset + length) of a file entry (short at its end), verified. */
  async read(l: Located, offset: number, length: number): Promise<Buffer> {
    const e = l.entry;
    const end = Math.min(e.length, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    try {
      if (e.chunked) {
        this.stats.readsChunked++;
        const tk = `${l.shard.name}:${e.offset}`;
        let table = this.tables.get(tk);
        if (table === undefined) this.tables.set(tk, (table = await readChunkTable(this.source(l.shard), e)));
        return await readChunked(this.source(l.shard), e, table, offset, end - offset);
      }
      const whole = await this.readFile(l);
      return whole.subarray(offset, end);
    } catch (err) {
      return this.fail(l.shard, err, e.path);
    }
  }

  /** A whole (non-chunked) file, verified, kept a while for the reads that follow. */
  async readFile(l: Located): Promise<Buffer> {
    const k = `${l.shard.name}:${l.entry.offset}:${l.entry.path}`;
    const have = this.data.get(k);
    if (have !== undefined) {
      this.stats.readsCache++;
      return have;
    }
    this.stats.readsStore++;
    try {
      const b = await readWhole(this.source(l.shard), l.entry);
      if (b.length <= this.o.dataCacheBytes / 8) this.data.set(k, b);
      return b;
    } catch (err) {
      return this.fail(l.shard, err, l.entry.path);
    }
  }

  /** Every visible entry of the set (newest generation of each path, tombstones applied), in no particular order. */
  async *entries(): AsyncGenerator<Located> {
    await this.refresh();
    const seen = new Map<string, number>();
    const shards = [...this.catalog.shards].sort((a, b) => b.generation - a.generation);
    for (const shard of shards) {
      const idx = await this.index(shard);
      for (let i = 0; i < idx.count; i++) {
        const path = idx.path(i);
        const g = seen.get(path);
        if (g !== undefined) continue;
        seen.set(path, shard.generation);
        if (this.router.hidden(path, shard.generation)) continue;
        yield { shard, entry: idx.entry(i) };
      }
    }
  }

  /** Total files and bytes visible (statfs). */
  totals(): { files: number; bytes: number } {
    let files = 0;
    let bytes = 0;
    for (const s of this.catalog.shards) {
      files += s.files;
      bytes += s.bytes;
    }
    return { files, bytes };
  }

  indexCacheBytes(): number {
    return this.indexes.calculatedSize;
  }

  indexCacheLimit(): number {
    return this.o.indexCacheBytes;
  }

  dataCacheBytes(): number {
    return this.data.calculatedSize;
  }

  generation(): number {
    return this.catalog.generation;
  }

  files(): number {
    return this.totals().files;
  }

  nameOf(path: string): string {
    return baseName(path);
  }
}
