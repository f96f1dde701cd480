/**
 * An HTTP proxy between an S3 client and s3rver that counts what passes and injects failures on
 * demand: dropped connections, 500 InternalError, 503 SlowDown, added latency, truncated bodies,
 * a 200 with a garbled XML body, requests that never get an answer, requests that reach the
 * server but whose answer is lost, and a "down" switch (every request dropped) for a dead store.
 *
 * Requests are forwarded untouched (Host header included, so SigV4 signatures still verify).
 * Faults are rules consumed in order: each rule matches some requests (by method / S3 operation /
 * predicate) and applies to the next `times` of them.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultKind = 'drop' | 'status500' | 'slowdown' | 'delay' | 'delayAnswer' | 'truncate' | 'hang' | 'garbage' | 'lose';

export interface RequestInfo {
  method: string;
  url: string;
  /** Rough S3 operation name: GetObject, HeadObject, PutObject, UploadPart, ListObjectsV2... */
  op: string;
  range: string | undefined;
}

export interface FaultRule {
  kind: FaultKind;
  /** How many matching requests this rule applies to (default 1; Infinity for all). */
  times?: number;
  match?: (r: RequestInfo) => boolean;
  /** delay: milliseconds added before forwarding; delayAnswer: forwarded at once, the answer held this long. */
  ms?: number;
  /** truncate: response body bytes passed before the connection is cut. */
  bytes?: number;
}

export interface LogEntry extends RequestInfo {
  status: number | 'dropped';
  /** Response body bytes sent to the client. */
  bytes: number;
}

export function s3Op(method: string, url: string): string {
  const u = new URL(url, 'http://x');
  const q = u.searchParams;
  const segs = u.pathname.split('/').filter((s) => s !== '');
  const objectLevel = segs.length > 1;
  if (method === 'GET' && !objectLevel) return q.has('uploads') ? 'ListMultipartUploads' : 'ListObjectsV2';
  if (method === 'GET') return 'GetObject';
  if (method === 'HEAD') return objectLevel ? 'HeadObject' : 'HeadBucket';
  if (method === 'PUT' && q.has('partNumber')) return 'UploadPart';
  if (method === 'PUT') return 'PutObject';
  if (method === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'DELETE' && q.has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'DELETE') return 'DeleteObject';
  return `${method}`;
}

export class FaultProxy {
  readonly log: LogEntry[] = [];
  private readonly rules: (FaultRule & { left: number })[] = [];
  private server: http.Server | undefined;
  private readonly upstream: URL;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private isDown = false;
  port = 0;

  constructor(upstream: string) {
    this.upstream = new URL(upstream);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s === undefined) return;
    const closing = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    this.agent.destroy();
    await closing;
  }

  inject(rule: FaultRule): void {
    this.rules.push({ ...rule, left: rule.times ?? 1 });
  }

  clearFaults(): void {
    this.rules.length = 0;
    this.isDown = false;
  }

  /** true: every request is dropped (connection closed without an answer). */
  down(on: boolean): void {
    this.isDown = on;
  }

  resetLog(): void {
    this.log.length = 0;
  }

  count(op?: string): number {
    return op === undefined ? this.log.length : this.log.filter((e) => e.op === op).length;
  }

  bytes(op?: string): number {
    return this.log.filter((e) => op === undefined || e.op === op).reduce((n, e) => n + e.bytes, 0);
  }

  private take(info: RequestInfo): FaultRule | undefined {
    for (let i = 0; i < this.rules.length; i++) {
      const r = this.rules[i]!;
      if (r.match !== undefined && !r.match(info)) continue;
      r.left--;
      if (r.left <= 0) this.rules.splice(i, 1);
      return r;
    }
    return undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const info: RequestInfo = { method: req.method ?? 'GET', url: req.url ?? '/', op: s3Op(req.method ?? 'GET', req.url ?? '/'), range: req.headers.range };
    const entry: LogEntry = { ...info, status: 'dropped', bytes: 0 };
    this.log.push(entry);
    const rule = this.isDown ? { kind: 'drop' as const } : this.take(info);
    if (rule?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (rule?.kind === 'hang') {
      // Never answers; the client's timeout must end it.
      req.resume();
      return;
    }
    if (rule?.kind === 'status500' || rule?.kind === 'slowdown') {
      req.resume();
      req.on('end', () => {
        const slow = rule.kind === 'slowdown';
        const body = info.method === 'HEAD' ? '' : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${slow ? 'SlowDown' : 'InternalError'}</Code><Message>${slow ? 'Please reduce your request rate.' : 'We encountered an internal error. Please try again.'}</Message><RequestId>fault</RequestId></Error>`;
        entry.status = slow ? 503 : 500;
        res.writeHead(entry.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    if (rule?.kind === 'garbage') {
      req.resume();
      req.on('end', () => {
        const body = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Contents><Key>oops';
        entry.status = 200;
        res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const forward = (): void => this.forward(req, res, entry, rule?.kind === 'truncate' ? rule.bytes ?? 0 : rule?.kind === 'lose' ? 0 : undefined, rule?.kind === 'delayAnswer' ? rule.ms ?? 1000 : 0);
    if (rule?.kind === 'delay') setTimeout(forward, rule.ms ?? 1000);
    else forward();
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, entry: LogEntry, truncateAt: number | undefined, answerDelayMs = 0): void {
    const up = http.request({
      host: this.upstream.hostname,
      port: this.upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent: this.agent,
    }, (ur) => {
      // delayAnswer: the store did the work at once; its answer reaches the client later.
      if (answerDelayMs > 0) {
        ur.pause();
        setTimeout(() => pass(ur), answerDelayMs);
      } else pass(ur);
    });
    const pass = (ur: http.IncomingMessage): void => {
      entry.status = ur.statusCode ?? 0;
      if (truncateAt === 0) {
        // The server did the work; its answer never reaches the client.
        ur.resume();
        ur.on('end', () => res.socket?.destroy());
        return;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      // The answer's head goes on at once, as the store sent it (Node would hold it back until the
      // first body byte: stock s3rver's answer to a range of an empty object never sends one).
      res.flushHeaders();
      ur.on('data', (chunk: Buffer) => {
        if (truncateAt !== undefined && entry.bytes + chunk.length >= truncateAt) {
          const part = chunk.subarray(0, Math.max(0, truncateAt - entry.bytes));
          entry.bytes += part.length;
          res.write(part, () => res.socket?.destroy());
          ur.destroy();
          return;
        }
        entry.bytes += chunk.length;
        if (!res.write(chunk)) {
          ur.pause();
          res.once('drain', () => ur.resume());
        }
      });
      ur.on('end', () => res.end());
      ur.on('error', () => res.socket?.destroy());
      // A stream paused explicitly does not flow again when 'data' listeners are added.
      if (answerDelayMs > 0) ur.resume();
    };
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  }
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  return new FaultProxy(upstream).start();
}
