/**
 * The WebDAV driver: a client of the wire only (node:http, HTTP Basic, RFC 4918 methods), the way
 * rclone or davfs2 talk to a server. It knows nothing of the VFS; what it reports comes from status
 * codes and multistatus bodies.
 *
 * Mapping of the wire to scenario codes is in one place (`codeFor`). Where HTTP cannot tell two
 * POSIX errors apart the driver picks one and says so: a 409 on PUT, MKCOL or MOVE means "a missing
 * intermediate collection" (RFC 4918 §9.3.1, §9.7.1, §9.9.4), which covers both a missing parent
 * (ENOENT) and a parent that is a file (ENOTDIR); it is reported as ENOENT.
 *
 * Client-side decisions, as real clients make them: rmdir() and remove() look at the target first
 * (PROPFIND Depth 0), because DELETE removes files and whole collections alike; rmdir of a
 * non-empty collection removes it with its members (declared: `rmdirRecursive`).
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { SaxesParser } from 'saxes';
import { ClientError, type Capabilities, type ClientErrorCode, type Entry, type FileClient, type HeldLock, type ShareInfo, type Stat } from './driver.ts';

const DAV = 'DAV:';
const MS = 'urn:schemas-microsoft-com:';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The one table: HTTP status of a method's answer -> scenario code. */
function codeFor(method: string, status: number, o: { intoItself?: boolean } = {}): ClientErrorCode {
  switch (status) {
    case 400:
      return 'EINVAL';
    case 403:
      // MOVE of a collection into itself is 403 (RFC 4918 §9.9.4 shares the code with permissions).
      return method === 'MOVE' && o.intoItself === true ? 'EINVAL' : 'EACCES';
    case 404:
      return 'ENOENT';
    case 405:
      return method === 'MKCOL' ? 'EEXIST' : method === 'PUT' ? 'EISDIR' : 'ENOTSUP';
    case 409:
      return method === 'PUT' || method === 'MKCOL' || method === 'MOVE' || method === 'COPY' ? 'ENOENT' : 'ENOTDIR';
    case 412:
      return method === 'MOVE' || method === 'COPY' ? 'EEXIST' : 'EINVAL';
    case 414:
      return 'ENAMETOOLONG';
    case 423:
      return 'ELOCKED';
    case 501:
      return 'ENOTSUP';
    case 503:
      return 'EBUSY';
    case 507:
      return 'ENOSPC';
    default:
      return 'EIO';
  }
}

function fail(method: string, path: string, a: Answer, o: { intoItself?: boolean } = {}): never {
  const body = a.body.toString('utf8');
  const detail = a.body.length > 0 && a.body.length < 2000 ? ` ${body.replace(/\s+/g, ' ')}` : '';
  // 207 on DELETE, MOVE or COPY: some member failed; its status says why (RFC 4918 §9.6.1).
  const member = a.status === 207 ? /HTTP\/1\.1 (\d{3})/.exec(body) : null;
  const status = member !== null ? Number(member[1]) : a.status;
  throw new ClientError(codeFor(method, status, o), `${method} ${path}: HTTP ${a.status}${detail}`);
}

