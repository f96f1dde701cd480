/**
 * Grace through the real gateway: a client's open and lock survive a gateway stop and start (the
 * records are frozen before the sessions end), WebDAV requests that conflict with them get 503 with
 * Retry-After until the client has reclaimed and completed, and requests that conflict with nothing
 * are served at once.
 */
import { describe, expect, it } from 'vitest';
import { dav, startDav } from '../webdav/helpers.ts';
import { alice, RW } from '../helpers/vfs-env.ts';

const AUTH: [string, string] = ['alice', 'alice-password'];
const DENY_WRITE = { read: true, write: false, delete: true };
const HELD = { start: 0n, end: 100n };
const LOCKINFO =
  '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>';

describe('grace period across a gateway restart', () => {
  it('keeps a client\'s open and lock for reclaim; WebDAV gets 503 + Retry-After for what conflicts until the client completes', async () => {
    const config = { 'locks.graceMs': 60_000 };
    const one = await startDav({ config });
    let tmp = one.tmp;
    try {
      await one.addUser('alice', 'alice-password');
      expect((await dav(one, 'PUT', '/disk/f.txt', { body: 'data', auth: AUTH })).status).toBe(201);
      expect((await dav(one, 'PUT', '/disk/other.txt', { body: 'free', auth: AUTH })).status).toBe(201);
      const s = one.gateway.sessions!.openSession({ principal: alice, protocol: 'nfs', clientAddress: '127.0.0.1' });
      s.bindClient('nfs:c1', { verifier: 'v1' });
      const h = await s.open('disk', '/f.txt', { access: RW, share: DENY_WRITE, owner: 'open-owner' });
      await s.lockHandle(h, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lock-owner' });
    } finally {
      await one.stop({ keep: true });
    }

    const two = await startDav({ tmp, config });
    tmp = two.tmp;
    try {
      // Conflicting with the recorded deny-write open and exclusive lock: not yet.
      const put = await dav(two, 'PUT', '/disk/f.txt', { body: 'x', auth: AUTH });
      expect(put.status).toBe(503);
      expect(put.headers['retry-after']).toBeDefined();
      const lock = await dav(two, 'LOCK', '/disk/f.txt', { body: LOCKINFO, auth: AUTH, headers: { 'Content-Type': 'application/xml' } });
      expect(lock.status).toBe(503);
      // Reads and other files are served at once.
      expect((await dav(two, 'GET', '/disk/f.txt', { auth: AUTH })).text).toBe('data');
      expect((await dav(two, 'PUT', '/disk/other.txt', { body: 'changed', auth: AUTH })).status).toBe(204);

      const c1 = two.gateway.sessions!.openSession({ principal: alice, protocol: 'nfs', clientAddress: '127.0.0.1' });
      expect(c1.bindClient('nfs:c1', { verifier: 'v1' })).toEqual({ known: true, reclaimable: true });
      const h1 = await c1.reclaimOpen('disk', '/f.txt', { access: RW, share: DENY_WRITE, owner: 'open-owner' });
      await c1.reclaimLock(h1, { kind: 'exclusive', style: 'posix', range: HELD, ownerId: 'lock-owner' });
      c1.reclaimComplete();
      expect(c1.graceStatus().active).toBe(false);
      // Grace is over; the reclaimed deny-write open itself now refuses the PUT (423), until it goes.
      expect((await dav(two, 'PUT', '/disk/f.txt', { body: 'x', auth: AUTH })).status).toBe(423);
      await c1.end();
      expect((await dav(two, 'PUT', '/disk/f.txt', { body: 'x', auth: AUTH })).status).toBe(204);
    } finally {
      await two.stop();
    }
  });
});
