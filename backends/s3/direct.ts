/**
 * PutObject, HeadObject, GetObject and ListObjectsV2 without the AWS SDK's request pipeline (the
 * requests every small write, read and listing costs), built, signed (SigV4) and parsed here over
 * the transport's own keep-alive agent. The SDK spends most of a small request's client CPU on
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
import { isIP } from 'node:net';
import { TruncatedBodyError } from './retry.ts';

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

export interface DirectListPage {
  keys: { key: string; size: number; etag: string; lastModified: Date | undefined }[];
  prefixes: string[];
  truncated: boolean;
  token: string | undefined;
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
/** Largest listing page read (1,000 keys of 1,024 bytes, each character escaped, fit). */
const MAX_LIST_BODY = 64 * 1024 * 1024;

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
  /** Path of the bucket itself (ListObjectsV2): "/bucket" (path style) or "/" (+ any endpoint path). */
  private readonly bucketPath: string;
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
    this.bucketPath = vhost ? `${prefix}/` : `${prefix}/${encodeSegment(o.bucket)}`;
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
    if (forcePathStyle) return true;
    // Virtual-hosted: an IP endpoint has no host names to put the bucket in (the SDK's rules
    // decide what to do then), nor has a bucket name that is not a DNS label.
    return isIP(u.hostname.replace(/^\[(.*)\]$/, '$1')) === 0 && /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
  }

  /**
   * PutObject of a whole body; resolves with the ETag and the answer's Date (the store's clock,
   * whole seconds; undefined when absent or unreadable).
   */
  async put(key: string, body: Buffer, meta: Record<string, string>, o: { contentType?: string | undefined; ifNoneMatch?: boolean }, signal: AbortSignal): Promise<{ etag: string; date: Date | undefined }> {
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
    const date = res.headers.date === undefined ? undefined : new Date(res.headers.date);
    return { etag: typeof etag === 'string' ? etag : '', date: date === undefined || Number.isNaN(date.getTime()) ? undefined : date };
  }

  /** HeadObject: the object's head, or an S3AnswerError (404 NotFound when missing). */
  async head(key: string, signal: AbortSignal): Promise<DirectHead> {
    const res = await this.send('HEAD', key, {}, EMPTY_SHA256, undefined, signal);
    res.resume();
    if (res.statusCode !== 200) throw this.failed(res, '');
    return headOf(res.headers, Number(res.headers['content-length'] ?? 0));
  }

  /**
   * GetObject, whole or of `range` (an HTTP Range value, "bytes=first-last"; signed like every
   * header). Resolves on a 200 or 206 with the response itself: its body is the object's bytes as
   * Node's HTTP client hands them over (no wrapper stream, no copy); the caller reads or destroys
   * it (the attempt's abort signal destroys it too). Any other status is an S3AnswerError (its
   * error body read, at most 64 KiB). No conditional headers: as on the SDK path, the caller
   * checks the answer's ETag itself (an If-Match 412 would cost a second request to learn the new
   * version, which the ETag of the answer tells at once).
   */
  async get(key: string, range: string | undefined, signal: AbortSignal): Promise<http.IncomingMessage> {
    const res = await this.send('GET', key, range === undefined ? {} : { range }, EMPTY_SHA256, undefined, signal);
    if (res.statusCode === 200 || res.statusCode === 206) return res;
    throw this.failed(res, await readBody(res, signal));
  }

  /**
   * ListObjectsV2 (one page). The answer is read whole (at most MAX_LIST_BODY bytes) and must be a
   * complete ListBucketResult document: a cut or garbled one is a TruncatedBodyError (retried).
   */
  async list(prefix: string, o: { delimiter?: string | undefined; startAfter?: string | undefined; token?: string | undefined; maxKeys: number }, signal: AbortSignal): Promise<DirectListPage> {
    const params: [string, string][] = [['list-type', '2'], ['max-keys', String(o.maxKeys)], ['prefix', prefix]];
    if (o.delimiter !== undefined) params.push(['delimiter', o.delimiter]);
    if (o.token !== undefined) params.push(['continuation-token', o.token]);
    else if (o.startAfter !== undefined) params.push(['start-after', o.startAfter]);
    const res = await this.send('GET', undefined, {}, EMPTY_SHA256, undefined, signal, canonicalQuery(params));
    const text = await readBody(res, signal, MAX_LIST_BODY);
    if (res.statusCode !== 200) throw this.failed(res, text);
    return parseListPage(text);
  }

  /** `key` undefined: the bucket itself (`query`: its canonical query string). */
  private async send(method: string, key: string | undefined, headers: Record<string, string>, payloadHash: string, body: Buffer | undefined, signal: AbortSignal, query = ''): Promise<http.IncomingMessage> {
    signal.throwIfAborted();
    const creds = await this.o.credentials();
    signal.throwIfAborted();
    const path = key === undefined ? this.bucketPath : this.basePath + encodeKey(key);
    const now = new Date(Date.now() + (this.o.clock?.get() ?? 0));
    headers.host = this.host;
    signV4(method, path, headers, payloadHash, creds, this.o.region, now, (scope, day) => this.key(scope, day, creds), query);
    const target = { hostname: this.hostname, path: query === '' ? path : `${path}?${query}` };
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
 * and carries no query; `query` is the canonical query string (canonicalQuery). Every header given
 * is signed.
 */
export function signV4(
  method: string, path: string, headers: Record<string, string>, payloadHash: string, creds: DirectCredentials, region: string, now: Date,
  key: (scope: string, day: string) => Buffer | KeyObject = (_s, day) => signingKey(creds.secretAccessKey, day, region),
  query = '',
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
  const canonical = `${method}\n${path}\n${query}\n${canonicalHeaders}\n${signed}\n${payloadHash}`;
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const signature = createHmac('sha256', key(scope, day)).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
}

/** The response body as text, at most `limit` bytes kept (the rest is drained; a longer body is cut). */
function readBody(res: http.IncomingMessage, signal: AbortSignal, limit = MAX_ERROR_BODY): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onAbort = (): void => {
      res.destroy(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    res.on('data', (c: Buffer) => {
      if (n < limit) chunks.push(c);
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

/**
 * What a HEAD (or a GET's answer) tells about an object: `size` is the object's whole size (the
 * caller takes it from Content-Length or a GET's Content-Range).
 */
export function headOf(h: http.IncomingHttpHeaders, size: number): DirectHead {
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
    size,
    etag: h.etag ?? '',
    lastModified: date === undefined || Number.isNaN(date.getTime()) ? undefined : date,
    meta,
    contentType: h['content-type'],
  };
}

const FIELD_RES = new Map<string, RegExp>();

function xmlField(text: string, name: string): string | undefined {
  let re = FIELD_RES.get(name);
  if (re === undefined) FIELD_RES.set(name, re = new RegExp(`<${name}>([^<]*)</${name}>`));
  const m = re.exec(text);
  return m === null ? undefined : unescapeXml(m[1] as string);
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  if (s.indexOf('&') < 0) return s;
  return s.replace(/&(lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});/g, (whole, e: string) => {
    if (e[0] !== '#') return NAMED_ENTITIES[e] as string;
    const cp = e[1] === 'x' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : whole;
  });
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

/** SigV4's canonical query string: names and values RFC 3986-encoded, sorted by name then value. */
export function canonicalQuery(params: readonly [string, string][]): string {
  return params.map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`).sort().join('&');
}

/**
 * A ListObjectsV2 answer (ListBucketResult): Contents (Key, LastModified, ETag, Size),
 * CommonPrefixes, IsTruncated, NextContinuationToken. Anything short of a whole document (a body
 * cut at a clean boundary, another document) is a TruncatedBodyError, as the SDK path treats an XML
 * it cannot parse: retried.
 */
export function parseListPage(text: string): DirectListPage {
  const end = text.lastIndexOf('</ListBucketResult>');
  if (text.indexOf('<ListBucketResult') < 0 || end < 0 || text.slice(end + 19).trim() !== '') {
    throw new TruncatedBodyError('ListObjectsV2: the answer is not a whole ListBucketResult document');
  }
  const keys: DirectListPage['keys'] = [];
  const prefixes: string[] = [];
  let truncated = false;
  let token: string | undefined;
  // Elements of the document's top level, in order; Contents and CommonPrefixes hold no nesting
  // beyond one level (Owner, ChecksumAlgorithm... are skipped).
  const top = /<(Contents|CommonPrefixes)>([\s\S]*?)<\/\1>|<(IsTruncated|NextContinuationToken)>([^<]*)<\/\3>/g;
  for (let m = top.exec(text); m !== null; m = top.exec(text)) {
    if (m[1] === 'Contents') {
      const body = m[2] as string;
      const key = xmlField(body, 'Key');
      if (key === undefined) throw new TruncatedBodyError('ListObjectsV2: a Contents entry without a Key');
      const lm = xmlField(body, 'LastModified');
      const date = lm === undefined ? undefined : new Date(lm);
      keys.push({
        key,
        size: Number(xmlField(body, 'Size') ?? 0),
        etag: xmlField(body, 'ETag') ?? '',
        lastModified: date === undefined || Number.isNaN(date.getTime()) ? undefined : date,
      });
    } else if (m[1] === 'CommonPrefixes') {
      const p = xmlField(m[2] as string, 'Prefix');
      if (p !== undefined && p !== '') prefixes.push(p);
    } else if (m[3] === 'IsTruncated') truncated = (m[4] as string).trim() === 'true';
    else token = unescapeXml(m[4] as string);
  }
  return { keys, prefixes, truncated, token: token === '' ? undefined : token };
}
