/**
 * Directory renames on backends without atomic rename (S3, `memory:objectstore`): a journaled,
 * concurrent per-object move that always completes, even across a crash.
 *
 * How a move goes (Vfs.rename -> TreeMoves.start() then run()):
 *
 * 1. Checks, synchronously with the registration below: no other move on this volume overlaps the
 *    source or the target, no file under either is open for writing (or being uploaded by a
 *    writer), fewer than MAX_ACTIVE_MOVES are running.
 * 2. ONE metadata-store transaction (fsync'd: durableTransaction) writes the journal record (volume, backend kind, from, to, the
 *    directory's file id, its mode) and moves the directory's id row to its new name. This is the
 *    commit point of the rename: from here on the id store, `pathOf()`, readdir cookies and every
 *    id below the directory already say "new path", and the backend is brought in line.
 * 3. The tree is guarded (below), mutations already in flight under it are drained, then the walk
 *    runs: destination directories are created (parents first), files are copied (server-side
 *    `copy()` when the backend has one, else streamed with their mode, owner and times) and each
 *    source is deleted right after its copy, at most `concurrency` operations at a time (a bounded
 *    job queue fed by a depth-first listing, so memory does not grow with the tree); then the
 *    source directories are removed, deepest first.
 * 4. The journal row is deleted, open handles follow (their paths change and their read views
 *    reopen at the new objects) and one 'rename' change event goes out.
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
 * Resuming (after a crash, or after an error in a live move) runs the same walk in "verify" mode:
 * before copying a file, its destination is looked at. Missing: copy, then delete the source.
 * Present with the same type, size and mtime as the source: it is this move's copy whose source
 * delete did not happen yet: the source is deleted. Present but different: the destination is
 * never overwritten; the source stays where it is (a conflict, logged). Copies preserve mtime
 * (S3 `copy()` writes it explicitly, streamed copies commit it), so "same size and mtime" identifies
 * our own copy; a false mismatch can only leave a file behind, never lose one. Copies are atomic on
 * every backend (CopyObject, atomic writers), so a half-copied destination cannot exist.
 *
 * Start-up: Vfs.addVolume() registers the volume's journaled moves at once (their trees are guarded
 * from that instant); Vfs.resumeTreeMoves() finishes them. The gateway calls it after
 * recoverWriteBack() — pending async uploads below a moving tree must be known, so that they are
 * held during the move and retargeted to the new paths with it — and before the protocols start.
 *
 * Per-entry errors that retrying cannot fix (ENAMETOOLONG at the longer destination path, a file
 * where a directory must go...) are conflicts: that source entry stays where it is and the move goes
 * on. Any other error (EIO, ETIMEDOUT, EACCES, ENOSPC...) stops the pass; the journal stays, the tree
 * stays guarded, and the move is retried in the background with exponential backoff (1 s doubling
 * to 5 min) until it completes or the process stops; the next start resumes it before the volume
 * serves requests (Gateway awaits `Vfs.resumeTreeMoves()` before starting the protocols).
 *
 * Concurrency with clients while a move runs (decision: refuse, do not queue):
 * - Every backend mutation under the source or the target tree that does not come from the move
 *   (create, write/publish, mkdir, unlink, rmdir, copy into, setattr, truncate) fails at once with
 *   EBUSY: the volume's backend is wrapped in a guard (a Proxy, so optional backend methods keep
 *   their presence). Writers created before the move are checked again at commit. Opening a file
 *   there for writing or deleting is refused up front by Vfs.open (else its last close would fail to
 *   publish), and renames in, out of or around a moving tree are refused by Vfs.rename.
 * - Reads go on and see the tree as it is: each file at the old or the new path (briefly both, never
 *   neither). Waiting instead (serialising) would hold client requests for as long as the copy of a
 *   large tree takes, far past protocol timeouts.
 * - A move refuses to start (EBUSY) while a file inside is open for writing or deleting, as Windows
 *   refuses to rename a folder with open files in it. Readers inside are allowed: their paths follow
 *   and their read views reopen on the copies at the end.
 * - Pending async write-back uploads below the source are held for the whole move (they would be
 *   refused) and then retargeted to the new paths (Vfs.treeMoved).
 *
 * The journal table (`tree_moves`) lives in the metadata store; this module owns the record format:
 * versioned JSON, bounded in size, validated field by field. A record that does not decode is set
 * aside (quarantined, with the reason) and logged; it never stops a start.
 */
