/**
 * A shard set under an S3 prefix. Everything goes through an S3Backend built for that prefix: its
 * transport (retries, circuit breaker, metrics) for the catalog and side files, its streaming
 * multipart writer for shards, and its read engine (memory and disk block tiers, single flight,
 * 128 KiB random-read pages) for shard tails, indexes, scans and cached data; a small file away from
 * the previous read is one exact ranged GET (see read()). A shard is immutable, so its blocks are cached under
 * the ETag the catalog recorded; a GET answered with another ETag fails (EtagChangedError) rather
 * than mixing versions.
 */
import type { BackendWriter } from '../../src/vfs/backend.ts';
import { VfsError, isVfsError } from '../../src/vfs/errors.ts';
import { parseS3Source } from '../s3/config.ts';
import { blockId } from '../s3/block-cache.ts';
import { S3Backend } from '../s3/s3-backend.ts';
import { EtagChangedError } from '../s3/transport.ts';
import { CATALOG_NAME, SHARD_DIR, type CatalogShard } from './catalog.ts';
import { TAIL_READ_BYTES } from './format.ts';
import type { RangeSource } from './format-read.ts';
import type { PartialShard, ShardOutput, ShardStore } from './store.ts';

/** ReadEngine.block priority of a read a caller waits for (read-engine.ts FG). */
const FOREGROUND = 0;
/** Payloads up to this size are read by an exact ranged GET when nothing of them is cached. */
const DIRECT_MAX_BYTES = 64 * 1024;

/**
 * The S3 backend, plus a hook on the multipart uploads its writer starts: the pack records a shard's
 * UploadId in its checkpoint (pack.ts) as soon as the upload exists, so the run that resumes it can
 * abort it. The writer reports every upload it starts through uploadStarted() (writer.ts
 * WriterHost), which is where the backend's own upload journal learns them too.
 */
class ShardS3Backend extends S3Backend {
  /** key -> who wants to know the UploadId of the upload started for it. */
  readonly uploadHooks = new Map<string, (uploadId: string) => void>();

  override uploadStarted(key: string, uploadId: string): void {
    super.uploadStarted(key, uploadId);
    this.uploadHooks.get(key)?.(uploadId);
  }
}

export class S3ShardStore implements ShardStore {
  readonly label: string;
  readonly s3: ShardS3Backend;
  /** ETags learned by HEAD for shards a catalog names without one. */
  private readonly etags = new Map<string, string>();

  /** The read engine's random-read page (S3 option randomReadSize). */
  private readonly pageSize: number;

  private constructor(s3: ShardS3Backend, label: string, pageSize: number) {
    this.s3 = s3;
    this.label = label;
    this.pageSize = pageSize;
  }

