/**
 * The directory as a source of users and groups: search-then-bind logins, group resolution and
 * uid/gid mapping over ldapts, with failover across URLs and a circuit breaker.
 *
 * Decisions (and why):
 * - Login = search the user's entry with the service account (or anonymously), then a simple bind
 *   as that DN with the password given. Password hashes are never read or compared (the directory
 *   may store any scheme and enforce lockout policies only on bind); the one exception is the NT
 *   hash for SMB (`ntHash`), which NTLM cannot do without.
 * - Empty passwords are refused before anything is sent: a simple bind with a DN and no password is
 *   an "unauthenticated bind" that most servers answer with success (RFC 4513 §5.1.2).
 * - The search must match exactly one entry: none is "no such user", several is a configuration
 *   problem (the filter is ambiguous) reported as such rather than guessing which DN to bind.
 * - Connections: a pool of at most `poolSize`, each used by one operation at a time (a bind changes
 *   the identity of its connection, so sharing one between a login and a search would race). A
 *   connection left bound as a user is rebound as the service account before its next search.
 * - Failover and circuit breaker: URLs are tried in order. A URL whose connection fails (refused,
 *   timed out, closed) is skipped for `retryMs`, doubling per consecutive failure up to 8x; when
 *   every URL is in that state, calls fail at once with EAGAIN naming each URL's last error
 *   instead of waiting for timeouts on every login. An LDAP result code (the server answered) never
 *   counts as the URL being down.
 * - Groups: the group filter finds the groups naming the user (`member`/`uniqueMember` = DN,
 *   `memberUid` = name), plus (not AD) the posixGroup of the user's primary gidNumber; they are
 *   searched only after the bind accepted the password. Nested groups: Active Directory resolves
 *   them itself through LDAP_MATCHING_RULE_IN_CHAIN; other servers (OpenLDAP has no such rule) are asked level by level
 *   for groups whose members are the groups found so far, at most `maxGroupDepth` levels and
 *   MAX_GROUPS groups, so a membership cycle or a huge tree ends.
 * - ids: `uidNumber`/`gidNumber` (RFC 2307). AD entries without them map the objectSid's last
 *   sub-authority (RID) to `ridBase + RID` (gid: `ridBase + primaryGroupID`), as winbind's idmap_rid
 *   does, so ids are stable without a table. Other entries without a uidNumber cannot own files and
 *   are refused with that reason. 65534 (the guest's) is never handed to a directory user.
 */
import { hash } from 'node:crypto';
import { AndFilter, Client, EqualityFilter, FilterParser, InvalidCredentialsError, ResultCodeError, SizeLimitExceededError, type Entry, type Filter } from 'ldapts';
import type { ConnectionOptions } from 'node:tls';
import { GUEST_ID } from './authenticator.ts';
import type { LdapSettings } from './ldap-config.ts';
import { fillFilter } from './ldap-filter.ts';
import { VfsError, type VfsErrorCode } from '../vfs/errors.ts';

/** Why a directory login failed; `portico auth test` prints it. */
export type LdapFailureReason =
  | 'empty-password'
  | 'invalid-name'
  | 'no-such-user'
  | 'bad-password'
  | 'ambiguous'
  | 'no-uid'
  | 'unreachable'
  | 'directory-error';

const REASON_CODE: Record<LdapFailureReason, VfsErrorCode> = {
  'empty-password': 'EAUTH',
  'invalid-name': 'EAUTH',
  'no-such-user': 'EAUTH',
  'bad-password': 'EAUTH',
  ambiguous: 'EAUTH',
  'no-uid': 'EAUTH',
  unreachable: 'EAGAIN',
  'directory-error': 'EIO',
};

/** A failed login or lookup: EAUTH (the credentials), EAGAIN (no directory reachable) or EIO. */
export class AuthFailure extends VfsError {
  readonly reason: LdapFailureReason | 'local-bad-password' | 'local-disabled' | 'unknown-user';
  readonly source: 'local' | 'ldap' | undefined;
  /** Precise text for administrators (logs, `portico auth test`); protocols show a generic message. */
  readonly detail: string;

