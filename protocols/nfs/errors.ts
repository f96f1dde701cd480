/**
 * The one table from VfsError codes to nfsstat4 (docs/ARCHITECTURE.md: each protocol maps the
 * error model once). A few codes depend on the operation, named by a context: a lock conflict is
 * NFS4ERR_DENIED for LOCK/LOCKT (with the conflicting lock) and NFS4ERR_LOCKED for I/O blocked by
 * one (RFC 8881 §15.1.8.9, §15.1.8.10); a value out of range is NFS4ERR_XATTR2BIG for the RFC 8276
 * operations. Anything that is not a VfsError is a bug below the protocol and answers NFS4ERR_IO
 * (as the architecture notes prescribe for EIO); the caller logs it.
 *
 * `Record<VfsErrorCode, …>` makes the table exhaustive: a new code does not type-check until it is
 * given an NFS status here.
 */
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';
import { NFS4ERR } from './nfs4-types.ts';

export type Nfs4ErrorContext = 'default' | 'lock' | 'xattr';

const TABLE: Record<VfsErrorCode, number> = {
  ENOENT: NFS4ERR.NOENT,
  EEXIST: NFS4ERR.EXIST,
  ENOTDIR: NFS4ERR.NOTDIR,
  EISDIR: NFS4ERR.ISDIR,
  ENOTEMPTY: NFS4ERR.NOTEMPTY,
  EACCES: NFS4ERR.ACCESS,
  EPERM: NFS4ERR.PERM,
  EROFS: NFS4ERR.ROFS,
  EINVAL: NFS4ERR.INVAL,
  ENAMETOOLONG: NFS4ERR.NAMETOOLONG,
  // Names the path validator refuses for a character (controls, backslash, bad Unicode): RFC 8881
  // §14.2's "character not supported"; Linux shows it as EINVAL.
  EILSEQ: NFS4ERR.BADCHAR,
  // A symbolic link where a directory was needed: the client resolves links itself (§18.13.4).
  ELOOP: NFS4ERR.SYMLINK,
  EXDEV: NFS4ERR.XDEV,
  // A closed or unknown handle is the open state it stood for.
  EBADF: NFS4ERR.BAD_STATEID,
  ESTALE: NFS4ERR.STALE,
  ENOSPC: NFS4ERR.NOSPC,
  EDQUOT: NFS4ERR.DQUOT,
  EFBIG: NFS4ERR.FBIG,
  EMLINK: NFS4ERR.MLINK,
  EIO: NFS4ERR.IO,
  // Transient conditions: NFS4ERR_DELAY makes every client retry after a pause (§15.1.1.3), which
  // a backend timeout, a directory move in progress (EBUSY) or lock-table exhaustion all want.
  ETIMEDOUT: NFS4ERR.DELAY,
  EAGAIN: NFS4ERR.DELAY,
  EBUSY: NFS4ERR.DELAY,
  ENOLCK: NFS4ERR.DELAY,
  ENOTSUP: NFS4ERR.NOTSUPP,
  ENOSYS: NFS4ERR.NOTSUPP,
  ECANCELED: NFS4ERR.IO,
  EDEADLK: NFS4ERR.DEADLOCK,
  ERANGE: NFS4ERR.INVAL,
  ENODATA: NFS4ERR.NOXATTR,
  E2BIG: NFS4ERR.XATTR2BIG,
  EAUTH: NFS4ERR.ACCESS,
  ESHARING: NFS4ERR.SHARE_DENIED,
  ELOCKED: NFS4ERR.LOCKED,
  ENOTLOCKED: NFS4ERR.LOCK_RANGE,
  // An SMB delete-on-close file refuses new opens; Samba maps the same state to EACCES.
  EDELETEPENDING: NFS4ERR.ACCESS,
  EBADCOOKIE: NFS4ERR.BAD_COOKIE,
  ETHROTTLED: NFS4ERR.ACCESS,
  EGRACE: NFS4ERR.GRACE,
};

/** The nfsstat4 for an error thrown below the protocol. */
export function nfsstatOf(e: unknown, context: Nfs4ErrorContext = 'default'): number {
  if (!isVfsError(e)) return NFS4ERR.IO;
  if (context === 'lock' && e.code === 'ELOCKED') return NFS4ERR.DENIED;
  if (context === 'xattr' && e.code === 'ERANGE') return NFS4ERR.XATTR2BIG;
  return TABLE[e.code];
}
