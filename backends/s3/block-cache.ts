/**
 * The two block cache tiers of the S3 read engine.
 *
 * A block is identified by (block size, object key, ETag, block index): an ETag names immutable
 * content, so a cached block can never be stale, only unused. When the backend learns that a key
 * has a new ETag it drops the old version's blocks from both tiers to give the space back early.
 *
 * Memory tier: an LRU bounded in bytes (lru-cache maxSize).
 *
 * Disk tier: one file per block under `<dir>/<xx>/<sha256>.blk`, written to a temporary name and
 * renamed into place (a crash never leaves a half block under a real name). Each file starts with a
 * header holding the block id and a CRC-32 of the data; a read that finds a different id, length or
 * checksum deletes the file and reports a miss, so the block is fetched again (bit rot and torn
 * writes cost a re-fetch, never wrong data). The index is an LRU bounded in bytes, rebuilt at
 * start-up from the files (oldest mtime = least recently used; hits touch the file at most once a
 * minute so recency survives restarts). Writes happen in the background and are skipped when too
 * many bytes are already waiting to be written: a slow disk must not hold up reads from S3.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import type { S3Meters } from './s3-metrics.ts';

export interface BlockRef {
  key: string;
  etag: string;
  index: number;
}

/** Cache id of a block. */
export function blockId(blockSize: number, b: BlockRef): string {
  return `${blockSize}\u0000${b.etag}\u0000${b.index}\u0000${b.key}`;
}

function objectKey(key: string, etag: string): string {
  return `${etag}\u0000${key}`;
}

/** Ids grouped by object version, so one version's blocks can be dropped together. */
class VersionIndex {
  private readonly byVersion = new Map<string, Set<string>>();

  add(version: string, id: string): void {
    let s = this.byVersion.get(version);
    if (s === undefined) this.byVersion.set(version, (s = new Set()));
    s.add(id);
  }

  remove(version: string, id: string): void {
    const s = this.byVersion.get(version);
    if (s === undefined) return;
    s.delete(id);
    if (s.size === 0) this.byVersion.delete(version);
  }

  ids(version: string): string[] {
    return [...(this.byVersion.get(version) ?? [])];
  }
}

export class MemoryTier {
  private readonly lru: LRUCache<string, { data: Buffer; version: string }>;
  private readonly versions = new VersionIndex();
  private readonly meters: S3Meters;

  constructor(maxBytes: number, meters: S3Meters) {
    this.meters = meters;
    this.lru = new LRUCache({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (v) => Math.max(1, v.data.length),
      dispose: (v, id, reason) => {
        this.versions.remove(v.version, id);
        if (reason === 'evict') meters.eviction('memory');
        meters.cacheBytes('memory', this.lru.calculatedSize);
      },
    });
  }

  get(id: string): Buffer | undefined {
    return this.lru.get(id)?.data;
  }

  has(id: string): boolean {
    return this.lru.has(id);
  }

  set(id: string, b: BlockRef, data: Buffer): void {
    if (data.length > this.lru.maxSize) return;
    const version = objectKey(b.key, b.etag);
    this.lru.set(id, { data, version });
    this.versions.add(version, id);
    this.meters.cacheBytes('memory', this.lru.calculatedSize);
  }

  dropVersion(key: string, etag: string): void {
    for (const id of this.versions.ids(objectKey(key, etag))) this.lru.delete(id);
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }
}

interface DiskEntry {
  size: number;
  file: string;
  version: string;
  touched: number;
}

const MAGIC = 0x50424b31; // "PBK1"
const FIXED_HEADER = 16;
const TOUCH_INTERVAL_MS = 60_000;

function encodeHeader(id: string, data: Buffer): Buffer {
  const idBytes = Buffer.from(id, 'utf8');
  const h = Buffer.alloc(FIXED_HEADER + idBytes.length);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt32BE(idBytes.length, 4);
  h.writeUInt32BE(data.length, 8);
  h.writeUInt32BE(crc32(data), 12);
  idBytes.copy(h, FIXED_HEADER);
  return h;
}

/** The id stored in a block file's header (undefined when the header is not ours). */
function headerId(buf: Buffer): { id: string; dataLen: number; crc: number; headerLen: number } | undefined {
  if (buf.length < FIXED_HEADER || buf.readUInt32BE(0) !== MAGIC) return undefined;
  const idLen = buf.readUInt32BE(4);
  if (idLen > 8192 || buf.length < FIXED_HEADER + idLen) return undefined;
  return { id: buf.toString('utf8', FIXED_HEADER, FIXED_HEADER + idLen), dataLen: buf.readUInt32BE(8), crc: buf.readUInt32BE(12), headerLen: FIXED_HEADER + idLen };
}

export interface DiskTierOptions {
  dir: string;
  maxBytes: number;
  /** Bytes allowed to wait for the disk before new blocks are not cached (default 64 MiB). */
  maxPendingBytes?: number;
}

export class DiskTier {
  readonly dir: string;
  private readonly lru: LRUCache<string, DiskEntry>;
  private readonly versions = new VersionIndex();
  private readonly meters: S3Meters;
  private readonly maxPending: number;
  private pendingBytes = 0;
  private readonly pending = new Set<Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private readonly unlinking = new Map<string, Promise<void>>();
  readonly ready: Promise<void>;

