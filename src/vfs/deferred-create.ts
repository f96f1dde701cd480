/**
 * Deferred creates for backends without random writes (object stores).
 *
 * An object store cannot show a file that nothing was written to, so creating a file used to cost a
 * whole empty-object upload (S3: HEAD, PUT, HEAD) right before the creating handle, at its close,
 * uploaded the real content anyway. Here the VFS instead *announces* the new file to this layer
 * (`create()`); the object is written once, by the creating handle's first publish (its close or
 * flush), with the mode and any metadata set meanwhile. Until then this gateway shows the file as
 * every other lookup would have seen the empty object: stat() answers, listings include it, opens
 * read it as empty, and its write stage (shared by every writer handle) holds what is being written.
 *
 * Decision and reasons:
 * - Only a create whose handle will publish anyway is deferred (write access: see
 *   FileData.createEmpty). A create without write access still uploads the empty object at once
 *   (nothing else would ever publish it). On async write-back shares the publish is the
 *   write-back's upload: the writer's close (or flush) journals the stage, and the journal record
 *   names the file as created here (`nw`, pendingCreate), so the name is as durable as the content
 *   from that close on: a start-up that resumes the upload announces the file again
 *   (src/vfs/write-back.ts). A WebDAV PUT of a new file (not exclusive) is deferred the same way.
 *   Before the first close the name is as durable as the bytes written so far on either kind of
 *   share: a crash loses both (below).
 * - Everything that needs the object itself to exist (a server-side copy or rename of it, a
 *   truncate to a non-zero size without a stage, a patch writer) first writes the empty object
 *   ("materialises" it), so those paths keep exactly their old behaviour. Metadata changes (chmod,
 *   utimes, chown) of a pending file are kept in the record and applied by the publish (one write,
 *   not an empty upload plus a metadata rewrite plus the content) - the tar/rsync/cp -p pattern.
 *   Deleting a pending file just forgets it (nothing was uploaded); a directory holding pending
 *   files is not empty (rmdir: ENOTEMPTY).
 * - A failed publish leaves the record: the layer then tries to write the empty object in the
 *   background, which is where an immediate create would have left things (an empty object, the
 *   content not published, the close reporting the error).
 * - Visible limits (documented in docs): other S3 clients and other gateways see the file only from
 *   its first publish (they used to see an empty object from the create); a process crash before
 *   that publish loses the file together with the unpublished bytes it was about to receive (the
 *   name was never durable, exactly like its data); an exclusive create is checked against the
 *   store at create time (EEXIST then), and the publish does not repeat the check: a file another S3
 *   client creates under the same name in between is replaced by ours at close, as it would have
 *   been replaced by our close before.
 *
 * A Proxy over the backend, so methods this layer does not know (and optional methods' absence)
 * pass through unchanged.
 */
import type { Backend, BackendFile, BackendStat, BackendWriter, FileOwner, ListOptions, ListPage, SetMetadata, WriterOptions } from './backend.ts';
import { VfsError, isVfsError } from './errors.ts';
import { baseName, parentPath } from './path.ts';
import type { CreatedFile } from './write-back.ts';

interface PendingFile {
  path: string;
  mode: number;
  st: BackendStat;
  /** Metadata set while pending, applied by the publish. */
  meta: SetMetadata;
  /** Writers (publishes) running for it, each settled when it commits or aborts. */
  writers: Set<Promise<void>>;
  /** A writer's commit has started: its metadata is fixed, later changes go to the object. */
  committing: boolean;
  materializing: Promise<void> | undefined;
}

/** An opened pending file: empty, read-only (writes go to the VFS's write stage). */
class EmptyFile implements BackendFile {
  private readonly st: BackendStat;

  constructor(st: BackendStat) {
    this.st = st;
  }

  async read(): Promise<Buffer> {
    return Buffer.alloc(0);
  }

  async readInto(): Promise<number> {
    return 0;
  }

