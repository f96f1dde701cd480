/**
 * Client records and the grace period after a restart (NFSv4 RFC 8881 §8.4.2 and §9.6; nfs-ganesha
 * keeps client records in stable storage for the same purpose).
 *
 * A protocol binds each client to its stable key (Session.bindClient: NFSv4's co_ownerid with its
 * verifier; SMB's ClientGuid). For bound clients this component keeps, in the metadata store
 * (table `client_records`), what they hold: per open the file id, access and share (deny) bits,
 * per lock the file id, range, kind and style — byte-range locks of every protocol but token locks
 * (WebDAV's survive restarts on their own: lock-persistence.ts). Records follow the share-mode and
 * lock tables' events. What a client gains (an open, a lock, narrower modes) is written at the end
 * of the tick that changed it (one statement per changed client; not debounced further: a reply to
 * the change cannot leave before it, so only a power cut can lose one — the store runs
 * synchronous = NORMAL). What it gives up by a close is written lazily, with the client's next
 * write or within LAZY_MS: a record may then name an open already closed — after a crash that open
 * only waits, like one still held, for its client's RECLAIM_COMPLETE or the end of grace (new
 * opens conflicting with it get EGRACE meanwhile) — but it never lacks one the client holds. So an
 * open whose (file, access, share) the record already shows (opened again after a close) needs no
 * write either. Measured on `bench:nfs`'s small-file read (OPEN, READ, CLOSE): a store commit per
 * OPEN and per CLOSE was ~10% of its CPU.
 *
 * After a restart, the records with state start a grace period (`graceMs`, default 90 s, an NFS
 * lease time; 0 = none). During it:
 * - a client known before may reclaim exactly what its record shows (Session.reclaimOpen,
 *   Session.reclaimLock); a reclaim of anything else, by an unknown client, by a client whose
 *   verifier changed (it rebooted: RFC 8881 §2.4.1), or outside the grace period fails
 *   (ENOENT: no such state, NFS4ERR_RECLAIM_BAD; EINVAL: no grace, NFS4ERR_NO_GRACE);
 * - a new lock or open that conflicts with state not yet reclaimed gets EGRACE (NFS4ERR_GRACE,
 *   which clients retry; WebDAV 503 + Retry-After). Requests that conflict with nothing recorded
 *   go ahead: the records are exact, which RFC 8881 §8.4.2.1 allows, so a restart does not stop
 *   every client for 90 s (Linux nfsd, which records only client ids, refuses all of them);
 *   refused rather than queued because NFS has the error and clients retry by themselves, and a
 *   queue would hold requests for up to the whole grace period;
 * - no lease or delegation is granted on a file with unreclaimed state (the reclaim would conflict);
 * - grace ends at its deadline, or as soon as every client with recorded state has said it has
 *   finished (reclaimComplete: NFSv4.1 RECLAIM_COMPLETE) or lost its state (a new verifier).
 *   Unreclaimed state is then forgotten, with the records of clients that did not come back.
 *
 * Shutdown: `freeze()` first (before the front-ends end their clients), so the records keep what
 * clients held when the gateway went down — the state they will reclaim.
 */
import type { MetadataStore } from '../store/metadata-store.ts';
import { VfsError } from '../vfs/errors.ts';
import { currentRequester } from './clients.ts';
import type { LeaseTable } from './leases.ts';
import type { FileId, LockKind, LockManager, LockRequest, LockStyle } from './lock-manager.ts';
import { WHOLE_FILE } from './lock-manager.ts';
import { shareConflict, type Access, type OpenRecord, type ShareModeTable } from './share-modes.ts';

export const DEFAULT_GRACE_MS = 90_000;
/** A client's record drops its closed opens at its next write or within this many ms. */
export const LAZY_MS = 1000;

const MIGRATIONS = [[
  `CREATE TABLE client_records (
     client TEXT PRIMARY KEY,
     protocol TEXT NOT NULL,
     verifier TEXT,
     state TEXT NOT NULL,
     updated INTEGER NOT NULL
   )`,
]];

