/**
 * Reads of S3 objects by block: ranged GETs of `blockSize` bytes, two cache tiers, read-ahead.
 *
 * - Only the blocks a read touches are fetched: a read at 900 MiB of a 1 GiB object costs one
 *   ranged GET of the block holding it (plus read-ahead once the reader proves sequential).
 * - Single flight: concurrent readers of one block share one GET (and one disk read).
 * - Priorities: fetches wait for one of `maxConcurrent` slots; foreground reads are served before
 *   read-ahead, which may also never take the last `reserve` slots, and a queued read-ahead that a
 *   reader starts waiting for is promoted.
 * - Read-ahead refills its window when half of it has been consumed, in runs of adjacent blocks
 *   fetched by one GET each (up to `maxRunBytes`): fewer, larger requests for streams, while the
 *   cache keeps its block granularity. Read-ahead in flight is bounded in bytes across readers.
 * - Results may be views of cached blocks (no copy for a read inside one block): callers must
 *   treat returned buffers as read-only.
 * - Read-ahead: a reader whose read starts where its previous one ended (or at offset 0) is
 *   sequential; its window starts at one block and doubles each time it enters a new block, up to
 *   `readAheadMaxBytes`. Any other read resets it to zero.
 * - Random reads: a small read that is not sequential fetches only the aligned `pageSize` pages it
 *   touches (default 128 KiB), not whole blocks, so its first byte costs about what one ranged GET
 *   of the read would; a block that is already cached, on disk or in flight serves it instead.
 *   Pages live in the memory tier only.
 * - Versions: blocks are cached under the ETag they were read with and every GET must answer with
 *   that ETag; a different one raises EtagChangedError, and the old version's blocks are dropped.
 */
import { LRUCache } from 'lru-cache';
import { blockId, type BlockRef, type DiskTier, type MemoryTier } from './block-cache.ts';
import { EtagChangedError, type S3Transport } from './transport.ts';
import type { S3Meters } from './s3-metrics.ts';

/** One immutable version of an object. */
export interface ObjectVersion {
  key: string;
  etag: string;
  size: number;
  /** Share path, for error messages. */
  path?: string | undefined;
}

/** Sequential-access state of one reader (an open file, or one path for Backend.read). */
export class ReadState {
  /** Offset just past the previous read; -1 before the first read. */
  next = -1;
  /** Read-ahead window in blocks (0 = random access). */
  window = 0;
  lastBlock = -1;
  /** Highest block index read-ahead has been asked for. */
  ahead = -1;
}

export interface ReadEngineOptions {
  blockSize: number;
  /** Largest GET read-ahead issues for adjacent blocks (default 8 MiB). */
  maxRunBytes?: number;
  /** Read-ahead bytes in flight across all readers (default readAheadMaxBytes). */
  prefetchBudgetBytes?: number;
  /** Fetch unit of small random reads (a power-of-two fraction of blockSize; >= blockSize disables). */
  pageSize?: number;
  maxConcurrent: number;
  readAheadMaxBytes: number;
}

const FG = 0;
const BG = 1;

/** One GET (one slot), covering one or more adjacent units. */
interface Fetch {
  priority: number;
  /** Set while waiting for a slot. */
  grant?: (() => void) | undefined;
}

interface Pending {
  fetch: Fetch | undefined;
  /** Started by read-ahead (a reader joining it later is a read-ahead hit). */
  prefetch: boolean;
  promise: Promise<Buffer>;
}

export class ReadEngine {
  readonly blockSize: number;
  /** 0 when random reads use whole blocks. */
  private readonly pageSize: number;
  private readonly maxConcurrent: number;
  private readonly reserve: number;
  private readonly maxWindow: number;
  private readonly runBlocks: number;
  private readonly prefetchBudget: number;
  private prefetchBytes = 0;
  private readonly transport: S3Transport;
  private readonly memory: MemoryTier;
  private readonly disk: DiskTier | undefined;
  private readonly meters: S3Meters;
  private readonly inflight = new Map<string, Pending>();
  private readonly waiting: [Fetch[], Fetch[]] = [[], []];
  private active = 0;
  /** Blocks brought in by read-ahead that no reader has used yet. */
  private readonly prefetched = new LRUCache<string, true>({ max: 4096 });
  /** Latest ETag seen per key, to drop the blocks of replaced versions. */
  private readonly latest = new LRUCache<string, string>({ max: 100_000 });

