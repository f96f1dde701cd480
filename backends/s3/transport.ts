/**
 * Every S3 request of the backend goes through here: the SDK client with its own retries switched
 * off, and in their place bounded retries with backoff and jitter, a timeout per attempt (covering
 * the response body too, so a stalled download is noticed), a circuit breaker for the endpoint,
 * metrics per request, and exact length checks on downloaded bodies.
 *
 * The SDK's default request checksums are switched to "when required": with them on, streaming
 * uploads are sent aws-chunked with trailing checksums, which many S3-compatible stores reject.
 *
 * Optional APIs (features.ts): a store's 501 / NotImplemented answer fails the request with
 * ENOTSUP and never counts against the circuit; the methods using an optional API switch the
 * feature off at the first such answer and degrade (listUploads reports it, abortUpload stops
 * sending aborts, uploadPartCopy streams the range through the gateway, put/completeUpload drop
 * If-None-Match, copy drops x-amz-copy-source-if-match).
 *
 * TLS: `ca` (share option tls.ca, config s3.tls.ca, or AWS_CA_BUNDLE as the AWS CLI and the other
 * SDKs honour it; this SDK does not) replaces the default trust store for an https endpoint, as a
 * CA bundle does for the AWS CLI. An untrusted certificate fails at once with a message naming them.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { PassThrough, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client, UploadPartCommand, UploadPartCopyCommand, type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { VfsError } from '../../src/vfs/errors.ts';
import { DirectRequests, headOf } from './direct.ts';
import { StoreFeatures } from './features.ts';
import type { ObjectHead } from './keys.ts';
import {
  CircuitBreaker, RequestTimeoutError, TruncatedBodyError, backoffMs, classify, failureError, httpStatusOf,
  type CircuitOptions,
} from './retry.ts';
import type { S3Meters } from './s3-metrics.ts';

export interface TransportOptions {
  bucket: string;
  region: string;
  endpoint?: string | undefined;
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** Attempts per request, the first included (default 5). */
  maxAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Timeout of one attempt without a body (default 30 s). */
  requestTimeoutMs?: number;
  /** Bodies get extra time at this rate (default 1 MiB/s): a 4 MiB block may take 4 s longer. */
  minThroughputBytesPerSec?: number;
  maxSockets?: number;
  circuit?: CircuitOptions;
  /** PEM certificate(s) trusted for an https endpoint instead of Node's default roots. */
  ca?: string | undefined;
  /** Where `ca` came from (for messages): a file path and the setting that named it. */
  caSource?: string | undefined;
  /** Optional APIs of the store (default: all assumed present, nothing logged or counted). */
  features?: StoreFeatures;
}

/** The object changed under a reader: a GET answered with another ETag than expected. */
export class EtagChangedError extends Error {
  readonly etag: string;
  readonly size: number;
  constructor(etag: string, size: number) {
    super('object changed (ETag differs)');
    this.name = 'EtagChangedError';
    this.etag = etag;
    this.size = size;
  }
}

export interface ListResult {
  keys: { key: string; size: number; etag: string; lastModified: Date | undefined }[];
  prefixes: string[];
  truncated: boolean;
  token: string | undefined;
}

export interface UploadInfo {
  key: string;
  uploadId: string;
  initiated: Date | undefined;
}

/** The clock of one attempt: its timeout does not run while the caller waits for itself. */
export interface AttemptClock {
  /** Stops the attempt's timeout (we are holding the response back, not the store). */
  hold(): void;
  /** Starts it again with the time that was left. */
  resume(): void;
}

interface RunOptions {
  /** Payload bytes (extends the timeout). */
  bytes?: number;
  /** Extra time on top of the timeout (server-side work such as assembling a multipart object). */
  extraMs?: number;
  path?: string | undefined;
}

/** Assumed slowest rate at which a store assembles a multipart object at completion. */
const ASSEMBLY_BYTES_PER_SEC = 10 * 1024 * 1024;

const MiB = 1024 * 1024;

export class S3Transport {
  readonly client: S3Client;
  /**
   * PutObject, HeadObject, GetObject and ListObjectsV2 without the SDK's pipeline (direct.ts), with an explicit endpoint;
   * undefined: every request goes through the SDK.
   */
  readonly direct: DirectRequests | undefined;
  readonly bucket: string;
  readonly breaker: CircuitBreaker;
  readonly features: StoreFeatures;
  /** The endpoint as configured (undefined = AWS), for messages. */
  readonly endpoint: string | undefined;
  private readonly caSource: string | undefined;
  private readonly meters: S3Meters;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly timeoutMs: number;
  private readonly throughput: number;
  private readonly agent: http.Agent;
  private closed = false;
  private readonly sleepers = new Set<() => void>();
  /** Attempts in flight, aborted by close(). */
  private readonly attempts = new Set<AbortController>();
  /** key + ETag -> size of multipart objects just completed here, for the check after it (takeCompletedSize). */
  private readonly completed = new Map<string, number>();

