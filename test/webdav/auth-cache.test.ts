/**
 * The WebDAV Basic login cache (protocols/webdav/auth.ts): hits skip bcrypt only for a header that
 * succeeded before and only while the user database is unchanged; changes made by another process
 * (another connection to the store, as `portico user ...` does) apply within the data_version
 * window; concurrent first logins share one bcrypt when it succeeds and are each counted when it fails.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BasicAuthCache } from '../../protocols/webdav/auth.ts';
import { guestPrincipal, type Authenticator, type Principal } from '../../src/auth/authenticator.ts';
import { LocalUserStore } from '../../src/auth/local-users.ts';
import { loadOrCreateSecret } from '../../src/auth/secret-box.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import { dav, useDav, type DavStack } from './helpers.ts';

const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** A fake SessionManager around a scripted authenticator that counts password checks. */
function fakeSessions(o: { password: string; delayMs?: number; generation?: () => number; principalFor?: (u: string) => Principal | undefined }) {
  const calls = { authenticate: 0, principalFor: 0 };
  const authenticator: Authenticator = {
    authenticate: async (user, password) => {
      calls.authenticate++;
      await new Promise((r) => setTimeout(r, o.delayMs ?? 0));
      if (password !== o.password) throw new VfsError('EAUTH');
      return { user, uid: 10000, gid: 10000, groups: ['staff'], guest: false };
    },
    ntHash: async () => undefined,
    recordResult: () => undefined,
    checkThrottle: () => undefined,
    principalFor: async (user) => {
      calls.principalFor++;
      return o.principalFor ? o.principalFor(user) : { user, uid: 10000, gid: 10000, groups: [], guest: false };
    },
    principalForUid: async () => undefined,
    guest: guestPrincipal,
    ...(o.generation ? { generation: o.generation } : {}),
  };
  const sessions = { authenticator, authenticate: (u: string, p: string, ctx: { protocol: string; clientAddress: string }) => authenticator.authenticate(u, p, ctx) };
  return { sessions: sessions as unknown as SessionManager, calls };
}

