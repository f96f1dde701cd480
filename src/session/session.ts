/**
 * A Session is the one gate between a protocol and the VFS. It carries who is asking (principal,
 * protocol, client address), and for every operation it: makes the ACL decision (src/acl), runs the
 * VFS call, counts it in the metrics, and writes an audit entry for every change. Protocols hold a
 * Session per authenticated connection (or per request for stateless HTTP) and call nothing else.
 *
 * Handles opened through a session belong to it: another session cannot use them (EBADF), and
 * closing the session closes them and releases the locks it took.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { VfsError, toVfsError } from '../vfs/errors.ts';
import { joinPath, normalizeName, normalizePath, parentPath, symlinkLeavesShare } from '../vfs/path.ts';
import { handleLockOwner, type ContentWriter, type Handle, type ReplaceOptions, type TreeError, type TreeGuard, type Vfs } from '../vfs/vfs.ts';
import type { Access, FileAttr, FlushOptions, OpenOptions, ReaddirOptions, ReaddirResult, SetAttr, StatFsResult } from '../vfs/types.ts';
import type { AllocateOp } from '../vfs/backend.ts';
import type { PropChange, PropRow } from '../store/metadata-store.ts';
import type { Principal } from '../auth/authenticator.ts';
import type { Right, ShareAcl } from '../acl/acl.ts';
import type { LockInfo, LockKind, LockOwner, LockRange, LockStyle } from '../locks/lock-manager.ts';
import { endWatches, openWatch, type Watch, type WatchOptions } from './watch.ts';
import { actingAs } from '../locks/clients.ts';
import { ClientRecords, type GraceStatus } from '../locks/client-records.ts';
import { DurableHandles } from '../locks/durable-handles.ts';

/** A principal's rights on a path (Session.access). */
export interface AccessRights {
  read: boolean;
  write: boolean;
  delete: boolean;
  admin: boolean;
  readOnlyShare: boolean;
}

/** A file opened for reading by Session.readFile. */
export interface ReadableFile {
  /** The open handle; undefined when the file was read whole without one (OpenFiles.readSmall). */
  readonly handle: Handle | undefined;
  /** Its attributes as the open found them (fstat when the open did not look it up). */
  readonly attr: FileAttr;
  /** Reads into `target` from `offset`; returns the bytes read (fewer at end of file). */
  read(offset: number, target: Uint8Array): Promise<number>;
  /**
   * When the file was read whole (no handle): its bytes [start, end] (inclusive, clamped to the
   * file), counted as read — a view of a buffer that belongs to this call alone, so a front-end can
   * send it as it is instead of copying it through `read`.
   */
  readonly whole?: (start: number, end: number) => Buffer;
}

const READ_ONLY: Access = Object.freeze({ read: true, write: false, delete: false });
/**
 * Files up to this size are read whole without a handle by readFile when nothing is open, staged or
 * locked on them (OpenFiles.readSmall): the size WebDAV sends in one exact read (file-stream.ts).
 */
const READ_SMALL_MAX = 64 * 1024;

export interface SessionInit {
  principal: Principal;
  protocol: string;
  clientAddress: string;
}

/** What a Session needs from its manager (kept narrow so the manager stays the only wiring point). */
export interface SessionHost {
  readonly vfs: Vfs;
  acl(share: string, protocol: string): { acl: ShareAcl; volume: string };
  observe(protocol: string, op: string, status: string, seconds: number): void;
  bytes(protocol: string, direction: 'read' | 'write', n: number): void;
  audit(entry: Record<string, unknown>): void;
  detach(session: Session): void;
  readonly logger: Logger | undefined;
}

export interface PathLockOptions {
  kind: LockKind;
  style: LockStyle;
  depth?: 0 | 'infinity';
  timeoutMs?: number;
  /** Lock owner id inside this session (WebDAV: the principal; SMB: a handle; NFS: a lock-owner). */
  ownerId?: string;
  range?: LockRange;
  wait?: { signal?: AbortSignal; timeoutMs?: number };
  info?: unknown;
}

/**
 * What a client owns across its calls: open handles, lock owners, watches. Separate from the
 * caller: NFS sends AUTH_SYS credentials with every call and NFSv4 state belongs to a client across
 * connections; SMB has several sessions per connection. A protocol keeps one ClientState per client
 * (per NFSv4 clientid, per SMB session, per WebDAV request) and makes each call through a Session
 * view of it carrying that call's principal (Session.as).
 */
export class ClientState {
  #id: string | undefined;
  /**
   * Made at first use (audit entries, open and lock owners, leases): a WebDAV GET, which opens a
   * session per request and reads without a handle, never needs one (a UUID per request, issue 9).
   */
  get id(): string {
    return (this.#id ??= randomUUID());
  }

  /** Whether anything asked for the id (nothing outside can refer to a state whose id was never made). */
  get named(): boolean {
    return this.#id !== undefined;
  }

  readonly handles = new Set<Handle>();
  readonly lockOwners = new Map<string, LockOwner>();
  closed = false;
  /** The session registered with the manager (counted once, detached once). */
  root: Session | undefined;
}

export class Session {
  readonly principal: Principal;
  readonly protocol: string;
  readonly clientAddress: string;
  /** The client state this call acts for (shared by every view made with `as`). */
  readonly state: ClientState;
  private readonly host: SessionHost;
  private childLogger: Logger | undefined;
  /**
   * Lock tokens the caller presents for the current request (generic lock credentials; WebDAV: from
   * its `If` header). Every change this session makes passes them to the VFS; a token lock blocks
   * changes by anyone who does not present its token, whatever their protocol. Front-ends without
   * tokens leave it empty.
   */
  lockTokens: Set<string> = new Set();

  constructor(host: SessionHost, init: SessionInit, state?: ClientState) {
    this.host = host;
    this.principal = init.principal;
    this.protocol = init.protocol;
    this.clientAddress = init.clientAddress;
    this.state = state ?? new ClientState();
    this.state.root ??= this;
  }

  /** Owner of what this principal creates (FileOwner): NFS and SMB clients see their files as theirs. */
  private get creator(): { uid: number; gid: number } {
    return { uid: this.principal.uid, gid: this.principal.gid };
  }

  /** The client state's id: the same for every view (audit entries, lock and share-mode owners). */
  get id(): string {
    return this.state.id;
  }

  private get handles(): Set<Handle> {
    return this.state.handles;
  }

  private get lockOwners(): Map<string, LockOwner> {
    return this.state.lockOwners;
  }

  private get closed(): boolean {
    return this.state.closed;
  }

  /**
   * A view of this client's state that makes calls as another principal (per-call credentials:
   * NFS AUTH_SYS, an SMB session of a multi-session connection). Handles, lock owners and watches
   * are shared with this session; rights, audit entries and new files' owners are the view's.
   */
  as(principal: Principal): Session {
    if (principal === this.principal) return this;
    return new Session(this.host, { principal, protocol: this.protocol, clientAddress: this.clientAddress }, this.state);
  }

  /**
   * This session's logger (bindings: session, protocol, user), made on first use: pino's child()
   * serialises its bindings at once, a cost WebDAV would pay on every request for a logger it
   * rarely uses.
   */
  get logger(): Logger | undefined {
    if (this.childLogger === undefined && this.host.logger !== undefined) {
      this.childLogger = this.host.logger.child({ session: this.id, protocol: this.protocol, user: this.principal.user });
    }
    return this.childLogger;
  }

  private get vfs(): Vfs {
    return this.host.vfs;
  }

