/**
 * The backend contract: what the VFS core needs from a storage system, and nothing more.
 *
 * Shaped for object stores first (S3, shard sets) so that local disk is the easy case:
 * ranged reads, streaming writes of unknown length, paged listing sorted by name, optional
 * server-side copy, optional atomic rename. Anything a backend may or may not do is declared
 * as data in `BackendCapabilities`; the VFS reads those flags and never infers behaviour from a
 * backend's name.
 *
 * Paths given to a backend are already validated and normalised by the VFS (`src/vfs/path.ts`):
 * share-relative, '/'-separated, starting with '/', no '.' or '..' segments, NFC. The root is '/'.
 * A backend must still never let a path escape its root (the local backend refuses to follow
 * symbolic links and checks every opened descriptor).
 *
 * Errors: throw `VfsError` (src/vfs/errors.ts) with the errno-like code; `toVfsError()` converts
 * Node fs errors.
 */

export type NodeType = 'file' | 'dir' | 'symlink';

/** Nanoseconds since the Unix epoch. */
export type TimeNs = bigint;

export interface BackendCapabilities {
  /** rename(2)-style atomic rename of files and directories, replacing the target. */
  atomicRename: boolean;
  /**
   * exchange() swaps two existing names atomically (renameat2 RENAME_EXCHANGE): each name then
   * holds the other's file or directory, and at no moment is either name missing (optional; absent
   * means false). The local backend has it when its native helper is loaded
   * (backends/local/native); object stores never (no store swaps two keys at once).
   */
  atomicExchange?: boolean;
  /**
   * BackendFile.allocate() reserves space and punches or zeroes ranges in the store (fallocate(2);
   * optional, absent means false). Local: with the native helper.
   */
  fileAllocate?: boolean;
  /** BackendFile.seekData() reports the file's holes (SEEK_DATA/SEEK_HOLE; optional). */
  sparseSeek?: boolean;
  /**
   * BackendFile.copyRange() copies a byte range between two open files of this backend inside the
   * store, without the bytes passing through Portico (copy_file_range(2); optional).
   */
  rangeCopy?: boolean;
  /**
   * BackendFile.lendDescriptor() lends the kernel descriptor a file reads through, so that a
   * front-end can have the kernel move a range of it (splice to /dev/fuse) without the bytes
   * entering Portico (optional; local only: object stores have no descriptor).
   */
  descriptorReads?: boolean;
  /** copy() is implemented without moving the bytes through Portico. */
  serverSideCopy: boolean;
  /** openFile() allows writes at arbitrary offsets into an existing file (else the VFS stages writes). */
  randomWrites: boolean;
  /** A directory can exist with no children (S3: a `dir/` marker object). */
  emptyDirectories: boolean;
  /** Names differing only in case are different files. */
  caseSensitive: boolean;
  /** Smallest timestamp step the backend stores, in nanoseconds (1 = ns, 1000 = µs, 1e9 = seconds). */
  timestampPrecisionNs: number;
  /** link() works. */
  hardLinks: boolean;
  /** symlink()/readlink() work. */
  symlinks: boolean;
  /** Holes in files take no space (truncate up and writes past EOF are cheap). */
  sparseFiles: boolean;
  /** mode/uid/gid are stored (natively or as object metadata). */
  posixMetadata: boolean;
  /** The backend keeps a creation (birth) time it reports in stat(). */
  birthTime: boolean;
  /** Largest file the backend can hold, in bytes. */
  maxFileSize: number;
  /** Longest single name, in UTF-8 bytes. */
  maxNameBytes: number;
  /**
   * createPatchWriter() and readVersion() exist (optional; absent means false). The VFS then stages
   * only the changed ranges of a large file and publishes "unchanged ranges of the old version +
   * new bytes", the unchanged ranges copied inside the store (S3: UploadPartCopy) instead of being
   * downloaded and uploaded again. See src/vfs/write-stage.ts.
   */
  patchWrites?: boolean;
  /** With patchWrites: files smaller than this are still staged whole (patching them gains nothing). */
  patchMinBytes?: number;
  /**
   * BackendStat.nativeId names the file itself and survives its changes (local: device:inode), so a
   * different one at the same name means another file (optional; absent means false: on object
   * stores the native id is a version, the ETag). See src/vfs/change-tracker.ts.
   */
  nativeIdentity?: boolean;
  /**
   * Directory times do not move when members are added or removed (S3: there are none); Portico
   * keeps a directory mtime of its own for changes made through it (optional; absent means false).
   */
  constantDirectoryTimes?: boolean;
  /**
   * How coarse directory times may be, in ms: a directory changed less than this before a listing
   * was taken may change again without its times moving, so the VFS keeps no listing of it
   * (src/vfs/listing-cache.ts). Optional; absent means 2,000 (FAT keeps mtime in 2 s steps).
   */
  directoryTimeGranularityMs?: number;
  /**
   * Names starting with this prefix are the backend's own (local: atomic-write temp files). They are
   * hidden from listings, so the VFS refuses to let a client create or address one.
   */
  reservedPrefix?: string;
  /**
   * watch() reports changes made to the backend's files by others than this Portico process
   * (local: inotify through node's fs.watch). Absent means false: only Portico's own are seen.
   */
  watch?: boolean;
  /**
   * The backend serves content that cannot be changed through it (a shard set): the gateway serves
   * its share read-only whatever the config says, so every protocol refuses writes with EROFS at the
   * gate (optional; absent means false).
   */
  readOnly?: boolean;
}

