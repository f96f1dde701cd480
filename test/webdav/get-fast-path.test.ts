/**
 * The GET/HEAD fast path (methods/get.ts: open, attributes, reads and close in one session gate,
 * Session.readFile) answers exactly what the general path answers. The general path is taken
 * whenever any lock exists, so every request here is sent twice — with no lock anywhere (fast
 * path), and while an unrelated file is locked (general path) — and the two answers must be equal
 * in status, headers (but Date and X-Request-Id) and body. The metrics prove which path ran: the
 * fast path is the session operation `readFile`, the general path `open`.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Handle } from '../../src/vfs/vfs.ts';
import { dav, useDav, type DavResponse, type DavStack } from './helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const CONTENT = '0123456789abcdefghij';
const ruledDir = mkdtempSync(join(tmpdir(), 'portico-dav-fastget-'));
let stack: DavStack;

useDav((s) => (stack = s), { alice: 'alice-pw' }, {
  shares: [{ name: 'ruled', source: ruledDir, rules: [{ path: '/secret', users: ['alice'], deny: ['read'] }] }],
});
afterAll(() => rmSync(ruledDir, { recursive: true, force: true }));

/** Sum of portico_requests_total for the WebDAV session operation `op`. */
async function opCount(op: string): Promise<number> {
  let n = 0;
  for (const line of (await stack.gateway.metrics.metricsText()).split('\n')) {
    if (line.startsWith('portico_requests_total{') && line.includes('protocol="webdav"') && line.includes(`op="${op}"`)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

/** An answer without what differs between any two requests (Date, request id, multipart boundary, page nonce). */
function normalised(r: DavResponse): { status: number; headers: Record<string, unknown>; body: string } {
  const headers: Record<string, unknown> = { ...r.headers };
  delete headers.date;
  delete headers['x-request-id'];
  let body = r.body.toString('latin1');
  const boundary = /boundary=([0-9a-f]+)/.exec(String(headers['content-type'] ?? ''))?.[1];
  if (boundary !== undefined) {
    headers['content-type'] = String(headers['content-type']).replaceAll(boundary, 'B');
    body = body.replaceAll(boundary, 'B');
  }
  const nonce = /'nonce-([^']+)'/.exec(String(headers['content-security-policy'] ?? ''))?.[1];
  if (nonce !== undefined) {
    headers['content-security-policy'] = String(headers['content-security-policy']).replaceAll(nonce, 'N');
    body = body.replaceAll(nonce, 'N');
  }
  return { status: r.status, headers, body };
}

interface Probe {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** The status this request must get (so the comparison is not between two wrong answers). */
  status: number;
}

/** The requests compared; ETag and Last-Modified come from a first GET. */
function probes(etag: string, lastModified: string): Probe[] {
  const f = '/disk/fast/file.txt';
  return [
    { name: 'GET', method: 'GET', path: f, status: 200 },
    { name: 'HEAD', method: 'HEAD', path: f, status: 200 },
    { name: 'one range', method: 'GET', path: f, headers: { Range: 'bytes=2-5' }, status: 206 },
    { name: 'suffix range', method: 'GET', path: f, headers: { Range: 'bytes=-4' }, status: 206 },
    { name: 'two ranges', method: 'GET', path: f, headers: { Range: 'bytes=1-2,10-12' }, status: 206 },
    { name: 'unsatisfiable range', method: 'GET', path: f, headers: { Range: 'bytes=100-200' }, status: 416 },
    { name: 'malformed range', method: 'GET', path: f, headers: { Range: 'lines=1-2' }, status: 200 },
    { name: 'HEAD with a range', method: 'HEAD', path: f, headers: { Range: 'bytes=2-5' }, status: 200 },
    { name: 'If-Range holds', method: 'GET', path: f, headers: { Range: 'bytes=0-3', 'If-Range': etag }, status: 206 },
    { name: 'If-Range stale', method: 'GET', path: f, headers: { Range: 'bytes=0-3', 'If-Range': '"stale"' }, status: 200 },
    { name: 'If-None-Match', method: 'GET', path: f, headers: { 'If-None-Match': etag }, status: 304 },
    { name: 'If-None-Match on HEAD', method: 'HEAD', path: f, headers: { 'If-None-Match': `"other", ${etag}` }, status: 304 },
    { name: 'If-None-Match other', method: 'GET', path: f, headers: { 'If-None-Match': '"other"' }, status: 200 },
    { name: 'If-Modified-Since', method: 'GET', path: f, headers: { 'If-Modified-Since': lastModified }, status: 304 },
    { name: 'If-Modified-Since old', method: 'GET', path: f, headers: { 'If-Modified-Since': 'Sat, 01 Jan 2000 00:00:00 GMT' }, status: 200 },
    { name: 'If-Match wrong', method: 'GET', path: f, headers: { 'If-Match': '"nope"' }, status: 412 },
    { name: 'If-Match right', method: 'GET', path: f, headers: { 'If-Match': etag }, status: 200 },
    { name: 'If-Unmodified-Since old', method: 'GET', path: f, headers: { 'If-Unmodified-Since': 'Sat, 01 Jan 2000 00:00:00 GMT' }, status: 412 },
    { name: 'active content type', method: 'GET', path: '/disk/fast/page.html', status: 200 },
    { name: 'empty file', method: 'GET', path: '/disk/fast/empty', status: 200 },
    { name: 'missing file', method: 'GET', path: '/disk/fast/missing.txt', status: 404 },
    { name: 'below a file', method: 'GET', path: '/disk/fast/file.txt/x', status: 409 },
    { name: 'directory', method: 'GET', path: '/disk/fast/', status: 200 },
    { name: 'directory without slash', method: 'GET', path: '/disk/fast', status: 200 },
    { name: 'directory page', method: 'GET', path: '/disk/fast/', headers: { Accept: 'text/html' }, status: 200 },
    { name: 'symbolic link', method: 'GET', path: '/disk/fast/link', status: 403 },
    { name: 'denied by a path rule', method: 'GET', path: '/ruled/secret/x.txt', status: 403 },
    { name: 'denied by a path rule, HEAD', method: 'HEAD', path: '/ruled/secret/x.txt', status: 403 },
    { name: 'allowed next to it', method: 'GET', path: '/ruled/open.txt', status: 200 },
  ];
}

async function answers(list: Probe[]): Promise<Map<string, ReturnType<typeof normalised>>> {
  const out = new Map<string, ReturnType<typeof normalised>>();
  for (const p of list) {
    const r = await dav(stack, p.method, p.path, { auth: ALICE, headers: p.headers });
    expect(r.status, p.name).toBe(p.status);
    out.set(p.name, normalised(r));
  }
  return out;
}

/** Runs `fn` while an unrelated file is locked (so every GET takes the general path). */
async function withUnrelatedLock<T>(fn: () => Promise<T>): Promise<T> {
  expect((await dav(stack, 'PUT', '/disk/unrelated.txt', { auth: ALICE, body: 'x' })).status).toBeLessThan(300);
  const body = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
  const lock = await dav(stack, 'LOCK', '/disk/unrelated.txt', { auth: ALICE, body, headers: { 'Content-Type': 'application/xml', Timeout: 'Second-60' } });
  expect(lock.status).toBe(200);
  const token = String(lock.headers['lock-token']);
  try {
    return await fn();
  } finally {
    expect((await dav(stack, 'UNLOCK', '/disk/unrelated.txt', { auth: ALICE, headers: { 'Lock-Token': token } })).status).toBe(204);
  }
}

/** Both paths' answers to `list`, checking through the metrics that each path really ran. */
async function bothPaths(list: Probe[]): Promise<{ fast: Map<string, ReturnType<typeof normalised>>; general: Map<string, ReturnType<typeof normalised>> }> {
  const fast0 = await opCount('readFile');
  const fast = await answers(list);
  expect(await opCount('readFile')).toBeGreaterThan(fast0);
  const fast1 = await opCount('readFile');
  const open1 = await opCount('open');
  const general = await withUnrelatedLock(() => answers(list));
  // No GET went through readFile while the lock existed; the general path opened instead.
  expect(await opCount('readFile')).toBe(fast1);
  expect(await opCount('open')).toBeGreaterThan(open1);
  return { fast, general };
}

describe('GET/HEAD fast path', () => {
  it('answers every form of GET and HEAD exactly as the general path does', async () => {
    const dir = join(stack.diskDir, 'fast');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'file.txt'), CONTENT);
    writeFileSync(join(dir, 'page.html'), '<script>alert(1)</script>');
    writeFileSync(join(dir, 'empty'), '');
    symlinkSync('file.txt', join(dir, 'link'));
    mkdirSync(join(ruledDir, 'secret'), { recursive: true });
    writeFileSync(join(ruledDir, 'secret', 'x.txt'), 'hidden');
    writeFileSync(join(ruledDir, 'open.txt'), 'open');

    const first = await dav(stack, 'GET', '/disk/fast/file.txt', { auth: ALICE });
    expect(first.text).toBe(CONTENT);
    const etag = String(first.headers.etag);
    const lastModified = String(first.headers['last-modified']);
    const list = probes(etag, lastModified);
    const { fast, general } = await bothPaths(list);
    for (const p of list) expect(fast.get(p.name), p.name).toEqual(general.get(p.name));

    // Spot checks of what the comparison covers, so two equal wrong answers cannot pass.
    const get = fast.get('GET')!;
    expect(get.body).toBe(CONTENT);
    expect(get.headers).toMatchObject({ etag, 'last-modified': lastModified, 'content-length': String(CONTENT.length), 'accept-ranges': 'bytes' });
    expect(String(get.headers['content-type'])).toMatch(/^text\/plain/);
    expect(fast.get('HEAD')!.body).toBe('');
    expect(fast.get('HEAD')!.headers['content-length']).toBe(String(CONTENT.length));
    expect(fast.get('one range')!.body).toBe('2345');
    expect(fast.get('one range')!.headers['content-range']).toBe(`bytes 2-5/${CONTENT.length}`);
    expect(fast.get('suffix range')!.body).toBe('ghij');
    expect(fast.get('two ranges')!.body).toContain('12');
    expect(fast.get('two ranges')!.body).toContain('abc');
    expect(fast.get('unsatisfiable range')!.headers['content-range']).toBe(`bytes */${CONTENT.length}`);
    expect(fast.get('If-Range stale')!.body).toBe(CONTENT);
    expect(fast.get('If-None-Match')!.body).toBe('');
    expect(fast.get('active content type')!.headers['content-disposition']).toMatch(/^attachment/);
    expect(fast.get('directory')!.body.split('\n')).toContain('file.txt');
    expect(fast.get('allowed next to it')!.body).toBe('open');
    expect(fast.get('denied by a path rule')!.body).not.toContain('hidden');
  });

  it('a file open for writing through another handle: the same size, ETag and bytes both ways', async () => {
    writeFileSync(join(stack.diskDir, 'fast', 'written.txt'), 'before');
    const sessions = stack.gateway.sessions!;
    const principal = await sessions.authenticate('alice', 'alice-pw', { protocol: 'webdav', clientAddress: '127.0.0.1' });
    const writer = sessions.openSession({ principal, protocol: 'webdav', clientAddress: '127.0.0.1' });
    let h: Handle | undefined;
    try {
      h = await writer.open('disk', '/fast/written.txt', { access: { read: true, write: true, delete: false }, owner: 'writer' });
      await writer.write(h, 6, Buffer.from(' and during'));
      const list: Probe[] = [
        { name: 'GET while written', method: 'GET', path: '/disk/fast/written.txt', status: 200 },
        { name: 'HEAD while written', method: 'HEAD', path: '/disk/fast/written.txt', status: 200 },
        { name: 'range while written', method: 'GET', path: '/disk/fast/written.txt', headers: { Range: 'bytes=4-9' }, status: 206 },
      ];
      const { fast, general } = await bothPaths(list);
      for (const p of list) expect(fast.get(p.name), p.name).toEqual(general.get(p.name));
      expect(fast.get('GET while written')!.body).toBe('before and during');
      expect(fast.get('HEAD while written')!.headers['content-length']).toBe(String('before and during'.length));
    } finally {
      if (h) await writer.close(h);
      await writer.end();
    }
  });

  it('a file another client opened denying reads: the same refusal both ways', async () => {
    writeFileSync(join(stack.diskDir, 'fast', 'denied.txt'), 'shared');
    const sessions = stack.gateway.sessions!;
    const principal = await sessions.authenticate('alice', 'alice-pw', { protocol: 'webdav', clientAddress: '127.0.0.1' });
    const other = sessions.openSession({ principal, protocol: 'webdav', clientAddress: '127.0.0.1' });
    let h: Handle | undefined;
    try {
      h = await other.open('disk', '/fast/denied.txt', { access: { read: true, write: true, delete: false }, share: { read: false, write: false, delete: false }, owner: 'smb-like' });
      const first = await dav(stack, 'GET', '/disk/fast/denied.txt', { auth: ALICE });
      expect(first.status).toBeGreaterThanOrEqual(400);
      const list: Probe[] = [{ name: 'GET denied by a share mode', method: 'GET', path: '/disk/fast/denied.txt', status: first.status }];
      const fast = await answers(list);
      const general = await withUnrelatedLock(() => answers(list));
      expect(fast.get(list[0]!.name)).toEqual(general.get(list[0]!.name));
    } finally {
      if (h) await other.close(h);
      await other.end();
    }
    // Released: readable again, on the fast path.
    expect((await dav(stack, 'GET', '/disk/fast/denied.txt', { auth: ALICE })).text).toBe('shared');
  });
});
