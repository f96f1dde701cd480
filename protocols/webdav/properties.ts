/**
 * WebDAV properties: the live properties Portico computes from FileAttr and the lock manager
 * (RFC 4918 §15, RFC 4331 quotas, the Windows WebClient's Win32* properties), dead properties kept in
 * the VFS property store, and the rendering of one `<D:response>` of a PROPFIND multistatus.
 *
 * Decisions:
 * - Dead property values are stored as the whole property element serialised self-contained
 *   (xml.ts serializeElement), so namespaces, xml:lang and mixed content come back as they were set.
 * - allprop returns the RFC 4918 live properties and every dead property; quota (RFC 4331 §3 says
 *   MUST NOT) and the Win32* properties only when asked for by name. propname lists them all.
 * - DAV:displayname may be set (stored dead; it then shadows the computed name); the other computed
 *   properties are protected (403 cannot-modify-protected-property); Win32* ones are applied to the
 *   file's real times and attributes (methods/proppatch.ts).
 */
import { lookup as mimeLookup } from 'mime-types';
import type { LockInfo } from '../../src/locks/lock-manager.ts';
import type { FileAttr } from '../../src/vfs/types.ts';
import type { PropRow } from '../../src/store/metadata-store.ts';
import { DAV_NS, MS_NS, escapeText, propTag } from './xml.ts';
import { statusLine } from './errors.ts';
import type { LockDetails } from './context.ts';

export interface QName {
  ns: string;
  local: string;
}

export type PropRequest = { mode: 'allprop'; include: QName[] } | { mode: 'propname' } | { mode: 'prop'; names: QName[] };

export interface DavResource {
  /** Canonical share name ('' for the virtual server root). */
  share: string;
  /** Share-relative path. */
  path: string;
  href: string;
  attr: FileAttr;
  /** Name shown as displayname. */
  name: string;
}

/** Per-request data sources, fetched lazily (a Depth 1 PROPFIND asks the same share many times). */
export interface PropSources {
  deadProps(r: DavResource): Promise<PropRow[]>;
  locks(r: DavResource): Promise<Array<{ lock: LockInfo; root: string | undefined }>>;
  quota(): Promise<{ available: number; used: number } | undefined>;
}

interface LiveProp {
  ns: string;
  local: string;
  allprop: boolean;
  /** Inner XML, or undefined when the resource has no such property. */
  value(r: DavResource, src: PropSources): string | undefined | Promise<string | undefined>;
}

const key = (ns: string, local: string): string => `${ns} ${local}`;

export function etagOf(attr: FileAttr): string {
  return `"${attr.id.toString(16)}-${attr.change.toString(16)}"`;
}

export function httpDate(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toUTCString();
}

