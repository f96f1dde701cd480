/**
 * The one lock manager of Portico. WebDAV LOCK tokens, SMB2 byte-range locks, NFSv4 LOCK/LOCKU and FUSE
 * fcntl/flock locks all land here, so a lock taken through one protocol is enforced against the others.
 *
 * Decisions (protocol code relies on these):
 * - Owners are compared by `${protocol}:${id}`; `principal` is informational only.
 * - Same-owner exemption only applies between locks of the SAME style:
 *     posix   → the owner's own locks never conflict; a new lock replaces/merges them like fcntl(F_SETLK).
 *     windows → same handle conflicts only when the new lock is exclusive (MS-FSA 2.1.4.10: "overlapping
 *               exclusive byte-range locks are not allowed even by the same owner"; shared over own exclusive is fine).
 *     token   → no exemption: token locks (WebDAV's, RFC 4918 §6.1) are identified by their token, so the same principal
 *               asking for a second exclusive lock on a locked resource gets 423 like anybody else.
 *   The same owner key with different styles is treated as two different owners.
 * - `ancestors` lists the ids of ALL ancestor directories; order is irrelevant to the manager (callers
 *   pass root first, nearest parent last, i.e. path order). Depth-infinity locks must cover the whole range.
 * - Posix replace/split creates fresh entries (new tokens) for the pieces that remain; the removed
 *   originals are reported as 'released'. A posix grant returns the merged lock (its range may be
 *   wider than requested when it coalesced with the owner's adjacent same-kind locks).
 * - Waiters are retried in FIFO order per file, but a non-waiting request is not held back by queued
 *   waiters (fcntl behaviour; SMB and NFS clients poll or block per request anyway).
 * - releaseOwner/releaseFile also reject the affected pending waiters with ECANCELED.
 */
import { randomUUID } from 'node:crypto';
import { VfsError } from '../vfs/errors.ts';

export type FileId = bigint;

export interface LockOwner {
  /**
   * The front-end's name ('webdav', 'smb', 'nfs', 'fuse', a plugin's, or 'internal'): part of the
   * owner key only, so the lock manager knows no protocol list.
   */
  protocol: string;
  /** smb: `${sessionId}:${fileHandleId}`, nfs: `${clientid}:${owner}`, webdav: principal name, fuse: lock owner. */
  id: string;
  principal?: string;
}

export type LockKind = 'shared' | 'exclusive';
/**
 * posix: fcntl semantics; windows: SMB byte-range semantics; token: a lock identified by a token
 * that the holder presents with each change it makes (WebDAV's; a generic lock credential: any
 * front-end with such tokens uses it). Token locks block every change made without their token,
 * whatever the protocol, and are the ones that outlive a restart (lock-persistence.ts).
 */
export type LockStyle = 'posix' | 'windows' | 'token';

/** Byte range, end exclusive. */
export interface LockRange {
  start: bigint;
  end: bigint;
}

export const MAX_OFFSET = 2n ** 64n - 1n;
export const WHOLE_FILE: Readonly<LockRange> = Object.freeze({ start: 0n, end: MAX_OFFSET });

export interface LockInfo {
  token: string;
  fileId: FileId;
  owner: LockOwner;
  kind: LockKind;
  style: LockStyle;
  range: LockRange;
  depth: 0 | 'infinity';
  ancestors: FileId[];
  /** epoch ms */
  expiresAt?: number;
  timeoutMs?: number;
  createdAt: number;
  /** Protocol data (WebDAV owner XML, lock root URL, NFS stateid seqid...). Stored by reference. */
  info?: unknown;
}

