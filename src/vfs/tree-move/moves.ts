/**
 * Directory renames on backends without atomic rename (S3, `memory:objectstore`): a journaled,
 * concurrent per-object move that always completes, even across a crash. This file is the
 * scheduler: it starts moves, runs them, retries them in the background and resumes them at the
 * next start, and does what a move means for the VFS around it (ids, pending uploads, handles, the
 * change event) through a small host interface the Vfs implements (TreeMoveHost).
 *
 * How a move goes (Vfs.rename -> TreeMoves.renameTree(): start() then run()):
 *
 * 1. Checks, synchronously with the registration below: no other move on this volume overlaps the
 *    source or the target, no file under either is open for writing or deleting (as Windows refuses
 *    to rename a folder with open files in it; readers are allowed: their paths follow and their
 *    read views reopen on the copies at the end) or being uploaded by a writer, fewer than
 *    MAX_ACTIVE_MOVES are running.
 * 2. ONE metadata-store transaction (fsync'd: durableTransaction) writes the journal record
 *    (record.ts: volume, backend kind, from, to, the directory's file id, its mode) and moves the
 *    directory's id row to its new name. This is the commit point of the rename: from here on the id
 *    store, `pathOf()`, readdir cookies and every id below the directory already say "new path", and
 *    the backend is brought in line.
 * 3. The trees are guarded (guard.ts), mutations already in flight under them are drained, then the
 *    walk (walker.ts) moves the objects.
 * 4. The journal row is deleted, open handles follow (their paths change and their read views
 *    reopen at the new objects), pending async uploads below are retargeted, and one 'rename' change
 *    event goes out.
 *
 * Roll forward, not back. Decision: an interrupted move is finished, never undone, because
 * - the rename committed in step 2: ids, handles and clients' cookies already point at the new
 *   names, so finishing makes the backend agree with what the metadata already says;
 * - finishing is naturally idempotent: "move whatever is still under the source" needs no per-file
 *   progress records (no database write per object), only the two paths: every step re-derives its
 *   state from the backend. Undoing would have to tell copies made by the move from everything else.
 * The one exception: a live move whose very first backend change fails (read-only bucket, missing
 *   permission, store down) is undone at once - ids moved back, journal row deleted, error returned -
 *   because nothing happened on the backend yet.
 *
 * Start-up: Vfs.addVolume() registers the volume's journaled moves at once (their trees are guarded
 * from that instant); Vfs.resumeTreeMoves() finishes them. The gateway calls it after
 * recoverWriteBack() — pending async uploads below a moving tree must be known, so that they are
 * held during the move and retargeted to the new paths with it — and before the protocols start.
 *
 * Errors: a walk that stops on an error a retry may fix (EIO, ETIMEDOUT, EACCES, ENOSPC...) leaves
 * the journal and the guard in place, and the move is retried in the background with exponential
 * backoff (1 s doubling to 5 min) until it completes or the process stops; the next start resumes it
 * before the volume serves requests (Gateway awaits `Vfs.resumeTreeMoves()` before starting the
 * protocols). Pending async write-back uploads below the source are held for the whole move (they
 * would be refused) and then retargeted to the new paths.
 */
import { randomUUID } from 'node:crypto';
import type { BackendStat } from '../backend.ts';
import { VfsError, isVfsError, toVfsError } from '../errors.ts';
import { baseName, nameKey, parentPath } from '../path.ts';
import type { FileId } from '../types.ts';
import type { Volume } from '../volume.ts';
import type { WriteBack } from '../write-back.ts';
import type { MetadataStore } from '../../store/metadata-store.ts';
import { backoffCeilingMs } from '../backoff.ts';
import { decodeTreeMove, encodeTreeMove, type TreeMoveRecord } from './record.ts';
import { moveTree, type MoveTreeResult } from './walker.ts';
import type { GuardedMove, TreeMoveGuard } from './guard.ts';

