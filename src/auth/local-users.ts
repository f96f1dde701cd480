/**
 * Local users, kept in the metadata store (table `users`), and the authenticator over them.
 *
 * Decisions (and why):
 * - Two hashes per user: bcrypt for password logins (HTTP Basic), and the NT hash because NTLMv2
 *   (SMB) can only be verified with it. The NT hash is password-equivalent, so it is stored sealed
 *   with SecretBox (see secret-box.ts), bound to the user name; the store refuses to start with a
 *   different secret key than the one it was created with (a canary in `kv`), rather than failing
 *   later at the first SMB login.
 * - Names are [A-Za-z0-9._@-]{1,64} and unique case-insensitively (SMB clients send user names in
 *   any case; NTLMv2 itself upper-cases them); the stored spelling is the canonical one. 'guest' is
 *   reserved for the guest principal.
 * - Passwords: 1..72 UTF-8 bytes. bcrypt reads only the first 72 bytes (and stops at NUL), so longer
 *   passwords or ones containing NUL are refused instead of being silently truncated; a login with
 *   more than 72 bytes can therefore never be right and is rejected without truncation too.
 *   Lone surrogates are refused: they cannot be encoded in UTF-8 or UTF-16 faithfully.
 * - Unknown and disabled users still cost one bcrypt compare (against a dummy hash), so response
 *   time does not reveal which user names exist.
 * - uids are assigned from 10000 upward (clear of system accounts) and are unique, since NFS
 *   AUTH_SYS maps a uid back to exactly one user. 65534 is the guest's. The primary gid defaults to
 *   the uid (user private group).
 */
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import type { StatementSync } from 'node:sqlite';
import type { MetadataStore } from '../store/metadata-store.ts';
import { VfsError } from '../vfs/errors.ts';
import { GUEST_ID, GUEST_USER, guestPrincipal, type AuthContext, type Authenticator, type Principal } from './authenticator.ts';
import { ntHash } from './md4.ts';
import { SecretBox } from './secret-box.ts';
import type { Throttle } from './throttle.ts';

interface Bcrypt {
  hash(data: string, rounds: number): Promise<string>;
  compare(data: string, encrypted: string): Promise<boolean>;
}
// bcrypt is CommonJS without type declarations.
const bcrypt = createRequire(import.meta.url)('bcrypt') as Bcrypt;

export const USER_NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;
export const FIRST_AUTO_UID = 10000;
export const MAX_PASSWORD_BYTES = 72;
export const MAX_PASSWORD_CHARS = 1024;
const MAX_ID = 0xfffffffe;
const CANARY_KEY = 'auth.secret-canary';
/** How stale generation()'s view of other processes' changes may be. */
const DATA_VERSION_MS = 100;
/** User changes per database connection, shared by every LocalUserStore on it (see generation()). */
const CONNECTION_CHANGES = new WeakMap<object, { n: number }>();

export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  groups: string[];
  disabled: boolean;
  created: Date;
  updated: Date;
}

export interface NewUser {
  name: string;
  password: string;
  uid?: number;
  gid?: number;
  groups?: string[];
  disabled?: boolean;
}

interface Row {
  name: string;
  uid: number;
  gid: number;
  groups: string;
  bcrypt: string;
  nthash: string;
  disabled: number;
  created: number;
  updated: number;
}

const MIGRATIONS = [
  [
    `CREATE TABLE users (
       name TEXT NOT NULL COLLATE NOCASE PRIMARY KEY,
       uid INTEGER NOT NULL UNIQUE,
       gid INTEGER NOT NULL,
       groups TEXT NOT NULL,
       bcrypt TEXT NOT NULL,
       nthash TEXT NOT NULL,
       disabled INTEGER NOT NULL DEFAULT 0,
       created INTEGER NOT NULL,
       updated INTEGER NOT NULL
     ) STRICT`,
  ],
];

export function validateUserName(name: string): string {
  if (typeof name !== 'string' || !USER_NAME_RE.test(name)) {
    throw new VfsError('EINVAL', `invalid user name ${JSON.stringify(name)}: must match [A-Za-z0-9._@-]{1,64}`);
  }
  if (name.toLowerCase() === GUEST_USER) throw new VfsError('EINVAL', `user name "${name}" is reserved for the guest principal`);
  return name;
}

