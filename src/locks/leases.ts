/**
 * Caching grants on files — SMB2/3 leases and oplocks, NFSv4 delegations — and the ONE place that
 * breaks them, whatever caused the conflict (Samba's rule: source3/smbd/oplock.c). The VFS calls
 * this table before every operation that conflicts (open, write, truncate, replace, rename, delete),
 * from any protocol, and waits for the break; so a WebDAV PUT, which knows nothing of leases,
 * breaks an SMB lease or recalls an NFS delegation before it writes.
 *
 * Levels are SMB's bits (MS-SMB2 2.2.13.2.8: READ_CACHING 0x1, HANDLE_CACHING 0x2, WRITE_CACHING
 * 0x4), valid combinations R, RH, RW, RWH (and 0): an SMB front-end passes them through; oplocks
 * map LEVEL_II → R, EXCLUSIVE → RW, BATCH → RWH. NFS delegations: read → RH, write → RWH, with
 * `recallOnWriteOpen` for a read delegation. Why H for NFS: a delegation lets the client open and
 * close locally (handle caching), and Linux nfsd recalls it on a REMOVE or RENAME of the file
 * (try_break_deleg in vfs_unlink/vfs_rename), which is what breaking H does here; an NFS front-end
 * recalls the whole delegation on any break (a delegation cannot be partly returned).
 *
 * Holder = (client key, lease key) (clients.ts). What breaks what (MS-FSA 2.1.4.12 and 2.1.5.x,
 * MS-SMB2 3.3.4.7), for leases of holders other than the requester:
 * - an open with data access (read, write or delete; attribute-only opens break nothing): W is
 *   broken (RWH → RH, RW → R); when the open would get a sharing violation, H as well (the
 *   holder's cached handles may be what conflicts: MS-SMB2 3.3.5.9, Samba retries the open after
 *   the break); a truncating open (SMB OVERWRITE/SUPERSEDE, O_TRUNC) breaks to none; an open for
 *   write breaks a `recallOnWriteOpen` grant (NFS read delegation, RFC 8881 §10.4) to none;
 * - a write, a truncate or size change, a whole-content replace: to none (MS-FSA: R is broken by
 *   another's write, and with it H and W);
 * - a rename or delete of the file, or of a directory above it: H is broken.
 * A requester with the same holder never breaks its own lease. A requester of the same client
 * under another lease key breaks it but does not wait: its front-end may handle the client's
 * requests one at a time and the acknowledgement would queue behind the waiting operation
 * (no deadlock, whatever the front-end does).
 *
 * A break from a level with W or H needs an acknowledgement (the client flushes dirty data or
 * closes cached handles first); from R alone it does not and takes effect at once (MS-SMB2
 * 3.3.4.7). The conflicting operation waits until every lease it broke is at most what it allows:
 * acknowledged, released, closed with its last handle, or revoked by the break timeout (per
 * lease; SMB's default 35 s) — bounded. A second conflict while a break is out lowers the target;
 * the holder's acknowledgement then starts the next break at once (MS-SMB2 3.3.4.7 "Breaking").
 *
 * A lease granted on a handle lives while one of its handles is open (an SMB lease ends with its
 * last open); a lease granted without one (an NFS delegation) lives until released. The holder of
 * a lease whose handles are all parked durable handles (durable-handles.ts) cannot answer: its
 * breaks take effect at once, and one that takes H closes those handles (`onDisconnectedLoss`):
 * a disconnected durable handle does not hold up another client's open (MS-SMB2 3.3.5.9.7).
 *
 * Left out, on purpose: directory leases (SMB 3 parent lease keys), lease grants refused because of
 * byte-range locks (Samba refuses read oplocks then), and setting delete-on-close through a handle
 * (synchronous in the VFS) breaking H — a delete through a path breaks it.
 */
import { VfsError } from '../vfs/errors.ts';
import { currentRequester, ClientDirectory, type Requester } from './clients.ts';
import type { FileId } from './lock-manager.ts';
import type { OpenRecord } from './share-modes.ts';

