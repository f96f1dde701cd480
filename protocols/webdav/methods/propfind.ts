/**
 * PROPFIND (RFC 4918 §9.1): Depth 0 and 1; Depth infinity (also what a missing Depth means) is
 * refused with 403 `propfind-finite-depth` unless `protocols.webdav.depthInfinity` is on, and is then
 * bounded by an entry count. allprop (with include), propname and prop.
 *
 * The multistatus is streamed: the header goes out first and each `<D:response>` is written as the
 * directory is paged through with readdir cookies, with backpressure; nothing is collected whole.
 * A failure after the 207 started cuts the connection (the status cannot change any more).
 */
import type { FileAttr, ReaddirResult } from '../../../src/vfs/types.ts';
import type { PropRow } from '../../../src/store/metadata-store.ts';
import type { DavContext } from '../context.ts';
import { HttpError } from '../errors.ts';
import { MULTISTATUS_CLOSE, MULTISTATUS_OPEN, prepareRequest, renderResponse, type DavResource, type LockEntries, type PropRequest, type PropSources, type QName, type Quota } from '../properties.ts';
import { baseNameOf, childHref, hrefOf, joinChild } from '../paths.ts';
import { DAV_NS, childElements, isDav, type XmlElement } from '../xml.ts';

const PAGE = 1000;

export function parseDepth(v: string | undefined, dflt: '0' | '1' | 'infinity' = 'infinity'): '0' | '1' | 'infinity' {
  if (v === undefined) return dflt;
  const d = v.trim().toLowerCase();
  if (d === '0' || d === '1' || d === 'infinity') return d;
  throw new HttpError(400, `bad Depth header: ${v}`);
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
  const req = parsePropfindBody(await ctx.xmlBody());
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
  ctx.res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8' });
  await ctx.write(MULTISTATUS_OPEN + first);
  if (isDir && depth !== '0') {
    const budget = { left: ctx.settings.maxInfinityEntries };
    const batch = new Batcher(ctx);
    await walk(ctx, req, src, ctx.path, self.href, depth === 'infinity', budget, batch);
    await batch.flush();
  }
  await ctx.write(MULTISTATUS_CLOSE);
  ctx.res.end();
}

/**
 * Responses are collected into writes of about this size: every socket write is a system call
 * that, on loopback, also runs the receiver's TCP path (64 KiB batches cost a 10,000-entry
 * PROPFIND about 65 writev calls; 256 KiB about 17).
 */
const BATCH_BYTES = 256 * 1024;

/** Collects responses into writes of about BATCH_BYTES (one chunk each) instead of one per entry. */
class Batcher {
  private parts: string[] = [];
  private size = 0;
  private readonly ctx: DavContext;
  constructor(ctx: DavContext) {
    this.ctx = ctx;
  }
  /** Adds a response; true when a flush is due. */
  add(s: string): boolean {
    this.parts.push(s);
    this.size += s.length;
    return this.size >= BATCH_BYTES;
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

async function walk(
  ctx: DavContext,
  req: PropRequest,
  src: PropSources,
  dir: string,
  dirHref: string,
  recurse: boolean,
  budget: { left: number },
  batch: Batcher,
): Promise<void> {
  const prepared = prepareRequest(req);
  // Dead properties come with each page (one store query), unless the request needs none.
  const list = (cookie: bigint | undefined): Promise<Page> => {
    const opts = cookie === undefined ? { limit: PAGE } : { cookie, limit: PAGE };
    const p: Promise<Page> = prepared.needDead ? ctx.session.readdirWithProps(ctx.share, dir, opts) : ctx.session.readdir(ctx.share, dir, opts);
    // Awaited below, or abandoned when the walk stops early (507, client gone).
    p.catch(() => undefined);
    return p;
  };
  let next: Promise<Page> | undefined = list(undefined);
  while (next) {
    const page: Page = await next;
    // The next page is listed (backend round trips) while this one is rendered.
    next = page.eof || page.entries.length === 0 ? undefined : list(page.entries.at(-1)!.cookie);
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
      let out: string;
      try {
        const rendered = prepared.render(r, dead, src);
        out = typeof rendered === 'string' ? rendered : await rendered;
      } catch {
        // The entry vanished between readdir and its properties (a lock lookup): leave it out.
        continue;
      }
      if (batch.add(out)) await batch.flush();
      if (recurse && isDir) await walk(ctx, req, src, r.path, r.href, true, budget, batch);
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
  const req = parsePropfindBody(await ctx.xmlBody());
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
