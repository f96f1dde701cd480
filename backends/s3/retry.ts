/**
 * Failure handling for S3 requests: which failures are worth retrying, how long to wait between
 * attempts, and a circuit breaker per endpoint so a dead store fails fast instead of making every
 * client wait out its retries.
 *
 * Retryable (AWS's own guidance for S3): 5xx (500 InternalError, 503 SlowDown/ServiceUnavailable),
 * 429 and the throttling codes, 408/RequestTimeout, connection failures, our per-request timeout
 * and a body shorter than its Content-Length. Everything else (403, 404, 412, 400...) is an
 * answer, not a failure: the endpoint is alive. So is 501 NotImplemented (and the NotImplemented
 * code under any status): many S3-compatible stores lack optional APIs (multipart listing,
 * UploadPartCopy, conditional headers), and their answer is about a feature, never a sign that
 * the endpoint is down - it must not open the circuit (features.ts turns it into a degradation).
 * A TLS certificate the client does not trust is not retried either (nothing changes until the
 * configuration does) and does not open the circuit: its message says what to set instead.
 *
 * Backoff is "full jitter" (delay = random(0, min(cap, base * 2^attempt))), which spreads retries
 * from many concurrent requests and keeps the mean wait low.
 */
import { VfsError } from '../../src/vfs/errors.ts';
import { backoffCeilingMs } from '../../src/vfs/backoff.ts';

export type FailureKind = 'ok' | 'client' | 'unsupported' | 'tls' | 'throttle' | 'server' | 'network' | 'timeout';

export interface Classified {
  kind: FailureKind;
  retryable: boolean;
  /** HTTP status when there was a response. */
  status: number | undefined;
  /** S3 error code or Node error code, for messages and metrics. */
  code: string;
}

const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled']);
const RETRY_CODES = new Set(['RequestTimeout', 'RequestTimeoutException', 'InternalError', 'ServiceUnavailable', 'PriorRequestNotComplete', 'IncompleteBody', 'TruncatedBody']);
/** Codes stores use for an API or header they do not implement (AWS: 501 NotImplemented). */
const UNSUPPORTED_CODES = new Set(['NotImplemented', 'NotSupported', 'XNotImplemented', 'UnsupportedOperation']);
/** Node's certificate verification failures (the store's certificate is not trusted or not valid for its name). */
export const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE', 'CERT_REJECTED',
]);
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'ERR_HTTP_REQUEST_TIMEOUT',
]);

/** A body that ended before its announced length (or ran past it). */
export class TruncatedBodyError extends Error {
  readonly code = 'TruncatedBody';
  constructor(message: string) {
    super(message);
    this.name = 'TruncatedBodyError';
  }
}

/** Raised through the abort signal when a request outlives its timeout. */
export class RequestTimeoutError extends Error {
  readonly code = 'RequestTimeout';
  constructor(ms: number) {
    super(`S3 request timed out after ${ms} ms`);
    this.name = 'RequestTimeoutError';
  }
}

export function httpStatusOf(e: unknown): number | undefined {
  const m = (e as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata;
  return typeof m?.httpStatusCode === 'number' ? m.httpStatusCode : undefined;
}

function codeOf(e: unknown): string {
  const o = e as { name?: unknown; Code?: unknown; code?: unknown } | null;
  if (typeof o?.Code === 'string') return o.Code;
  if (typeof o?.code === 'string') return o.code;
  if (typeof o?.name === 'string') return o.name;
  return 'Error';
}

export function classify(e: unknown, timedOut: boolean): Classified {
  if (timedOut || e instanceof RequestTimeoutError) return { kind: 'timeout', retryable: true, status: undefined, code: 'Timeout' };
  const status = httpStatusOf(e);
  const code = codeOf(e);
  // An error despite a 2xx status: the body could not be read or parsed (cut short, garbled).
  if (status !== undefined && status >= 200 && status < 300) return { kind: 'network', retryable: true, status, code };
  if (status !== undefined && status > 0) {
    if (status === 501 || UNSUPPORTED_CODES.has(code)) return { kind: 'unsupported', retryable: false, status, code };
    if (status === 429 || THROTTLE_CODES.has(code) || (status === 503 && code === 'SlowDown')) return { kind: 'throttle', retryable: true, status, code };
    if (status >= 500 || status === 408 || RETRY_CODES.has(code)) return { kind: 'server', retryable: true, status, code };
    return { kind: 'client', retryable: false, status, code };
  }
  if (e instanceof TruncatedBodyError || RETRY_CODES.has(code)) return { kind: 'network', retryable: true, status, code };
  const cause = (e as { cause?: unknown } | null)?.cause;
  const causeCode = cause === undefined ? '' : codeOf(cause);
  if (TLS_CODES.has(code) || TLS_CODES.has(causeCode)) return { kind: 'tls', retryable: false, status, code: TLS_CODES.has(code) ? code : causeCode };
  if (NETWORK_CODES.has(code) || NETWORK_CODES.has(causeCode) || code === 'TimeoutError' || code === 'AbortError' || /socket hang up|aborted|premature|ECONNRESET|other side closed|terminated/i.test(String((e as Error)?.message))) {
    return { kind: 'network', retryable: true, status, code: NETWORK_CODES.has(causeCode) ? causeCode : code };
  }
  // XML parse errors of a cut response come without a status: treat as a transport failure.
  if (/Deserialization|XML|Unexpected end|parse/i.test(String((e as Error)?.message))) return { kind: 'network', retryable: true, status, code };
  return { kind: 'client', retryable: false, status, code };
}

/** Full-jitter exponential backoff for retry number `attempt` (1 = first retry). */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeilingMs(attempt, baseMs, capMs));
}

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitOptions {
  /** Consecutive failed attempts that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long an open circuit refuses requests before letting one probe through (default 5 s). */
  cooldownMs?: number;
  /** Cap for the cooldown, which doubles after each failed probe (default 60 s). */
  maxCooldownMs?: number;
  onChange?: (state: CircuitState) => void;
  now?: () => number;
}