  constructor(o: TransportOptions, meters: S3Meters) {
    this.bucket = o.bucket;
    this.meters = meters;
    this.maxAttempts = Math.max(1, o.maxAttempts ?? 5);
    this.retryBaseMs = o.retryBaseMs ?? 100;
    this.retryMaxMs = o.retryMaxMs ?? 5000;
    this.timeoutMs = o.requestTimeoutMs ?? 30_000;
    this.throughput = o.minThroughputBytesPerSec ?? MiB;
    const maxSockets = o.maxSockets ?? 64;
    const secure = o.endpoint === undefined || o.endpoint.startsWith('https:');
    this.endpoint = o.endpoint;
    this.caSource = o.ca !== undefined ? o.caSource : undefined;
    this.features = o.features ?? new StoreFeatures({ label: o.bucket });
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets, ...(o.ca !== undefined ? { ca: o.ca } : {}) })
      : new http.Agent({ keepAlive: true, maxSockets });
    this.breaker = new CircuitBreaker({ ...o.circuit, onChange: (s) => {
      meters.circuit(s);
      o.circuit?.onChange?.(s);
    } });
    this.client = new S3Client({
      region: o.region,
      ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle,
      ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: secure ? { httpsAgent: this.agent as https.Agent } : { httpAgent: this.agent },
    });
    const client = this.client;
    this.direct = DirectRequests.usable(o.endpoint, o.bucket, o.forcePathStyle)
      ? new DirectRequests({
        endpoint: o.endpoint, bucket: o.bucket, region: o.region, forcePathStyle: o.forcePathStyle, agent: this.agent,
        credentials: () => client.config.credentials(),
        clock: {
          get: () => client.config.systemClockOffset ?? 0,
          set: (ms) => {
            client.config.systemClockOffset = ms;
          },
        },
        unsignedPayload: secure,
      })
      : undefined;
    // Over TLS, uploaded bodies are sent with an unsigned payload (x-amz-content-sha256:
    // UNSIGNED-PAYLOAD, as AWS documents it for SigV4): TLS already protects them, and the SDK
    // would otherwise hash every uploaded byte with SHA-256 on the event loop before sending it
    // (a CPU profile of a 64 MiB WebDAV PUT: 171 ms in that hash, 92 ms copying into parts). Plain http
    // keeps the signed payload: there it is the body's only integrity check.
    if (secure) {
      this.client.middlewareStack.add((next, context) => async (args) => {
        const req = args.request as { headers?: Record<string, string> } | undefined;
        if ((context.commandName === 'PutObjectCommand' || context.commandName === 'UploadPartCommand') && req?.headers !== undefined) {
          req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      }, { step: 'build', name: 'porticoUnsignedPayload' });
    }
  }

  /**
   * One logical request: attempts `fn` until it succeeds, fails with an answer (4xx), or runs out
   * of attempts. The circuit breaker sees every attempt; an open circuit fails at once.
   */
  async run<T>(op: string, fn: (signal: AbortSignal, clock: AttemptClock) => Promise<T>, o: RunOptions = {}): Promise<T> {
    const timeout = this.timeoutMs + Math.ceil(((o.bytes ?? 0) / this.throughput) * 1000) + (o.extraMs ?? 0);
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new VfsError('EIO', 'S3 backend closed', o.path === undefined ? {} : { path: o.path });
      if (!this.breaker.allow()) {
        throw new VfsError('EIO', `S3 endpoint unavailable (circuit open, retry in ${this.breaker.retryInMs()} ms)`, o.path === undefined ? {} : { path: o.path });
      }
      const ac = new AbortController();
      let deadline = performance.now() + timeout;
      let heldAt: number | undefined;
      const expire = (): void => ac.abort(new RequestTimeoutError(timeout));
      let timer = setTimeout(expire, timeout);
      const clock: AttemptClock = {
        hold: () => {
          if (heldAt !== undefined) return;
          heldAt = performance.now();
          clearTimeout(timer);
        },
        resume: () => {
          if (heldAt === undefined) return;
          deadline += performance.now() - heldAt;
          heldAt = undefined;
          timer = setTimeout(expire, Math.max(0, deadline - performance.now()));
        },
      };
      this.attempts.add(ac);
      const t0 = performance.now();
      try {
        const r = await fn(ac.signal, clock);
        this.meters.request(op, 'ok', (performance.now() - t0) / 1000);
        this.breaker.success();
        return r;
      } catch (e) {
        if (e instanceof EtagChangedError) {
          this.meters.request(op, 'ok', (performance.now() - t0) / 1000);
          this.breaker.success();
          throw e;
        }
        const timedOut = ac.signal.aborted && ac.signal.reason instanceof RequestTimeoutError;
        const c = classify(e, timedOut);
        this.meters.request(op, c.status !== undefined ? String(c.status) : c.kind === 'timeout' ? 'timeout' : 'network', (performance.now() - t0) / 1000);
        // 4xx and 501 are answers (the endpoint is alive); an untrusted certificate says nothing
        // about the endpoint's health either, and retrying it cannot help.
        if (c.kind === 'client' || c.kind === 'unsupported') this.breaker.success();
        else if (c.kind === 'throttle' || c.kind === 'tls') this.breaker.release();
        else this.breaker.failure();
        if (c.kind === 'tls') throw this.tlsError(c.code, op, e, o.path);
        if (c.kind === 'unsupported') {
          throw new VfsError('ENOTSUP', `S3 ${op}: the store does not implement it (${c.code}${c.status !== undefined ? `, HTTP ${c.status}` : ''})`, o.path === undefined ? { cause: e } : { path: o.path, cause: e });
        }
        if (!c.retryable) throw clientError(c.status, op, e, o.path);
        if (attempt >= this.maxAttempts || this.closed) throw failureError(c, op, e, o.path);
        this.meters.retry(op, c.kind === 'throttle' || c.kind === 'server' ? String(c.status ?? c.code) : c.kind);
        await this.sleep(backoffMs(attempt, this.retryBaseMs, this.retryMaxMs));
      } finally {
        clearTimeout(timer);
        this.attempts.delete(ac);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  async head(key: string, path?: string): Promise<ObjectHead | undefined> {
    try {
      return await this.run('HeadObject', async (signal) => {
        if (this.direct !== undefined) return this.direct.head(key, signal);
        const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
        return {
          size: r.ContentLength ?? 0,
          etag: r.ETag ?? '',
          lastModified: r.LastModified,
          meta: lowerKeys(r.Metadata),
          contentType: r.ContentType,
        };
      }, { path });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * Bytes [start, end) of an object. The body must be exactly end - start bytes (a cut body is a
   * retryable failure), and the response's ETag must be `etag` when one is given.
   */
  async getRange(key: string, start: number, end: number, etag: string | undefined, path?: string): Promise<Buffer> {
    return (await this.getPieces(key, start, end, end - start, etag, path))[0] as Buffer;
  }

  /**
   * Like getRange, but the body lands in separate buffers of `piece` bytes (the last one shorter):
   * one GET for several cache blocks, each block still its own allocation.
   */
  async getPieces(key: string, start: number, end: number, piece: number, etag: string | undefined, path?: string): Promise<Buffer[]> {
    const out: Buffer[] = [];
    await this.getStream(key, start, end, piece, etag, path, (k, buf) => {
      out[k] = buf;
    });
    return out;
  }

  /**
   * Bytes [start, end) of an object with one ranged GET, handed over in pieces of `piece` bytes (the
   * last one shorter) the moment each piece is complete: `onPiece(k, buf)` for piece k, in order. A
   * reader waiting for the first block of a long read-ahead GET gets it after one block's worth of
   * transfer, not after the whole range, which is what lets read-ahead use few, large GETs (on this
   * SDK each GET costs the client several milliseconds of CPU, most of it in the garbage collection
   * it triggers: a 64 MiB GET costs about half as much CPU per byte as a 4 MiB one).
   *
   * A retry after a failure part-way through asks only for the pieces not delivered yet (they are
   * already in the caller's hands). The body must be exactly the bytes asked for, and the response's
   * ETag must be `etag` when one is given (EtagChangedError otherwise, also on a retry: pieces
   * delivered before it belong to the expected version). Each piece buffer comes from `alloc` (a
   * pool) when given, and is taken only when its first byte arrives, so a long GET does not hold
   * memory for bytes still on the wire. `onPiece` must not throw.
   *
   * `gate(k)`, when given, is asked before piece k starts: true goes on, false ends the GET there
   * (the call resolves; pieces from k on are not delivered), a promise holds the response back until
   * it settles - the body is not read meanwhile, so TCP flow control pauses the store - and the
   * attempt's timeout does not run while it waits. That lets read-ahead ask for long ranges (few
   * GETs) while only a bounded number of their bytes is in memory at any time.
   */
  async getStream(
    key: string, start: number, end: number, piece: number, etag: string | undefined, path: string | undefined,
    onPiece: (k: number, buf: Buffer) => void, alloc?: (size: number) => Buffer, gate?: (k: number) => boolean | Promise<boolean>,
  ): Promise<void> {
    let delivered = 0;
    await this.run('GetObject', async (signal, clock) => {
      const from = start + delivered * piece;
      const want = end - from;
      const r = await this.getObject(key, `bytes=${from}-${end - 1}`, signal);
      const body = r.Body;
      const detach = destroyOnAbort(body, signal);
      try {
        const total = totalFromRange(r.ContentRange) ?? r.ContentLength ?? 0;
        if (etag !== undefined && r.ETag !== undefined && r.ETag !== etag) {
          body?.destroy();
          throw new EtagChangedError(r.ETag, total);
        }
        if (r.ContentLength !== undefined && r.ContentLength !== want) {
          body?.destroy();
          // A shorter object than we believed is a changed object, not a transport fault.
          if (total < end) throw new EtagChangedError(r.ETag ?? '', total);
          throw new TruncatedBodyError(`Content-Length ${r.ContentLength}, expected ${want}`);
        }
        let cur: Buffer | undefined;
        let fill = 0;
        let got = 0;
        if (body !== undefined) {
          for await (const chunk of body as AsyncIterable<Buffer>) {
            if (got + chunk.length > want) throw new TruncatedBodyError('body longer than requested');
            got += chunk.length;
            for (let c = 0; c < chunk.length; ) {
              if (cur === undefined) {
                const size = Math.min(piece, end - (start + delivered * piece));
                // A whole piece inside this chunk, no pool to fill and no gate: the chunk's own
                // bytes, no copy - when the chunk does not pin a much larger buffer (a cache keeps
                // pieces for minutes, and counts only their length).
                if (alloc === undefined && gate === undefined && chunk.length - c >= size && chunk.buffer.byteLength <= 2 * size) {
                  const done = chunk.subarray(c, c + size);
                  c += size;
                  this.meters.bytes('in', size);
                  onPiece(delivered++, done);
                  continue;
                }
                let go = gate?.(delivered) ?? true;
                if (go instanceof Promise) {
                  clock.hold();
                  try {
                    go = await go;
                  } finally {
                    clock.resume();
                  }
                }
                if (!go) {
                  // Ended early by the caller: the rest is not wanted (now).
                  body.destroy();
                  return;
                }
                cur = alloc?.(size) ?? Buffer.allocUnsafe(size);
                fill = 0;
              }
              const n = Math.min(chunk.length - c, cur.length - fill);
              chunk.copy(cur, fill, c, c + n);
              c += n;
              fill += n;
              if (fill === cur.length) {
                const done = cur;
                cur = undefined;
                this.meters.bytes('in', done.length);
                onPiece(delivered++, done);
              }
            }
          }
        }
        if (got !== want) throw new TruncatedBodyError(`body ended after ${got} of ${want} bytes`);
      } finally {
        detach();
      }
    }, { bytes: end - start, path });
  }

  /**
   * One GetObject attempt (`range`: an HTTP Range value): the answer's length, range, ETag and
   * body. Direct (direct.ts) with an explicit endpoint: the body is Node's response stream itself;
   * else the SDK's GetObjectCommand.
   */
  private async getObject(key: string, range: string | undefined, signal: AbortSignal): Promise<GetAnswer> {
    if (this.direct !== undefined) {
      const res = await this.direct.get(key, range, signal);
      const h = res.headers;
      const cl = h['content-length'];
      return {
        ContentLength: cl === undefined ? undefined : Number(cl),
        ContentRange: h['content-range'],
        ETag: h.etag,
        Body: res,
        head: (size) => headOf(h, size),
      };
    }
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range !== undefined ? { Range: range } : {}) }), { abortSignal: signal });
    return {
      ContentLength: r.ContentLength,
      ContentRange: r.ContentRange,
      ETag: r.ETag,
      Body: r.Body as Readable | undefined,
      head: (size) => ({ size, etag: r.ETag ?? '', lastModified: r.LastModified, meta: lowerKeys(r.Metadata), contentType: r.ContentType }),
    };
  }

  /**
   * A GET that is also a lookup: bytes [start, end) of `key` (fewer when the object ends before
   * `end`) with what a HEAD would have told about the object (size from Content-Range, ETag,
   * LastModified, metadata, content type), from one request. Undefined when the key does not exist
   * (404); a range starting at or past the end of the object is a 416 (EINVAL, cause kept), for
   * the caller to ask with a HEAD instead. Retried as any GET; a body shorter or longer than the
   * answer's range is a TruncatedBodyError (retried).
   */
  async getWithHead(key: string, start: number, end: number, path?: string): Promise<{ head: ObjectHead; data: Buffer } | undefined> {
    try {
      return await this.run('GetObject', async (signal) => {
        const r = await this.getObject(key, `bytes=${start}-${end - 1}`, signal);
        const body = r.Body;
        const detach = destroyOnAbort(body, signal);
        try {
          const total = totalFromRange(r.ContentRange) ?? r.ContentLength ?? 0;
          if (total === 0) {
            // An empty object has no bytes to wait for (stock s3rver answers a range of one as
            // "bytes 0-0/0" with a Content-Length of 1 and no body; S3 itself a 416).
            body?.destroy();
            return { head: r.head(0), data: Buffer.alloc(0) };
          }
          const want = Math.min(end, total) - start;
          // A 200 to a ranged GET (a store that ignores Range) is the whole object: only usable
          // when that is what was asked for.
          if (r.ContentLength !== undefined && r.ContentLength !== want) {
            body?.destroy();
            throw new TruncatedBodyError(`Content-Length ${r.ContentLength}, expected ${want}`);
          }
          const chunks: Buffer[] = [];
          let got = 0;
          if (body !== undefined) {
            for await (const chunk of body as AsyncIterable<Buffer>) {
              got += chunk.length;
              if (got > want) throw new TruncatedBodyError('body longer than requested');
              chunks.push(chunk);
            }
          }
          if (got !== want) throw new TruncatedBodyError(`body ended after ${got} of ${want} bytes`);
          this.meters.bytes('in', got);
          // One chunk is the common case for a small object: no copy (see getStream on pinning).
          const data = chunks.length === 1 && (chunks[0] as Buffer).buffer.byteLength <= 2 * got ? chunks[0] as Buffer : Buffer.concat(chunks, got);
          return { head: r.head(total), data };
        } finally {
          detach();
        }
      }, { bytes: end - start, path });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * `onDate`: told the answer's Date (direct requests only; the SDK's output has none).
   * `ifNoneMatch`: create only (If-None-Match: *; a 412 when the key exists). A store that does not
   * implement the header (501) gets the PUT again without it, and conditionalWrites is switched off.
   */
  async put(key: string, body: Buffer, meta: Record<string, string>, o: { ifNoneMatch?: boolean; contentType?: string | undefined; path?: string; onDate?: (date: Date) => void } = {}): Promise<string> {
    const conditional = o.ifNoneMatch === true && this.features.has('conditionalWrites');
    const once = (ifNoneMatch: boolean): Promise<string> => this.run('PutObject', async (signal) => {
      if (this.direct !== undefined) {
        const r = await this.direct.put(key, body, meta, { contentType: o.contentType, ifNoneMatch }, signal);
        this.meters.bytes('out', body.length);
        if (r.date !== undefined) o.onDate?.(r.date);
        return r.etag;
      }
      const r = await this.client.send(new PutObjectCommand({
        Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, Metadata: meta,
        ...(o.contentType !== undefined ? { ContentType: o.contentType } : {}),
        ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      }), { abortSignal: signal });
      this.meters.bytes('out', body.length);
      return r.ETag ?? '';
    }, { bytes: body.length, path: o.path });
    try {
      return await once(conditional);
    } catch (e) {
      if (!conditional || !this.features.lacks('conditionalWrites', e)) throw e;
    }
    return once(false);
  }

  async list(prefix: string, o: { delimiter?: string; startAfter?: string | undefined; token?: string | undefined; maxKeys?: number }, path?: string): Promise<ListResult> {
    if (this.direct !== undefined) {
      const direct = this.direct;
      return this.run('ListObjectsV2', (signal) => direct.list(prefix, {
        delimiter: o.delimiter, token: o.token, startAfter: o.startAfter, maxKeys: o.maxKeys ?? 1000,
      }, signal), { path });
    }
    const r: ListObjectsV2CommandOutput = await this.run('ListObjectsV2', (signal) => this.client.send(new ListObjectsV2Command({
      Bucket: this.bucket, Prefix: prefix,
      ...(o.delimiter !== undefined ? { Delimiter: o.delimiter } : {}),
      ...(o.token !== undefined ? { ContinuationToken: o.token } : o.startAfter !== undefined ? { StartAfter: o.startAfter } : {}),
      MaxKeys: o.maxKeys ?? 1000,
    }), { abortSignal: signal }), { path });
    return {
      keys: (r.Contents ?? []).map((c) => ({ key: c.Key ?? '', size: c.Size ?? 0, etag: c.ETag ?? '', lastModified: c.LastModified })),
      prefixes: (r.CommonPrefixes ?? []).map((p) => p.Prefix ?? '').filter((p) => p !== ''),
      truncated: r.IsTruncated === true,
      token: r.NextContinuationToken,
    };
  }

  /** `ifMatch`: copy only from that version of the source (x-amz-copy-source-if-match), else 412. */
  async copy(src: string, dst: string, o: { meta?: Record<string, string>; contentType?: string | undefined; path?: string; ifMatch?: string | undefined }): Promise<string> {
    const pinned = o.ifMatch !== undefined && this.features.has('copyConditions');
    try {
      return await this.copyOnce(src, dst, o, pinned);
    } catch (e) {
      if (!pinned || !this.features.lacks('copyConditions', e)) throw e;
    }
    return this.copyOnce(src, dst, o, false);
  }

  private copyOnce(src: string, dst: string, o: { meta?: Record<string, string>; contentType?: string | undefined; path?: string; ifMatch?: string | undefined }, pinned: boolean): Promise<string> {
    return this.run('CopyObject', async (signal) => {
      const r = await this.client.send(new CopyObjectCommand({
        Bucket: this.bucket, Key: dst, CopySource: copySource(this.bucket, src),
        ...(pinned && o.ifMatch !== undefined ? { CopySourceIfMatch: o.ifMatch } : {}),
        ...(o.meta !== undefined ? { MetadataDirective: 'REPLACE', Metadata: o.meta } : {}),
        ...(o.meta !== undefined && o.contentType !== undefined ? { ContentType: o.contentType } : {}),
      }), { abortSignal: signal });
      return r.CopyObjectResult?.ETag ?? '';
    }, { path: o.path });
  }

  async delete(key: string, path?: string): Promise<void> {
    await this.run('DeleteObject', (signal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal }), { path });
  }

  async createUpload(key: string, meta: Record<string, string>, contentType: string | undefined, path?: string): Promise<string> {
    return this.run('CreateMultipartUpload', async (signal) => {
      const r = await this.client.send(new CreateMultipartUploadCommand({
        Bucket: this.bucket, Key: key, Metadata: meta, ...(contentType !== undefined ? { ContentType: contentType } : {}),
      }), { abortSignal: signal });
      if (r.UploadId === undefined) throw new VfsError('EIO', 'CreateMultipartUpload returned no UploadId');
      return r.UploadId;
    }, { path });
  }

  /** `body` is a buffer, or a factory of a fresh stream per attempt (spooled parts). */
  async uploadPart(key: string, uploadId: string, part: number, body: Buffer | (() => Readable), length: number, path?: string): Promise<string> {
    return this.run('UploadPart', async (signal) => {
      const r = await this.client.send(new UploadPartCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: part,
        Body: typeof body === 'function' ? body() : body, ContentLength: length,
      }), { abortSignal: signal });
      this.meters.bytes('out', length);
      return r.ETag ?? '';
    }, { bytes: length, path });
  }

  /**
   * Bytes [start, end) of `src` as part `part` of an upload, copied inside the store. With
   * `ifMatch` the store copies only from that version of the source (x-amz-copy-source-if-match);
   * otherwise a 412 (EEXIST here; callers that pass ifMatch turn it into ESTALE). The copy runs on
   * the server, so the timeout grows with the range like a completion's.
   *
   * A store without UploadPartCopy (501): the feature is switched off and this part, and every
   * later one, is streamed from the store through the gateway instead (uploadPartFromStore).
   */
  async uploadPartCopy(key: string, uploadId: string, part: number, src: string, start: number, end: number, path?: string, ifMatch?: string): Promise<string> {
    if (this.features.has('uploadPartCopy')) {
      try {
        return await this.uploadPartCopyOnce(key, uploadId, part, src, start, end, path, ifMatch);
      } catch (e) {
        if (!this.features.lacks('uploadPartCopy', e)) throw e;
      }
    }
    return this.uploadPartFromStore(key, uploadId, part, src, start, end, path, ifMatch);
  }

  /**
   * UploadPartCopy done by the gateway: bytes [start, end) of `src` from one ranged GET, streamed
   * into UploadPart as they arrive (at most about two pieces in memory: the GET's body is read only
   * while the upload takes it, see getStream's gate). `ifMatch` is checked on the GET's ETag, and a
   * mismatch fails like the store's 412 would, so callers see the same EEXIST/ESTALE either way.
   * A failed attempt starts over with a fresh GET.
   */
  private uploadPartFromStore(key: string, uploadId: string, part: number, src: string, start: number, end: number, path?: string, ifMatch?: string): Promise<string> {
    const length = end - start;
    const piece = Math.min(length, MiB);
    let failedFetch: unknown;
    return this.run('UploadPart', async (attemptSignal) => {
      const body = new PassThrough({ highWaterMark: piece });
      // Errors reach the upload through `stop`, not through the body (the SDK may not listen yet).
      body.on('error', () => undefined);
      // A failed GET must end the upload at once: a body that stops short would leave the PUT
      // waiting for bytes until its timeout.
      const stop = new AbortController();
      const signal = AbortSignal.any([attemptSignal, stop.signal]);
      let fetchError: unknown;
      const room = (): boolean | Promise<boolean> => {
        if (body.destroyed) return false;
        if (!body.writableNeedDrain) return true;
        return new Promise<boolean>((resolve) => {
          const done = (ok: boolean) => (): void => {
            body.off('drain', onDrain);
            body.off('close', onClose);
            resolve(ok);
          };
          const onDrain = done(true);
          const onClose = done(false);
          body.once('drain', onDrain);
          body.once('close', onClose);
        });
      };
      const fetching = this.getStream(src, start, end, piece, ifMatch, path, (_k, buf) => {
        if (!body.destroyed) body.write(buf);
      }, undefined, room).then(() => {
        body.end();
      }, (e: unknown) => {
        fetchError = failedFetch = e;
        stop.abort(e);
        body.destroy(e instanceof Error ? e : new Error(String(e)));
      });
      try {
        const r = await this.client.send(new UploadPartCommand({
          Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: part, Body: body, ContentLength: length,
        }), { abortSignal: signal });
        this.meters.bytes('out', length);
        return r.ETag ?? '';
      } catch (e) {
        if (fetchError instanceof EtagChangedError) throw new PreconditionFailedError('the copy source changed (its ETag is not the one asked for)');
        throw fetchError ?? e;
      } finally {
        body.destroy();
        // The GET stops at its next piece; wait for it so a retry never runs beside it.
        if (!attemptSignal.aborted) await fetching;
      }
    }, { bytes: length * 2, path }).catch((e: unknown) => {
      // The GET's own error (already retried; a 404 stays ENOENT), not its echo in the upload.
      if (failedFetch instanceof VfsError && !(e instanceof VfsError && isPreconditionFailed(e))) throw failedFetch;
      throw e;
    });
  }

  private uploadPartCopyOnce(key: string, uploadId: string, part: number, src: string, start: number, end: number, path?: string, ifMatch?: string): Promise<string> {
    return this.run('UploadPartCopy', async (signal) => {
      const r = await this.client.send(new UploadPartCopyCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: part,
        CopySource: copySource(this.bucket, src), CopySourceRange: `bytes=${start}-${end - 1}`,
        ...(ifMatch !== undefined ? { CopySourceIfMatch: ifMatch } : {}),
      }), { abortSignal: signal });
      return r.CopyPartResult?.ETag ?? '';
    }, { path, extraMs: Math.ceil(((end - start) / ASSEMBLY_BYTES_PER_SEC) * 1000) });
  }

  /**
   * Completion may take minutes for a large object (AWS documents it; s3rver copies every byte), so
   * its timeout grows with `totalBytes`.
   */
  async completeUpload(key: string, uploadId: string, parts: { PartNumber: number; ETag: string }[], ifNoneMatch: boolean, totalBytes: number, path?: string): Promise<string> {
    const conditional = ifNoneMatch && this.features.has('conditionalWrites');
    const once = (withHeader: boolean): Promise<string> => this.run('CompleteMultipartUpload', async (signal) => {
      const r = await this.client.send(new CompleteMultipartUploadCommand({
        Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts },
        ...(withHeader ? { IfNoneMatch: '*' } : {}),
      }), { abortSignal: signal });
      return r.ETag ?? '';
    }, { path, extraMs: Math.ceil((totalBytes / ASSEMBLY_BYTES_PER_SEC) * 1000) });
    let etag: string;
    try {
      etag = await once(conditional);
    } catch (e) {
      if (!conditional || !this.features.lacks('conditionalWrites', e)) throw e;
      etag = await once(false);
    }
    if (this.completed.size >= 1000) this.completed.delete(this.completed.keys().next().value as string);
    this.completed.set(`${key}\n${etag}`, totalBytes);
    return etag;
  }

  /**
   * The size of the object completed here as (key, etag), once: what a HEAD of it must report.
   * (Stock s3rver acknowledges UploadPart before the part is on disk, so a completion right after
   * can assemble a short part under a valid answer.)
   */
  takeCompletedSize(key: string, etag: string): number | undefined {
    const k = `${key}\n${etag}`;
    const n = this.completed.get(k);
    this.completed.delete(k);
    return n;
  }

  /** Gone already is fine; a store without AbortMultipartUpload (405/501) is not asked again. */
  async abortUpload(key: string, uploadId: string, path?: string): Promise<void> {
    if (!this.features.has('multipartAbort')) return;
    try {
      await this.run('AbortMultipartUpload', (signal) => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal: signal }), { path });
    } catch (e) {
      if (!isNotFound(e) && !this.features.lacks('multipartAbort', e)) throw e;
    }
  }

  /** Multipart uploads in progress under `prefix`. ENOTSUP when the store cannot list them. */
  async listUploads(prefix: string): Promise<UploadInfo[]> {
    const out: UploadInfo[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (let page = 0; page < 10_000; page++) {
      if (!this.features.has('multipartListing')) throw new VfsError('ENOTSUP', 'the S3 store does not implement ListMultipartUploads');
      const r = await this.run('ListMultipartUploads', (signal) => this.client.send(new ListMultipartUploadsCommand({
        Bucket: this.bucket, Prefix: prefix,
        ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
        ...(idMarker !== undefined ? { UploadIdMarker: idMarker } : {}),
      }), { abortSignal: signal })).catch((e: unknown) => {
        if (this.features.lacks('multipartListing', e)) throw new VfsError('ENOTSUP', 'the S3 store does not implement ListMultipartUploads', { cause: e });
        throw e;
      });
      for (const u of r.Uploads ?? []) {
        if (u.Key !== undefined && u.UploadId !== undefined) out.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated });
      }
      if (r.IsTruncated !== true) break;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
    return out;
  }

  /** An untrusted or invalid certificate, with what to set. */
  private tlsError(code: string, op: string, cause: unknown, path: string | undefined): VfsError {
    const where = this.endpoint ?? 'the AWS endpoint';
    const inner = (cause as { cause?: unknown })?.cause;
    const detail = (cause as Error)?.message || (inner as Error)?.message || code;
    let hint: string;
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') hint = 'the certificate is not issued for the host name in the endpoint URL: use a name it lists';
    else if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') hint = "the store's certificate is outside its validity period (or this host's clock is wrong)";
    else if (this.caSource !== undefined) hint = `the CA certificates in ${this.caSource} do not verify it: point that setting at the CA that issued the store's certificate`;
    else hint = "for a store whose certificate comes from a private CA, set AWS_CA_BUNDLE=/path/to/ca.pem in the gateway's environment, or s3.tls.ca (every S3 share) or shares[].options.tls.ca in the config";
    return new VfsError('EIO', `S3 ${op}: TLS certificate of ${where} not trusted (${code}: ${detail}); ${hint}`, path === undefined ? { cause } : { path, cause });
  }

  close(): void {
    this.closed = true;
    for (const wake of [...this.sleepers]) wake();
    for (const ac of [...this.attempts]) ac.abort(new Error('S3 backend closed'));
    this.client.destroy();
    this.agent.destroy();
  }
}

