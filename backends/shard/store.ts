/**
 * Where a shard set lives: a local directory or an S3 prefix (store-s3.ts). The packer writes
 * through this interface and the reader backend reads through it; the S3 one reads shards through
 * the S3 backend's transport and block cache, so the two directions share one implementation each.
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { VfsError } from '../../src/vfs/errors.ts';
import { CATALOG_NAME, SHARD_DIR, type CatalogShard } from './catalog.ts';
import type { RangeSource } from './format-read.ts';

/** A shard being written: nothing is visible under its name until commit(). */
export interface ShardOutput {
  write(chunks: Buffer[]): Promise<void>;
  commit(): Promise<{ size: number; etag?: string }>;
  abort(): Promise<void>;
}

/**
 * A shard write that was started and never finished: an S3 multipart upload (its parts are stored,
 * and billed, until it is completed or aborted; nothing lists it among the objects) or a temporary
 * file in a directory. A killed pack or repack leaves one behind. The pack checkpoint records the
 * one being written (pack.ts), so the next run discards it; listPartials() finds the ones no
 * checkpoint names (a crash before the record was written, a killed repack, a lost checkpoint).
 */
export interface PartialShard {
  /** The shard it was to become. */
  name: string;
  /** What discardPartial() needs: the UploadId, or the temporary file's name. */
  id: string;
  /** S3: when the upload was initiated; a directory: the temporary file's last write. */
  started?: Date;
}

export interface ShardStore {
  /** For messages: the directory or s3:// URL. */
  readonly label: string;
  /** The catalog's bytes and a version tag (mtime+size, ETag), or undefined when the set has none. */
  readCatalog(): Promise<{ data: Buffer; version: string } | undefined>;
  /** The catalog's version tag without its bytes (a stat or HEAD). */
  catalogVersion(): Promise<string | undefined>;
  /** Replaces the catalog atomically (temporary name + rename, or one PutObject). */
  writeCatalog(data: Buffer): Promise<void>;
  /** Small side files (the pack checkpoint): read, replace atomically, remove. */
  readAux(name: string): Promise<Buffer | undefined>;
  writeAux(name: string, data: Buffer): Promise<void>;
  removeAux(name: string): Promise<void>;
  /**
   * A new shard. `onPartial` names what outlives a crash for it, so the caller can record it: a
   * directory's temporary file is named (and the returned promise awaited) BEFORE the file is
   * created, so a crash never leaves a temporary file its checkpoint does not name; an S3 multipart
   * upload only has an id once it exists, so that one is reported after (its gap is covered by the
   * age rule, partials.ts).
   */
  createShard(name: string, sizeHint?: number, onPartial?: (p: PartialShard) => void | Promise<void>): Promise<ShardOutput>;
  /** Unfinished shard writes present in the store (ENOTSUP when the store cannot list them). */
  listPartials(): Promise<PartialShard[]>;
  /** Discards one (gone already is fine; ENOTSUP when the store cannot). */
  discardPartial(p: PartialShard): Promise<void>;
  /** Ranged reads of a shard the catalog names. */
  shardSource(shard: CatalogShard): RangeSource;
  /** Names of the shard objects present (including ones no catalog names). */
  listShards(): Promise<string[]>;
  deleteShard(name: string): Promise<void>;
  close(): Promise<void>;
}

/** A temporary shard file (createShard): `.NAME.PID.tmp`. */
const PARTIAL_FILE = /^\.([^/]+\.shard)\.\d+\.tmp$/;

/** Open read descriptors kept per local store (shards are immutable: a descriptor never goes stale). */
const LOCAL_FD_CACHE = 64;

export class LocalShardStore implements ShardStore {
  readonly label: string;
  private readonly dir: string;
  private readonly fds: LRUCache<string, Promise<FileHandle>>;

  constructor(dir: string) {
    this.dir = dir;
    this.label = dir;
    this.fds = new LRUCache<string, Promise<FileHandle>>({
      max: LOCAL_FD_CACHE,
      dispose: (p) => void p.then((fh) => fh.close()).catch(() => undefined),
    });
  }

  private async readFileOpt(path: string): Promise<Buffer | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async readCatalog(): Promise<{ data: Buffer; version: string } | undefined> {
    const path = join(this.dir, CATALOG_NAME);
    const version = await this.catalogVersion();
    const data = await this.readFileOpt(path);
    return data === undefined || version === undefined ? undefined : { data, version };
  }