/** pino-compatible. */
export interface TreeMoveLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface TreeMoveOptions {
  /** Backend operations in flight per move (default 16). */
  concurrency?: number;
  /** First background retry after a failed move (default 1 s), doubling up to retryMaxMs (default 5 min). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  logger?: TreeMoveLogger;
}

/**
 * What a move needs of the VFS around it, and nothing more (the Vfs implements it in its
 * constructor): the module reaches the VFS's handles, locks and events only through these calls.
 */
export interface TreeMoveHost {
  /** Async write-back: pending uploads below a moving tree are held during the move, then retargeted. */
  readonly writeBack: Pick<WriteBack, 'idsUnder' | 'pause' | 'moved' | 'logWarn'>;
  /** The path of a file open for writing or deleting strictly below `dir`, if any (the move is refused). */
  busyBelow(volume: Volume, dir: string): string | undefined;
  /** Open handles at or below `from` now name `to`; their read views reopen on the moved objects. */
  handlesMoved(volume: Volume, from: string, to: string): Promise<void>;
  /** The file's name is gone: its locks go. */
  releaseLocks(id: FileId): void;
  /** A file replaced by the moved directory: its open handles are orphaned. */
  orphan(id: FileId): void;
  /** The move ended on the backend: one 'rename' change event for the directory. */
  renamed(volume: Volume, dirId: FileId, from: string, to: string): void;
}

export interface TreeMoveReport {
  /** Journaled moves completed at start-up. */
  resumed: number;
  /** Moves that failed again at start-up and are retried in the background (their trees stay guarded). */
  retrying: number;
  /** Journal rows that did not decode (set aside). */
  quarantined: number;
  /** Entries left at their old path by resumed moves (see the log). */
  conflicts: number;
}

export const MAX_ACTIVE_MOVES = 64;
const DEFAULT_CONCURRENCY = 16;

export class TreeMoves {
  private readonly store: MetadataStore;
  private readonly host: TreeMoveHost;
  private readonly concurrency: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly logger: TreeMoveLogger | undefined;
  private readonly vols = new Map<string, VolumeMoves>();
  private readonly volumes = new Map<string, Volume>();
  /** Write-back holds a move keeps until it ends (by journal id). */
  private readonly holds = new Map<string, (() => void)[]>();
  private closed = false;

  constructor(store: MetadataStore, host: TreeMoveHost, options: TreeMoveOptions = {}) {
    this.store = store;
    this.host = host;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
    this.retryBaseMs = Math.max(1, options.retryBaseMs ?? 1000);
    this.retryMaxMs = Math.max(this.retryBaseMs, options.retryMaxMs ?? 300_000);
    this.logger = options.logger;
  }

  /**
   * A volume's guard (built with its backend stack, src/vfs/volume-stack.ts): its moves run on the
   * guard's inner backend and hold their trees in it. Call before recover().
   */
  attach(name: string, guard: TreeMoveGuard): void {
    this.vols.set(name, new VolumeMoves(name, guard));
  }

  /**
   * Registers a volume's journaled moves: their trees are guarded from now on, so nothing can change
   * under them before resume() finishes them. Call right after the volume is created.
   */
  recover(v: Volume): void {
    const vm = this.vol(v.name);
    this.volumes.set(v.name, v);
    for (const row of this.store.pendingTreeMoves(v.name)) {
      let rec: TreeMoveRecord;
      try {
        rec = decodeTreeMove(row.record, v.name);
        if (rec.id !== row.id) throw new VfsError('EINVAL', 'bad tree move record: id does not match its row');
        if (rec.backend !== vm.guard.inner.kind) throw new VfsError('EINVAL', `bad tree move record: made on a ${rec.backend} backend, the share is now ${vm.guard.inner.kind}`);
        const m = vm.guard.overlapping(rec.from) ?? vm.guard.overlapping(rec.to);
        if (m) throw new VfsError('EINVAL', `bad tree move record: overlaps journaled move ${m.record.id}`);
      } catch (e) {
        const reason = (e as Error).message;
        try {
          this.store.quarantineTreeMove(row.id, reason);
        } catch (qe) {
          this.logger?.warn({ share: v.name, journalId: row.id, err: qe }, 'could not set a directory rename journal entry aside');
        }
        vm.quarantined++;
        this.logger?.warn({ share: v.name, journalId: row.id, reason }, 'directory rename journal entry set aside (not resumed)');
        continue;
      }
      vm.pending.push(vm.register(rec));
    }
  }

  /**
   * Finishes the journaled moves recover() registered (each volume's in journal order) and resolves
   * when each has been tried once; a move that fails again is retried in the background and keeps
   * its tree guarded. The gateway awaits this before the protocols start. Idempotent.
   */
  resume(volume?: string): Promise<TreeMoveReport> {
    const reports: Promise<TreeMoveReport>[] = [];
    for (const vm of this.vols.values()) {
      if (volume !== undefined && vm.name !== volume) continue;
      const v = this.volumes.get(vm.name);
      if (v === undefined) continue;
      vm.resuming ??= this.resumeVolume(vm, v);
      reports.push(vm.resuming);
    }
    return Promise.all(reports).then((rs) => {
      const total: TreeMoveReport = { resumed: 0, retrying: 0, quarantined: 0, conflicts: 0 };
      for (const r of rs) {
        total.resumed += r.resumed;
        total.retrying += r.retrying;
        total.quarantined += r.quarantined;
        total.conflicts += r.conflicts;
      }
      return total;
    });
  }