export function validatePassword(password: string): string {
  if (typeof password !== 'string' || password.length === 0) throw new VfsError('EINVAL', 'password must not be empty');
  if (password.length > MAX_PASSWORD_CHARS) throw new VfsError('EINVAL', `password is longer than ${MAX_PASSWORD_CHARS} characters`);
  if (!password.isWellFormed()) throw new VfsError('EINVAL', 'password is not valid Unicode (lone surrogate)');
  if (password.includes('\0')) throw new VfsError('EINVAL', 'password must not contain NUL characters');
  const bytes = Buffer.byteLength(password, 'utf8');
  if (bytes > MAX_PASSWORD_BYTES) {
    throw new VfsError(
      'EINVAL',
      `password is ${bytes} bytes in UTF-8; at most ${MAX_PASSWORD_BYTES} are allowed because bcrypt ignores everything after byte ${MAX_PASSWORD_BYTES}`,
    );
  }
  return password;
}

function validateGroups(groups: readonly string[]): string[] {
  if (!Array.isArray(groups)) throw new VfsError('EINVAL', 'groups must be a list');
  for (const g of groups) {
    if (typeof g !== 'string' || !USER_NAME_RE.test(g)) throw new VfsError('EINVAL', `invalid group name ${JSON.stringify(g)}: must match [A-Za-z0-9._@-]{1,64}`);
  }
  return [...new Set(groups)];
}

function validateId(what: string, id: number): number {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) throw new VfsError('EINVAL', `${what} must be an integer 0..${MAX_ID}`);
  if (id === GUEST_ID) throw new VfsError('EINVAL', `${what} ${GUEST_ID} is reserved for the guest principal`);
  return id;
}

export class LocalUserStore {
  private readonly store: MetadataStore;
  private readonly box: SecretBox;
  private readonly rounds: number;
  private readonly st: Record<'get' | 'byUid' | 'list' | 'count' | 'insert' | 'setPw' | 'del' | 'setDisabled' | 'setGroups' | 'maxUid' | 'dataVersion', StatementSync>;
  private dummyHash: Promise<string> | undefined;
  /** Changes made through this connection (its own commits do not move data_version). */
  private readonly changes: { n: number };
  private dataVersion = 0;
  private dataVersionAt = -Infinity;

