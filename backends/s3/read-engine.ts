/**
 * Reads of S3 objects by block: ranged GETs of `blockSize` bytes, two cache tiers, read-ahead.
 *
 * - Only the blocks a read touches are fetched: a read at 900 MiB of a 1 GiB object costs one
 *   ranged GET of the block holding it (plus read-ahead once the reader proves sequential).
 * - Single flight: concurrent readers of one block share one GET (and one disk read).
 * - Priorities: fetches wait for one of `maxConcurrent` slots; foreground reads are served before
 *   read-ahead, which may also never take the last `reserve` slots, and a queued read-ahead that a
 *   reader starts waiting for is promoted.
 * - Read-ahead tops its window up when a quarter of it is left, in runs of adjacent blocks fetched
 *   by one GET each; a reader at its full window asks for `maxRunBytes` (128 MiB) at once. Few,
 *   large requests matter: every GET costs the client several ms of CPU (the SDK, and the garbage
 *   collection each response sets off), so 8 MiB GETs cost about twice the CPU per byte of one
 *   streamed GetObject, 64 MiB ones the same. Each GET hands its blocks over one by one as they
 *   complete (transport.getStream), so a reader waits for its block, not for the whole run.
 * - Read-ahead bytes are bounded across readers (`prefetchBudgetBytes`): admitted and in flight,
 *   plus landed and not read yet. A long GET's body is gated block by block against that budget
 *   (admit()): without room it is not read (TCP pauses the store) until readers free some. Landed
 *   read-ahead blocks wait in the memory tier's `ahead` area, which its LRU cannot evict, so a
 *   window never pushes out blocks fetched for a reader before it reads them (block-cache.ts). A
 *   reader that seeks away or closes stops its read-ahead (cancelReadAhead()).
 * - `read()` returns a buffer of its own (one copy out of the cache) on a stream's first pass over
 *   blocks fetched from S3, which are recycled (BlockPool): a stream moves data into memory that is
 *   already mapped. Re-reads of cached blocks and blocks read from the disk tier get views (no
 *   copy; callers treat read results as read-only). `readInto()` copies into the caller's buffer.
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
import { BlockPool, blockId, type BlockRef, type BlockSink, type DiskTier, type MemoryTier } from './block-cache.ts';
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
  /** Stops for this reader's read-ahead GETs in flight (the reader moved away or closed). */
  readonly fetches = new Set<() => void>();
  /** Blocks read-ahead landed for this reader, by index, not yet passed by it. */
  readonly landed = new Map<number, string>();
}

export interface ReadEngineOptions {
  blockSize: number;
  /** Largest GET read-ahead issues for adjacent blocks (default 128 MiB; its bytes come in as the budget allows). */
  maxRunBytes?: number;
  /** Read-ahead bytes across all readers: admitted and in flight, plus landed and unread (default readAheadMaxBytes + blockSize). */
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
/**
 * A read-ahead GET held back this long for lack of budget ends there (its reader is slow or gone):
 * a store may drop a connection that is not read from, and the GET holds a fetch slot meanwhile.
 */
const GATE_WAIT_MS = 10_000;

/** A read-ahead GET waiting to go on with its next block (see admit()). */
interface GateWaiter {
  size: number;
  /** A foreground reader waits for this block or a later one of the same GET: it must go on. */
  needed: () => boolean;
  /** The GET's reader moved away: end it. */
  cancelled: () => boolean;
  resolve: (go: boolean) => void;
  timer: NodeJS.Timeout;
}

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
  /** Blocks read from the disk tier, and blocks a sequential reader has gone past (read() returns views of them). */
  private readonly viewable = new WeakSet<ArrayBufferLike>();
  private readonly take = (size: number): Buffer => {
    const b = this.pool.take(size);
    this.viewable.delete(b.buffer);
    return b;
  };
  private readonly inflight = new Map<string, Pending>();
  /** Read-ahead GETs held back for budget, oldest first. */
  private readonly gateWaiters: GateWaiter[] = [];
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
    this.runBlocks = Math.max(1, Math.floor((o.maxRunBytes ?? 128 * 1024 * 1024) / o.blockSize));
    // The window plus the block its reader is waiting for (in flight too while the window refills).
    this.prefetchBudget = o.prefetchBudgetBytes ?? Math.max(o.readAheadMaxBytes, o.blockSize) + o.blockSize;
    this.transport = transport;
    this.memory = memory;
    this.disk = disk;
    this.meters = meters;
    // A stream releases one block for each it takes, and takes them one at a time as its GET's bytes
    // arrive (disk-tier reads do not use the pool): a few suffice; every one kept is memory held.
    this.pool = new BlockPool(o.blockSize, 4);
    memory.pool = this.pool;
    memory.onAheadFreed = () => this.wake();
    if (disk !== undefined) memory.onSpill = (id, b, data, done) => disk.put(id, b, data, done);
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