  /**
   * Runs one operation: resolve share, check rights on each (path, right), run, count, audit.
   * `audit` marks operations that change something.
   */
  private async gate<T>(
    op: string,
    share: string,
    checks: [string, Right][],
    audit: Record<string, unknown> | null,
    fn: (volume: string, acl: ShareAcl) => Promise<T>,
  ): Promise<T> {
    const t0 = performance.now();
    let status = 'ok';
    try {
      if (this.closed) throw new VfsError('EBADF', 'session closed');
      const { acl, volume } = this.host.acl(share, this.protocol);
      for (const [path, right] of checks) acl.check(this.principal, right, normalizePath(path));
      return await fn(volume, acl);
    } catch (e) {
      const ve = this.failure(e, op, share);
      status = ve.code;
      throw ve;
    } finally {
      this.settled(op, share, audit, status, t0);
    }
  }

  /** A gated call's error as the core's error, logged when it is an I/O error. */
  private failure(e: unknown, op: string, share: string): VfsError {
    const ve = toVfsError(e);
    if (ve.code === 'EIO') this.logger?.error({ err: ve.cause ?? ve, op, share }, 'I/O error');
    return ve;
  }

  /** A gated call's end: counted, and audited when `audit` is given. */
  private settled(op: string, share: string, audit: Record<string, unknown> | null, status: string, t0: number): void {
    this.host.observe(this.protocol, op, status, (performance.now() - t0) / 1000);
    if (audit) {
      this.host.audit({
        session: this.id,
        user: this.principal.user,
        client: this.clientAddress,
        protocol: this.protocol,
        op,
        share,
        ...audit,
        status,
      });
    }
  }

  private own(h: Handle): Handle {
    if (!this.handles.has(h) || h.closed) throw new VfsError('EBADF');
    return h;
  }

  // ---------------------------------------------------------------- lookups

  /**
   * The principal's rights on a path, decided once here for every front-end: NFS ACCESS, SMB
   * MAXIMUM_ALLOWED and the WebDAV UI's read-only hint map this instead of asking the ACL. No file
   * is looked up (the rights are the rules'; whether the file exists is the operation's business).
   * `delete` is `write` on the path itself (the ACL has no separate delete right); `readOnlyShare`
   * tells a refusal by the share (EROFS) from one by the rules.
   */
  access(share: string, path: string): AccessRights {
    if (this.closed) throw new VfsError('EBADF', 'session closed');
    const { acl } = this.host.acl(share, this.protocol);
    const p = normalizePath(path);
    const write = acl.allows(this.principal, 'write', p);
    return {
      read: acl.allows(this.principal, 'read', p),
      write,
      delete: write,
      admin: acl.allows(this.principal, 'admin', p),
      readOnlyShare: acl.readOnly,
    };
  }

  getattr(share: string, path: string): Promise<FileAttr> {
    return this.gate('getattr', share, [[path, 'read']], null, (vol) => this.vfs.getattr(vol, path));
  }

  /** Path of a file id (for id-addressed protocols: NFS handles, FUSE inodes). */
  pathOf(share: string, id: bigint): Promise<string> {
    return this.gate('pathOf', share, [], null, async (vol) => this.vfs.pathOf(vol, id));
  }

  // ---------------------------------------------------------------- by id (NFS, SMB, FUSE)
  //
  // Handle-based front-ends address files by id. An id is turned into its current path (a cached
  // walk of the id rows: Vfs.pathOf, ESTALE when the file is gone), the rights are checked on that
  // path as for every path operation, and the work is the path operation's — so the ACL, the audit
  // log and the token-lock checks are the same whichever way a file is named. Lookups and
  // attributes of warm entries answer from memory (src/vfs/attr-cache.ts).

  /** The current share path of an id (ESTALE when the file is gone). */
  private idPath(share: string, id: bigint): string {
    return this.vfs.pathOf(this.host.acl(share, this.protocol).volume, id);
  }

  /**
   * Runs a by-id operation on the id's current path. When that name is gone (ENOENT) because the
   * file's first name was removed outside Portico while another name still holds it (a hard link),
   * the id moves to the surviving name (Vfs.relocateId, what getattrById does) and the operation
   * runs once more there; every by-id operation then finds the file, whichever comes first.
   */
  private async byId<T>(share: string, id: bigint, fn: (path: string) => Promise<T>): Promise<T> {
    try {
      return await fn(this.idPath(share, id));
    } catch (e) {
      if (!(e instanceof VfsError && e.code === 'ENOENT')) throw e;
      const moved = await this.vfs.relocateId(this.host.acl(share, this.protocol).volume, id).catch(() => undefined);
      if (moved === undefined) throw e;
      return fn(moved);
    }
  }

  /** A child path of a directory id, the name validated as any client name is. */
  private childPath(share: string, dirId: bigint, name: string): string {
    return joinPath(this.idPath(share, dirId), normalizeName(name));
  }

  /** Attributes by id (NFS GETATTR, FUSE getattr): read on the file's path. */
  getattrById(share: string, id: bigint): Promise<FileAttr> {
    return this.gate('getattr', share, [], null, (vol, acl) => {
      acl.check(this.principal, 'read', this.vfs.pathOf(vol, id));
      return this.vfs.getattrById(vol, id);
    });
  }

  /** A name in a directory given by id (NFS LOOKUP, FUSE lookup): read on the child's path. */
  lookup(share: string, dirId: bigint, name: string): Promise<FileAttr> {
    return this.gate('lookup', share, [], null, (vol, acl) => {
      const dir = this.vfs.pathOf(vol, dirId);
      const nfc = normalizeName(name);
      acl.check(this.principal, 'read', joinPath(dir, nfc));
      return this.vfs.lookupIn(vol, dirId, dir, nfc);
    });
  }

  /** The parent directory of an id (NFS LOOKUPP); the share root is its own parent. */
  lookupParent(share: string, id: bigint): Promise<FileAttr> {
    return this.gate('lookup', share, [], null, (vol, acl) => {
      const parent = parentPath(this.vfs.pathOf(vol, id));
      acl.check(this.principal, 'read', parent);
      return this.vfs.getattr(vol, parent);
    });
  }

  readdirById(share: string, dirId: bigint, options?: ReaddirOptions): Promise<ReaddirResult> {
    return this.gate('readdir', share, [], null, (vol, acl) => {
      const dir = this.vfs.pathOf(vol, dirId);
      acl.check(this.principal, 'read', dir);
      return this.visiblePage(vol, acl, dir, options);
    });
  }

  /**
   * Opens an existing file by id. The path is looked up again by the open: when it now holds
   * another file (replaced since the id was handed out) the open is undone and ESTALE answers.
   */
  async openById(share: string, id: bigint, opts: OpenOptions): Promise<Handle> {
    const h = await this.byId(share, id, (path) => this.open(share, path, { ...opts, disposition: opts.disposition === 'truncate' ? 'truncate' : 'open' }));
    if (h.fileId !== id) {
      await this.close(h);
      throw new VfsError('ESTALE', 'the file was replaced', { path: h.path });
    }
    return h;
  }

  /** Opens or creates `name` in a directory id (NFS OPEN with a create, SMB CREATE, FUSE create). */
  openIn(share: string, dirId: bigint, name: string, opts: OpenOptions): Promise<Handle> {
    return this.open(share, this.childPath(share, dirId, name), opts);
  }

  mkdirIn(share: string, dirId: bigint, name: string, mode?: number): Promise<FileAttr> {
    return this.mkdir(share, this.childPath(share, dirId, name), mode);
  }

  symlinkIn(share: string, dirId: bigint, name: string, target: string): Promise<FileAttr> {
    return this.symlink(share, target, this.childPath(share, dirId, name));
  }