  constructor(reason: AuthFailure['reason'], detail: string, source: 'local' | 'ldap' | undefined, code?: VfsErrorCode) {
    const c = code ?? (reason in REASON_CODE ? REASON_CODE[reason as LdapFailureReason] : 'EAUTH');
    super(c, c === 'EAUTH' ? 'invalid user name or password' : detail);
    this.reason = reason;
    this.source = source;
    this.detail = detail;
  }
}

export interface DirectoryUser {
  dn: string;
  /** The directory's spelling of the name (the user attribute), not what was typed. */
  name: string;
  uid: number;
  gid: number;
  displayName: string | undefined;
  groups: string[];
}

export interface DirectoryEvents {
  /** A URL went down or came back (for logs and metrics). */
  urlState?(url: string, up: boolean, error: string | undefined): void;
  /** One directory round trip, for the latency histogram. */
  request?(op: 'connect' | 'search' | 'bind', seconds: number, ok: boolean): void;
}

/** Longest login name sent to the directory (longer ones cannot be a directory user here). */
export const MAX_LDAP_NAME = 256;
export const MAX_LDAP_PASSWORD = 1024;
/** Groups one user may be given (direct and nested). */
export const MAX_GROUPS = 1024;

interface Conn {
  client: Client;
  url: string;
  /** DN the connection is bound as: the service account's ('' = anonymous), a user's, or undefined before any bind. */
  boundAs: string | undefined;
  fresh: boolean;
  /** The (StartTLS) socket closed: never reuse. */
  closed?: boolean;
}

interface UrlState {
  failures: number;
  downUntil: number;
  lastError: string | undefined;
}

export class LdapDirectory {
  readonly settings: LdapSettings;
  private readonly events: DirectoryEvents;
  private readonly idle: Conn[] = [];
  private open = 0;
  private readonly waiters: ((c: Conn | undefined) => void)[] = [];
  private readonly urls = new Map<string, UrlState>();
  private closed = false;
  private readonly serviceDn: string;
  /** Domain SIDs (hex, without the RID) seen on AD entries: how a RID-mapped uid finds its user. */
  private readonly domainSids = new Set<string>();

  constructor(settings: LdapSettings, events: DirectoryEvents = {}) {
    this.settings = settings;
    this.events = events;
    this.serviceDn = settings.bindDn ?? '';
    for (const u of settings.urls) this.urls.set(u, { failures: 0, downUntil: 0, lastError: undefined });
  }

  /** Each URL and whether it is believed reachable (for /ready and `portico auth test`). */
  state(): { url: string; up: boolean; lastError: string | undefined; retryInMs: number }[] {
    const now = Date.now();
    return [...this.urls].map(([url, s]) => ({ url, up: s.failures === 0, lastError: s.lastError, retryInMs: Math.max(0, s.downUntil - now) }));
  }

  /**
   * Search-then-bind. Resolves the user with groups and ids, or throws AuthFailure.
   * Groups are searched only once the password is known to be right; a name that matches no entry
   * still costs a bind (against a DN that does not exist), so a wrong password and an unknown name
   * take the same directory round trips and their answer times do not tell which names exist.
   */
  async login(name: string, password: string): Promise<DirectoryUser> {
    if (typeof password !== 'string' || password.length === 0) throw new AuthFailure('empty-password', 'empty password (an anonymous bind is not a login)', 'ldap');
    if (password.length > MAX_LDAP_PASSWORD) throw new AuthFailure('bad-password', `password longer than ${MAX_LDAP_PASSWORD} characters`, 'ldap');
    let entry: Entry;
    try {
      entry = await this.findEntry(name, [this.settings.attributes.displayName]);
    } catch (e) {
      if (e instanceof AuthFailure && e.reason === 'no-such-user') await this.bind(`cn=portico-no-such-user,${this.settings.userBase}`, password).catch(() => undefined);
      throw e;
    }
    const ok = await this.bind(entry.dn, password);
    if (!ok) throw new AuthFailure('bad-password', `the directory refused the password of ${entry.dn} (wrong password, or the account is locked or disabled)`, 'ldap');
    return this.toUser(entry);
  }

  /** A simple bind on a pooled connection: true when accepted, false when the credentials were refused. */
  private bind(dn: string, password: string): Promise<boolean> {
    return this.run(async (c) => {
      try {
        await this.timed('bind', () => c.client.bind(dn, password));
        c.boundAs = dn;
        return true;
      } catch (e) {
        // The connection's identity is unknown after a failed bind: rebind before the next search.
        c.boundAs = undefined;
        if (e instanceof InvalidCredentialsError) return false;
        throw e;
      }
    });
  }

