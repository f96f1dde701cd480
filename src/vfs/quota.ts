/**
 * Per-share quotas (`shares[].quota: { bytes, files }`): usage accounting, EDQUOT enforcement and
 * the quota-limited statfs that `df`, Windows' drive size and WebDAV's RFC 4331 quota properties
 * all read (Vfs.statfs).
 *
 * What counts: `files` is every name below the share root (files, directories, symbolic links:
 * inodes, as a file system quota counts them); `bytes` is the sum of file sizes as Portico shows
 * them (logical sizes: a sparse file counts its length, a hard link counts once per name).
 *
 * How usage is known — a counter, not a scan per question:
 * - A persisted counter (the metadata store's kv, `quota:<share>`), adjusted by every change made
 *   through Portico (the Vfs calls add/check/growth/writer at each create, write, truncate, delete,
 *   rename over a file, copy). Writes to it are coalesced (at most one per second) and a clean
 *   shutdown marks it clean.
 * - A scan (a walk of the share through the backend's listing) sets it: at the first start with a
 *   quota (or when the share's source changed), after an unclean stop (the last second of changes
 *   may be missing), on `portico cache refresh` of the share, and every `rescanMs` (default a day)
 *   for changes made outside Portico (another program on the disk, another S3 client), which the
 *   counter cannot see. Until the first scan ends the counter starts from the last persisted value
 *   (0 at the very first start): enforcement is lenient for that while, never stricter.
 * - Changes through Portico while a scan walks are counted into its result exactly: a change at a
 *   path the walk has already passed is added to the walk's total too, one it has not reached is
 *   left for the walk to see (`passed`). A directory renamed meanwhile moves a subtree across that
 *   line: the result is dropped and the walk runs again (at most 3 times).
 * Trade-offs: outside changes show only at the next scan (a scan of a large S3 share costs one
 * LIST per 1,000 names per directory, so it is not run per request); async write-back content not
 * uploaded yet when a scan walks past it counts at its stored size until the next scan.
 *
 * Enforcement: an operation that would take usage past a limit fails with EDQUOT before anything
 * is visible (a create before the name exists, a write before its bytes land, a whole-content
 * replace — WebDAV PUT — at its first chunk past the limit or at once from its declared size, and
 * again just before its commit, so a PUT over quota fails whole and the old content stays). Writes
 * that do not grow usage always pass, so a share over its quota (outside changes, a lowered limit)
 * can always be cleaned up. Bytes of whole-content writers still streaming are reserved, and handle
 * writes are counted before their bytes are written, so two concurrent uploads or writers cannot
 * both fit in the room one of them has. Not so (yet) for creates and truncates by path: they are
 * checked before the backend call and counted after it, so creates racing for the last free names
 * can all pass, by at most the number in flight at once (holding the room across the call needs a
 * release on every failure path of Vfs.open).
 */
import { Gauge, type Registry } from 'prom-client';
import type { Backend, StatFs } from './backend.ts';
import { VfsError, isVfsError } from './errors.ts';
import { joinPath, splitPath } from './path.ts';
import type { Handle } from './handle.ts';
import type { FileId } from './types.ts';

export interface QuotaLimits {
  /** Largest sum of file sizes, in bytes. */
  bytes?: number;
  /** Most names (files, directories, symbolic links). */
  files?: number;
}

export interface QuotaOptions extends QuotaLimits {
  /** What the share serves (its `source`): a counter persisted for another source is rescanned. */
  source?: string;
  /** Periodic rescan for outside changes, in ms (0 = none). Default QUOTA_RESCAN_MS. */
  rescanMs?: number;
}

export interface QuotaUsage {
  bytes: number;
  files: number;
}

/** Where a quota keeps its counter (MetadataStore's kv). */
export interface QuotaStore {
  kvGet(key: string): string | undefined;
  kvSet(key: string, value: string): void;
  kvDelete(key: string): void;
}

export const QUOTA_RESCAN_MS = 24 * 3600_000;
const PERSIST_MS = 1000;
const SCAN_PAGE = 1000;
const SCAN_ATTEMPTS = 3;