  linkIn(share: string, id: bigint, dirId: bigint, name: string): Promise<FileAttr> {
    return this.byId(share, id, (path) => this.link(share, path, this.childPath(share, dirId, name)));
  }

  /** Removes a file, link or empty directory by (directory id, name) (NFS REMOVE, FUSE unlink/rmdir). */
  async removeIn(share: string, dirId: bigint, name: string): Promise<void> {
    const path = this.childPath(share, dirId, name);
    // One lookup of the name (Vfs.remove), with the checks, counts and audit line of the getattr
    // then unlink or rmdir this was: read on the name before it is looked up, write once it is
    // found, the removal audited under the operation its type makes it.
    const t0 = performance.now();
    let op = 'getattr';
    let audit: Record<string, unknown> | null = null;
    let status = 'ok';
    try {
      if (this.closed) throw new VfsError('EBADF', 'session closed');
      const { acl, volume } = this.host.acl(share, this.protocol);
      const p = normalizePath(path);
      acl.check(this.principal, 'read', p);
      await this.vfs.remove(volume, path, this.lockTokens, (type) => {
        this.host.observe(this.protocol, op, 'ok', (performance.now() - t0) / 1000);
        op = type === 'dir' ? 'rmdir' : 'unlink';
        audit = { path };
        acl.check(this.principal, 'write', p);
      });
    } catch (e) {
      const ve = this.failure(e, op, share);
      status = ve.code;
      throw ve;
    } finally {
      this.settled(op, share, audit, status, t0);
    }
  }

  renameIn(share: string, dirId: bigint, name: string, toDirId: bigint, toName: string, options?: { replace?: boolean; exchange?: boolean }): Promise<void> {
    return this.rename(share, this.childPath(share, dirId, name), this.childPath(share, toDirId, toName), options);
  }

  readlinkById(share: string, id: bigint): Promise<string> {
    return this.byId(share, id, (path) => this.readlink(share, path));
  }

  setattrById(share: string, id: bigint, set: SetAttr): Promise<FileAttr> {
    return this.byId(share, id, (path) => this.setattr(share, path, set));
  }

  /** Extended attributes and named streams by id (NFS GETXATTR and friends; see getXattr). */
  getXattrById(share: string, id: bigint, name: string, space: import('../vfs/xattrs.ts').XattrSpace = 'user'): Promise<Uint8Array> {
    return this.byId(share, id, (path) => this.getXattr(share, path, name, space));
  }

  listXattrsById(share: string, id: bigint, space: import('../vfs/xattrs.ts').XattrSpace = 'user'): Promise<import('../vfs/xattrs.ts').XattrEntry[]> {
    return this.byId(share, id, (path) => this.listXattrs(share, path, space));
  }

  setXattrById(
    share: string,
    id: bigint,
    name: string,
    value: Uint8Array,
    opts: { mode?: import('../vfs/xattrs.ts').XattrSetMode; space?: import('../vfs/xattrs.ts').XattrSpace } = {},
  ): Promise<void> {
    return this.byId(share, id, (path) => this.setXattr(share, path, name, value, opts));
  }

  removeXattrById(share: string, id: bigint, name: string, space: import('../vfs/xattrs.ts').XattrSpace = 'user'): Promise<void> {
    return this.byId(share, id, (path) => this.removeXattr(share, path, name, space));
  }

  /**
   * Makes everything written to a file durable, through whichever handles wrote it, of any client
   * (NFS COMMIT names no stateid). Needs read on the file: it changes nothing anyone could not see,
   * it only makes written bytes durable sooner. Returns how many handles were flushed.
   */
  flushFile(share: string, id: bigint): Promise<number> {
    return this.gate('flush', share, [], null, (vol, acl) => {
      acl.check(this.principal, 'read', this.vfs.pathOf(vol, id));
      return this.vfs.flushFile(vol, id);
    });
  }

  // ---------------------------------------------------------------- directories

  /**
   * One page of a directory. Members the principal may not read are absent (access-based
   * enumeration, for every protocol): they carry a rule of their own (see ShareAcl.memberFilter).
   */
  readdir(share: string, path: string, options?: ReaddirOptions): Promise<ReaddirResult> {
    return this.gate('readdir', share, [[path, 'read']], null, (vol, acl) => this.visiblePage(vol, acl, path, options));
  }

  private async visiblePage(vol: string, acl: ShareAcl, path: string, options: ReaddirOptions | undefined): Promise<ReaddirResult> {
    let page = await this.vfs.readdir(vol, path, options);
    const visible = acl.memberFilter(this.principal, normalizePath(path));
    if (!visible) return page;
    // An empty page means the end to every caller: a page that only hidden members filled is
    // followed by the next one. Hidden members are rule paths, so this loops a few times at most.
    for (;;) {
      const entries = page.entries.filter((e) => visible(e.name));
      if (entries.length > 0 || page.eof || page.entries.length === 0) return { entries, eof: page.eof };
      page = await this.vfs.readdir(vol, path, { ...options, cookie: page.entries.at(-1)!.cookie });
    }
  }

  readlink(share: string, path: string): Promise<string> {
    return this.gate('readlink', share, [[path, 'read']], null, (vol) => this.vfs.readlink(vol, path));
  }

  statfs(share: string): Promise<StatFsResult> {
    return this.gate('statfs', share, [['/', 'read']], null, (vol) => this.vfs.statfs(vol));
  }

  getProps(share: string, path: string): Promise<PropRow[]> {
    return this.gate('getprops', share, [[path, 'read']], null, (vol) => this.vfs.getProps(vol, path));
  }

  /**
   * One readdir page plus the dead properties of its members (WebDAV PROPFIND Depth 1): one store
   * query per page instead of a lookup, a backend stat and a query per member. `props` maps member
   * names to their properties ([] for none); members the principal may not read are absent (a
   * per-member getProps would have failed for them).
   */
  readdirWithProps(share: string, path: string, options?: ReaddirOptions): Promise<ReaddirResult & { props: Map<string, PropRow[]> }> {
    return this.gate('readdir', share, [[path, 'read']], null, async (vol, acl) => {
      const page = await this.visiblePage(vol, acl, path, options);
      const rows = this.vfs.store.getPropsMany(page.entries.map((e) => e.attr.id));
      const props = new Map<string, PropRow[]>();
      for (const e of page.entries) props.set(e.name, rows.get(e.attr.id) ?? []);
      return { ...page, props };
    });
  }

  /**
   * Whether any lock (of any protocol) exists at all: when none does, lock discovery can answer
   * "no locks" for every resource without a lookup per resource. Not an operation on a share, so
   * not gated.
   */
  get anyLocks(): boolean {
    return this.vfs.locks.size > 0;
  }

  // ---------------------------------------------------------------- open files

  open(share: string, path: string, opts: OpenOptions): Promise<Handle> {
    const rights: [string, Right][] = [];
    const creates = opts.disposition !== undefined && opts.disposition !== 'open';
    if (opts.access.read) rights.push([path, 'read']);
    if (opts.access.write || opts.access.delete || creates || opts.deleteOnClose) rights.push([path, 'write']);
    if (rights.length === 0) rights.push([path, 'read']);
    const audited = creates || opts.access.write || opts.deleteOnClose ? { path, disposition: opts.disposition ?? 'open' } : null;
    return this.gate('open', share, rights, audited, async (vol) => {
      // The session's lock tokens as they are now (a copy: later LOCKs do not reach this handle);
      // none held, none passed (the VFS's own empty set), as readFile does: no Set per open.
      const lockTokens = this.lockTokens.size > 0 ? new Set(this.lockTokens) : undefined;
      const h = await this.vfs.open(vol, path, { ...(lockTokens ? { lockTokens } : {}), creator: this.creator, ...opts, owner: `${this.id}:${opts.owner}` });
      this.handles.add(h);
      return h;
    });
  }