  /** The user named `name` with groups and ids, without a password check. */
  async lookup(name: string): Promise<DirectoryUser> {
    const entry = await this.findEntry(name, [this.settings.attributes.displayName]);
    return this.toUser(entry);
  }

  /** The user whose uidNumber is `uid`; undefined when none (or several) carries it. */
  async lookupUid(uid: number): Promise<DirectoryUser | undefined> {
    if (!Number.isInteger(uid) || uid < 0 || uid === GUEST_ID) return undefined;
    const a = this.settings.attributes;
    // `{user}` filled with a bare `*` (not escaped) turns the login filter into "any user".
    const anyUser = this.settings.userFilter.replace(/\{user\}/g, '*');
    const entries = await this.search(this.settings.userBase, `(&(${a.uidNumber}=${uid})${anyUser})`, this.userAttributes([a.displayName]), 2);
    if (entries.length === 1) return this.toUser(entries[0]!);
    if (entries.length > 1 || !this.settings.activeDirectory || uid < this.settings.ridBase || uid - this.settings.ridBase > 0xffffffff) return undefined;
    // AD without uidNumber: the uid was ridBase + RID, so the user is the domain SID + that RID.
    // The domain SIDs are the ones seen on entries (learned from one user entry if none was yet).
    if (this.domainSids.size === 0) {
      const any = await this.search(this.settings.userBase, `(&(objectSid=*)${anyUser})`, ['objectSid'], 1).catch((e: unknown) => {
        if (e instanceof SizeLimitExceededError) return [];
        throw e;
      });
      for (const e of any) this.noteSid(sidOf(e));
    }
    const rid = Buffer.alloc(4);
    rid.writeUInt32LE(uid - this.settings.ridBase);
    for (const domain of this.domainSids) {
      const sid = Buffer.concat([Buffer.from(domain, 'hex'), rid]);
      sid[1] = (sid.length - 8) / 4; // the sub-authority count, one more than the domain's
      // A filter object, not text: ldapts reads `\XX` escapes in filter text as UTF-8, which mangles
      // binary values.
      const filter = new AndFilter({ filters: [new EqualityFilter({ attribute: 'objectSid', value: sid }), FilterParser.parseString(anyUser)] });
      const found = await this.search(this.settings.userBase, filter, this.userAttributes([a.displayName]), 2);
      if (found.length === 1) return this.toUser(found[0]!);
    }
    return undefined;
  }

  /** Remembers the domain part of an AD objectSid (all but the RID), for lookupUid. */
  private noteSid(sid: Buffer | undefined): void {
    if (sid === undefined || sid.length < 12 || this.domainSids.size >= 16) return;
    this.domainSids.add(sid.subarray(0, sid.length - 4).toString('hex'));
  }

  /** The NT hash stored in the directory (sambaNTPassword), or undefined when the entry has none. */
  async ntHash(name: string): Promise<{ user: DirectoryUser; hash: Buffer | undefined }> {
    const attr = this.settings.attributes.ntHash;
    const entry = await this.findEntry(name, [this.settings.attributes.displayName, attr]);
    const text = first(entry, attr);
    const hash = text !== undefined && /^[0-9A-Fa-f]{32}$/.test(text) ? Buffer.from(text, 'hex') : undefined;
    return { user: await this.toUser(entry), hash };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(undefined);
    const conns = this.idle.splice(0);
    await Promise.all(conns.map((c) => c.client.unbind().catch(() => undefined)));
  }

  // -------------------------------------------------------------------------------------------------

