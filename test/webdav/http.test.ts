/**
 * WebDAV over HTTP with curl and raw requests: OPTIONS, the share root, authentication (401 vs
 * 403, guest read-only), byte ranges, conditional requests, hostile and malformed input.
 */
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dav, run, startDav, type DavStack } from './helpers.ts';

let stack: DavStack;
const ALICE: [string, string] = ['alice', 'alice-pw'];
const BOB: [string, string] = ['bob', 'bob-pw'];
const body1000 = Buffer.from(Array.from({ length: 1000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(''));

beforeAll(async () => {
  stack = await startDav({
    shares: [
      { name: 'pub', source: 'memory:', guest: 'read' },
      { name: 'ro', source: 'memory:', readOnly: true },
      { name: 'priv', source: 'memory:', access: [{ users: ['alice'], rights: ['read', 'write'] }] },
    ],
  });
  await stack.addUser('alice', 'alice-pw');
  await stack.addUser('bob', 'bob-pw');
  expect((await dav(stack, 'PUT', '/disk/abc.txt', { auth: ALICE, body: body1000 })).status).toBe(201);
});

afterAll(async () => {
  await stack?.stop();
});

function curl(args: string[], input?: string): ReturnType<typeof run> {
  return run('curl', ['-s', '-S', '--path-as-is', ...args], input === undefined ? {} : { input });
}

describe('OPTIONS and the server root', () => {
  it('answers OPTIONS on / and on any path without credentials', async () => {
    for (const p of ['/', '/disk/', '/disk/no/such/thing', '/nosuchshare/x']) {
      const r = await dav(stack, 'OPTIONS', p);
      expect(r.status).toBe(200);
      expect(r.headers['dav']).toBe('1, 2');
      expect(r.headers['ms-author-via']).toBe('DAV');
      expect(String(r.headers['allow'])).toContain('PROPFIND');
    }
    expect(String((await dav(stack, 'OPTIONS', '/disk/')).headers['allow'])).toContain('LOCK');
  });

  it('lists the shares visible to the principal on PROPFIND / (guest sees guest shares only)', async () => {
    const names = (t: string): string[] => [...t.matchAll(/<D:href>\/([^/<]*)\/<\/D:href>/g)].map((m) => m[1]!).sort();
    const a = await dav(stack, 'PROPFIND', '/', { auth: ALICE, headers: { Depth: '1' } });
    expect(a.status).toBe(207);
    expect(names(a.text)).toEqual(['disk', 'mem', 'priv', 'pub', 'ro']);
    const b = await dav(stack, 'PROPFIND', '/', { auth: BOB, headers: { Depth: '1' } });
    expect(names(b.text)).toEqual(['disk', 'mem', 'pub', 'ro']);
    const g = await dav(stack, 'PROPFIND', '/', { headers: { Depth: '1' } });
    expect(g.status).toBe(207);
    expect(names(g.text)).toEqual(['pub']);
    expect((await dav(stack, 'MKCOL', '/', { auth: ALICE })).status).toBe(405);
    expect((await dav(stack, 'MKCOL', '/newshare', { auth: ALICE })).status).toBe(404);
  });

  it('serves the HTML listing to browsers and UI assets without credentials', async () => {
    const html = await dav(stack, 'GET', '/disk/', { auth: ALICE, headers: { Accept: 'text/html,*/*' } });
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'nonce-[A-Za-z0-9+/]{22}=='/); // test/security/content-serving.test.ts
    expect(html.text).toContain('abc.txt');
    const plain = await dav(stack, 'GET', '/disk/', { auth: ALICE });
    expect(plain.headers['content-type']).toMatch(/^text\/plain/);
    expect(plain.text.split('\n')).toContain('abc.txt');
    const css = await dav(stack, 'GET', '/.portico-ui/style.css');
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toMatch(/css/);
    expect((await dav(stack, 'GET', '/.portico-ui/../../etc/passwd')).status).toBe(404);
  });
});

describe('authentication', () => {
  it('401 without or with bad credentials, 403 when authenticated but not allowed', async () => {
    const none = await dav(stack, 'PROPFIND', '/disk/', { headers: { Depth: '0' } });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="Portico"/);
    expect((await dav(stack, 'GET', '/disk/abc.txt', { auth: ['alice', 'wrong'] })).status).toBe(401);
    expect((await dav(stack, 'GET', '/nosuchshare/', {})).status).toBe(401);
    expect((await dav(stack, 'GET', '/nosuchshare/', { auth: ALICE })).status).toBe(404);
    expect((await dav(stack, 'PROPFIND', '/priv/', { auth: BOB, headers: { Depth: '0' } })).status).toBe(403);
    expect((await dav(stack, 'PROPFIND', '/priv/', { auth: ALICE, headers: { Depth: '0' } })).status).toBe(207);
    expect((await dav(stack, 'PUT', '/ro/x.txt', { auth: ALICE, body: 'x' })).status).toBe(403);
    expect((await dav(stack, 'MKCOL', '/ro/d', { auth: ALICE })).status).toBe(403);
  });

  it('guests read shares with guest: read and are asked to log in for anything else', async () => {
    expect((await dav(stack, 'PUT', '/pub/hello.txt', { auth: ALICE, body: 'hi' })).status).toBe(201);
    const get = await dav(stack, 'GET', '/pub/hello.txt');
    expect(get.status).toBe(200);
    expect(get.text).toBe('hi');
    expect((await dav(stack, 'PROPFIND', '/pub/', { headers: { Depth: '1' } })).status).toBe(207);
    expect((await dav(stack, 'PUT', '/pub/guest.txt', { body: 'x' })).status).toBe(401);
    expect((await dav(stack, 'DELETE', '/pub/hello.txt')).status).toBe(401);
    expect((await dav(stack, 'GET', '/pub/hello.txt')).status).toBe(200);
  });
});