interface Persisted {
  v: 1;
  source: string | null;
  bytes: number;
  files: number;
  clean: boolean;
}

/** One directory of a running walk. */
interface Level {
  dir: string;
  /** Last name of the pages fetched so far: names up to it are counted. */
  end: string | undefined;
  /** The last page was fetched: no name of this directory will be counted any more. */
  listed: boolean;
  /** Subdirectories of the fetched pages still to walk. */
  pending: Set<string>;
}

interface Walk {
  stack: Level[];
  total: QuotaUsage;
  /** A directory moved while walking: the total may count a subtree twice or not at all. */
  dirty: boolean;
}

/** A whole-content writer's share of the quota (Vfs.replaceContent). */
export interface QuotaWriter {
  /** The writer has `size` bytes so far: reserves what they add, or EDQUOT. */
  grow(size: number): void;
  /** Committed at `path` with `size` bytes; `existed`: it replaced a file of `oldSize` bytes. */
  commit(path: string, size: number, existed: boolean): void;
  release(): void;
}

export class ShareQuota {
  readonly name: string;
  readonly limits: QuotaLimits;
  private readonly backend: Backend;
  private readonly store: QuotaStore;
  private readonly source: string | null;
  private readonly usage: QuotaUsage = { bytes: 0, files: 0 };
  /** Reserved by whole-content writers still streaming. */
  private reserved: QuotaUsage = { bytes: 0, files: 0 };
  /** Current sizes of files open for writing (so concurrent and pipelined writes count once). */
  private readonly sizes = new Map<FileId, number>();
  private walk: Walk | undefined;
  private scanning: Promise<void> | undefined;
  private rescanAgain = false;
  private persistTimer: NodeJS.Timeout | undefined;
  private readonly rescanTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The counter is what a scan found plus Portico's changes since (not a guess from an unclean stop). */
  private trusted: boolean;
  /** Settles when the usage is known (the start-up scan, when one was needed, has ended). */
  readonly ready: Promise<void>;
  /** Scans run so far (tests). */
  scans = 0;

  constructor(name: string, backend: Backend, store: QuotaStore, options: QuotaOptions) {
    this.name = name;
    this.backend = backend;
    this.store = store;
    this.limits = { ...(options.bytes !== undefined ? { bytes: options.bytes } : {}), ...(options.files !== undefined ? { files: options.files } : {}) };
    this.source = options.source ?? null;
    const saved = this.load();
    if (saved !== undefined) {
      this.usage.bytes = saved.bytes;
      this.usage.files = saved.files;
    }
    this.trusted = saved !== undefined && saved.clean && saved.source === this.source;
    // Running: the counter is not clean until close() says so (a crash loses its last second).
    this.persistNow(false);
    // In the background, after the volume is set up.
    this.ready = this.trusted ? Promise.resolve() : new Promise<void>((r) => setImmediate(r)).then(() => this.rescan());
    const every = options.rescanMs ?? QUOTA_RESCAN_MS;
    if (every > 0) {
      this.rescanTimer = setInterval(() => void this.rescan(), every);
      this.rescanTimer.unref();
    }
  }

  private get key(): string {
    return `quota:${this.name}`;
  }

  /**
   * For a share started without a quota: its saved counter, if any, stops counting now, so a quota
   * configured again later must not trust it (it is walked instead).
   */
  static forget(store: QuotaStore, name: string): void {
    if (store.kvGet(`quota:${name}`) !== undefined) store.kvDelete(`quota:${name}`);
  }

  private load(): Persisted | undefined {
    try {
      const raw = this.store.kvGet(this.key);
      if (raw === undefined) return undefined;
      const p = JSON.parse(raw) as Persisted;
      return p.v === 1 && Number.isFinite(p.bytes) && Number.isFinite(p.files) ? p : undefined;
    } catch {
      return undefined;
    }
  }

