/**
 * The WebDAV request pipeline: limits, request ids and logging, the browser UI assets,
 * authentication (HTTP Basic through the shared authenticator, guest read where a share allows it),
 * one Session per request (WebDAV is stateless; locks outlive it as durable WebDAV locks), the If
 * header and HTTP preconditions, dispatch to one handler per method, and the error answers.
 *
 * 401 vs 403: no or bad credentials -> 401 with WWW-Authenticate; authenticated but not allowed
 * (EACCES/EROFS) -> 403. A request without credentials is served as the guest only on a share with
 * `guest: read` and only for read methods; anything else asks for credentials (401), so a share's
 * existence is not revealed to anonymous clients.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Principal } from '../../src/auth/authenticator.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import type { Session } from '../../src/session/session.ts';
import { AdmissionRefused, type Admission, type AdmissionPass } from '../../src/session/admission.ts';
import { VfsError, isVfsError } from '../../src/vfs/errors.ts';
import type { ShareAcl } from '../../src/acl/acl.ts';
import { normalizePath } from '../../src/vfs/path.ts';
import { BasicAuthCache } from './auth.ts';
import { applyIfHeader } from './conditional.ts';
import { DavContext, type DavSettings } from './context.ts';
import { HttpError, errorHeaders, isExpected, statusOf } from './errors.ts';
import { parseRequestTarget, type DavTarget } from './paths.ts';
import { escapeText } from './xml.ts';
import type { DavResponse } from './response.ts';
import { assertSameOrigin } from './same-origin.ts';
import { UI_ASSET_PREFIX, serveUiAsset } from './ui/index.ts';
import { ALLOW, ROOT_ALLOW, options } from './methods/options.ts';
import { get, getRoot } from './methods/get.ts';
import { put } from './methods/put.ts';
import { del } from './methods/delete.ts';
import { mkcol } from './methods/mkcol.ts';
import { copy, move } from './methods/copy-move.ts';
import { propfind, propfindRoot } from './methods/propfind.ts';
import { proppatch } from './methods/proppatch.ts';
import { lock, unlock } from './methods/lock.ts';

type Handler = (ctx: DavContext) => Promise<void>;

const HANDLERS: Record<string, Handler> = {
  GET: get,
  HEAD: get,
  PUT: put,
  DELETE: del,
  MKCOL: mkcol,
  COPY: copy,
  MOVE: move,
  PROPFIND: propfind,
  PROPPATCH: proppatch,
  LOCK: lock,
  UNLOCK: unlock,
};

const READ_METHODS = new Set(['GET', 'HEAD', 'PROPFIND']);

/**
 * Files macOS Finder, Spotlight and QuickLook probe for at the root of every volume it mounts.
 * They are answered 404 at once on read methods instead of costing a backend lookup each.
 */
const MAC_PROBES = new Set([
  '.ql_disablethumbnails',
  '.ql_disablecache',
  '.metadata_never_index',
  '.metadata_never_index_unless_rootfs',
  '.Spotlight-V100',
  '.hidden',
  'Backups.backupdb',
  'mach_kernel',
]);

export const REALM = 'Portico';

/** The client gave up (while its request waited for a slot): no work for it (serve()'s finally releases the slot). */
function stillThere(res: ServerResponse): void {
  if (res.destroyed) throw new HttpError(499, 'client went away');
}

export interface DavServerOptions {
  sessions: SessionManager;
  logger: Logger;
  settings: DavSettings;
  /** How long a successful Basic login is remembered (0 = never). */
  authCacheMs: number;
  /** Per-client and per-user in-flight caps shared with the other protocols (none: no caps). */
  admission?: Admission;
}

export class DavServer {
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly settings: DavSettings;
  private readonly auth: BasicAuthCache;
  private readonly admission: Admission | undefined;
  private readonly idPrefix = randomBytes(3).toString('hex');
  private seq = 0;
  /** Requests in progress (for graceful stop). */
  inFlight = 0;

  constructor(o: DavServerOptions) {
    this.sessions = o.sessions;
    this.log = o.logger;
    this.settings = o.settings;
    this.auth = new BasicAuthCache(o.sessions, o.authCacheMs);
    this.admission = o.admission;
  }

  /** The `request` (and `checkContinue`) listener. */
  handle(req: IncomingMessage, res: DavResponse, expectContinue = false): void {
    this.inFlight++;
    this.serve(req, res, expectContinue)
      .catch((err: unknown) => {
        this.log.error({ err }, 'webdav: unhandled error');
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      })
      .finally(() => this.inFlight--);
  }