export interface BackendStat {
  /** Last path segment ('' for the root). */
  name: string;
  type: NodeType;
  size: number;
  mtimeNs: TimeNs;
  /** Status change time; backends without one report mtimeNs. */
  ctimeNs: TimeNs;
  atimeNs: TimeNs;
  /** Creation time, when the backend keeps one (capabilities.birthTime). */
  birthtimeNs?: TimeNs;
  mode?: number;
  uid?: number;
  gid?: number;
  nlink?: number;
  /**
   * A backend-native identity that changes when the content object is replaced (local: dev:ino,
   * S3: ETag). The VFS uses it to notice outside changes; it is never shown to clients.
   */
  nativeId?: string;
  /** Symlink target, when type is 'symlink' and the backend can tell it cheaply. */
  target?: string;
}

export interface ListPage {
  /** Entries sorted by name in UTF-16 code unit order (JavaScript `<`), without '.' and '..'. */
  entries: BackendStat[];
  /** Pass back as `after` to get the next page; undefined when this was the last page. */
  next?: string;
}

export interface ListOptions {
  /** Return only names strictly greater than this one. */
  after?: string;
  /** At most this many entries (the backend may return fewer even when more exist). */
  limit: number;
}

export interface SetMetadata {
  mode?: number;
  uid?: number;
  gid?: number;
  atimeNs?: TimeNs;
  mtimeNs?: TimeNs;
  birthtimeNs?: TimeNs;
}

/** Flags for openFile(). The VFS has already decided create/exclusive semantics and checked share modes. */
export interface OpenFileOptions {
  write: boolean;
  /** Create when missing. */
  create?: boolean;
  /** With create: fail with EEXIST when it exists. */
  exclusive?: boolean;
  /** Truncate to zero length on open. */
  truncate?: boolean;
  /** Mode for a created file. */
  mode?: number;
  /** Owner of a created file (see FileOwner). */
  owner?: FileOwner;
}

/**
 * The owner a new file, directory or link takes: the creating principal's uid and gid, so NFS and
 * SMB clients see their own files as theirs. Applied where the backend stores owners
 * (capabilities.posixMetadata) and may set them: the local backend only when the gateway runs as
 * root (otherwise the service user owns everything it creates, as with any unprivileged server).
 */
export interface FileOwner {
  uid: number;
  gid: number;
}