  private async resumeVolume(vm: VolumeMoves, v: Volume): Promise<TreeMoveReport> {
    const report: TreeMoveReport = { resumed: 0, retrying: 0, quarantined: vm.quarantined, conflicts: 0 };
    const todo = vm.pending.splice(0);
    if (todo.length > 0) this.logger?.info({ share: vm.name, moves: todo.length }, 'finishing interrupted directory renames');
    for (const m of todo) await this.hold(v, m.record);
    for (const m of todo) {
      if (this.closed) break;
      try {
        const r = await this.execute(vm, v, m, false);
        report.resumed++;
        report.conflicts += r.conflicts;
      } catch {
        if (vm.active.has(m.record.id)) report.retrying++;
      }
    }
    return report;
  }

  /** Resolves when no move is active on the volume (tests; shutdown ordering). */
  whenIdle(volume: string): Promise<void> {
    return this.vol(volume).guard.whenIdle();
  }

  activeMoves(volume: string): TreeMoveRecord[] {
    return [...this.vol(volume).active.values()].map((m) => m.record);
  }

  /** EBUSY when `path` lies in a tree being moved (opening there for writing or deleting). */
  assertNotMoving(volume: string, path: string): void {
    this.vols.get(volume)?.guard.check(path);
  }

  /** EBUSY when `path` is in a moving tree or a moving tree is below it (the ends of a rename). */
  assertNoOverlap(volume: string, path: string): void {
    const m = this.vols.get(volume)?.guard.overlapping(path);
    if (m) throw new VfsError('EBUSY', `a directory rename (${m.record.from} -> ${m.record.to}) is in progress here`, { path });
  }

  /**
   * For an operation that changes several paths with several backend calls (a file rename by copy +
   * delete): EBUSY when one lies in or around a moving tree, else the paths count as in flight until
   * the returned function is called, so a move starting meanwhile waits for it instead of stranding
   * half of it.
   */
  enter(volume: string, paths: string[]): () => void {
    const vm = this.vols.get(volume);
    if (vm === undefined) return () => undefined;
    for (const p of paths) this.assertNoOverlap(volume, p);
    return vm.guard.track(paths, false);
  }

  /** True when a writer (upload, publish) is in flight at or under `path`. */
  writersUnder(volume: string, path: string): boolean {
    const vm = this.vols.get(volume);
    return vm !== undefined && vm.guard.inflightUnder(path, true).length > 0;
  }

  /**
   * Directory rename on a backend without atomic rename (Vfs.rename): a journaled, concurrent tree
   * move that always completes, across errors and restarts. The id rows move at once, in the
   * journal's transaction; the objects follow. While it runs, changes inside either tree fail with
   * EBUSY; it refuses to start while a file inside is open for writing or deleting (as Windows does).
   * `wbRelease` releases the pending uploads the caller held below `from` (kept until the move ends);
   * `replacedId` is the empty directory the move replaces at `to`.
   */
  async renameTree(v: Volume, from: string, st: BackendStat, to: string, dirId: FileId, replacedId: FileId | undefined, wbRelease: (() => void) | undefined): Promise<void> {
    let rec: TreeMoveRecord;
    try {
      if (!v.backend.capabilities.caseSensitive && nameKey(from, false) === nameKey(to, false)) {
        throw new VfsError('ENOTSUP', 'case-only rename on a case-insensitive backend without atomic rename', { path: to });
      }
      // Below the directory only: SMB renames a directory through a handle on it opened with DELETE access.
      const busy = this.host.busyBelow(v, from);
      if (busy !== undefined) throw new VfsError('EBUSY', 'a file in this directory is open for writing or deleting', { path: busy });
      // Synchronous from the checks to the guard: nothing can start under the trees in between.
      rec = this.start(v, { from, to, dirId, mode: st.mode }, () => v.moved(from, to, 'dir'));
    } catch (e) {
      wbRelease?.();
      throw e;
    }
    if (wbRelease) this.holds.set(rec.id, [wbRelease]);
    if (replacedId !== undefined) {
      this.host.orphan(replacedId);
      this.host.releaseLocks(replacedId);
    }
    await this.run(v, rec);
  }