  /**
   * Opens a file for reading and runs `use` with its attributes as the open found them and a reader,
   * then closes it: the whole of a front-end's "send this file" (WebDAV GET/HEAD) in ONE gate — one
   * rights check (`read` on the path, what open() checks for read access), one metrics observation
   * (op 'readFile') — instead of four (open, fstat, read, close). The reader reads through the
   * handle without another check, as `readInto` through an owned handle does (it checks nothing
   * either); its bytes are counted. Not a regular file: EISDIR for a directory, ELOOP for a symbolic
   * link, like open() with `expect: 'file'`. The handle is this session's while `use` runs and is
   * closed whatever happens (a close failure is not reported: the bytes were already sent). A small
   * file with nothing open, staged or locked on it is read whole first, without a handle
   * (Vfs.readSmall: `handle` is then undefined and `read` copies from memory).
   */
  async readFile<T>(share: string, path: string, owner: string, use: (f: ReadableFile) => Promise<T>): Promise<T> {
    // An error of the caller's own (an HTTP answer, a client gone) is not a VFS error: it leaves
    // unchanged, past the gate (which would turn it into EIO and log it as an I/O error).
    let foreign: { error: unknown } | undefined;
    const result = await this.gate('readFile', share, [[path, 'read']], null, async (vol) => {
      // A small file with nothing open, staged or locked on it: read whole in one step, no handle.
      const small = this.vfs.readSmall(vol, path, READ_SMALL_MAX);
      if (small !== undefined) {
        try {
          const data = small.data;
          return await use({
            handle: undefined,
            attr: small.attr,
            read: (offset, target) => this.readFrom(data, offset, target),
            whole: (start, end) => {
              const b = data.subarray(start, end + 1);
              this.host.bytes(this.protocol, 'read', b.length);
              return b;
            },
          });
        } catch (e) {
          if (e instanceof VfsError) throw e;
          foreign = { error: e };
          return undefined;
        }
      }
      const lockTokens = this.lockTokens.size > 0 ? new Set(this.lockTokens) : undefined;
      const h = await this.vfs.open(vol, path, { access: READ_ONLY, expect: 'file', lockTokens, creator: this.creator, owner: `${this.id}:${owner}` });
      this.handles.add(h);
      try {
        const attr = this.vfs.attrAtOpen(h) ?? (await this.vfs.fstat(h));
        return await use({
          handle: h,
          attr,
          read: async (offset, target) => {
            const n = await this.vfs.readInto(this.own(h), offset, target);
            this.host.bytes(this.protocol, 'read', n);
            return n;
          },
        });
      } catch (e) {
        if (e instanceof VfsError) throw e;
        foreign = { error: e };
        return undefined;
      } finally {
        this.handles.delete(h);
        await this.vfs.close(h).catch(() => undefined);
      }
    });
    if (foreign !== undefined) throw foreign.error;
    return result as T;
  }

  /** readFile's reader over a file read whole: copies from `data`, counts the bytes. */
  private async readFrom(data: Buffer, offset: number, target: Uint8Array): Promise<number> {
    const n = offset >= data.length ? 0 : data.copy(target, 0, offset, Math.min(data.length, offset + target.length));
    this.host.bytes(this.protocol, 'read', n);
    return n;
  }

  async read(h: Handle, offset: number, length: number): Promise<Buffer> {
    const buf = await this.gate('read', h.volume.name, [], null, () => this.vfs.read(this.own(h), offset, length));
    this.host.bytes(this.protocol, 'read', buf.length);
    return buf;
  }

  /** Reads into the caller's buffer (no allocation); returns the bytes read. */
  async readInto(h: Handle, offset: number, target: Uint8Array): Promise<number> {
    const n = await this.gate('read', h.volume.name, [], null, () => this.vfs.readInto(this.own(h), offset, target));
    this.host.bytes(this.protocol, 'read', n);
    return n;
  }

  /**
   * A read whose bytes the kernel moves from the store's descriptor to the client (Vfs.readVia: FUSE
   * splices them to /dev/fuse), checked and counted as readInto is; undefined where the handle's
   * bytes are not all in a descriptor (staged, an object store): the caller uses readInto.
   */
  async readVia(h: Handle, offset: number, length: number, send: (fd: number, offset: number, length: number) => Promise<number>): Promise<number | undefined> {
    const n = await this.gate('read', h.volume.name, [], null, () => this.vfs.readVia(this.own(h), offset, length, send));
    if (n !== undefined) this.host.bytes(this.protocol, 'read', n);
    return n;
  }

  async write(h: Handle, offset: number, data: Uint8Array): Promise<number> {
    const n = await this.gate('write', h.volume.name, [], null, () => this.vfs.write(this.own(h), offset, data));
    this.host.bytes(this.protocol, 'write', n);
    return n;
  }

  /**
   * write() whose bytes the caller writes through the store's descriptor where the core allows it
   * (Vfs.writeVia: FUSE pwrites them from its request buffer and answers the kernel from the thread
   * pool); otherwise the core writes `data` and `send` is not called. Checked and counted as write.
   */
  async writeVia(h: Handle, offset: number, data: Uint8Array, send: (fd: number, offset: number, length: number) => Promise<number>): Promise<number> {
    const n = await this.gate('write', h.volume.name, [], null, () => this.vfs.writeVia(this.own(h), offset, data, send));
    this.host.bytes(this.protocol, 'write', n);
    return n;
  }

  /**
   * fallocate(2) through a handle open for writing (Vfs.allocate): 'allocate' reserves the range
   * (or, without an allocation call in the store, grows the size), 'punch' and 'zero' need one
   * (ENOTSUP otherwise). The open has checked the rights, as for write.
   */
  allocate(h: Handle, op: AllocateOp, offset: number, length: number, keepSize: boolean): Promise<void> {
    return this.gate('allocate', h.volume.name, [], null, () => this.vfs.allocate(this.own(h), op, offset, length, keepSize));
  }

  /** lseek SEEK_DATA / SEEK_HOLE (Vfs.seekData): the offset found, undefined for none (ENXIO). */
  seekData(h: Handle, offset: number, what: 'data' | 'hole'): Promise<number | undefined> {
    return this.gate('seek', h.volume.name, [], null, () => this.vfs.seekData(this.own(h), offset, what));
  }

  /**
   * copy_file_range inside the store (Vfs.copyRange): bytes copied, or ENOTSUP where the store
   * cannot (the caller copies through read and write). Both handles must be this session's.
   */
  async copyRange(src: Handle, srcOffset: number, dst: Handle, dstOffset: number, length: number): Promise<number> {
    const n = await this.gate('copy-range', dst.volume.name, [], null, () => this.vfs.copyRange(this.own(src), srcOffset, this.own(dst), dstOffset, length));
    this.host.bytes(this.protocol, 'write', n);
    return n;
  }

  /**
   * Attributes of an opened file as its open found them (Vfs.attrAtOpen): no backend call; falls
   * back to fstat when the open did not look the file up.
   */
  attrAtOpen(h: Handle): Promise<FileAttr> {
    return this.gate('fstat', h.volume.name, [], null, async () => this.vfs.attrAtOpen(this.own(h)) ?? this.vfs.fstat(h));
  }

  fstat(h: Handle): Promise<FileAttr> {
    return this.gate('fstat', h.volume.name, [], null, () => this.vfs.fstat(this.own(h)));
  }

  /** See Vfs.flush; `{ durable: false }`: what a close(2) needs (FUSE FLUSH), not an fsync. */
  flush(h: Handle, opts?: FlushOptions): Promise<void> {
    return this.gate('flush', h.volume.name, [], null, () => this.vfs.flush(this.own(h), opts));
  }

