/**
 * `auth.ldap` configuration: the example in config/portico.example.yaml is valid and shows the
 * defaults; YAML, environment and CLI set it like any other key; secrets are never echoed.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ldapSchema, resolveLdapSettings } from '../../src/auth/ldap-config.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '../../config/portico.example.yaml');

function exampleBlock(): Record<string, unknown> {
  const lines = readFileSync(EXAMPLE, 'utf8').split('\n');
  const start = lines.findIndex((l) => /^ {2}#\s{3}ldap:$/.test(l));
  const end = lines.findIndex((l, i) => i > start && /^ {2}ldap: null$/.test(l));
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  const text = lines.slice(start + 1, end).map((l) => l.replace(/^ {2}# {3}/, '')).join('\n');
  return YAML.parse(text) as Record<string, unknown>;
}

describe('auth.ldap configuration', () => {
  it('the commented example in portico.example.yaml is valid and its values are the defaults except the required ones', () => {
    const ex = exampleBlock();
    const parsed = ldapSchema.parse(ex);
    const minimal = ldapSchema.parse({ url: ex.url, userBase: ex.userBase, bindDn: ex.bindDn });
    expect(parsed).toEqual(minimal);
  });

  it('is off by default, and set from YAML, the environment (one URL, the bind password) and CLI overrides', () => {
    const shares = [{ name: 'd', source: 'memory:' }];
    expect(loadConfig({ env: {}, overrides: { shares } }).auth.ldap).toBeNull();
    const dir = mkdtempSync(join(tmpdir(), 'portico-ldapcfg-'));
    try {
      const file = join(dir, 'p.yaml');
      writeFileSync(file, 'auth:\n  ldap:\n    url: [ldap://a.example, ldaps://b.example:636]\n    userBase: dc=example,dc=org\n    tls: { ca: ca.pem }\n');
      const c = loadConfig({ file, env: { PORTICO_AUTH__LDAP__BIND_PASSWORD: '0123', PORTICO_AUTH__LDAP__BIND_DN: 'cn=r,dc=example,dc=org' }, overrides: { shares, 'auth.ldap.cacheTtlMs': 5 } });
      expect(c.auth.ldap).toMatchObject({ url: ['ldap://a.example', 'ldaps://b.example:636'], bindPassword: '0123', bindDn: 'cn=r,dc=example,dc=org', cacheTtlMs: 5, order: ['local', 'ldap'] });
      // Relative paths are the config file's.
      expect(c.auth.ldap!.tls.ca).toBe(join(dir, 'ca.pem'));
      const e = loadConfig({ file, env: { PORTICO_AUTH__LDAP__URL: 'ldap://c.example:389' }, overrides: { shares } });
      expect(e.auth.ldap!.url).toBe('ldap://c.example:389');
      // Password from a file.
      writeFileSync(join(dir, 'pw'), 's3cret\n');
      const s = resolveLdapSettings(ldapSchema.parse({ url: 'ldap://a', userBase: 'dc=x', bindDn: 'cn=r', bindPasswordFile: join(dir, 'pw') }));
      expect(s.bindPassword).toBe('s3cret');
      expect(s.userFilter).toBe('(uid={user})');
      expect(() => resolveLdapSettings(ldapSchema.parse({ url: 'ldap://a', userBase: 'dc=x', bindDn: 'cn=r' }))).toThrow(/bindDn needs bindPassword/);
      const ad = resolveLdapSettings(ldapSchema.parse({ url: 'ldaps://dc', userBase: 'dc=x', activeDirectory: true }));
      expect(ad.groupFilter).toContain('member:1.2.840.113556.1.4.1941:={dn}');
      expect(ad.userFilter).toContain('userPrincipalName={user}');
      expect(ad.attributes.user).toBe('sAMAccountName');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports bad keys like every other section and never echoes the bind password', () => {
    const shares = [{ name: 'd', source: 'memory:' }];
    let err: unknown;
    try {
      loadConfig({ env: {}, overrides: { shares, 'auth.ldap': { url: 'http://x', userBase: 'dc=x', bindPassword: 12345678, userFilter: '(uid=x)', order: ['local', 'local'], lookup: 1 } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain('auth.ldap.url: must be ldap://host[:port] or ldaps://host[:port]');
    expect(msg).toContain('auth.ldap.userFilter: must contain {user}');
    expect(msg).toContain('auth.ldap.order: must not name a source twice');
    expect(msg).toContain('auth.ldap.lookup: unknown key');
    expect(msg).toContain('auth.ldap.bindPassword');
    expect(msg).not.toContain('12345678');
  });
});