/** A file opened for random access (backends with capabilities.randomWrites, and any backend for reads). */
export interface BackendFile {
  /** Reads up to `length` bytes at `offset`; a short result means end of file. */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional zero-allocation read: fills `target` from its start with the bytes at `offset` and
   * returns how many it got (fewer at end of file). Lets protocols read straight into a reply
   * buffer and streaming reads reuse one buffer (no per-chunk allocation and GC).
   */
  readInto?(offset: number, target: Uint8Array): Promise<number>;
  write(offset: number, data: Uint8Array): Promise<number>;
  truncate(size: number): Promise<void>;
  /** Makes written data durable. */
  sync(): Promise<void>;
  stat(): Promise<BackendStat>;
  close(): Promise<void>;
  /**
   * Only when capabilities.fileAllocate (a file open for writing): fallocate(2) on
   * [offset, offset + length). 'allocate' reserves the space (and grows the size to the range's end
   * unless keepSize), 'punch' frees it (reads as zeros; keepSize is implied), 'zero' makes it read
   * as zeros with the space kept allocated. ENOTSUP where the store's file system cannot.
   */
  allocate?(op: AllocateOp, offset: number, length: number, keepSize: boolean): Promise<void>;
  /**
   * Only when capabilities.sparseSeek: lseek SEEK_DATA / SEEK_HOLE from `offset`: the start of the
   * next data or hole at or after it (the end of the file is a hole), undefined when there is none
   * (offset at or past the end, or no data after it).
   */
  seekData?(offset: number, what: 'data' | 'hole'): Promise<number | undefined>;
  /**
   * Only when capabilities.rangeCopy: copies up to `length` bytes from `offset` of this file to
   * `targetOffset` of `target` (open for writing, of this backend) inside the store; fewer at this
   * file's end. ENOTSUP when it cannot be done there (another backend's file, two file systems,
   * overlapping ranges of one file): the caller then copies through Portico.
   */
  copyRange?(offset: number, target: BackendFile, targetOffset: number, length: number): Promise<number>;
  /**
   * Only when capabilities.descriptorReads: runs `use` with the descriptor this file reads through
   * (the file's bytes are all in it). The descriptor stays open until `use` settles (close() waits
   * for it); `use` only reads from it (pread, splice), never seeks, writes or closes it.
   */
  lendDescriptor?<T>(use: (fd: number) => Promise<T>): Promise<T>;
  /**
   * Only when capabilities.descriptorReads, on a file opened for writing: write() of `data` at
   * `offset`, which the file either makes itself (a small write it makes inline, as write() would)
   * or lends its descriptor for: `use` writes `data` there (pwrite at `offset`; never seeks,
   * truncates or closes it) and returns the bytes written. The descriptor stays open until `use`
   * settles (close() waits for it), and later calls on the file come after it.
   */
  writeVia?(offset: number, data: Uint8Array, use: (fd: number) => Promise<number>): Promise<number>;
}

/** What BackendFile.allocate does to its range (fallocate(2) modes 0 / PUNCH_HOLE / ZERO_RANGE). */
export type AllocateOp = 'allocate' | 'punch' | 'zero';

/**
 * A streaming writer of unknown length. Nothing is visible at the target path until commit()
 * resolves; abort() (or a failed commit) leaves the previous content, if any, in place.
 */
export interface BackendWriter {
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Optional vectored write: the chunks, in order, as one write (local: one pwritev). Lets a
   * protocol hand over the socket chunks of a request body without concatenating them first. The
   * writer may keep the chunks until commit, like write(). Absent: the caller writes them one by one.
   */
  writev?(chunks: readonly Uint8Array[]): Promise<void>;
  /** Publishes the data at the target path (atomic replace) and returns the new stat. */
  commit(meta?: SetMetadata): Promise<BackendStat>;
  abort(): Promise<void>;
}

/**
 * One version of a file's content: what a patch is made against. `id` is the backend's content
 * identity (BackendStat.nativeId; S3: the ETag): it changes whenever the content is replaced.
 */