  constructor(o: DiskTierOptions, meters: S3Meters) {
    this.dir = o.dir;
    this.meters = meters;
    this.maxPending = o.maxPendingBytes ?? 64 * 1024 * 1024;
    this.lru = new LRUCache({
      maxSize: Math.max(1, o.maxBytes),
      sizeCalculation: (e) => Math.max(1, e.size),
      dispose: (e, id, reason) => {
        this.versions.remove(e.version, id);
        if (reason === 'set') return;
        if (reason === 'evict') meters.eviction('disk');
        this.remove(e.file);
        meters.cacheBytes('disk', this.lru.calculatedSize);
      },
    });
    this.ready = this.scan().catch(() => undefined);
  }

  /** Deletes a block file in the background; a later write of the same file waits for it. */
  private remove(file: string): void {
    const p = unlink(file).catch(() => undefined).finally(() => {
      if (this.unlinking.get(file) === p) this.unlinking.delete(file);
    });
    this.unlinking.set(file, p);
  }

  private fileOf(id: string): string {
    const h = createHash('sha256').update(id).digest('hex');
    return join(this.dir, h.slice(0, 2), `${h.slice(2, 42)}.blk`);
  }

  /** Rebuilds the index from the files of a previous run (oldest first, so they are evicted first). */
  private async scan(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const found: { id: string; entry: DiskEntry; mtime: number }[] = [];
    for (const sub of await readdir(this.dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      const subdir = join(this.dir, sub);
      this.madeDirs.add(subdir);
      for (const name of await readdir(subdir).catch(() => [] as string[])) {
        const file = join(subdir, name);
        if (!name.endsWith('.blk')) {
          // A temporary file of an interrupted write.
          await unlink(file).catch(() => undefined);
          continue;
        }
        try {
          const st = await stat(file);
          const fh = await open(file, 'r');
          let head: ReturnType<typeof headerId>;
          try {
            const buf = Buffer.alloc(Math.min(st.size, FIXED_HEADER + 4096));
            await fh.read(buf, 0, buf.length, 0);
            head = headerId(buf);
          } finally {
            await fh.close();
          }
          if (head === undefined || this.fileOf(head.id) !== file) {
            await unlink(file).catch(() => undefined);
            continue;
          }
          const [, etag, , key] = head.id.split('\u0000');
          found.push({ id: head.id, mtime: st.mtimeMs, entry: { size: st.size, file, version: objectKey(key ?? '', etag ?? ''), touched: st.mtimeMs } });
        } catch {
          // Vanished or unreadable: ignore; a later put overwrites it.
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.lru.set(f.id, f.entry);
      this.versions.add(f.entry.version, f.id);
    }
    this.meters.cacheBytes('disk', this.lru.calculatedSize);
  }

  has(id: string): boolean {
    return this.lru.has(id);
  }

  /** The block's data, or undefined (missing, or corrupt: then the file is gone too). */
  async get(id: string, expectLength: number): Promise<Buffer | undefined> {
    const e = this.lru.get(id);
    if (e === undefined) return undefined;
    let buf: Buffer;
    try {
      // One read of the size we indexed (a different size fails the length check below).
      const fh = await open(e.file, 'r');
      try {
        buf = Buffer.allocUnsafe(e.size);
        let got = 0;
        while (got < e.size) {
          const { bytesRead } = await fh.read(buf, got, e.size - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        buf = buf.subarray(0, got);
      } finally {
        await fh.close();
      }
    } catch {
      this.lru.delete(id);
      return undefined;
    }
    const h = headerId(buf);
    const ok = h !== undefined && h.id === id && h.dataLen === expectLength && buf.length === h.headerLen + h.dataLen
      && crc32(buf.subarray(h.headerLen)) === h.crc;
    if (!ok) {
      this.meters.corruption('disk');
      this.lru.delete(id);
      return undefined;
    }
    const now = Date.now();
    if (now - e.touched > TOUCH_INTERVAL_MS) {
      e.touched = now;
      const t = new Date(now);
      utimes(e.file, t, t).catch(() => undefined);
    }
    return buf.subarray(h.headerLen);
  }

  /** Stores a block in the background (skipped when the disk is already behind). */
  put(id: string, b: BlockRef, data: Buffer): void {
    if (this.lru.has(id) || data.length > this.lru.maxSize) return;
    if (this.pendingBytes + data.length > this.maxPending) return;
    this.pendingBytes += data.length;
    const p = this.write(id, b, data).finally(() => {
      this.pendingBytes -= data.length;
      this.pending.delete(p);
    });
    this.pending.add(p);
  }

  private async write(id: string, b: BlockRef, data: Buffer): Promise<void> {
    await this.ready;
    const file = this.fileOf(id);
    const sub = join(file, '..');
    if (!this.madeDirs.has(sub)) {
      await mkdir(sub, { recursive: true, mode: 0o700 }).catch(() => undefined);
      this.madeDirs.add(sub);
    }
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const header = encodeHeader(id, data);
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writev([header, data]);
      } finally {
        await fh.close();
      }
      await this.unlinking.get(file);
      await rename(tmp, file);
    } catch {
      await unlink(tmp).catch(() => undefined);
      return;
    }
    const version = objectKey(b.key, b.etag);
    this.lru.set(id, { size: header.length + data.length, file, version, touched: Date.now() });
    this.versions.add(version, id);
    this.meters.cacheBytes('disk', this.lru.calculatedSize);
  }

  dropVersion(key: string, etag: string): void {
    for (const id of this.versions.ids(objectKey(key, etag))) this.lru.delete(id);
  }

  /** Test/inspection helper: the file holding a block. */
  pathOf(id: string): string | undefined {
    return this.lru.get(id)?.file;
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /** Waits for background writes (close, tests). */
  async flush(): Promise<void> {
    await this.ready;
    while (this.pending.size > 0 || this.unlinking.size > 0) await Promise.allSettled([...this.pending, ...this.unlinking.values()]);
  }
}