  constructor(o: ReadEngineOptions, transport: S3Transport, memory: MemoryTier, disk: DiskTier | undefined, meters: S3Meters) {
    this.blockSize = o.blockSize;
    const page = o.pageSize ?? 128 * 1024;
    this.pageSize = page > 0 && page < o.blockSize && o.blockSize % page === 0 ? page : 0;
    this.maxConcurrent = Math.max(1, o.maxConcurrent);
    this.reserve = this.maxConcurrent > 2 ? Math.max(1, Math.floor(this.maxConcurrent / 8)) : 0;
    this.maxWindow = Math.max(0, Math.floor(o.readAheadMaxBytes / o.blockSize));
    this.runBlocks = Math.max(1, Math.floor((o.maxRunBytes ?? 8 * 1024 * 1024) / o.blockSize));
    this.prefetchBudget = o.prefetchBudgetBytes ?? Math.max(o.readAheadMaxBytes, o.blockSize);
    this.transport = transport;
    this.memory = memory;
    this.disk = disk;
    this.meters = meters;
  }

  /** Records the current ETag of a key; the blocks of an older version are dropped. */
  observe(key: string, etag: string): void {
    const prev = this.latest.get(key);
    if (prev === etag) return;
    this.latest.set(key, etag);
    if (prev !== undefined) {
      this.memory.dropVersion(key, prev);
      this.disk?.dropVersion(key, prev);
    }
  }

  /** Puts freshly written content in the memory tier (read-your-writes without a GET). */
  seed(v: ObjectVersion, data: Buffer): void {
    this.observe(v.key, v.etag);
    const B = this.blockSize;
    for (let i = 0; i * B < data.length; i++) {
      const ref = { key: v.key, etag: v.etag, index: i };
      this.memory.set(blockId(B, ref), ref, Buffer.from(data.subarray(i * B, Math.min(data.length, (i + 1) * B))));
    }
  }

