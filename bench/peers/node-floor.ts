/**
 * The floor of any server written on Node's HTTP stack, for the WebDAV bench's 4 KiB GET figures:
 * node:http answering every GET with a fixed 4 KiB body from memory — no file system, no
 * authentication, no WebDAV. Run as its own process, on the same Node as Portico. What it measures
 * is what Node's HTTP parser, response writer and event loop cost on this machine with the bench's
 * client; Portico's GET can come near it, never beyond it.
 *
 *   node bench/peers/node-floor.ts PORT
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error('usage: node-floor.ts PORT');
const body = Buffer.alloc(4096, 0x61);
const server = createServer((req, res) => {
  if (req.method === 'OPTIONS') {
    res.writeHead(200, { Allow: 'GET, HEAD, OPTIONS', 'Content-Length': 0 }).end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD, OPTIONS', 'Content-Length': 0 }).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
  res.end(req.method === 'GET' ? body : undefined);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
