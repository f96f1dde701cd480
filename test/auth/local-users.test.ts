import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { LocalAuthenticator, LocalUserStore } from '../../src/auth/local-users.ts';
import { ntHash } from '../../src/auth/md4.ts';
import { SecretBox, loadOrCreateSecret } from '../../src/auth/secret-box.ts';
import { Throttle } from '../../src/auth/throttle.ts';
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';

const ROUNDS = 4;
const CTX = { protocol: 'webdav', clientAddress: '127.0.0.1' };
const SECRET = 'test-secret-test-secret-test-secret';

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: VfsErrorCode): Promise<Error> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isVfsError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
  return err as Error;
}

let dir: string;
let store: MetadataStore;
let users: LocalUserStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portico-users-'));
  store = MetadataStore.open(dir);
  users = new LocalUserStore(store, { secret: SECRET, bcryptRounds: ROUNDS });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('LocalUserStore', () => {
  it('adds, lists, changes and deletes users', async () => {
    expect(users.count()).toBe(0);
    const alice = await users.addUser({ name: 'alice', password: 'pw-alice', groups: ['staff', 'finance', 'staff'] });
    expect(alice).toMatchObject({ name: 'alice', uid: 10000, gid: 10000, groups: ['staff', 'finance'], disabled: false });
    expect(alice.created).toBeInstanceOf(Date);
    const bob = await users.addUser({ name: 'bob', password: 'pw-bob' });
    expect(bob.uid).toBe(10001);
    const sys = await users.addUser({ name: 'svc', password: 'pw', uid: 500, gid: 100 });
    expect(sys).toMatchObject({ uid: 500, gid: 100 });
    expect((await users.addUser({ name: 'carol', password: 'pw' })).uid).toBe(10002);
    expect(users.count()).toBe(4);

    const list = users.listUsers();
    expect(list.map((u) => u.name)).toEqual(['alice', 'bob', 'carol', 'svc']);
    for (const u of list) expect(Object.keys(u).sort()).toEqual(['created', 'disabled', 'gid', 'groups', 'name', 'uid', 'updated']);

    await rejectsWith(users.addUser({ name: 'ALICE', password: 'x' }), 'EEXIST');
    await rejectsWith(users.addUser({ name: 'dave', password: 'x', uid: 10000 }), 'EEXIST');
    await rejectsWith(users.addUser({ name: 'bad name', password: 'x' }), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'guest', password: 'x' }), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'erin', password: '' }), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'erin', password: 'x', groups: ['bad group'] }), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'erin', password: 'x', uid: 65534 }), 'EINVAL');

    users.deleteUser('Bob');
    expect(users.getUser('bob')).toBeUndefined();
    await rejectsWith(() => users.deleteUser('bob'), 'ENOENT');
    await rejectsWith(users.setPassword('bob', 'x'), 'ENOENT');
    // Deleted uids are not handed out again while a higher one exists.
    expect((await users.addUser({ name: 'dave', password: 'pw' })).uid).toBe(10003);
    expect(users.getUser('ALICE')?.name).toBe('alice');
    expect(users.getUserByUid(500)?.name).toBe('svc');
  });

  it('refuses passwords bcrypt would truncate or misread', async () => {
    const err = await rejectsWith(users.addUser({ name: 'long', password: 'x'.repeat(73) }), 'EINVAL');
    expect(err.message).toContain('73 bytes');
    expect(err.message).toContain('72');
    // 24 three-byte characters = 72 bytes: allowed; 25 = 75 bytes: refused.
    await users.addUser({ name: 'cjk', password: '漢'.repeat(24) });
    await rejectsWith(users.addUser({ name: 'cjk2', password: '漢'.repeat(25) }), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'nul', password: 'ab\0cd' }), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'sur', password: 'a\ud800b' }), 'EINVAL');
    await rejectsWith(users.setPassword('cjk', 'y'.repeat(100)), 'EINVAL');
    await rejectsWith(users.addUser({ name: 'huge', password: 'x'.repeat(2000) }), 'EINVAL');
  });

  it('stores the NT hash sealed, bound to the user, and opens it back', async () => {
    await users.addUser({ name: 'alice', password: 'password' });
    const row = store.db.prepare('SELECT * FROM users WHERE name = ?').get('alice') as Record<string, unknown>;
    const plain = ntHash('password');
    expect(plain.toString('hex')).toBe('8846f7eaee8fb117ad06bdd830b7586c');
    const stored = String(row['nthash']);
    expect(stored.startsWith('v1:')).toBe(true);
    expect(stored).not.toContain(plain.toString('hex'));
    expect(stored).not.toContain(plain.toString('base64').slice(0, 20));
    expect(Buffer.from(stored.slice(3), 'base64').includes(plain)).toBe(false);
    expect(String(row['bcrypt'])).toMatch(/^\$2b\$04\$/);
    expect(users.ntHash('ALICE')?.equals(plain)).toBe(true);
    expect(new SecretBox(SECRET).open(stored, 'nthash:alice').equals(plain)).toBe(true);

    await users.setPassword('alice', 'new-password');
    expect(users.ntHash('alice')?.equals(ntHash('new-password'))).toBe(true);

    // A sealed hash moved onto another user's row does not open there.
    await users.addUser({ name: 'mallory', password: 'whatever' });
    store.db.prepare('UPDATE users SET nthash = ? WHERE name = ?').run(stored, 'mallory');
    await rejectsWith(() => users.ntHash('mallory'), 'EIO');
    // Tampering is detected.
    const t = Buffer.from(stored.slice(3), 'base64');
    t[t.length - 1]! ^= 0x80;
    store.db.prepare('UPDATE users SET nthash = ? WHERE name = ?').run('v1:' + t.toString('base64'), 'alice');
    await rejectsWith(() => users.ntHash('alice'), 'EIO');
  });

  it('refuses to open the store with a different secret key', async () => {
    await rejectsWith(() => new LocalUserStore(store, { secret: 'another-secret-another-secret-xx', bcryptRounds: ROUNDS }), 'EIO');
    expect(new LocalUserStore(store, { secret: SECRET, bcryptRounds: ROUNDS }).count()).toBe(0);
  });

  it('keeps the database and the generated key owner-only', () => {
    expect(statSync(join(dir, 'portico.db')).mode & 0o777).toBe(0o600);
    loadOrCreateSecret(dir);
    expect(statSync(join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
  });

  it('persists across reopen', async () => {
    await users.addUser({ name: 'alice', password: 'pw', groups: ['g'] });
    store.close();
    store = MetadataStore.open(dir);
    const again = new LocalUserStore(store, { secret: SECRET, bcryptRounds: ROUNDS });
    expect(again.getUser('alice')).toMatchObject({ uid: 10000, groups: ['g'] });
    expect(await again.verifyPassword('alice', 'pw')).toBeDefined();
  });
});

