/**
 * Security issue 15, part 3, CSRF (docs/SECURITY.md "Content serving"): a state-changing request
 * whose Origin is not the gateway's is refused with 403 before authentication; requests without
 * Origin (every WebDAV client) and from the gateway's own pages (the browser UI, whose same-origin
 * fetches carry a matching Origin: test/security/content-serving.test.ts, test/webdav-ui) work.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned } from '../../protocols/webdav/tls.ts';
import { dav, startDav, useDav, type DavResponse, type DavStack } from '../webdav/helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
let stack: DavStack;
useDav((s) => (stack = s), { alice: ALICE[1] });

const self = (): string => `http://127.0.0.1:${stack.port}`;

beforeAll(async () => {
  expect((await dav(stack, 'PUT', '/mem/keep.txt', { auth: ALICE, body: 'original' })).status).toBe(201);
  expect((await dav(stack, 'MKCOL', '/mem/dir/', { auth: ALICE })).status).toBe(201);
});

async function content(path: string): Promise<string | undefined> {
  const r = await dav(stack, 'GET', path, { auth: ALICE });
  return r.status === 200 ? r.text : undefined;
}

function expectRefused(r: DavResponse, what: string): void {
  expect(r.status, what).toBe(403);
  expect(r.text, what).toMatch(/^403: cross-origin request refused: a page from .* may not change files on https?:\/\/\S+\n$/);
  expect(r.headers['x-content-type-options'], what).toBe('nosniff');
}

describe('a state-changing request from another origin', () => {
  const lockBody = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
  const proppatch = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:a xmlns:x="urn:x">1</x:a></D:prop></D:set></D:propertyupdate>';
  const attempts = (): Array<[string, string, Record<string, string>, string?]> => [
    ['PUT', '/mem/keep.txt', {}, 'overwritten'],
    ['PUT', '/mem/new.txt', {}, 'created'],
    ['DELETE', '/mem/keep.txt', {}],
    ['DELETE', '/mem/dir/', {}],
    ['MKCOL', '/mem/made/', {}],
    ['MOVE', '/mem/keep.txt', { Destination: `${self()}/mem/moved.txt` }],
    ['COPY', '/mem/keep.txt', { Destination: `${self()}/mem/copied.txt` }],
    ['PROPPATCH', '/mem/keep.txt', { 'Content-Type': 'application/xml' }, proppatch],
    ['LOCK', '/mem/locked.txt', { 'Content-Type': 'application/xml' }, lockBody],
    ['UNLOCK', '/mem/keep.txt', { 'Lock-Token': '<urn:uuid:00000000-0000-0000-0000-000000000000>' }],
    ['POST', '/mem/keep.txt', {}, 'x'],
  ];

  it('is refused with 403 for every method and origin, and changes nothing', async () => {
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${stack.port + 1}`, `http://localhost:${stack.port}`]) {
      for (const [method, path, headers, body] of attempts()) {
        const r = await dav(stack, method, path, { auth: ALICE, headers: { ...headers, Origin: origin }, ...(body === undefined ? {} : { body }) });
        expectRefused(r, `${method} ${path} from ${origin}`);
      }
    }
    expect(await content('/mem/keep.txt')).toBe('original');
    for (const p of ['/mem/new.txt', '/mem/made/', '/mem/moved.txt', '/mem/copied.txt', '/mem/locked.txt']) expect((await dav(stack, 'HEAD', p, { auth: ALICE })).status, p).toBe(404);
    expect((await dav(stack, 'PROPFIND', '/mem/dir/', { auth: ALICE, headers: { Depth: '0' } })).status).toBe(207);
    const props = await dav(stack, 'PROPFIND', '/mem/keep.txt', { auth: ALICE, headers: { Depth: '0' }, body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>' });
    expect(props.text).not.toContain('urn:x');
  });

  it('is refused before authentication: no credentials, or wrong ones, still get 403, not 401', async () => {
    expectRefused(await dav(stack, 'PUT', '/mem/keep.txt', { headers: { Origin: 'http://evil.example' }, body: 'x' }), 'no credentials');
    expectRefused(await dav(stack, 'DELETE', '/mem/keep.txt', { auth: ['alice', 'wrong'], headers: { Origin: 'null' } }), 'wrong password');
    expect(await content('/mem/keep.txt')).toBe('original');
  });

  it('is refused when the Origin only looks like the gateway', async () => {
    const port = stack.port;
    for (const origin of [
      `http://127.0.0.1:${port}.evil.example`,
      `http://127.0.0.1:${port}/`,
      `http://127.0.0.1:${port}/mem/`,
      `http://alice@127.0.0.1:${port}`,
      `ftp://127.0.0.1:${port}`,
      `127.0.0.1:${port}`,
      `http://127.0.0.1`,
      `http://127.0.0.1:${port}, http://evil.example`,
      '',
      'garbage',
    ]) {
      expectRefused(await dav(stack, 'PUT', '/mem/keep.txt', { auth: ALICE, headers: { Origin: origin }, body: 'x' }), JSON.stringify(origin));
    }
    expect(await content('/mem/keep.txt')).toBe('original');
  });

  it('may still read: GET, HEAD, PROPFIND and OPTIONS are not state-changing', async () => {
    const headers = { Origin: 'http://evil.example' };
    expect((await dav(stack, 'GET', '/mem/keep.txt', { auth: ALICE, headers })).status).toBe(200);
    expect((await dav(stack, 'HEAD', '/mem/keep.txt', { auth: ALICE, headers })).status).toBe(200);
    expect((await dav(stack, 'PROPFIND', '/mem/', { auth: ALICE, headers: { ...headers, Depth: '1' } })).status).toBe(207);
    expect((await dav(stack, 'OPTIONS', '/mem/keep.txt', { headers })).status).toBe(200);
  });
});

describe('requests that are not cross-origin', () => {
  it('work without Origin (WebDAV clients) and with the gateway origin (its own pages)', async () => {
    expect((await dav(stack, 'PUT', '/mem/plain.txt', { auth: ALICE, body: 'no origin' })).status).toBe(201);
    expect(await content('/mem/plain.txt')).toBe('no origin');
    expect((await dav(stack, 'PUT', '/mem/same.txt', { auth: ALICE, headers: { Origin: self() }, body: 'same origin' })).status).toBe(201);
    expect((await dav(stack, 'MOVE', '/mem/same.txt', { auth: ALICE, headers: { Origin: self(), Destination: `${self()}/mem/same2.txt` } })).status).toBe(201);
    expect((await dav(stack, 'DELETE', '/mem/same2.txt', { auth: ALICE, headers: { Origin: self() } })).status).toBe(204);
    // Scheme and host are case-insensitive.
    expect((await dav(stack, 'MKCOL', '/mem/case/', { auth: ALICE, headers: { Origin: `HTTP://127.0.0.1:${stack.port}` } })).status).toBe(201);
  });

  it('compare with the Host the request came with, default ports included', async () => {
    const put = (host: string, origin: string): Promise<DavResponse> =>
      dav(stack, 'PUT', '/mem/host.txt', { auth: ALICE, headers: { Host: host, Origin: origin }, body: `${host} ${origin}` });
    expect((await put('files.example', 'http://files.example')).status).toBeLessThan(300);
    expect((await put('files.example:80', 'http://files.example')).status).toBeLessThan(300);
    expect((await put('FILES.example', 'http://files.example')).status).toBeLessThan(300);
    expect((await put('[::1]:8080', 'http://[::1]:8080')).status).toBeLessThan(300);
    expectRefused(await put('files.example', 'http://other.example'), 'other host');
    expectRefused(await put('files.example:8080', 'http://files.example'), 'other port');
    expectRefused(await put('files.example/x', 'http://files.example'), 'a Host with a path');
  });

  it('accept an https page of the same host over plain HTTP (a TLS-terminating proxy in front)', async () => {
    const r = await dav(stack, 'PUT', '/mem/proxy.txt', { auth: ALICE, headers: { Host: 'files.example', Origin: 'https://files.example' }, body: 'via proxy' });
    expect(r.status).toBe(201);
    expectRefused(await dav(stack, 'PUT', '/mem/proxy.txt', { auth: ALICE, headers: { Host: 'files.example', Origin: 'https://files.example:8443' }, body: 'x' }), 'other port');
  });
});

describe('over TLS', () => {
  let tls: DavStack | undefined;
  let certDir: string;
  let ca: Buffer;
  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'portico-csrf-tls-'));
    const cert = await generateSelfSigned(certDir, ['127.0.0.1']);
    ca = readFileSync(cert.certFile);
    tls = await startDav({ webdav: { tls: { cert: cert.certFile, key: cert.keyFile } } });
    await tls.addUser('alice', ALICE[1]);
  });
  afterAll(async () => {
    await tls?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  function put(path: string, origin: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: tls!.port,
          method: 'PUT',
          path,
          ca,
          agent: false,
          headers: { Origin: origin, Authorization: `Basic ${Buffer.from(ALICE.join(':')).toString('base64')}`, 'Content-Length': 2 },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end('hi');
    });
  }

  it('only an https page of the gateway may change files', async () => {
    expect((await put('/mem/a.txt', `https://127.0.0.1:${tls!.port}`)).status).toBe(201);
    const plain = await put('/mem/b.txt', `http://127.0.0.1:${tls!.port}`);
    expect(plain.status).toBe(403);
    expect(plain.text).toContain(`may not change files on https://127.0.0.1:${tls!.port}`);
  });
});
