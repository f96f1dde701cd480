/**
 * Local users and the directory behind the one Authenticator every protocol uses.
 *
 * Decisions (and why):
 * - `auth.ldap.order` lists the sources; the FIRST SOURCE THAT KNOWS THE NAME DECIDES: a local user
 *   (enabled or disabled) is checked against its local password only, and the directory is asked
 *   only for names no earlier source holds. Trying every source until one accepts would let a
 *   directory account with the same name as a local administrator log in as that administrator (or
 *   the reverse), and would cost a bcrypt plus a directory round trip on every wrong password.
 *   A source that cannot answer (directory unreachable) is passed over, so local users keep working
 *   whatever the order; when no later source knows the name, the unreachable error is what the
 *   client gets (EAGAIN: WebDAV 503), not a misleading "bad password".
 * - Throttling is the one Throttle shared with local users: a password attempt against either
 *   source counts, per name and per address. A directory that cannot be reached is not the user's
 *   failure and is not counted.
 * - Successful directory logins are cached for `cacheTtlMs` (bounded LRU), keyed by a salted hash of
 *   name and password: a changed password misses at once, an old password, a removed or disabled
 *   account stop working when the entry expires. Failures are never cached (each goes to the
 *   directory and the throttle). Principals from the directory carry `validUntil` so the protocols'
 *   own login caches (WebDAV Basic) never outlive the directory cache's promise.
 * - Name and uid lookups (SMB after NTLM, NFS AUTH_SYS uid → user) are cached for the same TTL,
 *   including "no such uid" (lookups, not logins: NFS asks for every call's uid).
 * - SMB: `ntHash` hands the directory's sambaNTPassword to the NTLM code. Active Directory never lets
 *   anyone read NT hashes; NTLM against it needs NETLOGON pass-through or Kerberos (not built): the
 *   failure is logged saying so, once per user and TTL.
 */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { guestPrincipal, type AuthContext, type Authenticator, type Principal } from './authenticator.ts';
import { resolveLdapSettings, type AuthSource, type LdapConfig, type LdapSettings } from './ldap-config.ts';
import { AuthFailure, LdapDirectory, loginCacheKey, type DirectoryUser } from './ldap-directory.ts';
import { LocalAuthenticator, USER_NAME_RE, type LocalUserStore, type UserInfo } from './local-users.ts';
import { Throttle as ThrottleImpl, type Throttle } from './throttle.ts';
import type { Logger } from '../log/logger.ts';
import { VfsError } from '../vfs/errors.ts';

const UNAVAILABLE_LOG_MS = 10_000;

/** A resolved login, as `portico auth test` prints it. */
export interface LoginResult {
  principal: Principal;
  source: AuthSource;
  dn: string | undefined;
  displayName: string | undefined;
  cached: boolean;
}

interface LdapMetrics {
  logins: Counter<'source' | 'result'>;
  latency: Histogram<'op' | 'result'>;
  cacheHits: Counter<'cache'>;
  up: Gauge<'url'>;
}

