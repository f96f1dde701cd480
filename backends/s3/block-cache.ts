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
import { mkdir, open, readdir, rename, rm, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { mapLimit } from '../../src/util/map-limit.ts';
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

/**
 * Recycles block buffers (exactly `size` bytes, each owning its ArrayBuffer). Why: a fresh 4 MiB
 * buffer costs page faults on first write (the kernel maps and zeroes it; ~0.2-0.3 ms per MiB here)
 * and becomes garbage when it leaves the cache; a sequential stream churns through one per block,
 * and with few GCs (long GETs) that garbage piles up in RSS. With recycling, data moves from socket
 * or disk into memory that is already mapped, and a stream leaves no block garbage.
 *
 * A buffer is recycled only when nobody can still see it:
 * - never once a view of it was handed to a caller (`exportView`; the read engine returns views
 *   only of blocks read from the disk tier, see read-engine.ts). Checked at release and again at
 *   reuse: a read that held a block across its release may return a view of it afterwards;
 * - not while an operation that started before its release is still running: reads and disk
 *   writes `enter()` before touching blocks and `leave()` when done, and a released buffer waits
 *   ("cooling") until every operation older than its release has left. Operations that start
 *   later cannot reach it (it is no longer in the cache).
 * At most `max` buffers are kept (free + cooling); beyond, they go to the garbage collector.
 */
export class BlockPool {
  readonly size: number;
  private readonly max: number;
  private readonly free: Buffer[] = [];
  private readonly cooling: { buf: Buffer; after: number }[] = [];
  /** ArrayBuffers in `free` or `cooling` (guards against a double release). */
  private readonly held = new WeakSet<ArrayBufferLike>();
  private readonly exported = new WeakSet<ArrayBufferLike>();
  private seq = 0;
  /** Operations in progress, by start number; a Set iterates in insertion (= ascending) order. */
  private readonly active = new Set<number>();

  constructor(size: number, max: number) {
    this.size = size;
    this.max = Math.max(0, max);
  }

  /** A buffer of `size` bytes: a recycled one when the size is the pool's and one is ready. */
  take(size: number): Buffer {
    while (size === this.size) {
      let b = this.free.pop();
      if (b === undefined && this.cooling.length > 0 && (this.cooling[0] as { after: number }).after < this.oldestActive()) b = this.cooling.shift()?.buf;
      if (b === undefined) break;
      this.held.delete(b.buffer);
      // A read that held the block across its release may have returned a view of it since.
      if (!this.exported.has(b.buffer)) return b;
    }
    // allocUnsafeSlow: a buffer of its own (small sizes would come from Node's shared slab).
    return size === this.size ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size);
  }

  /** A cache let go of `buf`: keep it for reuse when that is safe (see above). */
  release(buf: Buffer): void {
    const ab = buf.buffer;
    if (buf.length !== this.size || buf.byteOffset !== 0 || ab.byteLength !== this.size || this.exported.has(ab) || this.held.has(ab)) return;
    if (this.free.length + this.cooling.length >= this.max) return;
    this.held.add(ab);
    if (this.active.size === 0) this.free.push(buf);
    else this.cooling.push({ buf, after: this.seq });
  }

  /** A view of `buf` leaves the cache: never recycle it. */
  exportView(buf: Buffer): void {
    this.exported.add(buf.buffer);
  }

  enter(): number {
    const s = ++this.seq;
    this.active.add(s);
    return s;
  }

  leave(s: number): void {
    this.active.delete(s);
  }

  private oldestActive(): number {
    for (const s of this.active) return s;
    return Infinity;
  }
}

interface MemEntry {
  data: Buffer;
  version: string;
  /** Set on a block only this tier holds (a small write's): spilled to the disk tier when evicted. */
  spill?: BlockRef;
}

/**
 * Memory tier. Blocks a reader has used live in an LRU bounded in bytes (`maxBytes`). Blocks that
 * read-ahead brought in and nobody has read yet live apart, in the `ahead` area, which the LRU
 * cannot evict: otherwise a window of read-ahead as large as the LRU (or several readers' windows)
 * would push out blocks fetched for a reader before it gets to them, and it would fetch them again.
 * The ahead area is bounded by the read engine's read-ahead budget (it checks `aheadBytes` before
 * fetching more); a block moves to the LRU when it is first read, or when it has waited
 * `demoteStale()`'s age there (its reader went away).
 */
