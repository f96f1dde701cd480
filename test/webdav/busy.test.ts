/**
 * Transient and permanent "busy" answers over WebDAV: a directory rename (MOVE) on an object store
 * refuses to start while a file inside is being uploaded — 503 with Retry-After, so clients retry
 * instead of reporting "access denied" — and succeeds once the upload completed; the share root can
 * never be deleted or moved (403).
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { dav, useDav, type DavStack } from './helpers.ts';
import { RETRY_AFTER_SECONDS, errorHeaders, statusFor } from '../../protocols/webdav/errors.ts';
import { VfsError } from '../../src/vfs/errors.ts';

let stack: DavStack;
const ALICE: [string, string] = ['alice', 'alice-pw'];
const AUTH = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;

useDav((s) => (stack = s), { alice: 'alice-pw' }, { shares: [{ name: 'obj', source: 'memory:objectstore' }] });

/** A PUT whose body is sent in two parts: the second only when `finish()` is called. */
function slowPut(path: string, first: Buffer, second: Buffer): { finish: () => void; done: Promise<number> } {
  const req = request({ host: '127.0.0.1', port: stack.port, method: 'PUT', path, headers: { Authorization: AUTH, 'Content-Length': first.length + second.length } });
  const done = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
  req.write(first);
  return { finish: () => req.end(second), done };
}

describe('busy', () => {
  it('MOVE of a directory with an upload in progress inside: 503 + Retry-After, then 201 once it completed', async () => {
    expect((await dav(stack, 'MKCOL', '/obj/dir/', { auth: ALICE })).status).toBe(201);
    expect((await dav(stack, 'PUT', '/obj/dir/a.txt', { auth: ALICE, body: 'a' })).status).toBe(201);
    const upload = slowPut('/obj/dir/b.bin', Buffer.alloc(64 * 1024, 1), Buffer.alloc(64 * 1024, 2));
    // The upload's writer is open once the server has read part of its body.
    let r = await dav(stack, 'MOVE', '/obj/dir/', { auth: ALICE, headers: { Destination: '/obj/dir2/' } });
    for (let i = 0; i < 100 && r.status !== 503; i++) {
      await new Promise((res) => setTimeout(res, 20));
      r = await dav(stack, 'MOVE', '/obj/dir/', { auth: ALICE, headers: { Destination: '/obj/dir2/' } });
    }
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe(String(RETRY_AFTER_SECONDS));
    // Nothing moved.
    expect((await dav(stack, 'GET', '/obj/dir/a.txt', { auth: ALICE })).status).toBe(200);
    expect((await dav(stack, 'PROPFIND', '/obj/dir2/', { auth: ALICE, headers: { Depth: '0' } })).status).toBe(404);

    upload.finish();
    expect(await upload.done).toBe(201);
    expect((await dav(stack, 'MOVE', '/obj/dir/', { auth: ALICE, headers: { Destination: '/obj/dir2/' } })).status).toBe(201);
    const b = await dav(stack, 'GET', '/obj/dir2/b.bin', { auth: ALICE });
    expect(b.status).toBe(200);
    expect(b.body.equals(Buffer.concat([Buffer.alloc(64 * 1024, 1), Buffer.alloc(64 * 1024, 2)]))).toBe(true);
  });

  it('the share root is never deleted or moved: 403, no Retry-After', async () => {
    for (const [method, headers] of [
      ['DELETE', {}],
      ['MOVE', { Destination: '/obj/elsewhere/' }],
    ] as const) {
      const r = await dav(stack, method, '/obj/', { auth: ALICE, headers });
      expect(r.status).toBe(403);
      expect(r.headers['retry-after']).toBeUndefined();
    }
  });

  it('error table: EBUSY about the share root is 403, any other EBUSY 503; every 503 carries Retry-After', () => {
    expect(statusFor(new VfsError('EBUSY', 'cannot remove the share root', { path: '/' }))).toBe(403);
    expect(statusFor(new VfsError('EBUSY', 'cannot remove the share root', { path: '/' }), 'delete')).toBe(403);
    expect(statusFor(new VfsError('EBUSY', 'a directory rename is in progress here', { path: '/d/x' }))).toBe(503);
    expect(statusFor(new VfsError('EBUSY', 'too many directory renames in progress'))).toBe(503);
    expect(errorHeaders(503)).toEqual({ 'Retry-After': String(RETRY_AFTER_SECONDS) });
    expect(errorHeaders(503, { 'Retry-After': '30' })).toEqual({ 'Retry-After': '30' });
    expect(errorHeaders(403, { 'Cache-Control': 'no-store' })).toEqual({ 'Cache-Control': 'no-store' });
  });
});
