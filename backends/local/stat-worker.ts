/**
 * lstat of large directory pages on a helper thread.
 *
 * Why: a listing needs one lstat per name (sizes, times, types). Made inline they cost ~5 µs each
 * of event-loop time — about 40% of a 10,000-entry WebDAV PROPFIND — and through the libuv thread
 * pool far more (a round trip and a promise per name). One helper thread makes a page's lstats
 * synchronously and answers with packed numbers: the event loop pays one message per page, and
 * since the VFS lists the next page while the protocol renders the current one, the lstats run on
 * another core at the same time as the rendering.
 *
 * Used only for pages of at least WORKER_MIN_NAMES names on file systems where inline calls are
 * allowed (local ones: a slow network file system is better served by many parallel thread-pool
 * lstats). One thread per process, started at first use (~30 ms, a few MB), not keeping the process
 * alive when idle. If it fails, the caller falls back to the other paths.
 */
import { Worker } from 'node:worker_threads';
import type { BackendStat } from '../../src/vfs/backend.ts';
import { STAT_FIELDS, type StatReply, type StatRequest } from './stat-protocol.ts';

/** Pages smaller than this are stat'ed inline (a message costs about as much as ~20 lstats). */
export const WORKER_MIN_NAMES = 256;

const S_IFMT = 0o170000n;
const S_IFDIR = 0o040000n;
const S_IFLNK = 0o120000n;

interface Pending {
  names: readonly string[];
  resolve: (stats: Array<BackendStat | undefined>) => void;
  reject: (e: Error) => void;
}

class StatWorker {
  private worker: Worker | undefined;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  /** Set once the thread could not be started or died: callers use the other paths. */
  broken = false;
  /** Batches answered (tests, diagnostics). */
  batches = 0;

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./stat-thread.ts', import.meta.url));
    w.unref();
    w.on('message', (r: StatReply) => this.settle(r));
    const fail = (e: Error): void => {
      this.broken = true;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`stat thread exited (${code})`)));
    this.worker = w;
    return w;
  }

  private settle(r: StatReply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.worker?.unref();
    this.batches++;
    if (r.error) {
      const e = Object.assign(new Error(r.error.message), { code: r.error.code });
      p.reject(e);
      return;
    }
    const out = new Array<BackendStat | undefined>(p.names.length);
    const { nums, present, links } = r;
    for (let i = 0; i < p.names.length; i++) {
      if (present[i] !== 1) continue;
      const o = i * STAT_FIELDS;
      const mode = nums[o]!;
      const fmt = mode & S_IFMT;
      const st: BackendStat = {
        name: p.names[i]!,
        type: fmt === S_IFDIR ? 'dir' : fmt === S_IFLNK ? 'symlink' : 'file',
        size: Number(nums[o + 4]),
        mtimeNs: nums[o + 6]!,
        ctimeNs: nums[o + 7]!,
        atimeNs: nums[o + 5]!,
        mode: Number(mode & 0o7777n),
        uid: Number(nums[o + 1]),
        gid: Number(nums[o + 2]),
        nlink: Number(nums[o + 3]),
        nativeId: `${nums[o + 9]}:${nums[o + 10]}`,
      };
      if (nums[o + 8] !== 0n) st.birthtimeNs = nums[o + 8]!;
      out[i] = st;
    }
    for (const [i, target] of links) if (out[i]) out[i]!.target = target;
    p.resolve(out);
  }

  /** lstat of `names` in directory `base`; undefined for names that no longer exist. */
  statMany(base: string, names: readonly string[]): Promise<Array<BackendStat | undefined>> {
    return new Promise((resolve, reject) => {
      let w: Worker;
      try {
        w = this.thread();
      } catch (e) {
        this.broken = true;
        reject(e as Error);
        return;
      }
      const id = ++this.seq;
      this.pending.set(id, { names, resolve, reject });
      if (this.pending.size === 1) w.ref();
      const msg: StatRequest = { id, base, names: names as string[] };
      w.postMessage(msg);
    });
  }
}

/** The process's stat thread (shared by every local backend). */
export const statWorker = new StatWorker();
