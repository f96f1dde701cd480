/**
 * One WebDAV request: who asks (principal, per-request Session), what it addresses (share, path,
 * href), the server's settings, and the helpers every method handler uses to read bounded bodies
 * and write answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Principal } from '../../src/auth/authenticator.ts';
import type { Session } from '../../src/session/session.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import type { FileAttr } from '../../src/vfs/types.ts';
import type { LockInfo } from '../../src/locks/lock-manager.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { HttpError, reason } from './errors.ts';
import { parseXml, type XmlElement, type XmlLimits } from './xml.ts';
import { hrefOf, parentOf } from './paths.ts';

export interface DavSettings {
  /** Cap on lock timeouts (`Infinite` included), ms. */
  maxLockTimeoutMs: number;
  /** Timeout of a LOCK without a Timeout header, ms. */
  defaultLockTimeoutMs: number;
  /** Allow PROPFIND with Depth: infinity (RFC 4918 §9.1: servers may refuse). */
  depthInfinity: boolean;
  xmlLimits: XmlLimits;
  /** Entries shown by the HTML listing at most. */
  maxHtmlEntries: number;
  /** Entries a Depth: infinity PROPFIND may report at most. */
  maxInfinityEntries: number;
  /** Properties one PROPFIND may name (protocols.webdav.maxPropfindProperties). */
  maxPropfindProperties: number;
  /** Largest PROPFIND answer in bytes (protocols.webdav.maxPropfindResponseBytes). */
  maxPropfindResponseBytes: number;
  /** Properties one PROPPATCH may set or remove (protocols.webdav.maxProppatchProperties). */
  maxProppatchProperties: number;
  /** Largest dead property value PROPPATCH stores, bytes (protocols.webdav.maxPropertyValueBytes). */
  maxPropertyValueBytes: number;
  /** Share names (lower-case) that refuse AppleDouble `._*` files. */
  refuseAppleDouble: Set<string>;
}

