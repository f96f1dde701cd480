/**
 * PROPFIND (RFC 4918 §9.1): Depth 0 and 1; Depth infinity (also what a missing Depth means) is
 * refused with 403 `propfind-finite-depth` unless `protocols.webdav.depthInfinity` is on, and is then
 * bounded by an entry count. allprop (with include), propname and prop.
 *
 * The multistatus is streamed: the header goes out first and each `<D:response>` is written as the
 * directory is paged through with readdir cookies, with backpressure; nothing is collected whole.
 * A failure after the 207 started cuts the connection (the status cannot change any more).
 *
 * Work bounds (security issue 15: one PROPFIND naming 45,000 properties on a 500-member folder made
 * a 603 MB answer and stalled every other request for seconds):
 * - At most `maxPropfindProperties` names per request, refused with 413 while the body is parsed
 *   (the parser stops at the limit: parsing the 45,000 names alone took 60-360 ms of one thread).
 *   413 because the request content asks for more than the server processes, as the XML element
 *   limit already answers; the client can split the names over several requests.
 * - The answer's size is estimated before the 207: the first response (the resource itself,
 *   rendered anyway) times the members, counted from up to LOOKAHEAD members listed ahead. Over
 *   `maxPropfindResponseBytes` -> 403 naming the limit, for the reason RFC 4918 answers an unbounded
 *   Depth with 403 (propfind-finite-depth): the server declines to produce an answer this large,
 *   and the request as made will never succeed, so it is a client error (a 5xx such as 507 would
 *   count as a server failure in monitors and invite retries). A larger directory than the
 *   lookahead is counted while streaming, and the connection is cut when the bound is passed — a
 *   truncated multistatus would look like a complete listing to a sync client, which may then
 *   delete what it did not see.
 * - Rendering and paging yield to the event loop (setImmediate) after a slice of work (src/util/slicer.ts: SLICE_MS
 *   shared by the answers in progress) and wait for the socket to drain (ctx.write), so large
 *   answers cannot hold the loop: /health and other clients' requests run between slices.
 */
import { Slicer } from '../../../src/util/slicer.ts';
import type { FileAttr, ReaddirResult } from '../../../src/vfs/types.ts';
import type { PropRow } from '../../../src/store/metadata-store.ts';
import type { DavContext } from '../context.ts';
import { HttpError } from '../errors.ts';
import { MULTISTATUS_CLOSE, MULTISTATUS_OPEN, prepareRequest, renderResponse, type DavResource, type LockEntries, type PreparedRequest, type PropRequest, type PropSources, type QName, type Quota } from '../properties.ts';
import { baseNameOf, childHref, hrefOf, joinChild } from '../paths.ts';
import { DAV_NS, childElements, escapeText, isDav, parseXml, type XmlElement } from '../xml.ts';

const PAGE = 1000;
/**
 * Members listed before the 207 is sent, at most, for the size estimate: the VFS's largest page (a
 * bounded amount of listing and memory), and all of any directory up to that size, so the estimate
 * is a count there, not a guess. Only requests whose answer could pass the bound within that many
 * members list that far (and only until the bound is certainly passed); the others list their
 * first page, as before, and keep the next one listed while the current one is rendered.
 */
const LOOKAHEAD = 10_000;
/** Longest href a member adds to its collection's: a 255-byte name, every byte percent-encoded. */
const MAX_NAME_HREF = 3 * 255 + 1;
/** Elements a PROPFIND body has besides the property names: propfind, prop/allprop/include/propname. */
const BODY_ELEMENTS_BESIDES_NAMES = 8;

export function parseDepth(v: string | undefined, dflt: '0' | '1' | 'infinity' = 'infinity'): '0' | '1' | 'infinity' {
  if (v === undefined) return dflt;
  const d = v.trim().toLowerCase();
  if (d === '0' || d === '1' || d === 'infinity') return d;
  throw new HttpError(400, `bad Depth header: ${v}`);
}