  private async serve(req: IncomingMessage, res: DavResponse, expectContinue: boolean): Promise<void> {
    const id = `${this.idPrefix}-${(++this.seq).toString(36)}`;
    const t0 = performance.now();
    const method = req.method ?? '';
    const clientAddress = req.socket.remoteAddress ?? '';
    let user: string | undefined;
    let session: Session | undefined;
    let ctx: DavContext | undefined;
    let pass: AdmissionPass | undefined;
    // Every answer, errors and UI assets included, carries its request id, nosniff and the default
    // Content-Security-Policy (content-policy.ts; GET of files and the UI page set theirs): the
    // server's own response class puts them into the answer's writeHead (response.ts: Node's fast
    // header path).
    res.requestId = id;
    try {
      // Before any work (authentication included: a first login costs a bcrypt).
      const admission = this.admission;
      if (admission) {
        const got = this.admit(() => admission.enter(clientAddress));
        pass = got instanceof Promise ? await got : got;
        stillThere(res);
      }
      const url = req.url ?? '/';
      const target = parseRequestTarget(url);
      if (url.startsWith(UI_ASSET_PREFIX)) return this.uiAsset(req, res, url.slice(UI_ASSET_PREFIX.length));
      if (method === 'OPTIONS') return options(res, target.share === '');
      // CSRF: before any authentication work, so a forged request costs no bcrypt (same-origin.ts).
      assertSameOrigin(req);
      const handler = HANDLERS[method];
      if (!handler) throw new HttpError(501, `method ${method} not implemented`, { headers: { Allow: ALLOW } });

      const isRoot = target.share === '';
      let share = '';
      let shareAcl: ShareAcl | undefined;
      if (!isRoot) {
        try {
          const { acl, volume } = this.sessions.acl(target.share, 'webdav');
          share = volume;
          shareAcl = acl;
        } catch (e) {
          if (!isVfsError(e, 'ENOENT')) throw e;
        }
      }
      // A keep-alive connection's next request with the same credentials: no hash, no await (and
      // whether a guest could read is asked only when there are no credentials to reuse).
      const principal =
        this.auth.connectionLogin(req.socket, req.headers.authorization) ??
        (await this.principal(req, clientAddress, () => READ_METHODS.has(method) && this.guestSees(isRoot, shareAcl)));
      user = principal.user;
      if (pass) {
        const p = pass;
        const got = this.admit(() => p.enterUser(principal.user, principal.guest));
        if (got instanceof Promise) await got;
        stillThere(res);
      }
      if (!isRoot && share === '') throw new HttpError(404, `no share named ${target.share}`);
      const path = this.sharePath(target);
      if (!isRoot) this.macShortcuts(method, share, path);

      session = this.sessions.openSession({ principal, protocol: 'webdav', clientAddress });
      ctx = new DavContext({
        req,
        res,
        id,
        log: this.log,
        sessions: this.sessions,
        settings: this.settings,
        principal,
        session,
        share,
        shareSpelling: target.share,
        path,
        expectContinue,
      });
      if (isRoot) {
        if (method === 'PROPFIND') return await propfindRoot(ctx);
        if (method === 'GET' || method === 'HEAD') return await getRoot(ctx);
        throw new HttpError(405, 'the server root holds only shares', { headers: { Allow: ROOT_ALLOW } });
      }
      await applyIfHeader(ctx);
      await handler(ctx);
    } catch (e) {
      await this.sendError(req, res, e, ctx);
    } finally {
      pass?.release();
      if (session) await session.end({ keepDurableLocks: true }).catch((err: unknown) => this.log.warn({ err }, 'session end failed'));
      const status = res.statusCode;
      // The entry is built only when it is logged (debug is off in production; this runs per request).
      if (status >= 500 || this.log.isLevelEnabled('debug')) {
        const ms = Math.round((performance.now() - t0) * 10) / 10;
        const entry = { req: id, method, url: req.url, status, ms, user, client: clientAddress };
        if (status >= 500) this.log.warn(entry, 'webdav request');
        else this.log.debug(entry, 'webdav request');
      }
    }
  }

  /**
   * Takes an in-flight slot (src/session/admission.ts): at once, or after waiting up to
   * limits.inFlightWaitMs; a cap still full then is 503 with Retry-After naming the limit, so
   * clients back off and retry instead of failing.
   */
  private admit<T>(take: () => T | Promise<T>): T | Promise<T> {
    const refused = (e: unknown): unknown => (e instanceof AdmissionRefused ? new HttpError(503, e.message) : e);
    let got: T | Promise<T>;
    try {
      got = take();
    } catch (e) {
      throw refused(e);
    }
    // At once (the common case): no promise, no await.
    if (!(got instanceof Promise)) return got;
    return got.catch((e: unknown) => {
      throw refused(e);
    });
  }

  /** Share-relative path, validated by the one VFS validator (400/414). */
  private sharePath(target: DavTarget): string {
    let path: string;
    try {
      path = normalizePath(target.path);
    } catch (e) {
      if (e instanceof VfsError) throw new HttpError(e.code === 'ENAMETOOLONG' ? 414 : 400, e.message);
      throw e;
    }
    return path;
  }

