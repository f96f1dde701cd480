/**
 * The WebDAV protocol plugin: an HTTP or HTTPS server on protocols.webdav.port/listen running the
 * request pipeline of server.ts over the gateway's SessionManager.
 *
 * Slow and idle clients: the request head must arrive within HEADERS_TIMEOUT_MS; a connection with
 * no traffic for idleTimeoutMs is closed; keep-alive connections idle longer than
 * KEEP_ALIVE_TIMEOUT_MS are closed; requestTimeoutMs (default off) bounds a whole request.
 *
 * Connections and requests are counted per client and per user against `limits.*`
 * (src/session/admission.ts, one set of counters for every protocol of the gateway). A connection
 * over its client's cap is reset as soon as it is accepted, with no answer: any answer would need
 * the descriptor kept until it is delivered, which is what a connection flood wants; the refusals
 * are logged (at most one line per REFUSAL_LOG_MS) so an operator sees a NAT that needs a higher cap.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { ProtocolContext, ProtocolDescriptor, ProtocolPlugin } from '../../src/server/plugin.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import { admissionFor } from '../../src/session/admission.ts';
import { DavServer } from './server.ts';
import { DavResponse } from './response.ts';
import { HEADERS_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, MAX_HEADER_BYTES, davSettings, webdavOptions } from './settings.ts';
import { loadTls } from './tls.ts';

const REFUSAL_LOG_MS = 10_000;

export class WebdavPlugin implements ProtocolPlugin {
  readonly name = 'webdav';
  private server: Server | undefined;
  private dav: DavServer | undefined;
  private url = 'webdav (not started)';
  private listening = false;

  ready(): boolean {
    return this.listening;
  }

  describe(): string {
    return `webdav on ${this.url}`;
  }

  /** Bound address (tests listen on port 0). */
  address(): AddressInfo | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  async start(ctx: ProtocolContext): Promise<void> {
    const o = webdavOptions(ctx.config);
    const admission = admissionFor(ctx.sessions as object, ctx.config.limits);
    const dav = (this.dav = new DavServer({
      sessions: ctx.sessions as SessionManager,
      logger: ctx.logger,
      settings: davSettings(ctx.config, o),
      authCacheMs: o.authCacheSeconds * 1000,
      admission,
    }));
    const serverOptions = {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: o.requestTimeoutMs,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Request targets are taken raw (paths.ts); never let node merge slashes or decode.
      joinDuplicateHeaders: true,
      // The headers every answer carries, set in writeHead rather than by setHeader (response.ts).
      ServerResponse: DavResponse,
    };
    const onRequest = (req: IncomingMessage, res: DavResponse): void => dav.handle(req, res);
    const server = o.tls ? createHttpsServer({ ...serverOptions, ...loadTls(o.tls) }, onRequest) : createHttpServer(serverOptions, onRequest);
    // `Expect: 100-continue` is answered by the handler once the request passed its checks.
    // The server's response class answers here too (`ServerResponse` option above).
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => dav.handle(req, res as DavResponse, true));
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
    server.setTimeout(o.idleTimeoutMs, (socket) => socket.destroy());
    let refused = 0;
    let loggedAt = 0;
    server.on('connection', (socket: Socket) => {
      const release = admission.openConnection(socket.remoteAddress ?? '');
      if (release) {
        socket.once('close', release);
        return;
      }
      // RST rather than FIN: no TIME_WAIT state left behind per refused connection.
      socket.resetAndDestroy();
      refused++;
      const now = Date.now();
      if (now - loggedAt >= REFUSAL_LOG_MS) {
        ctx.logger.warn({ client: socket.remoteAddress, refused, limit: 'limits.maxConnectionsPerClient', max: ctx.config.limits.maxConnectionsPerClient }, 'webdav: connections refused, client over its cap');
        loggedAt = now;
        refused = 0;
      }
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.listen, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.listening = true;
    const a = this.address();
    const host = a ? (a.family === 'IPv6' ? `[${a.address}]` : a.address) : o.listen;
    this.url = `${o.tls ? 'https' : 'http'}://${host}:${a?.port ?? o.port}/`;
  }

  async stop(graceMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while ((this.dav?.inFlight ?? 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    server.closeAllConnections();
    await closed;
    this.server = undefined;
  }
}

export const webdavProtocol: ProtocolDescriptor = {
  name: 'webdav',
  defaultPort: 8080,
  create: () => new WebdavPlugin(),
};
