/**
 * The scenario driver's contract: what a front-end's client must offer so that one scenario list
 * (scenarios.ts) runs through it. A driver speaks its protocol for real (WebDAV over HTTP, NFSv4.1
 * over RPC, SMB 3.1.1 through impacket) and reports two things the scenarios need and nothing else:
 *
 * - what it can do, as data (`Capabilities`): a scenario that needs `truncate` is skipped, with that
 *   word, on a client that cannot truncate; it never guesses from a driver's name;
 * - its failures as one small set of codes (`ClientError.code`), mapped from its wire errors once,
 *   in the driver (HTTP status for WebDAV, NFS4ERR_* for NFS, STATUS_* for SMB), so a scenario asserts
 *   "ENOTEMPTY" whatever protocol it runs through.
 *
 * Paths are share-relative, '/'-separated, starting with '/'; names are given as the user typed them
 * (a driver encodes them for its wire, e.g. percent-encoding for URLs).
 */

/**
 * The normalised error codes. A code outside the small POSIX-and-Windows set a user meets (ENOENT …
 * ELOCKED) is `EIO`, with the wire detail in the message, so an unexpected answer still fails loudly.
 */
export const CLIENT_ERROR_CODES = [
  'ENOENT',
  'EEXIST',
  'ENOTEMPTY',
  'EISDIR',
  'ENOTDIR',
  'EACCES',
  'ELOCKED',
  'EINVAL',
  'ENAMETOOLONG',
  'EBUSY',
  'ENOTSUP',
  'ENOSPC',
  'EIO',
] as const;

export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

export class ClientError extends Error {
  readonly code: ClientErrorCode;

  constructor(code: ClientErrorCode, detail: string) {
    super(`${code}: ${detail}`);
    this.name = 'ClientError';
    this.code = code;
  }
}

/** What a client can do on the share it is connected to (protocol abilities ∧ the share's). */
export interface Capabilities {
  /** writeAt(): writes at any offset of an existing or new file; a gap past EOF reads as zeros. */
  randomWrite: boolean;
  /** appendFile(): adds at the end without sending the whole file. */
  append: boolean;
  /**
   * writeFile() replaces content atomically: a reader sees the old or the new bytes, never a mix,
   * and concurrent writers leave one writer's whole content (WebDAV PUT; not open+truncate+write).
   */
  atomicWrite: boolean;
  /** truncate(): sets a file's size down (content cut) or up (zero-filled). */
  truncate: boolean;
  /** setTimes(): sets a file's modification time. */
  setTimes: boolean;
  /** Step of the mtimes stat() reports and setTimes() keeps, in ms (HTTP dates: 1000). */
  mtimeResolutionMs: number;
  /** symlink()/readlink(); stat() reports type 'symlink' without following it. */
  symlinks: boolean;
  /** link(): a second name for the same content. */
  hardLinks: boolean;
  /** lock(): an exclusive whole-file lock that others' writes (any protocol) run into as ELOCKED. */
  locks: boolean;
  /** Names match regardless of case (Windows semantics; the share's `caseSensitive: false`). */
  caseInsensitive: boolean;
  /**
   * rename() with replace onto an existing directory, or onto a node of the other type, removes it
   * first (WebDAV MOVE with Overwrite: T, RFC 4918 §9.9.3). false: POSIX rename(2) rules (only an
   * empty directory is replaced, by a directory; file onto directory EISDIR, directory onto file
   * ENOTDIR).
   */
  renameReplacesDir: boolean;
  /** rmdir() of a non-empty directory removes the whole tree (WebDAV DELETE, §9.6.1) instead of ENOTEMPTY. */
  rmdirRecursive: boolean;
  /**
   * The client can create any name POSIX allows (all but '/' and NUL), names Windows cannot use
   * included: `? " < > | * :`, controls, a trailing dot or space, DOS device names (CON, nul.txt).
   * false: only names Windows allows (SMB: the server refuses the others, protocols/smb/README.md);
   * such names made by another client are still listed and read (a scenario's peer may make them).
   */
  posixNames: boolean;
}

export type NodeKind = 'file' | 'dir' | 'symlink';

export interface Stat {
  type: NodeKind;
  size: number;
  /** Modification time, ms since the epoch (at the client's mtimeResolutionMs). */
  mtimeMs: number;
}

export interface Entry {
  name: string;
  type: NodeKind;
}

export interface HeldLock {
  unlock(): Promise<void>;
}

/**
 * One front-end's client on one share. Required operations every file protocol has; optional ones
 * exist exactly when the matching capability is true (scenarios check `caps`, then call).
 */
export interface FileClient {
  /** Driver name for test titles and messages ('session', 'webdav', 'nfs', 'smb'). */
  readonly name: string;
  readonly caps: Capabilities;

  mkdir(path: string): Promise<void>;
  /** Removes a directory (a file: ENOTDIR); non-empty: ENOTEMPTY unless caps.rmdirRecursive. */
  rmdir(path: string): Promise<void>;
  /** Creates or replaces a file's whole content. */
  writeFile(path: string, data: Uint8Array): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  /** Up to `length` bytes from `offset`: short at EOF, empty at or beyond it (as pread(2)). */
  readRange(path: string, offset: number, length: number): Promise<Buffer>;
  stat(path: string): Promise<Stat>;
  /** Members of a directory (not '.' or '..'), any order. */
  list(path: string): Promise<Entry[]>;
  /** Renames; replace (default true) allows replacing an existing target, else EEXIST. */
  rename(from: string, to: string, opts?: { replace?: boolean }): Promise<void>;
  /** Removes a file (a directory: EISDIR). */
  remove(path: string): Promise<void>;

  writeAt?(path: string, offset: number, data: Uint8Array): Promise<void>;
  appendFile?(path: string, data: Uint8Array): Promise<void>;
  truncate?(path: string, size: number): Promise<void>;
  setTimes?(path: string, mtimeMs: number): Promise<void>;
  symlink?(target: string, path: string): Promise<void>;
  readlink?(path: string): Promise<string>;
  link?(existing: string, path: string): Promise<void>;
  lock?(path: string): Promise<HeldLock>;

  /** Ends the client's connection or session. */
  close(): Promise<void>;
}

/** A share as the harness built it: what the scenarios may assume about names and storage. */
export interface ShareInfo {
  /** The share's name on the gateway. */
  name: string;
  /** Backend kind, for messages and known-failure entries ('memory', 'local', 's3'). */
  backend: string;
  caseInsensitive: boolean;
  /** What the share's backend stores (links exist only where the backend has them). */
  symlinks: boolean;
  hardLinks: boolean;
  /**
   * Longest name (UTF-8 bytes) the share's store can hold: 255 for real stores; lower only where a
   * test double cannot (said where the share is made). Longer names up to 255 are not tried there.
   */
  storeNameBytes: number;
}