  /**
   * A write-through sink for an upload to `key` (block-cache.ts BlockSink): its bytes land in the
   * disk tier under the ETag the store assigns. Undefined without a disk tier.
   */
  sink(key: string, sizeHint: number | undefined): BlockSink | undefined {
    return this.disk?.sink(key, this.blockSize, sizeHint);
  }

  /**
   * Puts freshly written content (a small object written whole, one PutObject) in the memory tier:
   * read-your-writes without a GET. Its blocks reach the disk tier only when memory evicts them:
   * a file write per small PUT (open, writev, close, rename through the thread pool) had cost about
   * a fifth of the gateway's CPU per 4 KiB PUT (6.7 -> 5.2 ms of process CPU time each without
   * it). A restart loses what memory held: those files are read from the store again.
   */
  seed(v: ObjectVersion, data: Buffer): void {
    this.observe(v.key, v.etag);
    const B = this.blockSize;
    for (let i = 0; i * B < data.length; i++) {
      const ref = { key: v.key, etag: v.etag, index: i };
      const part = data.subarray(i * B, Math.min(data.length, (i + 1) * B));
      const copy = this.take(part.length);
      part.copy(copy);
      this.memory.set(blockId(B, ref), ref, copy, false, this.disk !== undefined);
    }
  }

  /**
   * The unit a read of [offset, offset + length) by a new reader fetches first, when it is one
   * unit: block 0 for a read at 0 (sequential from the start), else the random-read page holding
   * the whole read. Undefined when the read spans units (or pages are off and it is not at 0).
   */
  firstUnit(offset: number, length: number): { size: number; index: number } | undefined {
    if (offset === 0 && length <= this.blockSize) return { size: this.blockSize, index: 0 };
    const P = this.pageSize;
    if (P === 0 || Math.floor(offset / P) !== Math.floor((offset + length - 1) / P)) return undefined;
    return { size: P, index: Math.floor(offset / P) };
  }

  /**
   * Unit `index` of `unitSize` bytes (a block or a page; the object's last one may be shorter),
   * fetched outside the engine (S3Backend's GET that was also a lookup): cached as fetch() caches
   * what it gets - memory tier, and a block also to the disk tier. Kept out when the unit is
   * already cached or in flight.
   */
  adopt(v: ObjectVersion, unitSize: number, index: number, buf: Buffer): void {
    this.observe(v.key, v.etag);
    const ref: BlockRef = { key: v.key, etag: v.etag, index };
    const id = blockId(unitSize, ref);
    if (this.memory.has(id) || this.inflight.has(id)) return;
    this.memory.set(id, ref, buf);
    const disk = unitSize === this.blockSize ? this.disk : undefined;
    if (disk !== undefined) {
      const op = this.pool.enter();
      disk.put(id, ref, buf, () => this.pool.leave(op));
    }
  }