  private async findEntry(name: string, extra: string[]): Promise<Entry> {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_LDAP_NAME || !name.isWellFormed()) {
      throw new AuthFailure('invalid-name', `user name is empty, longer than ${MAX_LDAP_NAME} characters or not valid Unicode`, 'ldap');
    }
    const filter = fillFilter(this.settings.userFilter, { user: name });
    let entries: Entry[];
    try {
      entries = await this.search(this.settings.userBase, filter, this.userAttributes(extra), 2);
    } catch (e) {
      if (e instanceof SizeLimitExceededError) entries = [{ dn: '' }, { dn: '' }];
      else throw e;
    }
    if (entries.length === 0) throw new AuthFailure('no-such-user', `no entry under ${this.settings.userBase} matches ${filter}`, 'ldap');
    if (entries.length > 1) {
      throw new AuthFailure('ambiguous', `the user filter ${filter} matches several entries under ${this.settings.userBase}; make it match one (refusing to guess)`, 'ldap');
    }
    return entries[0]!;
  }

  private userAttributes(extra: string[]): string[] {
    const a = this.settings.attributes;
    const out = [a.user, a.uidNumber, a.gidNumber, ...extra];
    if (this.settings.activeDirectory) out.push('objectSid', 'primaryGroupID');
    return out;
  }

  private async toUser(e: Entry): Promise<DirectoryUser> {
    const a = this.settings.attributes;
    const name = first(e, a.user);
    if (name === undefined) throw new AuthFailure('directory-error', `${e.dn} has no ${a.user} attribute (auth.ldap.attributes.user)`, 'ldap', 'EAUTH');
    const ids = this.ids(e);
    if (typeof ids === 'string') throw new AuthFailure('no-uid', ids, 'ldap');
    const groups = await this.groupsOf(e.dn, name, ids.gid);
    return { dn: e.dn, name, uid: ids.uid, gid: ids.gid, displayName: first(e, a.displayName), groups };
  }

  private ids(e: Entry): { uid: number; gid: number } | string {
    const a = this.settings.attributes;
    const num = (v: string | undefined): number | undefined => (v !== undefined && /^\d{1,10}$/.test(v) && Number(v) <= 0xfffffffe ? Number(v) : undefined);
    let uid = num(first(e, a.uidNumber));
    let gid = num(first(e, a.gidNumber));
    if (uid === undefined && this.settings.activeDirectory) {
      const buf = sidOf(e);
      // A SID ends with the RID, the last 32-bit little-endian sub-authority.
      if (buf !== undefined && buf.length >= 12) {
        uid = this.settings.ridBase + buf.readUInt32LE(buf.length - 4);
        this.noteSid(buf);
      }
      if (gid === undefined) {
        const pg = num(first(e, 'primaryGroupID'));
        if (pg !== undefined) gid = this.settings.ridBase + pg;
      }
    }
    if (uid === undefined) return `${e.dn} has no usable ${a.uidNumber} (files need a numeric owner); add posixAccount or set auth.ldap.attributes.uidNumber`;
    if (uid === GUEST_ID || uid > 0xfffffffe) return `${e.dn} has uid ${uid}, which is reserved for the guest principal`;
    gid ??= uid;
    return { uid, gid };
  }

  private async groupsOf(dn: string, name: string, gid: number): Promise<string[]> {
    const s = this.settings;
    const names = new Set<string>();
    const seen = new Set<string>([dn.toLowerCase()]);
    const collect = (entries: Entry[]): string[] => {
      const next: string[] = [];
      for (const g of entries) {
        if (seen.has(g.dn.toLowerCase())) continue;
        seen.add(g.dn.toLowerCase());
        const n = first(g, s.attributes.groupName);
        if (n !== undefined && names.size < MAX_GROUPS) names.add(n);
        next.push(g.dn);
      }
      return next;
    };
    let filter = fillFilter(s.groupFilter, { user: name, dn });
    // RFC 2307: the posixGroup whose gidNumber is the user's primary gid lists no memberUid for
    // them, yet they are in it (as on any Unix host). Same query, so no extra round trip.
    if (!s.activeDirectory) filter = `(|${filter}(&(objectClass=posixGroup)(${s.attributes.groupGidNumber}=${gid})))`;
    let frontier = collect(await this.search(s.groupBase, filter, [s.attributes.groupName], MAX_GROUPS));
    for (let depth = 1; s.expandNested && depth < s.maxGroupDepth && frontier.length > 0 && names.size < MAX_GROUPS; depth++) {
      const found: Entry[] = [];
      // Batches keep each filter small; a directory's filter length limits are far above this.
      for (let i = 0; i < frontier.length; i += 50) {
        const parts = frontier.slice(i, i + 50).map((g) => fillFilter('(|(member={dn})(uniqueMember={dn}))', { dn: g }));
        found.push(...(await this.search(s.groupBase, `(|${parts.join('')})`, [s.attributes.groupName], MAX_GROUPS)));
      }
      frontier = collect(found);
    }
    return [...names];
  }

  private async search(base: string, filter: string | Filter, attributes: string[], sizeLimit: number): Promise<Entry[]> {
    return this.run(async (c) => {
      if (c.boundAs !== this.serviceDn) {
        c.boundAs = undefined;
        try {
          await this.timed('bind', () => c.client.bind(this.serviceDn, this.serviceDn === '' ? '' : this.settings.bindPassword ?? ''));
        } catch (e) {
          if (!(e instanceof ResultCodeError) || isUnavailable(e)) throw e;
          const who = this.serviceDn === '' ? 'an anonymous bind' : `the service account ${this.serviceDn}`;
          throw new AuthFailure('directory-error', `${c.url} refused ${who}: ${e.message} (LDAP result ${e.code}); check auth.ldap.bindDn and its password`, 'ldap');
        }
        c.boundAs = this.serviceDn;
      }
      const r = await this.timed('search', () =>
        c.client.search(base, { scope: 'sub', filter, attributes, sizeLimit, timeLimit: Math.ceil(this.settings.timeoutMs / 1000), explicitBufferAttributes: ['objectSid'] }),
      );
      return r.searchEntries;
    });
  }

  private async timed<T>(op: 'connect' | 'search' | 'bind', fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    let ok = false;
    try {
      const r = await fn();
      ok = true;
      return r;
    } finally {
      this.events.request?.(op, Number(process.hrtime.bigint() - t0) / 1e9, ok);
    }
  }

  /**
   * Runs `fn` on a pooled connection. Connection failures (not LDAP result codes) discard the
   * connection and retry on the next reachable URL; a reused connection that fails first is retried
   * without blaming its URL (the server may have closed it while idle).
   */
  private async run<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.settings.urls.length + 1; attempt++) {
      const c = await this.acquire();
      try {
        const r = await fn(c);
        this.release(c);
        this.up(c.url);
        return r;
      } catch (e) {
        if (e instanceof AuthFailure || (e instanceof ResultCodeError && !isUnavailable(e))) {
          this.release(c);
          // findEntry turns "more entries than asked for" into its own reason (ambiguous).
          if (e instanceof AuthFailure || e instanceof SizeLimitExceededError) throw e;
          throw new AuthFailure('directory-error', `${c.url}: ${e.message} (LDAP result ${e.code})`, 'ldap');
        }
        this.discard(c);
        lastError = e;
        if (c.fresh) this.down(c.url, e);
      }
    }
    throw this.unreachable(lastError);
  }

  private unreachable(lastError: unknown): AuthFailure {
    const parts = this.state().map((s) => `${s.url}: ${s.lastError ?? describe(lastError)}${s.retryInMs > 0 ? ` (retry in ${Math.ceil(s.retryInMs / 1000)} s)` : ''}`);
    return new AuthFailure('unreachable', `directory unreachable: ${parts.join('; ')}`, 'ldap');
  }

  private async acquire(): Promise<Conn> {
    for (;;) {
      if (this.closed) throw new AuthFailure('unreachable', 'directory client closed', 'ldap');
      for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
        if (c.client.isConnected && c.closed !== true) {
          c.fresh = false;
          return c;
        }
        this.discard(c);
      }
      if (this.open < this.settings.poolSize) {
        this.open++;
        try {
          return this.connect();
        } catch (e) {
          this.open--;
          this.wakeOne();
          throw e;
        }
      }
      // Either a released connection, or undefined: a slot came free (or the client closed); look again.
      const c = await new Promise<Conn | undefined>((resolve) => this.waiters.push(resolve));
      if (c !== undefined) {
        c.fresh = false;
        return c;
      }
    }
  }

  /** A new (not yet connected) client for the first URL whose breaker is closed; throws unreachable when none is. */
  private connect(): Conn {
    const now = Date.now();
    const url = this.settings.urls.find((u) => this.urls.get(u)!.downUntil <= now);
    if (url === undefined) throw this.unreachable(undefined);
    const host = /^ldaps?:\/\/(\[[^\]]+\]|[^:/]+)/i.exec(url)?.[1]?.replace(/^\[|\]$/g, '');
    const tlsOptions: ConnectionOptions = {
      rejectUnauthorized: !this.settings.insecureSkipVerify,
      ...(this.settings.ca !== undefined ? { ca: this.settings.ca } : {}),
      ...(host !== undefined && !/^[\d.]+$|:/.test(host) ? { servername: host } : {}),
    };
    const ldaps = url.toLowerCase().startsWith('ldaps://');
    // ldapts opens TLS at once whenever tlsOptions are given, so ldap:// gets them only through startTLS().
    const client = new Client({ url, timeout: this.settings.timeoutMs, connectTimeout: this.settings.connectTimeoutMs, ...(ldaps ? { tlsOptions } : {}), strictDN: false });
    const conn: Conn = { client, url, boundAs: undefined, fresh: true };
    if (this.settings.startTls && !ldaps) {
      // StartTLS must come before any other operation: wrap the first bind in it.
      const bind = client.bind.bind(client);
      let upgraded = false;
      client.bind = async (...args: Parameters<Client['bind']>) => {
        if (!upgraded) {
          await this.timed('connect', () => client.startTLS(tlsOptions));
          upgraded = true;
          // ldapts does not notice the upgraded socket closing (the server stopped or dropped an idle
          // connection): without this an idle pooled connection looked alive and its next request
          // waited for timeoutMs. Reaching into the client is the price; the field is stable in 9.x.
          const socket = (client as unknown as { socket?: NodeJS.EventEmitter }).socket;
          const dead = (): void => {
            conn.closed = true;
          };
          socket?.once('close', dead);
          socket?.once('end', dead);
        }
        return bind(...args);
      };
    }
    return conn;
  }

  private release(c: Conn): void {
    if (this.closed) {
      // An operation that was running when close() came: its connection must not outlive the client.
      this.discard(c);
      return;
    }
    const w = this.waiters.shift();
    if (w) w(c);
    else this.idle.push(c);
  }

  private discard(c: Conn): void {
    this.open--;
    c.client.unbind().catch(() => undefined);
    this.wakeOne();
  }

  /** A waiter goes looking again: a slot came free. */
  private wakeOne(): void {
    this.waiters.shift()?.(undefined);
  }

  private down(url: string, e: unknown): void {
    const s = this.urls.get(url)!;
    const wasUp = s.failures === 0;
    s.failures++;
    s.lastError = describe(e);
    s.downUntil = Date.now() + Math.min(this.settings.retryMs * 2 ** (s.failures - 1), this.settings.retryMs * 8);
    if (wasUp) this.events.urlState?.(url, false, s.lastError);
  }

  private up(url: string): void {
    const s = this.urls.get(url)!;
    if (s.failures === 0) return;
    s.failures = 0;
    s.downUntil = 0;
    s.lastError = undefined;
    this.events.urlState?.(url, true, undefined);
  }
}

