/**
 * Reads of S3 objects by block: ranged GETs of `blockSize` bytes, two cache tiers, read-ahead.
 *
 * - Only the blocks a read touches are fetched: a read at 900 MiB of a 1 GiB object costs one
 *   ranged GET of the block holding it (plus read-ahead once the reader proves sequential).
 * - Single flight: concurrent readers of one block share one GET (and one disk read).
 * - Priorities: fetches wait for one of `maxConcurrent` slots; foreground reads are served before
 *   read-ahead, which may also never take the last `reserve` slots, and a queued read-ahead that a
 *   reader starts waiting for is promoted.
 * - Read-ahead refills its window when three quarters of it have been consumed, in runs of adjacent
 *   blocks fetched by one GET each (up to `maxRunBytes`, default 32 MiB): few, large requests for
 *   streams, while the cache keeps its block granularity. Each GET hands its blocks over one by one
 *   as they complete (transport.getStream), so a reader waits for its block, not for the whole run;
 *   large runs therefore cost no latency, and they matter: every GET costs the client several ms of
 *   CPU (the SDK, and the garbage collection each response triggers), so 4 MiB GETs cost about
 *   three times the CPU per byte of one streamed GetObject, 24-32 MiB GETs about the same.
 * - Read-ahead bytes are bounded across readers (`prefetchBudgetBytes`): those in flight plus those
 *   landed and not read yet. Landed read-ahead blocks wait in the memory tier's `ahead` area, which
 *   its LRU cannot evict, so a window never pushes out blocks fetched for a reader before it reads
 *   them (block-cache.ts).
 * - `read()` results may be views of cached blocks (no copy for a read inside one block): callers
 *   must treat returned buffers as read-only. `readInto()` copies into the caller's buffer.
 * - Reads of cached blocks complete without a promise per block (one await per read).
 * - Read-ahead: a reader whose read starts where its previous one ended (or at offset 0) is
 *   sequential; its window starts at one block and doubles each time it enters a new block, up to
 *   `readAheadMaxBytes` (and the budget). Any other read resets it to zero.
 * - Random reads: a small read that is not sequential fetches only the aligned `pageSize` pages it
 *   touches (default 128 KiB), not whole blocks, so its first byte costs about what one ranged GET
 *   of the read would; a block that is already cached, on disk or in flight serves it instead.
 *   Pages live in the memory tier only.
 * - Versions: blocks are cached under the ETag they were read with and every GET must answer with
 *   that ETag; a different one raises EtagChangedError, and the old version's blocks are dropped.
 */
import { LRUCache } from 'lru-cache';
import { BlockPool, blockId, type BlockRef, type DiskTier, type MemoryTier } from './block-cache.ts';
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
  /** Largest GET read-ahead issues for adjacent blocks (default 32 MiB). */
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
/** Read-ahead blocks nobody read for this long give their budget back (their reader went away). */
const AHEAD_STALE_MS = 10_000;

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
  /** A foreground reader waits for it: the block goes to the LRU, not the read-ahead area. */
  used: boolean;
  promise: Promise<Buffer>;
}

