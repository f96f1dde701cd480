/**
 * The one table from VfsError codes to NTSTATUS (docs/ARCHITECTURE.md: each protocol maps the
 * error model once; MS-ERREF 2.3 for the values). A few codes depend on the operation, named by a
 * context: a lock conflict is STATUS_LOCK_NOT_GRANTED for LOCK and STATUS_FILE_LOCK_CONFLICT for
 * I/O blocked by one (MS-SMB2 3.3.5.14, MS-FSA 2.1.5.2). Anything that is not a VfsError is a bug below the protocol and
 * answers STATUS_UNEXPECTED_IO_ERROR; the caller logs it.
 *
 * `Record<VfsErrorCode, …>` makes the table exhaustive: a new code does not type-check until it is
 * given an NTSTATUS here.
 */
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

export const NT = {
  SUCCESS: 0x0000_0000,
  STOPPED_ON_SYMLINK: 0x8000_002d,
  NO_MORE_FILES: 0x8000_0006,
  BUFFER_OVERFLOW: 0x8000_0005,
  INFO_LENGTH_MISMATCH: 0xc000_0004,
  INVALID_HANDLE: 0xc000_0008,
  INVALID_PARAMETER: 0xc000_000d,
  NO_SUCH_FILE: 0xc000_000f,
  INVALID_DEVICE_REQUEST: 0xc000_0010,
  END_OF_FILE: 0xc000_0011,
  ACCESS_DENIED: 0xc000_0022,
  OBJECT_NAME_INVALID: 0xc000_0033,
  OBJECT_NAME_NOT_FOUND: 0xc000_0034,
  OBJECT_NAME_COLLISION: 0xc000_0035,
  OBJECT_PATH_NOT_FOUND: 0xc000_003a,
  OBJECT_PATH_SYNTAX_BAD: 0xc000_003b,
  SHARING_VIOLATION: 0xc000_0043,
  QUOTA_EXCEEDED: 0xc000_0044,
  EA_TOO_LARGE: 0xc000_0050,
  NONEXISTENT_EA_ENTRY: 0xc000_0051,
  FILE_LOCK_CONFLICT: 0xc000_0054,
  LOCK_NOT_GRANTED: 0xc000_0055,
  DELETE_PENDING: 0xc000_0056,
  RANGE_NOT_LOCKED: 0xc000_007e,
  DISK_FULL: 0xc000_007f,
  INSUFFICIENT_RESOURCES: 0xc000_009a,
  MEDIA_WRITE_PROTECTED: 0xc000_00a2,
  IO_TIMEOUT: 0xc000_00b5,
  FILE_IS_A_DIRECTORY: 0xc000_00ba,
  NOT_SUPPORTED: 0xc000_00bb,
  NOT_SAME_DEVICE: 0xc000_00d4,
  UNEXPECTED_IO_ERROR: 0xc000_00e9,
  DIRECTORY_NOT_EMPTY: 0xc000_0101,
  CANNOT_DELETE: 0xc000_0121,
  NOT_A_DIRECTORY: 0xc000_0103,
  CANCELLED: 0xc000_0120,
  FILE_CLOSED: 0xc000_0128,
  POSSIBLE_DEADLOCK: 0xc000_0194,
  TOO_MANY_LINKS: 0xc000_0265,
  FILE_NOT_AVAILABLE: 0xc000_0467,
} as const;

export type SmbErrorContext = 'default' | 'lock';

const TABLE: Record<VfsErrorCode, number> = {
  ENOENT: NT.OBJECT_NAME_NOT_FOUND,
  EEXIST: NT.OBJECT_NAME_COLLISION,
  ENOTDIR: NT.NOT_A_DIRECTORY,
  EISDIR: NT.FILE_IS_A_DIRECTORY,
  ENOTEMPTY: NT.DIRECTORY_NOT_EMPTY,
  EACCES: NT.ACCESS_DENIED,
  EPERM: NT.ACCESS_DENIED,
  // A read-only share: Windows answers a write to one with ACCESS_DENIED, which its Explorer shows
  // as "you need permission"; MEDIA_WRITE_PROTECTED would read as a write-protected disk.
  EROFS: NT.ACCESS_DENIED,
  EINVAL: NT.INVALID_PARAMETER,
  ENAMETOOLONG: NT.OBJECT_NAME_INVALID,
  EILSEQ: NT.OBJECT_NAME_INVALID,
  // A symbolic link where a directory or file was needed: clients resolve links themselves.
  ELOOP: NT.STOPPED_ON_SYMLINK,
  EXDEV: NT.NOT_SAME_DEVICE,
  EBADF: NT.FILE_CLOSED,
  ESTALE: NT.INVALID_HANDLE,
  ENOSPC: NT.DISK_FULL,
  EDQUOT: NT.QUOTA_EXCEEDED,
  EFBIG: NT.DISK_FULL,
  EMLINK: NT.TOO_MANY_LINKS,
  EIO: NT.UNEXPECTED_IO_ERROR,
  ETIMEDOUT: NT.IO_TIMEOUT,
  // Transient: a sharing violation is what Windows applications retry (Office, Explorer) and what a
  // directory being moved looks like to them; a full lock table is a resource shortage.
  EAGAIN: NT.SHARING_VIOLATION,
  EBUSY: NT.SHARING_VIOLATION,
  ENOLCK: NT.INSUFFICIENT_RESOURCES,
  ENOTSUP: NT.NOT_SUPPORTED,
  ENOSYS: NT.NOT_SUPPORTED,
  ECANCELED: NT.CANCELLED,
  EDEADLK: NT.POSSIBLE_DEADLOCK,
  ERANGE: NT.INVALID_PARAMETER,
  ENODATA: NT.NONEXISTENT_EA_ENTRY,
  E2BIG: NT.EA_TOO_LARGE,
  EAUTH: NT.ACCESS_DENIED,
  ESHARING: NT.SHARING_VIOLATION,
  ELOCKED: NT.FILE_LOCK_CONFLICT,
  ENOTLOCKED: NT.RANGE_NOT_LOCKED,
  EDELETEPENDING: NT.DELETE_PENDING,
  EBADCOOKIE: NT.INVALID_PARAMETER,
  ETHROTTLED: NT.ACCESS_DENIED,
  // Durable-handle reclaim period after a restart: "temporarily unavailable", retried.
  EGRACE: NT.FILE_NOT_AVAILABLE,
};

/** The NTSTATUS for an error thrown below the protocol. */
export function ntStatusOf(e: unknown, context: SmbErrorContext = 'default'): number {
  if (!isVfsError(e)) return NT.UNEXPECTED_IO_ERROR;
  if (context === 'lock' && e.code === 'ELOCKED') return NT.LOCK_NOT_GRANTED;
  return TABLE[e.code];
}