/** Percent-encodes each segment of a share path (decoded exactly once by the server). */
function encodePath(path: string): string {
  return path
    .split('/')
    .filter((s) => s !== '')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

interface PropResponse {
  /** Decoded path segments of the href. */
  segments: string[];
  collection: boolean;
  length: number | undefined;
  lastModified: string | undefined;
}

/** The few properties the driver asks for, out of a 207 multistatus (namespace-aware, bounded by the body). */
function parseMultistatus(body: Buffer): PropResponse[] {
  const out: PropResponse[] = [];
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: string[] = [];
  let cur: (PropResponse & { href: string; okProps: boolean; pending: Partial<PropResponse> }) | undefined;
  let text = '';
  parser.on('error', (e) => {
    throw new ClientError('EIO', `malformed multistatus: ${e.message}`);
  });
  parser.on('opentag', (t) => {
    const name = t.uri === DAV ? t.local : `{${t.uri}}${t.local}`;
    stack.push(name);
    text = '';
    if (name === 'response') cur = { segments: [], collection: false, length: undefined, lastModified: undefined, href: '', okProps: false, pending: {} };
    if (name === 'propstat' && cur) cur.pending = {};
    if (name === 'collection' && cur && stack.at(-2) === 'resourcetype') cur.pending.collection = true;
  });
  parser.on('text', (t) => (text += t));
  parser.on('closetag', () => {
    const name = stack.pop();
    const parent = stack.at(-1);
    if (!cur) return;
    if (name === 'href' && parent === 'response') cur.href = text.trim();
    else if (name === 'getcontentlength') cur.pending.length = Number(text.trim());
    else if (name === 'getlastmodified') cur.pending.lastModified = text.trim();
    else if (name === 'status' && parent === 'propstat') cur.okProps = / 200 /.test(text);
    else if (name === 'propstat') {
      if (cur.okProps) Object.assign(cur, cur.pending);
      cur.okProps = false;
    } else if (name === 'response') {
      const path = cur.href.replace(/^[a-z]+:\/\/[^/]*/i, '');
      const segments = path.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
      out.push({ segments, collection: cur.collection, length: cur.length, lastModified: cur.lastModified });
      cur = undefined;
    }
    text = '';
  });
  parser.write(body.toString('utf8')).close();
  return out;
}

const PROPFIND_BODY = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>`;

export interface WebdavClientOptions {
  /** http://127.0.0.1:PORT */
  origin: string;
  share: ShareInfo;
  user: string;
  password: string;
}

export function webdavClient(o: WebdavClientOptions): FileClient {
  const url = new URL(o.origin);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const auth = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;
  const base = `/${encodeURIComponent(o.share.name)}`;
  const target = (path: string): string => {
    const p = encodePath(path);
    return p === '' ? `${base}/` : `${base}/${p}`;
  };
  /** Lock tokens this client holds, by the locked resource's request target. */
  const held = new Map<string, string>();
  const parentOf = (path: string): string => path.replace(/\/[^/]*\/?$/, '') || '/';

  /**
   * The If header a change needs (RFC 4918 §10.4): a tagged list for each held lock on a resource
   * the change touches — the target itself and its parent collection (whose membership a create,
   * delete or move changes), and for MOVE the destination and its parent too.
   */
  const ifHeader = (method: string, paths: string[]): string | undefined => {
    if (held.size === 0 || method === 'GET' || method === 'PROPFIND' || method === 'UNLOCK') return undefined;
    const lists = new Set<string>();
    for (const p of paths.flatMap((x) => [x, parentOf(x)])) {
      const t = target(p);
      const token = held.get(t);
      if (token !== undefined) lists.add(`<${o.origin}${t}> (<${token}>)`);
    }
    return lists.size === 0 ? undefined : [...lists].join(' ');
  };

  const send = (method: string, path: string, headers: Record<string, string> = {}, body?: Uint8Array | string, alsoTouches: string[] = []): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const t = target(path);
      const h: Record<string, string | number> = { Authorization: auth, ...headers };
      const ifh = ifHeader(method, [path, ...alsoTouches]);
      if (ifh !== undefined) h.If = ifh;
      if (body !== undefined) h['Content-Length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
      const req = request({ host: url.hostname, port: url.port, method, path: t, headers: h, agent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  const propfind = async (path: string, depth: 0 | 1): Promise<PropResponse[]> => {
    const a = await send('PROPFIND', path, { Depth: String(depth), 'Content-Type': 'application/xml; charset=utf-8' }, PROPFIND_BODY);
    if (a.status !== 207) fail('PROPFIND', path, a);
    return parseMultistatus(a.body);
  };

  const stat = async (path: string): Promise<Stat> => {
    const [r] = await propfind(path, 0);
    if (r === undefined) throw new ClientError('EIO', `PROPFIND ${path}: empty multistatus`);
    return {
      type: r.collection ? 'dir' : 'file',
      size: r.collection ? 0 : (r.length ?? 0),
      mtimeMs: r.lastModified === undefined ? NaN : Date.parse(r.lastModified),
    };
  };

  const caps: Capabilities = {
    randomWrite: false,
    append: false,
    atomicWrite: true,
    truncate: false,
    // Win32LastModifiedTime (urn:schemas-microsoft-com:) by PROPPATCH, as the Windows WebClient sets it.
    setTimes: true,
    mtimeResolutionMs: 1000,
    symlinks: false,
    hardLinks: false,
    locks: true,
    caseInsensitive: o.share.caseInsensitive,
    renameReplacesDir: true,
    rmdirRecursive: true,
    posixNames: true,
  };

  return {
    name: 'webdav',
    caps,
    async mkdir(path) {
      const a = await send('MKCOL', path);
      if (a.status !== 201) fail('MKCOL', path, a);
    },
    async rmdir(path) {
      if ((await stat(path)).type !== 'dir') throw new ClientError('ENOTDIR', `rmdir ${path}: not a collection`);
      const a = await send('DELETE', path);
      if (a.status !== 204 && a.status !== 200) fail('DELETE', path, a);
    },
    async writeFile(path, data) {
      const a = await send('PUT', path, { 'Content-Type': 'application/octet-stream' }, data);
      if (a.status !== 201 && a.status !== 204 && a.status !== 200) fail('PUT', path, a);
    },
    async readFile(path) {
      const a = await send('GET', path);
      if (a.status !== 200) fail('GET', path, a);
      return a.body;
    },
    async readRange(path, offset, length) {
      if (length === 0) return Buffer.alloc(0);
      const a = await send('GET', path, { Range: `bytes=${offset}-${offset + length - 1}` });
      // 416: the range starts at or after EOF, which pread(2) answers with 0 bytes.
      if (a.status === 416) return Buffer.alloc(0);
      if (a.status === 206) return a.body;
      // A server may ignore Range (RFC 7233 §3.1) and send the whole body.
      if (a.status === 200) return a.body.subarray(offset, offset + length);
      fail('GET', path, a);
    },
    stat,
    async list(path) {
      const rs = await propfind(path, 1);
      const depth = path.split('/').filter((s) => s !== '').length + 1;
      // PROPFIND Depth 1 on a file answers with the file alone: listing it is ENOTDIR, as readdir(3).
      const self = rs.find((r) => r.segments.length === depth);
      if (self !== undefined && !self.collection) throw new ClientError('ENOTDIR', `list ${path}: not a collection`);
      return rs
        .filter((r) => r.segments.length === depth + 1)
        .map((r): Entry => ({ name: r.segments.at(-1)!, type: r.collection ? 'dir' : 'file' }));
    },
    async rename(from, to, opts = {}) {
      const a = await send('MOVE', from, { Destination: `${o.origin}${target(to)}`, Overwrite: opts.replace === false ? 'F' : 'T' }, undefined, [to]);
      if (a.status === 201 || a.status === 204) return;
      const f = `/${encodePath(from)}/`;
      const intoItself = `/${encodePath(to)}/`.startsWith(f);
      fail('MOVE', `${from} -> ${to}`, a, { intoItself });
    },
    async remove(path) {
      if ((await stat(path)).type === 'dir') throw new ClientError('EISDIR', `remove ${path}: a collection`);
      const a = await send('DELETE', path);
      if (a.status !== 204 && a.status !== 200) fail('DELETE', path, a);
    },
    async setTimes(path, mtimeMs) {
      const body = `<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="${MS}"><D:set><D:prop><Z:Win32LastModifiedTime>${new Date(mtimeMs).toUTCString()}</Z:Win32LastModifiedTime></D:prop></D:set></D:propertyupdate>`;
      const a = await send('PROPPATCH', path, { 'Content-Type': 'application/xml; charset=utf-8' }, body);
      if (a.status !== 207) fail('PROPPATCH', path, a);
      const statuses = [...a.body.toString('utf8').matchAll(/<(?:\w+:)?status>HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
      if (statuses.length === 0 || statuses.some((s) => s !== 200)) fail('PROPPATCH', path, { ...a, status: statuses.find((s) => s !== 200) ?? 500 });
    },
    async lock(path): Promise<HeldLock> {
      const body = `<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>scenario</D:owner></D:lockinfo>`;
      const a = await send('LOCK', path, { Depth: '0', Timeout: 'Second-60', 'Content-Type': 'application/xml; charset=utf-8' }, body);
      if (a.status !== 200 && a.status !== 201) fail('LOCK', path, a);
      const token = /<([^>]+)>/.exec(String(a.headers['lock-token'] ?? ''))?.[1];
      if (token === undefined) throw new ClientError('EIO', `LOCK ${path}: no Lock-Token header`);
      held.set(target(path), token);
      return {
        unlock: async () => {
          const u = await send('UNLOCK', path, { 'Lock-Token': `<${token}>` });
          if (u.status !== 204 && u.status !== 200) fail('UNLOCK', path, u);
          held.delete(target(path));
        },
      };
    },
    async close() {
      agent.destroy();
    },
  };
}