/** A cached piece of an object: `buf` holds bytes [base, base + buf.length). */
interface Part {
  buf: Buffer;
  base: number;
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
  /** Block buffers for reuse (block-cache.ts BlockPool); shared with the memory tier. */
  private readonly pool: BlockPool;
  private readonly take = (size: number): Buffer => this.pool.take(size);
  private readonly recycle = (buf: Buffer): void => this.pool.release(buf);
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
    this.runBlocks = Math.max(1, Math.floor((o.maxRunBytes ?? 32 * 1024 * 1024) / o.blockSize));
    // The window plus the block its reader is waiting for (in flight too while the window refills).
    this.prefetchBudget = o.prefetchBudgetBytes ?? Math.max(o.readAheadMaxBytes, o.blockSize) + o.blockSize;
    this.transport = transport;
    this.memory = memory;
    this.disk = disk;
    this.meters = meters;
    // A stream releases one block for each it takes, but takes them in bursts (a read-ahead refill):
    // room for one window's worth.
    this.pool = new BlockPool(o.blockSize, Math.max(4, Math.min(16, Math.ceil(this.prefetchBudget / o.blockSize))));
    memory.pool = this.pool;
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
      const part = data.subarray(i * B, Math.min(data.length, (i + 1) * B));
      const copy = this.pool.take(part.length);
      part.copy(copy);
      this.memory.set(blockId(B, ref), ref, copy);
    }
  }

  async read(v: ObjectVersion, offset: number, length: number, state?: ReadState): Promise<Buffer> {
    const end = Math.min(v.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    const op = this.pool.enter();
    try {
      const got = this.collect(v, offset, end, state);
      const parts = got instanceof Promise ? await got : got;
      if (parts.length === 1) {
        // A view of the cached block (no copy); its buffer is never recycled from now on.
        const { buf, base } = parts[0] as Part;
        this.pool.exportView(buf);
        return buf.subarray(offset - base, Math.min(buf.length, end - base));
      }
      const out = Buffer.allocUnsafe(end - offset);
      copyParts(parts, offset, end, out);
      return out;
    } finally {
      this.pool.leave(op);
    }
  }

  /**
   * Like read(), into `target` (from its start): the bytes are copied once, out of the cache, and
   * the blocks stay recyclable (no view escapes), so a stream read this way allocates no memory.
   */
  async readInto(v: ObjectVersion, offset: number, target: Uint8Array, state?: ReadState): Promise<number> {
    const end = Math.min(v.size, offset + target.length);
    if (end <= offset) return 0;
    const op = this.pool.enter();
    try {
      const got = this.collect(v, offset, end, state);
      copyParts(got instanceof Promise ? await got : got, offset, end, target);
      return end - offset;
    } finally {
      this.pool.leave(op);
    }
  }

  /** The cached pieces covering [offset, end): at once when all are in memory, else a promise. */
  private collect(v: ObjectVersion, offset: number, end: number, state: ReadState | undefined): Part[] | Promise<Part[]> {
    const B = this.blockSize;
    const first = Math.floor(offset / B);
    const last = Math.floor((end - 1) / B);
    if (state !== undefined) this.track(state, offset, end, first, last);
    if (this.pageSize > 0 && (state === undefined || state.window === 0) && end - offset <= 4 * this.pageSize) {
      return this.readPages(v, offset, end);
    }
    const parts: Part[] = [];
    let waits: Promise<Buffer>[] | undefined;
    for (let i = first; i <= last; i++) {
      const cached = this.cachedForeground(blockId(B, { key: v.key, etag: v.etag, index: i }));
      if (cached !== undefined) parts.push({ buf: cached, base: i * B });
      else (waits ??= []).push(this.unit(v, B, i, FG).then((buf) => {
        parts.push({ buf, base: i * B });
        return buf;
      }));
    }
    if (state !== undefined && state.window > 0) this.readAhead(v, state, last);
    if (waits === undefined) return parts;
    return Promise.all(waits).then(() => parts.sort((a, b) => a.base - b.base));
  }

  /** A block in memory, for a foreground read (counted as a hit; a read-ahead hit when prefetched). */
  private cachedForeground(id: string): Buffer | undefined {
    const buf = this.memory.get(id);
    if (buf === undefined) return undefined;
    this.meters.hit('memory');
    if (this.prefetched.delete(id)) this.meters.readAheadHit();
    return buf;
  }

  private readPages(v: ObjectVersion, offset: number, end: number): Promise<Part[]> {
    const P = this.pageSize;
    const parts: Promise<Part>[] = [];
    for (let p = Math.floor(offset / P); p <= Math.floor((end - 1) / P); p++) parts.push(this.page(v, p));
    return Promise.all(parts);
  }

  /** One page for a random read: from its block when that is at hand, else a page-sized GET. */
  private page(v: ObjectVersion, p: number): Promise<Part> {
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

  /**
   * Tops the window up once the lead (blocks ahead of the reader, cached or in flight) is down to a
   * quarter of it, in runs of adjacent missing blocks: GETs of three quarters of the window, while a
   * quarter is still ahead to read meanwhile (the next run's first block arrives after one block's
   * transfer, progressive delivery).
   */
  private readAhead(v: ObjectVersion, s: ReadState, last: number): void {
    // Until the disk tier knows what it holds (start-up scan), every block would look missing and
    // be fetched from S3: plan once it does.
    if (this.disk !== undefined && !this.disk.isReady) {
      void this.disk.ready.then(() => this.readAhead(v, s, last));
      return;
    }
    const lastBlockOfObject = Math.floor((v.size - 1) / this.blockSize);
    const target = Math.min(lastBlockOfObject, last + s.window);
    if (s.ahead > last && s.ahead - last > Math.floor(s.window / 4)) return;
    // Everything up to `done` is cached, in flight or scheduled now.
    let done = Math.max(last, s.ahead);
    let run: number[] = [];
    // Fetches the run, or as much of its start as the budget allows (false: budget exhausted).
    const flush = (): boolean => {
      if (run.length === 0) return true;
      const n = Math.min(run.length, this.budgetBlocks());
      if (n > 0) {
        this.fetch(v, this.blockSize, run[0] as number, n, BG);
        done = run[n - 1] as number;
      }
      const all = n === run.length;
      run = [];
      return all;
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

  /** How many more blocks of read-ahead fit in the budget (in flight + landed and not read yet). */
  private budgetBlocks(): number {
    const room = (): number => Math.floor((this.prefetchBudget - this.prefetchBytes - this.memory.aheadBytes) / this.blockSize);
    const n = room();
    if (n > 0) return n;
    // Blocks whose reader went away must not hold the budget for ever.
    return this.memory.demoteStale(AHEAD_STALE_MS) > 0 ? Math.max(0, room()) : 0;
  }

  /** One block of a version, through the tiers; at most one fetch per block at a time. */
  block(v: ObjectVersion, index: number, priority: number): Promise<Buffer> {
    return this.unit(v, this.blockSize, index, priority);
  }

  /** Unit `index` of `unitSize` bytes (a block, or a page of a random read). */
  private unit(v: ObjectVersion, unitSize: number, index: number, priority: number): Promise<Buffer> {
    const ref: BlockRef = { key: v.key, etag: v.etag, index };
    const id = blockId(unitSize, ref);
    if (priority === FG) {
      const cached = this.cachedForeground(id);
      if (cached !== undefined) return Promise.resolve(cached);
    } else {
      const cached = this.memory.peek(id);
      if (cached !== undefined) return Promise.resolve(cached);
    }
    const running = this.inflight.get(id);
    if (running !== undefined) {
      // Joining a fetch in flight is neither a hit nor a new miss: the fetch was counted once.
      if (priority === FG) {
        running.used = true;
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
    const pending: Pending = { fetch: undefined, prefetch: priority === BG, used: priority === FG, promise: undefined as unknown as Promise<Buffer> };
    pending.promise = (async () => {
      await disk.ready;
      const fromDisk = disk.has(id) ? await disk.get(id, len, this.take, this.recycle) : undefined;
      if (fromDisk !== undefined) {
        this.meters.hit('disk');
        this.memory.set(id, ref, fromDisk, !pending.used);
        if (this.inflight.get(id) === pending) this.inflight.delete(id);
        return fromDisk;
      }
      this.meters.miss('disk');
      if (this.inflight.get(id) === pending) this.inflight.delete(id);
      return this.fetch(v, unitSize, index, 1, pending.used ? FG : priority)[0] as Promise<Buffer>;
    })();
    if (pending.prefetch) pending.promise.catch(() => undefined);
    this.inflight.set(id, pending);
    return pending.promise;
  }

  /**
   * Units [first, first + count) with one ranged GET; returns one promise per unit, each settled as
   * soon as its bytes are in (transport.getStream). Read-ahead budget is given back block by block.
   */
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
      const pending: Pending = { fetch: f, prefetch, used: !prefetch, promise };
      this.inflight.set(id, pending);
      if (prefetch) this.prefetched.set(id, true);
      units.push({ id, ref, resolve, reject, pending });
    }
    let budget = prefetch ? end - start : 0;
    this.prefetchBytes += budget;
    let delivered = 0;
    const disk = unitSize === this.blockSize ? this.disk : undefined;
    const deliver = (k: number, buf: Buffer): void => {
      const u = units[k] as (typeof units)[number];
      delivered = k + 1;
      if (prefetch) {
        this.prefetchBytes -= buf.length;
        budget -= buf.length;
      }
      this.memory.set(u.id, u.ref, buf, !u.pending.used);
      if (disk !== undefined) {
        // The write reads `buf` in the background: it must not be recycled meanwhile.
        const op = this.pool.enter();
        disk.put(u.id, u.ref, buf, () => this.pool.leave(op));
      }
      if (this.inflight.get(u.id) === u.pending) this.inflight.delete(u.id);
      u.resolve(buf);
    };
    void (async () => {
      try {
        await this.slot(f);
        try {
          await this.transport.getStream(v.key, start, end, unitSize, v.etag, v.path, deliver, this.take);
        } finally {
          this.release();
        }
      } catch (e) {
        if (e instanceof EtagChangedError) this.observe(v.key, e.etag);
        for (const u of units.slice(delivered)) {
          this.prefetched.delete(u.id);
          u.reject(e);
        }
      } finally {
        this.prefetchBytes -= budget;
        for (const u of units.slice(delivered)) if (this.inflight.get(u.id) === u.pending) this.inflight.delete(u.id);
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

/** Copies the bytes [offset, end) out of consecutive pieces into `out` (from its start). */
function copyParts(parts: Part[], offset: number, end: number, out: Uint8Array): void {
  for (const { buf, base } of parts) {
    const from = Math.max(offset, base);
    const to = Math.min(end, base + buf.length);
    if (to > from) out.set(buf.subarray(from - base, to - base), from - offset);
  }
}
