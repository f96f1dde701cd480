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
 * - Extended attributes (set over NFS, FUSE, or the session API) are shown as dead properties in
 *   urn:portico:xattr, names escaped and values encoded to stay well-formed (xattr-props.ts); SMB
 *   named streams are not shown. Both namespaces are protected: only the xattr API writes them.
 */
import { types as mimeTypes } from 'mime-types';
import type { LockInfo } from '../../src/locks/lock-manager.ts';
import type { FileAttr } from '../../src/vfs/types.ts';
import type { PropRow } from '../../src/store/metadata-store.ts';
import { DAV_NS, MS_NS, escapeText, propTag } from './xml.ts';
import { statusLine } from './errors.ts';
import type { LockDetails } from './context.ts';
import { davDeadProps, isXattrNamespace } from './xattr-props.ts';

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

type Maybe<T> = T | Promise<T>;
export type LockEntries = Array<{ lock: LockInfo; root: string | undefined }>;
export type Quota = { available: number; used: number } | undefined;

/**
 * Per-request data sources, fetched lazily (a Depth 1 PROPFIND asks the same share many times).
 * Each may answer synchronously (no locks at all, a quota already fetched): rendering then stays
 * synchronous, which matters when a PROPFIND renders 10,000 responses.
 */
export interface PropSources {
  deadProps(r: DavResource): Maybe<PropRow[]>;
  locks(r: DavResource): Maybe<LockEntries>;
  quota(): Maybe<Quota>;
}

interface LiveProp {
  ns: string;
  local: string;
  allprop: boolean;
  /** Inner XML, or undefined when the resource has no such property. */
  value(r: DavResource, src: PropSources): Maybe<string | undefined>;
}

function then<T, U>(v: Maybe<T>, f: (x: T) => U): Maybe<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

function lockDiscovery(entries: LockEntries): string {
  const now = Date.now();
  let out = '';
  for (const { lock, root } of entries) out += activeLockXml(lock, root, now);
  return out;
}

const key = (ns: string, local: string): string => `${ns} ${local}`;

export function etagOf(attr: FileAttr): string {
  return `"${attr.id.toString(16)}-${attr.change.toString(16)}"`;
}

// The last HTTP-date formatted: files listed together often share their modification second.
let lastDateSecond = NaN;
let lastDate = '';

export function httpDate(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const second = Math.floor(ms / 1000);
  if (second !== lastDateSecond) {
    lastDate = new Date(ms).toUTCString();
    lastDateSecond = second;
  }
  return lastDate;
}

function isoDate(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Content types by lower-case extension, with the charset added to textual ones. Only extensions the
 * mime database knows are kept (bounded by it); every other name is application/octet-stream. (A
 * cache keyed by whatever followed the last dot filled up with dot-less names — `f123` — and then
 * missed on every request.)
 */
const typeByExtension = new Map<string, string>();

export function contentTypeOf(name: string): string {
  // What mime-types' lookup() uses as the extension: the text after the last dot (the whole name
  // when it has none), lower-cased.
  const ext = name.slice(name.lastIndexOf('.') + 1).toLowerCase();
  const cached = typeByExtension.get(ext);
  if (cached !== undefined) return cached;
  if (!Object.hasOwn(mimeTypes, ext)) return 'application/octet-stream';
  const t = mimeTypes[ext]!;
  const type = /^text\/|\+xml$|\/(xml|json|javascript)$/.test(t) ? `${t}; charset=utf-8` : t;
  typeByExtension.set(ext, type);
  return type;
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
    value: (r, src) => then(src.locks(r), lockDiscovery),
  },
  { ns: DAV_NS, local: 'quota-available-bytes', allprop: false, value: (_r, src) => then(src.quota(), (q) => q?.available.toString()) },
  { ns: DAV_NS, local: 'quota-used-bytes', allprop: false, value: (_r, src) => then(src.quota(), (q) => q?.used.toString()) },
  { ns: MS_NS, local: 'Win32CreationTime', allprop: false, value: (r) => httpDate(r.attr.birthtimeNs) },
  { ns: MS_NS, local: 'Win32LastAccessTime', allprop: false, value: (r) => httpDate(r.attr.atimeNs) },
  { ns: MS_NS, local: 'Win32LastModifiedTime', allprop: false, value: (r) => httpDate(r.attr.mtimeNs) },
  { ns: MS_NS, local: 'Win32FileAttributes', allprop: false, value: (r) => win32Attributes(r.attr) },
];

