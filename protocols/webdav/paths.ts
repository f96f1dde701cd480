/**
 * URL <-> (share, path) mapping for WebDAV.
 *
 * The first path segment names the share (`/<share>/…`); `/` itself is a virtual collection of the
 * shares the principal may see. Decisions:
 * - Percent-decoding happens exactly once, here, segment by segment, to bytes that must be valid
 *   UTF-8 (an overlong `%c0%ae` or a lone continuation byte is a 400, not a "best effort" character).
 *   A decoded segment containing '/' or '\' is a 400: `%2f` and `%5c` never become separators.
 *   Everything else ('.', '..', NUL, controls, over-long names) is left to the one VFS validator
 *   (src/vfs/path.ts), which refuses it; the VFS treats '%' as a literal character.
 * - Request targets are taken raw: never through WHATWG URL parsing, which would resolve
 *   `%2e%2e` into '..' and remove it before we could refuse it.
 * - Hrefs we write are encoded per segment with encodeURIComponent (RFC 3986 unreserved and
 *   `!'()*` stay literal), so any name round-trips.
 */
import { HttpError } from './errors.ts';

export const MAX_URL_BYTES = 8 * 1024;

export interface DavTarget {
  /** Share name as the client spelled it (decoded); '' for the server root. */
  share: string;
  /** Share-relative path from the decoded segments ('/' for the share root); not yet VFS-validated. */
  path: string;
  /** The URL ended with '/'. */
  trailingSlash: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const HEX = /^[0-9A-Fa-f]{2}$/;

/** Decodes one raw path segment (exactly once). Throws HttpError 400. */
export function decodeSegment(raw: string): string {
  if (!raw.includes('%')) {
    if (raw.includes('\\')) throw new HttpError(400, 'backslash in URL path segment');
    return raw;
  }
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; ) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const hex = raw.slice(i + 1, i + 3);
      if (!HEX.test(hex)) throw new HttpError(400, 'bad percent-encoding in URL');
      bytes.push(parseInt(hex, 16));
      i += 3;
      continue;
    }
    const cp = raw.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
    i += ch.length;
  }
  let out: string;
  try {
    out = utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new HttpError(400, 'URL path is not valid UTF-8');
  }
  if (out.includes('/') || out.includes('\\')) throw new HttpError(400, 'encoded path separator in URL');
  return out;
}

/** Splits a raw origin-form path ('/share/a%20b/') into share and share-relative path. */
export function parseRawPath(rawPath: string): DavTarget {
  if (!rawPath.startsWith('/')) throw new HttpError(400, 'request target must be an absolute path');
  return targetOf(rawPath, rawPath.split('/').filter((s) => s !== '').map(decodeSegment));
}

/** The target of a raw path from its decoded non-empty segments. */
function targetOf(rawPath: string, segs: string[]): DavTarget {
  const trailingSlash = rawPath.length > 1 && rawPath.endsWith('/');
  if (segs.length === 0) return { share: '', path: '/', trailingSlash: true };
  return { share: segs[0]!, path: '/' + segs.slice(1).join('/'), trailingSlash };
}

/** Characters that make a raw path need parseRawPath's work: percent-escapes, '\\', a query or fragment. */
const NEEDS_PARSING = /[%\\?#]/;

/** parseRawPath of an absolute path without percent-escapes or backslashes (its decode is the identity). */
function splitPlain(rawPath: string): DavTarget {
  return targetOf(rawPath, rawPath.split('/').filter((s) => s !== ''));
}

/** The request target of an HTTP request (origin-form or absolute-form), without its query. */
export function parseRequestTarget(url: string): DavTarget {
  // An absolute path with nothing to decode, strip or refuse (nearly every request): split only.
  if (url.length * 3 <= MAX_URL_BYTES && url.charCodeAt(0) === 0x2f && !NEEDS_PARSING.test(url)) return splitPlain(url);
  if (Buffer.byteLength(url, 'utf8') > MAX_URL_BYTES) throw new HttpError(414, 'URL too long');
  let raw = url;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(raw);
  if (abs) raw = raw.slice(abs[0].length) || '/';
  // A fragment never belongs in a request target (RFC 7230 §5.3); acting on the part before it
  // could delete something the client did not name (litmus delete_fragment).
  if (raw.includes('#')) throw new HttpError(400, 'fragment in request target');
  const q = raw.indexOf('?');
  if (q >= 0) raw = raw.slice(0, q);
  return parseRawPath(raw);
}

/**
 * Parses a Destination header (RFC 4918 §10.3): an absolute URL that must be on this server (same
 * authority as the request's Host), or an absolute path. Returns 'foreign' for another server.
 */
export function parseDestination(value: string, host: string | undefined): DavTarget | 'foreign' {
  const v = value.trim();
  if (v === '') throw new HttpError(400, 'empty Destination');
  if (Buffer.byteLength(v, 'utf8') > MAX_URL_BYTES) throw new HttpError(400, 'Destination too long');
  if (/[\s]/.test(v)) throw new HttpError(400, 'malformed Destination');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:[?#].*)?$/.exec(v);
  if (m) {
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return 'foreign';
    const authority = m[2]!.toLowerCase().replace(/^[^@]*@/, '');
    if (host === undefined || !sameAuthority(authority, host.toLowerCase(), scheme)) return 'foreign';
    return parseRawPath(m[3] || '/');
  }
  if (!v.startsWith('/')) throw new HttpError(400, 'Destination must be an absolute URL or path');
  const q = v.search(/[?#]/);
  return parseRawPath(q >= 0 ? v.slice(0, q) : v);
}

function sameAuthority(a: string, b: string, scheme: string): boolean {
  if (a === b) return true;
  const def = scheme === 'https' ? ':443' : ':80';
  const strip = (x: string): string => (x.endsWith(def) ? x.slice(0, -def.length) : x);
  return strip(a) === strip(b);
}

export function encodeSegment(name: string): string {
  return encodeURIComponent(name);
}

/** Href of a share path: '/<share>/a/b' plus '/' for collections. */
export function hrefOf(share: string, path: string, collection: boolean): string {
  let h = '/' + encodeSegment(share);
  if (path !== '/') h += path.split('/').slice(1).map(encodeSegment).join('/').replace(/^/, '/');
  if (collection) h += '/';
  return h;
}

/** Joins a child name to a collection href (which ends with '/'). */
export function childHref(parentHref: string, name: string, collection: boolean): string {
  return `${parentHref.endsWith('/') ? parentHref : parentHref + '/'}${encodeSegment(name)}${collection ? '/' : ''}`;
}

/** Parent of a share path ('/' stays '/'). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseNameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinChild(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True when `inner` is `outer` or below it, segment-wise. */
export function isWithin(inner: string, outer: string): boolean {
  return outer === '/' || inner === outer || inner.startsWith(outer + '/');
}
