/**
 * GET and HEAD (RFC 7231 §4.3.1, RFC 7232, RFC 7233).
 *
 * Files: ETag (file id + change counter), Last-Modified, conditional requests (304/412), and byte
 * ranges pushed down to the VFS as ranged reads — one range as 206, several as
 * multipart/byteranges, unsatisfiable as 416, a malformed Range ignored (200, RFC 7233 §3.1),
 * If-Range honoured. Bodies stream through file-stream.ts (pooled 1 MiB buffers, reads overlapped
 * with writes; a small file in one exact read).
 *
 * File contents carry the policy headers of content-policy.ts (a sandboxing CSP, and
 * `Content-Disposition: attachment` for types a browser would run), so that a file uploaded by one
 * user never runs as the gateway's origin in another user's browser.
 *
 * Collections: with `Accept: text/html`, the browser UI's listing page (protocols/webdav/ui) under
 * its own strict CSP with a fresh nonce; otherwise a plain-text list of names (one per line,
 * collections with a trailing '/').
 */
import { randomBytes } from 'node:crypto';
import rangeParser from 'range-parser';
import type { FileAttr } from '../../../src/vfs/types.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import { isVfsError } from '../../../src/vfs/errors.ts';
import type { DavContext } from '../context.ts';
import { streamRange } from '../file-stream.ts';
import { HttpError } from '../errors.ts';
import { checkPreconditions, parseHttpDate } from '../conditional.ts';
import { contentTypeOf, etagOf, httpDate } from '../properties.ts';
import { baseNameOf } from '../paths.ts';
import { storedContentHeaders } from '../content-policy.ts';
import { newPageNonce, renderCollectionPage, uiPagePolicy } from '../ui/index.ts';

/** More ranges than this in one request are served as the whole file (abuse guard). */
const MAX_RANGES = 64;
const READ = { read: true, write: false, delete: false };

export async function get(ctx: DavContext): Promise<void> {
  // Open first: the open's own lookup gives the attributes (Session.attrAtOpen), so a GET costs
  // the open plus the reads, not a getattr, an open and the reads.
  let h: Handle;
  try {
    h = await ctx.session.open(ctx.share, ctx.path, { access: READ, owner: 'get' });
  } catch (e) {
    if (isVfsError(e, 'ENOENT') || isVfsError(e, 'ENOTDIR')) throw e;
    // Anything else (a symbolic link, a sharing violation, ...) keeps the answers it always had:
    // a conditional request may still get its 304/412 without opening the file.
    return getByAttr(ctx);
  }
  try {
    if (h.type === 'dir') return await collection(ctx, await ctx.session.attrAtOpen(h));
    await sendFile(ctx, h, await ctx.session.attrAtOpen(h));
  } finally {
    await ctx.session.close(h).catch(() => undefined);
  }
}

/** The path without an open handle: used when opening failed for a reason other than absence. */
async function getByAttr(ctx: DavContext): Promise<void> {
  const attr = await ctx.session.getattr(ctx.share, ctx.path);
  if (attr.type === 'dir') return collection(ctx, attr);
  let h: Handle | undefined;
  const pre = preconditionAnswer(ctx, attr);
  if (pre) return pre();
  try {
    h = await ctx.session.open(ctx.share, ctx.path, { access: READ, owner: 'get', expect: 'file' });
    await sendFile(ctx, h, attr);
  } finally {
    if (h) await ctx.session.close(h).catch(() => undefined);
  }
}

function baseHeaders(ctx: DavContext, attr: FileAttr): Record<string, string | number> {
  return {
    ETag: etagOf(attr),
    'Last-Modified': httpDate(attr.mtimeNs),
    'Accept-Ranges': 'bytes',
    'Content-Type': contentTypeOf(baseNameOf(ctx.path)),
  };
}

/** The 304/412 answer when a precondition stops the request, else undefined. */
function preconditionAnswer(ctx: DavContext, attr: FileAttr): (() => void) | undefined {
  const pre = checkPreconditions(ctx, attr);
  if (pre === 304) return () => ctx.send(304, { ETag: etagOf(attr), 'Last-Modified': httpDate(attr.mtimeNs) });
  if (pre === 412) throw new HttpError(412, 'precondition failed');
  return undefined;
}