function tooManyProperties(named: string, max: number): HttpError {
  return new HttpError(413, `PROPFIND names ${named} properties; at most ${max} are answered per request (protocols.webdav.maxPropfindProperties): ask for them in several requests`);
}

/**
 * Reads and parses a PROPFIND body, refusing more than maxPropfindProperties names with 413. The
 * XML parser gets an element cap just above the limit, so a body of 45,000 names stops being parsed
 * at the limit instead of being turned into a tree first.
 */
export async function readPropfindRequest(ctx: DavContext): Promise<PropRequest> {
  const max = ctx.settings.maxPropfindProperties;
  const xml = ctx.settings.xmlLimits;
  const capped = max + BODY_ELEMENTS_BESIDES_NAMES < xml.maxElements;
  const limits = capped ? { ...xml, maxElements: max + BODY_ELEMENTS_BESIDES_NAMES } : xml;
  const body = await ctx.body();
  let root: XmlElement | undefined;
  try {
    root = parseXml(body, limits);
  } catch (e) {
    // body() already enforced the byte limit parseXml checks, so a 413 from it is the element cap.
    if (capped && e instanceof HttpError && e.status === 413) throw tooManyProperties(`more than ${max}`, max);
    throw e;
  }
  const req = parsePropfindBody(root);
  const named = req.mode === 'prop' ? req.names.length : req.mode === 'allprop' ? req.include.length : 0;
  if (named > max) throw tooManyProperties(String(named), max);
  return req;
}

export function parsePropfindBody(root: XmlElement | undefined): PropRequest {
  if (!root) return { mode: 'allprop', include: [] };
  if (!isDav(root, 'propfind')) throw new HttpError(400, 'PROPFIND body must be a DAV:propfind element');
  const kids = childElements(root).filter((c) => c.ns === DAV_NS);
  const prop = kids.find((c) => c.local === 'prop');
  if (prop) return { mode: 'prop', names: childElements(prop).map((c): QName => ({ ns: c.ns, local: c.local })) };
  if (kids.some((c) => c.local === 'propname')) return { mode: 'propname' };
  if (kids.some((c) => c.local === 'allprop')) {
    const inc = kids.find((c) => c.local === 'include');
    return { mode: 'allprop', include: inc ? childElements(inc).map((c) => ({ ns: c.ns, local: c.local })) : [] };
  }
  throw new HttpError(400, 'PROPFIND body needs prop, propname or allprop');
}

/** Lazily fetched data for rendering properties during one request. */
export function propSources(ctx: DavContext, spellingOf: (share: string) => string): PropSources {
  const quotas = new Map<string, Quota | Promise<Quota>>();
  const lookupLocks = async (r: DavResource): Promise<LockEntries> => {
    const locks = (await ctx.session.locksOn(r.share, r.path)).filter((l) => l.style === 'token');
    const out: LockEntries = [];
    for (const lock of locks) {
      let root: string | undefined;
      try {
        const p = lock.fileId === r.attr.id ? r.path : await ctx.session.pathOf(r.share, lock.fileId);
        root = hrefOf(spellingOf(r.share), p, (lock.info as { collection?: boolean } | undefined)?.collection ?? false);
      } catch {
        root = undefined;
      }
      out.push({ lock, root });
    }
    return out;
  };
  return {
    deadProps: (r) => (r.share === '' ? [] : ctx.session.getProps(r.share, r.path)),
    // No lock anywhere (the common case): nothing to discover, no lookup per resource.
    locks: (r) => (r.share === '' || !ctx.session.anyLocks ? [] : lookupLocks(r)),
    quota: () => {
      const share = ctx.share;
      if (share === '') return undefined;
      let q = quotas.get(share);
      if (q === undefined && !quotas.has(share)) {
        const pending = ctx.session.statfs(share).then(
          (st): Quota => ({ available: st.availableBytes, used: Math.max(0, st.totalBytes - st.freeBytes) }),
          (): Quota => undefined,
        );
        // Once known, later resources get it synchronously.
        void pending.then((v) => quotas.set(share, v));
        quotas.set(share, (q = pending));
      }
      return q;
    },
  };
}

