/**
 * In-memory backend: a tree of nodes, for tests and for scratch shares.
 *
 * Capabilities can be overridden so the same code can stand in for an object store
 * (`memory:objectstore`: no random writes, no atomic rename, no links) when testing the VFS paths
 * that only such backends exercise. Methods a capability switches off are absent from the object,
 * exactly as on a backend that never had them.
 */
import type {
  Backend, BackendCapabilities, BackendFile, BackendStat, BackendWriter, FileOwner, ListOptions, ListPage, NodeType,
  OpenFileOptions, SetMetadata, StatFs, TimeNs, WriterOptions,
} from '../../src/vfs/backend.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import { baseName, nameKey, parentPath, splitPath } from '../../src/vfs/path.ts';
import { firstAfter } from '../paging.ts';

export interface MemoryBackendOptions {
  capabilities?: Partial<BackendCapabilities>;
  /** Capacity reported by statfs and enforced on writes (default 1 TiB). */
  totalBytes?: number;
}

export const MEMORY_POSIX_CAPABILITIES: BackendCapabilities = {
  atomicRename: true,
  serverSideCopy: true,
  randomWrites: true,
  emptyDirectories: true,
  caseSensitive: true,
  timestampPrecisionNs: 1,
  hardLinks: true,
  symlinks: true,
  sparseFiles: true,
  posixMetadata: true,
  birthTime: true,
  maxFileSize: Number.MAX_SAFE_INTEGER,
  maxNameBytes: 255,
  nativeIdentity: true,
  // Two names swap in one step of the tree (exchangeNodes).
  atomicExchange: true,
};

/** What `memory:objectstore` overrides: an S3-like store. */
export const MEMORY_OBJECTSTORE_CAPABILITIES: Partial<BackendCapabilities> = {
  randomWrites: false,
  atomicRename: false,
  atomicExchange: false,
  hardLinks: false,
  symlinks: false,
  serverSideCopy: true,
  // As on S3, the native id is a version: an overwrite makes a new object.
  nativeIdentity: false,
};

const TOTAL_FILES = 2 ** 32;

// Wall clock anchored once, advanced by the monotonic clock: ns resolution and never backwards.
const WALL_BASE_NS = BigInt(Date.now()) * 1_000_000n;
const HR_BASE = process.hrtime.bigint();

interface MemNode {
  id: number;
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  atimeNs: TimeNs;
  mtimeNs: TimeNs;
  ctimeNs: TimeNs;
  birthtimeNs: TimeNs;
  /** Files: logical size; bytes past data.length read as zeros (a hole). */
  size: number;
  data: Buffer;
  /** Directories: children keyed by nameKey(). */
  children?: Map<string, { name: string; node: MemNode }>;
  /** Directories: sorted child names, rebuilt on demand after a change. */
  sorted?: string[] | undefined;
  target?: string;
  /** Open BackendFiles; an unlinked node keeps its space until the last one closes. */
  opens: number;
}

const EMPTY = Buffer.alloc(0);

export class MemoryBackend implements Backend {
  readonly kind = 'memory';
  readonly capabilities: BackendCapabilities;
  readonly rename?: (from: string, to: string) => Promise<void>;
  readonly exchange?: (a: string, b: string) => Promise<void>;
  readonly copy?: (from: string, to: string) => Promise<BackendStat>;
  readonly symlink?: (target: string, path: string, owner?: FileOwner) => Promise<BackendStat>;
  readonly readlink?: (path: string) => Promise<string>;
  readonly link?: (existing: string, path: string) => Promise<BackendStat>;

  private readonly totalBytes: number;
  private usedBytes = 0;
  private nodeCount = 0;
  private nextId = 1;
  private readonly root: MemNode;

  constructor(options: MemoryBackendOptions = {}) {
    this.capabilities = { ...MEMORY_POSIX_CAPABILITIES, ...options.capabilities };
    this.totalBytes = options.totalBytes ?? 2 ** 40;
    this.root = this.newNode('dir', 0o755);
    const caps = this.capabilities;
    if (caps.atomicRename) this.rename = (from, to) => this.renameNode(from, to);
    if (caps.atomicExchange) this.exchange = (a, b) => this.exchangeNodes(a, b);
    if (caps.serverSideCopy) this.copy = (from, to) => this.copyNode(from, to);
    if (caps.symlinks) {
      this.symlink = (target, path, owner) => this.symlinkNode(target, path, owner);
      this.readlink = (path) => this.readlinkNode(path);
    }
    if (caps.hardLinks) this.link = (existing, path) => this.linkNode(existing, path);
  }