export class MemoryTier {
  private readonly lru: LRUCache<string, MemEntry>;
  private readonly ahead = new Map<string, MemEntry & { at: number }>();
  private aheadSize = 0;
  private readonly versions = new VersionIndex();
  private readonly meters: S3Meters;
  /** Where dropped blocks go for reuse (set by the read engine). */
  pool: BlockPool | undefined;
  /** Called when the ahead area shrinks (the read engine lets held read-ahead go on). */
  onAheadFreed: (() => void) | undefined;
  /**
   * Takes an evicted block marked `spill` (the disk tier writes it; `done` once it no longer reads
   * `data`). Unset: such blocks are simply dropped.
   */
  onSpill: ((id: string, b: BlockRef, data: Buffer, done: () => void) => void) | undefined;

  constructor(maxBytes: number, meters: S3Meters) {
    this.meters = meters;
    this.lru = new LRUCache({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (v) => Math.max(1, v.data.length),
      dispose: (v, id, reason) => {
        if (!this.ahead.has(id)) this.versions.remove(v.version, id);
        if (reason === 'evict' && v.spill !== undefined && this.onSpill !== undefined) this.onSpill(id, v.spill, v.data, () => this.pool?.release(v.data));
        else this.pool?.release(v.data);
        if (reason === 'evict') meters.eviction('memory');
        meters.cacheBytes('memory', this.bytes);
      },
    });
  }

  /** The block's data; a read-ahead block moves to the LRU (it has been used). */
  get(id: string): Buffer | undefined {
    const a = this.ahead.get(id);
    if (a === undefined) return this.lru.get(id)?.data;
    this.takeAhead(id, a);
    if (a.data.length <= this.lru.maxSize) this.lru.set(id, { data: a.data, version: a.version });
    else this.versions.remove(a.version, id);
    return a.data;
  }

  /** The block's data without counting it as used (no LRU update, no move out of the ahead area). */
  peek(id: string): Buffer | undefined {
    return this.ahead.get(id)?.data ?? this.lru.peek(id)?.data;
  }

  has(id: string): boolean {
    return this.ahead.has(id) || this.lru.has(id);
  }

  /**
   * Stores a block; `ahead` = brought in by read-ahead, not read yet; `spill` = the disk tier does
   * not have it: it goes there when evicted (onSpill).
   */
  set(id: string, b: BlockRef, data: Buffer, ahead = false, spill = false): void {
    const version = objectKey(b.key, b.etag);
    if (ahead) {
      if (this.lru.has(id)) return;
      const old = this.ahead.get(id);
      if (old !== undefined) {
        this.aheadSize -= old.data.length;
        if (old.data !== data) this.pool?.release(old.data);
      }
      this.ahead.set(id, { data, version, at: Date.now() });
      this.aheadSize += data.length;
    } else {
      if (data.length > this.lru.maxSize) {
        if (spill) this.onSpill?.(id, b, data, () => this.pool?.release(data));
        return;
      }
      // Setting the same buffer again only refreshes it (a replaced entry's buffer is released).
      if (this.lru.peek(id)?.data === data) {
        this.lru.get(id);
        return;
      }
      const old = this.ahead.get(id);
      if (old !== undefined) {
        this.takeAhead(id, old);
        if (old.data !== data) this.pool?.release(old.data);
      }
      this.lru.set(id, spill ? { data, version, spill: b } : { data, version });
    }
    this.versions.add(version, id);
    this.meters.cacheBytes('memory', this.bytes);
  }

  private takeAhead(id: string, e: MemEntry): void {
    this.ahead.delete(id);
    this.aheadSize -= e.data.length;
    this.onAheadFreed?.();
  }

  /** Moves one read-ahead block to the LRU (its reader went away), if it is still in the ahead area. */
  demote(id: string): void {
    if (this.ahead.has(id)) this.get(id);
  }

