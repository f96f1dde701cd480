/**
 * HTTP conditional requests (RFC 7232 §6 evaluation order) and the WebDAV If header applied to the
 * request's Session (RFC 4918 §10.4).
 */
import { isVfsError } from '../../src/vfs/errors.ts';
import { normalizePath } from '../../src/vfs/path.ts';
import type { FileAttr } from '../../src/vfs/types.ts';
import type { DavContext } from './context.ts';
import { HttpError } from './errors.ts';
import { evaluateIf, parseIfHeader, type IfResourceState } from './if-header.ts';
import { etagOf } from './properties.ts';
import { parentOf, parseDestination } from './paths.ts';

/** Parses an HTTP-date (IMF-fixdate or the obsolete forms Date.parse accepts); undefined if invalid. */
export function parseHttpDate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

function etagList(v: string): string[] | '*' {
  if (v.trim() === '*') return '*';
  const out: string[] = [];
  for (const m of v.matchAll(/(W\/)?"[^"]*"/g)) out.push(m[0]);
  return out;
}

const weak = (e: string): string => (e.startsWith('W/') ? e.slice(2) : e);

/**
 * RFC 7232 §6: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since (GET/HEAD only).
 * Returns 304 or 412 when the request must stop, else undefined.
 */
export function checkPreconditions(ctx: DavContext, attr: FileAttr | undefined): 304 | 412 | undefined {
  // None of the four headers (nearly every request): nothing to compute.
  const h = ctx.req.headers;
  if (h['if-match'] === undefined && h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h['if-unmodified-since'] === undefined) return undefined;
  const method = ctx.req.method ?? '';
  const etag = attr ? etagOf(attr) : undefined;
  const mtimeS = attr ? Math.floor(Number(attr.mtimeNs / 1_000_000n) / 1000) : undefined;
  const ifMatch = ctx.header('if-match');
  if (ifMatch !== undefined) {
    const list = etagList(ifMatch);
    // Strong comparison (RFC 7232 §3.1): weak tags never match.
    if (etag === undefined || (list !== '*' && !list.includes(etag))) return 412;
  } else {
    const ius = parseHttpDate(ctx.header('if-unmodified-since'));
    if (ius !== undefined && mtimeS !== undefined && mtimeS > Math.floor(ius / 1000)) return 412;
  }
  const inm = ctx.header('if-none-match');
  const readOnly = method === 'GET' || method === 'HEAD';
  if (inm !== undefined) {
    const list = etagList(inm);
    // Weak comparison (RFC 7232 §3.2).
    const match = etag !== undefined && (list === '*' || list.some((e) => weak(e) === weak(etag)));
    if (match) return readOnly ? 304 : 412;
  } else if (readOnly && attr) {
    const ims = parseHttpDate(ctx.header('if-modified-since'));
    if (ims !== undefined && mtimeS !== undefined && mtimeS <= Math.floor(ims / 1000)) return 304;
  }
  return undefined;
}

export function hasPreconditions(ctx: DavContext): boolean {
  return ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'].some((h) => ctx.req.headers[h] !== undefined);
}

/** State of one resource for If evaluation; a missing resource is covered by its parent's locks. */
async function resourceState(ctx: DavContext, share: string, path: string): Promise<IfResourceState | undefined> {
  const s = ctx.session;
  const remember = (locks: Awaited<ReturnType<typeof s.locksOn>>): Set<string> => {
    const tokens = new Set<string>();
    for (const l of locks) {
      if (l.style !== 'token') continue;
      tokens.add(l.token);
      ctx.knownLocks.set(l.token, l);
    }
    return tokens;
  };
  try {
    const attr = await s.getattr(share, path);
    return { etag: etagOf(attr), lockTokens: remember(await s.locksOn(share, path)) };
  } catch (e) {
    if (!isVfsError(e, 'ENOENT') && !isVfsError(e, 'ENOTDIR')) return undefined;
  }
  try {
    return { etag: undefined, lockTokens: remember(await s.locksOn(share, parentOf(path))) };
  } catch {
    return { etag: undefined, lockTokens: new Set() };
  }
}

/**
 * Evaluates the If header: 412 when false; otherwise the submitted tokens of locks held by this
 * principal go into `session.lockTokens` (RFC 4918 §6.4: only the lock's creator may use its token).
 */
export async function applyIfHeader(ctx: DavContext): Promise<void> {
  const h = ctx.header('if');
  if (h === undefined) return;
  const lists = parseIfHeader(h);
  const result = await evaluateIf(lists, async (tag) => {
    if (tag === undefined) return resourceState(ctx, ctx.share, ctx.path);
    let t;
    try {
      t = parseDestination(tag, ctx.header('host'));
    } catch {
      return undefined;
    }
    if (t === 'foreign' || t.share === '') return undefined;
    let share: string;
    let path: string;
    try {
      share = ctx.sessions.acl(t.share, 'webdav').volume;
      path = normalizePath(t.path);
    } catch {
      return undefined;
    }
    return resourceState(ctx, share, path);
  });
  if (!result.ok) throw new HttpError(412, 'If header evaluated to false');
  for (const token of result.tokens) {
    const l = ctx.knownLocks.get(token);
    if (l && l.owner.principal === ctx.principal.user) ctx.session.lockTokens.add(token);
  }
}