  /** Current time, cut to the advertised timestamp precision. */
  private now(): TimeNs {
    return this.quantize(WALL_BASE_NS + (process.hrtime.bigint() - HR_BASE));
  }

  private quantize(ns: TimeNs): TimeNs {
    const p = BigInt(Math.max(1, Math.floor(this.capabilities.timestampPrecisionNs)));
    return p === 1n ? ns : ns - (((ns % p) + p) % p);
  }

  private newNode(type: NodeType, mode: number, owner?: FileOwner): MemNode {
    const t = this.now();
    this.nodeCount++;
    const node: MemNode = {
      id: this.nextId++, type, mode: mode & 0o7777, uid: owner?.uid ?? 0, gid: owner?.gid ?? 0, nlink: type === 'dir' ? 2 : 1,
      atimeNs: t, mtimeNs: t, ctimeNs: t, birthtimeNs: t, size: 0, data: EMPTY, opens: 0,
    };
    if (type === 'dir') node.children = new Map();
    return node;
  }

  private key(name: string): string {
    return nameKey(name, this.capabilities.caseSensitive);
  }

  private checkName(name: string, path: string): void {
    if (Buffer.byteLength(name, 'utf8') > this.capabilities.maxNameBytes) throw new VfsError('ENAMETOOLONG', undefined, { path });
  }

  /** Resolves a path without following symlinks; ELOOP for a symlink used as a directory. */
  private lookup(path: string): MemNode {
    let node = this.root;
    for (const seg of splitPath(path)) {
      if (node.type === 'symlink') throw new VfsError('ELOOP', undefined, { path });
      if (node.children === undefined) throw new VfsError('ENOTDIR', undefined, { path });
      const next = node.children.get(this.key(seg));
      if (next === undefined) throw new VfsError('ENOENT', undefined, { path });
      node = next.node;
    }
    return node;
  }

  /** The parent directory node of `path` (ENOENT/ENOTDIR/ELOOP as a lookup would). */
  private parentOf(path: string): MemNode {
    const dir = this.lookup(parentPath(path));
    if (dir.type === 'symlink') throw new VfsError('ELOOP', undefined, { path });
    if (dir.children === undefined) throw new VfsError('ENOTDIR', undefined, { path });
    return dir;
  }

  private child(dir: MemNode, name: string): MemNode | undefined {
    return dir.children?.get(this.key(name))?.node;
  }

  private attach(dir: MemNode, name: string, node: MemNode): void {
    (dir.children as Map<string, { name: string; node: MemNode }>).set(this.key(name), { name, node });
    dir.sorted = undefined;
    if (node.type === 'dir') dir.nlink++;
    dir.mtimeNs = dir.ctimeNs = this.now();
  }

  private detach(dir: MemNode, name: string): void {
    const entry = dir.children?.get(this.key(name));
    if (entry === undefined) return;
    dir.children?.delete(this.key(name));
    dir.sorted = undefined;
    if (entry.node.type === 'dir') dir.nlink--;
    dir.mtimeNs = dir.ctimeNs = this.now();
    this.dropLink(entry.node);
  }

  private dropLink(node: MemNode): void {
    node.nlink -= node.type === 'dir' ? 2 : 1;
    node.ctimeNs = this.now();
    if (node.nlink <= 0) this.release(node);
  }

  /** Frees a node's space once it has neither names nor open handles. */
  private release(node: MemNode): void {
    if (node.nlink > 0 || node.opens > 0) return;
    this.nodeCount--;
    if (node.type === 'file') this.usedBytes -= node.size;
    node.data = EMPTY;
  }

  private reserve(delta: number, path: string): void {
    if (delta > 0 && this.usedBytes + delta > this.totalBytes) throw new VfsError('ENOSPC', undefined, { path });
  }

  /** @internal */
  statOf(name: string, node: MemNode): BackendStat {
    const st: BackendStat = {
      name,
      type: node.type,
      size: node.type === 'dir' ? 0 : node.size,
      mtimeNs: node.mtimeNs,
      ctimeNs: node.ctimeNs,
      atimeNs: node.atimeNs,
      nlink: node.nlink,
      nativeId: String(node.id),
    };
    if (this.capabilities.birthTime) st.birthtimeNs = node.birthtimeNs;
    if (this.capabilities.posixMetadata) {
      st.mode = node.mode;
      st.uid = node.uid;
      st.gid = node.gid;
    }
    if (node.type === 'symlink' && node.target !== undefined) st.target = node.target;
    return st;
  }

