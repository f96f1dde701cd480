/**
 * The one table from VfsError codes to Linux errno values for FUSE replies (docs/ARCHITECTURE.md:
 * each protocol maps the error model once). `Record<VfsErrorCode, …>` makes it exhaustive: a new
 * core code does not type-check until it has an errno here. Anything that is not a VfsError is a
 * bug below the protocol and answers EIO (the caller logs it).
 */
import { constants } from 'node:os';
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

const E = constants.errno;

const TABLE: Record<VfsErrorCode, number> = {
  ENOENT: E.ENOENT,
  EEXIST: E.EEXIST,
  ENOTDIR: E.ENOTDIR,
  EISDIR: E.EISDIR,
  ENOTEMPTY: E.ENOTEMPTY,
  EACCES: E.EACCES,
  EPERM: E.EPERM,
  EROFS: E.EROFS,
  EINVAL: E.EINVAL,
  ENAMETOOLONG: E.ENAMETOOLONG,
  EILSEQ: E.EILSEQ,
  ELOOP: E.ELOOP,
  EXDEV: E.EXDEV,
  EBADF: E.EBADF,
  ESTALE: E.ESTALE,
  ENOSPC: E.ENOSPC,
  EDQUOT: E.EDQUOT,
  EFBIG: E.EFBIG,
  EMLINK: E.EMLINK,
  EIO: E.EIO,
  // A stalled backend: the issue asks for EIO (what a local disk's failed I/O is); the mount stays up.
  ETIMEDOUT: E.EIO,
  EAGAIN: E.EAGAIN,
  EBUSY: E.EBUSY,
  ENOTSUP: E.EOPNOTSUPP,
  ENOSYS: E.ENOSYS,
  ECANCELED: E.EINTR,
  EDEADLK: E.EDEADLK,
  ENOLCK: E.ENOLCK,
  ERANGE: E.ERANGE,
  ENODATA: E.ENODATA,
  E2BIG: E.E2BIG,
  EAUTH: E.EACCES,
  // A Windows share-mode conflict held by an SMB client: the file is busy (Samba answers ETXTBSY
  // to its local users in the same state; EBUSY is what tools print sensibly).
  ESHARING: E.EBUSY,
  // I/O blocked by another protocol's byte-range lock, or an F_SETLK conflict: POSIX's EAGAIN.
  ELOCKED: E.EAGAIN,
  ENOTLOCKED: E.ENOLCK,
  // Delete-on-close pending (SMB): new opens are refused, as Samba refuses them locally.
  EDELETEPENDING: E.EACCES,
  EBADCOOKIE: E.EINVAL,
  ETHROTTLED: E.EACCES,
  EGRACE: E.EAGAIN,
};

/** The errno (positive) for an error thrown below the protocol. */
export function errnoOf(e: unknown): number {
  return isVfsError(e) ? TABLE[e.code] : E.EIO;
}