describe('BasicAuthCache', () => {
  it('shares one password check among concurrent requests with the same header, then answers from the cache', async () => {
    const { sessions, calls } = fakeSessions({ password: 'pw', delayMs: 50, generation: () => 1 });
    const cache = new BasicAuthCache(sessions, 60_000);
    const results = await Promise.all(Array.from({ length: 16 }, () => cache.authenticate(basic('alice', 'pw'), '127.0.0.1')));
    expect(calls.authenticate).toBe(1);
    for (const p of results) expect(p).toMatchObject({ user: 'alice', groups: ['staff'] });
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls.authenticate).toBe(1);
    // Cached principals are shared between requests: frozen.
    const p = results[0] as Principal;
    expect(Object.isFrozen(p) && Object.isFrozen(p.groups)).toBe(true);
  });

  it('never caches a failure: concurrent wrong passwords are each checked (and counted by the throttle)', async () => {
    const { sessions, calls } = fakeSessions({ password: 'pw', delayMs: 20, generation: () => 1 });
    const cache = new BasicAuthCache(sessions, 60_000);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => cache.authenticate(basic('alice', 'wrong'), '127.0.0.1')));
    expect(outcomes.every((o) => o.status === 'rejected' && (o.reason as VfsError).code === 'EAUTH')).toBe(true);
    expect(calls.authenticate).toBe(8);
    await expect(cache.authenticate(basic('alice', 'wrong'), '127.0.0.1')).rejects.toMatchObject({ code: 'EAUTH' });
    expect(calls.authenticate).toBe(9);
  });

  it('forgets every login when the user database generation moves', async () => {
    let gen = 1;
    const { sessions, calls } = fakeSessions({ password: 'pw', generation: () => gen });
    const cache = new BasicAuthCache(sessions, 60_000);
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls.authenticate).toBe(1);
    gen = 2;
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls.authenticate).toBe(2);
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls.authenticate).toBe(2);
  });

  it('without a generation, re-reads the user on each hit and refuses a vanished one', async () => {
    let exists = true;
    const { sessions, calls } = fakeSessions({ password: 'pw', principalFor: (user) => (exists ? { user, uid: 1, gid: 1, groups: [], guest: false } : undefined) });
    const cache = new BasicAuthCache(sessions, 60_000);
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls).toEqual({ authenticate: 1, principalFor: 1 });
    exists = false;
    await cache.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls.authenticate).toBe(2);
  });

  it('remembers a login for its connection under the cache entry\'s rules: same header, same generation, its TTL and validUntil', async () => {
    let gen = 1;
    let validUntil: number | undefined;
    const { sessions, calls } = fakeSessions({ password: 'pw', generation: () => gen });
    const base = sessions.authenticator.authenticate.bind(sessions.authenticator);
    sessions.authenticator.authenticate = async (u, p, c) => ({ ...(await base(u, p, c)), ...(validUntil !== undefined ? { validUntil } : {}) });
    const cache = new BasicAuthCache(sessions, 200);
    const conn = {};
    const other = {};
    const h = basic('alice', 'pw');
    expect(cache.connectionLogin(conn, h)).toBeUndefined();
    const p = await cache.authenticate(h, '127.0.0.1', conn);
    expect(cache.connectionLogin(conn, h)).toBe(p);
    // Another header on the same connection, the same header on another connection, no header: not it.
    expect(cache.connectionLogin(conn, basic('alice', 'other'))).toBeUndefined();
    expect(cache.connectionLogin(conn, undefined)).toBeUndefined();
    expect(cache.connectionLogin(other, h)).toBeUndefined();
    // A failed login on the connection leaves the memo of the good one alone, and is never remembered.
    await expect(cache.authenticate(basic('alice', 'bad'), '127.0.0.1', conn)).rejects.toThrow();
    expect(cache.connectionLogin(conn, basic('alice', 'bad'))).toBeUndefined();
    // The user database moves: forgotten at once.
    gen = 2;
    expect(cache.connectionLogin(conn, h)).toBeUndefined();
    await cache.authenticate(h, '127.0.0.1', conn);
    expect(calls.authenticate).toBe(3);
    expect(cache.connectionLogin(conn, h)).toMatchObject({ user: 'alice' });
    // Not past the cache entry's TTL (200 ms here).
    await new Promise((r) => setTimeout(r, 260));
    expect(cache.connectionLogin(conn, h)).toBeUndefined();
    // Nor past the principal's validUntil (a directory login).
    validUntil = Date.now() + 40;
    await cache.authenticate(h, '127.0.0.1', conn);
    expect(cache.connectionLogin(conn, h)).toMatchObject({ user: 'alice' });
    await new Promise((r) => setTimeout(r, 60));
    expect(cache.connectionLogin(conn, h)).toBeUndefined();
  });

  it('remembers nothing per connection for an authenticator without a generation, or with the cache off', async () => {
    const a = fakeSessions({ password: 'pw' });
    const noGen = new BasicAuthCache(a.sessions, 60_000);
    const conn = {};
    await noGen.authenticate(basic('alice', 'pw'), '127.0.0.1', conn);
    expect(noGen.connectionLogin(conn, basic('alice', 'pw'))).toBeUndefined();
    const b = fakeSessions({ password: 'pw', generation: () => 1 });
    const off = new BasicAuthCache(b.sessions, 0);
    await off.authenticate(basic('alice', 'pw'), '127.0.0.1', conn);
    expect(off.connectionLogin(conn, basic('alice', 'pw'))).toBeUndefined();
  });

  it('answers invalid for malformed headers and caches nothing when the TTL is 0', async () => {
    const { sessions, calls } = fakeSessions({ password: 'pw', generation: () => 1 });
    const off = new BasicAuthCache(sessions, 0);
    expect(await off.authenticate('Bearer abc', '127.0.0.1')).toBe('invalid');
    expect(await off.authenticate(`Basic ${Buffer.from('nocolon').toString('base64')}`, '127.0.0.1')).toBe('invalid');
    await off.authenticate(basic('alice', 'pw'), '127.0.0.1');
    await off.authenticate(basic('alice', 'pw'), '127.0.0.1');
    expect(calls.authenticate).toBe(2);
  });
});

describe('WebDAV logins and user changes', () => {
  let stack: DavStack;
  useDav((s) => (stack = s), { alice: 'alice-pw' });

  it('a password changed in this process applies at the next request', async () => {
    expect((await dav(stack, 'PROPFIND', '/disk/', { auth: ['alice', 'alice-pw'], headers: { Depth: '0' } })).status).toBe(207);
    await stack.gateway.users!.setPassword('alice', 'alice-pw2');
    expect((await dav(stack, 'PROPFIND', '/disk/', { auth: ['alice', 'alice-pw'], headers: { Depth: '0' } })).status).toBe(401);
    expect((await dav(stack, 'PROPFIND', '/disk/', { auth: ['alice', 'alice-pw2'], headers: { Depth: '0' } })).status).toBe(207);
  });

  it('a user disabled through another connection (as `portico user` does) is refused within the data_version window', async () => {
    const auth: [string, string] = ['alice', 'alice-pw2'];
    expect((await dav(stack, 'PROPFIND', '/disk/', { auth, headers: { Depth: '0' } })).status).toBe(207);
    const stateDir = join(stack.tmp, 'state');
    const other = MetadataStore.open(stateDir);
    try {
      const users = new LocalUserStore(other, { secret: loadOrCreateSecret(stateDir), bcryptRounds: 4 });
      users.setDisabled('alice', true);
      // generation() reads SQLite's data_version at most every 100 ms: wait past that (bounded).
      let status = 0;
      for (let i = 0; i < 40 && status !== 401; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await dav(stack, 'PROPFIND', '/disk/', { auth, headers: { Depth: '0' } })).status;
      }
      expect(status).toBe(401);
      users.setDisabled('alice', false);
    } finally {
      other.close();
    }
  });
});