  /** Display name of `path` as stored (differs from the request on case-insensitive trees). */
  private storedName(path: string): string {
    if (path === '/') return '';
    const dir = this.lookup(parentPath(path));
    return dir.children?.get(this.key(baseName(path)))?.name ?? baseName(path);
  }

  async stat(path: string): Promise<BackendStat> {
    return this.statOf(this.storedName(path), this.lookup(path));
  }

  async list(path: string, options: ListOptions): Promise<ListPage> {
    const dir = this.lookup(path);
    if (dir.type === 'symlink' || dir.children === undefined) throw new VfsError('ENOTDIR', undefined, { path });
    const children = dir.children;
    dir.sorted ??= [...children.values()].map((e) => e.name).sort();
    const names = dir.sorted;
    const limit = Math.max(1, Math.floor(options.limit));
    const start = firstAfter(names, options.after);
    const pageNames = names.slice(start, start + limit);
    const entries = pageNames.map((name) => this.statOf(name, (children.get(this.key(name)) as { node: MemNode }).node));
    const page: ListPage = { entries };
    if (start + limit < names.length && pageNames.length > 0) page.next = pageNames[pageNames.length - 1] as string;
    return page;
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    return readNode(this.fileNode(this.lookup(path), path), offset, length);
  }

  private fileNode(node: MemNode, path: string): MemNode {
    if (node.type === 'dir') throw new VfsError('EISDIR', undefined, { path });
    if (node.type === 'symlink') throw new VfsError('ELOOP', undefined, { path });
    return node;
  }

  async openFile(path: string, options: OpenFileOptions): Promise<BackendFile> {
    if (options.write && !this.capabilities.randomWrites) {
      throw new VfsError('ENOTSUP', 'backend does not support random writes', { path });
    }
    const dir = this.parentOf(path);
    const name = baseName(path);
    let node = this.child(dir, name);
    if (node === undefined) {
      if (!options.create) throw new VfsError('ENOENT', undefined, { path });
      this.checkName(name, path);
      node = this.newNode('file', options.mode ?? 0o644, options.owner);
      this.attach(dir, name, node);
    } else if (options.create && options.exclusive) {
      throw new VfsError('EEXIST', undefined, { path });
    }
    this.fileNode(node, path);
    if (options.truncate && options.write) this.resize(node, 0, path);
    return new MemoryFile(this, node, path, options.write);
  }

  /** @internal Writes into a node (used by MemoryFile). */
  writeNode(node: MemNode, offset: number, data: Uint8Array, path: string): number {
    const end = offset + data.length;
    if (end > this.capabilities.maxFileSize) throw new VfsError('EFBIG', undefined, { path });
    this.reserve(end - node.size, path);
    if (end > node.data.length) {
      // Doubling keeps appends amortised O(1); a write far past EOF allocates only up to its end.
      let grown: Buffer;
      try {
        grown = Buffer.alloc(Math.max(end, node.data.length * 2));
      } catch (e) {
        throw new VfsError('ENOSPC', 'out of memory for file data', { path, cause: e });
      }
      node.data.copy(grown, 0, 0, Math.min(node.data.length, node.size));
      node.data = grown;
    }
    node.data.set(data, offset);
    if (end > node.size) this.setSize(node, end);
    node.mtimeNs = node.ctimeNs = this.now();
    return data.length;
  }

  private setSize(node: MemNode, size: number): void {
    if (node.nlink > 0 || node.opens > 0) this.usedBytes += size - node.size;
    node.size = size;
  }

  /** @internal Truncates or extends a node (extension is a hole). */
  resize(node: MemNode, size: number, path: string): void {
    if (size < 0 || !Number.isSafeInteger(size)) throw new VfsError('EINVAL', undefined, { path });
    if (size > this.capabilities.maxFileSize) throw new VfsError('EFBIG', undefined, { path });
    this.reserve(size - node.size, path);
    // Bytes beyond the new size must read as zeros if the file grows again.
    if (size < node.data.length) node.data.fill(0, size);
    this.setSize(node, size);
    node.mtimeNs = node.ctimeNs = this.now();
  }

  /** @internal */
  opened(node: MemNode): void {
    node.opens++;
  }

  /** @internal */
  closed(node: MemNode): void {
    node.opens--;
    this.release(node);
  }

