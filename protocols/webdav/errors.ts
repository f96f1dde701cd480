/**
 * The one table from VfsError codes to HTTP status codes for WebDAV, and the protocol's own error
 * type (HttpError) for conditions that are not VFS errors (bad headers, preconditions, limits).
 *
 * A few codes depend on the method (RFC 4918): EEXIST is 405 for MKCOL (§9.3.1) and 412 for
 * COPY/MOVE with `Overwrite: F` (§9.8.5, §9.9.4); a missing parent is 409 Conflict for PUT, MKCOL,
 * COPY and MOVE (§9.3.1, §9.7.1); ENOTLOCKED is 409 for UNLOCK (§9.11.1) and 412 for a refresh.
 */
import { VfsError, toVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

/** Where an error happened, for the few codes whose status depends on the method. */
export type ErrorContext = 'default' | 'mkcol' | 'overwrite' | 'create' | 'unlock' | 'refresh' | 'delete' | 'put';

const TABLE: Record<VfsErrorCode, number> = {
  ENOENT: 404,
  EEXIST: 409,
  ENOTDIR: 409,
  EISDIR: 409,
  ENOTEMPTY: 409,
  EACCES: 403,
  EPERM: 403,
  EROFS: 403,
  EINVAL: 400,
  ENAMETOOLONG: 414,
  EILSEQ: 400,
  // Symbolic links are shown but never followed on the server (docs/ARCHITECTURE.md).
  ELOOP: 403,
  EXDEV: 502,
  EBADF: 500,
  ESTALE: 404,
  ENOSPC: 507,
  EDQUOT: 507,
  EFBIG: 413,
  EMLINK: 409,
  EIO: 500,
  ETIMEDOUT: 504,
  EAGAIN: 503,
  // EBUSY: transient (a directory rename in progress there, a file in it open for writing): 503
  // with Retry-After, so clients retry instead of reporting "access denied"; about the share root
  // itself (never removable or renamable): 403, see statusFor.
  EBUSY: 503,
  ENOTSUP: 501,
  ENOSYS: 501,
  ECANCELED: 503,
  EDEADLK: 423,
  ENOLCK: 503,
  ERANGE: 416,
  ENODATA: 404,
  E2BIG: 413,
  EAUTH: 401,
  ESHARING: 423,
  ELOCKED: 423,
  ENOTLOCKED: 412,
  EDELETEPENDING: 404,
  EBADCOOKIE: 500,
  // Decision: 429 with Retry-After rather than 401. A 401 makes Windows and macOS prompt again
  // and retry at once, which only extends the lockout; 429 tells the user to wait.
  ETHROTTLED: 429,
  // The grace period after a restart (src/locks/client-records.ts): transient, so 503 with
  // Retry-After (errorHeaders) like EBUSY; clients retry.
  EGRACE: 503,
};

export function statusFor(e: unknown, ctx: ErrorContext = 'default'): number {
  const ve = toVfsError(e);
  const code = ve.code;
  if (code === 'EBUSY' && ve.path === '/') return 403;
  switch (ctx) {
    case 'mkcol':
      if (code === 'EEXIST') return 405;
      if (code === 'ENOENT' || code === 'ENOTDIR') return 409;
      break;
    case 'overwrite':
      if (code === 'EEXIST') return 412;
      break;
    case 'create':
    case 'put':
      if (code === 'ENOENT' || code === 'ENOTDIR') return 409;
      if (code === 'EISDIR') return 405;
      break;
    case 'unlock':
      if (code === 'ENOTLOCKED') return 409;
      break;
    case 'refresh':
      if (code === 'ENOTLOCKED') return 412;
      break;
    default:
      break;
  }
  return TABLE[code];
}

/** An HTTP answer decided by the protocol layer; `condition` is an RFC 4918 §16 precondition element. */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Local name of a DAV: precondition/postcondition element for the `<D:error>` body. */
  readonly condition: string | undefined;
  /** Hrefs inside the condition element (lock-token-submitted, no-conflicting-lock). */
  readonly hrefs: string[];

  constructor(status: number, message?: string, options: { headers?: Record<string, string>; condition?: string; hrefs?: string[] } = {}) {
    super(message ?? `HTTP ${status}`);
    this.name = 'HttpError';
    this.status = status;
    this.headers = options.headers ?? {};
    this.condition = options.condition;
    this.hrefs = options.hrefs ?? [];
  }
}

/** Seconds a client is asked to wait before retrying a 503 (a rename in progress, a store throttling). */
export const RETRY_AFTER_SECONDS = 2;

/** Headers an error answer carries besides its body's: Retry-After on 503 unless one was set. */
export function errorHeaders(status: number, given: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = { ...given };
  if (status === 503 && out['Retry-After'] === undefined) out['Retry-After'] = String(RETRY_AFTER_SECONDS);
  return out;
}

export function badRequest(message: string): HttpError {
  return new HttpError(400, message);
}

/** Status of anything thrown inside a handler. */
export function statusOf(e: unknown, ctx: ErrorContext = 'default'): number {
  if (e instanceof HttpError) return e.status;
  return statusFor(e, ctx);
}

export function isExpected(e: unknown): boolean {
  return e instanceof HttpError || (e instanceof VfsError && e.code !== 'EIO');
}

const REASONS: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  207: 'Multi-Status',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  423: 'Locked',
  424: 'Failed Dependency',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  507: 'Insufficient Storage',
};

export function reason(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/** `HTTP/1.1 423 Locked`, the status line used inside multistatus bodies. */
export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${reason(status)}`;
}