  /**
   * Narrows an open handle's access and share mode in place, in the share-mode table (NFS
   * OPEN_DOWNGRADE): no close and reopen, so its locks, lease and position stay. Only to a subset
   * (EINVAL otherwise); no right is checked, since nothing is gained.
   */
  downgrade(h: Handle, o: { access: Access; share: Access }): Promise<void> {
    return this.gate('downgrade', h.volume.name, [], null, () => this.vfs.downgrade(this.own(h), o.access, o.share));
  }

  fsetattr(h: Handle, set: SetAttr): Promise<FileAttr> {
    const admin = set.uid !== undefined || set.gid !== undefined;
    const checks: [string, Right][] = [[h.path, 'write']];
    if (admin) checks.push([h.path, 'admin']);
    return this.gate('setattr', h.volume.name, checks, { path: h.path, set: Object.keys(set) }, () => this.vfs.fsetattr(this.own(h), set));
  }

  setDeleteOnClose(h: Handle, pending: boolean): Promise<void> {
    return this.gate('delete-on-close', h.volume.name, [[h.path, 'write']], { path: h.path, pending }, async () =>
      this.vfs.setDeleteOnClose(this.own(h), pending),
    );
  }

  /**
   * Closes a handle. Byte-range locks taken through it (lockHandle without an owner id: SMB's, a
   * handle's own) go with it (MS-SMB2 3.3.5.10: a CLOSE releases the open's locks); locks of
   * explicit owners (NFSv4 lock-owners) belong to their owner and stay.
   */
  async close(h: Handle): Promise<void> {
    if (!this.handles.has(h)) throw new VfsError('EBADF');
    this.handles.delete(h);
    const owner = this.lockOwners.get(handleLockOwner(h));
    if (owner !== undefined) {
      this.lockOwners.delete(handleLockOwner(h));
      this.vfs.locks.releaseOwner(owner);
    }
    await this.gate('close', h.volume.name, [], null, () => this.vfs.close(h));
  }

  /**
   * Atomic whole-content replacement (or creation) of a file, keeping an existing file's identity
   * (see Vfs.replaceContent). Checked and audited when it starts; bytes counted as they are written.
   */
  replaceContent(share: string, path: string, opts: Omit<ReplaceOptions, 'tokens' | 'owner'> & { owner?: string } = {}): Promise<ContentWriter> {
    return this.gate('replace', share, [[path, 'write']], { path }, async (vol) => {
      const w = await this.vfs.replaceContent(vol, path, { creator: this.creator, ...opts, owner: `${this.id}:${opts.owner ?? 'replace'}`, tokens: new Set(this.lockTokens) });
      return {
        created: w.created,
        existing: w.existing,
        write: async (chunk: Uint8Array): Promise<void> => {
          await w.write(chunk);
          this.host.bytes(this.protocol, 'write', chunk.length);
        },
        writev: async (chunks: readonly Uint8Array[]): Promise<void> => {
          await w.writev(chunks);
          let n = 0;
          for (const c of chunks) n += c.length;
          this.host.bytes(this.protocol, 'write', n);
        },
        commit: () => this.gate('replace-commit', share, [], null, () => w.commit()),
        abort: () => w.abort(),
      };
    });
  }

  // ---------------------------------------------------------------- namespace changes

  mkdir(share: string, path: string, mode?: number): Promise<FileAttr> {
    return this.gate('mkdir', share, [[path, 'write']], { path }, (vol) => this.vfs.mkdir(vol, path, mode, this.lockTokens, this.creator));
  }

  unlink(share: string, path: string): Promise<void> {
    return this.gate('unlink', share, [[path, 'write']], { path }, (vol) => this.vfs.unlink(vol, path, this.lockTokens));
  }

  rmdir(share: string, path: string): Promise<void> {
    return this.gate('rmdir', share, [[path, 'write']], { path }, (vol) => this.vfs.rmdir(vol, path, this.lockTokens));
  }

  /**
   * Removes a file or a tree. Every member is checked for write where a path rule lies below `path`;
   * a member the principal may not remove is kept with its ancestors and reported (TreeError), and
   * its subtree is not entered.
   */
  removeTree(share: string, path: string): Promise<TreeError[]> {
    return this.gate('remove-tree', share, [[path, 'write']], { path }, (vol, acl) =>
      this.vfs.removeTree(vol, path, this.lockTokens, this.treeGuard('remove-tree', share, undefined, [acl, path])),
    );
  }

  /**
   * Renames within a share. Refused (EACCES) when a path rule lies at `from` or below it, or below
   * `to`: the rule would then govern other files than before (see refuseRuleMove). `through`: an
   * open of `from` the rename is made through (SMB SET_INFO rename): only the other opens' share
   * modes can refuse it; the handle follows the file as every open does.
   */
  rename(share: string, from: string, to: string, options?: { replace?: boolean; exchange?: boolean; through?: Handle }): Promise<void> {
    if (options?.exchange === true) return this.exchange(share, from, to);
    return this.gate('rename', share, [[from, 'write'], [to, 'write']], { path: from, to }, (vol, acl) => {
      this.refuseRuleMove(share, acl, from, acl, to);
      const through = options?.through ? this.own(options.through) : undefined;
      return this.vfs.rename(vol, from, to, { tokens: this.lockTokens, ...(options?.replace !== undefined ? { replace: options.replace } : {}), ...(through ? { through } : {}) });
    });
  }

  /**
   * Swaps two existing names (renameat2 RENAME_EXCHANGE; Vfs.rename with `exchange`). It is a rename
   * each way, and is checked as both: write at both names (what either rename needs), and neither
   * may change which path rule governs a file (refuseRuleMove from `a` to `b` and from `b` to `a`).
   * ENOTSUP on shares whose backend cannot swap atomically (object stores).
   */
  private exchange(share: string, a: string, b: string): Promise<void> {
    return this.gate('exchange', share, [[a, 'write'], [b, 'write']], { path: a, to: b }, (vol, acl) => {
      this.refuseRuleMove(share, acl, a, acl, b);
      this.refuseRuleMove(share, acl, b, acl, a);
      return this.vfs.rename(vol, a, b, { tokens: this.lockTokens, exchange: true });
    });
  }

  /**
   * Copies within a share. Below a path rule every member is checked: read on its source, write on
   * its target, and the share's symlink policy for links; what the principal may not touch is not
   * copied and is reported (TreeError), its subtree skipped.
   */
  copy(share: string, from: string, to: string, options?: { replace?: boolean; depth?: 0 | 'infinity' }): Promise<TreeError[]> {
    return this.gate('copy', share, [[from, 'read'], [to, 'write']], { path: from, to }, (vol, acl) =>
      this.vfs.copy(vol, from, to, { ...options, tokens: this.lockTokens, guard: this.treeGuard('copy', share, [acl, from], [acl, to]), creator: this.creator }),
    );
  }