  async createWriter(path: string, options: WriterOptions = {}): Promise<BackendWriter> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const dir = this.parentOf(path);
    this.checkName(baseName(path), path);
    const existing = this.child(dir, baseName(path));
    if (existing?.type === 'dir') throw new VfsError('EISDIR', undefined, { path });
    return new MemoryWriter(this, path, options);
  }

  /** @internal Publishes a writer's bytes at `path`, replacing any file there with a new node. */
  publish(path: string, data: Buffer, options: WriterOptions, meta: SetMetadata | undefined): BackendStat {
    const dir = this.parentOf(path);
    const name = baseName(path);
    const old = this.child(dir, name);
    if (old !== undefined && options.exclusive) throw new VfsError('EEXIST', undefined, { path });
    if (old?.type === 'dir') throw new VfsError('EISDIR', undefined, { path });
    if (data.length > this.capabilities.maxFileSize) throw new VfsError('EFBIG', undefined, { path });
    this.reserve(data.length - this.reclaimable(old), path);
    // Like an object store's writer here (s3-backend.ts baseMeta), a replaced file keeps its owner.
    const node = this.newNode('file', options.mode ?? 0o644, options.owner ?? (old !== undefined ? { uid: old.uid, gid: old.gid } : undefined));
    node.data = data;
    if (old !== undefined) this.detach(dir, name);
    this.attach(dir, name, node);
    this.setSize(node, data.length);
    if (meta !== undefined) this.applyMeta(node, meta);
    return this.statOf(name, node);
  }

  /** @internal Fails early with ENOSPC when a writer's pending bytes cannot fit. */
  checkSpace(pending: number, path: string): void {
    let freed = 0;
    try {
      freed = this.reclaimable(this.lookup(path));
    } catch {
      // Target or parent gone: commit will report it.
    }
    this.reserve(pending - freed, path);
  }

  /** Bytes that replacing `node` would give back (none while another name or an open handle keeps it). */
  private reclaimable(node: MemNode | undefined): number {
    return node !== undefined && node.type === 'file' && node.nlink === 1 && node.opens === 0 ? node.size : 0;
  }

  async mkdir(path: string, mode?: number, owner?: FileOwner): Promise<BackendStat> {
    if (path === '/') throw new VfsError('EEXIST', undefined, { path });
    const dir = this.parentOf(path);
    const name = baseName(path);
    if (this.child(dir, name) !== undefined) throw new VfsError('EEXIST', undefined, { path });
    this.checkName(name, path);
    const node = this.newNode('dir', mode ?? 0o755, owner);
    this.attach(dir, name, node);
    return this.statOf(name, node);
  }

  async rmdir(path: string): Promise<void> {
    if (path === '/') throw new VfsError('EBUSY', 'cannot remove the share root', { path });
    const dir = this.parentOf(path);
    const node = this.lookup(path);
    if (node.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path });
    if ((node.children as Map<string, unknown>).size > 0) throw new VfsError('ENOTEMPTY', undefined, { path });
    this.detach(dir, baseName(path));
  }

  async unlink(path: string): Promise<void> {
    if (path === '/') throw new VfsError('EISDIR', undefined, { path });
    const dir = this.parentOf(path);
    const node = this.lookup(path);
    if (node.type === 'dir') throw new VfsError('EISDIR', undefined, { path });
    this.detach(dir, baseName(path));
  }

  private async renameNode(from: string, to: string): Promise<void> {
    if (from === '/' || to === '/') throw new VfsError('EBUSY', 'cannot rename the share root', { path: from });
    const fromDir = this.parentOf(from);
    const node = this.lookup(from);
    const toDir = this.parentOf(to);
    const toName = baseName(to);
    this.checkName(toName, to);
    const target = this.child(toDir, toName);
    if (target === node) {
      // Same file (or a case-only rename on a case-insensitive tree): only the stored name may change.
      if (fromDir === toDir && this.storedName(from) !== toName) {
        const entry = fromDir.children?.get(this.key(toName));
        if (entry !== undefined) entry.name = toName;
        fromDir.sorted = undefined;
      }
      return;
    }
    if (node.type === 'dir') {
      // Moving a directory into its own subtree would detach a cycle (rename(2): EINVAL).
      for (let p = to; p !== '/'; p = parentPath(p)) {
        if (this.lookupOrUndefined(p) === node) throw new VfsError('EINVAL', 'cannot move a directory into itself', { path: to });
      }
    }
    if (target !== undefined) {
      if (node.type === 'dir' && target.type !== 'dir') throw new VfsError('ENOTDIR', undefined, { path: to });
      if (node.type !== 'dir' && target.type === 'dir') throw new VfsError('EISDIR', undefined, { path: to });
      if (target.type === 'dir' && (target.children as Map<string, unknown>).size > 0) {
        throw new VfsError('ENOTEMPTY', undefined, { path: to });
      }
      this.detach(toDir, toName);
    }
    // Move without dropping the link count: detach() would release the node.
    const fromKey = this.key(baseName(from));
    fromDir.children?.delete(fromKey);
    fromDir.sorted = undefined;
    if (node.type === 'dir') fromDir.nlink--;
    fromDir.mtimeNs = fromDir.ctimeNs = this.now();
    this.attach(toDir, toName, node);
    node.ctimeNs = this.now();
  }

  /**
   * renameat2(RENAME_EXCHANGE): the two entries swap nodes, each keeping its stored name. Checked
   * as the kernel does: both exist (ENOENT), neither is inside the other (EINVAL).
   */
  private async exchangeNodes(a: string, b: string): Promise<void> {
    if (a === '/' || b === '/') throw new VfsError('EBUSY', 'cannot exchange the share root', { path: a });
    const aDir = this.parentOf(a);
    const bDir = this.parentOf(b);
    const aEntry = aDir.children?.get(this.key(baseName(a)));
    const bEntry = bDir.children?.get(this.key(baseName(b)));
    if (aEntry === undefined) throw new VfsError('ENOENT', undefined, { path: a });
    if (bEntry === undefined) throw new VfsError('ENOENT', undefined, { path: b });
    if (aEntry.node === bEntry.node) return;
    for (const [node, other] of [[aEntry.node, b], [bEntry.node, a]] as const) {
      if (node.type !== 'dir') continue;
      for (let p = other; p !== '/'; p = parentPath(p)) {
        if (this.lookupOrUndefined(p) === node) throw new VfsError('EINVAL', 'cannot exchange a directory with a name inside it', { path: other });
      }
    }
    const [x, y] = [aEntry.node, bEntry.node];
    aEntry.node = y;
    bEntry.node = x;
    // A directory moving between parents moves its '..' link.
    if (aDir !== bDir && x.type !== y.type) {
      const d = x.type === 'dir' ? 1 : -1;
      aDir.nlink -= d;
      bDir.nlink += d;
    }
    const t = this.now();
    aDir.mtimeNs = aDir.ctimeNs = bDir.mtimeNs = bDir.ctimeNs = t;
    x.ctimeNs = y.ctimeNs = t;
  }

  private lookupOrUndefined(path: string): MemNode | undefined {
    try {
      return this.lookup(path);
    } catch {
      return undefined;
    }
  }

  private async copyNode(from: string, to: string): Promise<BackendStat> {
    const src = this.fileNode(this.lookup(from), from);
    const bytes = Buffer.alloc(Math.min(src.data.length, src.size));
    src.data.copy(bytes, 0, 0, bytes.length);
    this.publish(to, bytes, { mode: src.mode }, undefined);
    const node = this.lookup(to);
    // A trailing hole in the source stays a hole in the copy.
    if (node.size < src.size) this.resize(node, src.size, to);
    node.mtimeNs = src.mtimeNs;
    return this.statOf(baseName(to), node);
  }

  private async symlinkNode(target: string, path: string, owner?: FileOwner): Promise<BackendStat> {
    const dir = this.parentOf(path);
    const name = baseName(path);
    if (this.child(dir, name) !== undefined) throw new VfsError('EEXIST', undefined, { path });
    this.checkName(name, path);
    const node = this.newNode('symlink', 0o777, owner);
    node.target = target;
    node.size = Buffer.byteLength(target, 'utf8');
    this.attach(dir, name, node);
    return this.statOf(name, node);
  }

  private async readlinkNode(path: string): Promise<string> {
    const node = this.lookup(path);
    if (node.type !== 'symlink') throw new VfsError('EINVAL', 'not a symbolic link', { path });
    return node.target as string;
  }

  private async linkNode(existing: string, path: string): Promise<BackendStat> {
    const node = this.lookup(existing);
    if (node.type === 'dir') throw new VfsError('EPERM', 'cannot hard-link a directory', { path: existing });
    const dir = this.parentOf(path);
    const name = baseName(path);
    if (this.child(dir, name) !== undefined) throw new VfsError('EEXIST', undefined, { path });
    this.checkName(name, path);
    node.nlink++;
    node.ctimeNs = this.now();
    this.attach(dir, name, node);
    return this.statOf(name, node);
  }

  private applyMeta(node: MemNode, meta: SetMetadata): void {
    if (this.capabilities.posixMetadata) {
      if (meta.mode !== undefined) node.mode = meta.mode & 0o7777;
      if (meta.uid !== undefined) node.uid = meta.uid;
      if (meta.gid !== undefined) node.gid = meta.gid;
    }
    if (meta.atimeNs !== undefined) node.atimeNs = this.quantize(meta.atimeNs);
    if (meta.mtimeNs !== undefined) node.mtimeNs = this.quantize(meta.mtimeNs);
    if (meta.birthtimeNs !== undefined && this.capabilities.birthTime) node.birthtimeNs = this.quantize(meta.birthtimeNs);
    node.ctimeNs = this.now();
  }

  async setMetadata(path: string, meta: SetMetadata): Promise<BackendStat> {
    const node = this.lookup(path);
    this.applyMeta(node, meta);
    return this.statOf(this.storedName(path), node);
  }

  async truncate(path: string, size: number): Promise<void> {
    this.resize(this.fileNode(this.lookup(path), path), size, path);
  }

  async statfs(): Promise<StatFs> {
    const free = Math.max(0, this.totalBytes - this.usedBytes);
    return {
      totalBytes: this.totalBytes,
      freeBytes: free,
      availableBytes: free,
      totalFiles: TOTAL_FILES,
      freeFiles: TOTAL_FILES - this.nodeCount,
      blockSize: 4096,
    };
  }

  async check(): Promise<void> {}

  async close(): Promise<void> {}
}

