/**
 * PutObject and HeadObject without the AWS SDK's request pipeline: the two requests every small
 * write costs (the PUT, then the HEAD for its LastModified), built, signed (SigV4) and parsed here
 * over the transport's own keep-alive agent. The SDK spends most of a small request's client CPU on
 * its middleware stack (endpoint rules, schema serde, user agent, checksum and S3 body-inspection
 * middleware, a fresh HMAC chain per signature); here a request is one header object, one SHA-256
 * of the canonical request and one HMAC with a signing key cached per day, region and credentials.
 *
 * Everything around a request stays with the transport (transport.ts `run`): retries, timeouts
 * (the attempt's abort signal destroys the request), the circuit breaker, metrics. Failures are
 * shaped as the SDK shapes them - an HTTP answer is an Error with `name`/`Code` from the XML error
 * body (`NotFound` for a bodiless 404) and `$metadata.httpStatusCode`; a connection failure is
 * Node's own error (its `code`) - so retry.ts classifies both paths alike and the error mapping is
 * unchanged.
 *
 * Credentials come from the SDK client's resolved provider (the standard chain, memoized and
 * refreshed by the SDK), its clock-skew correction is applied, and the addressing is the SDK's for
 * an explicit endpoint: path style `endpoint/bucket/key`, virtual-hosted `bucket.host/key`. Only
 * used with an explicit endpoint; AWS's own endpoints (FIPS, dual-stack, S3 Express and the rest
 * of the SDK's endpoint rules) keep the SDK for every request.
 */
import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

export interface DirectCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface DirectOptions {
  endpoint: string;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  agent: http.Agent;
  credentials: () => Promise<DirectCredentials>;
  /**
   * Milliseconds added to the local clock when signing: the SDK's systemClockOffset, shared both
   * ways (an error answer whose Date is 5 min or more away from ours corrects it, as the SDK does).
   */
  clock?: { get(): number; set(ms: number): void };
  /** Over TLS: PutObject bodies go with x-amz-content-sha256: UNSIGNED-PAYLOAD. */
  unsignedPayload: boolean;
}

export interface DirectHead {
  size: number;
  etag: string;
  lastModified: Date | undefined;
  meta: Record<string, string>;
  contentType: string | undefined;
}

