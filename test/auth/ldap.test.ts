/**
 * The directory authenticator against a real OpenLDAP slapd (test/helpers/slapd.ts): search-then-bind,
 * groups of every kind, filter injection, TLS, failover, the directory going away and coming back,
 * and the login cache's TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attribute, Change } from 'ldapts';
import { Registry } from 'prom-client';
import { ldapSchema, resolveLdapSettings, type LdapConfig } from '../../src/auth/ldap-config.ts';
import { DirectoryAuthenticator } from '../../src/auth/ldap-authenticator.ts';
import { AuthFailure, loginCacheKey } from '../../src/auth/ldap-directory.ts';
import { escapeFilterValue, fillFilter } from '../../src/auth/ldap-filter.ts';
import { LocalUserStore } from '../../src/auth/local-users.ts';
import { ntHash } from '../../src/auth/md4.ts';
import { Throttle } from '../../src/auth/throttle.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { AD_BASE, freePort, haveSlapd, PEOPLE, READER_DN, READER_PW, startSlapd, SUFFIX, USERS, type Slapd } from '../helpers/slapd.ts';

const CTX = { protocol: 'test', clientAddress: '127.0.0.1' };

let slapd: Slapd;
let dir: string;
let store: MetadataStore;
let users: LocalUserStore;
const made: DirectoryAuthenticator[] = [];

function throttle(maxFailures = 1000): Throttle {
  return new Throttle({ maxFailures, windowMs: 60_000, lockoutMs: 60_000, maxLockoutMs: 60_000 });
}

function auth(over: Partial<Record<keyof LdapConfig, unknown>> = {}, t = throttle(), registry?: Registry): DirectoryAuthenticator {
  const cfg = ldapSchema.parse({ url: slapd.url, userBase: SUFFIX, bindDn: READER_DN, bindPassword: READER_PW, ...over });
  const a = new DirectoryAuthenticator({ users, throttle: t, settings: resolveLdapSettings(cfg), registry });
  made.push(a);
  return a;
}

async function failure(p: Promise<unknown>): Promise<AuthFailure> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AuthFailure) return e;
    throw e;
  }
  throw new Error('expected the login to fail');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!haveSlapd())('LDAP authenticator against slapd', () => {
  beforeAll(async () => {
    slapd = await startSlapd();
    dir = mkdtempSync(join(tmpdir(), 'portico-ldap-'));
    store = MetadataStore.open(dir);
    users = new LocalUserStore(store, { secret: 'test-secret-test-secret-test-secret', bcryptRounds: 4 });
    await users.addUser({ name: 'localuser', password: 'local-pw', groups: ['staff'] });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(made.map((a) => a.close()));
    await slapd?.close();
    store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs a directory user in by search-then-bind, with uid/gid and groups of every kind', async () => {
    const a = auth();
    const alice = await a.login('alice', 'alice-pw', CTX);
    expect(alice.source).toBe('ldap');
    expect(alice.dn).toBe(`uid=alice,${PEOPLE}`);
    expect(alice.displayName).toBe('Alice Example');
    expect(alice.principal).toMatchObject({ user: 'alice', uid: USERS.alice, gid: 20000, guest: false });
    // groupOfNames (member=DN), posixGroup (memberUid=name) and the posixGroup of the primary gid (staff).
    expect([...alice.principal.groups].sort()).toEqual(['developers', 'engineering', 'staff']);
    // groupOfUniqueNames.
    expect([...(await a.authenticate('bob', 'bob-pw', CTX)).groups].sort()).toEqual(['Sales Team (EU)', 'finance', 'staff']);
    // Nested: carol is in `leads`, which is a member of `engineering`.
    expect([...(await a.authenticate('carol', 'carol-pw', CTX)).groups].sort()).toEqual(['engineering', 'leads', 'staff']);
    // Without nesting only the direct groups.
    expect([...(await auth({ nestedGroups: false }).authenticate('carol', 'carol-pw', CTX)).groups].sort()).toEqual(['leads', 'staff']);
    // The directory's spelling of the name, whatever case was typed (uid matches case-insensitively).
    expect((await a.authenticate('ALICE', 'alice-pw', CTX)).user).toBe('alice');
  });

  it('refuses a wrong password, an empty one, an unknown user, an ambiguous filter and a locked account, each with its reason', async () => {
    const a = auth({ cacheTtlMs: 0 });
    const bad = await failure(a.login('alice', 'wrong', CTX));
    expect([bad.code, bad.reason]).toEqual(['EAUTH', 'bad-password']);
    const empty = await failure(a.login('alice', '', CTX));
    expect([empty.code, empty.reason]).toEqual(['EAUTH', 'empty-password']);
    const unknown = await failure(a.login('nobody', 'x', CTX));
    expect([unknown.code, unknown.reason]).toEqual(['EAUTH', 'no-such-user']);
    const twin = await failure(a.login('twin', 'twin-pw', CTX));
    expect([twin.code, twin.reason]).toEqual(['EAUTH', 'ambiguous']);
    expect(twin.detail).toContain('(uid=twin)');
    // A filter matching more entries than the search asks for (the server's sizeLimitExceeded).
    const wide = await failure(auth({ userFilter: '(|(uid={user})(objectClass=posixAccount))' }).login('alice', 'alice-pw', CTX));
    expect([wide.code, wide.reason]).toEqual(['EAUTH', 'ambiguous']);
    // A wrong service account password is a configuration problem, said as such (EIO, not "bad password").
    const svc = await failure(auth({ bindPassword: 'not-the-reader-pw' }).login('alice', 'alice-pw', CTX));
    expect([svc.code, svc.reason]).toEqual(['EIO', 'directory-error']);
    expect(svc.detail).toContain(`refused the service account ${READER_DN}`);
    // dave's password is right, but the password policy overlay has locked the account.
    const dave = await failure(a.login('dave', 'dave-pw', CTX));
    expect([dave.code, dave.reason]).toEqual(['EAUTH', 'bad-password']);
    // Protocols only ever show the generic text.
    expect(bad.message).toBe('invalid user name or password');
  });

  it('throttles directory users with the shared throttle (failures are never cached)', async () => {
    const t = throttle(3);
    const a = auth({}, t);
    for (let i = 0; i < 3; i++) await failure(a.login('bob', `wrong-${i}`, CTX));
    let err: unknown;
    try {
      await a.login('bob', 'bob-pw', CTX);
    } catch (e) {
      err = e;
    }
    expect(isVfsError(err, 'ETHROTTLED')).toBe(true);
    expect(t.lockedFor('user', 'bob')).toBeGreaterThan(0);
  });

  it('treats filter metacharacters in names as literal characters (RFC 4515)', async () => {
    expect(escapeFilterValue('*)(uid=*')).toBe('\\2a\\29\\28uid=\\2a');
    expect(escapeFilterValue('a\\b\0')).toBe('a\\5cb\\00');
    expect(fillFilter('(member={dn})', { dn: 'cn={user}' })).toBe('(member=cn={user})');
    const a = auth({ cacheTtlMs: 0 });
    // Raw, each of these would match alice (or everyone) and the bind as alice with her password succeed.
    for (const name of ['*', 'alice*', '*)(uid=*', 'alice)(uid=*', '*)(|(uid=*', 'al*ce', '\\61lice', 'alice\0', '(uid=alice)']) {
      const f = await failure(a.login(name, 'alice-pw', CTX));
      expect(f.reason, name).toBe('no-such-user');
    }
    expect((await a.authenticate('alice', 'alice-pw', CTX)).user).toBe('alice');
  });

  it('uses StartTLS and ldaps:// with a private CA, and refuses an unknown CA', async () => {
    expect((await auth({ startTls: true, tls: { ca: slapd.caFile } }).authenticate('bob', 'bob-pw', CTX)).user).toBe('bob');
    expect((await auth({ url: slapd.ldapsUrl, tls: { ca: slapd.caFile } }).authenticate('bob', 'bob-pw', CTX)).user).toBe('bob');
    const untrusted = await failure(auth({ url: slapd.ldapsUrl }).login('bob', 'bob-pw', CTX));
    expect([untrusted.code, untrusted.reason]).toEqual(['EAGAIN', 'unreachable']);
    expect(untrusted.detail).toMatch(/certificate/i);
    expect((await auth({ url: slapd.ldapsUrl, tls: { insecureSkipVerify: true } }).authenticate('bob', 'bob-pw', CTX)).user).toBe('bob');
  });

  it('fails over from a dead URL to a live one, and names every URL when none answers (then fails fast)', async () => {
    const dead = `ldap://127.0.0.1:${await freePort()}`;
    const a = auth({ url: [dead, slapd.url], cacheTtlMs: 0 });
    expect((await a.authenticate('alice', 'alice-pw', CTX)).user).toBe('alice');
    const st = a.directory.state();
    expect(st[0]).toMatchObject({ url: dead, up: false });
    expect(st[0]!.lastError).toMatch(/ECONNREFUSED/);
    expect(st[1]).toMatchObject({ url: slapd.url, up: true });

    const dead2 = `ldap://127.0.0.1:${await freePort()}`;
    const none = auth({ url: [dead, dead2], retryMs: 60_000 });
    const f = await failure(none.login('alice', 'alice-pw', CTX));
    expect([f.code, f.reason]).toEqual(['EAGAIN', 'unreachable']);
    expect(f.detail).toContain(dead);
    expect(f.detail).toContain(dead2);
    // Circuit breaker open: the next attempt does not wait for connections.
    const t0 = Date.now();
    expect((await failure(none.login('alice', 'alice-pw', CTX))).reason).toBe('unreachable');
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('keeps local users and cached directory logins working while slapd is down, and recovers when it is back', async () => {
    const a = auth({ cacheTtlMs: 60_000, retryMs: 200 });
    expect((await a.authenticate('carol', 'carol-pw', CTX)).user).toBe('carol');
    await slapd.stop();
    try {
      // Local users never depend on the directory.
      expect((await a.login('localuser', 'local-pw', CTX)).source).toBe('local');
      // A cached login is served from memory.
      const cached = await a.login('carol', 'carol-pw', CTX);
      expect(cached.cached).toBe(true);
      // An uncached one fails with the directory's state, not as a bad password.
      const f = await failure(a.login('bob', 'bob-pw', CTX));
      expect([f.code, f.reason]).toEqual(['EAGAIN', 'unreachable']);
      expect(f.detail).toContain(slapd.url);
    } finally {
      await slapd.start();
    }
    await sleep(1700); // past the breaker's doubled retry window (200, 400, 800 ms)
    expect((await a.authenticate('bob', 'bob-pw', CTX)).user).toBe('bob');
    expect(a.directory.state()[0]!.up).toBe(true);
  }, 30_000);

  it('lets a password change, a disabled account or a removed user take effect within the cache TTL', async () => {
    const ttl = 1500;
    const a = auth({ cacheTtlMs: ttl });
    await slapd.admin((c) =>
      c.add(`uid=erin,${PEOPLE}`, {
        objectClass: ['inetOrgPerson', 'posixAccount'],
        uid: 'erin',
        cn: 'erin',
        sn: 'erin',
        uidNumber: '20010',
        gidNumber: '20000',
        homeDirectory: '/home/erin',
        userPassword: 'erin-old',
      }),
    );
    const first = await a.login('erin', 'erin-old', CTX);
    expect(first.cached).toBe(false);
    expect(first.principal.validUntil).toBeGreaterThan(Date.now());
    expect(first.principal.validUntil).toBeLessThanOrEqual(Date.now() + ttl);
    await slapd.admin((c) => c.modify(`uid=erin,${PEOPLE}`, new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: ['erin-new'] }) })));
    // The new password works at once (a different cache key); the old one until the TTL ends.
    expect((await a.login('erin', 'erin-new', CTX)).cached).toBe(false);
    expect((await a.login('erin', 'erin-old', CTX)).cached).toBe(true);
    await sleep(ttl + 100);
    expect((await failure(a.login('erin', 'erin-old', CTX))).reason).toBe('bad-password');
    expect((await a.login('erin', 'erin-new', CTX)).cached).toBe(false);
    // Locked (password policy) while cached: refused once the entry expires.
    await slapd.admin((c) => c.modify(`uid=erin,${PEOPLE}`, new Change({ operation: 'add', modification: new Attribute({ type: 'pwdAccountLockedTime', values: ['000001010000Z'] }) })));
    expect((await a.login('erin', 'erin-new', CTX)).cached).toBe(true);
    await sleep(ttl + 100);
    expect((await failure(a.login('erin', 'erin-new', CTX))).reason).toBe('bad-password');
    // Removed from the directory: the cached login ends with the TTL.
    await slapd.admin((c) => c.modify(`uid=erin,${PEOPLE}`, new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [] }) })));
    expect((await a.login('erin', 'erin-new', CTX)).cached).toBe(false);
    await slapd.admin((c) => c.del(`uid=erin,${PEOPLE}`));
    expect((await a.login('erin', 'erin-new', CTX)).cached).toBe(true);
    await sleep(ttl + 100);
    expect((await failure(a.login('erin', 'erin-new', CTX))).reason).toBe('no-such-user');
  }, 20_000);

  it('asks the first source that knows the name: a local user is never shadowed by (or shadows) a directory entry unless the order says so', async () => {
    await users.addUser({ name: 'bob', password: 'local-bob-pw' });
    try {
      const localFirst = auth({ order: ['local', 'ldap'] });
      expect((await localFirst.login('bob', 'local-bob-pw', CTX)).source).toBe('local');
      expect((await failure(localFirst.login('bob', 'bob-pw', CTX))).reason).toBe('local-bad-password');
      const ldapFirst = auth({ order: ['ldap', 'local'] });
      expect((await ldapFirst.login('bob', 'bob-pw', CTX)).source).toBe('ldap');
      expect((await failure(ldapFirst.login('bob', 'local-bob-pw', CTX))).reason).toBe('bad-password');
      // Directory only: local users do not exist.
      expect((await failure(auth({ order: ['ldap'] }).login('localuser', 'local-pw', CTX))).reason).toBe('no-such-user');
    } finally {
      users.deleteUser('bob');
    }
  });

  it('maps NFS uids and SMB names to directory principals (cached), and hands SMB the directory NT hash', async () => {
    const a = auth();
    expect(await a.principalForUid(USERS.bob!)).toMatchObject({ user: 'bob', uid: USERS.bob });
    expect([...(await a.principalForUid(USERS.bob!))!.groups].sort()).toEqual(['Sales Team (EU)', 'finance', 'staff']);
    expect(await a.principalForUid(424242)).toBeUndefined();
    expect(await a.principalForUid(65534)).toBeUndefined();
    expect((await a.principalFor('alice'))?.uid).toBe(USERS.alice);
    expect((await a.ntHash('alice'))?.equals(ntHash('alice-pw'))).toBe(true);
    expect(await a.ntHash('nobody')).toBeUndefined();
    // Local users keep their own ids and hash.
    expect((await a.principalFor('localuser'))?.groups).toEqual(['staff']);
    // Served from the cache while slapd is down.
    await slapd.stop();
    try {
      expect((await a.principalForUid(USERS.bob!))?.user).toBe('bob');
      expect((await a.principalFor('alice'))?.user).toBe('alice');
    } finally {
      await slapd.start();
    }
  });

  it('keeps logins apart on a small pool under concurrency (a connection bound as one user never searches or answers for another)', async () => {
    const a = auth({ poolSize: 2, cacheTtlMs: 0 });
    const cases = Array.from({ length: 30 }, (_, i) => {
      const name = ['alice', 'bob', 'carol'][i % 3]!;
      const good = i % 4 !== 1;
      return { name, password: good ? `${name}-pw` : 'wrong', good };
    });
    const results = await Promise.all(cases.map((c) => a.login(c.name, c.password, CTX).then((r) => r.principal.user, (e: unknown) => (e instanceof AuthFailure ? e.reason : String(e)))));
    expect(results).toEqual(cases.map((c) => (c.good ? c.name : 'bad-password')));
  });

  it('counts logins by source and result, directory round trips and cache hits in the metrics', async () => {
    const registry = new Registry();
    const a = auth({}, throttle(), registry);
    await a.login('alice', 'alice-pw', CTX);
    await a.login('alice', 'alice-pw', CTX);
    await a.login('localuser', 'local-pw', CTX);
    await failure(a.login('alice', 'wrong', CTX));
    const text = await registry.metrics();
    expect(text).toContain('portico_auth_logins_total{source="ldap",result="ok"} 2');
    expect(text).toContain('portico_auth_logins_total{source="local",result="ok"} 1');
    expect(text).toContain('portico_auth_logins_total{source="ldap",result="bad-password"} 1');
    expect(text).toContain('portico_ldap_cache_hits_total{cache="login"} 1');
    expect(text).toMatch(/portico_ldap_request_seconds_count\{op="search",result="ok"\} [1-9]/);
    expect(text).toMatch(/portico_ldap_request_seconds_count\{op="bind",result="error"\} 1/);
    expect(text).toContain(`portico_ldap_up{url="${slapd.url}"} 1`);
    // A second authenticator on the same registry (a restarted gateway) shares the counters.
    await auth({}, throttle(), registry).login('alice', 'alice-pw', CTX);
    expect(await registry.metrics()).toContain('portico_auth_logins_total{source="ldap",result="ok"} 3');

    // A wrong password and an unknown name cost the same round trips (one search, one refused bind),
    // so answer times do not tell which names exist; groups are searched only after a good password.
    const count = async (op: string, result: string): Promise<number> =>
      Number(new RegExp(`portico_ldap_request_seconds_count\\{op="${op}",result="${result}"\\} (\\d+)`).exec(await registry.metrics())?.[1] ?? 0);
    const trips = async (): Promise<number[]> => [await count('search', 'ok'), await count('bind', 'ok'), await count('bind', 'error')];
    const delta = async (fn: () => Promise<unknown>): Promise<number[]> => {
      const before = await trips();
      await fn();
      return (await trips()).map((n, i) => n - before[i]!);
    };
    const wrong = await delta(() => failure(a.login('bob', 'wrong', CTX)));
    const unknown = await delta(() => failure(a.login('no-such-name', 'wrong', CTX)));
    // [searches, service rebinds, refused binds]: one user search (no group search), one refused bind.
    expect([wrong[0], wrong[2]]).toEqual([1, 1]);
    expect(unknown).toEqual(wrong);
  });

  it('the activeDirectory preset: sAMAccountName or userPrincipalName logins, ids from the objectSid RID and primaryGroupID', async () => {
    // slapd has no LDAP_MATCHING_RULE_IN_CHAIN (it evaluates the preset's nested filter as Undefined:
    // no groups), so direct groups only here (nestedGroups: false).
    const a = auth({ activeDirectory: true, userBase: AD_BASE, nestedGroups: false });
    const byName = await a.login('hank', 'hank-pw', CTX);
    expect(byName.principal).toMatchObject({ user: 'hank', uid: 1_000_000 + 1105, gid: 1_000_000 + 513 });
    expect(byName.principal.groups).toEqual(['ad-engineers']);
    expect(byName.dn).toBe(`cn=Hank Hill,${AD_BASE}`);
    // The UPN logs the same account in, under its sAMAccountName.
    expect((await a.login('hank@example.org', 'hank-pw', CTX)).principal.user).toBe('hank');
    expect((await failure(a.login('hank', 'wrong', CTX))).reason).toBe('bad-password');
    // NFS: the RID-mapped uid finds its user by objectSid (domain SID learned from the entries),
    // also in a fresh authenticator that has not seen any AD entry yet.
    expect(await a.principalForUid(1_000_000 + 1105)).toMatchObject({ user: 'hank', gid: 1_000_000 + 513 });
    const fresh = auth({ activeDirectory: true, userBase: AD_BASE, nestedGroups: false });
    expect((await fresh.principalForUid(1_000_000 + 1105))?.user).toBe('hank');
    expect(await fresh.principalForUid(1_000_000 + 1106)).toBeUndefined();
    expect(await fresh.principalForUid(999_999)).toBeUndefined();
    // SMB: AD never exposes NT hashes (none here either): refused, with the reason logged.
    expect(await a.ntHash('hank')).toBeUndefined();
  });

});

describe('login cache key', () => {
  it('differs for every (name, password) split of the same characters, and ignores the name case only', () => {
    const k = (n: string, p: string) => loginCacheKey('s', n, p);
    expect(k('a', 'b\0c')).not.toBe(k('a\0b', 'c'));
    expect(k('ab', 'c')).not.toBe(k('a', 'bc'));
    expect(k('Alice', 'pw')).toBe(k('alice', 'pw'));
    expect(k('alice', 'pw')).not.toBe(k('alice', 'PW'));
    expect(loginCacheKey('s2', 'alice', 'pw')).not.toBe(k('alice', 'pw'));
  });
});