export interface RecordedOpen {
  fileId: FileId;
  access: Access;
  share: Access;
}

export interface RecordedLock {
  fileId: FileId;
  start: bigint;
  end: bigint;
  kind: LockKind;
  style: LockStyle;
}

/** A live open with its entry of the record's JSON, made once (see encodeRecord). */
interface LiveOpen extends RecordedOpen {
  json: string;
}

/** A live lock with its entry of the record's JSON, made once (a client holding many locks). */
interface LiveLock extends RecordedLock {
  json: string;
}

interface Live {
  protocol: string;
  verifier: string | null;
  opens: Map<string, LiveOpen>;
  locks: Map<string, LiveLock>;
  /** Live opens per openKey (file, access, share). */
  counts: Map<string, number>;
  /** The opens of the last record written, per openKey (undefined: none written this run). */
  written: Map<string, number> | undefined;
  /** The openKeys whose count changed since the last record written (what `written` lacks of `counts`). */
  changed: Set<string>;
}

const bits = (a: Access): string => `${a.read ? 1 : 0}${a.write ? 1 : 0}${a.delete ? 1 : 0}`;
const openKey = (o: RecordedOpen): string => `${o.fileId}:${bits(o.access)}:${bits(o.share)}`;

function countDown(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 0) - 1;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}

interface Prev {
  client: string;
  protocol: string;
  verifier: string | null;
  opens: Array<RecordedOpen & { reclaimed: boolean }>;
  locks: Array<RecordedLock & { reclaimed: boolean }>;
  complete: boolean;
}

export interface ClientRecordsHost {
  readonly store: MetadataStore;
  readonly locks: LockManager;
  readonly shareModes: ShareModeTable;
  readonly leases: LeaseTable;
}

export interface GraceStatus {
  active: boolean;
  /** epoch ms; undefined when not in grace */
  endsAt: number | undefined;
  /** Clients with recorded state that have not completed their reclaims. */
  pending: number;
}

const installed = new WeakMap<object, ClientRecords>();

/** The record's text (decodeState reads it); the writes use encodeRecord, which gives the same text. */
export function encodeState(opens: RecordedOpen[], locks: RecordedLock[]): string {
  return JSON.stringify({
    opens: opens.map((o) => ({ f: String(o.fileId), a: o.access, s: o.share })),
    locks: locks.map((l) => ({ f: String(l.fileId), b: String(l.start), e: String(l.end), k: l.kind, y: l.style })),
  });
}

/** One open's entry in encodeState's JSON, as JSON.stringify writes it there. */
const openJson = (o: RecordedOpen): string => JSON.stringify({ f: String(o.fileId), a: o.access, s: o.share });
const lockJson = (l: RecordedLock): string => JSON.stringify({ f: String(l.fileId), b: String(l.start), e: String(l.end), k: l.kind, y: l.style });

/**
 * encodeState's text, byte for byte (test/state/lazy-records.test.ts), from the live opens' and
 * locks' entries made once each (LiveOpen.json, LiveLock.json) rather than a new object per entry
 * stringified on every write: a client's whole record is written whenever it gains an open or a
 * lock, so a client holding n files paid O(n) objects and a stringify of all of them per OPEN — ~300 µs of CPU at 1,024 held against
 * ~30 µs joined (bench:nfs-ops with 1,024 files open at once: OPEN create 979 µs against
 * ganesha's 360, 367 against 437 with 64).
 */
function encodeRecord(live: Iterable<LiveOpen>, extraOpens: RecordedOpen[], liveLocks: Iterable<LiveLock>, extraLocks: RecordedLock[]): string {
  const opens: string[] = [];
  for (const o of live) opens.push(o.json);
  for (const o of extraOpens) opens.push(openJson(o));
  const ls: string[] = [];
  for (const l of liveLocks) ls.push(l.json);
  for (const l of extraLocks) ls.push(lockJson(l));
  return `{"opens":[${opens.join(',')}],"locks":[${ls.join(',')}]}`;
}