  /** Moves read-ahead blocks unread for `maxAgeMs` to the LRU; returns the bytes freed in the ahead area. */
  demoteStale(maxAgeMs: number): number {
    const cutoff = Date.now() - maxAgeMs;
    let freed = 0;
    for (const [id, e] of this.ahead) {
      if (e.at > cutoff) continue;
      freed += e.data.length;
      this.get(id);
    }
    return freed;
  }

  dropVersion(key: string, etag: string): void {
    const version = objectKey(key, etag);
    for (const id of this.versions.ids(version)) {
      const a = this.ahead.get(id);
      if (a !== undefined) {
        this.takeAhead(id, a);
        this.versions.remove(version, id);
        this.pool?.release(a.data);
      }
      this.lru.delete(id);
    }
    this.meters.cacheBytes('memory', this.bytes);
  }

  /** Bytes held: the LRU plus read-ahead blocks not read yet. */
  get bytes(): number {
    return this.lru.calculatedSize + this.aheadSize;
  }

  /** Bytes of read-ahead blocks not read yet. */
  get aheadBytes(): number {
    return this.aheadSize;
  }
}

interface DiskEntry {
  size: number;
  file: string;
  version: string;
  touched: number;
  /**
   * Written by this process (renamed into place whole after its write): its reads skip the CRC-32
   * of the data, a third of a disk hit's CPU (read-after-write). Blocks found at start-up are
   * checked: a crash, bit rot or another hand may have changed them since.
   */
  trusted?: boolean;
}

/**
 * Block file layout: a header (magic, id length, data length, CRC-32 of the data, the id), zero
 * padding up to DATA_OFFSET, then the data. The data sits at a fixed offset so that a block can be
 * written before its id is known: a writer's bytes are teed into block files while the upload runs,
 * and the id (it holds the new object's ETag) and the header are filled in once S3 has answered
 * (BlockSink). "PBK2"; files of the earlier layout ("PBK1", data right after the id) are not ours
 * any more: the start-up scan removes them (they cost a GET each, never wrong data).
 */
const MAGIC = 0x50424b32; // "PBK2"
const FIXED_HEADER = 16;
export const DATA_OFFSET = 4096;
const TOUCH_INTERVAL_MS = 60_000;
/** Subdirectory of block files being written by a BlockSink (cleared at start-up). */
const INCOMING = 'incoming';

function encodeHeader(id: string, dataLength: number, crc: number): Buffer | undefined {
  const idBytes = Buffer.from(id, 'utf8');
  if (FIXED_HEADER + idBytes.length > DATA_OFFSET) return undefined;
  const h = Buffer.alloc(DATA_OFFSET);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt32BE(idBytes.length, 4);
  h.writeUInt32BE(dataLength, 8);
  h.writeUInt32BE(crc, 12);
  idBytes.copy(h, FIXED_HEADER);
  return h;
}