const LIVE_BY_KEY = new Map(LIVE.map((p) => [key(p.ns, p.local), p]));

export function isLiveProperty(ns: string, local: string): boolean {
  return LIVE_BY_KEY.has(key(ns, local));
}

/**
 * Live properties a client may not set (everything computed but displayname and the Win32 set), and
 * extended attributes and named streams, which the xattr API alone writes (xattr-props.ts).
 */
export function isProtectedProperty(ns: string, local: string): boolean {
  return (LIVE_BY_KEY.has(key(ns, local)) && ns === DAV_NS && local !== 'displayname') || isXattrNamespace(ns);
}

export function isWin32Property(ns: string, local: string): boolean {
  return ns === MS_NS && LIVE_BY_KEY.has(key(ns, local));
}

/**
 * A PROPFIND request prepared once for all the resources it reports on (a Depth 1 PROPFIND renders
 * the same request for every member of a directory): names deduplicated, live properties looked
 * up, tags built, and whether dead properties are needed at all decided once. Rendering is
 * synchronous unless a value has to be fetched (locks when some exist, quota the first time): a
 * promise per response was most of what a 10,000-entry PROPFIND allocated.
 */
export interface PreparedRequest {
  /** Whether rendering needs the resource's dead properties (a `prop` list of live names does not). */
  readonly needDead: boolean;
  /** One `<D:response>`; `dead` is ignored unless needDead. */
  render(r: DavResource, dead: PropRow[], src: PropSources): Maybe<string>;
}

/** One property of a `prop` request, or one live property of allprop/propname. */
interface Wanted {
  key: string;
  live: LiveProp | undefined;
  tag: { open: string; close: string; empty: string };
}

const prepared = new WeakMap<PropRequest, PreparedRequest>();

function deadXml(d: PropRow): string {
  return Buffer.from(d.value.buffer, d.value.byteOffset, d.value.byteLength).toString('utf8');
}

function deadIndex(dead: PropRow[]): Map<string, PropRow> | undefined {
  if (dead.length === 0) return undefined;
  return new Map(dead.map((d) => [key(d.ns, d.name), d]));
}

const STATUS_200 = `<D:status>${statusLine(200)}</D:status></D:propstat>`;
const STATUS_404 = `<D:status>${statusLine(404)}</D:status></D:propstat>`;

function wrap(href: string, found: string, missing: string): string {
  let out = `<D:response><D:href>${escapeText(href)}</D:href>`;
  if (found !== '' || missing === '') out += `<D:propstat><D:prop>${found}</D:prop>${STATUS_200}`;
  if (missing !== '') out += `<D:propstat><D:prop>${missing}</D:prop>${STATUS_404}`;
  return out + '</D:response>\n';
}

/**
 * What each property of a list contributes, given its value: `emit` turns a (possibly absent)
 * value into found/missing XML. Runs synchronously, and switches to awaiting at the first value
 * that is a promise.
 */
function collect(
  list: Wanted[],
  r: DavResource,
  src: PropSources,
  byKey: Map<string, PropRow> | undefined,
  emit: (w: Wanted, v: string | undefined, acc: { found: string; missing: string }) => void,
  done: (acc: { found: string; missing: string }) => string,
): Maybe<string> {
  const acc = { found: '', missing: '' };
  for (let i = 0; i < list.length; i++) {
    const w = list[i]!;
    const d = byKey?.get(w.key);
    if (d) {
      acc.found += deadXml(d);
      continue;
    }
    const got = w.live ? w.live.value(r, src) : undefined;
    if (got instanceof Promise) return finish(list, i, got, r, src, byKey, emit, done, acc);
    emit(w, got, acc);
  }
  return done(acc);
}

async function finish(
  list: Wanted[],
  from: number,
  pending: Promise<string | undefined>,
  r: DavResource,
  src: PropSources,
  byKey: Map<string, PropRow> | undefined,
  emit: (w: Wanted, v: string | undefined, acc: { found: string; missing: string }) => void,
  done: (acc: { found: string; missing: string }) => string,
  acc: { found: string; missing: string },
): Promise<string> {
  emit(list[from]!, await pending, acc);
  for (let i = from + 1; i < list.length; i++) {
    const w = list[i]!;
    const d = byKey?.get(w.key);
    if (d) {
      acc.found += deadXml(d);
      continue;
    }
    emit(w, w.live ? await w.live.value(r, src) : undefined, acc);
  }
  return done(acc);
}