  async catalogVersion(): Promise<string | undefined> {
    try {
      const s = await stat(join(this.dir, CATALOG_NAME), { bigint: true });
      return `${s.ino}:${s.mtimeNs}:${s.size}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Temporary name, data and fsync, rename, fsync of the directory: a crash leaves old or new. */
  private async atomicWrite(name: string, data: Buffer): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${name}.${process.pid}.${Date.now()}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, name));
    const d = await open(this.dir, constants.O_RDONLY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  writeCatalog(data: Buffer): Promise<void> {
    return this.atomicWrite(CATALOG_NAME, data);
  }

  readAux(name: string): Promise<Buffer | undefined> {
    return this.readFileOpt(join(this.dir, name));
  }

  writeAux(name: string, data: Buffer): Promise<void> {
    return this.atomicWrite(name, data);
  }

  async removeAux(name: string): Promise<void> {
    await rm(join(this.dir, name), { force: true });
  }

  async createShard(name: string, _sizeHint?: number, onPartial?: (p: PartialShard) => void | Promise<void>): Promise<ShardOutput> {
    const dir = join(this.dir, SHARD_DIR);
    await mkdir(dir, { recursive: true });
    const final = join(dir, name);
    const tmpName = `.${name}.${process.pid}.tmp`;
    const tmp = join(dir, tmpName);
    // Recorded before it exists: a process killed between the create and the record left a
    // temporary file no checkpoint named (kept by the age rule; seen in CI).
    await onPartial?.({ name, id: tmpName });
    const fh = await open(tmp, 'w');
    let size = 0;
    let closed = false;
    return {
      write: async (chunks) => {
        const { bytesWritten } = await fh.writev(chunks);
        const want = chunks.reduce((a, c) => a + c.length, 0);
        if (bytesWritten !== want) throw new VfsError('EIO', `short write to ${tmp}`);
        size += want;
      },
      commit: async () => {
        await fh.sync();
        await fh.close();
        closed = true;
        await rename(tmp, final);
        return { size };
      },
      abort: async () => {
        if (!closed) await fh.close().catch(() => undefined);
        await rm(tmp, { force: true });
      },
    };
  }

  shardSource(shard: CatalogShard): RangeSource {
    const path = join(this.dir, SHARD_DIR, shard.name);
    return {
      size: shard.size,
      read: async (offset, length) => {
        let p = this.fds.get(path);
        if (p === undefined) {
          p = open(path, constants.O_RDONLY);
          this.fds.set(path, p);
          p.catch(() => this.fds.delete(path));
        }
        const fh = await p;
        const buf = Buffer.allocUnsafe(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return got === length ? buf : buf.subarray(0, got);
      },
    };
  }

  async listShards(): Promise<string[]> {
    try {
      return (await readdir(join(this.dir, SHARD_DIR))).filter((n) => n.endsWith('.shard') && !n.startsWith('.'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async listPartials(): Promise<PartialShard[]> {
    const dir = join(this.dir, SHARD_DIR);
    const out: PartialShard[] = [];
    for (const id of await readdir(dir).catch(() => [] as string[])) {
      const m = PARTIAL_FILE.exec(id);
      if (m === null) continue;
      const st = await stat(join(dir, id)).catch(() => undefined);
      if (st !== undefined) out.push({ name: m[1] as string, id, started: st.mtime });
    }
    return out;
  }

  async discardPartial(p: PartialShard): Promise<void> {
    // The id comes from a checkpoint file: only a temporary shard name of this directory.
    if (!PARTIAL_FILE.test(p.id)) throw new VfsError('EINVAL', `'${p.id}' is not the name of a temporary shard file`);
    await rm(join(this.dir, SHARD_DIR, p.id), { force: true });
  }

  async deleteShard(name: string): Promise<void> {
    this.fds.delete(join(this.dir, SHARD_DIR, name));
    await rm(join(this.dir, SHARD_DIR, name), { force: true });
  }

  async close(): Promise<void> {
    this.fds.clear();
  }
}

/**
 * The store of a set location: `shard+file:///dir`, `shard+s3://bucket/prefix`, or (for the
 * command line) a plain directory path or `s3://bucket/prefix`. S3 options are the S3 backend's
 * (backends/s3/config.ts); the S3 code is loaded only for an S3 set.
 */
export async function openShardStore(location: string, options: Record<string, unknown> = {}): Promise<ShardStore> {
  const loc = location.startsWith('shard+') ? location.slice('shard+'.length) : location;
  if (/^s3:\/\//i.test(loc)) {
    const { S3ShardStore } = await import('./store-s3.ts');
    return S3ShardStore.open(loc, options);
  }
  if (/^file:/i.test(loc)) {
    const { fileURLToPath } = await import('node:url');
    try {
      return new LocalShardStore(fileURLToPath(loc));
    } catch (e) {
      throw new VfsError('EINVAL', `bad file URL '${loc}' (expected file:///absolute/dir)`, { cause: e });
    }
  }
  if (/^[a-z][a-z0-9+.-]+:/i.test(loc)) throw new VfsError('EINVAL', `shard set location '${location}' is neither a directory, file:/// nor s3://`);
  return new LocalShardStore(loc);
}