describe('ranges (curl)', () => {
  const url = (): string => `${stack.origin}/disk/abc.txt`;
  const auth = ['-u', 'alice:alice-pw'];

  it('single, suffix and open ranges are 206 with the right bytes', async () => {
    const one = await curl([...auth, '-i', '-r', '10-19', url()]);
    expect(one.stdout).toMatch(/^HTTP\/1.1 206/);
    expect(one.stdout).toContain('Content-Range: bytes 10-19/1000');
    expect(one.stdout.endsWith(body1000.subarray(10, 20).toString())).toBe(true);
    const suffix = await curl([...auth, '-H', 'Range: bytes=-5', url()]);
    expect(suffix.stdout).toBe(body1000.subarray(995).toString());
    const open = await curl([...auth, '-H', 'Range: bytes=990-', url()]);
    expect(open.stdout).toBe(body1000.subarray(990).toString());
  });

  it('several ranges answer multipart/byteranges', async () => {
    const r = await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { Range: 'bytes=0-1,100-102,998-' } });
    expect(r.status).toBe(206);
    const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(String(r.headers['content-type']));
    expect(m).not.toBeNull();
    expect(Number(r.headers['content-length'])).toBe(r.body.length);
    const parts = r.text.split(`--${m![1]}`).slice(1, -1);
    expect(parts).toHaveLength(3);
    expect(parts[0]).toContain('Content-Range: bytes 0-1/1000');
    expect(parts[0]!.endsWith('\r\n\r\nab\r\n')).toBe(true);
    expect(parts[1]).toContain('Content-Range: bytes 100-102/1000');
    expect(parts[2]!.endsWith(`\r\n\r\n${body1000.subarray(998).toString()}\r\n`)).toBe(true);
  });

  it('unsatisfiable is 416, malformed is ignored (200), If-Range decides', async () => {
    const bad = await curl([...auth, '-i', '-H', 'Range: bytes=5000-6000', url()]);
    expect(bad.stdout).toMatch(/^HTTP\/1.1 416/);
    expect(bad.stdout).toContain('Content-Range: bytes */1000');
    const malformed = await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { Range: 'bytes=zz-' } });
    expect(malformed.status).toBe(200);
    expect(malformed.body.length).toBe(1000);
    const etag = String((await dav(stack, 'HEAD', '/disk/abc.txt', { auth: ALICE })).headers['etag']);
    const same = await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { Range: 'bytes=0-3', 'If-Range': etag } });
    expect(same.status).toBe(206);
    expect(same.text).toBe('abcd');
    const stale = await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { Range: 'bytes=0-3', 'If-Range': '"0-0"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(1000);
  });
});

