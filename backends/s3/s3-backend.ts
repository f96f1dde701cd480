/**
 * The S3 backend: one object per file at `prefix + path`, directories as `dir/` markers and implied
 * prefixes, POSIX metadata in user metadata (keys.ts), block reads with caches and read-ahead
 * (read-engine.ts), streaming multipart writes (writer.ts), retries and a circuit breaker
 * (transport.ts, retry.ts). Design notes: backends/s3/README.md.
 *
 * Object stores have no random writes and no rename: the VFS stages writes locally and publishes
 * them through createWriter(), and renames by copy() + unlink().
 */
import { readFileSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type {
  Backend, BackendCapabilities, BackendFile, BackendStat, BackendWriter, ContentVersion, FileOwner, ListOptions, ListPage, OpenFileOptions,
  PatchWriter, SetMetadata, StatFs, WriterOptions,
} from '../../src/vfs/backend.ts';
import { VfsError, isVfsError } from '../../src/vfs/errors.ts';
import { baseName, parentPath } from '../../src/vfs/path.ts';
import { DiskTier, MemoryTier } from './block-cache.ts';
import { ORPHAN_UPLOAD_AGE_MS, type S3BackendOptions } from './config.ts';
import { StoreFeatures } from './features.ts';
import {
  KeyMap, dirStat, encodeMeta, fileStat, formatTime, inheritedMeta, type MetaDefaults, type ObjectHead,
} from './keys.ts';
import { listPage, type ListHost } from './listing.ts';
import { MetaCache, type Lookup } from './meta-cache.ts';
import { ReadEngine, ReadState, type ObjectVersion } from './read-engine.ts';
import { S3File } from './s3-file.ts';
import { S3Meters } from './s3-metrics.ts';
import { httpStatusOf } from './retry.ts';
import { EtagChangedError, S3Transport, isNotFound, isPreconditionFailed } from './transport.ts';
import { UploadJournal } from './upload-journal.ts';
import { MAX_PART_BYTES, S3Writer, type PutAnswer, type WriterHost } from './writer.ts';

const MiB = 1024 * 1024;
const TiB = 1024 ** 4;
const DIR_CONTENT_TYPE = 'application/x-directory';

export const S3_CAPABILITIES: BackendCapabilities = {
  atomicRename: false,
  serverSideCopy: true,
  randomWrites: false,
  emptyDirectories: true,
  caseSensitive: true,
  timestampPrecisionNs: 1,
  hardLinks: false,
  symlinks: false,
  sparseFiles: false,
  posixMetadata: true,
  birthTime: true,
  maxFileSize: 5 * TiB,
  maxNameBytes: 1024,
  patchWrites: true,
  constantDirectoryTimes: true,
};

/** The PEM file named by tls.ca / AWS_CA_BUNDLE; a clear EINVAL when it cannot be used. */
function readCaBundle(file: string, source: string | undefined): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new VfsError('EINVAL', `S3 CA bundle ${file} (from ${source ?? 'tls.ca'}) cannot be read: ${(e as Error).message}`, { cause: e });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new VfsError('EINVAL', `S3 CA bundle ${file} (from ${source ?? 'tls.ca'}) holds no PEM certificate`);
  return pem;
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

export class S3Backend implements Backend, WriterHost, ListHost {
  readonly kind = 's3';
  /** S3_CAPABILITIES plus patchMinBytes (two parts: below that, patching saves nothing). */
  readonly capabilities: BackendCapabilities;
  readonly keys: KeyMap;
  readonly transport: S3Transport;
  readonly meters: S3Meters;
  readonly meta: MetaCache;
  readonly memory: MemoryTier;
  readonly disk: DiskTier | undefined;
  readonly engine: ReadEngine;
  readonly defaults: MetaDefaults;
  /** Time reported for directories without an explicit mtime (start-up, whole seconds). */
  readonly baseNs: bigint;
  readonly listMetadata: 'listing' | 'head';
  readonly partSize: number;
  readonly maxConcurrentParts: number;
  readonly memoryPartLimit: number;
  readonly spoolDir: string;
  readonly maxFileSize = S3_CAPABILITIES.maxFileSize;
  /** Largest single server-side copy (CopyObject, or one UploadPartCopy part). */
  readonly copyPartMax: number;
  /**
   * Content identities known to be equal: ETag of a server-side copy or in-place metadata rewrite
   * -> ETag of its source (an S3 copy may get a new ETag for the same bytes, e.g. a multipart copy).
   * Lets a write stage keep its base across a rename or a chmod of the file it patches.
   */
  private readonly sameContent = new LRUCache<string, string>({ max: 10_000 });
  private readonly options: S3BackendOptions;
  private readonly keyLocks = new Map<string, Promise<unknown>>();
  private readonly lookupsInFlight = new Map<string, Promise<Lookup>>();
  /** Directory memberships being listed for a create (learnMembership), by directory key. */
  private readonly learning = new Map<string, Promise<void>>();
  private readonly readStates = new LRUCache<string, ReadState>({ max: 1024 });
  private readonly activeUploads = new Map<string, string>();
  private readonly journal: UploadJournal | undefined;
  /** Metadata of the share root: its marker's (prefix/), or kept in memory for a bucket root. */
  private rootMeta: Record<string, string> = {};
  private rootLoading: Promise<void> | undefined;

  constructor(o: S3BackendOptions) {
    this.options = o;
    this.keys = new KeyMap(o.prefix);
    this.meters = new S3Meters(o.metrics, o.metricsLabel ?? `s3://${o.bucket}/${this.keys.prefix}`);
    this.transport = new S3Transport({
      bucket: o.bucket,
      region: o.region ?? 'us-east-1',
      endpoint: o.endpoint,
      forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined,
      credentials: o.accessKeyId !== undefined && o.secretAccessKey !== undefined
        ? { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey, ...(o.sessionToken !== undefined ? { sessionToken: o.sessionToken } : {}) }
        : undefined,
      ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts } : {}),
      ...(o.retryBaseMs !== undefined ? { retryBaseMs: o.retryBaseMs } : {}),
      ...(o.retryMaxMs !== undefined ? { retryMaxMs: o.retryMaxMs } : {}),
      ...(o.requestTimeoutMs !== undefined ? { requestTimeoutMs: o.requestTimeoutMs } : {}),
      ...(o.minThroughputBytesPerSec !== undefined ? { minThroughputBytesPerSec: o.minThroughputBytesPerSec } : {}),
      ...(o.maxSockets !== undefined ? { maxSockets: o.maxSockets } : {}),
      ...(o.tlsCa !== undefined ? { ca: readCaBundle(o.tlsCa, o.tlsCaSource), caSource: `${o.tlsCa} (${o.tlsCaSource ?? 'tls.ca'})` } : {}),
      features: new StoreFeatures({ label: this.meters.label, metrics: o.metrics, logger: o.logger, disabled: o.disableFeatures }),
      circuit: {
        ...(o.circuitFailureThreshold !== undefined ? { failureThreshold: o.circuitFailureThreshold } : {}),
        ...(o.circuitCooldownMs !== undefined ? { cooldownMs: o.circuitCooldownMs } : {}),
      },
    }, this.meters);
    this.meta = new MetaCache({
      ttlMs: o.metaTtlMs ?? 5000,
      restat: (key, head) => fileStat(key.slice(key.lastIndexOf('/') + 1), head, this.defaults, this.baseNs),
    }, this.meters);
    this.memory = new MemoryTier(o.memoryCacheBytes ?? 32 * MiB, this.meters);
    // The disk tier is on by default where the share has a state directory (the gateway gives each
    // one): files just written are read back from it (write-through, block-cache.ts BlockSink).
    // diskCacheBytes: 0 turns it off.
    const cacheDir = o.cacheDir ?? (o.stateDir !== undefined ? join(o.stateDir, 'blocks') : undefined);
    this.disk = cacheDir === undefined || o.diskCacheBytes === 0 ? undefined : new DiskTier({ dir: cacheDir, maxBytes: o.diskCacheBytes ?? 10 * 1024 * MiB }, this.meters);
    const blockSize = o.blockSize ?? 4 * MiB;
    this.engine = new ReadEngine({
      blockSize,
      ...(o.randomReadSize !== undefined ? { pageSize: o.randomReadSize } : {}),
      ...(o.readAheadRunBytes !== undefined ? { maxRunBytes: o.readAheadRunBytes } : {}),
      maxConcurrent: o.maxConcurrentFetches ?? 16,
      readAheadMaxBytes: o.readAheadMaxBytes ?? 32 * MiB,
    }, this.transport, this.memory, this.disk, this.meters);
    this.defaults = { fileMode: o.defaultFileMode ?? 0o644, dirMode: o.defaultDirMode ?? 0o755, uid: o.defaultUid ?? 0, gid: o.defaultGid ?? 0 };
    this.baseNs = BigInt(Math.floor(Date.now() / 1000)) * 1_000_000_000n;
    this.listMetadata = o.listMetadata ?? 'listing';
    this.partSize = Math.min(MAX_PART_BYTES, Math.max(5 * MiB, o.partSize ?? 8 * MiB));
    this.maxConcurrentParts = Math.max(1, o.maxConcurrentParts ?? 4);
    this.memoryPartLimit = o.memoryPartLimit ?? 64 * MiB;
    this.copyPartMax = Math.min(MAX_PART_BYTES, Math.max(5 * MiB, o.multipartCopyThreshold ?? MAX_PART_BYTES));
    this.capabilities = { ...S3_CAPABILITIES, patchMinBytes: 2 * this.partSize };
    this.spoolDir = o.spoolDir ?? join(tmpdir(), 'portico-s3-spool');
    this.journal = o.stateDir === undefined ? undefined : new UploadJournal(o.stateDir, `${o.bucket}|${this.keys.prefix}`);
  }

  // ------------------------------------------------------------------ lookups

  /** What is at `path`: a file, a directory (marker or implied), or nothing. Cached for the TTL. */
  lookup(path: string, fresh = false, waitLearning = true): Promise<Lookup> {
    if (path === '/') return this.rootLoaded.then(() => this.rootLookup());
    const key = this.keys.fileKey(path);
    if (!fresh) {
      const c = this.meta.get(key);
      if (c !== undefined) return Promise.resolve(c);
      const running = this.lookupsInFlight.get(key);
      if (running !== undefined) return running;
      // A name not in a directory whose whole membership we know (meta-cache.ts): no request.
      if (this.meta.knownMissing(key)) return Promise.resolve({ kind: 'missing' });
      // The directory's membership is being listed (a create there started it): its answer is the
      // answer, so wait for it instead of a HEAD + ListObjectsV2 of our own. Without this, every new
      // name created while a large directory was listed (s3rver: ~1 s for a few hundred keys under
      // load) cost both (issue 16: 5-38 listings per 300 PUTs). Once: a listing that did not teach
      // the membership (failed, too large, raced) leaves us asking the store.
      if (waitLearning) {
        const learning = this.learning.get(key.slice(0, key.lastIndexOf('/', key.length - 2) + 1));
        if (learning !== undefined) return learning.then(() => this.lookup(path, false, false));
      }
    }
    const p = this.fetchLookup(path, key).finally(() => {
      if (this.lookupsInFlight.get(key) === p) this.lookupsInFlight.delete(key);
    });
    this.lookupsInFlight.set(key, p);
    return p;
  }

  /**
   * A read of a path nothing is known about (no cached lookup, none in flight, not a known miss,
   * no membership listing of its directory running): the lookup is a GET of the unit the read
   * engine would fetch first, whose answer's headers tell what a HEAD would (size from
   * Content-Range, ETag, LastModified, metadata), so a small file costs one request instead of
   * HEAD + GET (issue 12: the S3 backend's random small-file reads were 2 requests each). The unit:
   * block 0 for a read at offset 0 (what a new reader's sequential read fetches; a file under a
   * block is then whole), else the random-read page the read lies in; a read that spans pages
   * takes the HEAD path. The bytes go into the caches as the engine's own fetch would put them,
   * under the ETag the answer carries, and the lookup is cached like a HEAD's. A 404 goes on with
   * the directory probe a missing HEAD leads to (no second request for the file key); a 416 (the
   * read starts past the end, or an empty object) falls back to a HEAD.
   *
   * Only reads do this, not stat(): a stat of a large file would fetch a whole block (or page) it
   * may never read. Undefined: take the ordinary lookup.
   */
  private lookupByGet(path: string, offset: number, length: number): Promise<Lookup> | undefined {
    if (path === '/' || length === 0) return undefined;
    const key = this.keys.fileKey(path);
    if (this.meta.get(key) !== undefined || this.lookupsInFlight.has(key) || this.meta.knownMissing(key)) return undefined;
    if (this.learning.has(key.slice(0, key.lastIndexOf('/', key.length - 2) + 1))) return undefined;
    const unit = this.engine.firstUnit(offset, length);
    if (unit === undefined) return undefined;
    const p = (async (): Promise<Lookup> => {
      let got: Awaited<ReturnType<S3Transport['getWithHead']>>;
      try {
        got = await this.transport.getWithHead(key, unit.index * unit.size, (unit.index + 1) * unit.size, path);
      } catch (e) {
        if (httpStatusOf(e) === 416 || httpStatusOf((e as { cause?: unknown }).cause) === 416) return this.fetchLookup(path, key);
        throw e;
      }
      if (got === undefined) return this.fetchLookup(path, key, true);
      const { head, data } = got;
      const l: Lookup = { kind: 'file', head, stat: fileStat(baseName(path), head, this.defaults, this.baseNs) };
      this.engine.observe(key, head.etag);
      this.engine.adopt({ key, etag: head.etag, size: head.size, path }, unit.size, unit.index, data);
      this.meta.set(key, l);
      return l;
    })().finally(() => {
      if (this.lookupsInFlight.get(key) === p) this.lookupsInFlight.delete(key);
    });
    this.lookupsInFlight.set(key, p);
    return p;
  }

  /** `missingFile`: the file key is known not to exist (a GET just answered 404): skip its HEAD. */
  private async fetchLookup(path: string, key: string, missingFile = false): Promise<Lookup> {
    const name = baseName(path);
    const head = missingFile ? undefined : await this.transport.head(key, path);
    let l: Lookup;
    if (head !== undefined) {
      l = { kind: 'file', head, stat: fileStat(name, head, this.defaults, this.baseNs) };
      this.engine.observe(key, head.etag);
    } else {
      const dk = this.keys.dirKey(path);
      // The marker, if any, is the first key under the prefix.
      const r = await this.transport.list(dk, { maxKeys: 1 }, path);
      if (r.keys.length === 0 && r.prefixes.length === 0) l = { kind: 'missing' };
      else {
        const marker = r.keys[0]?.key === dk ? await this.transport.head(dk, path) : undefined;
        l = { kind: 'dir', marker, stat: dirStat(name, marker, this.defaults, this.baseNs) };
      }
    }
    this.meta.set(key, l);
    return l;
  }

  /**
   * Lists the parent of `path` (one page, delimiter '/') when its membership is unknown, and records
   * it when the page is the whole directory (meta-cache.ts `complete`); a directory larger than one
   * page is remembered as such for the TTL, so creates there do not list it again. Best effort,
   * never awaited by a write: a failure leaves things as they were; names our writes touch while
   * the page is in flight are added to it by setComplete() (change clock).
   */
  private learnMembership(path: string): Promise<void> {
    const parent = parentPath(path);
    const pk = this.keys.dirKey(parent);
    // Never while the breaker is not closed: a best-effort listing must not take the half-open
    // probe that the write itself needs.
    if (!this.meta.wantsMembership(pk) || this.transport.breaker.state !== 'closed') return Promise.resolve();
    const running = this.learning.get(pk);
    if (running !== undefined) return running;
    const p = this.listMembership(parent, pk).finally(() => this.learning.delete(pk));
    this.learning.set(pk, p);
    return p;
  }

  private async listMembership(parent: string, pk: string): Promise<void> {
    const since = this.meta.now();
    try {
      const r = await this.transport.list(pk, { delimiter: '/' }, parent);
      if (r.truncated) {
        this.meta.setLarge(pk);
        return;
      }
      const names: string[] = [];
      for (const k of r.keys) {
        if (k.key.length > pk.length) names.push(k.key.slice(pk.length));
        // Our own PUTs' provisional LastModified takes the store's value (MetaCache.attr).
        this.meta.attr(k.key, k.etag, k.lastModified);
      }
      for (const p of r.prefixes) if (p.length > pk.length + 1) names.push(p.slice(pk.length, -1));
      this.meta.setComplete(pk, names, since);
    } catch {
      // Lookups keep asking the store as before; only the shortcut is lost.
    }
  }

  private rootLookup(): Extract<Lookup, { kind: 'dir' }> {
    return { kind: 'dir', marker: undefined, stat: dirStat('', { size: 0, etag: '', lastModified: undefined, meta: this.rootMeta }, this.defaults, this.baseNs) };
  }

  /** The root's marker metadata, read once (a bucket root has none). */
  private get rootLoaded(): Promise<void> {
    if (this.keys.prefix === '') return Promise.resolve();
    this.rootLoading ??= this.transport.head(this.keys.prefix, '/').then((m) => {
      if (m !== undefined) this.rootMeta = m.meta;
    }, (e: unknown) => {
      this.rootLoading = undefined;
      throw e;
    });
    return this.rootLoading;
  }

  /** A HEAD of one listed file (listMetadata 'head'). */
  async headFile(key: string, name: string): Promise<Lookup> {
    const head = await this.transport.head(key);
    if (head === undefined) return { kind: 'missing' };
    const l: Lookup = { kind: 'file', head, stat: fileStat(name, head, this.defaults, this.baseNs) };
    this.meta.set(key, l);
    return l;
  }

  /** ListHost: does directory `name` exist in the directory at `dirKey`? */
  async probeDir(dirKey: string, name: string, path: string): Promise<boolean> {
    const key = dirKey + name;
    const known = this.meta.get(key);
    if (known !== undefined) return known.kind === 'dir';
    const cached = this.meta.probe(key);
    if (cached !== undefined) return cached;
    const r = await this.transport.list(`${key}/`, { maxKeys: 1 }, path);
    const exists = r.keys.length > 0 || r.prefixes.length > 0;
    this.meta.setProbe(key, exists);
    return exists;
  }

  /** ENOENT, or ENOTDIR when an ancestor is a file. */
  private async missing(path: string): Promise<VfsError> {
    for (let p = parentPath(path); p !== '/'; p = parentPath(p)) {
      const l = await this.lookup(p);
      if (l.kind === 'file') return new VfsError('ENOTDIR', undefined, { path });
      if (l.kind === 'dir') break;
    }
    return new VfsError('ENOENT', undefined, { path });
  }

  private async existing(path: string, fresh = false): Promise<Exclude<Lookup, { kind: 'missing' }>> {
    const l = await this.lookup(path, fresh);
    if (l.kind === 'missing') throw await this.missing(path);
    return l;
  }

  /** The parent of `path` must be an existing directory (ENOENT / ENOTDIR otherwise). */
  private async checkParent(path: string): Promise<void> {
    const parent = parentPath(path);
    if (parent === '/') return;
    const l = await this.existing(parent);
    if (l.kind !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
  }

  /** Before removing a child: an implied parent would vanish with its last child, so give it a marker. */
  private async keepParent(path: string): Promise<void> {
    const parent = parentPath(path);
    if (parent === '/') return;
    const l = await this.lookup(parent);
    if (l.kind !== 'dir' || l.marker !== undefined) return;
    const dk = this.keys.dirKey(parent);
    const marker = await this.transport.head(dk, parent);
    if (marker !== undefined) {
      this.meta.set(this.keys.fileKey(parent), { kind: 'dir', marker, stat: dirStat(baseName(parent), marker, this.defaults, this.baseNs) });
      return;
    }
    await this.putMarker(parent, encodeMeta('dir', {}, {}));
  }

  private async putMarker(path: string, meta: Record<string, string>): Promise<BackendStat> {
    const dk = this.keys.dirKey(path);
    const etag = await this.transport.put(dk, Buffer.alloc(0), meta, { contentType: DIR_CONTENT_TYPE, path });
    const marker: ObjectHead = { size: 0, etag, lastModified: new Date(), meta, contentType: DIR_CONTENT_TYPE };
    const stat = dirStat(baseName(path), marker, this.defaults, this.baseNs);
    if (path === '/') this.rootMeta = meta;
    else this.meta.set(this.keys.fileKey(path), { kind: 'dir', marker, stat });
    this.changed(path);
    return stat;
  }

  private changed(path: string): void {
    this.meta.forgetListing(this.keys.dirKey(parentPath(path)), baseName(path));
  }

  // ------------------------------------------------------------------ Backend: reads

  async stat(path: string): Promise<BackendStat> {
    return { ...(await this.existing(path)).stat };
  }

  async list(path: string, options: ListOptions): Promise<ListPage> {
    const l = await this.existing(path);
    if (l.kind !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    const dk = this.keys.dirKey(path);
    const cached = this.meta.page(dk, options.after, options.limit);
    if (cached !== undefined) return cached;
    const since = this.meta.now();
    const page = await listPage(this, dk, options.after, options.limit, path);
    this.meta.setPage(dk, options.after, options.limit, page, since);
    // The whole directory in one page: lookups of other names in it need no request for a while.
    if (options.after === undefined && page.next === undefined) this.meta.setComplete(dk, page.entries.map((e) => e.name), since);
    return page;
  }

  private versionOf(path: string, l: Lookup): ObjectVersion {
    if (l.kind !== 'file') throw new VfsError(l.kind === 'dir' ? 'EISDIR' : 'ENOENT', undefined, { path });
    return { key: this.keys.fileKey(path), etag: l.head.etag, size: l.head.size, path };
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new VfsError('EINVAL', undefined, { path });
    const unknown = this.lookupByGet(path, offset, length);
    let v = this.versionOf(path, unknown !== undefined ? await unknown : await this.existing(path));
    let state = this.readStates.get(v.key);
    if (state === undefined) this.readStates.set(v.key, (state = new ReadState()));
    try {
      return await this.engine.read(v, offset, length, state);
    } catch (e) {
      if (!(e instanceof EtagChangedError) && !isVfsError(e, 'ENOENT')) throw e;
      // Replaced or deleted since our cached lookup: ask S3 again and retry once.
      v = this.versionOf(path, await this.existing(path, true));
      return this.engine.read(v, offset, length, state);
    }
  }

  async openFile(path: string, options: OpenFileOptions): Promise<BackendFile> {
    if (options.write) throw new VfsError('ENOTSUP', 'S3 objects cannot be written in place', { path });
    const l = await this.existing(path);
    const v = this.versionOf(path, l);
    return new S3File({
      engine: this.engine,
      refresh: async (p) => {
        const fresh = await this.lookup(p, true).catch(() => undefined);
        if (fresh?.kind !== 'file') return undefined;
        return { version: this.versionOf(p, fresh), stat: fresh.stat };
      },
    }, path, v, { ...l.stat });
  }

  // ------------------------------------------------------------------ Backend: writes

  async createWriter(path: string, options: WriterOptions = {}): Promise<BackendWriter> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const key = this.keys.fileKey(path);
    await this.checkParent(path);
    const l = await this.lookup(path);
    if (l.kind === 'dir') throw new VfsError('EISDIR', undefined, { path });
    // A new file: learn its directory's membership beside the upload, so the next new names there
    // (a PUT after a PUT, cp -r, an untar) cost no HEAD + ListObjectsV2 each (issue 16: a 4 KiB
    // PUT was HEAD + LIST + PUT + HEAD). Only creating teaches it: a plain miss keeps asking, so
    // a name another S3 client adds is seen at once unless we are writing in that directory.
    if (l.kind === 'missing') void this.learnMembership(path);
    return new S3Writer(this, { path, key, exclusive: options.exclusive === true, mode: options.mode, owner: options.owner, sizeHint: options.sizeHint });
  }

  /**
   * A file will be created at `path` later (the VFS's deferred-create layer announced it: a create
   * through a handle, or an async share's staged PUT): learn its directory's membership now, as
   * createWriter() of a new name does, so the next new names there cost no HEAD + ListObjectsV2 each
   * (an async 4 KiB PUT runs no createWriter before its upload, seconds later).
   */
  willCreate(path: string): void {
    if (path === '/') return;
    void this.learnMembership(path);
  }

  /**
   * A writer replacing `path` whose unchanged ranges are copied from its current version `base`
   * (UploadPartCopy with if-match; see writer.ts). ESTALE at once when the cached state already
   * shows another version.
   */
  async createPatchWriter(path: string, base: ContentVersion, options: WriterOptions = {}): Promise<PatchWriter> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const key = this.keys.fileKey(path);
    await this.checkParent(path);
    const l = await this.lookup(path);
    if (l.kind === 'dir') throw new VfsError('EISDIR', undefined, { path });
    const etag = l.kind === 'file' ? this.effectiveEtag(l.head.etag, base) : undefined;
    if (etag === undefined) throw new VfsError('ESTALE', 'the object changed since it was opened', { path });
    return new S3Writer(this, {
      path, key, exclusive: false, mode: options.mode, sizeHint: options.sizeHint, base: { etag, size: base.size },
    });
  }

  /**
   * The ETag to copy `base`'s bytes under, given the object's current (cached) ETag: the current
   * one when it is the base or a known same-content copy of it; undefined when it is another
   * version (the cache is never older than the base, which was taken from it).
   */
  private effectiveEtag(current: string, base: ContentVersion): string | undefined {
    if (current === base.id || this.isSameContent(current, base.id)) return current;
    return undefined;
  }

  private isSameContent(etag: string, base: string): boolean {
    let e: string | undefined = etag;
    for (let i = 0; i < 32 && e !== undefined; i++) {
      if (e === base) return true;
      e = this.sameContent.get(e);
    }
    return false;
  }

  private noteSameContent(newEtag: string, oldEtag: string): void {
    if (newEtag !== '' && oldEtag !== '' && newEtag !== oldEtag) this.sameContent.set(newEtag, oldEtag);
  }

  /** Bytes of one version of a file: ESTALE when the object is no longer that version. */
  async readVersion(path: string, version: ContentVersion, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new VfsError('EINVAL', undefined, { path });
    const l = await this.lookup(path);
    // Even when the object has changed, cached blocks of the base may still serve the read.
    const etag = l.kind === 'file' ? this.effectiveEtag(l.head.etag, version) ?? version.id : version.id;
    return this.readBase(path, this.keys.fileKey(path), etag, version.size, offset, offset + length);
  }

  /** WriterHost: bytes [start, end) of (key, etag), through the block caches, without read-ahead. */
  async readBase(path: string, key: string, etag: string, size: number, start: number, end: number): Promise<Buffer> {
    let tag = etag;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.engine.read({ key, etag: tag, size, path }, start, end - start);
      } catch (e) {
        if (e instanceof EtagChangedError) {
          // A same-content rewrite (our copy or chmod) is still the base; anything else is not.
          if (attempt < 2 && this.isSameContent(e.etag, tag)) {
            tag = e.etag;
            continue;
          }
          this.meta.forget(key);
          throw new VfsError('ESTALE', 'the object changed since it was opened', { path, cause: e });
        }
        if (isVfsError(e, 'ENOENT') || isNotFound(e)) {
          this.meta.forget(key);
          throw new VfsError('ESTALE', 'the object was deleted since it was opened', { path, cause: e });
        }
        // 416: the object is now shorter than a range inside the base: another version.
        if (httpStatusOf(e) === 416 || httpStatusOf((e as { cause?: unknown }).cause) === 416) {
          this.meta.forget(key);
          throw new VfsError('ESTALE', 'the object changed since it was opened', { path, cause: e });
        }
        throw e;
      }
    }
  }

  /** WriterHost: metadata of a new version, inherited from the current one like an inode's. */
  async baseMeta(path: string, _key: string, mode: number | undefined, owner?: FileOwner): Promise<{ meta: Record<string, string>; contentType: string | undefined }> {
    const l = await this.lookup(path).catch(() => undefined);
    const inherited = l?.kind === 'file' ? inheritedMeta(l.head.meta) : {};
    const set: SetMetadata = {};
    if (mode !== undefined) set.mode = mode;
    // A new object takes its creator's owner; a replaced one keeps the owner it inherits.
    if (owner !== undefined && l?.kind !== 'file') {
      set.uid = owner.uid;
      set.gid = owner.gid;
    }
    if (inherited.btime === undefined) set.birthtimeNs = nowNs();
    return { meta: encodeMeta('file', inherited, set), contentType: l?.kind === 'file' ? l.head.contentType : undefined };
  }

  async withKeyLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.keyLocks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.keyLocks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.keyLocks.get(key) === tail) this.keyLocks.delete(key);
    }
  }

  async exists(key: string, path: string): Promise<boolean> {
    return (await this.transport.head(key, path)) !== undefined;
  }

  /**
   * A new version of `path` is in the store as `etag`: its stat into the caches (and a small body
   * into the memory tier). A multipart upload or a copy is HEADed for its size and LastModified. A
   * single PutObject is not (`answer`, unless headAfterPut): a store that answered 200 holds the
   * object as sent - size our body's, ETag the answer's, metadata and content type ours (S3 has
   * strong read-after-write consistency) - and the one thing a HEAD adds is LastModified, which is
   * the file's mtime and ctime. It is taken from the answer's Date: the store's clock, whole
   * seconds like Last-Modified, never earlier than LastModified and equal to it unless the request
   * crossed a second boundary inside the store. That value is provisional: the first listing that
   * shows the key with our ETag puts the store's LastModified in its place (MetaCache.attr; the
   * cached lookup too), as does a HEAD once the lookup expires, so mtime and ctime move at most
   * once, by at most the PUT's own duration, and a listing and a stat agree from then on. Without a
   * Date (the SDK path, a store that sends none) the HEAD stays.
   */
  async published(path: string, key: string, etag: string, data: Buffer | undefined, meta: SetMetadata | undefined, answer?: PutAnswer): Promise<BackendStat> {
    this.changed(path);
    if (meta !== undefined) return this.setMetadata(path, meta);
    if (answer !== undefined && data !== undefined && this.options.headAfterPut !== true) {
      const sent: Record<string, string> = {};
      for (const k in answer.meta) sent[k.toLowerCase()] = String(answer.meta[k]);
      const head: ObjectHead = { size: data.length, etag, lastModified: answer.date, meta: sent, contentType: answer.contentType ?? 'application/octet-stream' };
      const stat = fileStat(baseName(path), head, this.defaults, this.baseNs);
      this.meta.set(key, { kind: 'file', head, stat }, true);
      this.engine.seed({ key, etag, size: data.length, path }, data);
      return { ...stat };
    }
    const expected = data?.length ?? this.transport.takeCompletedSize(key, etag);
    let head = await this.transport.head(key, path);
    // Our ETag with another size: the store answered before the object was complete (stock
    // s3rver writes a PUT's file, or a part's, after answering). Caching that size would hide the
    // content until the TTL: look again for a moment, then fail the publish (the stage stays
    // dirty and goes out again) rather than call a short object written (README, "S3-compatible
    // stores").
    const short = (): boolean => expected !== undefined && head !== undefined && head.etag === etag && head.size !== expected;
    for (let i = 1; i <= 8 && short(); i++) {
      await new Promise((r) => setTimeout(r, 25 * i));
      head = await this.transport.head(key, path);
    }
    if (short()) {
      this.meta.forget(key);
      throw new VfsError('EIO', `the store reports ${head?.size} bytes for the object just written (${expected} were written)`, { path });
    }
    if (head === undefined) {
      this.meta.forget(key);
      throw new VfsError('EIO', 'object missing right after its upload (overwritten or deleted concurrently)', { path });
    }
    const stat = fileStat(baseName(path), head, this.defaults, this.baseNs);
    this.meta.set(key, { kind: 'file', head, stat });
    this.engine.observe(key, head.etag);
    if (data !== undefined && head.etag === etag) this.engine.seed({ key, etag, size: data.length, path }, data);
    return { ...stat };
  }

  uploadStarted(key: string, uploadId: string): void {
    this.activeUploads.set(uploadId, key);
    this.journal?.started(key, uploadId);
  }

  uploadEnded(uploadId: string): void {
    this.activeUploads.delete(uploadId);
    this.journal?.ended(uploadId);
  }

  async mkdir(path: string, mode?: number, owner?: FileOwner): Promise<BackendStat> {
    if (path === '/') throw new VfsError('EEXIST', undefined, { path });
    this.keys.dirKey(path);
    await this.checkParent(path);
    // The lookup and the marker PUT are one step for this gateway: two mkdirs of one name (or a
    // mkdir and an exclusive file create, which takes the same lock) cannot both pass the lookup.
    return this.withKeyLock(this.keys.fileKey(path), async () => {
      const since = this.meta.now();
      if ((await this.lookup(path)).kind !== 'missing') throw new VfsError('EEXIST', undefined, { path });
      const stat = await this.putMarker(path, encodeMeta('dir', {}, { mode: mode ?? this.defaults.dirMode, birthtimeNs: nowNs(), ...(owner ?? {}) }));
      this.changed(path);
      // Nothing was at or below the name: the new directory is known empty (its creates skip lookups).
      this.meta.setComplete(this.keys.dirKey(path), [], since);
      return { ...stat };
    });
  }

  async rmdir(path: string): Promise<void> {
    if (path === '/') throw new VfsError('EBUSY', 'cannot remove the share root', { path });
    const l = await this.existing(path, true);
    if (l.kind !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    const dk = this.keys.dirKey(path);
    const r = await this.transport.list(dk, { maxKeys: 2 }, path);
    if (r.prefixes.length > 0 || r.keys.some((k) => k.key !== dk)) throw new VfsError('ENOTEMPTY', undefined, { path });
    await this.keepParent(path);
    if (r.keys.length > 0) await this.transport.delete(dk, path);
    this.meta.set(this.keys.fileKey(path), { kind: 'missing' });
    this.meta.forgetListing(dk);
    this.changed(path);
  }

  async unlink(path: string): Promise<void> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const l = await this.existing(path);
    if (l.kind === 'dir') throw new VfsError('EISDIR', undefined, { path });
    const key = this.keys.fileKey(path);
    await this.keepParent(path);
    await this.transport.delete(key, path);
    this.meta.forget(key);
    this.meta.set(key, { kind: 'missing' });
    this.readStates.delete(key);
    this.changed(path);
  }

  /**
   * Server-side copy (CopyObject; multipart UploadPartCopy above multipartCopyThreshold, default
   * 5 GiB), keeping metadata and mtime. The copy is pinned to the source version we looked up
   * (if-match); when our cached view was stale, it looks again once.
   */
  async copy(from: string, to: string): Promise<BackendStat> {
    const srcKey = this.keys.fileKey(from);
    const dstKey = this.keys.fileKey(to);
    let replaced: string | undefined;
    for (let attempt = 0; ; attempt++) {
      const src = await this.existing(from, attempt > 0);
      if (src.kind !== 'file') throw new VfsError('EISDIR', undefined, { path: from });
      if (attempt === 0) {
        await this.checkParent(to);
        const dst = await this.lookup(to);
        if (dst.kind === 'dir') throw new VfsError('EISDIR', undefined, { path: to });
        if (dst.kind === 'file' && srcKey !== dstKey) replaced = dst.head.etag;
      }
      const meta = { ...src.head.meta };
      // Without an explicit mtime the copy's would be its own LastModified: a rename must keep it.
      meta.mtime ??= formatTime(src.stat.mtimeNs);
      let etag: string;
      try {
        // A store whose copies keep the destination's old ETag (features.ts, copyEtags): the old
        // object goes first, so the copy is identified by its own content.
        if (replaced !== undefined && !this.transport.features.has('copyEtags')) await this.transport.delete(dstKey, to);
        etag = await this.copyObject(srcKey, dstKey, src.head.size, meta, src.head.contentType, to, src.head.etag);
        if (replaced !== undefined && etag === replaced && etag !== src.head.etag && this.transport.features.has('copyEtags')) {
          // New content under the replaced object's ETag: caches keyed by ETag would serve the old
          // bytes. Written again, with the old object out of the way first.
          this.transport.features.disable('copyEtags', `CopyObject onto ${dstKey} answered its previous ETag ${etag} for the content of ${srcKey} (ETag ${src.head.etag})`);
          await this.transport.delete(dstKey, to);
          etag = await this.copyObject(srcKey, dstKey, src.head.size, meta, src.head.contentType, to, src.head.etag);
        }
      } catch (e) {
        if (isNotFound(e)) {
          this.meta.forget(srcKey);
          throw new VfsError('ENOENT', undefined, { path: from });
        }
        if (isPreconditionFailed(e)) {
          this.meta.forget(srcKey);
          if (attempt === 0) continue;
          throw new VfsError('EAGAIN', 'the source changed during the copy', { path: from, cause: e });
        }
        throw e;
      }
      this.noteSameContent(etag, src.head.etag);
      return this.published(to, dstKey, etag, undefined, undefined);
    }
  }

  /**
   * Copies version `srcEtag` of `src` to `dst` (x-amz-copy-source-if-match on every request: a
   * source replaced meanwhile fails with 412 instead of copying, or assembling, another version).
   * CopyObject up to copyPartMax (5 GiB, S3's limit for one copy, unless multipartCopyThreshold is
   * lower); above, a multipart upload of UploadPartCopy parts (512 MiB, or copyPartMax when lower,
   * and always large enough for 10,000 parts), at most maxConcurrentParts at once.
   */
  private async copyObject(src: string, dst: string, size: number, meta: Record<string, string>, contentType: string | undefined, path: string, srcEtag: string): Promise<string> {
    if (size <= this.copyPartMax) return this.transport.copy(src, dst, { meta, contentType, path, ifMatch: srcEtag });
    const uploadId = await this.transport.createUpload(dst, meta, contentType, path);
    this.uploadStarted(dst, uploadId);
    try {
      const part = Math.max(Math.min(512 * MiB, this.copyPartMax), Math.ceil(size / 10_000 / MiB) * MiB);
      const ranges: [number, number, number][] = [];
      for (let n = 1, off = 0; off < size; n++, off += part) ranges.push([n, off, Math.min(size, off + part)]);
      const parts: { PartNumber: number; ETag: string }[] = [];
      const worker = async (): Promise<void> => {
        for (let r = ranges.shift(); r !== undefined; r = ranges.shift()) {
          try {
            parts.push({ PartNumber: r[0], ETag: await this.transport.uploadPartCopy(dst, uploadId, r[0], src, r[1], r[2], path, srcEtag) });
          } catch (e) {
            ranges.length = 0; // the other workers stop after their current part
            throw e;
          }
        }
      };
      const results = await Promise.allSettled(Array.from({ length: this.maxConcurrentParts }, worker));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      const etag = await this.transport.completeUpload(dst, uploadId, parts, false, size, path);
      this.uploadEnded(uploadId);
      return etag;
    } catch (e) {
      await this.transport.abortUpload(dst, uploadId, path).then(() => this.uploadEnded(uploadId), () => undefined);
      throw e;
    }
  }

  async setMetadata(path: string, set: SetMetadata): Promise<BackendStat> {
    if (path === '/') {
      await this.rootLoaded;
      const meta = encodeMeta('dir', this.rootMeta, set);
      // The bucket root has no object to hold metadata: kept for this process only.
      if (this.keys.prefix === '') this.rootMeta = meta;
      else await this.putMarker('/', meta);
      return { ...this.rootLookup().stat };
    }
    const key = this.keys.fileKey(path);
    for (let attempt = 0; ; attempt++) {
      const l = await this.existing(path, true);
      if (l.kind === 'dir') {
        const stat = await this.putMarker(path, encodeMeta('dir', l.marker?.meta ?? {}, set));
        return { ...stat };
      }
      const meta = encodeMeta('file', l.head.meta, set);
      // S3 rewrites the object: keep the mtime it had unless the caller sets one.
      meta.mtime ??= formatTime(l.stat.mtimeNs);
      let etag: string;
      try {
        // Pinned to the version just HEADed: the rewrite never carries another writer's content
        // under metadata computed from ours (and the same-content record below stays exact).
        etag = await this.copyObject(key, key, l.head.size, meta, l.head.contentType, path, l.head.etag);
      } catch (e) {
        if (isPreconditionFailed(e) && attempt === 0) continue;
        if (isPreconditionFailed(e)) throw new VfsError('EAGAIN', 'the object changed during the metadata update', { path, cause: e });
        throw e;
      }
      this.noteSameContent(etag, l.head.etag);
      return this.published(path, key, etag, undefined, undefined);
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new VfsError('EINVAL', undefined, { path });
    if (size > this.maxFileSize) throw new VfsError('EFBIG', undefined, { path });
    const l = await this.existing(path, true);
    const v = this.versionOf(path, l);
    if (size === v.size) return;
    const w = new S3Writer(this, { path, key: v.key, exclusive: false, mode: undefined, sizeHint: size });
    try {
      const state = new ReadState();
      const step = this.engine.blockSize;
      for (let off = 0; off < size; off += step) {
        const want = Math.min(step, size - off);
        const have = off < v.size ? await this.engine.read(v, off, want, state) : Buffer.alloc(0);
        await w.write(have.length === want ? have : Buffer.concat([have, Buffer.alloc(want - have.length)]));
      }
      await w.commit();
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw e;
    }
  }

  async statfs(): Promise<StatFs> {
    // S3 has no capacity: report a large, constant size so tools see plenty of room.
    const bytes = 2 ** 50;
    const files = 2 ** 32;
    return { totalBytes: bytes, freeBytes: bytes, availableBytes: bytes, totalFiles: files, freeFiles: files, blockSize: this.engine.blockSize };
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Aborts multipart uploads a crashed process left under this share's prefix: those in the upload
   * journal (stateDir), and any older than orphanUploadAgeMs. Uploads of this process are kept.
   * Also removes spooled part files older than a day. A store that cannot list (or abort) multipart
   * uploads skips that part (features.ts logs it once); the journal is still compacted.
   */
  async recover(): Promise<number> {
    const journaled = this.journal !== undefined ? await this.journal.pending() : new Map<string, string>();
    const cutoff = Date.now() - (this.options.orphanUploadAgeMs ?? ORPHAN_UPLOAD_AGE_MS);
    let n = 0;
    const uploads = this.transport.features.has('multipartListing') && this.transport.features.has('multipartAbort')
      ? await this.transport.listUploads(this.keys.prefix).catch((e: unknown) => {
        if (isVfsError(e, 'ENOTSUP') && !this.transport.features.has('multipartListing')) return [];
        throw e;
      })
      : [];
    for (const u of uploads) {
      if (this.activeUploads.has(u.uploadId)) continue;
      const old = u.initiated !== undefined && u.initiated.getTime() <= cutoff;
      if (!journaled.has(u.uploadId) && !old) continue;
      await this.transport.abortUpload(u.key, u.uploadId);
      if (!this.transport.features.has('multipartAbort')) break;
      n++;
    }
    await this.journal?.compact(new Map(this.activeUploads));
    // Spooled parts of writers that died with a crashed process (live ones are rewritten or read
    // within minutes; the directory may be shared by several backends, hence the age).
    for (const name of await readdir(this.spoolDir).catch(() => [] as string[])) {
      if (!name.startsWith('part-')) continue;
      const file = join(this.spoolDir, name);
      const st = await stat(file).catch(() => undefined);
      if (st !== undefined && st.mtimeMs < Date.now() - 24 * 3600 * 1000 && (await rm(file, { force: true }).then(() => true, () => false))) n++;
    }
    return n;
  }

  /**
   * Drops cached metadata under a share path ('/' = everything), so the next operations see what
   * other S3 clients changed without waiting for the TTL (`portico cache refresh`).
   */
  invalidate(path = '/'): number {
    const prefix = path === '/' ? this.keys.prefix : this.keys.fileKey(path);
    this.readStates.clear();
    return this.meta.invalidate(prefix);
  }

  async check(): Promise<void> {
    await this.transport.list(this.keys.prefix, { maxKeys: 1 });
  }

  async close(): Promise<void> {
    await this.disk?.flush();
    this.transport.close();
  }
}