export async function propfind(ctx: DavContext): Promise<void> {
  const depth = parseDepth(ctx.header('depth'));
  if (depth === 'infinity' && !ctx.settings.depthInfinity) {
    throw new HttpError(403, 'Depth: infinity PROPFIND is disabled', { condition: 'propfind-finite-depth' });
  }
  const req = await readPropfindRequest(ctx);
  const attr = await ctx.session.getattr(ctx.share, ctx.path);
  const src = propSources(ctx, () => ctx.shareSpelling);
  const isDir = attr.type === 'dir';
  const self: DavResource = {
    share: ctx.share,
    path: ctx.path,
    href: ctx.href(ctx.path, isDir),
    attr,
    name: ctx.path === '/' ? ctx.shareSpelling : baseNameOf(ctx.path),
  };
  // Render the first response before committing to 207, so a failure here still gets its status.
  const first = await renderResponse(self, req, src);
  const slicer = new Slicer();
  try {
    const out = new Output(ctx, ctx.settings.maxPropfindResponseBytes, slicer);
    let members: Lister | undefined;
    let ahead: { pages: Page[]; eof: boolean } = { pages: [], eof: true };
    if (isDir && depth !== '0') {
      members = new Lister(ctx, prepareRequest(req), ctx.path, slicer);
      // Listed before the 207 too: for the size check, and a failure to list still gets its status.
      ahead = await members.lookahead(lookaheadFor(ctx, self, first));
    }
    checkEstimate(ctx, self, first, ahead, depth === 'infinity');
    ctx.res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
    out.add(MULTISTATUS_OPEN + first);
    await out.flush();
    if (members) {
      const budget = { left: ctx.settings.maxInfinityEntries };
      await walk(ctx, req, src, members, self.href, depth === 'infinity', budget, out);
    }
    out.add(MULTISTATUS_CLOSE);
    await out.flush();
    ctx.res.end();
  } finally {
    slicer.close();
  }
}

/** Size of the answer for the resource itself and the multistatus around it. */
function fixedSize(first: string): number {
  return MULTISTATUS_OPEN.length + first.length + MULTISTATUS_CLOSE.length;
}

/** What one member is estimated to add besides its name: its response with its own href. */
function perMemberOf(self: DavResource, first: string): number {
  return first.length - escapeText(self.href).length + self.href.length;
}

/**
 * Members to list before the 207: 1 (the first page) when even LOOKAHEAD members with the longest
 * names could not pass the bound (allprop: ~1.4 KB each at worst, 14 MB for 10,000), else as many
 * as make passing it certain, up to LOOKAHEAD.
 */
function lookaheadFor(ctx: DavContext, self: DavResource, first: string): number {
  const room = ctx.settings.maxPropfindResponseBytes - fixedSize(first);
  const least = perMemberOf(self, first) + 1;
  if ((least + MAX_NAME_HREF) * LOOKAHEAD <= room) return 1;
  return Math.max(1, Math.min(LOOKAHEAD, Math.floor(room / least) + 1));
}

/**
 * 403 when the answer would exceed maxPropfindResponseBytes: each member is taken to cost what the
 * resource's own response cost, with the member's href instead of its own. Exact for a `prop`
 * request (the same names for every member) up to property values; allprop's dead properties vary
 * per member, which the count while streaming (Output) catches. Past the lookahead the count of
 * members is a lower bound, so a refusal is certain and a pass is not.
 */