export interface LockRequest {
  fileId: FileId;
  owner: LockOwner;
  kind: LockKind;
  style: LockStyle;
  /** Default: WHOLE_FILE. */
  range?: LockRange;
  depth?: 0 | 'infinity';
  /** Ids of ALL ancestor directories (path order: root first, nearest parent last; order is not significant). */
  ancestors?: FileId[];
  /** Lease; undefined = no expiry. */
  timeoutMs?: number;
  /** Block until granted instead of failing with ELOCKED. */
  wait?: { signal?: AbortSignal; timeoutMs?: number };
  info?: unknown;
  /** A reclaim after a restart: `guard` checks it against the client's record instead of refusing it. */
  reclaim?: boolean;
}

export type LockEvent = { type: 'granted' | 'released' | 'expired'; lock: LockInfo };

export interface LockManagerOptions {
  now?: () => number;
  /** Default 1e6; beyond it lock() fails with ENOLCK. */
  maxLocks?: number;
  /** Default 10_000 pending blocking waits in total; beyond it ENOLCK. */
  maxWaiters?: number;
}

interface Entry {
  token: string;
  fileId: FileId;
  owner: LockOwner;
  ownerKey: string;
  kind: LockKind;
  style: LockStyle;
  start: bigint;
  end: bigint;
  depth: 0 | 'infinity';
  ancestors: FileId[];
  expiresAt: number | undefined;
  timeoutMs: number | undefined;
  createdAt: number;
  info: unknown;
  live: boolean;
}

type Norm = Omit<Entry, 'token' | 'expiresAt' | 'createdAt' | 'live'>;

interface Waiter {
  req: Norm;
  blockers: Set<string>;
  settled: boolean;
  resolve: (info: LockInfo) => void;
  reject: (err: VfsError) => void;
  cleanup: () => void;
}

interface FileState {
  locks: Set<Entry>;
  waiters: Waiter[];
}

const KINDS = new Set(['shared', 'exclusive']);
const STYLES = new Set(['posix', 'windows', 'token']);
const MAX_TIMER_MS = 2 ** 31 - 1;

function einval(what: string): VfsError {
  return new VfsError('EINVAL', `EINVAL: ${what}`);
}

function ownerKeyOf(owner: LockOwner): string {
  if (owner === null || typeof owner !== 'object' || typeof owner.protocol !== 'string' || owner.protocol === '' || owner.protocol.includes(':') || typeof owner.id !== 'string') {
    throw einval('invalid lock owner');
  }
  return `${owner.protocol}:${owner.id}`;
}

/**
 * `empty`: a zero-length range is valid — windows style only: SMB's zero-byte locks (MS-FSA
 * 2.1.5.7, smbtorture smb2.lock.zerobytelength) are kept and conflict, by the half-open overlap
 * rule, only with a range strictly around their offset; posix and token ranges are never empty.
 */
function checkRange(range: LockRange, empty = false): void {
  if (range === null || typeof range !== 'object' || typeof range.start !== 'bigint' || typeof range.end !== 'bigint') {
    throw einval('range must be { start: bigint, end: bigint }');
  }
  if (range.start < 0n || (empty ? range.start > range.end : range.start >= range.end) || range.end > MAX_OFFSET + 1n) {
    throw einval(`invalid lock range [${range.start}, ${range.end})`);
  }
}

function checkTimeout(ms: number | undefined, what: string): void {
  if (ms !== undefined && (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0)) throw einval(`${what} must be > 0`);
}

function indexAdd<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let set = m.get(k);
  if (set === undefined) m.set(k, (set = new Set()));
  set.add(v);
}

function indexDelete<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const set = m.get(k);
  if (set?.delete(v) && set.size === 0) m.delete(k);
}

function overlaps(e: Entry, start: bigint, end: bigint): boolean {
  return e.start < end && start < e.end;
}

function toInfo(e: Entry): LockInfo {
  const out: LockInfo = {
    token: e.token,
    fileId: e.fileId,
    owner: { ...e.owner },
    kind: e.kind,
    style: e.style,
    range: { start: e.start, end: e.end },
    depth: e.depth,
    ancestors: [...e.ancestors],
    createdAt: e.createdAt,
  };
  if (e.expiresAt !== undefined) out.expiresAt = e.expiresAt;
  if (e.timeoutMs !== undefined) out.timeoutMs = e.timeoutMs;
  if (e.info !== undefined) out.info = e.info;
  return out;
}

