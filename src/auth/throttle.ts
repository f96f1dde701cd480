/**
 * Failed-login throttling, per user name and per client address.
 *
 * Both keys count because they stop different attacks: the user key stops guessing one account's
 * password from many addresses, the address key stops one client from spraying many accounts.
 * When a key reaches `maxFailures` within `windowMs` it is locked for `lockoutMs`; each further
 * lockout of the same key doubles it up to `maxLockoutMs`. The doubling is forgotten once a key has
 * had no failure for `maxLockoutMs` after its last lock ended.
 *
 * A success clears the user key only: a right password for one account must not wipe out the
 * failures an address has piled up against others.
 *
 * Memory is bounded: at most MAX_KEYS entries, least recently used dropped first, so spraying random
 * user names cannot grow memory without bound. The price is that such spraying can push a user's
 * entry out — but it counts against the sprayer's address, which locks first.
 */
import { LRUCache } from 'lru-cache';
import { VfsError } from '../vfs/errors.ts';

export const MAX_KEYS = 100_000;

export interface ThrottleOptions {
  maxFailures: number;
  windowMs: number;
  lockoutMs: number;
  maxLockoutMs: number;
  now?: () => number;
  /** Tracked keys before the least recently used is dropped (default MAX_KEYS). */
  maxKeys?: number;
}

interface Entry {
  /** Times of the failures counted towards the next lockout (at most maxFailures). */
  failures: number[];
  lockedUntil: number;
  /** Lockouts so far; the next one lasts lockoutMs * 2^strikes. */
  strikes: number;
  lastFailure: number;
}

export class Throttle {
  private readonly opts: Required<Omit<ThrottleOptions, 'now' | 'maxKeys'>>;
  private readonly now: () => number;
  private readonly entries: LRUCache<string, Entry>;

  constructor(opts: ThrottleOptions) {
    this.opts = { maxFailures: opts.maxFailures, windowMs: opts.windowMs, lockoutMs: opts.lockoutMs, maxLockoutMs: opts.maxLockoutMs };
    this.now = opts.now ?? Date.now;
    // maxSize (not max): the same bound, but storage grows with use instead of being allocated up front.
    this.entries = new LRUCache<string, Entry>({ maxSize: opts.maxKeys ?? MAX_KEYS, sizeCalculation: () => 1 });
  }

  /** Throws ETHROTTLED while the user or the address is locked. */
  check(user: string, addr: string): void {
    const now = this.now();
    let until = 0;
    for (const key of this.keys(user, addr)) {
      const e = this.entries.get(key);
      if (e && e.lockedUntil > now) until = Math.max(until, e.lockedUntil);
    }
    if (until > 0) {
      throw new VfsError('ETHROTTLED', `too many failed login attempts; retry in ${Math.ceil((until - now) / 1000)} s`);
    }
  }

  fail(user: string, addr: string): void {
    const now = this.now();
    for (const key of this.keys(user, addr)) {
      let e = this.entries.get(key);
      if (!e) {
        e = { failures: [], lockedUntil: 0, strikes: 0, lastFailure: 0 };
        this.entries.set(key, e);
      }
      if (e.strikes > 0 && e.lockedUntil <= now && now - Math.max(e.lockedUntil, e.lastFailure) >= this.opts.maxLockoutMs) e.strikes = 0;
      e.lastFailure = now;
      e.failures = e.failures.filter((t) => now - t < this.opts.windowMs);
      e.failures.push(now);
      if (e.failures.length >= this.opts.maxFailures) {
        const ms = Math.min(this.opts.lockoutMs * 2 ** e.strikes, this.opts.maxLockoutMs);
        e.lockedUntil = now + ms;
        e.strikes++;
        e.failures = [];
      }
    }
  }

  succeed(user: string, _addr: string): void {
    this.entries.delete(this.userKey(user));
  }

  /** Remaining lock time of a user or address key in ms (0 = not locked); for status output and tests. */
  lockedFor(kind: 'user' | 'addr', name: string): number {
    const e = this.entries.get(kind === 'user' ? this.userKey(name) : this.addrKey(name));
    return e ? Math.max(0, e.lockedUntil - this.now()) : 0;
  }

  /** Number of tracked keys. */
  get size(): number {
    return this.entries.size;
  }

  // User names are matched case-insensitively everywhere (SMB clients send them in any case).
  private userKey(user: string): string {
    return `user:${user.toLowerCase()}`;
  }

  // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; count them as the same client.
  private addrKey(addr: string): string {
    return `addr:${addr.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')}`;
  }

  private keys(user: string, addr: string): string[] {
    return [this.userKey(user), this.addrKey(addr)];
  }
}
