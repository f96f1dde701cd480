/**
 * A deliberately tiny WebDAV-ish HTTP server over a directory, for driving the browser UI with a
 * real browser before (and independently of) the real gateway: Basic auth, GET (HTML listing via
 * renderCollectionPage, file download), PUT, MKCOL, MOVE, DELETE and the UI assets. It answers
 * the way RFC 4918 says the real server must for the cases the UI relies on (201/204, 405 on an
 * existing MKCOL target, 409 on a missing parent, 412 on MOVE with Overwrite: F).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UI_ASSET_PREFIX, renderCollectionPage, serveUiAsset, type UiEntry } from '../../protocols/webdav/ui/index.ts';

export interface MiniDavOptions {
  root: string;
  share: string;
  user: string;
  password: string;
  readOnly?: boolean;
}

export interface LoggedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export class MiniDavServer {
  readonly opts: MiniDavOptions;
  /** Every request after authentication, for asserting what the page sent. */
  readonly log: LoggedRequest[] = [];
  /** When set, PUT answers this status without writing (fault injection: 403, 507, ...). */
  putStatus: number | undefined;
  /** When set, PUT reads the whole body, then waits for this before writing and answering. */
  putGate: Promise<void> | undefined;
  /** When set, at most this many entries are listed and the page says the listing is truncated. */
  listLimit: number | undefined;
  private server: Server | undefined;
  port = 0;

  constructor(opts: MiniDavOptions) {
    this.opts = opts;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get baseUrl(): string {
    return `/${encodeURIComponent(this.opts.share)}/`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(String(e));
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = undefined;
  }

  private authorized(req: IncomingMessage): string | undefined {
    const h = req.headers.authorization ?? '';
    if (!h.startsWith('Basic ')) return undefined;
    const [user, ...rest] = Buffer.from(h.slice(6), 'base64').toString('utf8').split(':');
    return user === this.opts.user && rest.join(':') === this.opts.password ? user : undefined;
  }

  /** URL path -> path segments inside the share, or undefined when outside it or malformed. */
  private segments(urlPath: string): string[] | undefined {
    const prefix = this.baseUrl;
    const p = urlPath === prefix.slice(0, -1) ? prefix : urlPath;
    if (!p.startsWith(prefix)) return undefined;
    try {
      const segs = p.slice(prefix.length).split('/').filter((s) => s !== '').map(decodeURIComponent);
      return segs.some((s) => s === '.' || s === '..' || s.includes('/') || s.includes('\0')) ? undefined : segs;
    } catch {
      return undefined;
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const method = req.method ?? 'GET';
    // The real gateway serves these without authentication and with this policy on every page.
    res.setHeader('Content-Security-Policy', "default-src 'self'");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if ((method === 'GET' || method === 'HEAD') && url.pathname.startsWith(UI_ASSET_PREFIX)) {
      const asset = serveUiAsset(url.pathname.slice(UI_ASSET_PREFIX.length));
      if (!asset) return void res.writeHead(404).end();
      res.writeHead(200, { 'Content-Type': asset.type, 'Content-Length': asset.body.length, 'Cache-Control': 'public, max-age=31536000, immutable' });
      return void res.end(method === 'HEAD' ? undefined : asset.body);
    }
    const user = this.authorized(req);
    if (!user) {
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': `Basic realm="Portico", charset="UTF-8"`, 'Content-Type': 'text/plain' });
      return void res.end('Authentication required');
    }
    this.log.push({ method, url: req.url ?? '', headers: { ...req.headers } });
    if (url.pathname === '/' && (method === 'GET' || method === 'HEAD')) {
      const html = renderCollectionPage({ share: '', path: '/', baseUrl: '/', entries: [{ name: this.opts.share, type: 'dir', size: 0, mtimeMs: 0 }], user, readOnly: true });
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      return void res.end(method === 'HEAD' ? undefined : html);
    }
    const segs = this.segments(url.pathname);
    if (!segs) {
      req.resume();
      return void res.writeHead(404).end();
    }
    const fsPath = join(this.opts.root, ...segs);
    const writes = method === 'PUT' || method === 'MKCOL' || method === 'MOVE' || method === 'DELETE';
    if (writes && this.opts.readOnly) {
      req.resume();
      return void res.writeHead(403).end();
    }
    switch (method) {
      case 'GET':
      case 'HEAD':
        return this.get(req, res, url, segs, fsPath, user);
      case 'PUT':
        return this.put(req, res, fsPath);
      case 'MKCOL':
        req.resume();
        return this.mkcol(res, fsPath);
      case 'MOVE':
        req.resume();
        return this.move(req, res, fsPath);
      case 'DELETE':
        req.resume();
        if (segs.length === 0) return void res.writeHead(403).end();
        if (!(await exists(fsPath))) return void res.writeHead(404).end();
        await rm(fsPath, { recursive: true, force: true });
        return void res.writeHead(204).end();
      default:
        req.resume();
        return void res.writeHead(405, { Allow: 'GET, HEAD, PUT, MKCOL, MOVE, DELETE' }).end();
    }
  }

  private async get(req: IncomingMessage, res: ServerResponse, url: URL, segs: string[], fsPath: string, user: string): Promise<void> {
    const st = await stat(fsPath).catch(() => undefined);
    if (!st) return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found');
    if (st.isDirectory()) {
      if (!url.pathname.endsWith('/')) return void res.writeHead(301, { Location: `${url.pathname}/` }).end();
      if (!(req.headers.accept ?? '').includes('text/html')) return void res.writeHead(405).end();
      const names = await readdir(fsPath);
      const entries: UiEntry[] = [];
      for (const name of names) {
        const s = await lstat(join(fsPath, name));
        const type = s.isSymbolicLink() ? 'symlink' : s.isDirectory() ? 'dir' : 'file';
        entries.push({ name, type, size: s.size, mtimeMs: s.mtimeMs });
      }
      const limit = this.listLimit;
      const html = renderCollectionPage({
        share: this.opts.share,
        path: segs.join('/'),
        baseUrl: `${this.baseUrl}${segs.map((s) => `${encodeURIComponent(s)}/`).join('')}`,
        entries: limit === undefined ? entries : entries.slice(0, limit),
        user,
        readOnly: this.opts.readOnly ?? false,
        truncated: limit !== undefined && entries.length > limit,
      });
      const body = Buffer.from(html);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
      return void res.end(req.method === 'HEAD' ? undefined : body);
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': st.size });
    if (req.method === 'HEAD') return void res.end();
    await pipeline(createReadStream(fsPath), res);
  }

  private async put(req: IncomingMessage, res: ServerResponse, fsPath: string): Promise<void> {
    if (this.putStatus !== undefined) {
      req.resume();
      await new Promise((r) => req.once('end', r));
      return void res.writeHead(this.putStatus).end();
    }
    if (this.putGate) {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      await this.putGate;
      if (res.destroyed) return; // the browser gave up (Cancel)
      await writeFile(fsPath, Buffer.concat(chunks));
      return void res.writeHead(201).end();
    }
    const parent = await stat(join(fsPath, '..')).catch(() => undefined);
    if (!parent?.isDirectory()) {
      req.resume();
      return void res.writeHead(409).end();
    }
    const before = await stat(fsPath).catch(() => undefined);
    if (before?.isDirectory()) {
      req.resume();
      return void res.writeHead(405).end();
    }
    await pipeline(req, createWriteStream(fsPath));
    res.writeHead(before ? 204 : 201).end();
  }

  private async mkcol(res: ServerResponse, fsPath: string): Promise<void> {
    if (await exists(fsPath)) return void res.writeHead(405).end();
    const parent = await stat(join(fsPath, '..')).catch(() => undefined);
    if (!parent?.isDirectory()) return void res.writeHead(409).end();
    await mkdir(fsPath);
    res.writeHead(201).end();
  }

  private async move(req: IncomingMessage, res: ServerResponse, fsPath: string): Promise<void> {
    const dest = req.headers.destination;
    if (typeof dest !== 'string') return void res.writeHead(400).end();
    let destUrl: URL;
    try {
      destUrl = new URL(dest);
    } catch {
      return void res.writeHead(400).end();
    }
    if (destUrl.host !== `127.0.0.1:${this.port}`) return void res.writeHead(502).end();
    const destSegs = this.segments(destUrl.pathname);
    if (!destSegs || destSegs.length === 0) return void res.writeHead(403).end();
    if (!(await exists(fsPath))) return void res.writeHead(404).end();
    const target = join(this.opts.root, ...destSegs);
    const existed = await exists(target);
    if (existed && req.headers.overwrite === 'F') return void res.writeHead(412).end();
    const parent = await stat(join(target, '..')).catch(() => undefined);
    if (!parent?.isDirectory()) return void res.writeHead(409).end();
    if (existed) await rm(target, { recursive: true, force: true });
    await rename(fsPath, target);
    res.writeHead(existed ? 204 : 201).end();
  }
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined)) !== undefined;
}
