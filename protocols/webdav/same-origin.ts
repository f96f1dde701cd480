/**
 * Cross-site request forgery guard (security issue 15, part 3; docs/SECURITY.md "Content
 * serving"). A browser keeps the Basic credentials of a gateway its user logged in to and sends
 * them with requests any other page makes to it. Browsers name the page's origin in `Origin` on
 * every request except GET and HEAD; WebDAV clients (Windows, Finder, davfs2, rclone, cadaver,
 * litmus) send none. So a state-changing request that names an origin other than the gateway's
 * comes from another site's page (or from a sandboxed document: `Origin: null`), and is refused.
 *
 * Today every such method except POST already needs a CORS preflight that the gateway never
 * grants; this guard does not depend on that (a future POST, a CORS-granting proxy in front, a
 * browser bug) and it runs before authentication, so a forged request costs no bcrypt and counts
 * no failed login.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors.ts';

/**
 * Methods that change nothing. PROPFIND is read-only too, and a page from another origin cannot
 * send it without a preflight, so refusing it would only break read-only browser tools.
 */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PROPFIND']);

/**
 * Whether `origin` (an Origin header value) is the gateway as this request reached it: the same
 * host and port as the request's Host, compared with the default port of the Origin's scheme
 * (as parseDestination compares Destination hosts), and a scheme that fits the connection. Over
 * TLS only https; over plain HTTP http or https, because a TLS-terminating proxy in front hands
 * the gateway plain HTTP for pages the browser loaded over https (a page on https with this
 * exact host and port is that proxy, i.e. the gateway). Anything unparseable does not match.
 */
export function isSameOrigin(origin: string, host: string | undefined, tls: boolean): boolean {
  if (host === undefined || host === '' || /[\s/?#@\\]/.test(host)) return false;
  const m = /^(https?):\/\/([^/?#@\\\s]+)$/i.exec(origin.trim());
  if (!m) return false; // includes 'null' and anything with a path, credentials or another scheme
  const scheme = m[1]!.toLowerCase();
  if (tls && scheme !== 'https') return false;
  let fromOrigin: URL;
  let fromHost: URL;
  try {
    fromOrigin = new URL(`${scheme}://${m[2]!}`);
    fromHost = new URL(`${scheme}://${host}`);
  } catch {
    return false;
  }
  return fromOrigin.host === fromHost.host;
}

/** Throws 403 for a state-changing request sent by a page of another origin. */
export function assertSameOrigin(req: IncomingMessage): void {
  if (SAFE_METHODS.has(req.method ?? '')) return;
  const origin = req.headers.origin;
  if (origin === undefined) return;
  const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
  if (isSameOrigin(origin, req.headers.host, tls)) return;
  const self = `${tls ? 'https' : 'http'}://${req.headers.host ?? '(no Host header)'}`;
  throw new HttpError(403, `cross-origin request refused: a page from ${origin} may not change files on ${self}`);
}