export const LEASE_NONE = 0;
export const LEASE_R = 0x1;
export const LEASE_H = 0x2;
export const LEASE_W = 0x4;
/** Valid levels: none, R, RH, RW, RWH. */
const VALID = new Set([0, LEASE_R, LEASE_R | LEASE_H, LEASE_R | LEASE_W, LEASE_R | LEASE_W | LEASE_H]);

/** SMB's default lease/oplock break acknowledgement timeout (MS-SMB2 3.3.2.5: 35 s). */
export const DEFAULT_BREAK_TIMEOUT_MS = 35_000;

export interface LeaseHolder {
  client: string;
  key: string;
}

/** What the holder's front-end is told (SMB LEASE_BREAK notification, NFS CB_RECALL). */
export interface LeaseBreak {
  volume: string;
  fileId: FileId;
  holder: LeaseHolder;
  from: number;
  to: number;
  /** Incremented at every state change (SMB2 lease V2 epoch). */
  epoch: number;
  /** The holder must acknowledge (ackLeaseBreak) before the breaker proceeds. */
  ackRequired: boolean;
  /** The break timed out: the lease is gone (SMB: nothing to send; NFS: the delegation is revoked). */
  revoked?: boolean;
}

export type LeaseBreakCallback = (ev: LeaseBreak) => void;

export interface LeaseGrant {
  level: number;
  epoch: number;
}

export interface LeaseRequest {
  volume: string;
  fileId: FileId;
  holder: LeaseHolder;
  level: number;
  onBreak: LeaseBreakCallback;
  /** The open the lease is granted with (it ends with the last of its handles); none: until release. */
  handle?: LeaseHandle;
  /** The ClientState that asked (its end releases handle-less leases). */
  stateId?: string;
  breakTimeoutMs?: number;
  /** NFS read delegation: an open for write by another client recalls it. */
  recallOnWriteOpen?: boolean;
}

/** The part of a VFS Handle the table uses. */
export interface LeaseHandle {
  readonly id: string;
  readonly owner: string;
  readonly closed: boolean;
}

/** What the table asks of the VFS. */
export interface LeaseHost {
  /** Share-mode opens of a file (for grants: W only for an exclusive open). */
  opensOn(fileId: FileId): OpenRecord[];
  /** Ids of the directories above a file (root first); [] when unknown. */
  ancestorsOf(volume: string, fileId: FileId): FileId[];
}

interface Waiter {
  allowed: number;
  resolve: () => void;
}

interface Lease {
  holder: LeaseHolder;
  hkey: string;
  volume: string;
  fileId: FileId;
  level: number;
  epoch: number;
  breaking: boolean;
  breakTo: number;
  /** The lowest level a pending conflict allows (the next break's target after an ack). */
  wanted: number;
  breakTimeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  onBreak: LeaseBreakCallback;
  handles: Set<LeaseHandle>;
  boundToHandles: boolean;
  stateId: string | undefined;
  recallOnWriteOpen: boolean;
  disconnected: boolean;
  onDisconnectedLoss: (() => void) | undefined;
  waiters: Set<Waiter>;
  live: boolean;
}

export type OpenIntent = { owner: string; access: { read: boolean; write: boolean; delete: boolean }; share: { read: boolean; write: boolean; delete: boolean }; truncate: boolean };

function holderKey(h: LeaseHolder): string {
  return `${h.client}\u0000${h.key}`;
}

function checkLevel(level: number): void {
  if (!VALID.has(level)) throw new VfsError('EINVAL', `EINVAL: invalid lease level ${level} (R, RH, RW or RWH)`);
}

export class LeaseTable {
  /** Every lease in force, per file: its size is the VFS hooks' fast path. */
  readonly #byFile = new Map<FileId, Set<Lease>>();
  readonly #byHolder = new Map<string, Lease>();
  /** Leases granted without a handle, per ClientState id (they end with it; a lookup, not a scan, at every session end). */
  readonly #byState = new Map<string, Set<Lease>>();
  /** The lease a handle was granted with (kept after the lease ends: the handle's holder identity). */
  readonly #ofHandle = new WeakMap<LeaseHandle, Lease>();
  readonly #host: LeaseHost;
  readonly clients: ClientDirectory;
  #breakTimeoutMs = DEFAULT_BREAK_TIMEOUT_MS;
  /**
   * May a new lease be granted on this file now? (client-records.ts: not on a file whose state a
   * client may still reclaim during the grace period — the reclaim would conflict with it.)
   */
  guard: ((fileId: FileId) => boolean) | undefined;