function readNode(node: MemNode, offset: number, length: number): Buffer {
  if (offset < 0 || length < 0) throw new VfsError('EINVAL');
  const end = Math.min(node.size, offset + length);
  if (end <= offset) return Buffer.alloc(0);
  const out = Buffer.alloc(end - offset);
  // Bytes past data.length are a hole and stay zero.
  if (offset < node.data.length) node.data.copy(out, 0, offset, Math.min(end, node.data.length));
  return out;
}

/** An open file: holds the node itself, so it survives unlink and rename like a descriptor. */
class MemoryFile implements BackendFile {
  private readonly backend: MemoryBackend;
  private readonly node: MemNode;
  private readonly path: string;
  private readonly writable: boolean;
  private closed = false;

  constructor(backend: MemoryBackend, node: MemNode, path: string, writable: boolean) {
    this.backend = backend;
    this.node = node;
    this.path = path;
    this.writable = writable;
    backend.opened(node);
  }

  private live(write: boolean): MemNode {
    if (this.closed || (write && !this.writable)) throw new VfsError('EBADF', undefined, { path: this.path });
    return this.node;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return readNode(this.live(false), offset, length);
  }

  async write(offset: number, data: Uint8Array): Promise<number> {
    return this.backend.writeNode(this.live(true), offset, data, this.path);
  }

