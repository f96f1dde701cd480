/**
 * An HTTP proxy in front of an S3 endpoint that answers chosen requests itself with an S3 error
 * (any status and code: 501 NotImplemented as stores without an optional API answer, 405
 * MethodNotAllowed, 503 ServiceUnavailable of a store in trouble) and forwards every other request
 * untouched (Host header included, so signatures still verify). Rules are consumed in order like
 * fault-proxy.ts's; `log` records each request's operation and the status it got. `rewrite` rules
 * change the headers of forwarded answers (a store reporting a size it has not finished writing).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { s3Op } from './fault-proxy.ts';

export interface AnswerRequest {
  method: string;
  url: string;
  op: string;
  headers: http.IncomingHttpHeaders;
}

export interface AnswerRule {
  match: (r: AnswerRequest) => boolean;
  status: number;
  code: string;
  /** Default Infinity: a store that lacks a feature lacks it every time. */
  times?: number;
}

export interface RewriteRule {
  match: (r: AnswerRequest) => boolean;
  headers: (h: http.IncomingHttpHeaders) => void;
  /** Default 1. */
  times?: number;
}

export class AnswerProxy {
  readonly log: { op: string; method: string; url: string; status: number }[] = [];
  private readonly rules: (AnswerRule & { left: number })[] = [];
  private readonly rewrites: (RewriteRule & { left: number })[] = [];
  private readonly upstream: URL;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private server: http.Server | undefined;
  port = 0;

  constructor(upstream: string) {
    this.upstream = new URL(upstream);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  answer(rule: AnswerRule): void {
    this.rules.push({ ...rule, left: rule.times ?? Infinity });
  }

  rewrite(rule: RewriteRule): void {
    this.rewrites.push({ ...rule, left: rule.times ?? 1 });
  }

  clear(): void {
    this.rules.length = 0;
    this.rewrites.length = 0;
  }

  count(op: string, status?: number): number {
    return this.log.filter((e) => e.op === op && (status === undefined || e.status === status)).length;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
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

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const info: AnswerRequest = { method: req.method ?? 'GET', url: req.url ?? '/', op: s3Op(req.method ?? 'GET', req.url ?? '/'), headers: req.headers };
    if (info.method === 'PUT' && req.headers['x-amz-copy-source'] !== undefined) info.op = info.url.includes('partNumber=') ? 'UploadPartCopy' : 'CopyObject';
    const entry = { op: info.op, method: info.method, url: info.url, status: 0 };
    this.log.push(entry);
    const i = this.rules.findIndex((r) => r.match(info));
    if (i >= 0) {
      const rule = this.rules[i]!;
      if (--rule.left <= 0) this.rules.splice(i, 1);
      req.resume();
      req.on('end', () => {
        const body = info.method === 'HEAD' ? '' : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${rule.code}</Code><Message>answered by the test's answer proxy</Message><RequestId>answer</RequestId></Error>`;
        entry.status = rule.status;
        res.writeHead(rule.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const up = http.request({ host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers: req.headers, agent: this.agent }, (ur) => {
      entry.status = ur.statusCode ?? 0;
      const w = this.rewrites.findIndex((r) => r.match(info));
      if (w >= 0) {
        const rule = this.rewrites[w]!;
        if (--rule.left <= 0) this.rewrites.splice(w, 1);
        rule.headers(ur.headers);
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
      ur.on('error', () => res.socket?.destroy());
    });
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  }
}

export async function startAnswerProxy(upstream: string): Promise<AnswerProxy> {
  return new AnswerProxy(upstream).start();
}