  /**
   * @param secret the key that seals NT hashes (auth.secretKey or loadOrCreateSecret()).
   * @throws VfsError('EIO') when `secret` is not the key this store was created with.
   */
  constructor(store: MetadataStore, opts: { secret: string; bcryptRounds?: number }) {
    this.store = store;
    this.box = new SecretBox(opts.secret);
    this.rounds = opts.bcryptRounds ?? 12;
    if (!Number.isInteger(this.rounds) || this.rounds < 4 || this.rounds > 31) throw new VfsError('EINVAL', 'bcryptRounds must be an integer 4..31');
    store.migrate('users', MIGRATIONS);
    const canary = store.kvGet(CANARY_KEY);
    if (canary === undefined) store.kvSet(CANARY_KEY, this.box.seal('portico', CANARY_KEY));
    else {
      try {
        this.box.open(canary, CANARY_KEY);
      } catch (e) {
        throw new VfsError(
          'EIO',
          'the secret key does not match the one the user store was created with (auth.secretKey or secret.key changed): restore the previous key',
          { cause: e },
        );
      }
    }
    const db = store.db;
    let changes = CONNECTION_CHANGES.get(db);
    if (changes === undefined) CONNECTION_CHANGES.set(db, (changes = { n: 0 }));
    this.changes = changes;
    const cols = 'name, uid, gid, groups, bcrypt, nthash, disabled, created, updated';
    this.st = {
      get: db.prepare(`SELECT ${cols} FROM users WHERE name = ?`),
      byUid: db.prepare(`SELECT ${cols} FROM users WHERE uid = ?`),
      list: db.prepare(`SELECT ${cols} FROM users ORDER BY name`),
      count: db.prepare('SELECT COUNT(*) AS n FROM users'),
      insert: db.prepare(`INSERT INTO users (${cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      setPw: db.prepare('UPDATE users SET bcrypt = ?, nthash = ?, updated = ? WHERE name = ?'),
      del: db.prepare('DELETE FROM users WHERE name = ?'),
      setDisabled: db.prepare('UPDATE users SET disabled = ?, updated = ? WHERE name = ?'),
      setGroups: db.prepare('UPDATE users SET groups = ?, updated = ? WHERE name = ?'),
      maxUid: db.prepare('SELECT MAX(uid) AS m FROM users WHERE uid >= ?'),
      // Changes whenever another connection (`portico user ...` run while the gateway serves)
      // committed to the database. One cheap statement, no table read.
      dataVersion: db.prepare('PRAGMA data_version'),
    };
  }

  /**
   * Changes whenever a user may have changed: through this store at once, through any other
   * connection to the database (`portico user ...` in another process; SQLite's data_version)
   * within DATA_VERSION_MS. Not every change it reports is a user change (other components commit
   * through other connections rarely), which only costs a cache refill.
   */
  generation(): number {
    const now = Date.now();
    if (now - this.dataVersionAt >= DATA_VERSION_MS) {
      // ~3 µs (it reads the WAL index): read at most every DATA_VERSION_MS, not on every request.
      this.dataVersion = Number((this.st.dataVersion.get() as { data_version: number | bigint }).data_version);
      this.dataVersionAt = now;
    }
    return this.changes.n * 0x1_0000_0000 + this.dataVersion;
  }

  async addUser(u: NewUser): Promise<UserInfo> {
    const name = validateUserName(u.name);
    const password = validatePassword(u.password);
    const groups = validateGroups(u.groups ?? []);
    if (u.uid !== undefined) validateId('uid', u.uid);
    if (u.gid !== undefined) validateId('gid', u.gid);
    if (this.row(name)) throw new VfsError('EEXIST', `user "${name}" already exists`);
    const hash = await bcrypt.hash(password, this.rounds);
    const sealed = this.sealNtHash(name, password);
    return this.store.transaction(() => {
      // Re-checked inside the transaction: another addUser may have run during the bcrypt await.
      const existing = this.row(name);
      if (existing) throw new VfsError('EEXIST', `user "${existing.name}" already exists`);
      const uid = u.uid ?? this.nextUid();
      const owner = this.st.byUid.get(uid) as Row | undefined;
      if (owner) throw new VfsError('EEXIST', `uid ${uid} is already used by user "${owner.name}"`);
      const now = Date.now();
      this.st.insert.run(name, uid, u.gid ?? uid, JSON.stringify(groups), hash, sealed, u.disabled ? 1 : 0, now, now);
      this.changes.n++;
      return toInfo(this.row(name)!);
    });
  }

  async setPassword(name: string, password: string): Promise<void> {
    validatePassword(password);
    const row = this.mustRow(name);
    const hash = await bcrypt.hash(password, this.rounds);
    this.store.commitGroup();
    const r = this.st.setPw.run(hash, this.sealNtHash(row.name, password), Date.now(), row.name);
    this.changes.n++;
    if (Number(r.changes) === 0) throw new VfsError('ENOENT', `no such user "${name}"`);
  }

  deleteUser(name: string): void {
    this.store.commitGroup();
    const r = this.st.del.run(name);
    this.changes.n++;
    if (Number(r.changes) === 0) throw new VfsError('ENOENT', `no such user "${name}"`);
  }

  setDisabled(name: string, disabled: boolean): void {
    const row = this.mustRow(name);
    this.store.commitGroup();
    this.st.setDisabled.run(disabled ? 1 : 0, Date.now(), row.name);
    this.changes.n++;
  }

  setGroups(name: string, groups: string[]): void {
    const row = this.mustRow(name);
    this.store.commitGroup();
    this.st.setGroups.run(JSON.stringify(validateGroups(groups)), Date.now(), row.name);
    this.changes.n++;
  }

  listUsers(): UserInfo[] {
    return (this.st.list.all() as unknown as Row[]).map(toInfo);
  }

  getUser(name: string): UserInfo | undefined {
    const r = this.row(name);
    return r && toInfo(r);
  }

  getUserByUid(uid: number): UserInfo | undefined {
    const r = this.st.byUid.get(uid) as Row | undefined;
    return r && toInfo(r);
  }

  count(): number {
    return Number((this.st.count.get() as { n: number }).n);
  }

  /**
   * The enabled user whose password this is, or undefined. Always costs one bcrypt compare, whether
   * or not the user exists (no user enumeration by timing).
   */
  async verifyPassword(name: string, password: string): Promise<UserInfo | undefined> {
    const row = typeof name === 'string' && USER_NAME_RE.test(name) ? this.row(name) : undefined;
    const usable = row !== undefined && row.disabled === 0;
    const plausible = typeof password === 'string' && password.length > 0 && Buffer.byteLength(password, 'utf8') <= MAX_PASSWORD_BYTES && !password.includes('\0');
    const ok = await bcrypt.compare(plausible ? password : '', usable ? row.bcrypt : await this.dummy());
    return ok && usable && plausible ? toInfo(row) : undefined;
  }

  /** The NT hash of an enabled user; undefined when unknown or disabled. Throws EIO if the sealed value does not open. */
  ntHash(name: string): Buffer | undefined {
    const row = typeof name === 'string' && USER_NAME_RE.test(name) ? this.row(name) : undefined;
    if (!row || row.disabled !== 0) return undefined;
    return this.box.open(row.nthash, ntAad(row.name));
  }

  private sealNtHash(name: string, password: string): string {
    // The aad uses the lower-cased name so the binding survives a change of spelling; rows are unique case-insensitively.
    return this.box.seal(ntHash(password), ntAad(name));
  }

  private dummy(): Promise<string> {
    this.dummyHash ??= bcrypt.hash(randomBytes(18).toString('base64'), this.rounds);
    return this.dummyHash;
  }

  private nextUid(): number {
    const m = (this.st.maxUid.get(FIRST_AUTO_UID) as { m: number | null }).m;
    let uid = m === null ? FIRST_AUTO_UID : m + 1;
    if (uid === GUEST_ID) uid++;
    if (uid > MAX_ID) throw new VfsError('ENOSPC', 'no free uid left');
    return uid;
  }

  private row(name: string): Row | undefined {
    return this.st.get.get(name) as Row | undefined;
  }

  private mustRow(name: string): Row {
    const r = this.row(name);
    if (!r) throw new VfsError('ENOENT', `no such user "${name}"`);
    return r;
  }
}

function ntAad(name: string): string {
  return `nthash:${name.toLowerCase()}`;
}

function toInfo(r: Row): UserInfo {
  return {
    name: r.name,
    uid: Number(r.uid),
    gid: Number(r.gid),
    groups: JSON.parse(r.groups) as string[],
    disabled: r.disabled !== 0,
    created: new Date(Number(r.created)),
    updated: new Date(Number(r.updated)),
  };
}

function toPrincipal(u: UserInfo): Principal {
  return { user: u.name, uid: u.uid, gid: u.gid, groups: [...u.groups], guest: false };
}

export class LocalAuthenticator implements Authenticator {
  private readonly users: LocalUserStore;
  private readonly throttle: Throttle;

  constructor(users: LocalUserStore, throttle: Throttle) {
    this.users = users;
    this.throttle = throttle;
  }

  async authenticate(user: string, password: string, ctx: AuthContext): Promise<Principal> {
    this.throttle.check(user, ctx.clientAddress);
    const info = await this.users.verifyPassword(user, password);
    // Attempts already in flight when the lock fell must not reveal their outcome either, or parallel
    // requests would get many guesses per lockout.
    this.throttle.check(user, ctx.clientAddress);
    if (!info) {
      this.throttle.fail(user, ctx.clientAddress);
      throw new VfsError('EAUTH', 'invalid user name or password');
    }
    this.throttle.succeed(user, ctx.clientAddress);
    return toPrincipal(info);
  }

  async ntHash(user: string): Promise<Buffer | undefined> {
    return this.users.ntHash(user);
  }

  recordResult(user: string, ctx: AuthContext, ok: boolean): void {
    if (ok) this.throttle.succeed(user, ctx.clientAddress);
    else this.throttle.fail(user, ctx.clientAddress);
  }

  checkThrottle(user: string, ctx: AuthContext): void {
    this.throttle.check(user, ctx.clientAddress);
  }

  async principalFor(user: string): Promise<Principal | undefined> {
    const u = typeof user === 'string' && USER_NAME_RE.test(user) ? this.users.getUser(user) : undefined;
    return u && !u.disabled ? toPrincipal(u) : undefined;
  }

  async principalForUid(uid: number): Promise<Principal | undefined> {
    const u = this.users.getUserByUid(uid);
    return u && !u.disabled ? toPrincipal(u) : undefined;
  }

  guest(): Principal {
    return guestPrincipal();
  }

  generation(): number {
    return this.users.generation();
  }
}