/**
 * ELOCKED with the lock that stands in the way (its range, kind, owner and protocol info), so a
 * front-end can name the holder: NFSv4 LOCK4denied, fcntl F_GETLK. The first conflicting lock found.
 */
export class LockConflictError extends VfsError {
  readonly holder: LockInfo;
  constructor(holder: LockInfo) {
    super('ELOCKED');
    this.holder = holder;
  }
}

/** Does existing lock `e` conflict with request `r`? `sameFile` false = the pair meets through a depth-infinity lock. */
function conflicts(e: Entry, r: Norm, sameFile: boolean): boolean {
  if (sameFile && !overlaps(e, r.start, r.end)) return false;
  if (e.kind === 'shared' && r.kind === 'shared') return false;
  if (e.ownerKey === r.ownerKey && e.style === r.style) {
    if (r.style === 'posix') return false;
    if (r.style === 'windows') return r.kind === 'exclusive';
  }
  return true;
}

export class LockManager {
  readonly #now: () => number;
  readonly #maxLocks: number;
  readonly #maxWaiters: number;
  readonly #files = new Map<FileId, FileState>();
  readonly #byToken = new Map<string, Entry>();
  readonly #byOwner = new Map<string, Set<Entry>>();
  /** Locks whose `ancestors` include the key: what a depth-infinity request on that directory must check. */
  readonly #byAncestor = new Map<FileId, Set<Entry>>();
  readonly #waitersByOwner = new Map<string, Set<Waiter>>();
  readonly #waitersByAncestor = new Map<FileId, Set<Waiter>>();
  readonly #listeners = new Set<(ev: LockEvent) => void>();
  /**
   * Called for every new lock request before conflicts are looked at; throws to refuse
   * (client-records.ts, during the grace period after a restart: EGRACE for a request conflicting
   * with state a client may still reclaim; ENOENT for a reclaim of state it did not hold).
   */
  guard: ((req: LockRequest) => void) | undefined;
  /** Min-heap of expiry times; items go stale when their lock is removed or refreshed (lazy deletion). */
  readonly #heap: Array<{ at: number; e: Entry }> = [];
  readonly #dirty = new Set<FileId>();
  #waking = false;
  #waiterCount = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  #closed = false;

  constructor(options: LockManagerOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxLocks = options.maxLocks ?? 1_000_000;
    this.#maxWaiters = options.maxWaiters ?? 10_000;
  }

  /** Number of active locks (for metrics). */
  get size(): number {
    return this.#byToken.size;
  }