  async truncate(size: number): Promise<void> {
    this.backend.resize(this.live(true), size, this.path);
  }

  async sync(): Promise<void> {
    this.live(false);
  }

  async stat(): Promise<BackendStat> {
    return this.backend.statOf(baseName(this.path), this.live(false));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.backend.closed(this.node);
  }
}

/** Buffers chunks; nothing is visible until commit() swaps a new node in. */
class MemoryWriter implements BackendWriter {
  private readonly backend: MemoryBackend;
  private readonly path: string;
  private readonly options: WriterOptions;
  private chunks: Buffer[] = [];
  private length = 0;
  private done = false;

  constructor(backend: MemoryBackend, path: string, options: WriterOptions) {
    this.backend = backend;
    this.path = path;
    this.options = options;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    this.backend.checkSpace(this.length + chunk.length, this.path);
    // Copy: the caller may reuse its buffer once the promise resolves.
    this.chunks.push(Buffer.from(chunk));
    this.length += chunk.length;
  }

  async commit(meta?: SetMetadata): Promise<BackendStat> {
    if (this.done) throw new VfsError('EBADF', 'writer already finished', { path: this.path });
    this.done = true;
    const data = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    return this.backend.publish(this.path, data, this.options, meta);
  }

  async abort(): Promise<void> {
    this.done = true;
    this.chunks = [];
  }
}