function decodeState(text: string): { opens: RecordedOpen[]; locks: RecordedLock[] } {
  const raw = JSON.parse(text) as { opens?: Array<{ f: string; a: Access; s: Access }>; locks?: Array<{ f: string; b: string; e: string; k: LockKind; y: LockStyle }> };
  return {
    opens: (raw.opens ?? []).map((o) => ({ fileId: BigInt(o.f), access: o.a, share: o.s })),
    locks: (raw.locks ?? []).map((l) => ({ fileId: BigInt(l.f), start: BigInt(l.b), end: BigInt(l.e), kind: l.k, style: l.y })),
  };
}

function sameAccess(a: Access, b: Access): boolean {
  return a.read === b.read && a.write === b.write && a.delete === b.delete;
}

export class ClientRecords {
  readonly #host: ClientRecordsHost;
  readonly #live = new Map<string, Live>();
  /** Share-mode handle id → client key (captured at open: later unbinding does not matter). */
  readonly #handleClient = new Map<string, string>();
  readonly #lockClient = new Map<string, string>();
  readonly #prev = new Map<string, Prev>();
  readonly #dirty = new Set<string>();
  /** Clients whose record shows opens they closed since (written within LAZY_MS). */
  readonly #lazy = new Set<string>();
  #lazyTimer: NodeJS.Timeout | undefined;
  readonly #now: () => number;
  readonly #st: { upsert: import('node:sqlite').StatementSync; del: import('node:sqlite').StatementSync };
  #flushQueued = false;
  #graceEndsAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #frozen = false;
  #unsubscribe: Array<() => void> = [];