  private persistNow(clean: boolean): void {
    if (this.persistTimer !== undefined) clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    const p: Persisted = { v: 1, source: this.source, bytes: this.usage.bytes, files: this.usage.files, clean };
    try {
      this.store.kvSet(this.key, JSON.stringify(p));
    } catch {
      // The store is closing (tests stop it without a shutdown): the next start rescans.
    }
  }

  private persistSoon(): void {
    if (this.persistTimer !== undefined || this.closed) return;
    this.persistTimer = setTimeout(() => this.persistNow(false), PERSIST_MS);
    this.persistTimer.unref();
  }

  /** Usage now (committed changes, plus what streaming writers reserved). */
  used(): QuotaUsage {
    return { bytes: this.usage.bytes + this.reserved.bytes, files: this.usage.files + this.reserved.files };
  }

  // ---------------------------------------------------------------- enforcement and accounting

  /** EDQUOT when adding `files` names and `bytes` bytes would pass a limit (growth only). */
  check(files: number, bytes: number, path?: string): void {
    const u = this.used();
    const over = (files > 0 && this.limits.files !== undefined && u.files + files > this.limits.files) ||
      (bytes > 0 && this.limits.bytes !== undefined && u.bytes + bytes > this.limits.bytes);
    if (over) throw new VfsError('EDQUOT', undefined, path === undefined ? {} : { path });
  }

  /** A change made through Portico at backend path `path` (creates +1, deletes -1, size deltas). */
  add(path: string, files: number, bytes: number): void {
    if (files === 0 && bytes === 0) return;
    this.usage.files = Math.max(0, this.usage.files + files);
    this.usage.bytes = Math.max(0, this.usage.bytes + bytes);
    if (this.walk !== undefined && this.passed(path)) {
      this.walk.total.files += files;
      this.walk.total.bytes += bytes;
    }
    this.persistSoon();
  }

  /**
   * A rename through Portico: usage is unchanged, but a walk that has passed one side and not the
   * other must be told (a directory: the walk starts again).
   */
  moved(from: string, to: string, type: string, size: number): void {
    const w = this.walk;
    if (w === undefined) return;
    if (type === 'dir') {
      w.dirty = true;
      return;
    }
    const bytes = type === 'file' ? size : 0;
    if (this.passed(from)) {
      w.total.files -= 1;
      w.total.bytes -= bytes;
    }
    if (this.passed(to)) {
      w.total.files += 1;
      w.total.bytes += bytes;
    }
  }

  /**
   * A write or truncate through handle `h` makes its file `end` bytes long at least (`truncate`:
   * exactly): EDQUOT when that grows usage past the limit, else the change is counted at once and
   * its delta returned (undo() it if the write fails).
   */
  async resize(h: Handle, end: number, truncate = false): Promise<number> {
    let known = this.sizes.get(h.fileId);
    if (known === undefined) {
      const size = h.stage?.dirty ? h.stage.size : h.file !== undefined ? (await h.file.stat()).size : (await this.backend.stat(h.path)).size;
      // Another write may have learnt it meanwhile, and counted its own growth on top.
      known = this.sizes.get(h.fileId) ?? size;
    }
    const next = truncate ? end : Math.max(known, end);
    const delta = next - known;
    if (delta > 0) this.check(0, delta, h.path);
    this.sizes.set(h.fileId, next);
    this.add(h.path, 0, delta);
    return delta;
  }

  /** A counted resize whose write failed. */
  undo(h: Handle, delta: number): void {
    if (delta === 0) return;
    this.sizes.delete(h.fileId);
    this.add(h.path, 0, -delta);
  }

  /** The last handle of a file closed. */
  lastClose(id: FileId): void {
    this.sizes.delete(id);
  }

  /** The size Portico last counted for a file open for writing, if any. */
  openSize(id: FileId): number | undefined {
    return this.sizes.get(id);
  }

  /** A file's size changed other than through a handle (setattr by path, replaced content, deleted). */
  forgetSize(id: FileId): void {
    this.sizes.delete(id);
  }

  /** A size set by path (setattr) from `old` bytes, which an open writer's count overrides. */
  resized(path: string, id: FileId, old: number, size: number): void {
    const from = this.sizes.get(id) ?? old;
    if (this.sizes.has(id)) this.sizes.set(id, size);
    this.add(path, 0, size - from);
  }