function ldapMetrics(registry: Registry): LdapMetrics {
  // A registry that already has them (a gateway restarted on the same Metrics) keeps its counters.
  const existing = registry.getSingleMetric('portico_auth_logins_total');
  if (existing !== undefined) {
    return {
      logins: existing as Counter<'source' | 'result'>,
      latency: registry.getSingleMetric('portico_ldap_request_seconds') as Histogram<'op' | 'result'>,
      cacheHits: registry.getSingleMetric('portico_ldap_cache_hits_total') as Counter<'cache'>,
      up: registry.getSingleMetric('portico_ldap_up') as Gauge<'url'>,
    };
  }
  return {
    logins: new Counter({ name: 'portico_auth_logins_total', help: 'Password logins by source (local, ldap) and result (ok, or the failure reason)', labelNames: ['source', 'result'], registers: [registry] }),
    latency: new Histogram({
      name: 'portico_ldap_request_seconds',
      help: 'Directory round trips (connect = StartTLS, bind, search)',
      labelNames: ['op', 'result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    cacheHits: new Counter({ name: 'portico_ldap_cache_hits_total', help: 'Directory answers served from memory (login, user, uid)', labelNames: ['cache'], registers: [registry] }),
    up: new Gauge({ name: 'portico_ldap_up', help: '1 while a directory URL is believed reachable (circuit breaker closed)', labelNames: ['url'], registers: [registry] }),
  };
}

export interface DirectoryAuthOptions {
  users: LocalUserStore;
  throttle: Throttle;
  settings: LdapSettings;
  logger?: Logger | undefined;
  registry?: Registry | undefined;
}

function localPrincipal(u: UserInfo): Principal {
  return { user: u.name, uid: u.uid, gid: u.gid, groups: [...u.groups], guest: false };
}

export class DirectoryAuthenticator implements Authenticator {
  readonly directory: LdapDirectory;
  private readonly users: LocalUserStore;
  private readonly throttle: Throttle;
  private readonly order: AuthSource[];
  private readonly ttl: number;
  private readonly logger: Logger | undefined;
  private readonly metrics: LdapMetrics | undefined;
  private readonly secret = randomBytes(32).toString('base64');
  private readonly logins: LRUCache<string, DirectoryUser> | undefined;
  private readonly byName: LRUCache<string, DirectoryUser> | undefined;
  private readonly byUid: LRUCache<number, { user: DirectoryUser | undefined }> | undefined;
  private readonly adNoticeAt = new Map<string, number>();
  private readonly ntlmSources = new Map<string, AuthSource>();
  private unavailableLoggedAt = -Infinity;
  private unavailableSince = 0;

  constructor(o: DirectoryAuthOptions) {
    this.users = o.users;
    this.throttle = o.throttle;
    this.order = o.settings.order;
    this.ttl = o.settings.cacheTtlMs;
    this.logger = o.logger;
    this.metrics = o.registry ? ldapMetrics(o.registry) : undefined;
    for (const u of o.settings.urls) this.metrics?.up.labels(u).set(1);
    this.directory = new LdapDirectory(o.settings, {
      urlState: (url, up, error) => {
        this.metrics?.up.labels(url).set(up ? 1 : 0);
        if (up) this.logger?.info({ url }, 'directory reachable again');
        else this.logger?.warn({ url, error }, `directory ${url} unreachable (${error}); LDAP logins go to the next URL or fail fast until it answers again`);
      },
      request: (op, seconds, ok) => this.metrics?.latency.labels(op, ok ? 'ok' : 'error').observe(seconds),
    });
    if (this.ttl > 0) {
      const opts = { maxSize: o.settings.cacheSize, sizeCalculation: () => 1, ttl: this.ttl };
      this.logins = new LRUCache(opts);
      this.byName = new LRUCache(opts);
      this.byUid = new LRUCache(opts);
    }
  }

  async authenticate(user: string, password: string, ctx: AuthContext): Promise<Principal> {
    return (await this.login(user, password, ctx)).principal;
  }

  /** `authenticate` with where the principal came from (for `portico auth test`). Throws AuthFailure / ETHROTTLED. */
  async login(user: string, password: string, ctx: AuthContext): Promise<LoginResult> {
    this.throttle.check(user, ctx.clientAddress);
    let outcome: LoginResult | AuthFailure | undefined;
    let unreachable: AuthFailure | undefined;
    for (const source of this.order) {
      if (source === 'local') {
        const row = typeof user === 'string' && USER_NAME_RE.test(user) ? this.users.getUser(user) : undefined;
        if (row === undefined) continue;
        const info = await this.users.verifyPassword(user, password);
        outcome = info
          ? { principal: localPrincipal(info), source: 'local', dn: undefined, displayName: undefined, cached: false }
          : new AuthFailure(row.disabled ? 'local-disabled' : 'local-bad-password', row.disabled ? `local user "${row.name}" is disabled` : `wrong password for local user "${row.name}"`, 'local');
        break;
      }
      try {
        outcome = await this.ldapLogin(user, password);
        break;
      } catch (e) {
        if (!(e instanceof AuthFailure)) throw e;
        if (e.reason === 'no-such-user' || e.reason === 'invalid-name') {
          outcome = e;
          continue;
        }
        if (e.reason === 'unreachable') {
          unreachable = e;
          continue;
        }
        outcome = e;
        break;
      }
    }
    if (outcome === undefined || (outcome instanceof AuthFailure && outcome.reason === 'no-such-user')) {
      outcome = unreachable ?? (outcome instanceof AuthFailure ? outcome : new AuthFailure('unknown-user', `no source (${this.order.join(', ')}) knows user "${user}"`, undefined));
    }
    // Attempts in flight when a lockout fell must not learn their outcome (as LocalAuthenticator).
    this.throttle.check(user, ctx.clientAddress);
    if (outcome instanceof AuthFailure) {
      this.metrics?.logins.labels(outcome.source ?? 'none', outcome.reason).inc();
      if (outcome.code === 'EAUTH') this.throttle.fail(user, ctx.clientAddress);
      else this.logUnavailable(user, ctx, outcome);
      throw outcome;
    }
    this.metrics?.logins.labels(outcome.source, 'ok').inc();
    this.throttle.succeed(user, ctx.clientAddress);
    return outcome;
  }

  /**
   * A login the directory could not answer: one warning per UNAVAILABLE_LOG_MS (with how many were
   * refused meanwhile), so a directory outage under load does not flood the log; the URL going down
   * and coming back is logged by the directory events as it happens.
   */
  private logUnavailable(user: string, ctx: AuthContext, f: AuthFailure): void {
    const now = Date.now();
    this.unavailableSince++;
    if (now - this.unavailableLoggedAt < UNAVAILABLE_LOG_MS) return;
    this.logger?.warn({ user, protocol: ctx.protocol, reason: f.reason, refused: this.unavailableSince }, `directory login refused: ${f.detail}`);
    this.unavailableLoggedAt = now;
    this.unavailableSince = 0;
  }

  private async ldapLogin(user: string, password: string): Promise<LoginResult> {
    const key = this.logins && typeof password === 'string' && typeof user === 'string' ? loginCacheKey(this.secret, user, password) : undefined;
    if (key !== undefined) {
      const hit = this.logins!.get(key);
      if (hit !== undefined) {
        this.metrics?.cacheHits.labels('login').inc();
        return this.result(hit, this.logins!.getRemainingTTL(key), true);
      }
    }
    if (typeof password !== 'string' || password.length === 0) throw new AuthFailure('empty-password', 'empty password (an anonymous bind is not a login)', 'ldap');
    const u = await this.directory.login(user, password);
    if (key !== undefined) this.logins!.set(key, u);
    return this.result(u, this.ttl, false);
  }

  private result(u: DirectoryUser, remainingMs: number, cached: boolean): LoginResult {
    return { principal: this.principalOf(u, remainingMs), source: 'ldap', dn: u.dn, displayName: u.displayName, cached };
  }

  private principalOf(u: DirectoryUser, remainingMs: number): Principal {
    const p: Principal = { user: u.name, uid: u.uid, gid: u.gid, groups: [...u.groups], guest: false };
    // A finite remaining TTL bounds what a protocol may cache; without a cache, nothing may.
    p.validUntil = Date.now() + (Number.isFinite(remainingMs) && remainingMs > 0 ? remainingMs : 0);
    return p;
  }

  async ntHash(user: string): Promise<Buffer | undefined> {
    for (const source of this.order) {
      if (source === 'local') {
        const row = typeof user === 'string' && USER_NAME_RE.test(user) ? this.users.getUser(user) : undefined;
        if (row !== undefined) {
          this.ntlmSource(user, 'local');
          return this.users.ntHash(user);
        }
        continue;
      }
      try {
        const { user: u, hash } = await this.directory.ntHash(user);
        this.ntlmSource(user, 'ldap');
        // SMB asks principalFor right after a good NTLM answer: the entry just read serves it.
        this.byName?.set(user.toLowerCase(), u);
        if (hash === undefined) this.noNtHash(u);
        return hash;
      } catch (e) {
        if (!(e instanceof AuthFailure)) throw e;
        if (e.reason === 'no-such-user' || e.reason === 'invalid-name') continue;
        this.logger?.warn({ user, reason: e.reason }, `SMB login of "${user}": ${e.detail}`);
        return undefined;
      }
    }
    return undefined;
  }

  private noNtHash(u: DirectoryUser): void {
    const now = Date.now();
    const last = this.adNoticeAt.get(u.dn);
    if (last !== undefined && now - last < Math.max(this.ttl, 60_000)) return;
    if (this.adNoticeAt.size > 10_000) this.adNoticeAt.clear();
    this.adNoticeAt.set(u.dn, now);
    const attr = this.directory.settings.attributes.ntHash;
    this.logger?.warn(
      { user: u.name, dn: u.dn },
      this.directory.settings.activeDirectory
        ? `SMB (NTLM) login of directory user "${u.name}" refused: Active Directory never lets LDAP clients read NT hashes; NTLM against AD needs NETLOGON pass-through or Kerberos, which Portico does not do yet (WebDAV and other password logins work)`
        : `SMB (NTLM) login of directory user "${u.name}" refused: ${u.dn} has no readable ${attr} (NTLM needs the NT hash: add the Samba schema's sambaNTPassword, readable by the service account)`,
    );
  }

  recordResult(user: string, ctx: AuthContext, ok: boolean): void {
    if (ok) this.throttle.succeed(user, ctx.clientAddress);
    else this.throttle.fail(user, ctx.clientAddress);
    // NTLM logins (SMB) count in the same metric, under the source that gave the hash.
    const key = typeof user === 'string' ? user.toLowerCase() : '';
    const source = this.ntlmSources.get(key) ?? 'none';
    this.ntlmSources.delete(key);
    this.metrics?.logins.labels(source, ok ? 'ok' : 'ntlm-failed').inc();
  }

  /** Which source answered the NT hash of a name, until its recordResult (bounded: SMB reports every attempt). */
  private ntlmSource(user: string, source: AuthSource): void {
    if (this.ntlmSources.size >= 10_000) this.ntlmSources.clear();
    this.ntlmSources.set(user.toLowerCase(), source);
  }

  checkThrottle(user: string, ctx: AuthContext): void {
    this.throttle.check(user, ctx.clientAddress);
  }

  async principalFor(user: string): Promise<Principal | undefined> {
    for (const source of this.order) {
      if (source === 'local') {
        const row = typeof user === 'string' && USER_NAME_RE.test(user) ? this.users.getUser(user) : undefined;
        if (row !== undefined) return row.disabled ? undefined : localPrincipal(row);
        continue;
      }
      const hit = this.byName?.get(user.toLowerCase());
      if (hit !== undefined) {
        this.metrics?.cacheHits.labels('user').inc();
        return this.principalOf(hit, this.byName!.getRemainingTTL(user.toLowerCase()));
      }
      try {
        const u = await this.directory.lookup(user);
        this.byName?.set(user.toLowerCase(), u);
        return this.principalOf(u, this.ttl);
      } catch (e) {
        if (!(e instanceof AuthFailure)) throw e;
        if (e.reason === 'no-such-user' || e.reason === 'invalid-name' || e.reason === 'unreachable') continue;
        this.logger?.warn({ user, reason: e.reason }, e.detail);
        return undefined;
      }
    }
    return undefined;
  }

  async principalForUid(uid: number): Promise<Principal | undefined> {
    for (const source of this.order) {
      if (source === 'local') {
        const u = this.users.getUserByUid(uid);
        if (u !== undefined) return u.disabled ? undefined : localPrincipal(u);
        continue;
      }
      const hit = this.byUid?.get(uid);
      if (hit !== undefined) {
        this.metrics?.cacheHits.labels('uid').inc();
        if (hit.user !== undefined) return this.principalOf(hit.user, this.byUid!.getRemainingTTL(uid));
        continue;
      }
      try {
        const u = await this.directory.lookupUid(uid);
        this.byUid?.set(uid, { user: u });
        if (u !== undefined) return this.principalOf(u, this.ttl);
      } catch (e) {
        if (!(e instanceof AuthFailure)) throw e;
        // Unreachable: the uid maps to nobody for now (NFS squashes it to the anonymous principal).
        if (e.reason !== 'unreachable') this.logger?.warn({ uid, reason: e.reason }, e.detail);
      }
    }
    return undefined;
  }

  guest(): Principal {
    return guestPrincipal();
  }

  /** Changes with the local users only: directory principals bound protocol caches with `validUntil`. */
  generation(): number {
    return this.users.generation();
  }

  async close(): Promise<void> {
    await this.directory.close();
  }
}

/** EAUTH with the precise reason kept for logs and `portico auth test`. */
export function failureReason(e: unknown): string {
  if (e instanceof AuthFailure) return `${e.reason}: ${e.detail}`;
  if (e instanceof VfsError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

/**
 * The authenticator of a process (gateway, `portico auth test`): local users alone, or local users
 * and the directory when `auth.ldap` is set. Throws VfsError('EINVAL') when the LDAP settings
 * cannot be used (unreadable CA or password file).
 */
export function buildAuthenticator(
  auth: { throttle: ConstructorParameters<typeof Throttle>[0]; ldap: LdapConfig | null },
  users: LocalUserStore,
  o: { logger?: Logger | undefined; registry?: Registry | undefined; throttle?: Throttle } = {},
): Authenticator & { close?(): Promise<void>; directory?: LdapDirectory } {
  const throttle = o.throttle ?? new ThrottleImpl(auth.throttle);
  if (auth.ldap === null) return new LocalAuthenticator(users, throttle);
  return new DirectoryAuthenticator({ users, throttle, settings: resolveLdapSettings(auth.ldap), logger: o.logger, registry: o.registry });
}