/**
 * Closed: everything passes; N consecutive endpoint failures open it. Open: requests fail at once
 * until the cooldown has passed, then one probe request is let through (half-open). The probe's
 * success closes the circuit; its failure re-opens it with a doubled cooldown.
 */
export class CircuitBreaker {
  private st: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private cooldown: number;
  private probeInFlight = false;
  private readonly threshold: number;
  private readonly baseCooldown: number;
  private readonly maxCooldown: number;
  private readonly onChange: ((s: CircuitState) => void) | undefined;
  private readonly now: () => number;

  constructor(o: CircuitOptions = {}) {
    this.threshold = Math.max(1, o.failureThreshold ?? 5);
    this.baseCooldown = this.cooldown = Math.max(1, o.cooldownMs ?? 5000);
    this.maxCooldown = Math.max(this.baseCooldown, o.maxCooldownMs ?? 60_000);
    this.onChange = o.onChange;
    this.now = o.now ?? Date.now;
  }

  get state(): CircuitState {
    return this.st;
  }

  private set(s: CircuitState): void {
    if (s === this.st) return;
    this.st = s;
    this.onChange?.(s);
  }

  /** May a request go out now? In half-open state only the single probe may. */
  allow(): boolean {
    if (this.st === 'closed') return true;
    if (this.st === 'open') {
      if (this.now() - this.openedAt < this.cooldown) return false;
      this.set('half-open');
    }
    if (this.probeInFlight) return false;
    this.probeInFlight = true;
    return true;
  }

  /** The endpoint answered (any HTTP answer that is not a server failure counts). */
  success(): void {
    this.failures = 0;
    this.probeInFlight = false;
    this.cooldown = this.baseCooldown;
    this.set('closed');
  }

  /** A transport failure, timeout or 5xx. */
  failure(): void {
    this.failures++;
    if (this.st === 'half-open') {
      this.probeInFlight = false;
      this.cooldown = Math.min(this.maxCooldown, this.cooldown * 2);
      this.openedAt = this.now();
      this.set('open');
      return;
    }
    if (this.st === 'closed' && this.failures >= this.threshold) {
      this.openedAt = this.now();
      this.set('open');
    }
  }

  /** A request that went out as the probe ended without a verdict (e.g. throttled). */
  release(): void {
    this.probeInFlight = false;
  }

  /** Milliseconds until an open circuit lets a probe through (0 when not open). */
  retryInMs(): number {
    return this.st === 'open' ? Math.max(0, this.cooldown - (this.now() - this.openedAt)) : 0;
  }
}

/** The error surfaced when an S3 request finally fails. */
export function failureError(c: Classified, op: string, cause: unknown, path?: string): VfsError {
  const detail = `S3 ${op} failed: ${c.code}${c.status !== undefined ? ` (HTTP ${c.status})` : ''}`;
  const opts = path === undefined ? { cause } : { path, cause };
  if (c.kind === 'timeout') return new VfsError('ETIMEDOUT', detail, opts);
  if (c.status === 403) return new VfsError('EACCES', detail, opts);
  return new VfsError('EIO', detail, opts);
}
