/**
 * The Content-Security-Policy of the UI's own pages (security issue 15, part 3; docs/SECURITY.md
 * "Content serving"). The pages share their origin with every stored file, so `'self'` would
 * let an injected `<script src="/share/upload.js">` run an uploaded script with the viewer's
 * rights: the one script and the one stylesheet are allowed by a nonce that is new for every
 * answer instead. The page has no inline script, style or handler (collection-page.ts).
 *
 * connect-src 'self': app.js uploads, renames, deletes and re-reads the listing with fetch/XHR.
 * img-src 'self': the icon. form-action 'none': every form is handled by app.js and never
 * submitted by the browser. frame-ancestors 'none': no other site may frame the page and trick
 * clicks onto Delete. base-uri 'none': relative URLs cannot be re-pointed.
 */
import { randomBytes } from 'node:crypto';

/** 128 random bits, base64 (CSP3 §2.3.1 asks for at least 128 bits, new for every answer). */
export function newPageNonce(): string {
  return randomBytes(16).toString('base64');
}

export function uiPagePolicy(nonce: string): string {
  return (
    `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; img-src 'self'; ` +
    `connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`
  );
}