function isUnavailable(e: ResultCodeError): boolean {
  // busy (51) and unavailable (52): the server is there but cannot serve; try another.
  return e.code === 51 || e.code === 52;
}

function describe(e: unknown): string {
  if (e === undefined) return 'not reachable';
  const code = (e as { code?: unknown }).code;
  const msg = e instanceof Error ? e.message : String(e);
  return typeof code === 'string' && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

function sidOf(e: Entry): Buffer | undefined {
  const v = e['objectSid'];
  const b = Array.isArray(v) ? v[0] : v;
  return Buffer.isBuffer(b) ? b : undefined;
}

function first(e: Entry, attr: string): string | undefined {
  // Attribute names are case-insensitive; ldapts keeps the server's spelling.
  const key = Object.keys(e).find((k) => k.toLowerCase() === attr.toLowerCase());
  if (key === undefined) return undefined;
  const v = e[key];
  const one = Array.isArray(v) ? v[0] : v;
  if (one === undefined) return undefined;
  return Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
}

/**
 * Cache key of a successful login: a password change misses at once, the old password expires with
 * the TTL. The name's length goes first, so no (name, password) pair can spell another's key
 * ("a" + "b\0c" vs "a\0b" + "c"). One-shot `hash` (~1 µs) rather than createHash + update.
 */
export function loginCacheKey(secret: string, name: string, password: string): string {
  const n = name.toLowerCase();
  return hash('sha256', `${secret}\0${n.length}:${n}\0${password}`, 'base64');
}
