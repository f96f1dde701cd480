/**
 * The admin HTTP endpoint: liveness, readiness and Prometheus metrics.
 *
 * - GET /health  -> 200 {"status":"ok"} while the process runs (liveness: never touches backends);
 *                   with `protocols`, the optional protocols that cannot run on this machine and
 *                   the command that enables each (FUSE without its addon).
 * - GET /ready   -> 200 when every started protocol plugin is listening, start-up work (a share's
 *                   recovery of interrupted uploads) has finished, and every share's backend
 *                   answers check() within READY_CHECK_TIMEOUT_MS; else 503 naming what is not ready.
 * - GET /metrics -> Prometheus text.
 * - POST /cache/refresh?share=NAME&path=/dir -> drops cached metadata and listings of the share at
 *                   and below path, so outside changes (another S3 client) show at once. Needs
 *                   `Authorization: Bearer <admin token>` (src/server/admin-token.ts): 401 without it,
 *                   404 for an unknown share. Used by `portico cache refresh SHARE[/path]`.
 * HEAD is accepted wherever GET is. Other methods get 405, unknown paths 404.
 *
 * It never reads a request body and bounds header time, so a slow or hostile client on the admin
 * port cannot hold resources (it should only be reachable from loopback or a monitoring network).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Backend } from '../vfs/backend.ts';
import type { ProtocolPlugin } from './plugin.ts';
import { checkBearer } from './admin-token.ts';

export const READY_CHECK_TIMEOUT_MS = 2000;

export interface AdminServerOptions {
  listen: string;
  /** 0 picks a free port (tests). */
  port: number;
  metrics: Metrics;
  /** Read at every /ready, so plugins started later are included. */
  plugins: () => Iterable<ProtocolPlugin>;
  /** share name -> backend, read at every /ready. */
  backends: () => Iterable<[string, Backend]>;
  /** Start-up work still running (not ready until it is done), read at every /ready. */
  starting?: () => Iterable<NotReady>;
  logger?: Logger;
  /** Per-backend check() timeout (default READY_CHECK_TIMEOUT_MS). */
  checkTimeoutMs?: number;
  /** Bearer token for state-changing endpoints; without it they answer 404. */
  token?: string;
  /** Drops cached metadata of a share below a path; rejects with a VfsError (ENOENT: no such share). */
  refreshCache?: (share: string, path: string) => Promise<void>;
  /** Optional protocols and whether they can run here (ProtocolDescriptor.availability). */
  availability?: () => Record<string, unknown>;
}

export interface NotReady {
  kind: 'protocol' | 'share' | 'directory';
  name: string;
  reason: string;
}

export class AdminServer {
  private readonly opts: AdminServerOptions;
  private server: Server | undefined;

  constructor(opts: AdminServerOptions) {
    this.opts = opts;
  }

  /** Starts listening; resolves with the bound address. */
  async start(): Promise<AddressInfo> {
    const server = createServer({ headersTimeout: 5000, requestTimeout: 10000, maxHeaderSize: 8192 }, (req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.opts.logger?.error({ err: e }, 'admin request failed');
        if (!res.headersSent) send(res, req, 500, { status: 'error' });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    server.maxRequestsPerSocket = 100;
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      server.once('error', onError);
      server.listen(this.opts.port, this.opts.listen, () => {
        server.off('error', onError);
        resolve();
      });
    });
    return this.address()!;
  }

  address(): AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Monitoring scrapers keep connections alive; do not let them delay shutdown.
      server.closeAllConnections();
    });
  }

  /** Everything not ready right now (empty = ready). */
  async notReady(): Promise<NotReady[]> {
    const out: NotReady[] = [];
    for (const p of this.opts.plugins()) {
      if (!p.ready()) out.push({ kind: 'protocol', name: p.name, reason: 'not listening' });
    }
    out.push(...(this.opts.starting?.() ?? []));
    const timeoutMs = this.opts.checkTimeoutMs ?? READY_CHECK_TIMEOUT_MS;
    const checks = [...this.opts.backends()].map(async ([name, backend]): Promise<NotReady | undefined> => {
      const reason = await checkWithTimeout(backend, timeoutMs);
      return reason === undefined ? undefined : { kind: 'share', name, reason };
    });
    for (const r of await Promise.all(checks)) if (r) out.push(r);
    return out;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST' && (req.url ?? '').split('?', 1)[0] === '/cache/refresh' && this.opts.refreshCache && this.opts.token) {
      await this.refresh(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      // The body (if any) is never read: close instead of draining it.
      res.setHeader('Connection', 'close');
      send(res, req, 405, { status: 'method not allowed' });
      return;
    }
    const path = (req.url ?? '/').split('?', 1)[0];
    switch (path) {
      case '/health': {
        const protocols = this.opts.availability?.();
        send(res, req, 200, protocols && Object.keys(protocols).length > 0 ? { status: 'ok', protocols } : { status: 'ok' });
        return;
      }
      case '/ready': {
        const notReady = await this.notReady();
        if (notReady.length === 0) send(res, req, 200, { status: 'ready' });
        else send(res, req, 503, { status: 'not ready', notReady });
        return;
      }
      case '/metrics': {
        const text = await this.opts.metrics.metricsText();
        res.writeHead(200, { 'Content-Type': this.opts.metrics.contentType, 'Content-Length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      default:
        send(res, req, 404, { status: 'not found' });
    }
  }

  private async refresh(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Connection', 'close');
    if (!checkBearer(req.headers.authorization, this.opts.token!)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      send(res, req, 401, { status: 'unauthorized' });
      return;
    }
    const q = new URL(req.url ?? '/', 'http://admin').searchParams;
    const share = q.get('share');
    if (!share) {
      send(res, req, 400, { status: 'missing share' });
      return;
    }
    try {
      await this.opts.refreshCache!(share, q.get('path') ?? '/');
      send(res, req, 200, { status: 'refreshed', share, path: q.get('path') ?? '/' });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ENOENT') send(res, req, 404, { status: 'no such share', share });
      else if (code === 'EINVAL' || code === 'ENAMETOOLONG' || code === 'EILSEQ') send(res, req, 400, { status: 'bad path' });
      else throw e;
    }
  }
}

function send(res: ServerResponse, req: IncomingMessage, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** undefined when check() resolved in time, else a short reason. */
async function checkWithTimeout(backend: Backend, ms: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`check timed out after ${ms} ms`), ms);
  });
  try {
    return await Promise.race([
      backend.check().then(
        () => undefined,
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
