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
 * collections with a trailing '/'). Both are produced in slices (security issue 15 §4: the page of a
 * 20,000-member collection held the event loop ~500 ms, its plain list 125-200 ms): the directory is
 * paged through with a yield to the event loop (setImmediate) between pages once the slice is used
 * up, the page's sort and its rows are done in slices, and the answer is written in ~256 KiB chunks
 * with backpressure. Slices are PROPFIND's (src/util/slicer.ts `Slicer`), shared by every answer
 * streaming at once. The plain list streams page by page; the HTML page (sorted, with its count
 * and truncation notice ahead of the rows) lists its entries first, at most `maxHtmlEntries`.
 * The first page is listed before the 200, so a failure to list still gets its status; a later one
 * cuts the connection.
 */
import { randomBytes } from 'node:crypto';
import rangeParser from 'range-parser';
import type { FileAttr } from '../../../src/vfs/types.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import { isVfsError } from '../../../src/vfs/errors.ts';
import type { DavContext } from '../context.ts';
import { streamRange, type FileReader } from '../file-stream.ts';
import { HttpError } from '../errors.ts';
import { checkPreconditions, parseHttpDate } from '../conditional.ts';
import { contentTypeOf, etagOf, httpDate } from '../properties.ts';
import { baseNameOf } from '../paths.ts';
import { storedContentHeaders } from '../content-policy.ts';
import { newPageNonce, uiPagePolicy } from '../ui/index.ts';
import { collectionPageParts, renderRow, sortEntriesInSlices } from '../ui/collection-page.ts';
import { Slicer } from '../../../src/util/slicer.ts';

/** More ranges than this in one request are served as the whole file (abuse guard). */
const MAX_RANGES = 64;
const READ = { read: true, write: false, delete: false };

export async function get(ctx: DavContext): Promise<void> {
  // A file while no lock exists anywhere (the common case): open, attributes, reads and close in ONE
  // session gate (Session.readFile) instead of four. Anything else — a directory, a symbolic link,
  // a refusal, a lock somewhere (the If header, lock checks of reads) — takes the general path
  // below, which answers as it always did: only ENOENT/ENOTDIR are answered from here, as there.
  if (!ctx.session.anyLocks) {
    let opened = false;
    try {
      return await ctx.session.readFile(ctx.share, ctx.path, 'get', (f) => {
        opened = true;
        return sendFile(ctx, f.attr, f.read, f.whole);
      });
    } catch (e) {
      if (opened || isVfsError(e, 'ENOENT') || isVfsError(e, 'ENOTDIR')) throw e;
    }
  }
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
    await sendFile(ctx, await ctx.session.attrAtOpen(h), readerOf(ctx, h));
  } finally {
    await ctx.session.close(h).catch(() => undefined);
  }
}

const readerOf = (ctx: DavContext, h: Handle): FileReader => (offset, target) => ctx.session.readInto(h, offset, target);