describe('conditional requests', () => {
  it('304 and 412 per RFC 7232', async () => {
    const head = await dav(stack, 'HEAD', '/disk/abc.txt', { auth: ALICE });
    const etag = String(head.headers['etag']);
    const lm = String(head.headers['last-modified']);
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect((await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { 'If-None-Match': etag } })).status).toBe(304);
    expect((await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { 'If-Modified-Since': lm } })).status).toBe(304);
    expect((await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { 'If-Match': '"nope"' } })).status).toBe(412);
    expect((await dav(stack, 'GET', '/disk/abc.txt', { auth: ALICE, headers: { 'If-Unmodified-Since': 'Thu, 01 Jan 1998 00:00:00 GMT' } })).status).toBe(412);
    expect((await dav(stack, 'PUT', '/disk/abc.txt', { auth: ALICE, body: 'x', headers: { 'If-None-Match': '*' } })).status).toBe(412);
    expect((await dav(stack, 'PUT', '/disk/cond.txt', { auth: ALICE, body: 'x', headers: { 'If-None-Match': '*' } })).status).toBe(201);
    const e2 = String((await dav(stack, 'HEAD', '/disk/cond.txt', { auth: ALICE })).headers['etag']);
    expect((await dav(stack, 'PUT', '/disk/cond.txt', { auth: ALICE, body: 'y', headers: { 'If-Match': e2 } })).status).toBe(204);
    expect((await dav(stack, 'PUT', '/disk/cond.txt', { auth: ALICE, body: 'z', headers: { 'If-Match': e2 } })).status).toBe(412);
    expect((await dav(stack, 'GET', '/disk/cond.txt', { auth: ALICE })).text).toBe('y');
  });
});