export interface ContentVersion {
  id: string;
  size: number;
}

/**
 * A BackendWriter (same atomic-on-commit rules) bound to a base version of the file it replaces,
 * which can also append ranges of that base without the bytes passing through Portico. The new
 * content is the concatenation of what write() and copyBase() appended, in call order.
 */
export interface PatchWriter extends BackendWriter {
  /**
   * Appends bytes [start, end) of the base version (end <= base.size). The backend decides how
   * (S3: UploadPartCopy of whole parts, ranged reads of the base for the rest). If the file's content
   * is no longer the base (replaced by someone else), this or commit() fails with ESTALE and
   * nothing is published: a new object never mixes two versions.
   */
  copyBase(start: number, end: number): Promise<void>;
}

export interface WriterOptions {
  /** Fail with EEXIST at commit if the target exists by then. */
  exclusive?: boolean;
  mode?: number;
  /** Owner of the file when the writer creates it (see FileOwner). */
  owner?: FileOwner;
  /** A size hint, when known (lets S3 choose single PUT vs multipart and part sizes). */
  sizeHint?: number;
}

export interface StatFs {
  totalBytes: number;
  freeBytes: number;
  availableBytes: number;
  totalFiles: number;
  freeFiles: number;
  /** Preferred I/O size. */
  blockSize: number;
}

/**
 * What a backend watcher reports (Backend.watch). Paths are backend paths (as stat() and list()
 * take them), coalesced over a short window: one call per path however many changes it saw.
 */
export interface BackendWatchListener {
  /**
   * Something at `path` appeared, went away or changed, by someone else or by Portico itself.
   * `found`: not seen changing, but found in a directory that appeared (made or moved in), which
   * the watcher walked because what was created in it before its watch began would go unseen: news
   * only when the VFS does not know the path yet (a tree Portico moved holds only known names).
   */
  change(path: string, found?: boolean): void;
  /**
   * Changes may have been missed (too many at once, a watch limit reached, a directory that could
   * not be watched): whoever relies on them should re-read the watched directory.
   */
  lost(reason: string): void;
}

export interface BackendWatcher {
  close(): void;
}

export interface Backend {
  /** Short kind name for logs and metrics labels ('local', 'memory', 's3', 'shard'). */
  readonly kind: string;
  readonly capabilities: BackendCapabilities;

  /** lstat semantics: never follows a symlink. ENOENT when missing, ENOTDIR when a parent is a file. */
  stat(path: string): Promise<BackendStat>;
  /** One page of a directory listing, sorted by name. ENOTDIR/ENOENT as stat. */
  list(path: string, options: ListOptions): Promise<ListPage>;

  /** Ranged read without opening: short result at EOF. */
  read(path: string, offset: number, length: number): Promise<Buffer>;
  /** Random access. Backends without randomWrites may refuse `write: true` with ENOTSUP. */
  openFile(path: string, options: OpenFileOptions): Promise<BackendFile>;
  /**
   * Optional: the whole of a small regular file in one synchronous step — a local disk's open,
   * fstat, pread and close while they complete in memory time — for "send this file" of a small
   * file (WebDAV GET) without a descriptor object, a handle and a promise per step
   * (OpenFiles.readSmall). Undefined whenever that cannot be done at once: not a regular file
   * (symbolic links are not followed), larger than `maxBytes`, any error, synchronous I/O not
   * allowed now (the local backend's breaker). The caller then takes the general path (openFile),
   * which gives every case its usual answer. Wrappers that must see every open (tree-move guard,
   * deferred creates) do not forward it, so it is absent above them. `data` belongs to the caller
   * alone (a buffer no one else holds or reuses): it may be sent as it is (Session ReadableFile.whole).
   */
  readSmallSync?(path: string, maxBytes: number): { stat: BackendStat; data: Buffer } | undefined;
  /** Streaming, atomic-on-commit write of a whole file. Parent must exist (ENOENT otherwise). */
  createWriter(path: string, options?: WriterOptions): Promise<BackendWriter>;
  /**
   * Only when capabilities.patchWrites: a writer replacing the file at `path`, whose current content
   * must be `base`, that can reuse ranges of it (PatchWriter.copyBase).
   */
  createPatchWriter?(path: string, base: ContentVersion, options?: WriterOptions): Promise<PatchWriter>;
  /**
   * Only when capabilities.patchWrites: bytes [offset, offset + length) of content version
   * `version` of `path` (short at its end). ESTALE when the file's content is no longer that version
   * (never bytes of another version).
   */
  readVersion?(path: string, version: ContentVersion, offset: number, length: number): Promise<Buffer>;

