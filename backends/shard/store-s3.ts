/**
 * A shard set under an S3 prefix. Everything goes through an S3Backend built for that prefix: its
 * transport (retries, circuit breaker, metrics) for the catalog and side files, its streaming
 * multipart writer for shards, and its read engine (memory and disk block tiers, single flight,
 * 128 KiB random-read pages) for shard reads. A shard is immutable, so its blocks are cached under
 * the ETag the catalog recorded; a GET answered with another ETag fails (EtagChangedError) rather
 * than mixing versions.
 */
import type { BackendWriter } from '../../src/vfs/backend.ts';
import { VfsError, isVfsError } from '../../src/vfs/errors.ts';
import { parseS3Source } from '../s3/config.ts';
import { S3Backend } from '../s3/s3-backend.ts';
import { EtagChangedError } from '../s3/transport.ts';
import { CATALOG_NAME, SHARD_DIR, type CatalogShard } from './catalog.ts';
import { TAIL_READ_BYTES } from './format.ts';
import type { RangeSource } from './format-read.ts';
import type { ShardOutput, ShardStore } from './store.ts';

/** ReadEngine.block priority of a read a caller waits for (read-engine.ts FG). */
const FOREGROUND = 0;

export class S3ShardStore implements ShardStore {
  readonly label: string;
  readonly s3: S3Backend;
  /** ETags learned by HEAD for shards a catalog names without one. */
  private readonly etags = new Map<string, string>();

  private constructor(s3: S3Backend, label: string) {
    this.s3 = s3;
    this.label = label;
  }

  static open(location: string, options: Record<string, unknown>): S3ShardStore {
    const o = parseS3Source(location, options);
    // Shards are read by small random pages and by their tails; a directory of millions of files
    // is never listed from S3 (the catalog and indexes answer), so the S3 meta cache is unused.
    return new S3ShardStore(new S3Backend({ metricsLabel: `shard+${location}`, ...o }), location);
  }

  private key(name: string): string {
    return this.s3.keys.fileKey(`/${name}`);
  }

  async readCatalog(): Promise<{ data: Buffer; version: string } | undefined> {
    const key = this.key(CATALOG_NAME);
    const head = await this.s3.transport.head(key, `/${CATALOG_NAME}`);
    if (head === undefined) return undefined;
    try {
      const data = head.size === 0 ? Buffer.alloc(0) : await this.s3.transport.getRange(key, 0, head.size, head.etag, `/${CATALOG_NAME}`);
      return { data, version: head.etag };
    } catch (e) {
      // Replaced between the HEAD and the GET: read the new one.
      if (e instanceof EtagChangedError) return this.readCatalog();
      throw e;
    }
  }

  async catalogVersion(): Promise<string | undefined> {
    return (await this.s3.transport.head(this.key(CATALOG_NAME), `/${CATALOG_NAME}`))?.etag;
  }

  async writeCatalog(data: Buffer): Promise<void> {
    await this.s3.transport.put(this.key(CATALOG_NAME), data, {}, { contentType: 'application/json', path: `/${CATALOG_NAME}` });
  }

  async readAux(name: string): Promise<Buffer | undefined> {
    const head = await this.s3.transport.head(this.key(name), `/${name}`);
    if (head === undefined) return undefined;
    return head.size === 0 ? Buffer.alloc(0) : this.s3.transport.getRange(this.key(name), 0, head.size, undefined, `/${name}`);
  }

  async writeAux(name: string, data: Buffer): Promise<void> {
    await this.s3.transport.put(this.key(name), data, {}, { contentType: 'application/json', path: `/${name}` });
  }

  async removeAux(name: string): Promise<void> {
    await this.s3.transport.delete(this.key(name), `/${name}`);
  }

  async createShard(name: string, sizeHint?: number): Promise<ShardOutput> {
    try {
      await this.s3.mkdir(`/${SHARD_DIR}`);
    } catch (e) {
      if (!isVfsError(e, 'EEXIST')) throw e;
    }
    const w: BackendWriter = await this.s3.createWriter(`/${SHARD_DIR}/${name}`, sizeHint !== undefined ? { sizeHint } : {});
    let size = 0;
    return {
      write: async (chunks) => {
        for (const c of chunks) {
          await w.write(c);
          size += c.length;
        }
      },
      commit: async () => {
        const st = await w.commit();
        return { size, ...(st.nativeId !== undefined ? { etag: st.nativeId } : {}) };
      },
      abort: () => w.abort(),
    };
  }

  shardSource(shard: CatalogShard): RangeSource {
    const path = `/${SHARD_DIR}/${shard.name}`;
    const key = this.key(`${SHARD_DIR}/${shard.name}`);
    // With a disk tier, the tail read starts at the last block (or the one before, when the last is
    // shorter than the usual 64 KiB tail): it is then read as whole blocks, which the disk tier
    // keeps, instead of 128 KiB pages, which live in memory only; a restarted gateway finds the
    // footer and the index on disk. Without one, the default 64 KiB tail costs less.
    const B = this.s3.engine.blockSize;
    const lastBlock = Math.floor(Math.max(0, shard.size - 1) / B) * B;
    const tailStart = this.s3.disk === undefined ? undefined : shard.size - lastBlock >= TAIL_READ_BYTES || lastBlock === 0 ? lastBlock : lastBlock - B;
    return {
      size: shard.size,
      ...(tailStart !== undefined ? { tailStart } : {}),
      read: async (offset, length) => {
        let etag = shard.etag ?? this.etags.get(shard.name);
        if (etag === undefined) {
          const head = await this.s3.transport.head(key, path);
          if (head === undefined) throw new VfsError('EIO', `shard ${shard.name} named by the catalog is missing`, { path });
          etag = head.etag;
          this.etags.set(shard.name, etag);
        }
        const v = { key, etag, size: shard.size, path };
        try {
          if (tailStart !== undefined && offset === tailStart && offset + length === shard.size) {
            // The tail as whole blocks (engine.read would fetch a short tail as pages, memory only).
            const blocks: Buffer[] = [];
            for (let i = tailStart / B; i * B < shard.size; i++) blocks.push(await this.s3.engine.block(v, i, FOREGROUND));
            return blocks.length === 1 ? (blocks[0] as Buffer) : Buffer.concat(blocks);
          }
          return await this.s3.engine.read(v, offset, length);
        } catch (e) {
          if (e instanceof EtagChangedError) throw new VfsError('EIO', `shard ${shard.name} was replaced (ETag ${e.etag}, the catalog says ${etag}): shards are immutable`, { path });
          throw e;
        }
      },
    };
  }

  async listShards(): Promise<string[]> {
    const out: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.s3.list(`/${SHARD_DIR}`, { limit: 1000, ...(after !== undefined ? { after } : {}) }).catch((e: unknown) => {
        if (isVfsError(e, 'ENOENT')) return { entries: [], next: undefined };
        throw e;
      });
      for (const e of page.entries) if (e.type === 'file' && e.name.endsWith('.shard')) out.push(e.name);
      if (page.next === undefined) return out;
      after = page.next;
    }
  }

  async deleteShard(name: string): Promise<void> {
    await this.s3.transport.delete(this.key(`${SHARD_DIR}/${name}`), `/${SHARD_DIR}/${name}`);
  }

  close(): Promise<void> {
    return this.s3.close();
  }
}
