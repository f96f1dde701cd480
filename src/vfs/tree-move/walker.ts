/**
 * The walk that moves a tree on one backend: destination directories are created (parents first),
 * files are copied (server-side `copy()` when the backend has one, else streamed with their mode,
 * owner and times) and each source is deleted right after its copy, at most `concurrency`
 * operations at a time (a bounded job queue fed by a depth-first listing, so memory does not grow
 * with the tree); then the source directories are removed, deepest first.
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
 * Per-entry errors that retrying cannot fix (ENAMETOOLONG at the longer destination path, a file
 * where a directory must go...) are conflicts: that source entry stays where it is and the walk
 * goes on. Any other error (EIO, ETIMEDOUT, EACCES, ENOSPC...) stops the walk and is thrown; the
 * scheduler (moves.ts) retries.
 *
 * The walker knows nothing of journals, ids or guards: it runs on the backend below the guard
 * (guard.ts), which refuses everybody else's changes in the trees meanwhile.
 */
import type { Backend, BackendStat, SetMetadata } from '../backend.ts';
import { streamFile } from '../file-copy.ts';
import { ENTRY_ERRORS, VfsError, isVfsError } from '../errors.ts';
import { joinPath } from '../path.ts';
import { mapLimit } from '../../util/map-limit.ts';
import { JobPool } from './job-pool.ts';

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