  /**
   * The per-node checks and the audit of a recursive operation. Checks are made only where a path
   * rule lies below the operation's root on that side: elsewhere every member inherits the root's
   * decision (ShareAcl), which the gate has already checked. Paths are normalised before the check:
   * backends may list names in NFD, rules are NFC.
   */
  private treeGuard(op: string, share: string, source: [ShareAcl, string] | undefined, target: [ShareAcl, string, string?]): TreeGuard {
    const checker = (acl: ShareAcl, right: Right, root: string): ((path: string) => void) | undefined =>
      acl.rulesBelow(normalizePath(root)).length === 0 ? undefined : (path) => acl.check(this.principal, right, normalizePath(path));
    const [targetAcl, targetRoot, targetShare] = target;
    const guard: TreeGuard = {
      visited: (kind, path, error, to) =>
        this.host.audit({
          session: this.id,
          user: this.principal.user,
          client: this.clientAddress,
          protocol: this.protocol,
          op: `${op}-member`,
          share,
          path,
          ...(to !== undefined ? { to } : {}),
          ...(targetShare !== undefined ? { toShare: targetShare } : {}),
          action: kind,
          status: error === undefined ? 'ok' : error.code,
        }),
    };
    const readCheck = source && checker(source[0], 'read', source[1]);
    const writeCheck = checker(targetAcl, 'write', targetRoot);
    if (readCheck) guard.source = readCheck;
    if (writeCheck) guard.target = writeCheck;
    if (targetAcl.symlinks === 'refuse') guard.link = (linkTarget, path) => this.checkSymlink(targetAcl, linkTarget, path);
    return guard;
  }

  /**
   * A path rule belongs to a path, not to the files under it: a rename or move of a directory that
   * holds a rule's path (or of the rule's path itself), or that puts a tree where rules lie below
   * its new name, would silently change which rule governs those files, for every principal. Such
   * moves are refused; an administrator changes the rules first. Case-only renames on a
   * case-insensitive share keep the same rule keys and pass.
   */
  private refuseRuleMove(share: string, fromAcl: ShareAcl, from: string, toAcl: ShareAcl, to: string): void {
    const f = normalizePath(from);
    const t = normalizePath(to);
    if (fromAcl === toAcl && fromAcl.samePath(f, t)) return;
    const atSource = fromAcl.rulesAtOrBelow(f)[0];
    const rule = atSource ?? toAcl.rulesBelow(t)[0];
    if (rule === undefined) return;
    const ruleShare = atSource !== undefined ? fromAcl.share : toAcl.share;
    this.logger?.warn({ share, from: f, to: t, ruleShare, rule }, 'move refused: it would change which path rule governs files');
    throw new VfsError('EACCES', `moving ${f} would change which path rule governs ${ruleShare}:${rule}; change the rule first`, { path: f });
  }

  /** The share's symlink policy (ShareAcl.symlinks) for a new link at `path`. */
  private checkSymlink(acl: ShareAcl, target: string, path: string): void {
    if (acl.symlinks === 'refuse' && symlinkLeavesShare(normalizePath(path), target)) {
      throw new VfsError('EACCES', `symbolic links leading outside the share are refused on ${acl.share} (symlinks: refuse)`, { path });
    }
  }

  /**
   * Copies from one share into another (WebDAV COPY/MOVE whose Destination is another share).
   * Rights on both shares are checked before anything is copied: read on the source (and write
   * when `forMove`, since the caller removes the source afterwards) and write on the destination;
   * the destination share must be served to this protocol too.
   */
  copyToShare(share: string, from: string, toShare: string, to: string, options: { replace?: boolean; depth?: 0 | 'infinity'; forMove?: boolean } = {}): Promise<TreeError[]> {
    const checks: [string, Right][] = options.forMove ? [[from, 'read'], [from, 'write']] : [[from, 'read']];
    const op = options.forMove ? 'move' : 'copy';
    return this.gate(op, share, checks, { path: from, toShare, to }, (vol, acl) => {
      const dest = this.host.acl(toShare, this.protocol);
      dest.acl.check(this.principal, 'write', normalizePath(to));
      // A move across shares is a copy and a removal, but it changes rule governance as a rename does.
      if (options.forMove) this.refuseRuleMove(share, acl, from, dest.acl, to);
      const { replace, depth } = options;
      const guard = this.treeGuard(op, share, [acl, from], [dest.acl, to, dest.volume]);
      return this.vfs.copy(vol, from, to, { replace, depth, tokens: this.lockTokens, toVolume: dest.volume, guard, creator: this.creator });
    });
  }

  symlink(share: string, target: string, path: string): Promise<FileAttr> {
    return this.gate('symlink', share, [[path, 'write']], { path, target }, (vol, acl) => {
      this.checkSymlink(acl, target, path);
      return this.vfs.symlink(vol, target, path, this.lockTokens, this.creator);
    });
  }

  link(share: string, existing: string, path: string): Promise<FileAttr> {
    return this.gate('link', share, [[existing, 'read'], [path, 'write']], { path, existing }, (vol) => this.vfs.link(vol, existing, path, this.lockTokens));
  }

  setattr(share: string, path: string, set: SetAttr): Promise<FileAttr> {
    const checks: [string, Right][] = [[path, 'write']];
    if (set.uid !== undefined || set.gid !== undefined) checks.push([path, 'admin']);
    return this.gate('setattr', share, checks, { path, set: Object.keys(set) }, (vol) => this.vfs.setattr(vol, path, set, this.lockTokens));
  }

  setProps(share: string, path: string, changes: PropChange[]): Promise<void> {
    return this.gate('setprops', share, [[path, 'write']], { path, props: changes.length }, (vol) => this.vfs.setProps(vol, path, changes, this.lockTokens));
  }

  // ---------------------------------------------------------------- extended attributes and named streams
  // NFS xattrs, FUSE user.* xattrs and SMB named streams (space 'stream'), one store with WebDAV dead
  // properties (src/vfs/xattrs.ts). Reading one or the list needs read, changing one write, as
  // for dead properties; changes are audited with the name (never the value).
  // (Types by import() keep this section the only change to the file.)

  getXattr(share: string, path: string, name: string, space: import('../vfs/xattrs.ts').XattrSpace = 'user'): Promise<Uint8Array> {
    return this.gate('getxattr', share, [[path, 'read']], null, (vol) => this.vfs.getXattr(vol, path, name, space));
  }

  listXattrs(share: string, path: string, space: import('../vfs/xattrs.ts').XattrSpace = 'user'): Promise<import('../vfs/xattrs.ts').XattrEntry[]> {
    return this.gate('listxattrs', share, [[path, 'read']], null, (vol) => this.vfs.listXattrs(vol, path, space));
  }

  setXattr(
    share: string,
    path: string,
    name: string,
    value: Uint8Array,
    opts: { mode?: import('../vfs/xattrs.ts').XattrSetMode; space?: import('../vfs/xattrs.ts').XattrSpace } = {},
  ): Promise<void> {
    const audit = { path, xattr: name, space: opts.space ?? 'user', mode: opts.mode ?? 'either', size: value.byteLength };
    return this.gate('setxattr', share, [[path, 'write']], audit, (vol) => this.vfs.setXattr(vol, path, name, value, opts, this.lockTokens));
  }

  removeXattr(share: string, path: string, name: string, space: import('../vfs/xattrs.ts').XattrSpace = 'user'): Promise<void> {
    return this.gate('removexattr', share, [[path, 'write']], { path, xattr: name, space }, (vol) => this.vfs.removeXattr(vol, path, name, space, this.lockTokens));
  }

  // ---------------------------------------------------------------- locks

  /** `raw` ids are used as they are (handle owners, shared with the VFS I/O check). */
  private owner(ownerId: string | undefined, raw = false): LockOwner {
    const id = raw && ownerId !== undefined ? ownerId : `${this.id}:${ownerId ?? 'session'}`;
    let o = this.lockOwners.get(id);
    if (!o) {
      o = { protocol: this.protocol, id, principal: this.principal.user };
      this.lockOwners.set(id, o);
    }
    return o;
  }

