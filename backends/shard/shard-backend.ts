/**
 * The shard backend: serves a shard set (docs/shard-format.md) as a read-only share.
 *
 *   shard+file:///abs/dir      a set in a local directory
 *   shard+s3://bucket/prefix   a set under an S3 prefix, read through the S3 backend's transport and
 *                              block cache (store-s3.ts): a small file's read is one ranged GET of
 *                              the 128 KiB page holding its payload, then served from the cache
 *
 * Options (a share's `options`, config/portico.example.yaml): indexCacheBytes, dataCacheBytes,
 * catalogCheckMs (set-reader.ts), and for S3 sets every S3 backend option (endpoint, credentials,
 * memoryCacheBytes, diskCacheBytes, randomReadSize, ...; backends/s3/config.ts).
 *
 * Read-only as data: `capabilities.readOnly`, which makes the gateway serve the share read-only
 * (the ACL then refuses writes with EROFS in every protocol); every mutating method here refuses
 * with EROFS too, naming the set, in case anything reaches it.
 *
 * Identity: `nativeId` is the content's (CRC, length, mtime), not its place in a shard, so a
 * repack that moves a file keeps its version; Portico's file ids are by path and survive
 * restarts and repacks as for any backend.
 */
import type {
  Backend, BackendCapabilities, BackendFile, BackendStat, BackendWriter, ListOptions, ListPage, OpenFileOptions, SetMetadata, StatFs,
} from '../../src/vfs/backend.ts';
import type { Metrics } from '../../src/metrics/metrics.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import { baseName, parentPath } from '../../src/vfs/path.ts';
import { registerShardReader } from './metrics.ts';
import { ShardSetReader, type Located, type SetReaderOptions } from './set-reader.ts';
import { openShardStore, type ShardStore } from './store.ts';

export const SHARD_CAPABILITIES: BackendCapabilities = {
  atomicRename: false,
  serverSideCopy: false,
  randomWrites: false,
  emptyDirectories: true,
  caseSensitive: true,
  timestampPrecisionNs: 1,
  hardLinks: false,
  symlinks: false,
  sparseFiles: false,
  posixMetadata: true,
  birthTime: false,
  maxFileSize: 2 ** 48,
  maxNameBytes: 255,
  readOnly: true,
};

/** Options the shard backend reads itself; the rest go to the S3 backend of an S3 set. */
const OWN_KEYS = ['indexCacheBytes', 'dataCacheBytes', 'catalogCheckMs'] as const;

interface Logger {
  error(obj: object, msg: string): void;
}

function num(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new VfsError('EINVAL', `shard backend option ${name} must be a whole number >= 0`);
  return v;
}

export class ShardBackend implements Backend {
  readonly kind = 'shard';
  readonly capabilities = SHARD_CAPABILITIES;
  readonly reader: ShardSetReader;
  readonly store: ShardStore;
  private readonly baseNs = BigInt(Math.floor(Date.now() / 1000)) * 1_000_000_000n;

  constructor(store: ShardStore, o: SetReaderOptions = {}) {
    this.store = store;
    this.reader = new ShardSetReader(store, o);
  }

