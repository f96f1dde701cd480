/**
 * ACL decisions through the real session gate: share grants, path rules (nearest ancestor wins,
 * deny beats allow at the same path, segment-wise matching), read-only shares, guests, and
 * protocol exposure.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { makeVfsEnv, alice, bob, guest, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';
import { ShareAcl, type Right } from '../../src/acl/acl.ts';
import type { Principal } from '../../src/auth/authenticator.ts';

const carol: Principal = { user: 'carol', uid: 1003, gid: 1003, groups: ['finance', 'auditors'], guest: false };

describe('ShareAcl decision matrix', () => {
  const acl = new ShareAcl({
    name: 's',
    access: [
      { users: ['*'], rights: ['read'] },
      { groups: ['staff'], rights: ['read', 'write'] },
      { users: ['carol'], rights: ['read', 'write', 'admin'] },
    ],
    rules: [
      { path: '/finance', users: ['*'], deny: ['read', 'write'] },
      { path: '/finance', groups: ['finance'], allow: ['read', 'write'] },
      { path: '/finance', users: ['carol'], deny: ['write'] },
      { path: '/finance/public', users: ['*'], allow: ['read'] },
      { path: '/finance/public/secret', groups: ['auditors'], deny: ['read'] },
      { path: '/fin', users: ['alice'], deny: ['read'] },
    ],
  });

  // [principal, right, path, expected]
  const cases: [Principal, Right, string, boolean][] = [
    [alice, 'read', '/', true],
    [alice, 'write', '/', true],
    [alice, 'admin', '/', false],
    [bob, 'read', '/', true],
    [bob, 'write', '/', false],
    [carol, 'admin', '/', true],
    // Nearest rule: /finance denies everyone except the finance group ...
    [alice, 'read', '/finance', false],
    [alice, 'read', '/finance/q1/report.xlsx', false],
    [bob, 'read', '/finance/q1', true],
    [bob, 'write', '/finance/q1', true],
    // ... deny beats allow at the same path (carol is in finance but denied write there).
    [carol, 'write', '/finance/x', false],
    [carol, 'read', '/finance/x', true],
    // A deeper rule overrides a shallower one.
    [alice, 'read', '/finance/public/a', true],
    [alice, 'write', '/finance/public/a', false],
    [carol, 'read', '/finance/public/secret/b', false],
    [bob, 'read', '/finance/public/secret/b', true],
    // Segment-wise: '/fin' does not cover '/finance' or '/final'.
    [alice, 'read', '/fin/x', false],
    [alice, 'read', '/final', true],
    // Guests have nothing on a share without guest access.
    [guest, 'read', '/', false],
  ];

  for (const [p, right, path, want] of cases) {
    it(`${p.user} ${right} ${path} -> ${want ? 'allow' : 'deny'}`, () => {
      expect(acl.allows(p, right, path)).toBe(want);
    });
  }

  it('rule paths follow the share case sensitivity', () => {
    const ci = new ShareAcl({ name: 'c', caseSensitive: false, rules: [{ path: '/Private', users: ['*'], deny: ['read'] }] });
    expect(ci.allows(alice, 'read', '/PRIVATE/x')).toBe(false);
    const cs = new ShareAcl({ name: 'c', rules: [{ path: '/Private', users: ['*'], deny: ['read'] }] });
    expect(cs.allows(alice, 'read', '/PRIVATE/x')).toBe(true);
  });

  it('guest read only where the share allows it, never write', () => {
    const g = new ShareAcl({ name: 'g', guest: 'read' });
    expect(g.allows(guest, 'read', '/a')).toBe(true);
    expect(g.allows(guest, 'write', '/a')).toBe(false);
    expect(g.visibleTo(guest)).toBe(true);
  });
});

describe('session gate enforces the ACL', () => {
  let env: VfsEnv;
  afterEach(async () => env.destroy());

  it('denies with EACCES, read-only shares with EROFS, and audits nothing it did not do', async () => {
    env = makeVfsEnv(new MemoryBackend(), {
      share: {
        access: [{ users: ['alice'], rights: ['read', 'write'] }, { users: ['bob'], rights: ['read'] }],
        rules: [{ path: '/private', users: ['bob'], deny: ['read'] }],
      },
    });
    const a = env.session(alice);
    const b = env.session(bob);
    await a.mkdir('s', '/private');
    await writeFile(a, '/private/p', 'secret');
    await writeFile(a, '/pub', 'hello');
    await expectCode(b.getattr('s', '/private/p'), 'EACCES');
    await expectCode(b.open('s', '/private/p', { access: RO, owner: 'o' }), 'EACCES');
    await expectCode(b.open('s', '/pub', { access: RW, owner: 'o' }), 'EACCES');
    await expectCode(b.unlink('s', '/pub'), 'EACCES');
    await expectCode(b.rename('s', '/pub', '/x'), 'EACCES');
    await expectCode(b.setattr('s', '/pub', { uid: 5 }), 'EACCES');
    // Renaming into a denied location needs write there too.
    await expectCode(a.rename('s', '/pub', '/private/../x'), 'EINVAL');
    expect((await b.getattr('s', '/pub')).size).toBe(5);
    await expectCode(env.session(guest).getattr('s', '/pub'), 'EACCES');
  });

  it('access() reports the rights mask every front-end maps (NFS ACCESS, SMB MAXIMUM_ALLOWED, the UI hint)', async () => {
    env = makeVfsEnv(new MemoryBackend(), {
      share: {
        access: [{ users: ['alice'], rights: ['read', 'write', 'admin'] }, { users: ['bob'], rights: ['read'] }],
        rules: [{ path: '/private', users: ['bob'], deny: ['read'] }, { path: '/locked', users: ['alice'], deny: ['write'] }],
      },
    });
    expect(env.session(alice).access('s', '/x')).toEqual({ read: true, write: true, delete: true, admin: true, readOnlyShare: false });
    expect(env.session(alice).access('s', '/locked/y')).toEqual({ read: true, write: false, delete: false, admin: true, readOnlyShare: false });
    expect(env.session(bob).access('s', '/x')).toEqual({ read: true, write: false, delete: false, admin: false, readOnlyShare: false });
    expect(env.session(bob).access('s', '/private/p')).toEqual({ read: false, write: false, delete: false, admin: false, readOnlyShare: false });
    expect(env.session(guest).access('s', '/x').read).toBe(false);
    expect(() => env.session(alice).access('s', '/../x')).toThrow(/dot segment/);
    await env.destroy();
    env = makeVfsEnv(new MemoryBackend(), { share: { readOnly: true } });
    expect(env.session(alice).access('s', '/')).toEqual({ read: true, write: false, delete: false, admin: false, readOnlyShare: true });
  });

  it('read-only share refuses every change with EROFS', async () => {
    const backend = new MemoryBackend();
    env = makeVfsEnv(backend, { share: { readOnly: true } });
    const a = env.session(alice);
    await expectCode(a.mkdir('s', '/d'), 'EROFS');
    await expectCode(a.open('s', '/f', { access: RW, disposition: 'create', owner: 'o' }), 'EROFS');
    expect((await a.readdir('s', '/')).entries).toEqual([]);
  });

  it('a share not exposed to a protocol does not exist for it', async () => {
    env = makeVfsEnv(new MemoryBackend(), { share: { protocols: ['nfs'] } });
    await expectCode(env.session(alice, 'webdav').getattr('s', '/'), 'ENOENT');
    expect((await env.session(alice, 'nfs').getattr('s', '/')).type).toBe('dir');
    expect(env.sessions.sharesFor(alice, 'webdav')).toEqual([]);
    expect(env.sessions.sharesFor(alice, 'nfs')).toEqual(['s']);
    // Share names are case-insensitive.
    expect((await env.session(alice, 'nfs').getattr('S', '/')).type).toBe('dir');
  });
});

describe('client state apart from the caller (per-call credentials)', () => {
  let env: VfsEnv;
  afterEach(async () => env.destroy());

  it('views made with as() share handles, lock owners and the end, and check rights and audit as their own principal', async () => {
    const audit: Record<string, unknown>[] = [];
    const logger = { info: (e: Record<string, unknown>) => void audit.push(e) } as unknown as import('pino').Logger;
    env = makeVfsEnv(new MemoryBackend(), {
      audit: logger,
      share: { access: [{ users: ['alice'], rights: ['read', 'write'] }, { users: ['bob'], rights: ['read'] }] },
    });
    const client = env.session(alice, 'nfs');
    const asBob = client.as(bob);
    expect(client.as(alice)).toBe(client);
    expect(asBob.id).toBe(client.id);
    await writeFile(client, '/f', 'data');
    // bob may read but not write, in the same client state.
    await expectCode(asBob.open('s', '/f', { access: RW, owner: 'o' }), 'EACCES');
    const h = await asBob.open('s', '/f', { access: RO, owner: 'o' });
    // The handle belongs to the client: usable and closable through any view.
    expect((await client.read(h, 0, 4)).toString()).toBe('data');
    await writeFile(asBob.as(alice), '/g', 'x');
    expect(audit.filter((e) => e.op === 'open' && e.path === '/g').map((e) => e.user)).toEqual(['alice']);
    expect(env.sessions.openSessions()).toBe(1);
    await asBob.end();
    expect(client.isClosed).toBe(true);
    expect(h.closed).toBe(true);
    expect(env.sessions.openSessions()).toBe(0);
    await expectCode(client.getattr('s', '/f'), 'EBADF');
  });
});