  async read(v: ObjectVersion, offset: number, length: number, state?: ReadState): Promise<Buffer> {
    const end = Math.min(v.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    const B = this.blockSize;
    const first = Math.floor(offset / B);
    const last = Math.floor((end - 1) / B);
    if (state !== undefined) this.track(state, offset, end, first, last);
    if (this.pageSize > 0 && (state === undefined || state.window === 0) && end - offset <= 4 * this.pageSize) {
      return this.readPages(v, offset, end);
    }
    const blocks: Promise<Buffer>[] = [];
    for (let i = first; i <= last; i++) blocks.push(this.unit(v, B, i, FG));
    if (state !== undefined && state.window > 0) this.readAhead(v, state, last);
    const bufs = await Promise.all(blocks);
    return assemble(bufs.map((buf, k) => ({ buf, base: (first + k) * B })), offset, end);
  }

  private async readPages(v: ObjectVersion, offset: number, end: number): Promise<Buffer> {
    const P = this.pageSize;
    const parts: Promise<{ buf: Buffer; base: number }>[] = [];
    for (let p = Math.floor(offset / P); p <= Math.floor((end - 1) / P); p++) parts.push(this.page(v, p));
    return assemble(await Promise.all(parts), offset, end);
  }

  /** One page for a random read: from its block when that is at hand, else a page-sized GET. */
  private page(v: ObjectVersion, p: number): Promise<{ buf: Buffer; base: number }> {
    const bi = Math.floor((p * this.pageSize) / this.blockSize);
    const base = bi * this.blockSize;
    const bigId = blockId(this.blockSize, { key: v.key, etag: v.etag, index: bi });
    if (this.memory.has(bigId) || this.inflight.has(bigId) || this.disk?.has(bigId) === true) {
      return this.unit(v, this.blockSize, bi, FG).then((buf) => ({ buf, base }));
    }
    return this.unit(v, this.pageSize, p, FG).then((buf) => ({ buf, base: p * this.pageSize }));
  }

  private track(s: ReadState, offset: number, end: number, first: number, last: number): void {
    if (offset === s.next || (s.next === -1 && offset === 0)) {
      if (last > s.lastBlock || s.window === 0) s.window = s.window === 0 ? Math.min(1, this.maxWindow) : Math.min(this.maxWindow, s.window * 2);
    } else {
      s.window = 0;
      s.ahead = -1;
    }
    s.next = end;
    s.lastBlock = Math.max(first, last);
  }

  /** Tops the window up once half of it is used, in runs of adjacent missing blocks. */
  private readAhead(v: ObjectVersion, s: ReadState, last: number): void {
    const lastBlockOfObject = Math.floor((v.size - 1) / this.blockSize);
    const target = Math.min(lastBlockOfObject, last + s.window);
    if (s.ahead > last && s.ahead - last >= Math.ceil(s.window / 2)) return;
    // Everything up to `done` is cached, in flight or scheduled now.
    let done = Math.max(last, s.ahead);
    let run: number[] = [];
    const flush = (): boolean => {
      if (run.length === 0) return true;
      if (this.prefetchBytes + run.length * this.blockSize > this.prefetchBudget) return false;
      this.fetch(v, this.blockSize, run[0] as number, run.length, BG);
      done = run[run.length - 1] as number;
      run = [];
      return true;
    };
    for (let i = done + 1; i <= target; i++) {
      const id = blockId(this.blockSize, { key: v.key, etag: v.etag, index: i });
      const onDisk = this.disk?.has(id) === true;
      if (this.memory.has(id) || this.inflight.has(id) || onDisk) {
        if (!flush()) break;
        if (onDisk && !this.memory.has(id) && !this.inflight.has(id)) this.unit(v, this.blockSize, i, BG).catch(() => undefined);
        done = i;
        continue;
      }
      run.push(i);
      if (run.length >= this.runBlocks && !flush()) break;
    }
    flush();
    s.ahead = Math.max(s.ahead, done);
  }

  /** One block of a version, through the tiers; at most one fetch per block at a time. */
  block(v: ObjectVersion, index: number, priority: number): Promise<Buffer> {
    return this.unit(v, this.blockSize, index, priority);
  }

  /** Unit `index` of `unitSize` bytes (a block, or a page of a random read). */
  private unit(v: ObjectVersion, unitSize: number, index: number, priority: number): Promise<Buffer> {
    const ref: BlockRef = { key: v.key, etag: v.etag, index };
    const id = blockId(unitSize, ref);
    const cached = this.memory.get(id);
    if (cached !== undefined) {
      if (priority === FG) {
        this.meters.hit('memory');
        if (this.prefetched.delete(id)) this.meters.readAheadHit();
      }
      return Promise.resolve(cached);
    }
    const running = this.inflight.get(id);
    if (running !== undefined) {
      // Joining a fetch in flight is neither a hit nor a new miss: the fetch was counted once.
      if (priority === FG) {
        if (running.prefetch && this.prefetched.delete(id)) this.meters.readAheadHit();
        if (running.fetch !== undefined) this.promote(running.fetch);
      }
      return running.promise;
    }
    if (priority === FG) this.meters.miss('memory');
    const disk = unitSize === this.blockSize ? this.disk : undefined;
    if (disk === undefined) return this.fetch(v, unitSize, index, 1, priority)[0] as Promise<Buffer>;
    // Disk first (no fetch slot needed), then S3.
    const len = Math.min(unitSize, v.size - index * unitSize);
    const pending: Pending = { fetch: undefined, prefetch: priority === BG, promise: undefined as unknown as Promise<Buffer> };
    pending.promise = (async () => {
      await disk.ready;
      const fromDisk = disk.has(id) ? await disk.get(id, len) : undefined;
      if (fromDisk !== undefined) {
        this.meters.hit('disk');
        this.memory.set(id, ref, fromDisk);
        if (this.inflight.get(id) === pending) this.inflight.delete(id);
        return fromDisk;
      }
      this.meters.miss('disk');
      if (this.inflight.get(id) === pending) this.inflight.delete(id);
      return this.fetch(v, unitSize, index, 1, priority)[0] as Promise<Buffer>;
    })();
    this.inflight.set(id, pending);
    return pending.promise;
  }

  /** Units [first, first + count) with one ranged GET; returns one promise per unit. */
  private fetch(v: ObjectVersion, unitSize: number, first: number, count: number, priority: number): Promise<Buffer>[] {
    const start = first * unitSize;
    const end = Math.min(v.size, (first + count) * unitSize);
    const f: Fetch = { priority };
    const prefetch = priority === BG;
    const units: { id: string; ref: BlockRef; resolve: (b: Buffer) => void; reject: (e: unknown) => void; pending: Pending }[] = [];
    for (let k = 0; k < count; k++) {
      const ref: BlockRef = { key: v.key, etag: v.etag, index: first + k };
      const id = blockId(unitSize, ref);
      let resolve!: (b: Buffer) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<Buffer>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Read-ahead nobody waits for must not surface as an unhandled rejection.
      promise.catch(() => undefined);
      const pending: Pending = { fetch: f, prefetch, promise };
      this.inflight.set(id, pending);
      if (prefetch) this.prefetched.set(id, true);
      units.push({ id, ref, resolve, reject, pending });
    }
    const budget = prefetch ? end - start : 0;
    this.prefetchBytes += budget;
    void (async () => {
      try {
        await this.slot(f);
        let data: Buffer[];
        try {
          data = await this.transport.getPieces(v.key, start, end, unitSize, v.etag, v.path);
        } finally {
          this.release();
        }
        const disk = unitSize === this.blockSize ? this.disk : undefined;
        for (let k = 0; k < units.length; k++) {
          const u = units[k]!;
          const buf = data[k] as Buffer;
          this.memory.set(u.id, u.ref, buf);
          disk?.put(u.id, u.ref, buf);
          u.resolve(buf);
        }
      } catch (e) {
        if (e instanceof EtagChangedError) this.observe(v.key, e.etag);
        for (const u of units) {
          this.prefetched.delete(u.id);
          u.reject(e);
        }
      } finally {
        this.prefetchBytes -= budget;
        for (const u of units) if (this.inflight.get(u.id) === u.pending) this.inflight.delete(u.id);
      }
    })();
    return units.map((u) => u.pending.promise);
  }

  private slot(f: Fetch): Promise<void> {
    if (this.canStart(f.priority)) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      f.grant = resolve;
      this.waiting[f.priority]!.push(f);
    });
  }

  private canStart(priority: number): boolean {
    return priority === FG ? this.active < this.maxConcurrent : this.active < this.maxConcurrent - this.reserve;
  }

  private release(): void {
    this.active--;
    for (const p of [FG, BG]) {
      const q = this.waiting[p]!;
      while (q.length > 0 && this.canStart(p)) {
        const f = q.shift() as Fetch;
        const grant = f.grant;
        f.grant = undefined;
        this.active++;
        grant?.();
      }
    }
  }

  private promote(f: Fetch): void {
    if (f.priority === FG) return;
    f.priority = FG;
    const bg = this.waiting[BG];
    const i = bg.indexOf(f);
    if (i < 0) return;
    bg.splice(i, 1);
    if (this.canStart(FG)) {
      const grant = f.grant;
      f.grant = undefined;
      this.active++;
      grant?.();
    } else {
      this.waiting[FG].push(f);
    }
  }
}

/** The bytes [offset, end) out of consecutive pieces: a view when one piece covers them. */
function assemble(parts: { buf: Buffer; base: number }[], offset: number, end: number): Buffer {
  if (parts.length === 1) {
    const { buf, base } = parts[0] as { buf: Buffer; base: number };
    return buf.subarray(offset - base, Math.min(buf.length, end - base));
  }
  const out = Buffer.allocUnsafe(end - offset);
  for (const { buf, base } of parts) {
    const from = Math.max(offset, base);
    const to = Math.min(end, base + buf.length);
    buf.copy(out, from - offset, from - base, to - base);
  }
  return out;
}
