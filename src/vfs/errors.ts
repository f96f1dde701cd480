/**
 * The one error model of Portico.
 *
 * Every layer below the protocols (backends, VFS, session, locks, auth) throws `VfsError` with an
 * errno-like code. Each protocol maps these codes to its wire errors exactly once, in one table
 * (NFS4ERR_*, STATUS_*, HTTP status). Nothing else crosses the protocol boundary: a protocol that
 * catches a non-VfsError treats it as EIO (and logs it as a bug).
 */

/** errno-like codes. POSIX names where one exists; the rest are named after the Windows/NFS state they carry. */
export const VFS_ERROR_CODES = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOTEMPTY: 'directory not empty',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only share',
  EINVAL: 'invalid argument',
  ENAMETOOLONG: 'name or path too long',
  EILSEQ: 'illegal byte sequence in name',
  ELOOP: 'symbolic link in path',
  EXDEV: 'cross-share link or rename',
  EBADF: 'bad or closed handle',
  ESTALE: 'stale file id',
  ENOSPC: 'no space left',
  EDQUOT: 'quota exceeded',
  EFBIG: 'file too large',
  EMLINK: 'too many links',
  EIO: 'input/output error',
  ETIMEDOUT: 'backend timed out',
  EAGAIN: 'resource temporarily unavailable',
  EBUSY: 'resource busy',
  ENOTSUP: 'operation not supported by this backend',
  ENOSYS: 'operation not implemented',
  ECANCELED: 'operation canceled',
  EDEADLK: 'lock wait would deadlock',
  ENOLCK: 'no locks available',
  ERANGE: 'value out of range',
  ENODATA: 'no such attribute',
  E2BIG: 'argument list too long',
  EAUTH: 'authentication failed',
  /** Windows share-mode conflict (STATUS_SHARING_VIOLATION, NFS4ERR_SHARE_DENIED). */
  ESHARING: 'sharing violation',
  /** Byte-range or whole-file lock conflict (STATUS_LOCK_NOT_GRANTED / FILE_LOCK_CONFLICT, NFS4ERR_DENIED, HTTP 423). */
  ELOCKED: 'locked',
  /** Unlock or refresh of a lock that does not exist (STATUS_RANGE_NOT_LOCKED, NFS4ERR_LOCK_RANGE, HTTP 412). */
  ENOTLOCKED: 'range not locked',
  /** The file is marked delete-on-close; new opens fail (STATUS_DELETE_PENDING). */
  EDELETEPENDING: 'delete pending',
  /** A readdir cookie that cannot be resumed (NFS4ERR_BAD_COOKIE). */
  EBADCOOKIE: 'bad readdir cookie',
  /** Too many failed logins from this user or address (throttled). */
  ETHROTTLED: 'too many failed attempts',
  /**
   * The grace period after a restart: the request conflicts with state a client held before it and
   * may still reclaim; retry later (NFS4ERR_GRACE; HTTP 503 with Retry-After).
   */
  EGRACE: 'in grace period, retry later',
} as const;

export type VfsErrorCode = keyof typeof VFS_ERROR_CODES;

/**
 * Errors about one file or name, not about the store: a retry cannot fix them. Background work
 * (write-back uploads, journaled tree moves) stops retrying such an entry and sets it aside
 * (quarantine, conflict) instead of waiting on it forever.
 */
export const ENTRY_ERRORS: ReadonlySet<VfsErrorCode> = new Set<VfsErrorCode>([
  'ENOENT', 'ENOTDIR', 'EISDIR', 'ESTALE', 'EFBIG', 'ENAMETOOLONG', 'EINVAL', 'EILSEQ', 'EEXIST', 'ENOTSUP', 'ELOOP',
]);

export class VfsError extends Error {
  readonly code: VfsErrorCode;
  /** Share-relative path the error is about, when one is known (for logs and 207 multistatus bodies). */
  readonly path: string | undefined;

  constructor(code: VfsErrorCode, message?: string, options?: { path?: string; cause?: unknown }) {
    super(message ?? `${code}: ${VFS_ERROR_CODES[code]}${options?.path !== undefined ? ` (${options.path})` : ''}`, {
      cause: options?.cause,
    });
    this.name = 'VfsError';
    this.code = code;
    this.path = options?.path;
  }
}

export function isVfsError(e: unknown, code?: VfsErrorCode): e is VfsError {
  return e instanceof VfsError && (code === undefined || e.code === code);
}

/** Node's own errno names that map 1:1 onto ours. */
const NODE_ERRNO: Partial<Record<string, VfsErrorCode>> = {
  ENOENT: 'ENOENT',
  EEXIST: 'EEXIST',
  ENOTDIR: 'ENOTDIR',
  EISDIR: 'EISDIR',
  ENOTEMPTY: 'ENOTEMPTY',
  EACCES: 'EACCES',
  EPERM: 'EPERM',
  EROFS: 'EROFS',
  EINVAL: 'EINVAL',
  ENAMETOOLONG: 'ENAMETOOLONG',
  EILSEQ: 'EILSEQ',
  ELOOP: 'ELOOP',
  EXDEV: 'EXDEV',
  EBADF: 'EBADF',
  ENOSPC: 'ENOSPC',
  EDQUOT: 'EDQUOT',
  EFBIG: 'EFBIG',
  EMLINK: 'EMLINK',
  EIO: 'EIO',
  ETIMEDOUT: 'ETIMEDOUT',
  EAGAIN: 'EAGAIN',
  EBUSY: 'EBUSY',
  ENOTSUP: 'ENOTSUP',
  EOPNOTSUPP: 'ENOTSUP',
  ENOSYS: 'ENOSYS',
  ERANGE: 'ERANGE',
  ENODATA: 'ENODATA',
  E2BIG: 'E2BIG',
  ESTALE: 'ESTALE',
  ETXTBSY: 'EBUSY',
};

/**
 * Convert anything thrown by Node's fs (or by a backend library) into a VfsError. Unknown errors become
 * EIO with the original as `cause`, so no foreign error type ever reaches a protocol.
 */
export function toVfsError(e: unknown, path?: string): VfsError {
  if (e instanceof VfsError) return e;
  const errno = (e as { code?: unknown } | null)?.code;
  const code = typeof errno === 'string' ? NODE_ERRNO[errno] : undefined;
  return new VfsError(code ?? 'EIO', undefined, path === undefined ? { cause: e } : { path, cause: e });
}