describe('hostile and malformed input', () => {
  it('refuses percent-encoded traversal and never touches anything outside the share', async () => {
    const before = readdirSync(stack.tmp).sort();
    const urls = [
      '/disk/%2e%2e/escape.txt',
      '/disk/%2E%2E/%2e%2e/escape.txt',
      '/disk/../escape.txt',
      '/disk/..%2fescape.txt',
      '/disk/..%5cescape.txt',
      '/disk/%c0%ae%c0%ae/escape.txt',
      '/disk/%e0%80%ae%e0%80%ae/escape.txt',
      '/disk/a%00b',
      '/disk/%ff',
      '/disk/%2',
    ];
    for (const u of urls) {
      const put = await dav(stack, 'PUT', u, { auth: ALICE, body: 'evil' });
      expect(put.status, u).toBe(400);
      expect((await dav(stack, 'MKCOL', u, { auth: ALICE })).status, u).toBe(400);
    }
    const viaCurl = await curl(['-u', 'alice:alice-pw', '-o', '/dev/null', '-w', '%{http_code}', '-T', '-', `${stack.origin}/disk/%2e%2e/%2e%2e/escape2.txt`], 'evil');
    expect(viaCurl.stdout).toBe('400');
    expect((await dav(stack, 'GET', '/%2e%2e/etc/passwd', { auth: ALICE })).status).toBe(404);
    expect(readdirSync(stack.tmp).sort()).toEqual(before);
    expect(existsSync(join(stack.tmp, 'escape.txt'))).toBe(false);
    expect(readdirSync(stack.diskDir).filter((n) => n.includes('escape'))).toEqual([]);
  });

  it('rejects DTDs and entities (XXE, billion laughs) with 400, and bounds XML bodies', async () => {
    const xxe = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&x;</D:displayname></D:prop></D:propfind>';
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
      '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><D:propfind xmlns:D="DAV:"><D:prop><x>&lol3;</x></D:prop></D:propfind>';
    for (const body of [xxe, laughs, '<D:propfind xmlns:D="DAV:"><D:prop>&undefined;</D:prop></D:propfind>', '<D:propfind xmlns:D="DAV:"><D:prop>']) {
      expect((await dav(stack, 'PROPFIND', '/disk/', { auth: ALICE, headers: { Depth: '0' }, body })).status).toBe(400);
      expect((await dav(stack, 'PROPPATCH', '/disk/abc.txt', { auth: ALICE, body })).status).toBe(400);
      expect((await dav(stack, 'LOCK', '/disk/abc.txt', { auth: ALICE, body })).status).toBe(400);
    }
    const deep = '<a>'.repeat(200) + '</a>'.repeat(200);
    expect((await dav(stack, 'PROPFIND', '/disk/', { auth: ALICE, headers: { Depth: '0' }, body: deep })).status).toBe(400);
    const huge = `<D:propfind xmlns:D="DAV:"><D:prop>${'<x/>'.repeat(400_000)}</D:prop></D:propfind>`;
    expect((await dav(stack, 'PROPFIND', '/disk/', { auth: ALICE, headers: { Depth: '0' }, body: huge })).status).toBe(413);
  });

  it('answers malformed headers with 400 and bounds URLs (414) and headers (431)', async () => {
    const lockBody = '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    const cases: Array<[string, string, Record<string, string>, string?]> = [
      ['PROPFIND', '/disk/', { Depth: '2' }],
      ['PROPFIND', '/disk/', { Depth: 'zero' }],
      ['PUT', '/disk/m.txt', { If: '(<opaquelocktoken:x' }, 'x'],
      ['PUT', '/disk/m.txt', { If: '<http://a/b>' }, 'x'],
      ['PUT', '/disk/m.txt', { If: '(Not)' }, 'x'],
      ['COPY', '/disk/abc.txt', { Destination: `${stack.origin}/disk/c.txt`, Overwrite: 'maybe' }],
      ['COPY', '/disk/abc.txt', { Destination: 'not a url' }],
      ['COPY', '/disk/abc.txt', {}],
      ['COPY', '/disk/abc.txt', { Destination: `${stack.origin}/disk/c.txt`, Depth: '1' }],
      ['MOVE', '/disk/abc.txt', { Destination: `${stack.origin}/disk/c.txt`, Depth: '0' }],
      ['LOCK', '/disk/abc.txt', { Timeout: 'Second-abc' }, lockBody],
      ['LOCK', '/disk/abc.txt', { Depth: '1' }, lockBody],
      ['UNLOCK', '/disk/abc.txt', {}],
      ['UNLOCK', '/disk/abc.txt', { 'Lock-Token': 'opaquelocktoken:no-brackets' }],
      ['PUT', '/disk/m.txt', { 'Content-Range': 'bytes 0-0/1' }, 'x'],
    ];
    for (const [method, path, headers, body] of cases) {
      const r = await dav(stack, method, path, { auth: ALICE, headers, ...(body !== undefined ? { body } : {}) });
      expect(r.status, `${method} ${JSON.stringify(headers)}`).toBe(400);
    }
    expect((await dav(stack, 'COPY', '/disk/abc.txt', { auth: ALICE, headers: { Destination: 'http://elsewhere.example/disk/c.txt' } })).status).toBe(502);
    expect((await dav(stack, 'GET', `/disk/${'a'.repeat(9000)}`, { auth: ALICE })).status).toBe(414);
    const big = await rawStatus(`GET /disk/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    expect(big).toBe(431);
  });

  it('refuses Depth: infinity PROPFIND with propfind-finite-depth', async () => {
    for (const headers of [{ Depth: 'infinity' }, {}] as Record<string, string>[]) {
      const r = await dav(stack, 'PROPFIND', '/disk/', { auth: ALICE, headers });
      expect(r.status).toBe(403);
      expect(r.text).toContain('<D:propfind-finite-depth/>');
    }
  });
});

function rawStatus(request: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(stack.port, '127.0.0.1', () => s.write(request));
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      data += d;
      const m = /^HTTP\/1.1 (\d{3})/.exec(data);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(Number(/^HTTP\/1.1 (\d{3})/.exec(data)?.[1] ?? 0)));
  });
}
