/**
 * HTTP Basic authentication for WebDAV through the shared authenticator.
 *
 * WebDAV is stateless: clients send credentials with every request. Verifying a bcrypt hash per
 * request (about 250 ms at cost 12) would make every client unusable, so successful logins are
 * remembered for `ttlMs` under an HMAC of (user, password) with a per-process random key — the
 * password itself is never kept. On a hit the principal is re-read from the authenticator, so a
 * disabled or deleted user is refused at once (a changed password is honoured within the TTL).
 * Failures are never cached: every failed attempt goes through the authenticator and its throttle.
 * Apache's mod_authn_socache makes the same trade.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
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

export class BasicAuthCache {
  // A KeyObject, not a Buffer: createHmac() turns a Buffer key into a KeyObject on every call
  // (about 15 µs, most of the cost of an authenticated request's cache hit).
  private readonly key: KeyObject = createSecretKey(randomBytes(32));
  private readonly cache: LRUCache<string, string>;
  private readonly sessions: SessionManager;

  private readonly enabled: boolean;

  constructor(sessions: SessionManager, ttlMs: number) {
    this.sessions = sessions;
    this.enabled = ttlMs > 0;
    // maxSize with unit sizes, not max: the same bound without preallocating every slot.
    this.cache = new LRUCache<string, string>({ maxSize: 10_000, sizeCalculation: () => 1, ttl: Math.max(1, ttlMs) });
  }

  private digest(c: BasicCredentials): string {
    return createHmac('sha256', this.key).update(c.user).update('\0').update(c.password).digest('base64');
  }

  /** Authenticates (throws VfsError EAUTH / ETHROTTLED like the authenticator). */
  async authenticate(c: BasicCredentials, clientAddress: string): Promise<Principal> {
    const d = this.digest(c);
    const cachedUser = this.cache.get(d);
    if (cachedUser !== undefined) {
      const p = await this.sessions.authenticator.principalFor(cachedUser);
      if (p) return p;
      this.cache.delete(d);
    }
    const p = await this.sessions.authenticate(c.user, c.password, { protocol: 'webdav', clientAddress });
    if (this.enabled) this.cache.set(d, p.user);
    return p;
  }
}