  async write(): Promise<number> {
    throw new VfsError('EBADF', 'opened read-only (writes are staged by the VFS)');
  }

  async truncate(): Promise<void> {
    throw new VfsError('EBADF', 'opened read-only (writes are staged by the VFS)');
  }

  async sync(): Promise<void> {}

  async stat(): Promise<BackendStat> {
    return { ...this.st };
  }

  async close(): Promise<void> {}
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

function applyMeta(st: BackendStat, m: SetMetadata): BackendStat {
  const out = { ...st };
  if (m.mode !== undefined) out.mode = m.mode & 0o7777;
  if (m.uid !== undefined) out.uid = m.uid;
  if (m.gid !== undefined) out.gid = m.gid;
  if (m.atimeNs !== undefined) out.atimeNs = m.atimeNs;
  if (m.mtimeNs !== undefined) out.mtimeNs = m.mtimeNs;
  if (m.birthtimeNs !== undefined) out.birthtimeNs = m.birthtimeNs;
  return out;
}

/** The wrapped backend answers this property with its DeferredCreates (deferredCreatesOf). */
const LAYER = Symbol('portico.deferredCreates');

/**
 * The deferred-create layer of a volume's backend (the Proxy DeferredCreates.backend), if it has
 * one: write-back reaches it through the backend it is given (src/vfs/write-back.ts, new files of a
 * staged PUT).
 */
export function deferredCreatesOf(backend: Backend): DeferredCreates | undefined {
  return (backend as unknown as { [LAYER]?: DeferredCreates })[LAYER];
}

export class DeferredCreates {
  readonly backend: Backend;
  private readonly inner: Backend;
  private readonly files = new Map<string, PendingFile>();
  /** Parent path -> name -> pending file, for listings. */
  private readonly byDir = new Map<string, Map<string, PendingFile>>();

  constructor(inner: Backend) {
    this.inner = inner;
    this.backend = this.wrap();
  }

  /** How many files are pending (tests, metrics). */
  get size(): number {
    return this.files.size;
  }

  isPending(path: string): boolean {
    return this.files.has(path);
  }

  /** A pending file's create (mode and owner, as a write-back journal record keeps them: `nw`). */
  pendingCreate(path: string): CreatedFile | undefined {
    const f = this.files.get(path);
    if (f === undefined) return undefined;
    return { mode: f.mode, ...(f.meta.uid !== undefined ? { uid: f.meta.uid } : {}), ...(f.meta.gid !== undefined ? { gid: f.meta.gid } : {}) };
  }