  static open(location: string, options: Record<string, unknown>): S3ShardStore {
    const o = parseS3Source(location, options);
    // Shards are read by small random pages and by their tails; a directory of millions of files
    // is never listed from S3 (the catalog and indexes answer), so the S3 meta cache is unused.
    return new S3ShardStore(new ShardS3Backend({ metricsLabel: `shard+${location}`, ...o }), location, o.randomReadSize ?? 128 * 1024);
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

  async createShard(name: string, sizeHint?: number, onPartial?: (p: PartialShard) => void | Promise<void>): Promise<ShardOutput> {
    try {
      await this.s3.mkdir(`/${SHARD_DIR}`);
    } catch (e) {
      if (!isVfsError(e, 'EEXIST')) throw e;
    }
    // A shard under one part is one PutObject at commit: nothing to record. Above, the writer starts
    // the multipart upload when the first part fills.
    const key = this.key(`${SHARD_DIR}/${name}`);
    if (onPartial !== undefined) this.s3.uploadHooks.set(key, (id) => void onPartial({ name, id }));
    const unhook = (): void => void this.s3.uploadHooks.delete(key);
    let w: BackendWriter;
    try {
      w = await this.s3.createWriter(`/${SHARD_DIR}/${name}`, sizeHint !== undefined ? { sizeHint } : {});
    } catch (e) {
      unhook();
      throw e;
    }
    let size = 0;
    return {
      write: async (chunks) => {
        for (const c of chunks) {
          await w.write(c);
          size += c.length;
        }
      },
      commit: async () => {
        try {
          const st = await w.commit();
          return { size, ...(st.nativeId !== undefined ? { etag: st.nativeId } : {}) };
        } finally {
          unhook();
        }
      },
      abort: async () => {
        unhook();
        await w.abort();
      },
    };
  }

  /** Multipart uploads under the set's shards/ prefix (ListMultipartUploads). */
  async listPartials(): Promise<PartialShard[]> {
    const prefix = `${this.s3.keys.prefix}${SHARD_DIR}/`;
    const out: PartialShard[] = [];
    for (const u of await this.s3.transport.listUploads(prefix)) {
      const name = u.key.slice(prefix.length);
      if (name.includes('/') || !name.endsWith('.shard')) continue;
      out.push({ name, id: u.uploadId, ...(u.initiated !== undefined ? { started: u.initiated } : {}) });
    }
    return out;
  }

  async discardPartial(p: PartialShard): Promise<void> {
    const features = this.s3.transport.features;
    const cannot = (): VfsError => new VfsError('ENOTSUP', 'the S3 store does not implement AbortMultipartUpload: an AbortIncompleteMultipartUpload lifecycle rule on the bucket (if the store has them) must remove unfinished uploads');
    if (!features.has('multipartAbort')) throw cannot();
    if (!/^[^/]+\.shard$/.test(p.name)) throw new VfsError('EINVAL', `'${p.name}' is not a shard name`);
    // NoSuchUpload (completed or aborted already) is success; a 405/501 marks the feature missing.
    await this.s3.transport.abortUpload(this.key(`${SHARD_DIR}/${p.name}`), p.id, `/${SHARD_DIR}/${p.name}`);
    if (!features.has('multipartAbort')) throw cannot();
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
    let lastEnd = -Infinity;
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
          const end = offset + length;
          const near = Math.abs(offset - lastEnd) < this.pageSize;
          lastEnd = end;
          // A small payload away from the previous read: exactly its bytes, one ranged GET through
          // the transport (retries, circuit breaker, metrics, ETag check); the set reader keeps the
          // decoded file. Measured (bench:shard, 100,000 files of 1-8 KiB in 64 MiB shards, load
          // 32): through 128 KiB read-engine pages a cold read cost 3.3 ms of client CPU and 0.88
          // GETs, 0.79x the rate of one object per file; a GET moves 32x the file's bytes and the
          // SDK's cost grows with them. Reads next to the previous one (a scan in shard order), and
          // payloads whose block or page is cached, still go through the engine and its pages.
          if (length <= DIRECT_MAX_BYTES && !near && !this.cached(v, offset, end)) {
            return await this.s3.transport.getRange(key, offset, end, etag, path);
          }
          return await this.s3.engine.read(v, offset, length);
        } catch (e) {
          if (e instanceof EtagChangedError) throw new VfsError('EIO', `shard ${shard.name} was replaced (ETag ${e.etag}, the catalog says ${etag}): shards are immutable`, { path });
          throw e;
        }
      },
    };
  }

  /** Every byte of [offset, end) is in a cached block (memory or disk tier) or memory page. */
  private cached(v: { key: string; etag: string }, offset: number, end: number): boolean {
    const B = this.s3.engine.blockSize;
    for (let i = Math.floor(offset / B); i * B < end; i++) {
      const id = blockId(B, { key: v.key, etag: v.etag, index: i });
      if (this.s3.memory.has(id) || this.s3.disk?.has(id) === true) continue;
      const P = this.pageSize;
      for (let p = Math.floor(Math.max(offset, i * B) / P); p * P < Math.min(end, (i + 1) * B); p++) {
        if (!this.s3.memory.has(blockId(P, { key: v.key, etag: v.etag, index: p }))) return false;
      }
    }
    return true;
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