  /** Locks a path (WebDAV LOCK; whole-file unless a range is given). Shared locks need read, exclusive write. */
  lockPath(share: string, path: string, o: PathLockOptions): Promise<LockInfo> {
    const right: Right = o.kind === 'exclusive' || o.style === 'token' ? 'write' : 'read';
    return this.gate('lock', share, [[path, right]], { path, kind: o.kind, depth: o.depth ?? 0 }, async (vol, acl) => {
      // A depth-infinity lock covers every member, present and future, and cannot leave any out:
      // refused as a whole when a rule below denies the right it needs (it would block the
      // principals that rule admits).
      if (o.depth === 'infinity') {
        for (const rule of acl.rulesBelow(normalizePath(path))) {
          if (!acl.allows(this.principal, right, rule)) {
            throw new VfsError('EACCES', `a depth-infinity lock on ${normalizePath(path)} would cover ${rule}, where ${this.principal.user} has no ${right} right`, { path });
          }
        }
      }
      const attr = await this.vfs.getattr(vol, path);
      return this.vfs.locks.lock({
        fileId: attr.id,
        owner: this.owner(o.ownerId),
        kind: o.kind,
        style: o.style,
        ...(o.range ? { range: o.range } : {}),
        depth: o.depth ?? 0,
        ancestors: this.vfs.ancestors(vol, path),
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
        ...(o.wait ? { wait: o.wait } : {}),
        info: o.info,
      });
    });
  }

  /** Byte-range lock through an open handle (SMB LOCK, NFSv4 LOCK, FUSE setlk). */
  lockHandle(h: Handle, o: Omit<PathLockOptions, 'depth'>): Promise<LockInfo> {
    return this.gate('lock', h.volume.name, [], null, async () =>
      this.vfs.locks.lock({
        fileId: this.own(h).fileId,
        owner: o.ownerId !== undefined ? this.owner(o.ownerId) : this.owner(handleLockOwner(h), true),
        kind: o.kind,
        style: o.style,
        ...(o.range ? { range: o.range } : {}),
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
        ...(o.wait ? { wait: o.wait } : {}),
        info: o.info,
      }),
    );
  }

  unlockHandle(h: Handle, range: LockRange, style: LockStyle, ownerId?: string): Promise<void> {
    return this.gate('unlock', h.volume.name, [], null, async () =>
      this.vfs.locks.unlock(this.own(h).fileId, ownerId !== undefined ? this.owner(ownerId) : this.owner(handleLockOwner(h), true), range, style),
    );
  }

  /**
   * Tests for a byte-range lock on a file by id without taking it (NFSv4 LOCKT, fcntl F_GETLK): the
   * first lock that would refuse it, with its range, kind, owner and info, or undefined. `ownerId`
   * names the tester as lockHandle does (its own posix locks are no conflict). Needs read.
   */
  testLock(share: string, id: bigint, o: { kind: LockKind; style?: LockStyle; range?: LockRange; ownerId?: string }): Promise<LockInfo | undefined> {
    return this.gate('lock-test', share, [], null, async (vol, acl) => {
      acl.check(this.principal, 'read', this.vfs.pathOf(vol, id));
      // Not this.owner(): a test registers no lock owner in the client's state.
      const ownerKey = `${this.id}:${o.ownerId ?? 'session'}`;
      const owner = this.lockOwners.get(ownerKey) ?? { protocol: this.protocol, id: ownerKey, principal: this.principal.user };
      return this.vfs.locks.test({ fileId: id, owner, kind: o.kind, style: o.style ?? 'posix', ...(o.range ? { range: o.range } : {}) });
    });
  }

  /** Active locks on a path, and depth-infinity locks on its ancestors (WebDAV lockdiscovery, If). */
  locksOn(share: string, path: string): Promise<LockInfo[]> {
    return this.gate('locks', share, [[path, 'read']], null, async (vol) => {
      const attr = await this.vfs.getattr(vol, path);
      return this.vfs.locks.locksOn(attr.id, { includeAncestors: this.vfs.ancestors(vol, path) });
    });
  }

  /** Releases a lock by token; only its owner (same principal) or a principal with admin may. */
  unlockToken(share: string, token: string): Promise<void> {
    return this.gate('unlock', share, [], { token }, async (_vol, acl) => {
      const l = this.vfs.locks.get(token);
      if (!l) throw new VfsError('ENOTLOCKED');
      if (l.owner.principal !== this.principal.user && !acl.allows(this.principal, 'admin', '/')) throw new VfsError('EACCES', 'lock belongs to another user');
      this.vfs.locks.unlockToken(token);
    });
  }

  refreshLock(share: string, token: string, timeoutMs?: number): Promise<LockInfo> {
    return this.gate('refresh-lock', share, [], null, async () => {
      const l = this.vfs.locks.get(token);
      if (!l || l.owner.principal !== this.principal.user) throw new VfsError('ENOTLOCKED');
      return this.vfs.locks.refresh(token, timeoutMs);
    });
  }

  // ---------------------------------------------------------------- change watches

  /**
   * A change watch on a directory (SMB CHANGE_NOTIFY, NFSv4 directory delegations and cache
   * revalidation; src/session/watch.ts). Needs read on `dir`. Every event is checked for read on
   * its path(s) with this principal when it is queued and again when it is delivered, so nothing
   * below a rule that hides it arrives. The watch ends with the session.
   */
  watch(share: string, dir: string, options: WatchOptions = {}): Promise<Watch> {
    return this.gate('watch', share, [[dir, 'read']], null, async (vol) => {
      const attr = await this.vfs.getattr(vol, dir);
      if (attr.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path: dir });
      const readable = (path: string): boolean => {
        try {
          return this.host.acl(share, this.protocol).acl.allows(this.principal, 'read', normalizePath(path));
        } catch {
          return false;
        }
      };
      return openWatch({
        owner: this.state,
        ownerEnded: () => this.closed,
        vfs: this.vfs,
        volume: vol,
        share,
        dirId: attr.id,
        dirPath: this.vfs.pathOf(vol, attr.id),
        readable,
        logger: this.host.logger,
      }, options);
    });
  }

  // ---------------------------------------------------------------- leases, durable handles, grace
  //
  // Client state the NFSv4 and SMB front-ends translate (src/locks/leases.ts, durable-handles.ts,
  // client-records.ts; docs/ARCHITECTURE.md "Leases, durable handles and grace"). Lease types by
  // import() keep the imports of this section to values.

  /** The client key leases and records use: the bound one, else `state:<ClientState id>`. */
  private get clientKey(): string {
    return this.vfs.leases.clients.clientOfState(this.state.id);
  }

  /**
   * Names this client with the protocol's stable key (SMB ClientGuid, NFSv4 co_ownerid) and boot
   * verifier. Leases are held by (client key, lease key), and a bound client's opens and locks are
   * recorded for reclaim after a restart. Call before its first open. `known`: it held state
   * before the restart and the grace period is on; `reclaimable`: it may reclaim now (a new
   * verifier means the client restarted: its old state is void).
   */
  bindClient(clientKey: string, o: { verifier?: string } = {}): { known: boolean; reclaimable: boolean } {
    if (this.closed) throw new VfsError('EBADF', 'session closed');
    if (typeof clientKey !== 'string' || clientKey === '') throw new VfsError('EINVAL', 'client key must be a non-empty string');
    this.vfs.leases.clients.bind(this.state.id, clientKey);
    const records = ClientRecords.of(this.vfs);
    return records?.register(clientKey, { protocol: this.protocol, ...(o.verifier !== undefined ? { verifier: o.verifier } : {}) }) ?? { known: false, reclaimable: false };
  }

