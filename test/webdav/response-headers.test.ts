/**
 * The WebDAV response class (protocols/webdav/response.ts) puts the headers every answer carries
 * into writeHead: each answer has exactly one X-Request-Id, nosniff and Content-Security-Policy,
 * and a handler's own value (in writeHead's object, or set earlier through setHeader in any case)
 * wins over the default, as when the defaults were set first with setHeader.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CSP } from '../../protocols/webdav/content-policy.ts';
import { DavResponse } from '../../protocols/webdav/response.ts';

let server: Server;
let port = 0;

beforeAll(async () => {
  server = createServer({ ServerResponse: DavResponse }, (req, res) => {
    (res as DavResponse).requestId = 'rid-1';
    switch (req.url) {
      case '/object':
        res.writeHead(200, { 'Content-Length': 2 }).end('ok');
        return;
      case '/own':
        res.writeHead(200, { 'Content-Security-Policy': 'sandbox', 'Content-Length': 0 }).end();
        return;
      case '/set':
        res.setHeader('content-security-policy', "default-src 'self'");
        res.setHeader('X-Request-Id', 'mine');
        res.writeHead(201, 'Made', { 'Content-Length': 0 }).end();
        return;
      case '/implicit':
        res.statusCode = 204;
        res.end();
        return;
      case '/array':
        res.writeHead(200, ['Content-Length', '0', 'X-Content-Type-Options', 'nosniff']).end();
        return;
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

function get(path: string): Promise<{ status: number; message: string; raw: string[] }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, message: res.statusMessage!, raw: res.rawHeaders }));
    });
    r.on('error', reject);
    r.end();
  });
}

/** Every value of a header name (any case) in the raw list. */
const all = (raw: string[], name: string): string[] => {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
};

describe('DavResponse', () => {
  it('adds the three defaults to a writeHead object, once each', async () => {
    const r = await get('/object');
    expect(all(r.raw, 'x-request-id')).toEqual(['rid-1']);
    expect(all(r.raw, 'x-content-type-options')).toEqual(['nosniff']);
    expect(all(r.raw, 'content-security-policy')).toEqual([DEFAULT_CSP]);
  });

  it('leaves a handler\'s own value, given to writeHead or set before in any case', async () => {
    expect(all((await get('/own')).raw, 'content-security-policy')).toEqual(['sandbox']);
    const set = await get('/set');
    expect([set.status, set.message]).toEqual([201, 'Made']);
    expect(all(set.raw, 'content-security-policy')).toEqual(["default-src 'self'"]);
    expect(all(set.raw, 'x-request-id')).toEqual(['mine']);
    expect(all(set.raw, 'x-content-type-options')).toEqual(['nosniff']);
  });

  it('covers answers ended without writeHead and writeHead with a flat list', async () => {
    const imp = await get('/implicit');
    expect(imp.status).toBe(204);
    expect(all(imp.raw, 'x-request-id')).toEqual(['rid-1']);
    expect(all(imp.raw, 'content-security-policy')).toEqual([DEFAULT_CSP]);
    const arr = await get('/array');
    expect(all(arr.raw, 'x-content-type-options')).toEqual(['nosniff']);
    expect(all(arr.raw, 'x-request-id')).toEqual(['rid-1']);
    expect(all(arr.raw, 'content-security-policy')).toEqual([DEFAULT_CSP]);
  });
});