  /**
   * Commits a directory rename: checks, then one transaction that journals the move and runs
   * `commitIds` (the id-store update), then guards both trees. Synchronous, so nothing can start
   * under the trees between the checks and the guard. Follow with run().
   */
  private start(v: Volume, init: { from: string; to: string; dirId: FileId; mode?: number | undefined }, commitIds: () => void): TreeMoveRecord {
    const vm = this.vol(v.name);
    if (this.closed) throw new VfsError('ECANCELED', 'shutting down');
    if (vm.active.size >= MAX_ACTIVE_MOVES) throw new VfsError('EBUSY', `too many directory renames in progress on this share (${MAX_ACTIVE_MOVES})`);
    for (const p of [init.from, init.to]) {
      this.assertNoOverlap(v.name, p);
      if (vm.guard.inflightUnder(p, true).length > 0) throw new VfsError('EBUSY', 'a file in this directory is being written', { path: p });
    }
    const rec: TreeMoveRecord = { v: 1, id: randomUUID(), volume: v.name, backend: vm.guard.inner.kind, from: init.from, to: init.to, dirId: init.dirId, created: Date.now() };
    if (init.mode !== undefined) rec.mode = init.mode & 0o7777;
    const text = encodeTreeMove(rec);
    // On disk before the first copy, power cut included (the store's usual commits are not).
    this.store.durableTransaction(() => {
      this.store.insertTreeMove(rec.id, v.name, text);
      commitIds();
    });
    vm.register(rec);
    return rec;
  }

  /**
   * Does the backend work of a move start() committed. Resolves when it is complete; on failure
   * the move is retried in the background (or undone when nothing had changed yet) and the error
   * is thrown.
   */
  private async run(v: Volume, rec: TreeMoveRecord): Promise<MoveTreeResult> {
    const vm = this.vol(v.name);
    const m = vm.active.get(rec.id);
    if (!m) throw new VfsError('ENOENT', 'no such directory move');
    // Mutations that began before the guard (single calls; writers were refused) end first.
    await Promise.all([...vm.guard.inflightUnder(rec.from, false), ...vm.guard.inflightUnder(rec.to, false)].map((f) => f.settled));
    return this.execute(vm, v, m, true);
  }

  private async execute(vm: VolumeMoves, v: Volume, m: ActiveMove, live: boolean): Promise<MoveTreeResult> {
    const rec = m.record;
    let changed = false;
    let release!: () => void;
    m.running = new Promise<void>((r) => (release = r));
    let result: MoveTreeResult;
    try {
      try {
        result = await moveTree(vm.guard.inner, rec.from, rec.to, {
          concurrency: this.concurrency,
          verify: !live,
          expectEmptyTarget: live,
          rootMode: rec.mode,
          onChange: () => (changed = true),
          signal: m.abort.signal,
        });
      } catch (e) {
        if (live && !changed && !isVfsError(e, 'ECANCELED')) {
          // Nothing happened on the backend: the rename does not happen at all.
          this.store.durableTransaction(() => {
            this.undo(v, rec);
            this.store.deleteTreeMove(rec.id);
          });
          vm.unregister(rec.id);
          this.ended(v, rec, 'undone');
          throw toVfsError(e, rec.from);
        }
        this.scheduleRetry(vm, v, m, e);
        throw toVfsError(e, rec.from);
      }
      this.store.deleteTreeMove(rec.id);
      try {
        await this.moved(v, rec);
      } finally {
        vm.unregister(rec.id);
        this.ended(v, rec, 'moved');
      }
    } finally {
      m.running = undefined;
      release();
    }
    if (result.conflicts > 0) {
      this.logger?.warn({ share: vm.name, from: rec.from, to: rec.to, conflicts: result.conflicts, examples: result.conflictPaths }, 'directory renamed; some entries could not be moved and stay at their old path');
    } else if (!live || m.attempt > 0) {
      this.logger?.info({ share: vm.name, from: rec.from, to: rec.to, files: result.files, reused: result.reused }, 'interrupted directory rename finished');
    }
    if (live && result.conflicts > 0) {
      const first = result.conflictPaths.map((c) => `${c.path} (${c.reason})`).join(', ');
      throw new VfsError('EIO', `directory renamed, but ${result.conflicts} entries could not be moved and stay under ${rec.from}: ${first}`, { path: rec.from });
    }
    return result;
  }

  private scheduleRetry(vm: VolumeMoves, v: Volume, m: ActiveMove, err: unknown): void {
    if (this.closed || !this.store.db.isOpen) return;
    const delay = backoffCeilingMs(m.attempt, this.retryBaseMs, this.retryMaxMs);
    m.attempt++;
    this.logger?.warn({ share: vm.name, from: m.record.from, to: m.record.to, err, retryInMs: delay, attempt: m.attempt }, 'directory rename interrupted; it will be finished in the background');
    m.timer = setTimeout(() => {
      m.timer = undefined;
      if (this.closed || !this.store.db.isOpen || !vm.active.has(m.record.id)) return;
      this.execute(vm, v, m, false).catch(() => undefined);
    }, delay);
    m.timer.unref();
  }