  /** EEXIST when the path exists; ENOENT when the parent is missing. */
  mkdir(path: string, mode?: number, owner?: FileOwner): Promise<BackendStat>;
  /** ENOTEMPTY when the directory has children. */
  rmdir(path: string): Promise<void>;
  /** Files and symlinks; EISDIR for a directory. */
  unlink(path: string): Promise<void>;
  /**
   * Only when capabilities.atomicRename. Replaces the target with POSIX rules (the VFS has checked
   * types and emptiness, but the backend must still be atomic). Without atomic rename the VFS
   * copies then deletes.
   */
  rename?(from: string, to: string): Promise<void>;
  /**
   * Only when capabilities.atomicExchange: swaps the files or directories at `a` and `b` (both
   * exist; types may differ; neither is inside the other) in one atomic step. ENOENT when either is
   * missing; the backend does no other check.
   */
  exchange?(a: string, b: string): Promise<void>;
  /** Only when capabilities.serverSideCopy: copies one file, replacing the target. */
  copy?(from: string, to: string): Promise<BackendStat>;
  /** Only when capabilities.symlinks. */
  symlink?(target: string, path: string, owner?: FileOwner): Promise<BackendStat>;
  readlink?(path: string): Promise<string>;
  /** Only when capabilities.hardLinks. */
  link?(existing: string, path: string): Promise<BackendStat>;

  /** Applies what it can store; returns the resulting stat. Size changes go through truncate(). */
  setMetadata(path: string, meta: SetMetadata): Promise<BackendStat>;
  /** Sets a file's size (extends with zeros, or shortens). */
  truncate(path: string, size: number): Promise<void>;
  statfs(): Promise<StatFs>;
  /**
   * Startup recovery, run once in the background after the gateway starts: remove what a crashed
   * process left behind (local: atomic-write temp files; S3: orphaned multipart uploads, journals).
   * Returns how many items it cleaned.
   */
  recover?(): Promise<number>;
  /**
   * Drops cached metadata (stats, listings, negative lookups) at and below a path, so changes made
   * outside Portico show at once (`portico cache refresh`). Backends without caches omit it.
   */
  invalidate?(path: string): void;
  /**
   * A hint, not a call to wait for: a file is about to be created at `path` (a lookup just found
   * nothing; the VFS's deferred-create layer announced it and publishes it later). A backend may
   * prepare what makes creating in that directory cheap (S3: learns the directory's membership,
   * as a createWriter of a new name does). Backends without such state omit it.
   */
  willCreate?(path: string): void;
  /**
   * Only when capabilities.watch: reports changes at the direct children of the directory `dir`,
   * or anywhere below it when `recursive`, made by anyone (the VFS tells its own apart). The
   * watcher holds resources (local: one inotify watch per directory) until close(); the VFS keeps
   * one per watched directory (src/session/watch.ts). ENOENT/ENOTDIR when `dir` is not a directory.
   */
  watch?(dir: string, recursive: boolean, listener: BackendWatchListener): Promise<BackendWatcher>;
  /** Resolves when the backend is reachable (used by /ready); rejects with a VfsError otherwise. */
  check(): Promise<void>;
  close(): Promise<void>;
}