import { randomUUID } from 'node:crypto';
import type { Backend, BackendStat, BackendWriter, SetMetadata } from './backend.ts';
import { streamFile } from './file-copy.ts';
import { ENTRY_ERRORS, VfsError, isVfsError, toVfsError, type VfsErrorCode } from './errors.ts';
import { isSameOrDescendant, joinPath, nameKey, normalizePath } from './path.ts';
import type { FileId } from './types.ts';
import type { Volume } from './volume.ts';
import type { MetadataStore } from '../store/metadata-store.ts';
import { mapLimit } from '../util/map-limit.ts';
import { backoffCeilingMs } from './backoff.ts';

// ------------------------------------------------------------------ the journal record

export interface TreeMoveRecord {
  v: 1;
  /** Journal row id (a UUID). */
  id: string;
  volume: string;
  /** Backend kind when the move started: a share now on another kind of storage is not touched. */
  backend: string;
  /** Backend paths (as stored), normalised, never '/', neither inside the other. */
  from: string;
  to: string;
  /** The moved directory's file id (already at `to` in the id store). */
  dirId: FileId;
  /** Mode of the source directory (for the destination when it must be created). */
  mode?: number;
  /** ms since the epoch. */
  created: number;
}

/** Largest encoded record: two 4096-byte paths, JSON-escaped, plus a few short fields. */
export const TREE_MOVE_RECORD_MAX_BYTES = 32 * 1024;
/** Longest name any backend declares (S3: 1024 bytes); the volume enforces its own, smaller limits. */
const RECORD_MAX_NAME_BYTES = 1024;
const ID_RE = /^[A-Za-z0-9-]{1,64}$/;
const FILE_ID_RE = /^[1-9][0-9]{0,18}$/;
const MAX_FILE_ID = (1n << 63n) - 1n;

export function encodeTreeMove(r: TreeMoveRecord): string {
  const out: Record<string, unknown> = { v: 1, id: r.id, volume: r.volume, backend: r.backend, from: r.from, to: r.to, dirId: r.dirId.toString(), created: r.created };
  if (r.mode !== undefined) out.mode = r.mode;
  const text = JSON.stringify(out);
  if (Buffer.byteLength(text, 'utf8') > TREE_MOVE_RECORD_MAX_BYTES) throw new VfsError('ENAMETOOLONG', 'tree move record too large');
  return text;
}

