/**
 * The VFS's public value types: what every protocol sees of a file.
 */
import type { NodeType, StatFs, TimeNs } from './backend.ts';
import type { FileId } from '../store/metadata-store.ts';

export type { FileId, NodeType, TimeNs };

/** Windows FILE_ATTRIBUTE_* bits Portico stores (MS-FSCC 2.6). DIRECTORY and NORMAL are derived. */
export const WinAttr = {
  READONLY: 0x1,
  HIDDEN: 0x2,
  SYSTEM: 0x4,
  DIRECTORY: 0x10,
  ARCHIVE: 0x20,
  NORMAL: 0x80,
} as const;
/** The bits a client may set; the rest are derived or ignored. */
export const SETTABLE_WIN_ATTRS = WinAttr.READONLY | WinAttr.HIDDEN | WinAttr.SYSTEM | WinAttr.ARCHIVE;

export interface FileAttr {
  /** Persistent 64-bit id: survives restarts and renames; never reused. */
  id: FileId;
  type: NodeType;
  size: number;
  /** Bytes allocated (size rounded up to 4 KiB; backends do not report real allocation). */
  allocated: number;
  /** Permission bits (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  atimeNs: TimeNs;
  mtimeNs: TimeNs;
  ctimeNs: TimeNs;
  birthtimeNs: TimeNs;
  /**
   * Change counter: strictly increases with every data or metadata change seen by Portico, including
   * changes made outside Portico that a later stat notices; never goes back, even across restarts.
   */
  change: bigint;
  /** Windows attributes (DIRECTORY added for directories, NORMAL when nothing else is set). */
  winAttributes: number;
  /** Symlink target. */
  target?: string;
}

/** Windows-style access and share masks; POSIX protocols open with share = all. */
export interface Access {
  read: boolean;
  write: boolean;
  delete: boolean;
}

export const SHARE_ALL: Access = Object.freeze({ read: true, write: true, delete: true });

/**
 * How open() treats existence (the NFSv4 / SMB2 create dispositions reduce to these):
 * - open: must exist (ENOENT)
 * - create: must not exist (EEXIST) — exclusive create
 * - openOrCreate: either
 * - truncate: must exist, truncated to 0
 * - createOrTruncate: created or truncated to 0 (SMB OVERWRITE_IF / SUPERSEDE, POSIX O_CREAT|O_TRUNC)
 */
export type CreateDisposition = 'open' | 'create' | 'openOrCreate' | 'truncate' | 'createOrTruncate';

/** Vfs.flush: `durable: false` publishes what was written without forcing it to disk (close(2)). */
export interface FlushOptions {
  durable?: boolean;
}

export interface OpenOptions {
  access: Access;
  /** What other opens may do meanwhile (default: everything). */
  share?: Access;
  disposition?: CreateDisposition;
  /** What the caller expects: a directory open (SMB) refuses files with ENOTDIR and vice versa with EISDIR. */
  expect?: 'file' | 'dir' | 'any';
  /** Mode for a created file. */
  mode?: number;
  deleteOnClose?: boolean;
  /** Identity of the opener (NFS open-owner, SMB session+tree, ...). */
  owner: string;
  /** Windows attributes for a created file. */
  winAttributes?: number;
  /** WebDAV lock tokens the opener presents (If header); kept on the handle for its writes. */
  lockTokens?: ReadonlySet<string>;
  /** Owner of a file or directory this open creates: the creating principal's (backend.ts FileOwner). */
  creator?: { uid: number; gid: number };
}

export interface SetAttr {
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  atimeNs?: TimeNs;
  mtimeNs?: TimeNs;
  birthtimeNs?: TimeNs;
  /** ChangeTime set explicitly (SMB FileBasicInformation): kept until the file's next change (change-times.ts). */
  ctimeNs?: TimeNs;
  winAttributes?: number;
}

export interface DirEntry {
  name: string;
  /** Resume point after this entry: pass it back as `cookie`. Equals the entry's file id. */
  cookie: bigint;
  attr: FileAttr;
}

export interface ReaddirOptions {
  /** Continue after the entry that returned this cookie (0n or undefined = from the start). */
  cookie?: bigint;
  /** Most entries to return (default 1000, capped at 10000). */
  limit?: number;
}

export interface ReaddirResult {
  entries: DirEntry[];
  eof: boolean;
}

export type ChangeKind = 'create' | 'modify' | 'attrib' | 'delete' | 'rename';

export interface ChangeEvent {
  volume: string;
  kind: ChangeKind;
  id: FileId;
  /** Share-relative path after the change (before it, for delete). */
  path: string;
  /** For rename: the path before. */
  oldPath?: string;
  /**
   * The two renames of an exchange of names (renameat2 RENAME_EXCHANGE) are emitted one after the
   * other, 1 then 2: the first file went from oldPath to path, the second from path to oldPath.
   * Whoever re-keys state by path (change watches) swaps both sides once, at the first.
   */
  exchange?: 1 | 2;
  type: NodeType;
  change: bigint;
}

export type StatFsResult = StatFs;

/**
 * Lock tokens the caller presents for this operation (generic lock credentials; WebDAV: its `If`
 * header). A token lock blocks changes by anyone who does not present its token, through every
 * protocol.
 */
export type Tokens = ReadonlySet<string>;
export const NO_TOKENS: Tokens = new Set<string>();
