/**
 * LOCK and UNLOCK (RFC 4918 §9.10, §9.11): exclusive and shared write locks, Depth 0 and infinity,
 * all held by the one lock manager through `session.lockPath` (style 'webdav'), so SMB, NFS and FUSE
 * see them. Locks outlive the request's Session (`end({ keepDurableLocks: true })`).
 *
 * - No Depth header means infinity (§9.10.3; Windows WebClient sends none). Depth 1 -> 400.
 * - `Timeout: Second-N` / `Infinite` (first usable value of the list) is capped at
 *   `protocols.webdav.maxLockTimeoutSeconds`; no header -> the default timeout. Malformed -> 400.
 * - A LOCK without a body is a refresh: the If header must name a lock covering the request URI
 *   (including a depth-infinity lock on an ancestor, litmus indirect_refresh), else 412.
 * - LOCK on an unmapped URL creates an empty file and answers 201 (§7.3).
 * - The owner element's content is kept (LockInfo.info) and reported in lockdiscovery.
 * - Conflicts answer 423 with `no-conflicting-lock` naming the conflicting locks' roots.
 * - UNLOCK needs `Lock-Token: <token>` (400 without); a token that does not lock the request URI
 *   -> 409 `lock-token-matches-request-uri`; someone else's lock -> 403 unless the principal is admin.
 */
import { isVfsError } from '../../../src/vfs/errors.ts';
import type { LockInfo, LockKind } from '../../../src/locks/lock-manager.ts';
import type { DavContext, LockDetails } from '../context.ts';
import { HttpError, statusFor } from '../errors.ts';
import { checkPreconditions, hasPreconditions } from '../conditional.ts';
import { activeLockXml } from '../properties.ts';
import { DAV_NS, childElements, findChild, isDav, serializeChildren } from '../xml.ts';

const RW = { read: true, write: true, delete: false };

/** Parses a Timeout header (RFC 4918 §10.7) into ms, capped; undefined header -> default. */
export function parseTimeout(v: string | undefined, dflt: number, max: number): number {
  if (v === undefined) return Math.min(dflt, max);
  for (const part of v.split(',')) {
    const t = part.trim();
    if (/^infinite$/i.test(t)) return max;
    const m = /^second-(\d{1,12})$/i.exec(t);
    if (m) return Math.min(Math.max(1, Number(m[1])) * 1000, max);
    if (t !== '') throw new HttpError(400, `bad Timeout header: ${v}`);
  }
  throw new HttpError(400, `bad Timeout header: ${v}`);
}

function lockResponse(l: LockInfo, root: string | undefined): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLockXml(l, root)}</D:lockdiscovery></D:prop>\n`;
}

export async function lock(ctx: DavContext): Promise<void> {
  const s = ctx.settings;
  const timeoutMs = parseTimeout(ctx.header('timeout'), s.defaultLockTimeoutMs, s.maxLockTimeoutMs);
  const body = await ctx.xmlBody();
  if (!body) return refresh(ctx, timeoutMs);
  if (!isDav(body, 'lockinfo')) throw new HttpError(400, 'LOCK body must be a DAV:lockinfo element');
  const scope = findChild(body, DAV_NS, 'lockscope');
  const type = findChild(body, DAV_NS, 'locktype');
  const scopeKind = scope ? childElements(scope).find((c) => c.ns === DAV_NS)?.local : undefined;
  if (scopeKind !== 'exclusive' && scopeKind !== 'shared') throw new HttpError(400, 'lockscope must be exclusive or shared');
  if (!type || !childElements(type).some((c) => isDav(c, 'write'))) throw new HttpError(400, 'only write locks exist');
  const owner = findChild(body, DAV_NS, 'owner');
  const d = ctx.header('depth')?.trim().toLowerCase();
  if (d !== undefined && d !== '0' && d !== 'infinity') throw new HttpError(400, 'LOCK takes Depth: 0 or infinity');
  const depth: 0 | 'infinity' = d === '0' ? 0 : 'infinity';

  let attr = await ctx.stat();
  let created = false;
  if (hasPreconditions(ctx) && checkPreconditions(ctx, attr) !== undefined) throw new HttpError(412, 'precondition failed');
  if (!attr) {
    await ctx.requireParent(ctx.path);
    try {
      const h = await ctx.session.open(ctx.share, ctx.path, { access: RW, disposition: 'create', expect: 'file', owner: 'lock' });
      await ctx.session.close(h);
      created = true;
    } catch (e) {
      if (!isVfsError(e, 'EEXIST')) throw isVfsError(e, 'ELOCKED') ? e : new HttpError(statusFor(e, 'create'), (e as Error).message);
    }
    attr = await ctx.session.getattr(ctx.share, ctx.path);
  }
  const details: LockDetails = { collection: attr.type === 'dir' };
  if (owner) details.ownerXml = serializeChildren(owner);
  let info: LockInfo;
  try {
    info = await ctx.session.lockPath(ctx.share, ctx.path, {
      kind: scopeKind as LockKind,
      style: 'token',
      depth,
      timeoutMs,
      ownerId: ctx.principal.user,
      info: details,
    });
  } catch (e) {
    if (created) await ctx.session.unlink(ctx.share, ctx.path).catch(() => undefined);
    if (isVfsError(e, 'ELOCKED')) {
      const others = await ctx.davLocks();
      const hrefs = await ctx.lockRoots(others);
      throw new HttpError(423, 'resource is locked', { condition: 'no-conflicting-lock', hrefs: hrefs.length > 0 ? hrefs : [ctx.href()] });
    }
    throw e;
  }
  ctx.send(created ? 201 : 200, { 'Lock-Token': `<${info.token}>`, 'Content-Type': 'application/xml; charset=utf-8' }, lockResponse(info, ctx.href(ctx.path, details.collection)));
}

async function refresh(ctx: DavContext, timeoutMs: number): Promise<void> {
  if (ctx.header('if') === undefined) throw new HttpError(400, 'LOCK without a body is a refresh and needs an If header');
  const locks = await ctx.davLocks();
  const mine = locks.filter((l) => ctx.session.lockTokens.has(l.token));
  if (mine.length === 0) throw new HttpError(412, 'no submitted lock token locks this resource', { condition: 'lock-token-matches-request-uri' });
  let refreshed: LockInfo | undefined;
  for (const l of mine) {
    try {
      refreshed = await ctx.session.refreshLock(ctx.share, l.token, timeoutMs);
    } catch (e) {
      throw new HttpError(statusFor(e, 'refresh'), (e as Error).message);
    }
  }
  ctx.send(200, { 'Content-Type': 'application/xml; charset=utf-8' }, lockResponse(refreshed!, await ctx.lockRootHref(refreshed!)));
}

export async function unlock(ctx: DavContext): Promise<void> {
  const header = ctx.header('lock-token');
  const m = header === undefined ? null : /^\s*<([^<>\s]+)>\s*$/.exec(header);
  if (!m) throw new HttpError(400, 'UNLOCK needs a Lock-Token: <token> header');
  const token = m[1]!;
  const locks = await ctx.davLocks();
  if (!locks.some((l) => l.token === token)) throw new HttpError(409, 'the lock token does not lock the request URI', { condition: 'lock-token-matches-request-uri' });
  try {
    await ctx.session.unlockToken(ctx.share, token);
  } catch (e) {
    throw new HttpError(statusFor(e, 'unlock'), (e as Error).message);
  }
  ctx.send(204);
}
