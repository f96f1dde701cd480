import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretBox, loadOrCreateSecret } from '../../src/auth/secret-box.ts';
import { isVfsError } from '../../src/vfs/errors.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portico-secret-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function expectEio(fn: () => unknown): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isVfsError(err, 'EIO')).toBe(true);
}

describe('SecretBox', () => {
  const box = new SecretBox('k'.repeat(40));

  it('round-trips and never repeats a ciphertext', () => {
    const plain = Buffer.from('8846f7eaee8fb117ad06bdd830b7586c', 'hex');
    const a = box.seal(plain, 'nthash:alice');
    const b = box.seal(plain, 'nthash:alice');
    expect(a).toMatch(/^v1:[A-Za-z0-9+/=]+$/);
    expect(a).not.toBe(b);
    expect(Buffer.from(a.slice(3), 'base64')).toHaveLength(12 + 16 + 16);
    expect(box.open(a, 'nthash:alice').equals(plain)).toBe(true);
  });

  it('fails with EIO on tamper, wrong aad, wrong key or bad format', () => {
    const sealed = box.seal('secret', 'x');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    for (const i of [0, 12, 28, raw.length - 1]) {
      const t = Buffer.from(raw);
      t[i]! ^= 1;
      expectEio(() => box.open('v1:' + t.toString('base64'), 'x'));
    }
    expectEio(() => box.open(sealed, 'y'));
    expectEio(() => new SecretBox('other'.repeat(10)).open(sealed, 'x'));
    expectEio(() => box.open('v2:' + sealed.slice(3), 'x'));
    expectEio(() => box.open('v1:AAAA', 'x'));
  });
});

describe('loadOrCreateSecret', () => {
  it('returns the configured secret without touching the disk', () => {
    const state = join(dir, 'state');
    expect(loadOrCreateSecret(state, 'configured-secret-configured-secret')).toBe('configured-secret-configured-secret');
    expect(() => statSync(state)).toThrow();
  });

  it('creates <stateDir>/secret.key 0600 in a 0700 directory, then reuses it', () => {
    const state = join(dir, 'state');
    const key = loadOrCreateSecret(state, null);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(state).mode & 0o777).toBe(0o700);
    const file = join(state, 'secret.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(key);
    expect(loadOrCreateSecret(state)).toBe(key);
  });

  it('refuses a corrupt key file', () => {
    writeFileSync(join(dir, 'secret.key'), 'not hex\n', { mode: 0o600 });
    expectEio(() => loadOrCreateSecret(dir));
  });
});