  /**
   * Asks for a lease (SMB lease or oplock, NFS delegation) on an open handle's file, held by
   * (this client, `key`). Returns the level granted (possibly less, or 0). Breaks arrive through
   * `onBreak`; the lease ends with the last handle it was granted with, or, with
   * `bindToHandle: false` (NFS delegations), at releaseLease or the client's end.
   */
  requestLease(
    h: Handle,
    o: { key: string; level: number; onBreak: import('../locks/leases.ts').LeaseBreakCallback; breakTimeoutMs?: number; recallOnWriteOpen?: boolean; bindToHandle?: boolean },
  ): import('../locks/leases.ts').LeaseGrant {
    this.own(h);
    if (this.closed) throw new VfsError('EBADF', 'session closed');
    return this.vfs.leases.grant({
      volume: h.volume.name,
      fileId: h.fileId,
      holder: { client: this.clientKey, key: o.key },
      level: o.level,
      onBreak: o.onBreak,
      stateId: this.state.id,
      ...(o.bindToHandle === false ? {} : { handle: h }),
      ...(o.breakTimeoutMs !== undefined ? { breakTimeoutMs: o.breakTimeoutMs } : {}),
      ...(o.recallOnWriteOpen !== undefined ? { recallOnWriteOpen: o.recallOnWriteOpen } : {}),
    });
  }

  /** Acknowledges a break with the level kept (SMB LEASE_BREAK_ACK); EINVAL when none is out or the level is too high. */
  ackLeaseBreak(key: string, level: number): import('../locks/leases.ts').LeaseGrant {
    return this.vfs.leases.ack({ client: this.clientKey, key }, level);
  }

  /** Gives a lease up (NFS DELEGRETURN). */
  releaseLease(key: string): void {
    this.vfs.leases.release({ client: this.clientKey, key });
  }

  /**
   * Runs `fn`'s calls on this session as lease key `key` of this client: they never break that
   * lease (an SMB CREATE with a lease context, a rename through a leased handle; an NFS client's
   * calls under its delegation key).
   */
  withLeaseKey<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return actingAs({ client: this.clientKey, key }, fn);
  }

  /**
   * Makes an open handle durable: when this client ends (connection lost) it is parked with its
   * share mode, its locks and its lease for `timeoutMs` (0 or absent: 60 s; capped by
   * locks.durableHandleMaxMs), and reclaimDurable(key) by the same principal takes it back.
   * end() parks whatever is durable: on a clean LOGOFF or TREE_DISCONNECT, where SMB closes durable
   * handles, the front-end closes them itself first.
   */
  makeDurable(h: Handle, o: { key: string; timeoutMs?: number }): { timeoutMs: number } {
    if (this.closed) throw new VfsError('EBADF', 'session closed');
    return DurableHandles.of(this.vfs).mark(this.own(h), { key: o.key, principal: this.principal.user, ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}) });
  }

  /**
   * Takes back a parked durable handle (SMB durable reconnect): it joins this client with its
   * locks, and its lease's breaks go to `onLeaseBreak` when given. ENOENT when nothing is parked
   * under the key (expired, broken by a conflicting open, never made); EACCES for another principal.
   */
  async reclaimDurable(key: string, o: { onLeaseBreak?: import('../locks/leases.ts').LeaseBreakCallback } = {}): Promise<Handle> {
    let status = 'ok';
    let path: string | undefined;
    let share: string | undefined;
    try {
      if (this.closed) throw new VfsError('EBADF', 'session closed');
      const { handle, lockOwner } = DurableHandles.of(this.vfs).reclaim(key, this.principal.user, o.onLeaseBreak);
      const h = handle as Handle;
      path = h.path;
      share = h.volume.name;
      this.handles.add(h);
      if (lockOwner !== undefined) this.lockOwners.set(lockOwner.id, lockOwner);
      return h;
    } catch (e) {
      status = toVfsError(e).code;
      throw toVfsError(e);
    } finally {
      this.host.audit({ session: this.id, user: this.principal.user, client: this.clientAddress, protocol: this.protocol, op: 'reclaim-durable', ...(share !== undefined ? { share, path } : {}), status });
    }
  }

  /** Grace period after a restart (client-records.ts): whether it is on, until when, how many clients may still reclaim. */
  graceStatus(): GraceStatus {
    return ClientRecords.of(this.vfs)?.status() ?? { active: false, endsAt: undefined, pending: 0 };
  }

  private reclaimable(): void {
    if (this.closed) throw new VfsError('EBADF', 'session closed');
    if (ClientRecords.of(this.vfs)?.inGrace !== true) throw new VfsError('EINVAL', 'no grace period: nothing can be reclaimed (NFS4ERR_NO_GRACE)');
  }

  /**
   * Reopens, during the grace period, an open this client held before the restart (NFSv4 OPEN
   * CLAIM_PREVIOUS): same file, access and share bits as recorded, else ENOENT (RECLAIM_BAD).
   * Rights are checked as for any open.
   */
  async reclaimOpen(share: string, path: string, opts: OpenOptions): Promise<Handle> {
    this.reclaimable();
    return actingAs({ client: this.clientKey, reclaim: true }, () => this.open(share, path, opts));
  }

  async reclaimOpenById(share: string, id: bigint, opts: OpenOptions): Promise<Handle> {
    this.reclaimable();
    return actingAs({ client: this.clientKey, reclaim: true }, () => this.openById(share, id, opts));
  }

  /** Retakes, during the grace period, a byte-range lock this client held before the restart (NFSv4 LOCK reclaim). */
  reclaimLock(h: Handle, o: Omit<PathLockOptions, 'depth' | 'wait' | 'timeoutMs'>): Promise<LockInfo> {
    return this.gate('lock', h.volume.name, [], { path: h.path, reclaim: true, kind: o.kind }, async () => {
      this.reclaimable();
      return this.vfs.locks.lock({
        fileId: this.own(h).fileId,
        owner: o.ownerId !== undefined ? this.owner(o.ownerId) : this.owner(handleLockOwner(h), true),
        kind: o.kind,
        style: o.style,
        ...(o.range ? { range: o.range } : {}),
        info: o.info,
        reclaim: true,
      });
    });
  }

  /** This client has reclaimed all it will (NFSv4.1 RECLAIM_COMPLETE): grace ends once every known client has. */
  reclaimComplete(): void {
    ClientRecords.of(this.vfs)?.reclaimComplete(this.clientKey);
  }

  /**
   * Session.end(): durable handles are parked instead of closed (their own lock owners with them),
   * leases granted without handles end, and the client key is unbound.
   */
  private parkDurable(): void {
    const durable = DurableHandles.find(this.vfs);
    if (durable !== undefined) {
      for (const h of [...this.handles]) {
        if (!durable.isDurable(h)) continue;
        const ownerId = handleLockOwner(h);
        const owner = this.lockOwners.get(ownerId);
        this.lockOwners.delete(ownerId);
        this.handles.delete(h);
        durable.park(h, owner);
      }
    }
    if (!this.state.named) return;
    this.vfs.leases.releaseState(this.state.id);
    this.vfs.leases.clients.unbind(this.state.id);
  }

  // ---------------------------------------------------------------- lifecycle

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Closes every handle of this session and releases its locks (connection gone). With
   * keepDurableLocks, token locks stay: they are identified by their token, not by the session
   * that took them (WebDAV opens a session per request).
   */
  async end(options: { keepDurableLocks?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.state.closed = true;
    endWatches(this.state);
    this.parkDurable();
    for (const h of this.handles) await this.vfs.close(h).catch((e) => this.logger?.warn({ err: e }, 'close on session end failed'));
    this.handles.clear();
    for (const o of this.lockOwners.values()) this.vfs.locks.releaseOwner(o, options.keepDurableLocks ? { keep: 'token' } : {});
    this.host.detach(this.state.root ?? this);
  }
}