/** An S3 error answer, shaped like the SDK's service exceptions. */
export class S3AnswerError extends Error {
  readonly Code: string;
  readonly $metadata: { httpStatusCode: number; requestId?: string | undefined };
  readonly $fault: 'client' | 'server';
  constructor(status: number, code: string, message: string, requestId: string | undefined) {
    super(message || code);
    this.name = code;
    this.Code = code;
    this.$metadata = { httpStatusCode: status, ...(requestId !== undefined ? { requestId } : {}) };
    this.$fault = status >= 500 ? 'server' : 'client';
  }
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Largest error body read (an S3 error document is well under 1 KiB). */
const MAX_ERROR_BODY = 64 * 1024;

/** Status texts the SDK gives bodiless answers (HEAD has no error body). */
const BODILESS_CODES: Record<number, string> = { 301: 'MovedPermanently', 304: 'NotModified', 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed', 412: 'PreconditionFailed', 501: 'NotImplemented', 503: 'ServiceUnavailable' };

export class DirectRequests {
  private readonly o: DirectOptions;
  private readonly mod: typeof http | typeof https;
  private readonly hostname: string;
  private readonly port: number | undefined;
  /** Host header (with a non-default port). */
  private readonly host: string;
  /** Path before the key, with a trailing '/': "/bucket/" (path style) or "/" (+ any endpoint path). */
  private readonly basePath: string;
  private signingKey: { scope: string; accessKeyId: string; secret: string; key: KeyObject } | undefined;
  /** Test hook: sees (and may change) where each request connects; the signed Host header stays. */
  onRequest: ((req: { hostname: string; path: string }) => void) | undefined;

  constructor(o: DirectOptions) {
    this.o = o;
    const u = new URL(o.endpoint);
    this.mod = u.protocol === 'https:' ? https : http;
    const vhost = !o.forcePathStyle;
    // URL keeps an IPv6 literal's brackets: the Host header wants them, the connection not.
    this.hostname = (vhost ? `${o.bucket}.` : '') + u.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = u.port === '' ? undefined : Number(u.port);
    this.host = (vhost ? `${o.bucket}.` : '') + u.host;
    const prefix = u.pathname.replace(/\/+$/, '');
    this.basePath = `${prefix}/${vhost ? '' : `${encodeSegment(o.bucket)}/`}`;
  }

  /**
   * Whether these requests can stand in for the SDK's on this endpoint: http(s) with an explicit
   * endpoint, and a bucket name the SDK would put in the host name when virtual-hosted (it falls
   * back to path style for others; so do we, by leaving them to it).
   */
  static usable(endpoint: string | undefined, bucket: string, forcePathStyle: boolean): endpoint is string {
    if (endpoint === undefined) return false;
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      return false;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
    if (u.search !== '' || u.username !== '' || u.password !== '') return false;
    return forcePathStyle || /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
  }

  /** PutObject of a whole body; resolves with the ETag. */
  async put(key: string, body: Buffer, meta: Record<string, string>, o: { contentType?: string | undefined; ifNoneMatch?: boolean }, signal: AbortSignal): Promise<string> {
    const headers: Record<string, string> = {
      'content-length': String(body.length),
      'content-type': o.contentType ?? 'application/octet-stream',
    };
    if (o.ifNoneMatch === true) headers['if-none-match'] = '*';
    for (const k in meta) headers[`x-amz-meta-${k.toLowerCase()}`] = String(meta[k]);
    const payloadHash = this.o.unsignedPayload ? 'UNSIGNED-PAYLOAD' : createHash('sha256').update(body).digest('hex');
    const res = await this.send('PUT', key, headers, payloadHash, body, signal);
    const text = await readBody(res, signal);
    if (res.statusCode !== 200 || /<Error>/.test(text)) throw this.failed(res, text);
    const etag = res.headers.etag;
    return typeof etag === 'string' ? etag : '';
  }

  /** HeadObject: the object's head, or an S3AnswerError (404 NotFound when missing). */
  async head(key: string, signal: AbortSignal): Promise<DirectHead> {
    const res = await this.send('HEAD', key, {}, EMPTY_SHA256, undefined, signal);
    res.resume();
    if (res.statusCode !== 200) throw this.failed(res, '');
    const h = res.headers;
    const meta: Record<string, string> = {};
    for (const name in h) {
      if (name.startsWith('x-amz-meta-')) {
        const v = h[name];
        meta[name.slice(11)] = Array.isArray(v) ? v.join(', ') : String(v);
      }
    }
    const lm = h['last-modified'];
    const date = lm === undefined ? undefined : new Date(lm);
    return {
      size: Number(h['content-length'] ?? 0),
      etag: h.etag ?? '',
      lastModified: date === undefined || Number.isNaN(date.getTime()) ? undefined : date,
      meta,
      contentType: h['content-type'],
    };
  }

  private async send(method: string, key: string, headers: Record<string, string>, payloadHash: string, body: Buffer | undefined, signal: AbortSignal): Promise<http.IncomingMessage> {
    signal.throwIfAborted();
    const creds = await this.o.credentials();
    signal.throwIfAborted();
    const path = this.basePath + encodeKey(key);
    const now = new Date(Date.now() + (this.o.clock?.get() ?? 0));
    headers.host = this.host;
    signV4(method, path, headers, payloadHash, creds, this.o.region, now, (scope, day) => this.key(scope, day, creds));
    const target = { hostname: this.hostname, path };
    this.onRequest?.(target);
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = this.mod.request({
        method, hostname: target.hostname, ...(this.port !== undefined ? { port: this.port } : {}), path: target.path,
        headers, agent: this.o.agent as https.Agent, signal,
      }, resolve);
      req.once('error', reject);
      req.end(body);
    });
  }