  /** What a delete of the file at `path` takes off (an open writer's count, else its stat). */
  async sizeOf(path: string, id: FileId): Promise<number> {
    const open = this.sizes.get(id);
    if (open !== undefined) return open;
    try {
      const st = await this.backend.stat(path);
      return st.type === 'file' ? st.size : 0;
    } catch {
      return 0;
    }
  }

  /** A rename through Portico replaced the file or empty directory `st` at `path`. */
  replaced(path: string, id: FileId, st: { type: string; size: number }): void {
    const size = st.type === 'file' ? (this.sizes.get(id) ?? st.size) : 0;
    this.sizes.delete(id);
    this.add(path, -1, -size);
  }

  /** A file of `size` bytes (as stat'ed; an open writer's count wins) was truncated to 0 by an open. */
  truncated(path: string, id: FileId, size: number): void {
    const old = this.sizes.get(id) ?? size;
    this.sizes.delete(id);
    this.add(path, 0, -old);
  }

  /**
   * A whole-content writer replacing a file of `oldSize` bytes (`created`: a new name). Checks the
   * declared size at once (`sizeHint`), reserves as bytes arrive, and counts at commit.
   */
  writer(path: string, oldSize: number, created: boolean, sizeHint: number | undefined): QuotaWriter {
    const files = created ? 1 : 0;
    this.check(files, (sizeHint ?? 0) - oldSize, path);
    this.reserved.files += files;
    let held = 0;
    let heldFiles = files;
    const release = (): void => {
      this.reserved.bytes -= held;
      this.reserved.files -= heldFiles;
      held = 0;
      heldFiles = 0;
    };
    return {
      grow: (size) => {
        const want = Math.max(0, size - oldSize);
        if (want <= held) return;
        this.check(0, want - held, path);
        this.reserved.bytes += want - held;
        held = want;
      },
      commit: (at, size, existed) => {
        release();
        if (existed) this.add(at, 0, size - oldSize);
        else this.add(at, 1, size);
      },
      release,
    };
  }

  /** The backend's statfs with the quota's totals: what df, Windows and WebDAV show. */
  statfs(st: StatFs): StatFs {
    const u = this.used();
    const out = { ...st };
    if (this.limits.bytes !== undefined) {
      out.totalBytes = this.limits.bytes;
      out.freeBytes = Math.max(0, this.limits.bytes - u.bytes);
      out.availableBytes = Math.min(out.freeBytes, st.availableBytes);
    }
    if (this.limits.files !== undefined) {
      out.totalFiles = this.limits.files;
      out.freeFiles = Math.min(Math.max(0, this.limits.files - u.files), st.freeFiles);
    }
    return out;
  }

  // ---------------------------------------------------------------- scans