/** The id stored in a block file's header (undefined when the header is not ours). */
function headerId(buf: Buffer): { id: string; dataLen: number; crc: number } | undefined {
  if (buf.length < FIXED_HEADER || buf.readUInt32BE(0) !== MAGIC) return undefined;
  const idLen = buf.readUInt32BE(4);
  if (FIXED_HEADER + idLen > DATA_OFFSET || buf.length < FIXED_HEADER + idLen) return undefined;
  return { id: buf.toString('utf8', FIXED_HEADER, FIXED_HEADER + idLen), dataLen: buf.readUInt32BE(8), crc: buf.readUInt32BE(12) };
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
  /** Blocks being written by put(), readable meanwhile (a small file read right after its write). */
  private readonly writing = new Map<string, Buffer>();
  private readonly madeDirs = new Set<string>();
  private readonly unlinking = new Map<string, Promise<void>>();
  readonly ready: Promise<void>;
  /** True once the index of the files found at start-up is built (`ready` resolved). */
  isReady = false;

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
    this.ready = this.scan().catch(() => undefined).then(() => {
      this.isReady = true;
    });
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

  /**
   * Rebuilds the index from the files of a previous run (oldest first, so they are evicted first).
   * Files are examined 16 at a time: a 10 GiB cache holds thousands of blocks, and reads that need
   * the disk tier wait for this (`ready`).
   */
  private async scan(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Blocks a writer was teeing when the process stopped: never adopted, never ours to serve.
    await rm(join(this.dir, INCOMING), { recursive: true, force: true });
    const files: string[] = [];
    for (const sub of await readdir(this.dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      const subdir = join(this.dir, sub);
      this.madeDirs.add(subdir);
      for (const name of await readdir(subdir).catch(() => [] as string[])) files.push(join(subdir, name));
    }
    const found = (await mapLimit(files, 16, (file) => this.examine(file))).filter((f) => f !== undefined);
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.lru.set(f.id, f.entry);
      this.versions.add(f.entry.version, f.id);
    }
    this.meters.cacheBytes('disk', this.lru.calculatedSize);
  }

  /** One file found at start-up: its index entry, or undefined (and the file is gone) when it is not a block of ours. */
  private async examine(file: string): Promise<{ id: string; entry: DiskEntry; mtime: number } | undefined> {
    if (!file.endsWith('.blk')) {
      // A temporary file of an interrupted write.
      await unlink(file).catch(() => undefined);
      return undefined;
    }
    try {
      const fh = await open(file, 'r');
      let head: ReturnType<typeof headerId>;
      let st: Awaited<ReturnType<typeof fh.stat>>;
      try {
        st = await fh.stat();
        const buf = Buffer.alloc(Math.min(st.size, DATA_OFFSET));
        await fh.read(buf, 0, buf.length, 0);
        head = headerId(buf);
      } finally {
        await fh.close();
      }
      if (head === undefined || this.fileOf(head.id) !== file) {
        await unlink(file).catch(() => undefined);
        return undefined;
      }
      const [, etag, , key] = head.id.split('\u0000');
      return { id: head.id, mtime: st.mtimeMs, entry: { size: st.size, file, version: objectKey(key ?? '', etag ?? ''), touched: st.mtimeMs } };
    } catch {
      // Vanished or unreadable: ignore; a later put overwrites it.
      return undefined;
    }
  }

  has(id: string): boolean {
    return this.lru.has(id) || this.writing.has(id);
  }

  /**
   * The block's data, or undefined (missing, or corrupt: then the file is gone too). One readv puts
   * the header and the data in separate buffers, so the block is a buffer of its own (no copy out
   * of a header+data buffer).
   */
  async get(id: string, expectLength: number): Promise<Buffer | undefined> {
    const w = this.writing.get(id);
    // A copy: the writer's buffer may be recycled once its write is done.
    if (w !== undefined && w.length === expectLength) return Buffer.from(w);
    const e = this.lru.get(id);
    if (e === undefined) return undefined;
    const headerLen = DATA_OFFSET;
    if (e.size !== headerLen + expectLength) return this.corrupt(id);
    const head = Buffer.allocUnsafe(headerLen);
    const data = Buffer.allocUnsafe(expectLength);
    let got = 0;
    try {
      const fh = await open(e.file, 'r');
      try {
        got = (await fh.readv([head, data], 0)).bytesRead;
        while (got < e.size) {
          // A short read (rare): go on where it stopped.
          const { bytesRead } = got < headerLen
            ? await fh.read(head, got, headerLen - got, got)
            : await fh.read(data, got - headerLen, e.size - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
      } finally {
        await fh.close();
      }
    } catch {
      this.lru.delete(id);
      return undefined;
    }
    const h = headerId(head);
    if (got !== e.size || h === undefined || h.id !== id || h.dataLen !== expectLength || (e.trusted !== true && crc32(data) !== h.crc)) return this.corrupt(id);
    const now = Date.now();
    if (now - e.touched > TOUCH_INTERVAL_MS) {
      e.touched = now;
      const t = new Date(now);
      utimes(e.file, t, t).catch(() => undefined);
    }
    return data;
  }

  private corrupt(id: string): undefined {
    this.meters.corruption('disk');
    this.lru.delete(id);
    return undefined;
  }

  /**
   * Stores a block in the background (skipped when the disk is already behind). `done` is called
   * once the write no longer reads `data` (finished, failed or skipped): the caller may recycle it.
   */
  put(id: string, b: BlockRef, data: Buffer, done?: () => void): void {
    if (this.lru.has(id) || data.length > this.lru.maxSize || this.pendingBytes + data.length > this.maxPending) {
      done?.();
      return;
    }
    this.pendingBytes += data.length;
    this.writing.set(id, data);
    const p = this.write(id, b, data).finally(() => {
      if (this.writing.get(id) === data) this.writing.delete(id);
      this.pendingBytes -= data.length;
      this.pending.delete(p);
      done?.();
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
    const header = encodeHeader(id, data.length, crc32(data));
    if (header === undefined) return;
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
    this.lru.set(id, { size: header.length + data.length, file, version, touched: Date.now(), trusted: true });
    this.versions.add(version, id);
    this.meters.cacheBytes('disk', this.lru.calculatedSize);
  }

  dropVersion(key: string, etag: string): void {
    for (const id of this.versions.ids(objectKey(key, etag))) this.lru.delete(id);
  }

  /**
   * A write-through sink for an object being uploaded (`sizeHint` bytes, when known): undefined
   * when it would not fit in half the tier (one upload must not flush the whole cache).
   */
  sink(key: string, blockSize: number, sizeHint: number | undefined): BlockSink | undefined {
    if (sizeHint !== undefined && sizeHint > this.lru.maxSize / 2) return undefined;
    return new BlockSink(this, key, blockSize, join(this.dir, INCOMING), this.lru.maxSize / 2);
  }

  /**
   * Takes a block file a sink wrote (header in place) into the tier under its id: renamed to the
   * block's name, indexed. A failure leaves the block out (the file is removed).
   */
  async adopt(id: string, b: BlockRef, tmp: string, dataLength: number): Promise<void> {
    await this.ready;
    const file = this.fileOf(id);
    const sub = join(file, '..');
    try {
      if (!this.madeDirs.has(sub)) {
        await mkdir(sub, { recursive: true, mode: 0o700 });
        this.madeDirs.add(sub);
      }
      await this.unlinking.get(file);
      await rename(tmp, file);
    } catch {
      await unlink(tmp).catch(() => undefined);
      return;
    }
    const version = objectKey(b.key, b.etag);
    this.lru.set(id, { size: DATA_OFFSET + dataLength, file, version, touched: Date.now(), trusted: true });
    this.versions.add(version, id);
    this.meters.cacheBytes('disk', this.lru.calculatedSize);
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

/** One block file a sink is filling or has filled (data at DATA_OFFSET, header written at adopt). */
interface SinkBlock {
  file: string;
  /** The open file, once its open completes (writes chain on `chain`). */
  fh: FileHandle | undefined;
  /** Bytes handed to this block (in order; the CRC covers them). */
  length: number;
  crc: number;
  /** Some of its bytes were not written (the disk was behind, or a write failed): never adopted. */
  broken: boolean;
  /** The block's open and writes, in order. */
  chain: Promise<void>;
}

/** Bytes a sink lets wait for the disk before it skips what comes (those blocks are not cached). */
const SINK_MAX_PENDING = 32 * 1024 * 1024;

/**
 * Write-through of an upload into the disk tier (read-after-write without a GET). The writer
 * (writer.ts) hands every part it uploads to the sink as well; the sink puts the bytes into one file
 * per block under `<cacheDir>/incoming/`, at the block file's data offset, with a CRC-32 computed as
 * they are handed over (in order). The block ids hold the object's ETag, which only the store's
 * answer to the upload tells: adopt(etag) then writes each header and renames the files into the
 * tier. So a file just written through the gateway reads from local disk, as rclone's
 * `--vfs-cache-mode full` serves it from its cache, keyed by the version S3 assigned: a later change
 * by another client has another ETag and never reads these blocks (they are dropped when the
 * backend sees the new ETag).
 *
 * Decisions: the disk writes run in the background and never hold the upload up: when more than
 * SINK_MAX_PENDING bytes wait for the disk, further bytes are skipped and the blocks they belong to
 * are not adopted (measured: with the store on the same disk, awaiting the tee cut a 1 GiB PUT from
 * 69 to 43 MB/s; a slow disk must cost cache hits, not upload speed - the disk tier's rule for its
 * other writes too). Any local failure (disk full, ...) only loses blocks - the upload never fails
 * because of its cache. An upload larger than half the tier is not teed (it would flush the whole
 * cache for one file); a patch writer's server-side copied ranges never pass through here, so such
 * an upload ends its sink (writer.ts).
 */
export class BlockSink {
  private readonly tier: DiskTier;
  private readonly key: string;
  private readonly blockSize: number;
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly blocks: SinkBlock[] = [];
  private total = 0;
  private pending = 0;
  private dead = false;
  private dirReady: Promise<void> | undefined;

  constructor(tier: DiskTier, key: string, blockSize: number, dir: string, maxBytes: number) {
    this.tier = tier;
    this.key = key;
    this.blockSize = blockSize;
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  get alive(): boolean {
    return !this.dead;
  }

  /**
   * The next bytes of the object (in order). Returns at once: the disk writes go on in the
   * background; `data` must stay unchanged until adopt() or discard() settles.
   */
  write(data: Uint8Array): void {
    if (this.dead) return;
    if (this.total + data.length > this.maxBytes) {
      void this.discard();
      return;
    }
    for (let off = 0; off < data.length;) {
      const index = Math.floor(this.total / this.blockSize);
      const at = this.total - index * this.blockSize;
      const n = Math.min(this.blockSize - at, data.length - off);
      const piece = data.subarray(off, off + n);
      const b = this.blocks[index] ?? this.open(index);
      b.crc = crc32(piece, b.crc);
      b.length += n;
      if (b.broken || this.pending + n > SINK_MAX_PENDING) b.broken = true;
      else {
        this.pending += n;
        b.chain = b.chain.then(async () => {
          if (!b.broken) await writeAll(b.fh!, piece, DATA_OFFSET + at);
        }).catch(() => {
          b.broken = true;
        }).finally(() => {
          this.pending -= n;
        });
      }
      off += n;
      this.total += n;
    }
  }

  /** A block file (opened in the background, after the tier's start-up scan, which clears incoming/). */
  private open(index: number): SinkBlock {
    this.dirReady ??= this.tier.ready.then(() => mkdir(this.dir, { recursive: true, mode: 0o700 })).then(() => undefined);
    const file = join(this.dir, `${process.pid}-${Math.random().toString(36).slice(2)}-${index}.tmp`);
    const b: SinkBlock = { file, fh: undefined, length: 0, crc: 0, broken: false, chain: Promise.resolve() };
    b.chain = this.dirReady.then(async () => {
      b.fh = await open(file, 'w', 0o600);
    }).catch(() => {
      b.broken = true;
    });
    this.blocks[index] = b;
    return b;
  }

  /**
   * The upload committed as `etag` with exactly the bytes handed here: headers in, complete blocks
   * into the tier (each block stands alone; one that missed bytes is left out).
   */
  async adopt(etag: string, size: number): Promise<void> {
    if (this.dead) return;
    if (size !== this.total) return this.discard();
    this.dead = true;
    const blocks = this.blocks.splice(0);
    for (let i = 0; i < blocks.length; i += 16) {
      await Promise.all(blocks.slice(i, i + 16).map(async (b, k) => {
        await b.chain;
        const index = i + k;
        const ref: BlockRef = { key: this.key, etag, index };
        const id = blockId(this.blockSize, ref);
        const header = encodeHeader(id, b.length, b.crc);
        const fh = b.fh;
        b.fh = undefined;
        let ok = !b.broken && fh !== undefined && header !== undefined;
        if (ok) ok = await fh!.write(header!, 0, header!.length, 0).then(() => true, () => false);
        await fh?.close().catch(() => undefined);
        if (ok) await this.tier.adopt(id, ref, b.file, b.length);
        else await unlink(b.file).catch(() => undefined);
      }));
    }
  }

  /** Drops everything handed over (abort, a failure, an upload this sink cannot describe). */
  async discard(): Promise<void> {
    this.dead = true;
    await removeBlocks(this.blocks.splice(0));
  }
}

async function removeBlocks(blocks: SinkBlock[]): Promise<void> {
  for (const b of blocks) {
    if (b === undefined) continue;
    b.broken = true;
    await b.chain;
    const fh = b.fh;
    b.fh = undefined;
    await fh?.close().catch(() => undefined);
    await unlink(b.file).catch(() => undefined);
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
}