  /**
   * The error for an answer; first, a server Date 5 min or more away from our (corrected) clock
   * corrects it for the next requests (RequestTimeTooSkewed is not retried here, as in the SDK path).
   */
  private failed(res: http.IncomingMessage, text: string): S3AnswerError {
    const date = res.headers.date;
    const clock = this.o.clock;
    if (clock !== undefined && date !== undefined) {
      const server = Date.parse(date);
      if (!Number.isNaN(server) && Math.abs(Date.now() + clock.get() - server) >= 300_000) clock.set(server - Date.now());
    }
    return answerError(res, text);
  }

  /** kSigning for (day, region, s3), derived once per day and credentials. */
  private key(scope: string, day: string, c: DirectCredentials): KeyObject {
    const k = this.signingKey;
    if (k !== undefined && k.scope === scope && k.accessKeyId === c.accessKeyId && k.secret === c.secretAccessKey) return k.key;
    // A KeyObject: an HMAC keyed by one costs about 2 µs here, by a Buffer about 14 µs (Node
    // inspects a Buffer key on every createHmac).
    const key = createSecretKey(signingKey(c.secretAccessKey, day, this.o.region));
    this.signingKey = { scope, accessKeyId: c.accessKeyId, secret: c.secretAccessKey, key };
    return key;
  }
}

/** SigV4 kSigning of one day and region for S3. */
export function signingKey(secret: string, day: string, region: string): Buffer {
  const kDate = createHmac('sha256', `AWS4${secret}`).update(day).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update('s3').digest();
  return createHmac('sha256', kService).update('aws4_request').digest();
}

/**
 * Signs a request in place (SigV4, header form, as the SDK signs S3 requests): adds x-amz-date,
 * x-amz-content-sha256, x-amz-security-token (with a session token) and authorization. `headers`
 * has lowercase names and includes host; `path` is already URI-encoded (S3 does not encode it twice)
 * and carries no query. Every header given is signed.
 */
export function signV4(
  method: string, path: string, headers: Record<string, string>, payloadHash: string, creds: DirectCredentials, region: string, now: Date,
  key: (scope: string, day: string) => Buffer | KeyObject = (_s, day) => signingKey(creds.secretAccessKey, day, region),
): void {
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  headers['x-amz-content-sha256'] = payloadHash;
  headers['x-amz-date'] = amzDate;
  if (creds.sessionToken !== undefined && creds.sessionToken !== '') headers['x-amz-security-token'] = creds.sessionToken;
  const names = Object.keys(headers).sort();
  let canonicalHeaders = '';
  for (const n of names) canonicalHeaders += `${n}:${(headers[n] as string).trim().replace(/\s+/g, ' ')}\n`;
  const signed = names.join(';');
  const canonical = `${method}\n${path}\n\n${canonicalHeaders}\n${signed}\n${payloadHash}`;
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const signature = createHmac('sha256', key(scope, day)).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
}

/** The response body as text, at most MAX_ERROR_BODY bytes kept (the rest is drained). */
function readBody(res: http.IncomingMessage, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onAbort = (): void => {
      res.destroy(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    res.on('data', (c: Buffer) => {
      if (n < MAX_ERROR_BODY) chunks.push(c);
      n += c.length;
    });
    res.once('end', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(chunks.length === 0 ? '' : Buffer.concat(chunks).toString('utf8'));
    });
    res.once('error', (e) => {
      signal.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

function xmlField(text: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(text);
  return m === null ? undefined : unescapeXml(m[1] as string);
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|amp|quot|apos);/g, (_m, e: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" } as Record<string, string>)[e] as string);
}

function answerError(res: http.IncomingMessage, text: string): S3AnswerError {
  // A 200 carrying an error document (S3 may answer so once it has begun): a server error.
  const status = res.statusCode === 200 ? 500 : res.statusCode ?? 0;
  const code = xmlField(text, 'Code') ?? BODILESS_CODES[status] ?? String(status);
  const rid = res.headers['x-amz-request-id'];
  return new S3AnswerError(status, code, xmlField(text, 'Message') ?? '', typeof rid === 'string' ? rid : undefined);
}

/** A key as a URL path: each segment percent-encoded as SigV4 wants it for S3 (RFC 3986 unreserved kept), '/' kept. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeSegment).join('/');
}

function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${(c.codePointAt(0) as number).toString(16).toUpperCase()}`);
}