function wantedOf(ns: string, local: string): Wanted {
  const k = key(ns, local);
  return { key: k, live: LIVE_BY_KEY.get(k), tag: propTag(ns, local) };
}

function prepare(req: PropRequest): PreparedRequest {
  if (req.mode === 'propname') {
    const all = LIVE.map((p) => wantedOf(p.ns, p.local));
    const emit = (w: Wanted, v: string | undefined, acc: { found: string }): void => {
      if (v !== undefined) acc.found += w.tag.empty;
    };
    return {
      needDead: true,
      render(r, rows, src) {
        const dead = davDeadProps(rows);
        const byKey = deadIndex(dead);
        // Live names a dead property shadows are listed once, as the dead one.
        const list = byKey ? all.filter((w) => !byKey.has(w.key)) : all;
        return collect(list, r, src, undefined, emit, (acc) => {
          for (const d of dead) acc.found += propTag(d.ns, d.name).empty;
          return wrap(r.href, acc.found, '');
        });
      },
    };
  }
  if (req.mode === 'allprop') {
    const included = new Set(req.include.map((q) => key(q.ns, q.local)));
    const shown = LIVE.filter((p) => p.allprop || included.has(key(p.ns, p.local))).map((p) => wantedOf(p.ns, p.local));
    const emit = (w: Wanted, v: string | undefined, acc: { found: string }): void => {
      if (v !== undefined) acc.found += v === '' ? w.tag.empty : w.tag.open + v + w.tag.close;
    };
    return {
      needDead: true,
      render(r, rows, src) {
        const dead = davDeadProps(rows);
        const byKey = deadIndex(dead);
        // Live properties a dead one shadows (displayname) are shown as the dead one, at the end.
        const list = byKey ? shown.filter((w) => !byKey.has(w.key)) : shown;
        return collect(list, r, src, undefined, emit, (acc) => {
          for (const d of dead) acc.found += deadXml(d);
          return wrap(r.href, acc.found, '');
        });
      },
    };
  }
  const wanted: Wanted[] = [];
  const seen = new Set<string>();
  for (const n of req.names) {
    const w = wantedOf(n.ns, n.local);
    if (seen.has(w.key)) continue;
    seen.add(w.key);
    wanted.push(w);
  }
  // displayname may be stored dead (it then shadows the computed one); other live names never are.
  const needDead = wanted.some((w) => w.live === undefined || (w.live.ns === DAV_NS && w.live.local === 'displayname'));
  const emit = (w: Wanted, v: string | undefined, acc: { found: string; missing: string }): void => {
    if (v === undefined) acc.missing += w.tag.empty;
    else acc.found += v === '' ? w.tag.empty : w.tag.open + v + w.tag.close;
  };
  return {
    needDead,
    render(r, dead, src) {
      return collect(wanted, r, src, needDead ? deadIndex(davDeadProps(dead)) : undefined, emit, (acc) => wrap(r.href, acc.found, acc.missing));
    },
  };
}

/** The prepared form of a request (made once per request object). */
export function prepareRequest(req: PropRequest): PreparedRequest {
  let c = prepared.get(req);
  if (!c) prepared.set(req, (c = prepare(req)));
  return c;
}

/** Renders one `<D:response>` for a resource. */
export async function renderResponse(r: DavResource, req: PropRequest, src: PropSources): Promise<string> {
  const c = prepareRequest(req);
  return c.render(r, c.needDead ? await src.deadProps(r) : [], src);
}

export const MULTISTATUS_OPEN = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" xmlns:Z="${MS_NS}">\n`;
export const MULTISTATUS_CLOSE = '</D:multistatus>\n';

/** A `<D:response>` with a bare status (DELETE/COPY/MOVE partial failures, RFC 4918 §13). */
export function statusResponse(href: string, status: number, condition?: string): string {
  const err = condition !== undefined ? `<D:error><D:${condition}/></D:error>` : '';
  return `<D:response><D:href>${escapeText(href)}</D:href><D:status>${statusLine(status)}</D:status>${err}</D:response>\n`;
}
