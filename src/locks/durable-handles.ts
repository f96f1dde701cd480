/**
 * Durable handles: opens that outlive their connection for a while (SMB2 durable handles v1/v2,
 * MS-SMB2 3.3.5.9.6/3.3.5.9.10; Samba keeps them as smbXsrv_open_global records a new connection
 * finds). A protocol marks a handle durable with a timeout and a reconnect key (SMB: the durable v2
 * CreateGuid, or the FileId for v1); when its ClientState ends (Session.end: the connection is gone)
 * the handle is *parked* instead of closed — its share-mode entry, its byte-range locks (those taken
 * through the handle: the open is their owner, as in SMB) and its lease stay — and a reconnect by
 * the same principal presenting the key takes it back (Session.reclaimDurable) within the timeout.
 * After the timeout it is closed and its locks released (MS-SMB2 3.3.2.1 durable open scavenger).
 *
 * Meanwhile another client's open that conflicts with a parked handle (MS-SMB2 3.3.5.9.7, .12):
 * - a parked handle without handle caching (no lease, or a lease without H) is closed, and the
 *   open proceeds (the disconnected client cannot be asked, and nothing promised it the handle
 *   against conflicts);
 * - a parked handle whose lease has H: the open breaks H (leases.ts), which the disconnected holder
 *   cannot acknowledge: the break takes effect at once and closes the parked handle too.
 * So a disconnected durable handle never holds up another client; it only survives when nobody
 * needs its file meanwhile, which is what a client reconnecting after a network blip needs.
 * A parked handle marked delete-on-close is kept (closing it would delete the file under a reconnect).
 *
 * Not across restarts: SMB's persistent handles (continuously available shares) are not built.
 */
import { VfsError } from '../vfs/errors.ts';
import type { LeaseBreakCallback, LeaseHandle, LeaseTable } from './leases.ts';
import type { FileId, LockManager, LockOwner } from './lock-manager.ts';
import type { OpenRecord, ShareModeTable } from './share-modes.ts';

/** SMB: a durable v2 request with Timeout 0 gets 60 s (MS-SMB2 3.3.5.9.10). */
export const DEFAULT_DURABLE_TIMEOUT_MS = 60_000;
/** The longest timeout granted unless configured otherwise (Windows Server caps at 300 s). */
export const DEFAULT_DURABLE_MAX_MS = 300_000;

export interface DurableHandle extends LeaseHandle {
  readonly fileId: FileId;
}

/** What the registry needs of the VFS (structural: the Vfs itself). */
export interface DurableHost {
  readonly locks: LockManager;
  readonly shareModes: ShareModeTable;
  readonly leases: LeaseTable;
  /** Method syntax on purpose: the Vfs's close(h: Handle) fits (parameters of methods are bivariant). */
  close(h: DurableHandle): Promise<void>;
}

interface Entry {
  key: string;
  handle: DurableHandle;
  principal: string;
  timeoutMs: number;
  parked: boolean;
  /** The handle's own lock owner, held here while parked. */
  lockOwner: LockOwner | undefined;
  timer: NodeJS.Timeout | undefined;
}

const registries = new WeakMap<object, DurableHandles>();

export class DurableHandles {
  readonly #host: DurableHost;
  readonly #byKey = new Map<string, Entry>();
  readonly #byHandle = new Map<string, Entry>();
  #maxMs = DEFAULT_DURABLE_MAX_MS;
  #sweepAt = 64;

  private constructor(host: DurableHost) {
    this.#host = host;
    host.shareModes.evict = (rec) => this.#evict(rec);
  }

  /** The registry of a VFS, made on first use. */
  static of(host: DurableHost): DurableHandles {
    let d = registries.get(host);
    if (d === undefined) registries.set(host, (d = new DurableHandles(host)));
    return d;
  }

  /** The registry when one was made (Session.end's fast path). */
  static find(host: object): DurableHandles | undefined {
    return registries.get(host);
  }

  configure(o: { maxTimeoutMs?: number }): void {
    if (o.maxTimeoutMs !== undefined) {
      if (!Number.isFinite(o.maxTimeoutMs) || o.maxTimeoutMs <= 0) throw new VfsError('EINVAL', 'EINVAL: maxTimeoutMs must be > 0');
      this.#maxMs = o.maxTimeoutMs;
    }
  }