/** Decodes and validates a stored record; throws VfsError('EINVAL') saying what is wrong. */
export function decodeTreeMove(text: unknown, expectVolume: string): TreeMoveRecord {
  const bad = (why: string): never => {
    throw new VfsError('EINVAL', `bad tree move record: ${why}`);
  };
  if (typeof text !== 'string') return bad('not text');
  if (Buffer.byteLength(text, 'utf8') > TREE_MOVE_RECORD_MAX_BYTES) return bad(`longer than ${TREE_MOVE_RECORD_MAX_BYTES} bytes`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return bad('not an object');
  const r = o as Record<string, unknown>;
  if (r.v !== 1) return bad(`unsupported version ${JSON.stringify(r.v)?.slice(0, 20)}`);
  if (typeof r.id !== 'string' || !ID_RE.test(r.id)) return bad('id');
  if (r.volume !== expectVolume) return bad('volume does not match its row');
  if (typeof r.backend !== 'string' || r.backend.length === 0 || r.backend.length > 64) return bad('backend');
  const path = (k: 'from' | 'to'): string => {
    const p = r[k];
    if (typeof p !== 'string') return bad(k);
    let n: string;
    try {
      n = normalizePath(p, RECORD_MAX_NAME_BYTES);
    } catch {
      return bad(`${k} is not a valid path`);
    }
    if (n !== p || n === '/') return bad(`${k} is not a normalised path below the root`);
    return n;
  };
  const from = path('from');
  const to = path('to');
  if (isSameOrDescendant(to, from) || isSameOrDescendant(from, to)) return bad('from and to overlap');
  if (typeof r.dirId !== 'string' || !FILE_ID_RE.test(r.dirId) || BigInt(r.dirId) > MAX_FILE_ID) return bad('dirId');
  if (r.mode !== undefined && (!Number.isInteger(r.mode) || (r.mode as number) < 0 || (r.mode as number) > 0o7777)) return bad('mode');
  if (typeof r.created !== 'number' || !Number.isFinite(r.created)) return bad('created');
  const rec: TreeMoveRecord = { v: 1, id: r.id, volume: expectVolume, backend: r.backend, from, to, dirId: BigInt(r.dirId), created: r.created };
  if (r.mode !== undefined) rec.mode = r.mode as number;
  return rec;
}

// ------------------------------------------------------------------ the engine

export interface MoveTreeOptions {
  /** Backend operations in flight at once. */
  concurrency: number;
  /** A destination entry may already exist (a resumed move): look before copying, never overwrite. */
  verify: boolean;
  /**
   * First pass of a live move: the target must be missing or an empty directory (checked again here,
   * now that the tree is guarded; the caller's check ran before).
   */
  expectEmptyTarget?: boolean;
  /** Mode of the destination root when it must be created. */
  rootMode?: number | undefined;
  /** Called once, after the first change the move made to the backend. */
  onChange?: () => void;
  /** Aborted: no new work starts, the run ends with ECANCELED (the journal stays). */
  signal?: AbortSignal;
  /** Passes when source directories are found non-empty without a conflict explaining it. */
  maxPasses?: number;
}

export interface MoveTreeResult {
  /** Files (and symbolic links) copied and their source deleted. */
  files: number;
  /** Destination copies found in place (a resumed move), whose source was then deleted. */
  reused: number;
  /** Source directories removed. */
  dirs: number;
  /** Source entries that disappeared by themselves during the run. */
  vanished: number;
  /** Source entries left in place because the destination could not take them. */
  conflicts: number;
  conflictPaths: { path: string; reason: string }[];
  passes: number;
}

const LIST_PAGE = 1000;
const CONFLICT_PATHS_MAX = 20;

/** Errors a retry cannot fix for this entry (errors.ts ENTRY_ERRORS): the entry stays at its source (a conflict). */
function permanent(e: unknown): boolean {
  return e instanceof VfsError && ENTRY_ERRORS.has(e.code);
}

async function statOrUndefined(b: Backend, path: string): Promise<BackendStat | undefined> {
  try {
    return await b.stat(path);
  } catch (e) {
    if (isVfsError(e, 'ENOENT') || isVfsError(e, 'ENOTDIR')) return undefined;
    throw e;
  }
}

/**
 * A bounded job queue: at most `limit` jobs run, at most `maxQueued` wait; submit() waits for room
 * (back-pressure on the directory walk). The first failure stops it: queued jobs are dropped and
 * submit()/drain() reject with that error.
 */
class JobPool {
  private running = 0;
  private readonly queue: { run: () => Promise<void>; drop: (e: unknown) => void }[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private error: unknown;
  private failed = false;
  private readonly limit: number;
  private readonly maxQueued: number;

  constructor(limit: number, maxQueued: number) {
    this.limit = Math.max(1, limit);
    this.maxQueued = Math.max(1, maxQueued);
  }

  /** Queues fn once there is room; the returned `done` settles with fn (its failure also stops the pool). */
  async submit<T>(fn: () => Promise<T>): Promise<{ done: Promise<T> }> {
    while (!this.failed && this.queue.length >= this.maxQueued) await new Promise<void>((r) => this.roomWaiters.push(r));
    if (this.failed) throw this.error;
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The pool reports the failure through drain(); nobody has to await `done`.
    done.catch(() => undefined);
    this.queue.push({
      run: async () => {
        try {
          resolve(await fn());
        } catch (e) {
          reject(e);
          throw e;
        }
      },
      drop: reject,
    });
    this.pump();
    return { done };
  }

  private pump(): void {
    while (!this.failed && this.running < this.limit && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.roomWaiters.shift()?.();
      this.running++;
      job.run().then(
        () => this.finished(),
        (e: unknown) => {
          this.fail(e);
          this.finished();
        },
      );
    }
  }

  private finished(): void {
    this.running--;
    this.pump();
    if (this.running === 0 && (this.queue.length === 0 || this.failed)) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Waits until every job has ended; rejects with the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failed) throw this.error;
  }

  /** Waits until nothing runs (failed or not). */
  async settle(): Promise<void> {
    if (this.running === 0 && (this.queue.length === 0 || this.failed)) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Stops the pool (a job or the walk failed): queued jobs are dropped (their `done` rejects). */
  fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.error = e;
    for (const job of this.queue.splice(0)) job.drop(e);
    for (const w of this.roomWaiters.splice(0)) w();
  }
}

/**
 * Moves everything under `from` to `to` on one backend, roll-forward style: re-running it on
 * whatever a crashed or failed run left finishes the move (see the header for the rules).
 */
export async function moveTree(b: Backend, from: string, to: string, o: MoveTreeOptions): Promise<MoveTreeResult> {
  const res: MoveTreeResult = { files: 0, reused: 0, dirs: 0, vanished: 0, conflicts: 0, conflictPaths: [], passes: 0 };
  let changed = false;
  const change = (): void => {
    if (changed) return;
    changed = true;
    o.onChange?.();
  };
  const conflict = (path: string, reason: string): void => {
    res.conflicts++;
    if (res.conflictPaths.length < CONFLICT_PATHS_MAX) res.conflictPaths.push({ path, reason });
  };
  const aborted = (): void => {
    if (o.signal?.aborted) throw new VfsError('ECANCELED', 'directory move stopped (shutting down); it resumes at the next start');
  };

  // The destination root.
  if (o.verify && !o.expectEmptyTarget) {
    const src = await statOrUndefined(b, from);
    if (src === undefined) return res; // everything moved already (or removed by someone else)
    if (src.type !== 'dir') {
      conflict(from, 'the source is no longer a directory');
      return res;
    }
  }
  try {
    await b.mkdir(to, o.rootMode);
    change();
  } catch (e) {
    if (!isVfsError(e, 'EEXIST')) throw e;
    const st = await b.stat(to);
    if (st.type !== 'dir') {
      if (o.expectEmptyTarget) throw new VfsError('ENOTDIR', undefined, { path: to });
      conflict(from, 'the destination is not a directory');
      return res;
    }
    if (o.expectEmptyTarget) {
      const page = await b.list(to, { limit: 1 });
      if (page.entries.length > 0) throw new VfsError('ENOTEMPTY', undefined, { path: to });
      // rename(2) puts the source directory itself at the target: keep its mode.
      if (o.rootMode !== undefined && b.capabilities.posixMetadata && st.mode !== undefined && (st.mode & 0o7777) !== o.rootMode) {
        await b.setMetadata(to, { mode: o.rootMode });
        change();
      }
    }
  }

  const maxPasses = Math.max(1, o.maxPasses ?? 3);
  for (let p = 1; ; p++) {
    res.passes = p;
    const leftover = await movePass(b, from, to, o.verify || p > 1, o, res, change, conflict, aborted);
    if (leftover === 0 || res.conflicts > 0) break;
    if (p >= maxPasses) {
      conflict(from, `${leftover} source directories still not empty after ${p} passes`);
      break;
    }
  }
  return res;
}

/** A destination directory: created by this pass (empty), there before, or impossible. */
type DirState = 'fresh' | 'existing' | 'conflict';

/** One walk over the source; returns how many source directories could not be removed. */
async function movePass(
  b: Backend,
  from: string,
  to: string,
  verify: boolean,
  o: MoveTreeOptions,
  res: MoveTreeResult,
  change: () => void,
  conflict: (path: string, reason: string) => void,
  aborted: () => void,
): Promise<number> {
  const pool = new JobPool(o.concurrency, o.concurrency * 4);
  const dirs: { path: string; depth: number }[] = [];
  // A destination directory this pass created is empty (and guarded): nothing in it to check.
  const stack: { src: string; dst: string; depth: number; ready: Promise<DirState> }[] = [{ src: from, dst: to, depth: 0, ready: Promise.resolve(verify ? 'existing' : 'fresh') }];

  const ensureDir = async (src: string, dst: string, mode: number | undefined): Promise<DirState> => {
    try {
      await b.mkdir(dst, mode);
      change();
      return 'fresh';
    } catch (e) {
      if (isVfsError(e, 'EEXIST')) {
        const st = await statOrUndefined(b, dst);
        if (st?.type === 'dir') return 'existing';
        conflict(src, 'a file exists where the directory must go');
        return 'conflict';
      }
      if (permanent(e)) {
        conflict(src, (e as VfsError).code);
        return 'conflict';
      }
      throw e;
    }
  };

  const moveFile = async (src: string, dst: string, e: BackendStat, lookFirst: boolean): Promise<void> => {
    if (lookFirst) {
      const there = await statOrUndefined(b, dst);
      if (there !== undefined) {
        const now = await statOrUndefined(b, src);
        if (now === undefined) {
          res.vanished++;
          return;
        }
        if (await sameEntry(b, src, now, dst, there)) {
          await unlinkQuiet(b, src);
          change();
          res.reused++;
          return;
        }
        conflict(src, 'a different file exists at the destination');
        return;
      }
    }
    try {
      await copyEntry(b, src, dst, e);
    } catch (err) {
      // The destination directory exists (ready), so ENOENT means the source went away.
      if (isVfsError(err, 'ENOENT')) {
        res.vanished++;
        return;
      }
      if (permanent(err)) {
        conflict(src, (err as VfsError).code);
        return;
      }
      throw err;
    }
    change();
    await unlinkQuiet(b, src);
    res.files++;
  };

  try {
    while (stack.length > 0) {
      const d = stack.pop()!;
      dirs.push({ path: d.src, depth: d.depth });
      let after: string | undefined;
      for (;;) {
        aborted();
        let page;
        try {
          page = await b.list(d.src, after === undefined ? { limit: LIST_PAGE } : { after, limit: LIST_PAGE });
        } catch (err) {
          if (isVfsError(err, 'ENOENT')) break; // already moved and removed by an earlier run
          throw err;
        }
        for (const e of page.entries) {
          const src = joinPath(d.src, e.name);
          const dst = joinPath(d.dst, e.name);
          const parentReady = d.ready;
          if (e.type === 'dir') {
            // Jobs start in submission order, so a parent's mkdir has started before its children wait on it.
            const { done } = await pool.submit(async (): Promise<DirState> => ((await parentReady) === 'conflict' ? 'conflict' : ensureDir(src, dst, e.mode)));
            stack.push({ src, dst, depth: d.depth + 1, ready: done.catch((): DirState => 'conflict') });
          } else {
            await pool.submit(async () => {
              const state = await parentReady;
              if (state === 'conflict') return conflict(src, 'its destination directory could not be created');
              aborted();
              await moveFile(src, dst, e, verify && state === 'existing');
            });
          }
        }
        if (page.next === undefined) break;
        after = page.next;
      }
    }
    await pool.drain();
  } catch (e) {
    pool.fail(e);
    await pool.settle();
    throw e;
  }

  // Source directories, deepest first (siblings concurrently).
  let leftover = 0;
  const levels = new Map<number, string[]>();
  for (const d of dirs) {
    let l = levels.get(d.depth);
    if (!l) levels.set(d.depth, (l = []));
    l.push(d.path);
  }
  for (const depth of [...levels.keys()].sort((x, y) => y - x)) {
    aborted();
    await mapLimit(levels.get(depth)!, o.concurrency, async (path) => {
      try {
        await b.rmdir(path);
        change();
        res.dirs++;
      } catch (e) {
        if (isVfsError(e, 'ENOENT')) return;
        if (isVfsError(e, 'ENOTEMPTY')) {
          leftover++;
          return;
        }
        throw e;
      }
    });
  }
  return leftover;
}

async function unlinkQuiet(b: Backend, path: string): Promise<void> {
  try {
    await b.unlink(path);
  } catch (e) {
    if (!isVfsError(e, 'ENOENT')) throw e;
  }
}

/** Is `dst` this move's copy of `src`? Copies keep type, size and mtime (symbolic links: target). */
async function sameEntry(b: Backend, src: string, s: BackendStat, dst: string, d: BackendStat): Promise<boolean> {
  if (s.type !== d.type) return false;
  if (s.type === 'symlink') return b.readlink !== undefined && (await b.readlink(src)) === (await b.readlink(dst));
  return s.size === d.size && s.mtimeNs === d.mtimeNs;
}

/** Copies one file or symbolic link, keeping what the backend can keep (mode, owner, times). */
async function copyEntry(b: Backend, src: string, dst: string, e: BackendStat): Promise<void> {
  if (e.type === 'symlink') {
    if (!b.symlink || !b.readlink) throw new VfsError('ENOTSUP', 'backend has no symbolic links', { path: src });
    await b.symlink(await b.readlink(src), dst);
    return;
  }
  if (b.capabilities.serverSideCopy && b.copy) {
    await b.copy(src, dst);
    return;
  }
  // The file's own stat (a listing entry may carry less): what a resumed move compares against.
  e = await b.stat(src);
  const meta: SetMetadata = { mtimeNs: e.mtimeNs, atimeNs: e.atimeNs };
  if (e.mode !== undefined) meta.mode = e.mode & 0o7777;
  if (e.uid !== undefined) meta.uid = e.uid;
  if (e.gid !== undefined) meta.gid = e.gid;
  if (e.birthtimeNs !== undefined) meta.birthtimeNs = e.birthtimeNs;
  await streamFile(b, src, b, dst, { sizeHint: e.size, ...(e.mode !== undefined ? { mode: e.mode } : {}), meta });
}

// ------------------------------------------------------------------ the guard

/** A backend call in flight on a guarded volume (a writer counts until commit or abort ends). */
interface Inflight {
  paths: string[];
  writer: boolean;
  settled: Promise<void>;
}

interface ActiveMove {
  record: TreeMoveRecord;
  fromKey: string;
  toKey: string;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  abort: AbortController;
}

/** Methods whose first argument is the path they change (writers are handled apart: tracked until commit). */
const MUTATES_ARG0 = new Set(['mkdir', 'rmdir', 'unlink', 'setMetadata', 'truncate']);
/** Methods whose second argument is the path they change (copy/link/symlink: the new name). */
const MUTATES_ARG1 = new Set(['copy', 'symlink', 'link']);

class VolumeMoves {
  readonly name: string;
  readonly inner: Backend;
  readonly active = new Map<string, ActiveMove>();
  readonly inflight = new Set<Inflight>();
  /** Journaled moves registered at start-up, not yet resumed. */
  pending: ActiveMove[] = [];
  resuming: Promise<TreeMoveReport> | undefined;
  quarantined = 0;
  private readonly caseSensitive: boolean;
  private idleWaiters: (() => void)[] = [];

  constructor(name: string, inner: Backend) {
    this.name = name;
    this.inner = inner;
    this.caseSensitive = inner.capabilities.caseSensitive;
  }

  key(path: string): string {
    return nameKey(path, this.caseSensitive);
  }

  /** The active move whose source or target tree holds `path`. */
  holding(path: string): ActiveMove | undefined {
    if (this.active.size === 0) return undefined;
    const k = this.key(path);
    for (const m of this.active.values()) {
      if (isSameOrDescendant(k, m.fromKey) || isSameOrDescendant(k, m.toKey)) return m;
    }
    return undefined;
  }

  /** The active move that holds `path` or lies below it. */
  overlapping(path: string): ActiveMove | undefined {
    const held = this.holding(path);
    if (held) return held;
    const k = this.key(path);
    for (const m of this.active.values()) {
      if (isSameOrDescendant(m.fromKey, k) || isSameOrDescendant(m.toKey, k)) return m;
    }
    return undefined;
  }

  check(path: string): void {
    const m = this.holding(path);
    if (m) throw new VfsError('EBUSY', `a directory rename (${m.record.from} -> ${m.record.to}) is in progress here`, { path });
  }

  /** Calls in flight under `root` (either direction), writers or not. */
  inflightUnder(root: string, writers: boolean): Inflight[] {
    const rk = this.key(root);
    const out: Inflight[] = [];
    for (const f of this.inflight) {
      if (f.writer !== writers) continue;
      if (f.paths.some((p) => isSameOrDescendant(this.key(p), rk) || isSameOrDescendant(rk, this.key(p)))) out.push(f);
    }
    return out;
  }

  track(paths: string[], writer: boolean): () => void {
    let done!: () => void;
    const f: Inflight = { paths, writer, settled: new Promise<void>((r) => (done = r)) };
    this.inflight.add(f);
    return () => {
      this.inflight.delete(f);
      done();
    };
  }

  unregister(id: string): void {
    this.active.delete(id);
    if (this.active.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  whenIdle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * The backend the volume uses: every mutation under a moving tree fails with EBUSY. A Proxy, so
   * everything else (including optional methods this module does not know) passes through as is.
   */
  guarded(): Backend {
    const inner = this.inner;
    const bound = new Map<PropertyKey, unknown>();
    const run = async <T>(paths: string[], call: () => Promise<T>): Promise<T> => {
      for (const p of paths) this.check(p);
      const untrack = this.track(paths, false);
      try {
        return await call();
      } finally {
        untrack();
      }
    };
    const wrapWriter = <W extends BackendWriter>(w: W, path: string, untrack: () => void): W => {
      let ended = false;
      const end = (): void => {
        if (!ended) {
          ended = true;
          untrack();
        }
      };
      return new Proxy(w, {
        get: (target, prop) => {
          const value = Reflect.get(target, prop, target) as unknown;
          if (prop === 'commit') {
            return async (...args: unknown[]) => {
              try {
                this.check(path);
                return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
              } finally {
                end();
              }
            };
          }
          if (prop === 'abort') {
            return async () => {
              try {
                return await (value as () => Promise<void>).apply(target);
              } finally {
                end();
              }
            };
          }
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    };
    return new Proxy(inner, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        const name = String(prop);
        if (name === 'createWriter' || name === 'createPatchWriter') {
          return async (path: string, ...rest: unknown[]) => {
            this.check(path);
            const untrack = this.track([path], true);
            try {
              const w = (await (value as (...a: unknown[]) => Promise<BackendWriter>).apply(target, [path, ...rest]));
              return wrapWriter(w, path, untrack);
            } catch (e) {
              untrack();
              throw e;
            }
          };
        }
        if (MUTATES_ARG0.has(name)) return (path: string, ...rest: unknown[]) => run([path], () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, [path, ...rest]));
        if (MUTATES_ARG1.has(name)) return (a: string, path: string, ...rest: unknown[]) => run([path], () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, [a, path, ...rest]));
        if (name === 'rename') return (a: string, c: string) => run([a, c], () => (value as (x: string, y: string) => Promise<void>).call(target, a, c));
        if (name === 'openFile') {
          return (path: string, opts: { write?: boolean; create?: boolean; truncate?: boolean }) =>
            opts?.write || opts?.create || opts?.truncate
              ? run([path], () => (value as (p: string, o: unknown) => Promise<unknown>).call(target, path, opts))
              : (value as (p: string, o: unknown) => Promise<unknown>).call(target, path, opts);
        }
        let f = bound.get(prop);
        if (f === undefined) bound.set(prop, (f = (value as (...a: unknown[]) => unknown).bind(target)));
        return f;
      },
    });
  }
}

// ------------------------------------------------------------------ the coordinator

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

/** What the Vfs does around a move. */
export interface TreeMoveHost {
  /**
   * The backend now matches the id store; the trees are still guarded: pending uploads and open
   * handles follow to the new paths, rows a reader created under the old path meanwhile go.
   */
  moved(volume: Volume, move: TreeMoveRecord): Promise<void>;
  /** A journaled move is about to be resumed at start-up: hold whatever would write under its trees meanwhile. */
  resuming?(volume: Volume, move: TreeMoveRecord): Promise<void>;
  /** A live move failed before it changed anything: put the directory's id row back at `from` (runs in the journal transaction). */
  undo(volume: Volume, move: TreeMoveRecord): void;
  /** The guard is lifted (after moved() or undo()): release holds, send the change event. */
  ended(volume: Volume, move: TreeMoveRecord, outcome: 'moved' | 'undone'): void;
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
  private closed = false;

  constructor(store: MetadataStore, host: TreeMoveHost, options: TreeMoveOptions = {}) {
    this.store = store;
    this.host = host;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
    this.retryBaseMs = Math.max(1, options.retryBaseMs ?? 1000);
    this.retryMaxMs = Math.max(this.retryBaseMs, options.retryMaxMs ?? 300_000);
    this.logger = options.logger;
  }

  /** The backend a volume should use: guarded when it has no atomic rename (only then do tree moves happen). */
  attach(name: string, backend: Backend): Backend {
    const vm = new VolumeMoves(name, backend);
    this.vols.set(name, vm);
    return backend.capabilities.atomicRename ? backend : vm.guarded();
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
        if (rec.backend !== vm.inner.kind) throw new VfsError('EINVAL', `bad tree move record: made on a ${rec.backend} backend, the share is now ${vm.inner.kind}`);
        const m = vm.overlapping(rec.from) ?? vm.overlapping(rec.to);
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
      vm.pending.push(this.register(vm, rec));
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
    for (const m of todo) await this.host.resuming?.(v, m.record);
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
    return this.vol(volume).whenIdle();
  }

  activeMoves(volume: string): TreeMoveRecord[] {
    return [...this.vol(volume).active.values()].map((m) => m.record);
  }

  /** EBUSY when `path` lies in a tree being moved (opening there for writing or deleting). */
  assertNotMoving(volume: string, path: string): void {
    this.vols.get(volume)?.check(path);
  }

  /** EBUSY when `path` is in a moving tree or a moving tree is below it (the ends of a rename). */
  assertNoOverlap(volume: string, path: string): void {
    const m = this.vols.get(volume)?.overlapping(path);
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
    return vm.track(paths, false);
  }

  /** True when a writer (upload, publish) is in flight at or under `path`. */
  writersUnder(volume: string, path: string): boolean {
    const vm = this.vols.get(volume);
    return vm !== undefined && vm.inflightUnder(path, true).length > 0;
  }

  /**
   * Commits a directory rename: checks, then one transaction that journals the move and runs
   * `commitIds` (the id-store update), then guards both trees. Synchronous, so nothing can start
   * under the trees between the checks and the guard. Follow with run().
   */
  start(v: Volume, init: { from: string; to: string; dirId: FileId; mode?: number | undefined }, commitIds: () => void): TreeMoveRecord {
    const vm = this.vol(v.name);
    if (this.closed) throw new VfsError('ECANCELED', 'shutting down');
    if (vm.active.size >= MAX_ACTIVE_MOVES) throw new VfsError('EBUSY', `too many directory renames in progress on this share (${MAX_ACTIVE_MOVES})`);
    for (const p of [init.from, init.to]) {
      this.assertNoOverlap(v.name, p);
      if (vm.inflightUnder(p, true).length > 0) throw new VfsError('EBUSY', 'a file in this directory is being written', { path: p });
    }
    const rec: TreeMoveRecord = { v: 1, id: randomUUID(), volume: v.name, backend: vm.inner.kind, from: init.from, to: init.to, dirId: init.dirId, created: Date.now() };
    if (init.mode !== undefined) rec.mode = init.mode & 0o7777;
    const text = encodeTreeMove(rec);
    // On disk before the first copy, power cut included (the store's usual commits are not).
    this.store.durableTransaction(() => {
      this.store.insertTreeMove(rec.id, v.name, text);
      commitIds();
    });
    this.register(vm, rec);
    return rec;
  }

  /**
   * Does the backend work of a move start() committed. Resolves when it is complete; on failure
   * the move is retried in the background (or undone when nothing had changed yet) and the error
   * is thrown.
   */
  async run(v: Volume, rec: TreeMoveRecord): Promise<MoveTreeResult> {
    const vm = this.vol(v.name);
    const m = vm.active.get(rec.id);
    if (!m) throw new VfsError('ENOENT', 'no such directory move');
    // Mutations that began before the guard (single calls; writers were refused) end first.
    await Promise.all([...vm.inflightUnder(rec.from, false), ...vm.inflightUnder(rec.to, false)].map((f) => f.settled));
    return this.execute(vm, v, m, true);
  }

  private register(vm: VolumeMoves, rec: TreeMoveRecord): ActiveMove {
    const m: ActiveMove = { record: rec, fromKey: vm.key(rec.from), toKey: vm.key(rec.to), attempt: 0, timer: undefined, running: undefined, abort: new AbortController() };
    vm.active.set(rec.id, m);
    return m;
  }

  private async execute(vm: VolumeMoves, v: Volume, m: ActiveMove, live: boolean): Promise<MoveTreeResult> {
    const rec = m.record;
    let changed = false;
    let release!: () => void;
    m.running = new Promise<void>((r) => (release = r));
    let result: MoveTreeResult;
    try {
      try {
        result = await moveTree(vm.inner, rec.from, rec.to, {
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
            this.host.undo(v, rec);
            this.store.deleteTreeMove(rec.id);
          });
          vm.unregister(rec.id);
          this.host.ended(v, rec, 'undone');
          throw toVfsError(e, rec.from);
        }
        this.scheduleRetry(vm, v, m, e);
        throw toVfsError(e, rec.from);
      }
      this.store.deleteTreeMove(rec.id);
      try {
        await this.host.moved(v, rec);
      } finally {
        vm.unregister(rec.id);
        this.host.ended(v, rec, 'moved');
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