function isoDate(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function contentTypeOf(name: string): string {
  const t = mimeLookup(name);
  if (t === false) return 'application/octet-stream';
  return /^text\/|\+xml$|\/(xml|json|javascript)$/.test(t) ? `${t}; charset=utf-8` : t;
}

export function win32Attributes(attr: FileAttr): string {
  return (attr.winAttributes >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

const SUPPORTED_LOCK =
  '<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>' +
  '<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>';

export function activeLockXml(l: LockInfo, root: string | undefined, now = Date.now()): string {
  const info = l.info as LockDetails | undefined;
  const timeout = l.expiresAt === undefined ? 'Infinite' : `Second-${Math.max(0, Math.ceil((l.expiresAt - now) / 1000))}`;
  return (
    '<D:activelock>' +
    `<D:locktype><D:write/></D:locktype><D:lockscope><D:${l.kind}/></D:lockscope>` +
    `<D:depth>${l.depth === 'infinity' ? 'infinity' : '0'}</D:depth>` +
    (info?.ownerXml !== undefined ? `<D:owner>${info.ownerXml}</D:owner>` : '') +
    `<D:timeout>${timeout}</D:timeout>` +
    `<D:locktoken><D:href>${escapeText(l.token)}</D:href></D:locktoken>` +
    (root !== undefined ? `<D:lockroot><D:href>${escapeText(root)}</D:href></D:lockroot>` : '') +
    '</D:activelock>'
  );
}

const LIVE: LiveProp[] = [
  { ns: DAV_NS, local: 'resourcetype', allprop: true, value: (r) => (r.attr.type === 'dir' ? '<D:collection/>' : '') },
  { ns: DAV_NS, local: 'displayname', allprop: true, value: (r) => escapeText(r.name) },
  { ns: DAV_NS, local: 'getetag', allprop: true, value: (r) => escapeText(etagOf(r.attr)) },
  { ns: DAV_NS, local: 'getlastmodified', allprop: true, value: (r) => httpDate(r.attr.mtimeNs) },
  { ns: DAV_NS, local: 'creationdate', allprop: true, value: (r) => isoDate(r.attr.birthtimeNs) },
  { ns: DAV_NS, local: 'getcontentlength', allprop: true, value: (r) => (r.attr.type === 'dir' ? undefined : String(r.attr.size)) },
  { ns: DAV_NS, local: 'getcontenttype', allprop: true, value: (r) => (r.attr.type === 'dir' ? undefined : escapeText(contentTypeOf(r.name))) },
  { ns: DAV_NS, local: 'supportedlock', allprop: true, value: () => SUPPORTED_LOCK },
  {
    ns: DAV_NS,
    local: 'lockdiscovery',
    allprop: true,
    value: async (r, src) => {
      const now = Date.now();
      return (await src.locks(r)).map(({ lock, root }) => activeLockXml(lock, root, now)).join('');
    },
  },
  { ns: DAV_NS, local: 'quota-available-bytes', allprop: false, value: async (_r, src) => (await src.quota())?.available.toString() },
  { ns: DAV_NS, local: 'quota-used-bytes', allprop: false, value: async (_r, src) => (await src.quota())?.used.toString() },
  { ns: MS_NS, local: 'Win32CreationTime', allprop: false, value: (r) => httpDate(r.attr.birthtimeNs) },
  { ns: MS_NS, local: 'Win32LastAccessTime', allprop: false, value: (r) => httpDate(r.attr.atimeNs) },
  { ns: MS_NS, local: 'Win32LastModifiedTime', allprop: false, value: (r) => httpDate(r.attr.mtimeNs) },
  { ns: MS_NS, local: 'Win32FileAttributes', allprop: false, value: (r) => win32Attributes(r.attr) },
];

const LIVE_BY_KEY = new Map(LIVE.map((p) => [key(p.ns, p.local), p]));

export function isLiveProperty(ns: string, local: string): boolean {
  return LIVE_BY_KEY.has(key(ns, local));
}

/** Live properties a client may not set (everything computed but displayname and the Win32 set). */
export function isProtectedProperty(ns: string, local: string): boolean {
  return LIVE_BY_KEY.has(key(ns, local)) && ns === DAV_NS && local !== 'displayname';
}

export function isWin32Property(ns: string, local: string): boolean {
  return ns === MS_NS && LIVE_BY_KEY.has(key(ns, local));
}

/** Renders one `<D:response>` for a resource. */
export async function renderResponse(r: DavResource, req: PropRequest, src: PropSources): Promise<string> {
  const found: string[] = [];
  const missing: string[] = [];
  const needDead = req.mode !== 'prop' || req.names.some((n) => !LIVE_BY_KEY.has(key(n.ns, n.local)) || (n.ns === DAV_NS && n.local === 'displayname'));
  const dead = needDead ? await src.deadProps(r) : [];
  const deadByKey = new Map(dead.map((d) => [key(d.ns, d.name), d]));
  const deadXml = (d: PropRow): string => Buffer.from(d.value).toString('utf8');

  if (req.mode === 'propname') {
    for (const p of LIVE) {
      if (deadByKey.has(key(p.ns, p.local))) continue;
      if ((await p.value(r, src)) !== undefined) found.push(propTag(p.ns, p.local).empty);
    }
    for (const d of dead) found.push(propTag(d.ns, d.name).empty);
  } else if (req.mode === 'allprop') {
    const included = new Set(req.include.map((q) => key(q.ns, q.local)));
    for (const p of LIVE) {
      const k = key(p.ns, p.local);
      if (deadByKey.has(k) || (!p.allprop && !included.has(k))) continue;
      const v = await p.value(r, src);
      if (v === undefined) continue;
      const t = propTag(p.ns, p.local);
      found.push(v === '' ? t.empty : t.open + v + t.close);
    }
    for (const d of dead) found.push(deadXml(d));
  } else {
    const seen = new Set<string>();
    for (const n of req.names) {
      const k = key(n.ns, n.local);
      if (seen.has(k)) continue;
      seen.add(k);
      const d = deadByKey.get(k);
      if (d) {
        found.push(deadXml(d));
        continue;
      }
      const live = LIVE_BY_KEY.get(k);
      const v = live ? await live.value(r, src) : undefined;
      const t = propTag(n.ns, n.local);
      if (v === undefined) missing.push(t.empty);
      else found.push(v === '' ? t.empty : t.open + v + t.close);
    }
  }
  let out = `<D:response><D:href>${escapeText(r.href)}</D:href>`;
  if (found.length > 0 || missing.length === 0) out += `<D:propstat><D:prop>${found.join('')}</D:prop><D:status>${statusLine(200)}</D:status></D:propstat>`;
  if (missing.length > 0) out += `<D:propstat><D:prop>${missing.join('')}</D:prop><D:status>${statusLine(404)}</D:status></D:propstat>`;
  return out + '</D:response>\n';
}

export const MULTISTATUS_OPEN = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" xmlns:Z="${MS_NS}">\n`;
export const MULTISTATUS_CLOSE = '</D:multistatus>\n';

/** A `<D:response>` with a bare status (DELETE/COPY/MOVE partial failures, RFC 4918 §13). */
export function statusResponse(href: string, status: number, condition?: string): string {
  const err = condition !== undefined ? `<D:error><D:${condition}/></D:error>` : '';
  return `<D:response><D:href>${escapeText(href)}</D:href><D:status>${statusLine(status)}</D:status>${err}</D:response>\n`;
}