  /**
   * Makes an open durable. A key in use by another open handle is EEXIST (SMB
   * STATUS_DUPLICATE_OBJECTID). Returns the timeout granted (0 → the default, capped).
   */
  mark(h: DurableHandle, o: { key: string; timeoutMs?: number; principal: string }): { timeoutMs: number } {
    if (typeof o.key !== 'string' || o.key === '') throw new VfsError('EINVAL', 'EINVAL: durable handle key must be a non-empty string');
    if (h.closed) throw new VfsError('EBADF');
    const other = this.#byKey.get(o.key);
    if (other !== undefined && other.handle !== h) {
      if (!other.handle.closed) throw new VfsError('EEXIST', 'EEXIST: durable handle key in use');
      this.#drop(other);
    }
    const previous = this.#byHandle.get(h.id);
    if (previous !== undefined) this.#drop(previous);
    const requested = o.timeoutMs === undefined || o.timeoutMs === 0 ? DEFAULT_DURABLE_TIMEOUT_MS : o.timeoutMs;
    if (!Number.isFinite(requested) || requested < 0) throw new VfsError('EINVAL', 'EINVAL: durable timeout must be >= 0');
    const timeoutMs = Math.min(requested, this.#maxMs);
    const e: Entry = { key: o.key, handle: h, principal: o.principal, timeoutMs, parked: false, lockOwner: undefined, timer: undefined };
    this.#byKey.set(o.key, e);
    this.#byHandle.set(h.id, e);
    if (this.#byKey.size >= this.#sweepAt) this.#sweep();
    return { timeoutMs };
  }

  isDurable(h: DurableHandle): boolean {
    const e = this.#byHandle.get(h.id);
    return e !== undefined && e.handle === h && !h.closed;
  }

  isParked(h: LeaseHandle): boolean {
    return this.#byHandle.get(h.id)?.parked === true;
  }

  /** The connection is gone: keep the handle (and `lockOwner`'s locks) for its timeout. */
  park(h: DurableHandle, lockOwner: LockOwner | undefined): void {
    const e = this.#byHandle.get(h.id);
    if (e === undefined || e.handle !== h) return;
    e.parked = true;
    e.lockOwner = lockOwner;
    e.timer = setTimeout(() => this.#closeParked(e), e.timeoutMs);
    e.timer.unref();
    this.#host.leases.disconnect(h, (x) => this.isParked(x), () => this.#closeParked(e));
  }

  /**
   * Takes a parked handle back (durable reconnect). ENOENT when no handle is parked under the key
   * (never made, closed, expired or broken meanwhile: SMB STATUS_OBJECT_NAME_NOT_FOUND); EACCES
   * for another principal (MS-SMB2 3.3.5.9.7: the session's user must be the open's).
   */
  reclaim(key: string, principal: string, onLeaseBreak?: LeaseBreakCallback): { handle: DurableHandle; lockOwner: LockOwner | undefined } {
    const e = this.#byKey.get(key);
    if (e === undefined || !e.parked || e.handle.closed) throw new VfsError('ENOENT', 'ENOENT: no durable handle to reconnect');
    if (e.principal !== principal) throw new VfsError('EACCES', 'EACCES: the durable handle belongs to another user');
    if (e.timer !== undefined) clearTimeout(e.timer);
    e.timer = undefined;
    e.parked = false;
    const lockOwner = e.lockOwner;
    e.lockOwner = undefined;
    this.#host.leases.reconnect(e.handle, onLeaseBreak);
    return { handle: e.handle, lockOwner };
  }

  /** Parked handles (diagnostics, tests). */
  parkedCount(): number {
    let n = 0;
    for (const e of this.#byKey.values()) if (e.parked) n++;
    return n;
  }

  /** Share-mode hook: a parked handle without handle caching gives way to a conflicting open. */
  #evict(rec: OpenRecord): boolean {
    const e = this.#byHandle.get(rec.handleId);
    if (e === undefined || !e.parked || rec.deleteOnClose || this.#host.leases.handleCaching(e.handle)) return false;
    this.#closeParked(e, false);
    return true;
  }

  /**
   * Closes a parked handle: its locks and share-mode entry go now (the conflicting open that
   * caused this proceeds at once), the rest of the close (publishing staged data) follows.
   */
  #closeParked(e: Entry, forgetShareMode = true): void {
    if (!e.parked) return;
    this.#drop(e);
    if (e.lockOwner !== undefined) this.#host.locks.releaseOwner(e.lockOwner);
    if (forgetShareMode) this.#host.shareModes.close(e.handle.id);
    this.#host.close(e.handle).catch(() => undefined);
  }

  #drop(e: Entry): void {
    if (e.timer !== undefined) clearTimeout(e.timer);
    e.timer = undefined;
    e.parked = false;
    if (this.#byKey.get(e.key) === e) this.#byKey.delete(e.key);
    if (this.#byHandle.get(e.handle.id) === e) this.#byHandle.delete(e.handle.id);
  }

  /** Entries of handles closed by their client (Session.close does not tell): amortised cleanup. */
  #sweep(): void {
    for (const e of [...this.#byKey.values()]) if (e.handle.closed && !e.parked) this.#drop(e);
    this.#sweepAt = Math.max(64, this.#byKey.size * 2);
  }
}