  static async open(source: string, options: Record<string, unknown> = {}): Promise<ShardBackend> {
    const own: SetReaderOptions = {};
    const rest: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(options)) if (!(OWN_KEYS as readonly string[]).includes(k)) rest[k] = v;
    const ic = num('indexCacheBytes', options.indexCacheBytes);
    const dc = num('dataCacheBytes', options.dataCacheBytes);
    const cc = num('catalogCheckMs', options.catalogCheckMs);
    if (ic !== undefined) own.indexCacheBytes = ic;
    if (dc !== undefined) own.dataCacheBytes = dc;
    if (cc !== undefined) own.catalogCheckMs = cc;
    const logger = rest.logger as Logger | undefined;
    if (logger !== undefined && typeof logger.error === 'function') {
      own.onCorruption = (info) => logger.error({ ...info, source }, 'shard set integrity failure: answered EIO');
    }
    const loc = source.replace(/^shard\+/i, '');
    // A bare path after shard+ would be taken for a relative directory by the config loader.
    if (!/^(file|s3):/i.test(loc)) throw new VfsError('EINVAL', `shard set source '${source}' must be shard+file:///absolute/dir or shard+s3://bucket/prefix`);
    const isS3 = /^s3:\/\//i.test(loc);
    // The gateway hands every backend its S3 extras (state directory, metrics, logger): an S3 set
    // uses them for its disk block tier and metrics; a local set has no use for them.
    const store = await openShardStore(loc, isS3 ? { ...rest, ...(rest.stateDir === undefined ? {} : { stateDir: rest.stateDir }) } : {});
    const backend = new ShardBackend(store, own);
    // The gateway's metrics (the share's name as `backend`): reads, integrity failures, index cache.
    const metrics = rest.metrics as Metrics | undefined;
    if (metrics?.registry !== undefined) {
      backend.unregister = registerShardReader(metrics.registry, typeof rest.metricsLabel === 'string' ? rest.metricsLabel : source, backend.reader);
    }
    return backend;
  }

  /** Removes the reader from the gateway's metrics (close). */
  private unregister: (() => void) | undefined;

  private refuse(path: string): never {
    throw new VfsError('EROFS', `the share is a read-only shard set (${this.store.label}); change it with portico shard pack`, { path });
  }

  private toStat(path: string, l: Located): BackendStat {
    const e = l.entry;
    return {
      name: baseName(path),
      type: e.type,
      size: e.type === 'file' ? e.length : 0,
      mtimeNs: e.mtimeNs,
      ctimeNs: e.mtimeNs,
      atimeNs: e.mtimeNs,
      mode: e.mode,
      nlink: 1,
      ...(e.type === 'file' ? { nativeId: `${e.crc.toString(16)}-${e.length}-${e.mtimeNs}` } : {}),
    };
  }

  private rootStat(): BackendStat {
    return { name: '', type: 'dir', size: 0, mtimeNs: this.baseNs, ctimeNs: this.baseNs, atimeNs: this.baseNs, mode: 0o755, nlink: 1 };
  }

  /** ENOTDIR when the nearest existing ancestor is a file, else ENOENT. */
  private async missing(path: string): Promise<never> {
    for (let p = parentPath(path); p !== '/'; p = parentPath(p)) {
      const l = await this.reader.lookup(p);
      if (l === undefined) continue;
      if (l.entry.type === 'file') throw new VfsError('ENOTDIR', undefined, { path });
      break;
    }
    throw new VfsError('ENOENT', undefined, { path });
  }

  async stat(path: string): Promise<BackendStat> {
    if (path === '/') {
      await this.reader.refresh();
      return this.rootStat();
    }
    const l = await this.reader.lookup(path);
    if (l === undefined) return this.missing(path);
    return this.toStat(path, l);
  }

  async list(path: string, options: ListOptions): Promise<ListPage> {
    if (path !== '/') {
      const st = await this.stat(path);
      if (st.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    }
    const kids = await this.reader.children(path);
    let lo = 0;
    if (options.after !== undefined) {
      const after = options.after;
      let hi = kids.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((kids[mid] as { name: string }).name <= after) lo = mid + 1;
        else hi = mid;
      }
    }
    const limit = Math.max(1, options.limit);
    const slice = kids.slice(lo, lo + limit);
    const base = path === '/' ? '' : path;
    const entries: BackendStat[] = [];
    for (const c of slice) {
      const p = `${base}/${c.name}`;
      const l = c.located ?? (await this.reader.lookup(p));
      entries.push(l !== undefined ? this.toStat(p, l) : { ...this.rootStat(), name: c.name });
    }
    const page: ListPage = { entries };
    if (lo + limit < kids.length && slice.length > 0) page.next = (slice[slice.length - 1] as { name: string }).name;
    return page;
  }

  private async file(path: string): Promise<Located> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const l = await this.reader.lookup(path);
    if (l === undefined) return this.missing(path);
    if (l.entry.type !== 'file') throw new VfsError('EISDIR', undefined, { path });
    return l;
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    return this.reader.read(await this.file(path), offset, length);
  }

  async openFile(path: string, options: OpenFileOptions): Promise<BackendFile> {
    if (options.write || options.truncate === true) this.refuse(path);
    const l = await this.file(path);
    const st = this.toStat(path, l);
    return {
      read: (offset, length) => this.reader.read(l, offset, length),
      write: async () => this.refuse(path),
      truncate: async () => this.refuse(path),
      sync: async () => undefined,
      stat: async () => st,
      close: async () => undefined,
    };
  }

  async createWriter(path: string): Promise<BackendWriter> {
    return this.refuse(path);
  }

  async mkdir(path: string): Promise<BackendStat> {
    return this.refuse(path);
  }

  async rmdir(path: string): Promise<void> {
    this.refuse(path);
  }

  async unlink(path: string): Promise<void> {
    this.refuse(path);
  }

  async setMetadata(path: string, _meta: SetMetadata): Promise<BackendStat> {
    return this.refuse(path);
  }

  async truncate(path: string, _size?: number): Promise<void> {
    this.refuse(path);
  }

  async statfs(): Promise<StatFs> {
    await this.reader.refresh();
    const { files, bytes } = this.reader.totals();
    return { totalBytes: bytes, freeBytes: 0, availableBytes: 0, totalFiles: files, freeFiles: 0, blockSize: 128 * 1024 };
  }

  /** `portico cache refresh`: the catalog is checked again at the next operation. */
  invalidate(): void {
    this.reader.expire();
  }

  async check(): Promise<void> {
    await this.reader.refresh(true);
  }

  async close(): Promise<void> {
    this.unregister?.();
    this.unregister = undefined;
    await this.store.close();
  }
}