/** One GetObject answer, from either path (the SDK's output names). */
interface GetAnswer {
  ContentLength: number | undefined;
  ContentRange: string | undefined;
  ETag: string | undefined;
  Body: Readable | undefined;
  /** What the answer's headers tell about the object, as a HEAD would (`size`: the whole object's). */
  head(size: number): ObjectHead;
}

/** A failed copy condition found by the gateway itself: shaped like the store's 412 answer. */
class PreconditionFailedError extends Error {
  readonly $metadata = { httpStatusCode: 412 };
  readonly Code = 'PreconditionFailed';
  constructor(message: string) {
    super(message);
    this.name = 'PreconditionFailed';
  }
}

function lowerKeys(m: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) out[k.toLowerCase()] = v;
  return out;
}

function totalFromRange(cr: string | undefined): number | undefined {
  const m = cr === undefined ? null : /\/(\d+)$/.exec(cr);
  return m === null ? undefined : Number(m[1]);
}

function copySource(bucket: string, key: string): string {
  // The copy source is a URL path: each segment percent-encoded, '/' kept.
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export function isNotFound(e: unknown): boolean {
  const cause = (e as { cause?: unknown } | null)?.cause;
  return httpStatusOf(e) === 404 || httpStatusOf(cause) === 404;
}

export function isPreconditionFailed(e: unknown): boolean {
  const cause = (e as { cause?: unknown } | null)?.cause;
  const s = httpStatusOf(e) ?? httpStatusOf(cause);
  return s === 412 || s === 409;
}

/** A 4xx answer as a VfsError (the original stays as `cause`). */
function clientError(status: number | undefined, op: string, cause: unknown, path: string | undefined): VfsError {
  const code = status === 404 ? 'ENOENT' : status === 403 ? 'EACCES' : status === 412 || status === 409 ? 'EEXIST' : status === 416 ? 'EINVAL' : 'EIO';
  const msg = `S3 ${op}: ${(cause as Error)?.name ?? 'error'}${status !== undefined ? ` (HTTP ${status})` : ''}`;
  return new VfsError(code, msg, path === undefined ? { cause } : { path, cause });
}

/**
 * Destroys a response body when the attempt's signal aborts (its timeout, a retry's cancel), so a
 * stalled body cannot hold a read; the returned function detaches the listener once the body is done.
 */
function destroyOnAbort(body: { destroy(error?: Error): void } | undefined, signal: AbortSignal): () => void {
  const onAbort = (): void => {
    body?.destroy(signal.reason as Error);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