  async lock(req: LockRequest): Promise<LockInfo> {
    if (this.#closed) throw new VfsError('ECANCELED', 'ECANCELED: lock manager closed');
    const r = this.#normalize(req);
    this.guard?.(req);
    const waitMs = req.wait?.timeoutMs;
    if (waitMs !== undefined && (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0)) throw einval('wait.timeoutMs must be >= 0');
    this.#expireDue();
    const found = this.#conflicts(r, false);
    if (found.length === 0) {
      const info = this.#grant(r);
      this.#wake();
      return info;
    }
    if (req.wait === undefined) throw new LockConflictError(toInfo(found[0]!));
    return this.#enqueue(r, req.wait, found);
  }

  /**
   * posix: releases the owner's posix locks in `range`, splitting as needed; unlocking an unlocked range is a no-op.
   * windows: removes the owner's windows lock with exactly this range (exclusive first, as Samba does), else ENOTLOCKED.
   * token: removes the owner's token locks with exactly this range, else ENOTLOCKED (prefer unlockToken).
   */
  unlock(fileId: FileId, owner: LockOwner, range: LockRange = WHOLE_FILE, style: LockStyle = 'posix'): void {
    const ownerKey = ownerKeyOf(owner);
    checkRange(range, style === 'windows');
    if (!STYLES.has(style)) throw einval('invalid lock style');
    this.#expireDue();
    const own = [...(this.#files.get(fileId)?.locks ?? [])].filter((e) => e.ownerKey === ownerKey && e.style === style);
    if (style === 'posix') {
      const norm: Norm = { fileId, owner, ownerKey, kind: 'shared', style, start: range.start, end: range.end, depth: 0, ancestors: [], timeoutMs: undefined, info: undefined };
      this.#applyPosix(norm, own, undefined);
    } else {
      const exact = own.filter((e) => e.start === range.start && e.end === range.end);
      if (exact.length === 0) throw new VfsError('ENOTLOCKED');
      const victims = style === 'windows' ? [exact.find((e) => e.kind === 'exclusive') ?? exact[0]!] : exact;
      for (const e of victims) this.#remove(e, 'released');
    }
    this.#wake();
  }

  unlockToken(token: string): void {
    this.#expireDue();
    const e = this.#byToken.get(token);
    if (e === undefined) throw new VfsError('ENOTLOCKED');
    this.#remove(e, 'released');
    this.#wake();
  }

  /** Restarts the lease at now (+ the new timeout when given). A lock without any timeout stays without expiry. */
  refresh(token: string, timeoutMs?: number): LockInfo {
    checkTimeout(timeoutMs, 'timeoutMs');
    this.#expireDue();
    const e = this.#byToken.get(token);
    if (e === undefined) throw new VfsError('ENOTLOCKED');
    if (timeoutMs !== undefined) e.timeoutMs = timeoutMs;
    if (e.timeoutMs !== undefined) {
      e.expiresAt = this.#now() + e.timeoutMs;
      this.#heapPush({ at: e.expiresAt, e });
      this.#scheduleExpiry();
    }
    return toInfo(e);
  }

  get(token: string): LockInfo | undefined {
    this.#expireDue();
    const e = this.#byToken.get(token);
    return e === undefined ? undefined : toInfo(e);
  }

  /**
   * Locks on files below a directory (by the ancestors each lock was taken with): a move of the
   * directory moves those files too, so it needs their tokens (WebDAV) like a removal does.
   */
  locksBelow(dirId: FileId): LockInfo[] {
    this.#expireDue();
    return [...(this.#byAncestor.get(dirId) ?? [])].map(toInfo);
  }

  locksOn(fileId: FileId, options: { includeAncestors?: FileId[] } = {}): LockInfo[] {
    this.#expireDue();
    const out: LockInfo[] = [];
    for (const e of this.#files.get(fileId)?.locks ?? []) out.push(toInfo(e));
    for (const a of options.includeAncestors ?? []) {
      for (const e of this.#files.get(a)?.locks ?? []) if (e.depth === 'infinity') out.push(toInfo(e));
    }
    return out;
  }

  /**
   * The one rule for whether a read or write of `range` may proceed, for every protocol (the VFS
   * calls it on each read, write and size change through a handle):
   * - windows (SMB byte-range locks, MS-FSA 2.1.4.10): mandatory. An exclusive lock blocks reads and
   *   writes through any other handle; a shared lock blocks writes through every handle, its own
   *   included. "Same" means the same lock owner id (the handle), whatever the protocol.
   * - token (WebDAV, RFC 4918 §7): write locks. They never block reads; a write needs the lock's token among
   *   `who.tokens` (submitted in the If header), also for depth-infinity locks on `ancestors`.
   * - posix (NFSv4 LOCK, fcntl): advisory, as on Linux and every common NFS server: they conflict
   *   with other locks (lock()/test()), never with I/O.
   * Throws ELOCKED (no path: the caller adds it).
   */
  checkIo(fileId: FileId, who: { ownerId: string; tokens: ReadonlySet<string> }, range: LockRange, access: 'read' | 'write', ancestors: readonly FileId[] = []): void {
    checkRange(range);
    this.#expireDue();
    const write = access === 'write';
    for (const e of this.#files.get(fileId)?.locks ?? []) {
      if (e.style === 'posix') continue;
      if (e.style === 'token') {
        if (write && !who.tokens.has(e.token)) throw new VfsError('ELOCKED');
        continue;
      }
      if (!overlaps(e, range.start, range.end)) continue;
      if (e.kind === 'exclusive' ? e.owner.id !== who.ownerId : write) throw new VfsError('ELOCKED');
    }
    if (!write) return;
    for (const a of ancestors) {
      for (const e of this.#files.get(a)?.locks ?? []) {
        if (e.style === 'token' && e.depth === 'infinity' && !who.tokens.has(e.token)) throw new VfsError('ELOCKED');
      }
    }
  }

  /** First lock that would block `req` (NFSv4 LOCKT, fcntl F_GETLK), or undefined. */
  test(req: LockRequest): LockInfo | undefined {
    const r = this.#normalize(req);
    this.#expireDue();
    const found = this.#conflicts(r, true)[0];
    return found === undefined ? undefined : toInfo(found);
  }

  /** Releases the owner's locks (all, or all but those of the style `keep`) and cancels its waits. */
  releaseOwner(owner: LockOwner, options: { keep?: LockStyle } = {}): number {
    const ownerKey = ownerKeyOf(owner);
    this.#expireDue();
    for (const w of [...(this.#waitersByOwner.get(ownerKey) ?? [])]) {
      this.#failWaiter(w, new VfsError('ECANCELED', 'ECANCELED: lock owner released'));
    }
    const mine = [...(this.#byOwner.get(ownerKey) ?? [])].filter((e) => e.style !== options.keep);
    for (const e of mine) this.#remove(e, 'released');
    this.#wake();
    return mine.length;
  }

  releaseFile(fileId: FileId): void {
    this.#expireDue();
    const fs = this.#files.get(fileId);
    if (fs === undefined) return;
    for (const w of [...fs.waiters]) this.#failWaiter(w, new VfsError('ECANCELED', 'ECANCELED: file removed'));
    for (const e of [...fs.locks]) this.#remove(e, 'released');
    this.#wake();
  }

  onChange(listener: (ev: LockEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Token locks with a timeout: the only ones clients expect to survive a restart (WebDAV, RFC 4918 §6.6). */
  exportDurable(): LockInfo[] {
    this.#expireDue();
    const out: LockInfo[] = [];
    for (const e of this.#byToken.values()) if (e.style === 'token' && e.timeoutMs !== undefined) out.push(toInfo(e));
    return out;
  }

  /**
   * Restores exported locks with their tokens and expiry. Already-expired locks, unknown tokens already
   * present and locks that conflict with what is held now are skipped; ENOLCK if maxLocks is reached.
   */
  importDurable(locks: LockInfo[]): void {
    this.#expireDue();
    const now = this.#now();
    for (const l of locks) {
      if (typeof l.token !== 'string' || this.#byToken.has(l.token)) continue;
      if (typeof l.createdAt !== 'number' || (l.expiresAt !== undefined && typeof l.expiresAt !== 'number')) throw einval('invalid durable lock');
      const r = this.#normalize({ ...l, wait: undefined });
      const expiresAt = l.expiresAt ?? (l.timeoutMs !== undefined ? now + l.timeoutMs : undefined);
      if (expiresAt !== undefined && expiresAt <= now) continue;
      if (this.#conflicts(r, true).length > 0) continue;
      if (this.#byToken.size >= this.#maxLocks) throw new VfsError('ENOLCK');
      this.#insert({ ...r, token: l.token, createdAt: l.createdAt, expiresAt, live: true });
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const fs of [...this.#files.values()]) {
      for (const w of [...fs.waiters]) this.#failWaiter(w, new VfsError('ECANCELED', 'ECANCELED: lock manager closed'));
    }
  }

  // ---- internals ----

  #normalize(req: LockRequest): Norm {
    if (req === null || typeof req !== 'object' || typeof req.fileId !== 'bigint') throw einval('fileId must be a bigint');
    const ownerKey = ownerKeyOf(req.owner);
    if (!KINDS.has(req.kind)) throw einval('invalid lock kind');
    if (!STYLES.has(req.style)) throw einval('invalid lock style');
    const range = req.range ?? WHOLE_FILE;
    checkRange(range, req.style === 'windows');
    const depth = req.depth ?? 0;
    if (depth !== 0 && depth !== 'infinity') throw einval('depth must be 0 or infinity');
    if (depth === 'infinity' && (range.start !== 0n || range.end < MAX_OFFSET)) throw einval('depth-infinity lock must cover the whole file');
    const ancestors = req.ancestors ?? [];
    if (!Array.isArray(ancestors) || ancestors.some((a) => typeof a !== 'bigint')) throw einval('ancestors must be bigint ids');
    checkTimeout(req.timeoutMs, 'timeoutMs');
    return {
      fileId: req.fileId,
      owner: { ...req.owner },
      ownerKey,
      kind: req.kind,
      style: req.style,
      start: range.start,
      end: range.end,
      depth,
      ancestors: [...ancestors],
      timeoutMs: req.timeoutMs,
      info: req.info,
    };
  }

  /** Locks blocking `r`: on the file itself, depth-infinity locks on its ancestors, and (for an infinity request) locks below it. */
  #conflicts(r: Norm, firstOnly: boolean): Entry[] {
    const out: Entry[] = [];
    for (const e of this.#files.get(r.fileId)?.locks ?? []) {
      if (conflicts(e, r, true) && out.push(e) && firstOnly) return out;
    }
    for (const a of r.ancestors) {
      for (const e of this.#files.get(a)?.locks ?? []) {
        if (e.depth === 'infinity' && conflicts(e, r, false) && out.push(e) && firstOnly) return out;
      }
    }
    if (r.depth === 'infinity') {
      for (const e of this.#byAncestor.get(r.fileId) ?? []) {
        if (conflicts(e, r, false) && out.push(e) && firstOnly) return out;
      }
    }
    return out;
  }

  /** Grants a request known to be conflict-free. */
  #grant(r: Norm): LockInfo {
    if (r.style === 'posix') {
      const own = [...(this.#files.get(r.fileId)?.locks ?? [])].filter((e) => e.ownerKey === r.ownerKey && e.style === 'posix');
      return toInfo(this.#applyPosix(r, own, r.kind)!);
    }
    if (this.#byToken.size >= this.#maxLocks) throw new VfsError('ENOLCK');
    return toInfo(this.#insert(this.#entryFor(r, r.start, r.end)));
  }

  #entryFor(r: Norm, start: bigint, end: bigint): Entry {
    const now = this.#now();
    return { ...r, start, end, token: `opaquelocktoken:${randomUUID()}`, createdAt: now, expiresAt: r.timeoutMs === undefined ? undefined : now + r.timeoutMs, live: true };
  }

  /**
   * fcntl(F_SETLK) semantics for one owner's posix locks: in [r.start, r.end) set `kind` (or clear when
   * undefined); pieces of the owner's locks outside the range survive; same-kind neighbours coalesce.
   */
  #applyPosix(r: Norm, own: Entry[], kind: LockKind | undefined): Entry | undefined {
    const removed: Entry[] = [];
    const pieces: Array<{ from: Entry; start: bigint; end: bigint }> = [];
    let start = r.start;
    let end = r.end;
    for (const x of own) {
      if (kind !== undefined && x.kind === kind && x.end >= r.start && x.start <= r.end) {
        removed.push(x);
        if (x.start < start) start = x.start;
        if (x.end > end) end = x.end;
      } else if (overlaps(x, r.start, r.end)) {
        removed.push(x);
        if (x.start < r.start) pieces.push({ from: x, start: x.start, end: r.start });
        if (x.end > r.end) pieces.push({ from: x, start: r.end, end: x.end });
      }
    }
    // POSIX: F_SETLK may fail with ENOLCK when splitting a lock would exceed the table.
    if (this.#byToken.size - removed.length + pieces.length + (kind === undefined ? 0 : 1) > this.#maxLocks) {
      throw new VfsError('ENOLCK');
    }
    for (const x of removed) this.#remove(x, 'released');
    for (const p of pieces) {
      this.#insert({ ...p.from, token: `opaquelocktoken:${randomUUID()}`, start: p.start, end: p.end, live: true });
    }
    return kind === undefined ? undefined : this.#insert(this.#entryFor({ ...r, kind }, start, end));
  }

  #insert(e: Entry): Entry {
    let fs = this.#files.get(e.fileId);
    if (fs === undefined) this.#files.set(e.fileId, (fs = { locks: new Set(), waiters: [] }));
    fs.locks.add(e);
    this.#byToken.set(e.token, e);
    indexAdd(this.#byOwner, e.ownerKey, e);
    for (const a of e.ancestors) indexAdd(this.#byAncestor, a, e);
    if (e.expiresAt !== undefined) {
      this.#heapPush({ at: e.expiresAt, e });
      this.#scheduleExpiry();
    }
    this.#emit('granted', e);
    return e;
  }

  #remove(e: Entry, type: 'released' | 'expired'): void {
    if (!e.live) return;
    e.live = false;
    const fs = this.#files.get(e.fileId);
    fs?.locks.delete(e);
    if (fs !== undefined && fs.locks.size === 0 && fs.waiters.length === 0) this.#files.delete(e.fileId);
    this.#byToken.delete(e.token);
    indexDelete(this.#byOwner, e.ownerKey, e);
    for (const a of e.ancestors) indexDelete(this.#byAncestor, a, e);
    // Who may have been waiting on this lock: requests on the same file, depth-infinity requests on
    // its ancestors, and (if it was an infinity lock) requests anywhere below it.
    this.#dirty.add(e.fileId);
    for (const a of e.ancestors) this.#dirty.add(a);
    if (e.depth === 'infinity') for (const w of this.#waitersByAncestor.get(e.fileId) ?? []) this.#dirty.add(w.req.fileId);
    this.#emit(type, e);
  }

  #emit(type: LockEvent['type'], e: Entry): void {
    if (this.#listeners.size === 0) return;
    const lock = toInfo(e);
    for (const l of [...this.#listeners]) {
      try {
        l({ type, lock });
      } catch {
        // A faulty listener must not leave the lock tables half-updated.
      }
    }
  }

  #enqueue(r: Norm, wait: NonNullable<LockRequest['wait']>, found: Entry[]): Promise<LockInfo> {
    if (wait.signal?.aborted) throw new VfsError('ECANCELED');
    if (this.#waiterCount >= this.#maxWaiters) throw new VfsError('ENOLCK', 'ENOLCK: too many blocked lock requests');
    const blockers = new Set(found.map((e) => e.ownerKey));
    // Only fcntl-style waits are checked (F_SETLKW returns EDEADLK); SMB/WebDAV waits are bounded by their timeouts.
    if (r.style === 'posix' && this.#wouldDeadlock(r.ownerKey, blockers)) throw new VfsError('EDEADLK');
    return new Promise<LockInfo>((resolve, reject) => {
      const w: Waiter = { req: r, blockers, settled: false, resolve, reject, cleanup: () => {} };
      let fs = this.#files.get(r.fileId);
      if (fs === undefined) this.#files.set(r.fileId, (fs = { locks: new Set(), waiters: [] }));
      fs.waiters.push(w);
      indexAdd(this.#waitersByOwner, r.ownerKey, w);
      for (const a of r.ancestors) indexAdd(this.#waitersByAncestor, a, w);
      this.#waiterCount++;
      const onAbort = (): void => this.#failWaiter(w, new VfsError('ECANCELED'));
      const timer = wait.timeoutMs === undefined ? undefined : setTimeout(() => this.#failWaiter(w, new VfsError('ETIMEDOUT', 'ETIMEDOUT: lock wait timed out')), wait.timeoutMs);
      wait.signal?.addEventListener('abort', onAbort, { once: true });
      w.cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        wait.signal?.removeEventListener('abort', onAbort);
      };
    });
  }

  /** Would `ownerKey` waiting on `blockers` close a cycle in the waits-for graph (any length)? */
  #wouldDeadlock(ownerKey: string, blockers: Set<string>): boolean {
    const seen = new Set<string>();
    const stack = [...blockers];
    while (stack.length > 0) {
      const o = stack.pop()!;
      if (o === ownerKey) return true;
      if (seen.has(o)) continue;
      seen.add(o);
      for (const w of this.#waitersByOwner.get(o) ?? []) stack.push(...w.blockers);
    }
    return false;
  }

  #detachWaiter(w: Waiter): void {
    w.settled = true;
    w.cleanup();
    this.#waiterCount--;
    const fs = this.#files.get(w.req.fileId);
    if (fs !== undefined) {
      const i = fs.waiters.indexOf(w);
      if (i >= 0) fs.waiters.splice(i, 1);
      if (fs.locks.size === 0 && fs.waiters.length === 0) this.#files.delete(w.req.fileId);
    }
    indexDelete(this.#waitersByOwner, w.req.ownerKey, w);
    for (const a of w.req.ancestors) indexDelete(this.#waitersByAncestor, a, w);
  }

  #failWaiter(w: Waiter, err: VfsError): void {
    if (w.settled) return;
    this.#detachWaiter(w);
    w.reject(err);
  }

  /** Retries waiters on every file whose locks changed, FIFO per file; a grant may free more (posix downgrade), hence the loop. */
  #wake(): void {
    if (this.#waking) return;
    this.#waking = true;
    try {
      while (this.#dirty.size > 0) {
        const fileId: FileId = this.#dirty.values().next().value!;
        this.#dirty.delete(fileId);
        for (const w of [...(this.#files.get(fileId)?.waiters ?? [])]) {
          if (w.settled) continue;
          const found = this.#conflicts(w.req, false);
          if (found.length > 0) {
            w.blockers = new Set(found.map((e) => e.ownerKey));
            continue;
          }
          let info: LockInfo;
          try {
            info = this.#grant(w.req);
          } catch (e) {
            this.#failWaiter(w, e as VfsError);
            continue;
          }
          this.#detachWaiter(w);
          w.resolve(info);
        }
      }
    } finally {
      this.#waking = false;
    }
  }

  #expireDue(): void {
    const now = this.#now();
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (top.e.live && top.e.expiresAt === top.at) {
        if (top.at > now) break;
        this.#heapPop();
        this.#remove(top.e, 'expired');
      } else {
        this.#heapPop();
      }
    }
    this.#wake();
    this.#scheduleExpiry();
  }

  #scheduleExpiry(): void {
    if (this.#closed) return;
    while (this.#heap.length > 0 && !(this.#heap[0]!.e.live && this.#heap[0]!.e.expiresAt === this.#heap[0]!.at)) this.#heapPop();
    const top = this.#heap[0];
    if (top === undefined) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    if (this.#timer !== undefined && this.#timerAt === top.at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = top.at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#expireDue();
    }, Math.min(Math.max(0, top.at - this.#now()), MAX_TIMER_MS));
    this.#timer.unref();
  }

  #heapPush(item: { at: number; e: Entry }): void {
    const h = this.#heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  #heapPop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.at < h[m]!.at) m = l;
      if (r < h.length && h[r]!.at < h[m]!.at) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}