/** Answers a GET/HEAD of a file from an open handle. */
async function sendFile(ctx: DavContext, h: Handle, attr: FileAttr): Promise<void> {
  const pre = preconditionAnswer(ctx, attr);
  if (pre) return pre();
  const base = baseHeaders(ctx, attr);
  const etag = base.ETag as string;
  const size = attr.size;
  let ranges: Array<{ start: number; end: number }> | undefined;
  const rangeHeader = ctx.header('range');
  if (rangeHeader !== undefined && ctx.req.method === 'GET' && ifRangeHolds(ctx.header('if-range'), etag, attr)) {
    const r = rangeParser(size, rangeHeader, { combine: true });
    if (r === -1) {
      return ctx.send(416, { ...base, 'Content-Range': `bytes */${size}`, 'Content-Type': 'text/plain; charset=utf-8' }, 'range not satisfiable\n');
    }
    if (r !== -2 && r.type === 'bytes' && r.length > 0 && r.length <= MAX_RANGES) ranges = [...r];
  }

  const res = ctx.res;
  Object.assign(base, storedContentHeaders(baseNameOf(ctx.path), String(base['Content-Type'])));
  if (ranges === undefined) {
    res.writeHead(200, { ...base, 'Content-Length': size });
    if (ctx.req.method === 'HEAD' || size === 0) return void res.end();
    return streamRange(res, ctx.session, h, 0, size - 1, true);
  }
  if (ranges.length === 1) {
    const r = ranges[0]!;
    res.writeHead(206, { ...base, 'Content-Range': `bytes ${r.start}-${r.end}/${size}`, 'Content-Length': r.end - r.start + 1 });
    return streamRange(res, ctx.session, h, r.start, r.end, true);
  }
  const boundary = randomBytes(12).toString('hex');
  const type = String(base['Content-Type']);
  const heads = ranges.map((r, i) => `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`);
  const tail = `\r\n--${boundary}--\r\n`;
  let length = Buffer.byteLength(tail);
  ranges.forEach((r, i) => (length += Buffer.byteLength(heads[i]!) + r.end - r.start + 1));
  res.writeHead(206, { ...base, 'Content-Type': `multipart/byteranges; boundary=${boundary}`, 'Content-Length': length });
  for (let i = 0; i < ranges.length; i++) {
    await ctx.write(heads[i]!);
    await streamRange(res, ctx.session, h, ranges[i]!.start, ranges[i]!.end, false);
  }
  await ctx.write(tail);
  res.end();
}

/** RFC 7233 §3.2: a Range applies only when If-Range (an ETag or the exact date) still matches. */
function ifRangeHolds(v: string | undefined, etag: string, attr: FileAttr): boolean {
  if (v === undefined) return true;
  const t = v.trim();
  if (t.startsWith('"') || t.startsWith('W/')) return t === etag;
  const d = parseHttpDate(t);
  return d !== undefined && Math.floor(d / 1000) === Math.floor(Number(attr.mtimeNs / 1_000_000n) / 1000);
}

interface Entry {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mtimeMs: number;
}

/** Pages through a directory; stops at `max`. */
async function listEntries(ctx: DavContext, max: number): Promise<{ entries: Entry[]; truncated: boolean }> {
  const entries: Entry[] = [];
  let cookie: bigint | undefined;
  for (;;) {
    const page = await ctx.session.readdir(ctx.share, ctx.path, cookie === undefined ? { limit: 1000 } : { cookie, limit: 1000 });
    for (const e of page.entries) {
      if (entries.length >= max) return { entries, truncated: true };
      entries.push({ name: e.name, type: e.attr.type, size: e.attr.size, mtimeMs: Number(e.attr.mtimeNs / 1_000_000n) });
    }
    if (page.eof || page.entries.length === 0) return { entries, truncated: false };
    cookie = page.entries.at(-1)!.cookie;
  }
}

function wantsHtml(ctx: DavContext): boolean {
  return /\btext\/html\b/i.test(ctx.header('accept') ?? '');
}

async function collection(ctx: DavContext, attr: FileAttr): Promise<void> {
  const { entries, truncated } = await listEntries(ctx, ctx.settings.maxHtmlEntries);
  const readOnly = ctx.principal.guest || !ctx.sessions.acl(ctx.share, 'webdav').acl.allows(ctx.principal, 'write', ctx.path);
  sendListing(ctx, ctx.share, ctx.path, ctx.href(ctx.path, true), entries, truncated, readOnly, etagOf(attr));
}

function sendListing(ctx: DavContext, share: string, path: string, baseUrl: string, entries: Entry[], truncated: boolean, readOnly: boolean, etag?: string): void {
  const headers: Record<string, string> = { 'Cache-Control': 'no-cache', Vary: 'Accept' };
  if (etag !== undefined) headers['ETag'] = `W/${etag}`;
  if (wantsHtml(ctx)) {
    const nonce = newPageNonce();
    const html = renderCollectionPage({ share, path, baseUrl, entries, user: ctx.principal.user, readOnly, truncated, nonce });
    ctx.send(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': uiPagePolicy(nonce) }, html);
    return;
  }
  // Names are chosen by users: the plain list keeps the server's sandboxing default policy.
  const text = entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name)).join('\n') + (entries.length > 0 ? '\n' : '');
  ctx.send(200, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }, text);
}

/** GET on `/`: the shares this principal may see. */
export async function getRoot(ctx: DavContext): Promise<void> {
  const entries: Entry[] = [];
  for (const share of ctx.sessions.sharesFor(ctx.principal, 'webdav')) {
    let mtimeMs = 0;
    try {
      mtimeMs = Number((await ctx.session.getattr(share, '/')).mtimeNs / 1_000_000n);
    } catch {
      // A share whose backend is down is still listed.
    }
    entries.push({ name: share, type: 'dir', size: 0, mtimeMs });
  }
  sendListing(ctx, '', '/', '/', entries, false, true);
}
