/**
 * HTTP Basic authentication for WebDAV through the shared authenticator.
 *
 * WebDAV is stateless: clients send credentials with every request. Verifying a bcrypt hash per
 * request (about 250 ms at cost 12) would make every client unusable, so successful logins are
 * remembered for `ttlMs`, keyed by a SHA-256 of a per-process random secret followed by the whole
 * `Authorization` header (the header, which carries the password, is never kept; a hit costs one
 * hash and no decoding). Apache's mod_authn_socache makes the same trade. A secret-prefixed hash
 * rather than an HMAC: the digest never leaves the process (so length extension has nothing to
 * attack) and `crypto.hash` costs ~0.6 µs where `createHmac` cost 12-18 µs per request.
 *
 * - Invalidation: each entry records the authenticator's `generation()` when its login started;
 *   the user database moving on (a user added, deleted, disabled, a password or groups changed, in
 *   this process or by `portico user ...` in another one) turns every older entry into a miss, so
 *   such changes apply at the next request. Authenticators without `generation()` get the older
 *   rule: a hit re-reads the user (`principalFor`), so a disabled or deleted user is refused at once.
 *   A principal with `validUntil` (directory logins: src/auth/ldap-authenticator.ts) is not reused
 *   past it, so this cache never outlives the directory login cache's TTL.
 * - Failures are never cached: every failed attempt goes through the authenticator and its
 *   throttle. An unknown header always costs a bcrypt compare.
 * - Concurrent logins with one header (a client opening 16 connections at once) share the first
 *   attempt's bcrypt when it succeeds; when it fails, each request makes its own attempt (and is
 *   counted by the throttle). Without this, 16 simultaneous first requests ran 16 bcrypts, which
 *   also held the libuv thread pool (4 threads) that every file operation needs for about a second.
 */
import { hash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../../src/auth/authenticator.ts';
import type { SessionManager } from '../../src/session/session-manager.ts';

export interface BasicCredentials {
  user: string;
  password: string;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Parses `Authorization: Basic …`; undefined when absent, 'invalid' when malformed. */
export function parseBasic(header: string | undefined): BasicCredentials | undefined | 'invalid' {
  if (header === undefined) return undefined;
  const m = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header);
  if (!m) return 'invalid';
  const decoded = Buffer.from(m[1]!, 'base64');
  let text: string;
  try {
    text = UTF8.decode(decoded);
  } catch {
    // Old clients send ISO-8859-1 (RFC 7617 §2.1 leaves it open).
    text = decoded.toString('latin1');
  }
  const i = text.indexOf(':');
  if (i <= 0) return 'invalid';
  return { user: text.slice(0, i), password: text.slice(i + 1) };
}

interface Entry {
  principal: Principal;
  /** The authenticator's generation when the login started (undefined: it has none). */
  generation: number | undefined;
}

/** Headers longer than this are never cached (nor hashed for the cache). */
const MAX_CACHED_HEADER = 1024;

/**
 * The last successful login of a connection (a keep-alive client sends the same header with every
 * request): its next request with the same header is answered from here without the hash and the
 * LRU lookup (~5 µs of a ~100 µs small GET, issue 9). Kept on the socket object, so it goes with the
 * connection. It is a copy of the cache entry under the same rules: the same generation, the
 * principal's validUntil, and no longer than the entry's own TTL (`until`). Authenticators without
 * `generation()` get no memo (their hits re-read the user).
 */
interface ConnectionLogin {
  header: string;
  principal: Principal;
  generation: number;
  until: number;
}

const LOGIN = Symbol('portico.webdav.login');

type WithLogin = { [LOGIN]?: ConnectionLogin };

export class BasicAuthCache {
  private readonly secret = randomBytes(32).toString('base64');
  private readonly cache: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<Principal>>();
  private readonly sessions: SessionManager;
  private readonly enabled: boolean;

  constructor(sessions: SessionManager, ttlMs: number) {
    this.sessions = sessions;
    this.enabled = ttlMs > 0;
    // maxSize with unit sizes, not max: the same bound without preallocating every slot.
    this.cache = new LRUCache<string, Entry>({ maxSize: 10_000, sizeCalculation: () => 1, ttl: Math.max(1, ttlMs) });
  }

  private digest(header: string): string {
    return hash('sha256', this.secret + header, 'base64');
  }

  private generation(): number | undefined {
    const a = this.sessions.authenticator;
    return a.generation ? a.generation() : undefined;
  }

  /**
   * The principal of `connection`'s last login when `header` is the one it used and the login is
   * still what the cache would answer (ConnectionLogin); else undefined (authenticate() decides).
   */
  connectionLogin(connection: object, header: string | undefined): Principal | undefined {
    const m = (connection as WithLogin)[LOGIN];
    if (m === undefined || header !== m.header) return undefined;
    if (Date.now() >= m.until || this.generation() !== m.generation) {
      (connection as WithLogin)[LOGIN] = undefined;
      return undefined;
    }
    return m.principal;
  }

  private remember(connection: object | undefined, header: string, principal: Principal, generation: number | undefined, ttlLeft: number): void {
    if (connection === undefined || generation === undefined || !(ttlLeft > 0)) return;
    const until = Math.min(Date.now() + ttlLeft, principal.validUntil ?? Infinity);
    (connection as WithLogin)[LOGIN] = { header, principal, generation, until };
  }

  /**
   * Authenticates an `Authorization` header: 'invalid' when it is not well-formed Basic (the
   * caller answers 401), else the principal; throws VfsError EAUTH / ETHROTTLED like the
   * authenticator. With `connection` (the request's socket), a success is also remembered for that
   * connection's next requests (connectionLogin).
   */
  async authenticate(header: string, clientAddress: string, connection?: object): Promise<Principal | 'invalid'> {
    const cacheable = this.enabled && header.length <= MAX_CACHED_HEADER;
    const key = cacheable ? this.digest(header) : undefined;
    const generation = this.generation();
    if (key !== undefined) {
      const hit = this.cache.get(key);
      if (hit !== undefined && (hit.principal.validUntil === undefined || hit.principal.validUntil > Date.now())) {
        if (generation !== undefined) {
          if (hit.generation === generation) {
            this.remember(connection, header, hit.principal, generation, this.cache.getRemainingTTL(key));
            return hit.principal;
          }
        } else {
          const p = await this.sessions.authenticator.principalFor(hit.principal.user);
          if (p) return p;
        }
        this.cache.delete(key);
      }
    }
    const creds = parseBasic(header);
    if (creds === undefined || creds === 'invalid') return 'invalid';
    if (key !== undefined) {
      const running = this.inflight.get(key);
      if (running !== undefined) {
        try {
          const p = await running;
          if (this.generation() === generation) return p;
        } catch {
          // The shared attempt failed: this request makes (and is counted for) its own.
        }
      }
    }
    const attempt = this.sessions.authenticate(creds.user, creds.password, { protocol: 'webdav', clientAddress }).then(freeze);
    if (key === undefined) return attempt;
    this.inflight.set(key, attempt);
    try {
      const p = await attempt;
      this.cache.set(key, { principal: p, generation });
      this.remember(connection, header, p, generation, this.cache.getRemainingTTL(key));
      return p;
    } finally {
      if (this.inflight.get(key) === attempt) this.inflight.delete(key);
    }
  }
}

/** Cached principals are shared by every request of a client: nothing may change them. */
function freeze(p: Principal): Principal {
  Object.freeze(p.groups);
  return Object.freeze(p);
}
