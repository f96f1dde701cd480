/**
 * OPTIONS (RFC 4918 §10.1, §18): answered on `/` and on every path, without authentication —
 * Windows WebClient probes `/` anonymously before anything else, and the answer says nothing about
 * any resource. `MS-Author-Via: DAV` makes Microsoft clients use WebDAV rather than FrontPage RPC.
 */
import type { ServerResponse } from 'node:http';

export const ALLOW = 'OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK';
export const ROOT_ALLOW = 'OPTIONS, GET, HEAD, PROPFIND';

export function options(res: ServerResponse, root: boolean): void {
  // A body on OPTIONS has no defined meaning here; node drains it.
  res.writeHead(200, {
    DAV: '1, 2',
    'MS-Author-Via': 'DAV',
    Allow: root ? ROOT_ALLOW : ALLOW,
    'Accept-Ranges': 'bytes',
    'Content-Length': '0',
  });
  res.end();
}