  /**
   * The backend now matches the id store; the trees are still guarded: pending uploads and open
   * handles follow to the new paths, rows a reader created under the old path meanwhile go.
   */
  private async moved(v: Volume, m: TreeMoveRecord): Promise<void> {
    v.forgetCachedRows();
    // Rows a reader created under the old name while the objects moved (the directory's own row
    // moved at the start) are stale now. Not for a case-only rename: both names share one key.
    if (v.key(m.from) !== v.key(m.to)) {
      const stale = v.existingId(m.from);
      if (stale !== undefined && stale !== m.dirId) {
        for (const id of v.removed(m.from, 'dir')) this.host.releaseLocks(id);
      }
    }
    // Pending async uploads below the old path follow (held until the guard is lifted).
    const wb = this.host.writeBack;
    if (wb.idsUnder(v.name, m.from).length > 0) {
      try {
        await this.hold(v, m);
        await wb.moved(v.name, m.from, m.to);
      } catch (err) {
        wb.logWarn({ err, share: v.name, from: m.from, to: m.to }, 'tree move: could not retarget pending uploads');
      }
    }
    await this.host.handlesMoved(v, m.from, m.to);
  }

  /** Holds the pending async uploads below a moving tree's source until the move ends (they would be refused). */
  private async hold(v: Volume, m: TreeMoveRecord): Promise<void> {
    const ids = this.host.writeBack.idsUnder(v.name, m.from);
    if (ids.length === 0) return;
    const release = await this.host.writeBack.pause(ids);
    const holds = this.holds.get(m.id) ?? [];
    holds.push(release);
    this.holds.set(m.id, holds);
  }

  /** A live move failed before it changed anything: its directory row goes back to `from` (runs in the journal transaction). */
  private undo(v: Volume, m: TreeMoveRecord): void {
    const name = baseName(m.from).normalize('NFC');
    this.store.moveNode(v.name, m.dirId, v.row(parentPath(m.from)).id, name, v.key(name));
    v.forgetCachedRows();
  }

  /** The guard is lifted (after moved() or undo()): holds are released, a completed move is announced. */
  private ended(v: Volume, m: TreeMoveRecord, outcome: 'moved' | 'undone'): void {
    for (const release of this.holds.get(m.id) ?? []) release();
    this.holds.delete(m.id);
    if (outcome === 'moved') this.host.renamed(v, m.dirId, m.from, m.to);
  }

  /** Stops retries and running moves (they resume at the next start) and waits for them to stop. */
  async close(): Promise<void> {
    this.closed = true;
    const running: Promise<void>[] = [];
    for (const vm of this.vols.values()) {
      for (const m of vm.active.values()) {
        if (m.timer) clearTimeout(m.timer);
        m.timer = undefined;
        m.abort.abort();
        if (m.running) running.push(m.running);
      }
    }
    await Promise.all(running);
  }

  private vol(name: string): VolumeMoves {
    const vm = this.vols.get(name);
    if (!vm) throw new VfsError('ENOENT', `no share named ${name}`);
    return vm;
  }
}

/** A move the scheduler runs: guarded, with its retry state. */
interface ActiveMove extends GuardedMove {
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  abort: AbortController;
}

/** One volume's moves: its guard, the moves it holds, and those waiting for resume(). */
class VolumeMoves {
  readonly name: string;
  readonly guard: TreeMoveGuard;
  readonly active = new Map<string, ActiveMove>();
  /** Journaled moves registered at start-up, not yet resumed. */
  pending: ActiveMove[] = [];
  resuming: Promise<TreeMoveReport> | undefined;
  quarantined = 0;

  constructor(name: string, guard: TreeMoveGuard) {
    this.name = name;
    this.guard = guard;
  }

  /** The move is active and its trees are guarded from now on. */
  register(rec: TreeMoveRecord): ActiveMove {
    const m: ActiveMove = { record: rec, fromKey: this.guard.key(rec.from), toKey: this.guard.key(rec.to), attempt: 0, timer: undefined, running: undefined, abort: new AbortController() };
    this.active.set(rec.id, m);
    this.guard.hold(m);
    return m;
  }

  unregister(id: string): void {
    this.active.delete(id);
    this.guard.release(id);
  }
}