describe('LocalAuthenticator', () => {
  const make = (now?: () => number) =>
    new LocalAuthenticator(users, new Throttle({ maxFailures: 3, windowMs: 60_000, lockoutMs: 10_000, maxLockoutMs: 60_000, ...(now ? { now } : {}) }));

  it('authenticates good credentials and maps principals', async () => {
    await users.addUser({ name: 'alice', password: 'correct horse', groups: ['staff'] });
    const auth = make();
    expect(await auth.authenticate('alice', 'correct horse', CTX)).toEqual({ user: 'alice', uid: 10000, gid: 10000, groups: ['staff'], guest: false });
    expect((await auth.authenticate('Alice', 'correct horse', CTX)).user).toBe('alice');
    expect(await auth.principalFor('ALICE')).toMatchObject({ user: 'alice', uid: 10000 });
    expect(await auth.principalForUid(10000)).toMatchObject({ user: 'alice' });
    expect(await auth.principalForUid(4242)).toBeUndefined();
    expect(await auth.principalFor('nobody')).toBeUndefined();
    expect((await auth.ntHash('alice'))?.equals(ntHash('correct horse'))).toBe(true);
    expect(await auth.ntHash('nobody')).toBeUndefined();
    expect(auth.guest()).toEqual({ user: 'guest', uid: 65534, gid: 65534, groups: [], guest: true });
  });

  it('rejects bad passwords, unknown and disabled users alike with EAUTH', async () => {
    await users.addUser({ name: 'alice', password: 'correct horse' });
    await users.addUser({ name: 'off', password: 'correct horse', disabled: true });
    const auth = make();
    const e1 = await rejectsWith(auth.authenticate('alice', 'wrong', CTX), 'EAUTH');
    const e2 = await rejectsWith(auth.authenticate('nobody', 'correct horse', CTX), 'EAUTH');
    const e3 = await rejectsWith(auth.authenticate('off', 'correct horse', { ...CTX, clientAddress: '10.0.0.2' }), 'EAUTH');
    expect(new Set([e1.message, e2.message, e3.message]).size).toBe(1);
    // More than 72 bytes can never match (no truncation at login either).
    await rejectsWith(auth.authenticate('alice', 'correct horse' + 'x'.repeat(80), { ...CTX, clientAddress: '10.0.0.3' }), 'EAUTH');
    expect(await auth.principalFor('off')).toBeUndefined();
    expect(await auth.ntHash('off')).toBeUndefined();
    users.setDisabled('off', false);
    expect((await auth.authenticate('off', 'correct horse', { ...CTX, clientAddress: '10.0.0.4' })).user).toBe('off');
  });

  it('throttles password logins per user and per address, including NTLM results', async () => {
    await users.addUser({ name: 'alice', password: 'right' });
    await users.addUser({ name: 'bob', password: 'right' });
    let t = 0;
    const auth = make(() => t);
    for (let i = 0; i < 3; i++) await rejectsWith(auth.authenticate('alice', 'wrong', { ...CTX, clientAddress: `10.0.0.${i}` }), 'EAUTH');
    // Locked: even the right password is refused, from any address.
    await rejectsWith(auth.authenticate('alice', 'right', { ...CTX, clientAddress: '10.9.9.9' }), 'ETHROTTLED');
    expect((await auth.authenticate('bob', 'right', { ...CTX, clientAddress: '10.9.9.9' })).user).toBe('bob');
    t += 10_000;
    expect((await auth.authenticate('alice', 'right', { ...CTX, clientAddress: '10.9.9.9' })).user).toBe('alice');

    // NTLM outcomes count against the same keys.
    const smb = { protocol: 'smb', clientAddress: '192.0.2.1' };
    auth.recordResult('x1', smb, false);
    auth.recordResult('x2', smb, false);
    auth.checkThrottle('bob', smb);
    auth.recordResult('x3', smb, false);
    await rejectsWith(() => auth.checkThrottle('bob', smb), 'ETHROTTLED');
    await rejectsWith(auth.authenticate('bob', 'right', smb), 'ETHROTTLED');
  });

  it('does not reveal outcomes of attempts that were in flight when the lock fell', async () => {
    await users.addUser({ name: 'alice', password: 'right' });
    const auth = make();
    // All six pass the first check together; once three have failed the rest must say ETHROTTLED.
    const results = await Promise.allSettled(
      ['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((pw, i) => auth.authenticate('alice', pw, { ...CTX, clientAddress: `10.1.0.${i}` })),
    );
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok'));
    expect(codes.filter((c) => c === 'EAUTH')).toHaveLength(3);
    expect(codes.filter((c) => c === 'ETHROTTLED')).toHaveLength(3);
  });
});