export class DavContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly id: string;
  readonly log: Logger;
  readonly sessions: SessionManager;
  readonly settings: DavSettings;
  readonly principal: Principal;
  readonly session: Session;
  /** Canonical share (volume) name. */
  readonly share: string;
  /** The share as the client spelled it, for hrefs. */
  readonly shareSpelling: string;
  /** Normalised share path of the request URI. */
  readonly path: string;
  readonly expectContinue: boolean;
  /** Tokens of locks seen while evaluating the If header (token -> lock). */
  readonly knownLocks = new Map<string, LockInfo>();
  private continued = false;
  bodyConsumed = false;

  constructor(init: {
    req: IncomingMessage;
    res: ServerResponse;
    id: string;
    log: Logger;
    sessions: SessionManager;
    settings: DavSettings;
    principal: Principal;
    session: Session;
    share: string;
    shareSpelling: string;
    path: string;
    expectContinue: boolean;
  }) {
    this.req = init.req;
    this.res = init.res;
    this.id = init.id;
    this.log = init.log;
    this.sessions = init.sessions;
    this.settings = init.settings;
    this.principal = init.principal;
    this.session = init.session;
    this.share = init.share;
    this.shareSpelling = init.shareSpelling;
    this.path = init.path;
    this.expectContinue = init.expectContinue;
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  href(path: string = this.path, collection = false): string {
    return hrefOf(this.shareSpelling, path, collection);
  }

  /** Sends `100 Continue` once, when the client asked for it, before the body is read. */
  continue(): void {
    if (this.expectContinue && !this.continued && !this.res.headersSent) {
      this.continued = true;
      this.res.writeContinue();
    }
  }

  /** Whether the request announces a body (Content-Length > 0 or chunked). */
  hasBody(): boolean {
    const len = this.req.headers['content-length'];
    if (len !== undefined) return len !== '0';
    return this.req.headers['transfer-encoding'] !== undefined;
  }

  /** Reads the whole (small) body, refusing more than `max` bytes with 413. */
  async body(max: number = this.settings.xmlLimits.maxBytes): Promise<Buffer> {
    const len = this.req.headers['content-length'];
    if (len !== undefined && Number(len) > max) throw new HttpError(413, 'request body too large');
    if (!this.hasBody()) {
      this.bodyConsumed = true;
      return Buffer.alloc(0);
    }
    this.continue();
    const parts: Buffer[] = [];
    let n = 0;
    for await (const chunk of this.req as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > max) throw new HttpError(413, 'request body too large');
      parts.push(chunk);
    }
    this.bodyConsumed = true;
    return Buffer.concat(parts);
  }

  async xmlBody(): Promise<XmlElement | undefined> {
    return parseXml(await this.body(), this.settings.xmlLimits);
  }

  // ------------------------------------------------------------------ answers

  send(status: number, headers: Record<string, string | number> = {}, body?: string | Buffer): void {
    const res = this.res;
    if (res.headersSent) {
      res.end();
      return;
    }
    const buf = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (buf !== undefined || (status !== 204 && status !== 304 && status >= 200)) res.setHeader('Content-Length', buf?.length ?? 0);
    res.statusCode = status;
    res.statusMessage = reason(status);
    if (this.req.method === 'HEAD' || buf === undefined) res.end();
    else res.end(buf);
  }

  sendXml(status: number, xml: string, headers: Record<string, string | number> = {}): void {
    this.send(status, { 'Content-Type': 'application/xml; charset=utf-8', ...headers }, `<?xml version="1.0" encoding="utf-8"?>\n${xml}`);
  }

  /** Writes streamed output with backpressure. */
  async write(chunk: string | Buffer): Promise<void> {
    if (this.res.destroyed) throw new HttpError(499, 'client went away');
    if (!this.res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.res.off('drain', done);
          this.res.off('close', done);
          resolve();
        };
        this.res.on('drain', done);
        this.res.on('close', done);
      });
      if (this.res.destroyed) throw new HttpError(499, 'client went away');
    }
  }

  // ------------------------------------------------------------------ resources

  /** getattr, or undefined when the path does not exist. */
  async stat(path: string = this.path, share: string = this.share): Promise<FileAttr | undefined> {
    try {
      return await this.session.getattr(share, path);
    } catch (e) {
      if (isVfsError(e, 'ENOENT') || isVfsError(e, 'ENOTDIR')) return undefined;
      throw e;
    }
  }

  /** 409 when the parent of `path` is missing or not a collection (RFC 4918 §9.3.1, §9.7.1). */
  async requireParent(path: string, share: string = this.share): Promise<void> {
    const p = await this.stat(parentOf(path), share);
    if (!p || p.type !== 'dir') throw new HttpError(409, 'parent collection does not exist');
  }

  /** WebDAV locks covering a path (own and inherited), or [] when it does not exist. */
  async davLocks(path: string = this.path): Promise<LockInfo[]> {
    // No lock anywhere (the common case): skip the lookup (a getattr on the backend).
    if (!this.session.anyLocks) return [];
    try {
      return (await this.session.locksOn(this.share, path)).filter((l) => l.style === 'token');
    } catch (e) {
      if (isVfsError(e, 'ENOENT') || isVfsError(e, 'ENOTDIR')) return [];
      throw e;
    }
  }

  /**
   * Early 423 before a long upload: the locks that would block changing `path` (self) or adding it
   * to its parent (membership) without a submitted token. The VFS checks again when it changes.
   */
  async assertUnlocked(path: string, what: { self: boolean; parent: boolean }): Promise<void> {
    const blocking: LockInfo[] = [];
    const tokens = this.session.lockTokens;
    if (what.self) for (const l of await this.davLocks(path)) if (!tokens.has(l.token)) blocking.push(l);
    if (what.parent && path !== '/') for (const l of await this.davLocks(parentOf(path))) if (!tokens.has(l.token)) blocking.push(l);
    if (blocking.length === 0) return;
    throw new HttpError(423, 'resource is locked', { condition: 'lock-token-submitted', hrefs: await this.lockRoots(blocking) });
  }

  /** Hrefs of the roots of locks (for lock-token-submitted / no-conflicting-lock bodies). */
  async lockRoots(locks: LockInfo[]): Promise<string[]> {
    const out = new Set<string>();
    for (const l of locks) {
      const root = await this.lockRootHref(l);
      if (root !== undefined) out.add(root);
    }
    return [...out];
  }

  async lockRootHref(l: LockInfo): Promise<string | undefined> {
    try {
      const p = await this.session.pathOf(this.share, l.fileId);
      const info = l.info as LockDetails | undefined;
      return hrefOf(this.shareSpelling, p, info?.collection ?? false);
    } catch {
      return undefined;
    }
  }
}

/** What WebDAV keeps in LockInfo.info. */
export interface LockDetails {
  /** Content of the client's <D:owner> element, as self-contained XML. */
  ownerXml?: string;
  collection: boolean;
}