  /**
   * Walks the share and sets the counter from what it finds (coalesced: a call during a walk runs
   * one more after it). Resolves when done; failures are left for the next one (usage unchanged).
   */
  rescan(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.scanning !== undefined) {
      this.rescanAgain = true;
      return this.scanning;
    }
    const run = async (): Promise<void> => {
      do {
        this.rescanAgain = false;
        for (let i = 0; i < SCAN_ATTEMPTS && !this.closed; i++) {
          const w: Walk = { stack: [], total: { bytes: 0, files: 0 }, dirty: false };
          this.walk = w;
          this.scans++;
          try {
            await this.walkDir('/', w);
          } catch {
            return;
          } finally {
            this.walk = undefined;
          }
          if (w.dirty && i < SCAN_ATTEMPTS - 1) continue;
          this.usage.bytes = Math.max(0, w.total.bytes);
          this.usage.files = Math.max(0, w.total.files);
          this.trusted = true;
          if (!this.closed) this.persistNow(false);
          break;
        }
      } while (this.rescanAgain && !this.closed);
    };
    const p = run().finally(() => {
      this.scanning = undefined;
    });
    this.scanning = p;
    return p;
  }

  private async walkDir(dir: string, w: Walk): Promise<void> {
    const level: Level = { dir, end: undefined, listed: false, pending: new Set() };
    w.stack.push(level);
    try {
      let after: string | undefined;
      for (;;) {
        if (this.closed) throw new VfsError('ECANCELED');
        const page = await this.backend.list(dir, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE });
        // Counted synchronously with the page's arrival, so `passed` and the total agree.
        const subdirs: string[] = [];
        for (const e of page.entries) {
          w.total.files++;
          if (e.type === 'file') w.total.bytes += e.size;
          else if (e.type === 'dir') subdirs.push(e.name);
        }
        if (page.entries.length > 0) level.end = page.entries.at(-1)!.name;
        const last = page.next === undefined || page.entries.length === 0;
        if (last) level.listed = true;
        for (const s of subdirs) level.pending.add(s);
        for (const s of subdirs) {
          try {
            await this.walkDir(joinPath(dir, s), w);
          } catch (e) {
            // Removed since its page was listed: its removal (a passed name) is in the total already.
            if (!isVfsError(e, 'ENOENT') && !isVfsError(e, 'ENOTDIR')) throw e;
          }
          level.pending.delete(s);
        }
        if (last) return;
        after = page.next;
      }
    } finally {
      w.stack.pop();
    }
  }

  /**
   * Whether the running walk has already counted (or will never count) what is at `path`: a change
   * there must then be added to the walk's total too; otherwise the walk will see it itself.
   */
  private passed(path: string): boolean {
    const w = this.walk;
    if (w === undefined || w.stack.length === 0) return false;
    const segs = splitPath(path);
    let i = 0;
    let level = w.stack[0]!;
    for (let k = 0; k < segs.length; k++) {
      const name = segs[k]!;
      if (k === segs.length - 1) return level.listed || (level.end !== undefined && name <= level.end);
      const below = w.stack[i + 1];
      if (below !== undefined && below.dir === joinPath(level.dir, name)) {
        level = below;
        i++;
        continue;
      }
      // A directory off the walk's current branch: walked already, to be walked, or never.
      if (level.pending.has(name)) return false;
      if (!level.listed && (level.end === undefined || name > level.end)) return false;
      return true;
    }
    return false;
  }

  /** Stops timers and scans; persists the counter as clean unless a scan was still needed. */
  async close(): Promise<void> {
    if (this.closed) return;
    const trustworthy = this.trusted && this.scanning === undefined;
    this.closed = true;
    if (this.rescanTimer !== undefined) clearInterval(this.rescanTimer);
    if (this.persistTimer !== undefined) clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    await this.scanning?.catch(() => undefined);
    this.persistNow(trustworthy);
  }
}

const QUOTA_METRICS = ['portico_quota_used', 'portico_quota_limit'];

/**
 * portico_quota_used / portico_quota_limit {share, kind: bytes | files}: read at each scrape from
 * the shares' quotas (`quotas` lists them; shares without a limit of a kind are not reported).
 */
export function registerQuotaMetrics(registry: Registry, quotas: () => Iterable<ShareQuota>): void {
  // An in-process restart on the same registry takes the names over.
  for (const name of QUOTA_METRICS) registry.removeSingleMetric(name);
  const each = (g: Gauge, value: (q: ShareQuota, kind: 'bytes' | 'files') => number): void => {
    g.reset();
    for (const q of quotas()) {
      for (const kind of ['bytes', 'files'] as const) if (q.limits[kind] !== undefined) g.set({ share: q.name, kind }, value(q, kind));
    }
  };
  new Gauge({
    name: 'portico_quota_used',
    help: 'Usage counted against a share quota (bytes: sum of file sizes; files: names)',
    labelNames: ['share', 'kind'],
    registers: [registry],
    collect() {
      each(this, (q, kind) => q.used()[kind]);
    },
  });
  new Gauge({
    name: 'portico_quota_limit',
    help: 'A share quota limit (bytes or files)',
    labelNames: ['share', 'kind'],
    registers: [registry],
    collect() {
      each(this, (q, kind) => q.limits[kind]!);
    },
  });
}