function checkEstimate(ctx: DavContext, self: DavResource, first: string, ahead: { pages: Page[]; eof: boolean }, recurse: boolean): void {
  const max = ctx.settings.maxPropfindResponseBytes;
  const perMember = perMemberOf(self, first);
  let members = 0;
  let estimate = fixedSize(first);
  for (const page of ahead.pages) {
    for (const e of page.entries) {
      members++;
      // The member's href is its collection's plus its name (percent-encoding may add a little).
      estimate += perMember + e.name.length + 1;
    }
  }
  if (estimate <= max) return;
  const atLeast = ahead.eof && !recurse ? '' : 'at least ';
  throw new HttpError(
    403,
    `the PROPFIND answer would be ${atLeast}${estimate} bytes (${members} members, ~${perMember} bytes each), more than protocols.webdav.maxPropfindResponseBytes (${max}): ask for fewer properties (or have the limit raised)`,
  );
}

/**
 * Responses are collected into writes of about this size: every socket write is a system call
 * that, on loopback, also runs the receiver's TCP path (64 KiB batches cost a 10,000-entry
 * PROPFIND about 65 writev calls; 256 KiB about 17).
 */
const BATCH_BYTES = 256 * 1024;


/**
 * The streamed answer: collects responses into writes of about BATCH_BYTES (one chunk each)
 * instead of one per entry, counts the answer against maxPropfindResponseBytes, and tells the
 * renderer when to pause (a write is due, or the time slice is used up).
 */
class Output {
  private parts: string[] = [];
  private size = 0;
  /** Characters produced so far (bytes for the ASCII that multistatus answers mostly are). */
  private total = 0;
  private readonly ctx: DavContext;
  private readonly max: number;
  readonly slicer: Slicer;
  constructor(ctx: DavContext, max: number, slicer: Slicer) {
    this.ctx = ctx;
    this.max = max;
    this.slicer = slicer;
  }
  /** Adds a response; true when `pause()` is due. Synchronous: called once per member. */
  add(s: string): boolean {
    this.parts.push(s);
    this.size += s.length;
    this.total += s.length;
    if (this.total > this.max) {
      // Past the estimate (a directory larger than the lookahead, large dead properties): the 207
      // is out, so the answer can only be cut (see the header comment for why not truncated).
      throw new HttpError(500, `PROPFIND answer passed protocols.webdav.maxPropfindResponseBytes (${this.max}) while streaming; connection cut`);
    }
    return this.size >= BATCH_BYTES || this.slicer.due();
  }
  /** Writes what is due (with backpressure) and yields to the event loop when the slice is used up. */
  async pause(): Promise<void> {
    if (this.size >= BATCH_BYTES) await this.flush();
    if (this.slicer.due()) await this.slicer.yield();
  }
  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    await this.ctx.write(chunk);
  }
}

type Page = ReaddirResult & { props?: Map<string, PropRow[]> };

/**
 * The pages of one directory, the next one listed (backend round trips) while the current one is
 * rendered; `lookahead` lists pages before any is rendered and keeps them. Listing a page can be
 * synchronous work (inline lstats on a local disk, ~5-10 ms per 1000 members), so the next page is
 * asked for after a yield when the time slice is used up.
 */
class Lister {
  readonly dir: string;
  private next: Promise<Page> | undefined;
  private readonly held: Page[] = [];
  private readonly ctx: DavContext;
  private readonly needDead: boolean;
  private readonly slicer: Slicer;

  constructor(ctx: DavContext, prepared: PreparedRequest, dir: string, slicer: Slicer) {
    this.ctx = ctx;
    this.dir = dir;
    this.slicer = slicer;
    // Dead properties come with each page (one store query), unless the request needs none.
    this.needDead = prepared.needDead;
    this.next = this.list(undefined);
  }

  private list(cookie: bigint | undefined): Promise<Page> {
    const opts = cookie === undefined ? { limit: PAGE } : { cookie, limit: PAGE };
    const p: Promise<Page> = this.needDead ? this.ctx.session.readdirWithProps(this.ctx.share, this.dir, opts) : this.ctx.session.readdir(this.ctx.share, this.dir, opts);
    // Awaited by page(), or abandoned when the walk stops early (507, client gone).
    p.catch(() => undefined);
    return p;
  }