  constructor(host: LeaseHost, clients: ClientDirectory = new ClientDirectory()) {
    this.#host = host;
    this.clients = clients;
  }

  /** Number of files with a lease in force: the VFS hooks do nothing when it is 0. */
  get size(): number {
    return this.#byFile.size;
  }

  configure(o: { breakTimeoutMs?: number }): void {
    if (o.breakTimeoutMs !== undefined) {
      if (!Number.isFinite(o.breakTimeoutMs) || o.breakTimeoutMs <= 0) throw new VfsError('EINVAL', 'EINVAL: breakTimeoutMs must be > 0');
      this.#breakTimeoutMs = o.breakTimeoutMs;
    }
  }

  /**
   * Grants (or upgrades) a lease; returns the level granted, which may be lower than asked:
   * W only when no other open with data access exists (other than the lease's own handles) and no
   * other lease is held; nothing while another holder has W; a read delegation (recallOnWriteOpen)
   * not while another opens for write. A lease being broken is not upgraded (MS-SMB2 3.3.5.9.8).
   * The lease key names one file: the same holder on another file is EINVAL (SMB answers
   * STATUS_INVALID_PARAMETER).
   */
  grant(req: LeaseRequest): LeaseGrant {
    checkLevel(req.level);
    if (typeof req.holder?.client !== 'string' || typeof req.holder.key !== 'string' || req.holder.key === '') throw new VfsError('EINVAL', 'EINVAL: lease holder needs client and key');
    const hkey = holderKey(req.holder);
    let lease = this.#byHolder.get(hkey);
    if (lease !== undefined && lease.fileId !== req.fileId) throw new VfsError('EINVAL', 'EINVAL: lease key already used on another file');
    if (lease !== undefined && req.handle !== undefined) this.#attach(lease, req.handle);
    if (lease?.breaking) return { level: lease.level, epoch: lease.epoch };
    const own = new Set<string>([...(lease?.handles ?? [])].map((h) => h.id));
    if (req.handle !== undefined) own.add(req.handle.id);
    const others = this.#host.opensOn(req.fileId).filter((o) => !own.has(o.handleId) && (o.access.read || o.access.write || o.access.delete));
    const otherLeases = [...(this.#byFile.get(req.fileId) ?? [])].filter((l) => l !== lease);
    let allowed = LEASE_R | LEASE_H | LEASE_W;
    if (others.length > 0 || otherLeases.length > 0) allowed &= ~LEASE_W;
    if (otherLeases.some((l) => (l.level & LEASE_W) !== 0 || l.breaking)) allowed = 0;
    if (req.recallOnWriteOpen && others.some((o) => o.access.write)) allowed = 0;
    if (this.guard !== undefined && !this.guard(req.fileId)) allowed = 0;
    const current = lease?.level ?? 0;
    // An upgrade keeps what is held; a request for less than held changes nothing (SMB).
    const level = (req.level & current) === current ? (req.level & allowed) | current : current;
    const granted = VALID.has(level) ? level : level & (LEASE_R | LEASE_H);
    if (lease === undefined) {
      if (granted === 0) return { level: 0, epoch: 0 };
      lease = {
        holder: { client: req.holder.client, key: req.holder.key },
        hkey,
        volume: req.volume,
        fileId: req.fileId,
        level: granted,
        epoch: 1,
        breaking: false,
        breakTo: granted,
        wanted: granted,
        breakTimeoutMs: req.breakTimeoutMs ?? this.#breakTimeoutMs,
        timer: undefined,
        onBreak: req.onBreak,
        handles: new Set(),
        boundToHandles: req.handle !== undefined,
        stateId: req.stateId,
        recallOnWriteOpen: req.recallOnWriteOpen === true,
        disconnected: false,
        onDisconnectedLoss: undefined,
        waiters: new Set(),
        live: true,
      };
      this.#byHolder.set(hkey, lease);
      if (!lease.boundToHandles && lease.stateId !== undefined) {
        let mine = this.#byState.get(lease.stateId);
        if (mine === undefined) this.#byState.set(lease.stateId, (mine = new Set()));
        mine.add(lease);
      }
      let set = this.#byFile.get(req.fileId);
      if (set === undefined) this.#byFile.set(req.fileId, (set = new Set()));
      set.add(lease);
      if (req.handle !== undefined) this.#attach(lease, req.handle);
    } else if (granted !== lease.level) {
      lease.level = granted;
      lease.wanted = granted;
      lease.breakTo = granted;
      lease.epoch++;
    }
    lease.onBreak = req.onBreak;
    return { level: lease.level, epoch: lease.epoch };
  }

  /** The lease of a holder (level, whether a break is out), or undefined. */
  get(holder: LeaseHolder): { volume: string; fileId: FileId; level: number; epoch: number; breaking: boolean; breakTo: number } | undefined {
    const l = this.#byHolder.get(holderKey(holder));
    return l === undefined ? undefined : { volume: l.volume, fileId: l.fileId, level: l.level, epoch: l.epoch, breaking: l.breaking, breakTo: l.breakTo };
  }

  /** Leases in force on a file (for tests and diagnostics). */
  leasesOn(fileId: FileId): Array<{ holder: LeaseHolder; level: number; breaking: boolean }> {
    return [...(this.#byFile.get(fileId) ?? [])].map((l) => ({ holder: { ...l.holder }, level: l.level, breaking: l.breaking }));
  }

  /**
   * The holder acknowledges a break (SMB LEASE_BREAK_ACK, NFS DELEGRETURN with level 0) with the
   * level it keeps: at most the break's target, else EINVAL (SMB STATUS_REQUEST_NOT_ACCEPTED). A
   * lease with no break out: EINVAL too.
   */
  ack(holder: LeaseHolder, level: number): LeaseGrant {
    checkLevel(level);
    const l = this.#byHolder.get(holderKey(holder));
    if (l === undefined || !l.breaking) throw new VfsError('EINVAL', 'EINVAL: no lease break in progress');
    if ((level & ~l.breakTo) !== 0) throw new VfsError('EINVAL', 'EINVAL: acknowledged level is above the break target');
    this.#settleBreak(l, level);
    return { level: l.level, epoch: l.epoch };
  }

  /** The holder gives the lease up (NFS DELEGRETURN, SMB: the last open with the key closed). */
  release(holder: LeaseHolder): void {
    const l = this.#byHolder.get(holderKey(holder));
    if (l !== undefined) this.#remove(l);
  }

  /** A handle closed: a lease granted on handles ends with the last of them. */
  closed(h: LeaseHandle): void {
    const l = this.#ofHandle.get(h);
    if (l === undefined || !l.live) return;
    l.handles.delete(h);
    if (l.boundToHandles && l.handles.size === 0) this.#remove(l);
  }

  /** The ClientState ended: its leases without handles go (NFS: the client's lease expired). */
  releaseState(stateId: string): void {
    const mine = this.#byState.get(stateId);
    if (mine !== undefined) for (const l of [...mine]) this.#remove(l);
  }

  /** Does this handle's lease cache handles (H)? A parked durable handle with one is not evicted silently. */
  handleCaching(h: LeaseHandle): boolean {
    const l = this.#ofHandle.get(h);
    return l !== undefined && l.live && (l.level & LEASE_H) !== 0;
  }

  /**
   * The handle's client cannot answer now (its durable handle is parked): when every handle of its
   * lease is disconnected, the lease's breaks take effect at once and one that takes H calls
   * `onLoss` (which closes the parked handles).
   */
  disconnect(h: LeaseHandle, parked: (h: LeaseHandle) => boolean, onLoss: () => void): void {
    const l = this.#ofHandle.get(h);
    if (l === undefined || !l.live) return;
    if ([...l.handles].every((x) => x === h || parked(x))) {
      l.disconnected = true;
      l.onDisconnectedLoss = onLoss;
      // A break already waiting for this client's answer will get none.
      if (l.breaking) this.#settleBreak(l, l.breakTo);
    }
  }

  /** A parked handle came back (durable reconnect): its lease's breaks go to `onBreak` again. */
  reconnect(h: LeaseHandle, onBreak?: LeaseBreakCallback): void {
    const l = this.#ofHandle.get(h);
    if (l === undefined || !l.live) return;
    l.disconnected = false;
    l.onDisconnectedLoss = undefined;
    if (onBreak !== undefined) l.onBreak = onBreak;
  }

  // ---- the hooks (Vfs calls these only when size > 0) ----

  /** Before an open of an existing file. */
  async beforeOpen(fileId: FileId, open: OpenIntent, shares: { wouldConflict(fileId: FileId, access: OpenIntent['access'], share: OpenIntent['share']): boolean }): Promise<void> {
    const data = open.access.read || open.access.write || open.access.delete;
    if (!data && !open.truncate) return;
    const who = currentRequester() ?? { client: this.clients.clientOfOwner(open.owner) };
    let conflict: boolean | undefined;
    await this.#breakAll(this.#byFile.get(fileId), who, (l) => {
      if (open.truncate) return 0;
      if (l.recallOnWriteOpen && open.access.write) return 0;
      let allowed = LEASE_R | LEASE_H;
      if ((l.level & LEASE_H) !== 0) {
        conflict ??= shares.wouldConflict(fileId, open.access, open.share);
        if (conflict) allowed &= ~LEASE_H;
      }
      return allowed;
    });
  }

  /** Before a write, truncate, size change or whole-content replace of a file: others' leases go to none. */
  async beforeWrite(fileId: FileId, by?: LeaseHandle | string): Promise<void> {
    const set = this.#byFile.get(fileId);
    if (set === undefined) return;
    await this.#breakAll(set, this.#requester(by), () => 0);
  }

  /**
   * Before a rename or delete: H of leases on `files` (the files and directories themselves), and
   * for `dirs` (directories renamed or removed) of leases on anything below them. Only the latter
   * walks the leases of the volume (a path lookup each); a file's own delete looks up its leases.
   */
  async beforeNamespace(volume: string, files: FileId[], dirs: FileId[] = []): Promise<void> {
    const hit = new Set<Lease>();
    for (const id of files) for (const l of this.#byFile.get(id) ?? []) if ((l.level & LEASE_H) !== 0) hit.add(l);
    if (dirs.length > 0) {
      const targets = new Set(dirs);
      for (const set of this.#byFile.values()) {
        for (const l of set) {
          if (l.volume !== volume || (l.level & LEASE_H) === 0 || hit.has(l)) continue;
          if (this.#host.ancestorsOf(volume, l.fileId).some((a) => targets.has(a))) hit.add(l);
        }
      }
    }
    if (hit.size === 0) return;
    await this.#breakAll(hit, this.#requester(), () => LEASE_R | LEASE_W);
  }

  // ---- internals ----

  #requester(by?: LeaseHandle | string): Requester {
    if (by !== undefined && typeof by !== 'string') {
      const l = this.#ofHandle.get(by);
      if (l !== undefined) return { client: l.holder.client, key: l.holder.key };
    }
    const ctx = currentRequester();
    if (ctx !== undefined) return ctx;
    const owner = typeof by === 'string' ? by : by?.owner;
    return owner === undefined ? {} : { client: this.clients.clientOfOwner(owner) };
  }

  #attach(l: Lease, h: LeaseHandle): void {
    l.handles.add(h);
    this.#ofHandle.set(h, l);
  }

  /** Breaks every lease in `leases` not held by `who` down to what `allowedFor` says, and waits. */
  async #breakAll(leases: Iterable<Lease> | undefined, who: Requester, allowedFor: (l: Lease) => number): Promise<void> {
    if (leases === undefined) return;
    const waits: Promise<void>[] = [];
    for (const l of [...leases]) {
      if (!l.live) continue;
      if (who.client !== undefined && who.client === l.holder.client && who.key === l.holder.key) continue;
      // A lease whose handles are all closed is over (an SMB client that closed instead of acking).
      if (l.boundToHandles && [...l.handles].every((h) => h.closed)) {
        this.#remove(l);
        continue;
      }
      const allowed = allowedFor(l);
      if ((l.level & ~allowed) === 0) continue;
      this.#startBreak(l, allowed);
      if (!l.live || (l.level & ~allowed) === 0) continue;
      if (who.client !== undefined && who.client === l.holder.client) continue;
      waits.push(this.#wait(l, allowed));
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  #startBreak(l: Lease, allowed: number): void {
    l.wanted &= allowed;
    if (l.breaking) return; // the ack starts the next break (settleBreak)
    const to = l.level & l.wanted;
    const from = l.level;
    l.epoch++;
    const ackRequired = (from & (LEASE_W | LEASE_H)) !== 0 && !l.disconnected;
    if (!ackRequired) {
      // A disconnected holder is not told (its connection is gone); it learns the level on reconnect.
      if (!l.disconnected) this.#notify(l, { from, to, ackRequired: false });
      this.#setLevel(l, to, (from & LEASE_H) !== 0 && (to & LEASE_H) === 0);
      return;
    }
    l.breaking = true;
    l.breakTo = to;
    l.timer = setTimeout(() => this.#revoke(l), l.breakTimeoutMs);
    l.timer.unref();
    this.#notify(l, { from, to, ackRequired: true });
  }

  #settleBreak(l: Lease, level: number): void {
    if (l.timer !== undefined) clearTimeout(l.timer);
    l.timer = undefined;
    l.breaking = false;
    const lostH = (l.level & LEASE_H) !== 0 && (level & LEASE_H) === 0;
    l.breakTo = level;
    this.#setLevel(l, level, lostH);
    // A conflict that arrived while the break was out wants less: the next break starts now.
    if (l.live && (l.level & ~l.wanted) !== 0) this.#startBreak(l, l.wanted);
  }

  #setLevel(l: Lease, level: number, lostH: boolean): void {
    l.level = level;
    if (lostH && l.disconnected) {
      const loss = l.onDisconnectedLoss;
      this.#remove(l);
      try {
        loss?.();
      } catch {
        // closing parked handles must not stop the breaker
      }
      return;
    }
    if (level === 0) this.#remove(l);
    else this.#wakeWaiters(l);
  }

  /** The break timed out: the grant is revoked (MS-SMB2 3.3.2.5; NFS: the delegation is revoked). */
  #revoke(l: Lease): void {
    if (!l.live) return;
    l.timer = undefined;
    const from = l.level;
    l.epoch++;
    this.#remove(l);
    this.#notify(l, { from, to: 0, ackRequired: false, revoked: true });
  }

  #notify(l: Lease, ev: Pick<LeaseBreak, 'from' | 'to' | 'ackRequired' | 'revoked'>): void {
    const out: LeaseBreak = { volume: l.volume, fileId: l.fileId, holder: { ...l.holder }, from: ev.from, to: ev.to, epoch: l.epoch, ackRequired: ev.ackRequired };
    if (ev.revoked) out.revoked = true;
    try {
      l.onBreak(out);
    } catch {
      // A front-end's failure to send the break must not stop the operation: the timeout revokes.
    }
  }

  #wait(l: Lease, allowed: number): Promise<void> {
    return new Promise<void>((resolve) => {
      l.waiters.add({ allowed, resolve });
    });
  }

  #wakeWaiters(l: Lease): void {
    for (const w of [...l.waiters]) {
      if (!l.live || (l.level & ~w.allowed) === 0) {
        l.waiters.delete(w);
        w.resolve();
      }
    }
  }

  #remove(l: Lease): void {
    if (!l.live) return;
    l.live = false;
    l.level = 0;
    if (l.timer !== undefined) clearTimeout(l.timer);
    l.timer = undefined;
    this.#byHolder.delete(l.hkey);
    if (l.stateId !== undefined) {
      const mine = this.#byState.get(l.stateId);
      if (mine?.delete(l) && mine.size === 0) this.#byState.delete(l.stateId);
    }
    const set = this.#byFile.get(l.fileId);
    if (set?.delete(l) && set.size === 0) this.#byFile.delete(l.fileId);
    this.#wakeWaiters(l);
  }
}
