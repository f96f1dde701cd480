/**
 * Answers other than file contents (security issue 15, parts 3 and 5; docs/SECURITY.md "Content
 * serving"): every answer carries nosniff and, unless it sets its own, the sandboxing default
 * policy; and an error answer to a request that asked to close the connection closes it
 * (sendError used to set keep-alive back on, so the socket stayed open until the idle timeout).
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const AUTH = `Basic ${Buffer.from(ALICE.join(':')).toString('base64')}`;
const DEFAULT_CSP = "sandbox; default-src 'none'";

let stack: DavStack;
useDav((s) => (stack = s), { alice: ALICE[1] }, { shares: [{ name: 'ro', source: 'memory:', readOnly: true }] });

interface Exchange {
  /** Everything received before the server closed the connection, or before the time ran out. */
  received: string;
  /** Whether the server closed (FIN) within the time. */
  closedByServer: boolean;
}

/** Sends raw bytes on a fresh connection and collects the answer; waits up to `ms` for the server to close. */
function exchange(port: number, raw: string, ms: number, then?: (socket: Socket, received: () => string) => void): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received, closedByServer });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      received += d;
      then?.(socket, () => received);
    });
    socket.on('end', () => finish(true));
    socket.on('error', (e) => (done ? undefined : reject(e)));
    socket.write(raw);
  });
}

function request(method: string, path: string, headers: string[], version = '1.1'): string {
  return `${method} ${path} HTTP/${version}\r\nHost: 127.0.0.1:${stack.port}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
}

describe('Connection: close on error answers', () => {
  const errors: Array<[string, string, string[], number]> = [
    ['GET', '/mem/missing.txt', [`Authorization: ${AUTH}`], 404],
    ['GET', '/mem/missing.txt', [], 401],
    ['GET', '/nosuchshare/x', [`Authorization: ${AUTH}`], 404],
    ['PROPFIND', '/mem/', [`Authorization: ${AUTH}`, 'Depth: 7'], 400],
    ['DELETE', '/ro/x', [`Authorization: ${AUTH}`], 403],
    ['POST', '/mem/', [`Authorization: ${AUTH}`], 501],
  ];

  it('closes the connection after an error answer to a request with Connection: close', async () => {
    for (const [method, path, headers, status] of errors) {
      const r = await exchange(stack.port, request(method, path, [...headers, 'Connection: close']), 3000);
      expect(r.received, `${method} ${path}`).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(r.received, `${method} ${path}`).toMatch(/\r\nConnection: close\r\n/i);
      expect(r.closedByServer, `${method} ${path}: the server kept the connection open`).toBe(true);
    }
  });

  it('closes it after an error answer to an HTTP/1.0 request without keep-alive', async () => {
    const r = await exchange(stack.port, request('GET', '/mem/missing.txt', [`Authorization: ${AUTH}`], '1.0'), 3000);
    expect(r.received).toMatch(/^HTTP\/1\.1 404 /);
    expect(r.closedByServer).toBe(true);
  });

  it('keeps a keep-alive connection open after an error answer (the connection is reused)', async () => {
    let sentSecond = false;
    const r = await exchange(stack.port, request('GET', '/mem/missing.txt', [`Authorization: ${AUTH}`]), 1500, (socket, received) => {
      if (!sentSecond && received().includes('404: ')) {
        sentSecond = true;
        socket.write(request('OPTIONS', '/', []));
      }
    });
    expect(r.closedByServer).toBe(false);
    expect(r.received).toMatch(/^HTTP\/1\.1 404 [\s\S]*HTTP\/1\.1 200 /);
  });
});

describe('nosniff and a policy on every answer', () => {
  it('errors, OPTIONS, UI assets, listings, multistatus and write answers', async () => {
    expect((await dav(stack, 'PUT', '/mem/a.txt', { auth: ALICE, body: 'a' })).status).toBe(201);
    const cases: Array<[string, string, { auth?: [string, string]; headers?: Record<string, string>; body?: string }, number]> = [
      ['OPTIONS', '/', {}, 200],
      ['OPTIONS', '/mem/a.txt', {}, 200],
      ['GET', '/.portico-ui/app.js', {}, 200],
      ['GET', '/.portico-ui/nope.js', {}, 404],
      ['GET', '/mem/a.txt', {}, 401],
      ['GET', '/mem/%3Cscript%3Ealert(1)%3C%20script%3E', { auth: ALICE }, 404],
      ['GET', '/mem/%3Cscript%3Ealert(1)%3C%2Fscript%3E', { auth: ALICE }, 400],
      ['GET', '/%3Cb%3Eshare/', { auth: ALICE }, 404],
      ['DELETE', '/ro/a.txt', { auth: ALICE }, 403],
      ['PROPFIND', '/mem/', { auth: ALICE, headers: { Depth: 'x' } }, 400],
      ['POST', '/mem/', { auth: ALICE }, 501],
      ['MKCOL', '/mem/a.txt', { auth: ALICE }, 405],
      ['PUT', '/mem/x/y.txt', { auth: ALICE, body: 'y' }, 409],
      ['GET', '/mem/a.txt', { auth: ALICE, headers: { 'If-Match': '"nope"' } }, 412],
      ['PROPFIND', '/mem/', { auth: ALICE, headers: { Depth: '1' } }, 207],
      ['PUT', '/mem/b.txt', { auth: ALICE, body: 'b' }, 201],
      ['DELETE', '/mem/b.txt', { auth: ALICE }, 204],
      ['GET', '/mem/', { auth: ALICE }, 200], // the plain-text list of names
      ['GET', '/', { auth: ALICE }, 200],
    ];
    for (const [method, path, o, status] of cases) {
      const r = await dav(stack, method, path, o);
      expect(r.status, `${method} ${path}`).toBe(status);
      expect(r.headers['x-content-type-options'], `${method} ${path}`).toBe('nosniff');
      expect(r.headers['content-security-policy'], `${method} ${path}`).toBe(DEFAULT_CSP);
    }
  });
});