  private async fetch(): Promise<Page | undefined> {
    if (!this.next) return undefined;
    const page = await this.next;
    if (page.eof || page.entries.length === 0) {
      this.next = undefined;
      return page;
    }
    if (this.slicer.due()) await this.slicer.yield();
    this.next = this.list(page.entries.at(-1)!.cookie);
    return page;
  }

  /** Lists pages ahead until `members` entries are held or the directory ends. */
  async lookahead(members: number): Promise<{ pages: Page[]; eof: boolean }> {
    let n = 0;
    while (n < members) {
      const page = await this.fetch();
      if (!page) break;
      this.held.push(page);
      n += page.entries.length;
    }
    return { pages: this.held, eof: this.next === undefined };
  }

  /** The next page (held ones first), or undefined at the end. */
  page(): Promise<Page | undefined> {
    const held = this.held.shift();
    return held ? Promise.resolve(held) : this.fetch();
  }
}

async function walk(
  ctx: DavContext,
  req: PropRequest,
  src: PropSources,
  lister: Lister,
  dirHref: string,
  recurse: boolean,
  budget: { left: number },
  out: Output,
): Promise<void> {
  const prepared = prepareRequest(req);
  const dir = lister.dir;
  for (let page = await lister.page(); page; page = await lister.page()) {
    for (const e of page.entries) {
      if (recurse && --budget.left < 0) throw new HttpError(507, 'too many resources for a Depth: infinity PROPFIND');
      let dead: PropRow[] = NO_PROPS;
      if (page.props) {
        const rows = page.props.get(e.name);
        // Absent: the principal may not read this member; as when its own getProps failed, it is left out.
        if (rows === undefined) continue;
        dead = rows;
      }
      const isDir = e.attr.type === 'dir';
      const r: DavResource = { share: ctx.share, path: joinChild(dir, e.name), href: childHref(dirHref, e.name, isDir), attr: e.attr, name: e.name };
      let xml: string;
      try {
        const rendered = prepared.render(r, dead, src);
        xml = typeof rendered === 'string' ? rendered : await rendered;
      } catch {
        // The entry vanished between readdir and its properties (a lock lookup): leave it out.
        continue;
      }
      if (out.add(xml)) await out.pause();
      if (recurse && isDir) await walk(ctx, req, src, new Lister(ctx, prepared, r.path, out.slicer), r.href, true, budget, out);
    }
  }
}

const NO_PROPS: PropRow[] = [];

function rootAttr(): FileAttr {
  const now = BigInt(Date.now()) * 1_000_000n;
  return {
    id: 0n,
    type: 'dir',
    size: 0,
    allocated: 0,
    mode: 0o555,
    uid: 0,
    gid: 0,
    nlink: 2,
    atimeNs: now,
    mtimeNs: now,
    ctimeNs: now,
    birthtimeNs: now,
    change: 0n,
    winAttributes: 0x10,
  };
}

/** PROPFIND on `/`: the virtual root, and with Depth 1 each share visible to the principal. */
export async function propfindRoot(ctx: DavContext): Promise<void> {
  const depth = parseDepth(ctx.header('depth'));
  if (depth === 'infinity' && !ctx.settings.depthInfinity) {
    throw new HttpError(403, 'Depth: infinity PROPFIND is disabled', { condition: 'propfind-finite-depth' });
  }
  const req = await readPropfindRequest(ctx);
  const src = propSources(ctx, (s) => s);
  ctx.res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
  await ctx.write(MULTISTATUS_OPEN + (await renderResponse({ share: '', path: '/', href: '/', attr: rootAttr(), name: '' }, req, src)));
  if (depth !== '0') {
    for (const share of ctx.sessions.sharesFor(ctx.principal, 'webdav')) {
      let attr: FileAttr;
      try {
        attr = await ctx.session.getattr(share, '/');
      } catch {
        continue;
      }
      await ctx.write(await renderResponse({ share, path: '/', href: hrefOf(share, '/', true), attr, name: share }, req, src));
    }
  }
  await ctx.write(MULTISTATUS_CLOSE);
  ctx.res.end();
}