/** The path without an open handle: used when opening failed for a reason other than absence. */
async function getByAttr(ctx: DavContext): Promise<void> {
  const attr = await ctx.session.getattr(ctx.share, ctx.path);
  if (attr.type === 'dir') return collection(ctx, attr);
  let h: Handle | undefined;
  const pre = preconditionAnswer(ctx, attr);
  if (pre) return pre();
  try {
    h = await ctx.session.open(ctx.share, ctx.path, { access: READ, owner: 'get', expect: 'file' });
    await sendFile(ctx, attr, readerOf(ctx, h));
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

/** Answers a GET/HEAD of a file, its bytes read through `read` (or taken from `whole`: ReadableFile.whole). */
async function sendFile(ctx: DavContext, attr: FileAttr, read: FileReader, whole?: (start: number, end: number) => Buffer): Promise<void> {
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
    return streamRange(res, read, 0, size - 1, true, whole);
  }
  if (ranges.length === 1) {
    const r = ranges[0]!;
    res.writeHead(206, { ...base, 'Content-Range': `bytes ${r.start}-${r.end}/${size}`, 'Content-Length': r.end - r.start + 1 });
    return streamRange(res, read, r.start, r.end, true, whole);
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
    await streamRange(res, read, ranges[i]!.start, ranges[i]!.end, false);
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

/** Entries of a listing, a page at a time; `truncated` once an entry past the limit was seen. */
interface EntrySource {
  next(): Promise<Entry[] | undefined>;
  readonly truncated: boolean;
}

/** Listing answers are written in chunks of about this size (as PROPFIND's). */
const BATCH_CHARS = 256 * 1024;
/**
 * Entries per readdir page. A page is listed in one piece (on a local disk with inline lstats,
 * ~3 ms per 250 members on the loaded development VM), and a turn of the event loop runs one page of
 * every listing in progress, so smaller pages than PROPFIND's 1000 keep those turns short; the
 * listing's CPU did not change measurably (20,000 members, 250 against 1000).
 */
const PAGE = 250;

/**
 * Pages through a directory, at most `max` entries; before each page after the first it yields to
 * the event loop when the slice is used up (listing a page is itself synchronous work on a local
 * disk: inline lstats, ~5-10 ms per 1000 members).
 */
class DirPages implements EntrySource {
  private cookie: bigint | undefined;
  private done = false;
  private count = 0;
  truncated = false;
  private readonly ctx: DavContext;
  private readonly max: number;
  private readonly slicer: Slicer;
  constructor(ctx: DavContext, max: number, slicer: Slicer) {
    this.ctx = ctx;
    this.max = max;
    this.slicer = slicer;
  }
  async next(): Promise<Entry[] | undefined> {
    if (this.done) return undefined;
    if (this.cookie !== undefined && this.slicer.due()) await this.slicer.yield();
    const ctx = this.ctx;
    const page = await ctx.session.readdir(ctx.share, ctx.path, this.cookie === undefined ? { limit: PAGE } : { cookie: this.cookie, limit: PAGE });
    const out: Entry[] = [];
    for (const e of page.entries) {
      if (this.count >= this.max) {
        this.truncated = true;
        this.done = true;
        return out;
      }
      this.count++;
      out.push({ name: e.name, type: e.attr.type, size: e.attr.size, mtimeMs: Number(e.attr.mtimeNs / 1_000_000n) });
    }
    if (page.eof || page.entries.length === 0) this.done = true;
    else this.cookie = page.entries.at(-1)!.cookie;
    return out;
  }
}

/** Entries known in advance (the list of shares). */
function fixedEntries(entries: Entry[]): EntrySource {
  let given = false;
  return {
    truncated: false,
    next: async () => (given ? undefined : ((given = true), entries)),
  };
}

function wantsHtml(ctx: DavContext): boolean {
  return /\btext\/html\b/i.test(ctx.header('accept') ?? '');
}

async function collection(ctx: DavContext, attr: FileAttr): Promise<void> {
  const readOnly = ctx.principal.guest || !ctx.sessions.acl(ctx.share, 'webdav').acl.allows(ctx.principal, 'write', ctx.path);
  const slicer = new Slicer();
  try {
    const pages = new DirPages(ctx, ctx.settings.maxHtmlEntries, slicer);
    await sendListing(ctx, slicer, ctx.share, ctx.path, ctx.href(ctx.path, true), pages, readOnly, etagOf(attr));
  } finally {
    slicer.close();
  }
}

async function sendListing(ctx: DavContext, slicer: Slicer, share: string, path: string, baseUrl: string, source: EntrySource, readOnly: boolean, etag?: string): Promise<void> {
  const headers: Record<string, string> = { 'Cache-Control': 'no-cache', Vary: 'Accept' };
  if (etag !== undefined) headers['ETag'] = `W/${etag}`;
  const head = ctx.req.method === 'HEAD';
  if (wantsHtml(ctx)) {
    // The page is sorted and says how many entries it shows before the rows: list them all first
    // (a HEAD only the first page, for the status).
    const entries: Entry[] = [];
    for (let page = await source.next(); page; page = head ? undefined : await source.next()) for (const e of page) entries.push(e);
    const nonce = newPageNonce();
    ctx.res.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': uiPagePolicy(nonce) });
    if (head) return void ctx.res.end();
    const parts = collectionPageParts({ share, path, baseUrl, entries, user: ctx.principal.user, readOnly, truncated: source.truncated, nonce });
    const sorted = await sortEntriesInSlices(entries, slicer);
    let chunk = parts.head;
    for (const e of sorted) {
      chunk += renderRow(e, baseUrl);
      if (chunk.length >= BATCH_CHARS) {
        await ctx.write(chunk);
        chunk = '';
      }
      if (slicer.due()) await slicer.yield();
    }
    await ctx.write(chunk + parts.tail);
    ctx.res.end();
    return;
  }
  // Names are chosen by users: the plain list keeps the server's sandboxing default policy.
  let page = await source.next();
  ctx.res.writeHead(200, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
  if (head) return void ctx.res.end();
  let chunk = '';
  for (; page; page = await source.next()) {
    for (const e of page) chunk += e.type === 'dir' ? `${e.name}/\n` : `${e.name}\n`;
    if (chunk.length >= BATCH_CHARS) {
      await ctx.write(chunk);
      chunk = '';
    }
  }
  if (chunk !== '') await ctx.write(chunk);
  ctx.res.end();
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
  const slicer = new Slicer();
  try {
    await sendListing(ctx, slicer, '', '/', '/', fixedEntries(entries), true);
  } finally {
    slicer.close();
  }
}