  /**
   * Announces a new, empty file at `path` without writing it: EEXIST when something is there
   * (checked against the backend, or pending here), ENOENT/ENOTDIR when the parent is not a
   * directory. Returns its stat, or undefined when the name turned out taken by someone else and the
   * caller must create the classic way (non-exclusive: the old path replaces it, as it always did).
   */
  async create(path: string, mode: number, exclusive: boolean, owner?: FileOwner): Promise<BackendStat | undefined> {
    const parent = parentPath(path);
    if (this.pendingAncestor(path)) throw new VfsError('ENOTDIR', undefined, { path });
    if (this.files.has(path)) {
      if (exclusive) throw new VfsError('EEXIST', undefined, { path });
      return undefined;
    }
    if (parent !== '/') {
      const p = await this.inner.stat(parent);
      if (p.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    }
    let exists = true;
    try {
      await this.inner.stat(path);
    } catch (e) {
      if (!isVfsError(e, 'ENOENT')) throw e;
      exists = false;
    }
    // Re-checked after the awaits: a concurrent create on this gateway may have won meanwhile.
    if (exists || this.files.has(path)) {
      if (exclusive) throw new VfsError('EEXIST', undefined, { path });
      return undefined;
    }
    // The object comes later (the first publish); the backend may prepare the directory now.
    this.inner.willCreate?.(path);
    const now = nowNs();
    const st: BackendStat = { name: baseName(path), type: 'file', size: 0, mtimeNs: now, ctimeNs: now, atimeNs: now, mode: mode & 0o7777 };
    if (this.inner.capabilities.birthTime) st.birthtimeNs = now;
    // The creator's owner goes with the first publish, like any metadata set while pending.
    const meta: SetMetadata = {};
    if (owner !== undefined && this.inner.capabilities.posixMetadata) {
      meta.uid = st.uid = owner.uid;
      meta.gid = st.gid = owner.gid;
    }
    const f: PendingFile = { path, mode, st, meta, writers: new Set(), committing: false, materializing: undefined };
    this.files.set(path, f);
    let dir = this.byDir.get(parent);
    if (dir === undefined) this.byDir.set(parent, (dir = new Map()));
    dir.set(st.name, f);
    return { ...st };
  }

  /**
   * The creator gave up before it could publish (its open failed): write the empty object now, as
   * an immediate create would have. Best effort; a failure leaves the record for the next try.
   */
  async abandon(path: string): Promise<void> {
    if (this.files.has(path)) await this.materialize(path).catch(() => undefined);
  }

  private forget(f: PendingFile): void {
    if (this.files.get(f.path) !== f) return;
    this.files.delete(f.path);
    const parent = parentPath(f.path);
    const dir = this.byDir.get(parent);
    dir?.delete(f.st.name);
    if (dir?.size === 0) this.byDir.delete(parent);
  }

  private pendingAncestor(path: string): boolean {
    if (this.files.size === 0) return false;
    for (let p = parentPath(path); p !== '/'; p = parentPath(p)) if (this.files.has(p)) return true;
    return false;
  }

  /** Publishes in flight for `f` have settled (their outcome does not matter here). */
  private async settled(f: PendingFile): Promise<void> {
    while (f.writers.size > 0) await Promise.allSettled([...f.writers]);
  }

  /**
   * Writes the empty object (with the mode and metadata set meanwhile); the file is then a normal
   * one. A publish in flight goes first: if it lands, there is nothing left to write (an empty
   * upload racing it could land last and wipe the content).
   */
  private materialize(path: string): Promise<void> {
    const f = this.files.get(path);
    if (f === undefined) return Promise.resolve();
    f.materializing ??= (async () => {
      try {
        await this.settled(f);
        if (this.files.get(path) !== f) return;
        const w = await this.inner.createWriter(path, { mode: f.mode, sizeHint: 0 });
        await w.commit(hasMeta(f.meta) ? f.meta : undefined);
        this.forget(f);
      } finally {
        f.materializing = undefined;
      }
    })();
    return f.materializing;
  }

  /** A writer publishing the pending file's content: the record goes when it commits. */
  private async writerFor(f: PendingFile, options: WriterOptions | undefined): Promise<BackendWriter> {
    const w = await this.inner.createWriter(f.path, { ...options, exclusive: false, mode: options?.mode ?? f.mode });
    let finish!: () => void;
    const running = new Promise<void>((resolve) => {
      finish = () => {
        f.writers.delete(running);
        resolve();
      };
    });
    f.writers.add(running);
    return new Proxy(w, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop === 'commit') {
          return async (meta?: SetMetadata) => {
            // Metadata set while the file was pending (and while this writer was filling) goes along.
            f.committing = true;
            const merged = { ...f.meta, ...meta };
            const p = (value as BackendWriter['commit']).call(target, hasMeta(merged) ? merged : undefined);
            try {
              const st = await p;
              this.forget(f);
              return st;
            } catch (e) {
              f.committing = false;
              finish();
              // Where an immediate create would have left things: an empty object (best effort).
              if (this.files.get(f.path) === f) void this.materialize(f.path).catch(() => undefined);
              throw e;
            } finally {
              finish();
            }
          };
        }
        if (prop === 'abort') {
          return async () => {
            try {
              return await (value as BackendWriter['abort']).call(target);
            } finally {
              finish();
            }
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  private async list(path: string, options: ListOptions): Promise<ListPage> {
    // Pending when the listing starts: one whose publish lands while the backend lists may be
    // missing from the backend's page (listed before it landed) and from byDir (forgotten when it
    // landed). Async write-back uploads land in the background, so this is no rare race.
    const before = [...(this.byDir.get(path)?.values() ?? [])];
    const page = await this.inner.list(path, options);
    const dir = this.byDir.get(path);
    if (dir === undefined && before.length === 0) return page;
    const { after } = options;
    const inRange = (name: string): boolean => !((after !== undefined && name <= after) || (page.next !== undefined && name > page.next));
    const extra: BackendStat[] = [];
    for (const [name, f] of dir ?? []) {
      if (inRange(name)) extra.push(applyMeta(f.st, f.meta));
    }
    const listed = new Set(page.entries.map((e) => e.name));
    for (const f of before) {
      if (this.files.get(f.path) === f || listed.has(f.st.name) || !inRange(f.st.name)) continue;
      // Landed (or removed) meanwhile: what the backend has now.
      const st = await this.inner.stat(f.path).catch((e: unknown) => {
        if (isVfsError(e, 'ENOENT')) return undefined;
        throw e;
      });
      if (st !== undefined && !extra.some((x) => x.name === f.st.name)) extra.push({ ...st, name: f.st.name });
    }
    if (extra.length === 0) return page;
    const names = new Set(extra.map((e) => e.name));
    const entries = [...page.entries.filter((e) => !names.has(e.name)), ...extra].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const limit = Math.max(1, options.limit);
    if (entries.length <= limit) return page.next === undefined ? { entries } : { entries, next: page.next };
    const cut = entries.slice(0, limit);
    return { entries: cut, next: (cut.at(-1) as BackendStat).name };
  }

  private wrap(): Backend {
    const inner = this.inner;
    const bound = new Map<PropertyKey, unknown>();
    const call = (name: string, args: unknown[]): Promise<unknown> =>
      (Reflect.get(inner, name, inner) as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
    const own: Record<string, (...args: never[]) => unknown> = {
      stat: async (path: string) => {
        const f = this.files.get(path);
        if (f !== undefined) return applyMeta(f.st, f.meta);
        if (this.pendingAncestor(path)) throw new VfsError('ENOTDIR', undefined, { path });
        return inner.stat(path);
      },
      list: (path: string, options: ListOptions) => this.list(path, options),
      read: async (path: string, offset: number, length: number) => (this.files.has(path) ? Buffer.alloc(0) : inner.read(path, offset, length)),
      openFile: async (path: string, options: { write: boolean }) => {
        const f = this.files.get(path);
        if (f === undefined) return inner.openFile(path, options as never);
        if (!options.write) return new EmptyFile(applyMeta(f.st, f.meta));
        await this.materialize(path);
        return inner.openFile(path, options as never);
      },
      createWriter: async (path: string, options?: WriterOptions) => {
        const f = this.files.get(path);
        if (f === undefined) {
          if (this.pendingAncestor(path)) throw new VfsError('ENOTDIR', undefined, { path });
          return inner.createWriter(path, options);
        }
        if (options?.exclusive) throw new VfsError('EEXIST', undefined, { path });
        return this.writerFor(f, options);
      },
      mkdir: async (path: string, mode?: number, owner?: FileOwner) => {
        if (this.files.has(path)) throw new VfsError('EEXIST', undefined, { path });
        if (this.pendingAncestor(path)) throw new VfsError('ENOTDIR', undefined, { path });
        return inner.mkdir(path, mode, owner);
      },
      rmdir: async (path: string) => {
        if (this.byDir.has(path)) throw new VfsError('ENOTEMPTY', undefined, { path });
        if (this.files.has(path)) throw new VfsError('ENOTDIR', undefined, { path });
        return inner.rmdir(path);
      },
      unlink: async (path: string) => {
        const f = this.files.get(path);
        if (f === undefined) return inner.unlink(path);
        if (f.writers.size === 0 && f.materializing === undefined) {
          // Nothing was uploaded: forgetting it is the delete.
          this.forget(f);
          return;
        }
        // A publish (or an empty upload) is on its way: let it land, then delete the object (it
        // must not appear after the delete).
        await Promise.allSettled([this.settled(f), f.materializing]);
        this.forget(f);
        try {
          await inner.unlink(path);
        } catch (e) {
          if (!isVfsError(e, 'ENOENT')) throw e;
        }
      },
      setMetadata: async (path: string, meta: SetMetadata) => {
        const f = this.files.get(path);
        if (f === undefined || f.committing || f.materializing !== undefined) {
          // Too late to ride along with the upload: once it has landed, change the object.
          if (f !== undefined) await Promise.allSettled([this.settled(f), f.materializing]);
          return inner.setMetadata(path, meta);
        }
        for (const [k, v] of Object.entries(meta) as [keyof SetMetadata, SetMetadata[keyof SetMetadata]][]) {
          if (v !== undefined) (f.meta as Record<string, unknown>)[k] = v;
        }
        if (meta.mode !== undefined) f.mode = meta.mode;
        return applyMeta(f.st, f.meta);
      },
      truncate: async (path: string, size: number) => {
        const f = this.files.get(path);
        if (f !== undefined && size === 0) return;
        if (f !== undefined) await this.materialize(path);
        return inner.truncate(path, size);
      },
    };
    // Optional methods keep their presence: wrapped only when the backend has them.
    const optional: Record<string, (...args: never[]) => unknown> = {
      copy: async (from: string, to: string) => {
        if (this.files.has(from)) await this.materialize(from);
        const st = await call('copy', [from, to]);
        const t = this.files.get(to);
        if (t !== undefined && t.writers.size === 0) this.forget(t);
        return st;
      },
      rename: async (from: string, to: string) => {
        if (this.files.has(from)) await this.materialize(from);
        await call('rename', [from, to]);
        const t = this.files.get(to);
        if (t !== undefined && t.writers.size === 0) this.forget(t);
      },
      // Both objects must exist to be swapped: a pending file is written (empty) first, and its
      // record goes, as for a rename (its publish then writes to the name the VFS gives its stage).
      exchange: async (a: string, b: string) => {
        for (const p of [a, b]) if (this.files.has(p)) await this.materialize(p);
        await call('exchange', [a, b]);
        for (const p of [a, b]) {
          const t = this.files.get(p);
          if (t !== undefined && t.writers.size === 0) this.forget(t);
        }
      },
      createPatchWriter: async (path: string, ...rest: unknown[]) => {
        if (this.files.has(path)) await this.materialize(path);
        return call('createPatchWriter', [path, ...rest]);
      },
      readVersion: async (path: string, ...rest: unknown[]) => {
        if (this.files.has(path)) return Buffer.alloc(0);
        return call('readVersion', [path, ...rest]);
      },
      symlink: async (target: string, path: string, owner?: FileOwner) => {
        if (this.files.has(path)) throw new VfsError('EEXIST', undefined, { path });
        return call('symlink', [target, path, owner]);
      },
      link: async (existing: string, path: string) => {
        if (this.files.has(path)) throw new VfsError('EEXIST', undefined, { path });
        if (this.files.has(existing)) await this.materialize(existing);
        return call('link', [existing, path]);
      },
    };
    return new Proxy(inner, {
      get: (target, prop) => {
        if (prop === LAYER) return this;
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        const name = String(prop);
        const mine = own[name] ?? optional[name];
        if (mine !== undefined) return mine;
        let f = bound.get(prop);
        if (f === undefined) bound.set(prop, (f = (value as (...a: unknown[]) => unknown).bind(target)));
        return f;
      },
    });
  }
}

function hasMeta(m: SetMetadata | undefined): m is SetMetadata {
  return m !== undefined && Object.values(m).some((v) => v !== undefined);
}
