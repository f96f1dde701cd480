/**
 * How stored bytes are served so that a browser never runs them as the gateway's origin (security
 * issue 15, part 3; docs/SECURITY.md "Content serving"). Files are uploaded by one user and opened
 * by another on the same origin as the UI, whose pages can read and write everything the viewer
 * may: an uploaded page whose script runs there acts with the viewer's rights.
 *
 * Three layers, each enough on its own in a current browser:
 * - every answer carries `X-Content-Type-Options: nosniff` and, unless a handler chooses another,
 *   DEFAULT_CSP (server.ts), so the Content-Type from the name's extension is the one a browser
 *   uses, and a document made from any answer runs no script in an opaque origin;
 * - file contents get STORED_CSP, or VIEWER_CSP for the few types whose browser viewer breaks
 *   under `sandbox` (below);
 * - active types (HTML, XHTML, SVG, XML, XSLT, JavaScript) always get `Content-Disposition:
 *   attachment`: a browser saves them instead of rendering them, whatever it does with CSP.
 */

/**
 * Every answer that sets no policy of its own: errors and plain listings echo names and paths
 * that users choose. `sandbox` puts any document made from them in an opaque origin with scripts,
 * forms, popups and plugins off; `default-src 'none'` loads nothing.
 */
export const DEFAULT_CSP = "sandbox; default-src 'none'";

/**
 * File contents. `style-src 'unsafe-inline'`: Chromium's image viewer styles its own page with
 * inline styles (centring, the checkerboard), reported as violations without it; a style cannot
 * read or send anything under `default-src 'none'`.
 */
export const STORED_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'";

/**
 * Audio, video and PDF: the browser's own viewer shows them and runs no script of the file in the
 * page. They get the same policy without `sandbox`, because in Chromium 156 the media viewer's
 * `<video crossorigin=anonymous>` then loads the file from an opaque origin, a CORS request our
 * answer does not allow, and nothing plays (tested in test/security/content-serving.test.ts);
 * older Chromium showed a "blocked" page for sandboxed PDFs. Without `sandbox` the document keeps
 * the gateway's origin, but `default-src 'none'` still forbids every script (inline,
 * `javascript:` URLs, handlers), and with nosniff these types are never rendered as HTML. PDF
 * scripts run inside the PDF engine, which gives them no access to the page or the network.
 * `media-src 'self'`: the media viewer fetches the file again as a media element.
 */
export const VIEWER_CSP = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'";

/** The media type without parameters, lower-case: 'text/html; charset=utf-8' -> 'text/html'. */
function essence(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function isViewerType(type: string): boolean {
  return type.startsWith('audio/') || type.startsWith('video/') || type === 'application/pdf';
}

/**
 * Types a browser turns into a document that can run script or pull in script: HTML, XHTML,
 * SVG, any XML (Chromium runs an XHTML `<script>` inside any XML document, and applies XSLT
 * stylesheets), and JavaScript (rendered as text on navigation, but the issue names it and no
 * client needs it inline). Flash for old browsers that still have the plugin.
 */
export function isActiveType(contentType: string): boolean {
  const type = essence(contentType);
  const slash = type.indexOf('/');
  const sub = type.slice(slash + 1);
  return (
    type === 'text/html' ||
    sub === 'xml' ||
    sub.endsWith('+xml') ||
    type === 'text/xsl' ||
    /^(x-)?(javascript|ecmascript|jscript)$/.test(sub) ||
    type === 'application/x-shockwave-flash'
  );
}

/**
 * RFC 6266 `attachment` with the name twice: `filename*` (RFC 8187: UTF-8, percent-encoded
 * outside attr-char), which every current browser prefers, and a plain `filename` quoted-string
 * fallback with anything but printable ASCII, '"' and '\' replaced by '_'.
 */
export function attachmentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  // encodeURIComponent leaves !'()* alone; of those only '!' is an RFC 8187 attr-char.
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/**
 * The policy headers of a file's contents (GET and HEAD, 200 and 206). Always, not only on a
 * browser navigation (`Sec-Fetch-Dest: document`): Safari sent no Sec-Fetch headers before 16.4,
 * proxies may drop them, and the ones a request carries say nothing about `<iframe>`, `<object>`
 * or a later navigation of the same cached answer. WebDAV clients ignore both headers on GET.
 */
export function storedContentHeaders(name: string, contentType: string): Record<string, string> {
  const type = essence(contentType);
  const headers: Record<string, string> = { 'Content-Security-Policy': isViewerType(type) ? VIEWER_CSP : STORED_CSP };
  if (isActiveType(type)) headers['Content-Disposition'] = attachmentDisposition(name);
  return headers;
}