  private constructor(host: ClientRecordsHost, o: { graceMs: number; now?: () => number }) {
    this.#host = host;
    this.#now = o.now ?? Date.now;
    const store = host.store;
    store.migrate('client-records', MIGRATIONS);
    const db = store.db;
    this.#st = {
      upsert: db.prepare(
        'INSERT INTO client_records(client, protocol, verifier, state, updated) VALUES (?, ?, ?, ?, ?) ON CONFLICT(client) DO UPDATE SET protocol = excluded.protocol, verifier = excluded.verifier, state = excluded.state, updated = excluded.updated',
      ),
      del: db.prepare('DELETE FROM client_records WHERE client = ?'),
    };
    // The previous run's records: those with state may be reclaimed; the others are forgotten.
    const rows = db.prepare('SELECT client, protocol, verifier, state FROM client_records').all() as Array<{ client: string; protocol: string; verifier: string | null; state: string }>;
    store.commitGroup();
    for (const r of rows) {
      let state: { opens: RecordedOpen[]; locks: RecordedLock[] };
      try {
        state = decodeState(r.state);
      } catch {
        state = { opens: [], locks: [] };
      }
      if (o.graceMs > 0 && state.opens.length + state.locks.length > 0) {
        this.#prev.set(r.client, {
          client: r.client,
          protocol: r.protocol,
          verifier: r.verifier,
          opens: state.opens.map((x) => ({ ...x, reclaimed: false })),
          locks: state.locks.map((x) => ({ ...x, reclaimed: false })),
          complete: false,
        });
      } else this.#st.del.run(r.client);
    }
    if (this.#prev.size > 0) {
      this.#graceEndsAt = this.#now() + o.graceMs;
      this.#timer = setTimeout(() => this.#endGrace(), o.graceMs);
      this.#timer.unref();
      host.locks.guard = (req) => this.#lockGuard(req);
      host.shareModes.guard = (rec) => this.#openGuard(rec);
      host.leases.guard = (fileId) => !this.#recorded(fileId);
    }
    this.#unsubscribe.push(
      host.shareModes.onChange((ev) => (ev.type === 'open' ? this.#opened(ev.rec) : this.#closed(ev.rec))),
      host.locks.onChange((ev) => {
        if (ev.lock.style === 'token') return;
        if (ev.type === 'granted') this.#locked(ev.lock.token, ev.lock.owner.id, { fileId: ev.lock.fileId, start: ev.lock.range.start, end: ev.lock.range.end, kind: ev.lock.kind, style: ev.lock.style });
        else this.#unlocked(ev.lock.token);
      }),
    );
  }

  /**
   * Loads the previous run's records and starts keeping this run's; starts the grace period when
   * a client held state (graceMs > 0). Call before serving.
   */
  static install(host: ClientRecordsHost, o: { graceMs?: number; now?: () => number } = {}): ClientRecords {
    installed.get(host)?.stop();
    const r = new ClientRecords(host, { graceMs: o.graceMs ?? DEFAULT_GRACE_MS, ...(o.now ? { now: o.now } : {}) });
    installed.set(host, r);
    return r;
  }

  static of(host: object): ClientRecords | undefined {
    return installed.get(host);
  }

  get inGrace(): boolean {
    if (this.#graceEndsAt === undefined) return false;
    if (this.#now() >= this.#graceEndsAt) {
      this.#endGrace();
      return false;
    }
    return true;
  }

  status(): GraceStatus {
    const active = this.inGrace;
    let pending = 0;
    for (const p of this.#prev.values()) if (!p.complete) pending++;
    return { active, endsAt: active ? this.#graceEndsAt : undefined, pending: active ? pending : 0 };
  }

  /**
   * A client (re)appears under its key. `known`: it held state before the restart and may reclaim
   * it now. A different verifier than recorded means the client restarted: its old state is void.
   */
  register(clientKey: string, o: { protocol: string; verifier?: string }): { known: boolean; reclaimable: boolean } {
    if (typeof clientKey !== 'string' || clientKey === '') throw new VfsError('EINVAL', 'EINVAL: client key must be a non-empty string');
    let live = this.#live.get(clientKey);
    if (live === undefined) this.#live.set(clientKey, (live = { protocol: o.protocol, verifier: o.verifier ?? null, opens: new Map(), locks: new Map(), counts: new Map(), written: undefined, changed: new Set() }));
    else if (o.verifier !== undefined) live.verifier = o.verifier;
    const prev = this.inGrace ? this.#prev.get(clientKey) : undefined;
    let reclaimable = prev !== undefined && !prev.complete;
    if (prev !== undefined && reclaimable && o.verifier !== undefined && prev.verifier !== null && prev.verifier !== o.verifier) {
      this.#complete(prev);
      reclaimable = false;
    }
    this.#markDirty(clientKey);
    return { known: prev !== undefined, reclaimable };
  }

  /** The client has reclaimed all it will (NFSv4.1 RECLAIM_COMPLETE); its unreclaimed state is dropped. */
  reclaimComplete(clientKey: string): void {
    const prev = this.#prev.get(clientKey);
    if (prev !== undefined && this.inGrace) this.#complete(prev);
  }

  /** Stops following the tables (shutdown: the records keep what clients held). */
  freeze(): void {
    this.#frozen = true;
    for (const c of this.#lazy) this.#dirty.add(c);
    this.#lazy.clear();
    if (this.#lazyTimer !== undefined) clearTimeout(this.#lazyTimer);
    this.#lazyTimer = undefined;
    this.#flush();
  }

  /** freeze() and release the hooks and the timer. */
  stop(): void {
    this.freeze();
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#host.locks.guard !== undefined) this.#host.locks.guard = undefined;
    if (this.#host.shareModes.guard !== undefined) this.#host.shareModes.guard = undefined;
    if (this.#host.leases.guard !== undefined) this.#host.leases.guard = undefined;
    if (installed.get(this.#host) === this) installed.delete(this.#host);
  }

  // ---- guards (installed only while grace may be active) ----

  #lockGuard(req: LockRequest): void {
    // Token locks are not recorded (WebDAV's survive restarts on their own), but a new one that
    // conflicts with a recorded lock waits for the grace period like any other.
    if (!this.inGrace) return;
    const client = this.#clientOfLockOwner(req.owner.id);
    const range = req.range ?? WHOLE_FILE;
    if (req.reclaim === true) {
      const prev = client === undefined ? undefined : this.#prev.get(client);
      if (prev === undefined || prev.complete) throw new VfsError('ENOENT', 'ENOENT: no such lock held before the restart');
      const l = prev.locks.find((x) => !x.reclaimed && x.fileId === req.fileId && x.start === range.start && x.end === range.end && x.kind === req.kind && x.style === req.style);
      if (l === undefined) throw new VfsError('ENOENT', 'ENOENT: no such lock held before the restart');
      l.reclaimed = true;
      return;
    }
    for (const p of this.#prev.values()) {
      if (p.complete) continue;
      for (const l of p.locks) {
        if (l.reclaimed || l.fileId !== req.fileId || l.start >= range.end || range.start >= l.end) continue;
        if (l.kind === 'shared' && req.kind === 'shared') continue;
        throw new VfsError('EGRACE');
      }
    }
  }

  #openGuard(rec: OpenRecord): void {
    if (!this.inGrace) return;
    const ctx = currentRequester();
    if (ctx?.reclaim === true) {
      const client = this.#host.leases.clients.clientOfOwner(rec.owner);
      const prev = client === undefined ? undefined : this.#prev.get(client);
      const o = prev?.complete === false ? prev.opens.find((x) => !x.reclaimed && x.fileId === rec.fileId && sameAccess(x.access, rec.access) && sameAccess(x.share, rec.share)) : undefined;
      if (o === undefined) throw new VfsError('ENOENT', 'ENOENT: no such open held before the restart');
      o.reclaimed = true;
      return;
    }
    for (const p of this.#prev.values()) {
      if (p.complete) continue;
      for (const o of p.opens) if (!o.reclaimed && o.fileId === rec.fileId && shareConflict(o, rec)) throw new VfsError('EGRACE');
    }
  }

  /** Does unreclaimed state of the previous run name this file? (No new leases on it during grace.) */
  #recorded(fileId: FileId): boolean {
    if (!this.inGrace) return false;
    for (const p of this.#prev.values()) {
      if (p.complete) continue;
      if (p.opens.some((o) => !o.reclaimed && o.fileId === fileId) || p.locks.some((l) => !l.reclaimed && l.fileId === fileId)) return true;
    }
    return false;
  }

  // ---- following the tables ----

  #clientOfLockOwner(ownerId: string): string | undefined {
    if (ownerId.startsWith('handle:')) return this.#handleClient.get(ownerId.slice('handle:'.length));
    const i = ownerId.indexOf(':');
    return i <= 0 ? undefined : this.#host.leases.clients.bound(ownerId.slice(0, i));
  }

  #liveOf(client: string | undefined): Live | undefined {
    return client === undefined || this.#frozen ? undefined : this.#live.get(client);
  }

  #opened(rec: OpenRecord): void {
    const i = rec.owner.indexOf(':');
    const client = i <= 0 ? undefined : this.#host.leases.clients.bound(rec.owner.slice(0, i));
    const live = this.#liveOf(client);
    if (live === undefined) return;
    this.#handleClient.set(rec.handleId, client!);
    const o = { fileId: rec.fileId, access: { ...rec.access }, share: { ...rec.share }, json: '' };
    o.json = openJson(o);
    // A downgrade is told as an open of the same handle again: its old modes are no longer held.
    const before = live.opens.get(rec.handleId);
    if (before !== undefined) {
      const bk = openKey(before);
      countDown(live.counts, bk);
      live.changed.add(bk);
    }
    live.opens.set(rec.handleId, o);
    const k = openKey(o);
    const n = (live.counts.get(k) ?? 0) + 1;
    live.counts.set(k, n);
    live.changed.add(k);
    // Already in the record (the same file and modes, opened and closed before): nothing to make
    // durable now. A downgrade is always written (a reclaim must not get the wider modes back).
    if (before === undefined && n <= (live.written?.get(k) ?? 0)) this.#markLazy(client!);
    else this.#markDirty(client!);
  }

  #closed(rec: OpenRecord): void {
    const client = this.#handleClient.get(rec.handleId);
    if (client === undefined || this.#frozen) return;
    this.#handleClient.delete(rec.handleId);
    const live = this.#live.get(client);
    const o = live?.opens.get(rec.handleId);
    if (live === undefined || o === undefined) return;
    live.opens.delete(rec.handleId);
    const k = openKey(o);
    countDown(live.counts, k);
    live.changed.add(k);
    this.#markLazy(client);
  }

  #locked(token: string, ownerId: string, lock: RecordedLock): void {
    const client = this.#clientOfLockOwner(ownerId);
    const live = this.#liveOf(client);
    if (live === undefined) return;
    this.#lockClient.set(token, client!);
    live.locks.set(token, { ...lock, json: lockJson(lock) });
    this.#markDirty(client!);
  }

  #unlocked(token: string): void {
    const client = this.#lockClient.get(token);
    if (client === undefined || this.#frozen) return;
    this.#lockClient.delete(token);
    if (this.#live.get(client)?.locks.delete(token)) this.#markDirty(client);
  }

  #markDirty(client: string): void {
    if (this.#frozen) return;
    this.#dirty.add(client);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  /** The record shows more than the client holds (a close): written with its next change or within LAZY_MS. */
  #markLazy(client: string): void {
    if (this.#frozen) return;
    this.#lazy.add(client);
    if (this.#lazyTimer !== undefined) return;
    this.#lazyTimer = setTimeout(() => {
      this.#lazyTimer = undefined;
      for (const c of this.#lazy) this.#dirty.add(c);
      this.#lazy.clear();
      this.#flush();
    }, LAZY_MS);
    this.#lazyTimer.unref();
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#dirty.size === 0) return;
    const store = this.#host.store;
    if (!store.db.isOpen) return;
    // In the same commit as the id rows and change state waiting for the group (one commit, not
    // the group's and then one per statement): durable before any reply to the change leaves.
    store.commitWith(() => this.#writeDirty());
  }

  #writeDirty(): void {
    const now = this.#now();
    const grace = this.#graceEndsAt !== undefined;
    for (const client of this.#dirty) {
      const live = this.#live.get(client);
      const prev = grace ? this.#prev.get(client) : undefined;
      // During grace the row keeps what may still be reclaimed: a crash now must not lose it.
      const prevOpens = prev?.complete === false ? prev.opens.filter((o) => !o.reclaimed) : [];
      const prevLocks = prev?.complete === false ? prev.locks.filter((l) => !l.reclaimed) : [];
      const protocol = live?.protocol ?? prev?.protocol ?? '';
      const verifier = live?.verifier ?? prev?.verifier ?? null;
      this.#lazy.delete(client);
      try {
        this.#st.upsert.run(client, protocol, verifier, encodeRecord(live?.opens.values() ?? [], prevOpens, live?.locks.values() ?? [], prevLocks), now);
        if (live !== undefined) this.#wrote(live);
      } catch {
        // A store failure loses reclaimability, not service (the client's next open writes again).
        if (live !== undefined) {
          live.written = undefined;
          live.changed.clear();
        }
      }
    }
    this.#dirty.clear();
  }

  /**
   * `written` becomes what `counts` is now: only the keys changed since the last write are set
   * (a copy of `counts` per write was O(files the client holds) per OPEN too).
   */
  #wrote(live: Live): void {
    if (live.written === undefined) live.written = new Map(live.counts);
    else {
      for (const k of live.changed) {
        const n = live.counts.get(k);
        if (n === undefined) live.written.delete(k);
        else live.written.set(k, n);
      }
    }
    live.changed.clear();
  }

  #complete(prev: Prev): void {
    prev.complete = true;
    this.#markDirty(prev.client);
    for (const p of this.#prev.values()) if (!p.complete) return;
    this.#endGrace();
  }

  #endGrace(): void {
    if (this.#graceEndsAt === undefined) return;
    this.#graceEndsAt = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#host.locks.guard = undefined;
    this.#host.shareModes.guard = undefined;
    this.#host.leases.guard = undefined;
    // Clients that did not come back lose their records; the others' rows drop unreclaimed state.
    for (const client of this.#prev.keys()) {
      if (this.#live.has(client)) this.#dirty.add(client);
      else if (!this.#frozen && this.#host.store.db.isOpen) this.#st.del.run(client);
    }
    this.#prev.clear();
    this.#flush();
  }
}