  async read(v: ObjectVersion, offset: number, length: number, state?: ReadState): Promise<Buffer> {
    const end = Math.min(v.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    const op = this.pool.enter();
    try {
      const got = this.collect(v, offset, end, state);
      const parts = got instanceof Promise ? await got : got;
      // Decision: the first pass of a stream over blocks fetched from S3 gets copies (buffers of the
      // caller's own), so those blocks stay recyclable (BlockPool): a view would make each one a
      // fresh 4 MiB allocation that turns into garbage when it leaves the cache, and with long GETs
      // (few GCs) that garbage piled up - a 2 GiB download through read() peaked at ~330 MB RSS with
      // views, ~265 MB with copies, for the same CPU (the copy costs about what the page faults of
      // fresh blocks did). A block that is read again after a reader went past it (a re-read: the
      // cache at work) and a block read from the disk tier (a fresh buffer the thread pool filled,
      // its page faults off the event loop) get views: no copy at all; they are not recycled then.
      if (parts.length === 1 && this.viewable.has((parts[0] as Part).buf.buffer)) {
        const { buf, base } = parts[0] as Part;
        this.pool.exportView(buf);
        return buf.subarray(offset - base, Math.min(buf.length, end - base));
      }
      const out = Buffer.allocUnsafe(end - offset);
      copyParts(parts, offset, end, out);
      // Read to its end: reading that block again is a re-read too.
      const tail = parts[parts.length - 1] as Part;
      if (end === tail.base + tail.buf.length) this.viewable.add(tail.buf.buffer);
      return out;
    } finally {
      this.pool.leave(op);
    }
  }

  /** Like read(), into `target` (from its start): a stream read this way allocates no memory at all. */
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
    if (state !== undefined) {
      // A reader went past a block: reading it again later is a re-read (read() may give views).
      if (state.lastBlock >= 0 && first > state.lastBlock) {
        const passed = this.memory.peek(blockId(B, { key: v.key, etag: v.etag, index: state.lastBlock }));
        if (passed !== undefined) this.viewable.add(passed.buffer);
      }
      this.track(state, offset, end, first, last);
    }
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
      this.cancelReadAhead(s);
    }
    s.next = end;
    s.lastBlock = Math.max(first, last);
  }

  /**
   * Tops the read-ahead up once the lead (blocks ahead of the reader, cached, in flight or asked
   * for) is down to a quarter of the window, in runs of adjacent missing blocks fetched by one GET
   * each. A reader whose window is at its maximum asks for `runBlocks` (128 MiB) at once: its GET's
   * blocks come in only as the budget allows (admit()), so memory stays bounded by the budget while
   * a stream costs one GET per 128 MiB.
   */
  private readAhead(v: ObjectVersion, s: ReadState, last: number): void {
    // Until the disk tier knows what it holds (start-up scan), every block would look missing and
    // be fetched from S3: plan once it does.
    if (this.disk !== undefined && !this.disk.isReady) {
      void this.disk.ready.then(() => this.readAhead(v, s, last));
      return;
    }
    for (const i of s.landed.keys()) if (i <= last) s.landed.delete(i);
    const lastBlockOfObject = Math.floor((v.size - 1) / this.blockSize);
    const span = s.window >= this.maxWindow ? Math.max(s.window, this.runBlocks) : s.window;
    const target = Math.min(lastBlockOfObject, last + span);
    if (s.ahead > last && s.ahead - last > Math.floor(s.window / 4)) return;
    // Everything up to `done` is cached, in flight or scheduled now.
    let done = Math.max(last, s.ahead);
    let run: number[] = [];
    const flush = (): boolean => {
      if (run.length === 0) return true;
      this.fetch(v, this.blockSize, run[0] as number, run.length, BG, s);
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

  /** Read-ahead bytes the budget still has room for (admitted and in flight, landed and not read yet). */
  private room(): number {
    return this.prefetchBudget - this.prefetchBytes - this.memory.aheadBytes;
  }

  /**
   * The gate of read-ahead GETs (transport.getStream): may the next block (`size` bytes) come in?
   * Yes when the budget has room (the bytes are then reserved until the block lands), or when a
   * reader waits for it or for a later block of the same GET. Otherwise the GET is held (its body
   * not read) until room frees up, in order of arrival; after GATE_WAIT_MS it ends there.
   */
  private admit(size: number, needed: () => boolean, cancelled: () => boolean): boolean | Promise<boolean> {
    if (cancelled()) return false;
    if (needed()) {
      this.prefetchBytes += size;
      return true;
    }
    // Blocks whose reader went away must not hold the budget for ever.
    if (this.room() < size && this.gateWaiters.length === 0) this.memory.demoteStale(AHEAD_STALE_MS);
    if (this.gateWaiters.length === 0 && this.room() >= size) {
      this.prefetchBytes += size;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const w: GateWaiter = {
        size,
        needed,
        cancelled,
        resolve,
        timer: setTimeout(() => {
          const i = this.gateWaiters.indexOf(w);
          if (i >= 0) this.gateWaiters.splice(i, 1);
          resolve(false);
          this.wake();
        }, GATE_WAIT_MS),
      };
      w.timer.unref?.();
      this.gateWaiters.push(w);
    });
  }

  /**
   * Lets held read-ahead GETs go on, oldest first, as far as the budget allows; one a reader needs
   * goes at once, one whose reader moved away ends.
   */
  private wake(): void {
    let blocked = false;
    for (let i = 0; i < this.gateWaiters.length; ) {
      const w = this.gateWaiters[i] as GateWaiter;
      const cancelled = w.cancelled();
      const go = !cancelled && (w.needed() || (!blocked && this.room() >= w.size));
      if (!go && !cancelled) {
        // In order: a later GET does not overtake an earlier one, unless a reader needs it.
        blocked = true;
        i++;
        continue;
      }
      this.gateWaiters.splice(i, 1);
      clearTimeout(w.timer);
      if (go) this.prefetchBytes += w.size;
      w.resolve(go);
    }
  }

  /** The reader moved away (or closed): its read-ahead GETs stop, their unread blocks join the LRU. */
  cancelReadAhead(s: ReadState): void {
    if (s.fetches.size === 0 && s.landed.size === 0) return;
    for (const stop of [...s.fetches]) stop();
    s.fetches.clear();
    for (const id of s.landed.values()) this.memory.demote(id);
    s.landed.clear();
    this.wake();
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
        // A read-ahead GET held back at or before this block must go on now.
        if (this.gateWaiters.length > 0) this.wake();
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
      // A fresh buffer, not a pooled one: read() returns views of disk blocks (see read()).
      const fromDisk = disk.has(id) ? await disk.get(id, len) : undefined;
      if (fromDisk !== undefined) {
        this.viewable.add(fromDisk.buffer);
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
   * soon as its bytes are in (transport.getStream). Read-ahead (BG) GETs go through the budget gate
   * block by block (admit()); one held back too long ends early, its blocks no one waits for are
   * dropped (and `state` learns they were not fetched), those a reader joined meanwhile are fetched
   * for it.
   */
  private fetch(v: ObjectVersion, unitSize: number, first: number, count: number, priority: number, state?: ReadState): Promise<Buffer>[] {
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
    let delivered = 0;
    /** Bytes admitted by the gate and not landed yet. */
    let admitted = 0;
    let cancelled = false;
    const stop = (): void => {
      cancelled = true;
    };
    if (prefetch) state?.fetches.add(stop);
    const sizeOf = (k: number): number => Math.min(unitSize, end - (start + k * unitSize));
    const gate = prefetch
      ? (k: number): boolean | Promise<boolean> => {
          const needed = (): boolean => units.slice(k).some((u) => u.pending.used);
          const go = this.admit(sizeOf(k), needed, () => cancelled);
          const count = (ok: boolean): boolean => {
            if (ok) admitted += sizeOf(k);
            return ok;
          };
          return go instanceof Promise ? go.then(count) : count(go);
        }
      : undefined;
    const disk = unitSize === this.blockSize ? this.disk : undefined;
    const deliver = (k: number, buf: Buffer): void => {
      const u = units[k] as (typeof units)[number];
      delivered = k + 1;
      if (prefetch) {
        this.prefetchBytes -= buf.length;
        admitted -= buf.length;
      }
      // Read-ahead whose reader moved away lands as an ordinary cache entry (no budget held).
      const ahead = !u.pending.used && !cancelled;
      this.memory.set(u.id, u.ref, buf, ahead);
      if (ahead) state?.landed.set(u.ref.index, u.id);
      if (disk !== undefined) {
        // The write reads `buf` in the background: it must not be recycled meanwhile.
        const op = this.pool.enter();
        disk.put(u.id, u.ref, buf, () => this.pool.leave(op));
      }
      if (this.inflight.get(u.id) === u.pending) this.inflight.delete(u.id);
      u.resolve(buf);
      // Landed in the LRU (a reader took it), the budget has room again.
      if (prefetch && u.pending.used) this.wake();
    };
    void (async () => {
      let failure: unknown;
      try {
        await this.slot(f);
        try {
          await this.transport.getStream(v.key, start, end, unitSize, v.etag, v.path, deliver, this.take, gate);
        } finally {
          this.release();
        }
      } catch (e) {
        failure = e;
        if (e instanceof EtagChangedError) this.observe(v.key, e.etag);
      } finally {
        state?.fetches.delete(stop);
        if (admitted > 0) {
          this.prefetchBytes -= admitted;
          admitted = 0;
          this.wake();
        }
      }
      const rest = units.slice(delivered);
      if (rest.length === 0) return;
      if (failure === undefined && state !== undefined && !cancelled) {
        // Ended early by the gate: read-ahead has not got these blocks after all.
        state.ahead = Math.min(state.ahead, first + delivered - 1);
      }
      for (const u of rest) {
        if (this.inflight.get(u.id) === u.pending) this.inflight.delete(u.id);
        this.prefetched.delete(u.id);
        if (failure !== undefined) u.reject(failure);
        else if (u.pending.used) {
          // A reader joined a block the GET gave up on: fetch it for that reader.
          (this.fetch(v, unitSize, u.ref.index, 1, FG)[0] as Promise<Buffer>).then(u.resolve, u.reject);
        } else u.reject(new Error('read-ahead ended early'));
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
