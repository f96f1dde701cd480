import { describe, expect, it } from 'vitest';
import { Throttle } from '../../src/auth/throttle.ts';
import { isVfsError } from '../../src/vfs/errors.ts';

function clock() {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
}

function throttled(fn: () => void): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    if (isVfsError(e, 'ETHROTTLED')) return true;
    throw e;
  }
}

const OPTS = { maxFailures: 3, windowMs: 60_000, lockoutMs: 1_000, maxLockoutMs: 5_000 };

describe('Throttle', () => {
  it('locks a user after maxFailures within the window, from any address', () => {
    const c = clock();
    const t = new Throttle({ ...OPTS, now: c.now });
    t.fail('alice', '10.0.0.1');
    t.fail('alice', '10.0.0.2');
    expect(throttled(() => t.check('alice', '10.0.0.9'))).toBe(false);
    t.fail('ALICE', '10.0.0.3'); // user names match case-insensitively
    expect(throttled(() => t.check('alice', '10.0.0.9'))).toBe(true);
    expect(throttled(() => t.check('bob', '10.0.0.9'))).toBe(false);
    expect(t.lockedFor('user', 'alice')).toBe(1_000);
    c.t += 999;
    expect(throttled(() => t.check('alice', '10.0.0.9'))).toBe(true);
    c.t += 1;
    expect(throttled(() => t.check('alice', '10.0.0.9'))).toBe(false);
  });

  it('locks an address spraying many users; success does not clear it', () => {
    const c = clock();
    const t = new Throttle({ ...OPTS, now: c.now });
    t.fail('u1', '192.0.2.7');
    t.fail('u2', '::ffff:192.0.2.7'); // the same IPv4 client through a dual-stack socket
    t.succeed('u3', '192.0.2.7');
    t.fail('u4', '192.0.2.7');
    expect(throttled(() => t.check('someone', '192.0.2.7'))).toBe(true);
    expect(throttled(() => t.check('someone', '192.0.2.8'))).toBe(false);
    t.succeed('someone', '192.0.2.7');
    expect(throttled(() => t.check('someone', '192.0.2.7'))).toBe(true);
  });

  it('success resets the user key', () => {
    const c = clock();
    const t = new Throttle({ ...OPTS, now: c.now });
    t.fail('alice', 'a1');
    t.fail('alice', 'a2');
    t.succeed('alice', 'a3');
    t.fail('alice', 'a4');
    t.fail('alice', 'a5');
    expect(throttled(() => t.check('alice', 'a6'))).toBe(false);
  });

  it('only counts failures inside the window', () => {
    const c = clock();
    const t = new Throttle({ ...OPTS, now: c.now });
    t.fail('alice', 'a');
    t.fail('alice', 'b');
    c.t += 60_000;
    t.fail('alice', 'c');
    expect(throttled(() => t.check('alice', 'x'))).toBe(false);
    t.fail('alice', 'd');
    expect(throttled(() => t.check('alice', 'x'))).toBe(false);
    t.fail('alice', 'e');
    expect(throttled(() => t.check('alice', 'x'))).toBe(true);
  });

  it('doubles each repeated lockout up to maxLockoutMs, and forgets after a quiet period', () => {
    const c = clock();
    const t = new Throttle({ ...OPTS, now: c.now });
    const lockOut = (): number => {
      for (let i = 0; i < 3; i++) t.fail('alice', `10.0.${c.t % 250}.${i}`);
      const ms = t.lockedFor('user', 'alice');
      c.t += ms;
      return ms;
    };
    expect([lockOut(), lockOut(), lockOut(), lockOut(), lockOut()]).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
    c.t += 5_000; // maxLockoutMs without failures after the last lock ended
    expect(lockOut()).toBe(1_000);
  });

  it('keeps at most maxKeys entries', () => {
    const t = new Throttle({ ...OPTS, maxKeys: 1000 });
    for (let i = 0; i < 5000; i++) t.fail(`user${i}`, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    expect(t.size).toBe(1000);
  });
});