  private macShortcuts(method: string, share: string, path: string): void {
    const name = path.slice(path.lastIndexOf('/') + 1);
    const read = method === 'GET' || method === 'HEAD' || method === 'PROPFIND';
    if (read && path === '/' + name && MAC_PROBES.has(name)) throw new HttpError(404, 'not found');
    if (name.startsWith('._') && this.settings.refuseAppleDouble.has(share.toLowerCase())) {
      throw new HttpError(read ? 404 : 403, 'AppleDouble files are refused on this share');
    }
  }

  /** Whether the guest may see the server root's listing (isRoot) or the share whose rules are `acl`. */
  private guestSees(isRoot: boolean, acl: ShareAcl | undefined): boolean {
    const guest = this.sessions.authenticator.guest();
    return isRoot ? this.sessions.sharesFor(guest, 'webdav').length > 0 : acl !== undefined && acl.visibleTo(guest);
  }

  private async principal(req: IncomingMessage, clientAddress: string, guestAllowed: () => boolean): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined) {
      if (guestAllowed()) return this.sessions.authenticator.guest();
      throw new HttpError(401, 'authentication required');
    }
    let p: Principal | 'invalid';
    try {
      p = await this.auth.authenticate(header, clientAddress, req.socket);
    } catch (e) {
      if (isVfsError(e, 'EAUTH')) throw new HttpError(401, 'invalid user name or password');
      if (isVfsError(e, 'ETHROTTLED')) {
        const secs = /retry in (\d+)/.exec(e.message)?.[1] ?? '60';
        throw new HttpError(429, e.message, { headers: { 'Retry-After': secs } });
      }
      throw e;
    }
    if (p === 'invalid') throw new HttpError(401, 'unsupported or malformed Authorization header');
    return p;
  }

  private uiAsset(req: IncomingMessage, res: ServerResponse, name: string): void {
    const asset = req.method === 'GET' || req.method === 'HEAD' ? serveUiAsset(name) : undefined;
    if (!asset) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 10 }).end(req.method === 'HEAD' ? undefined : 'not found\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': asset.type,
      'Content-Length': asset.body.length,
      'Cache-Control': 'public, max-age=31536000, immutable',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }

  private async sendError(req: IncomingMessage, res: ServerResponse, e: unknown, ctx: DavContext | undefined): Promise<void> {
    const status = statusOf(e);
    if (status === 499 || res.destroyed) {
      res.destroy();
      return;
    }
    if (res.headersSent) {
      // A streamed answer cannot change its status any more: cut it so the client sees the failure.
      this.log.warn({ err: e }, 'webdav: error after the answer started');
      res.destroy();
      return;
    }
    if (!isExpected(e) || status >= 500) this.log.warn({ err: e, url: req.url, method: req.method }, 'webdav request failed');
    let condition: string | undefined;
    let hrefs: string[] = [];
    const headers = errorHeaders(status, { 'Cache-Control': 'no-store', ...(e instanceof HttpError ? e.headers : {}) });
    if (e instanceof HttpError) {
      condition = e.condition;
      hrefs = e.hrefs;
    }
    if (status === 401) headers['WWW-Authenticate'] = `Basic realm="${REALM}", charset="UTF-8"`;
    if (status === 423 && condition === undefined && ctx) {
      condition = 'lock-token-submitted';
      try {
        const locks = await ctx.davLocks();
        hrefs = await ctx.lockRoots(locks.filter((l) => !ctx.session.lockTokens.has(l.token)));
      } catch {
        hrefs = [];
      }
      if (hrefs.length === 0) hrefs = [ctx.href()];
    }
    // An unread request body (a refused PUT) would have to be drained to keep the connection.
    const unread = ctx ? !ctx.bodyConsumed && ctx.hasBody() : req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    if (unread || req.headers['transfer-encoding'] !== undefined) headers.Connection = 'close';
    // Only ever turned off here: node has already turned it off for a request that asked to close
    // (`Connection: close`, HTTP/1.0), and setting it true again kept that connection open.
    if (headers.Connection) res.shouldKeepAlive = false;
    let body: string;
    if (condition !== undefined) {
      headers['Content-Type'] = 'application/xml; charset=utf-8';
      const inner = hrefs.map((h) => `<D:href>${escapeText(h)}</D:href>`).join('');
      const el = inner === '' ? `<D:${condition}/>` : `<D:${condition}>${inner}</D:${condition}>`;
      body = `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:">${el}</D:error>\n`;
    } else {
      headers['Content-Type'] = 'text/plain; charset=utf-8';
      // An HttpError's text is written for the client (a limit, an unsupported method); other 5xx
      // errors may carry internal detail.
      const msg = status >= 500 && !(e instanceof HttpError) ? '' : e instanceof Error ? `: ${e.message}` : '';
      body = `${status}${msg}\n`;
    }
    const buf = Buffer.from(body, 'utf8');
    headers['Content-Length'] = String(buf.length);
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : buf);
  }
}
