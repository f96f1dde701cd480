/**
 * The tree-move guard: the backend layer that refuses changes inside a tree being moved, and the
 * bookkeeping it needs (which trees are moving, which backend calls are in flight).
 *
 * Concurrency with clients while a move runs (decision: refuse, do not queue):
 * - Every backend mutation under the source or the target tree that does not come from the move
 *   (create, write/publish, mkdir, unlink, rmdir, copy into, setattr, truncate) fails at once with
 *   EBUSY: the volume's backend is wrapped in this guard (a Proxy, so optional backend methods keep
 *   their presence). Writers created before the move are checked again at commit. Opening a file
 *   there for writing or deleting is refused up front by Vfs.open (else its last close would fail to
 *   publish), and renames in, out of or around a moving tree are refused by Vfs.rename.
 * - Reads go on and see the tree as it is: each file at the old or the new path (briefly both, never
 *   neither). Waiting instead (serialising) would hold client requests for as long as the copy of a
 *   large tree takes, far past protocol timeouts.
 * - Calls that began before a move was guarded are tracked here, so the move waits for them before
 *   its walk starts (single calls), or refuses to start (a writer: its commit would be refused).
 *
 * One guard per volume, built with the volume's backend stack (src/vfs/volume-stack.ts) and driven by
 * the scheduler (moves.ts), which guards a tree from the commit of its move until its end. The move's
 * own walker runs on `inner`, below the guard.
 */
import type { Backend, BackendWriter } from '../backend.ts';
import { VfsError } from '../errors.ts';
import { isSameOrDescendant, nameKey } from '../path.ts';
import type { TreeMoveRecord } from './record.ts';

/** A backend call in flight on a guarded volume (a writer counts until commit or abort ends). */
export interface Inflight {
  paths: string[];
  writer: boolean;
  settled: Promise<void>;
}

/** A move whose trees are guarded: its record and the keys (case-folded when the backend is) of its two roots. */
export interface GuardedMove {
  readonly record: TreeMoveRecord;
  readonly fromKey: string;
  readonly toKey: string;
}

/** Methods whose first argument is the path they change (writers are handled apart: tracked until commit). */
const MUTATES_ARG0 = new Set(['mkdir', 'rmdir', 'unlink', 'setMetadata', 'truncate']);
/** Methods whose second argument is the path they change (copy/link/symlink: the new name). */
const MUTATES_ARG1 = new Set(['copy', 'symlink', 'link']);

export class TreeMoveGuard {
  /** The backend below the guard: what the moves themselves run on. */
  readonly inner: Backend;
  /** The guarded backend: every mutation under a moving tree fails with EBUSY. */
  readonly backend: Backend;
  private readonly active = new Map<string, GuardedMove>();
  private readonly inflight = new Set<Inflight>();
  private readonly caseSensitive: boolean;
  private idleWaiters: (() => void)[] = [];

  constructor(inner: Backend) {
    this.inner = inner;
    this.caseSensitive = inner.capabilities.caseSensitive;
    this.backend = this.wrap();
  }

  key(path: string): string {
    return nameKey(path, this.caseSensitive);
  }

  /** From now on, changes under the move's two trees fail with EBUSY. */
  hold(m: GuardedMove): void {
    this.active.set(m.record.id, m);
  }

  /** The move ended: its trees take changes again. */
  release(id: string): void {
    this.active.delete(id);
    if (this.active.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** The active move whose source or target tree holds `path`. */
  holding(path: string): GuardedMove | undefined {
    if (this.active.size === 0) return undefined;
    const k = this.key(path);
    for (const m of this.active.values()) {
      if (isSameOrDescendant(k, m.fromKey) || isSameOrDescendant(k, m.toKey)) return m;
    }
    return undefined;
  }

  /** The active move that holds `path` or lies below it. */
  overlapping(path: string): GuardedMove | undefined {
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

  /** Resolves when no move is guarded. */
  whenIdle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * The guarded backend: every mutation under a moving tree fails with EBUSY. A Proxy, so
   * everything else (including optional methods this module does not know) passes through as is.
   */
  private wrap(): Backend {
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
        if (name === 'rename' || name === 'exchange') return (a: string, c: string) => run([a, c], () => (value as (x: string, y: string) => Promise<void>).call(target, a, c));
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
