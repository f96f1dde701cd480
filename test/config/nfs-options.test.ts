/**
 * The NFS keys of the configuration: the wire bounds, the idmap domain and the per-export client
 * lists are schema-validated (from the file, the environment and flags), the serve flags
 * --nfs-squash / --nfs-anon-uid / --nfs-anon-gid land on protocols.nfs, and the plugin applies
 * the defaults.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { NFS_DEFAULTS } from '../../src/config/schema.ts';
import { serveConfig } from '../../src/cli/main.ts';
import { nfsOptions } from '../../protocols/nfs/plugin.ts';
import { NfsExports, clientAccess, clientRule } from '../../protocols/nfs/server/exports.ts';
import { PrincipalMap } from '../../protocols/nfs/server/principals.ts';
import { refuseAllLogins } from '../../src/auth/authenticator.ts';
import { AUTH_FLAVOR, type Credential } from '../../protocols/nfs/rpc.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-nfscfg-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SHARES = 'shares:\n  - name: data\n    source: "memory:"\n';

function issues(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.key}: ${i.message}`);
    throw e;
  }
  throw new Error('expected a ConfigError');
}

function file(text: string): string {
  const f = join(tmp, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, text);
  return f;
}

describe('protocols.nfs wire bounds and idmap domain', () => {
  it('defaults apply when nothing is written; file, environment and flags set them', () => {
    const o = nfsOptions(loadConfig({ file: file(SHARES), env: {} }));
    expect(o).toMatchObject({ squash: 'root', anonUid: 65534, maxRecordBytes: NFS_DEFAULTS.maxRecordBytes, maxCompoundOps: 100, maxReadBytes: 1 << 20, maxWriteBytes: 1 << 20, maxConnections: 4096, maxRequestsPerConnection: 128, idleTimeoutMs: 360_000 });
    const c = loadConfig({
      file: file(`protocols:\n  nfs:\n    maxReadBytes: 262144\n    idmapDomain: example.com\n${SHARES}`),
      env: { PORTICO_PROTOCOLS__NFS__MAX_CONNECTIONS: '16', PORTICO_PROTOCOLS__NFS__MAX_COMPOUND_OPS: '32' },
      overrides: { 'protocols.nfs.maxWriteBytes': 65536 },
    });
    expect(nfsOptions(c)).toMatchObject({ maxReadBytes: 262144, maxWriteBytes: 65536, maxConnections: 16, maxCompoundOps: 32 });
    expect((c.protocols.nfs as { idmapDomain?: string }).idmapDomain).toBe('example.com');
  });

  it('refuses values out of range, a record too small for the largest WRITE, a bad domain', () => {
    expect(issues(() => loadConfig({ file: file(SHARES), env: { PORTICO_PROTOCOLS__NFS__MAX_COMPOUND_OPS: '1' } }))).toEqual(['protocols.nfs.maxCompoundOps: must be >= 2']);
    expect(issues(() => loadConfig({ file: file(`protocols:\n  nfs:\n    maxReadBytes: 100\n    maxConnections: 0\n${SHARES}`), env: {} }))).toEqual([
      'protocols.nfs.maxReadBytes: must be >= 4096',
      'protocols.nfs.maxConnections: must be >= 1',
    ]);
    const tight = issues(() => loadConfig({ file: file(SHARES), env: {}, overrides: { 'protocols.nfs.maxWriteBytes': 4 << 20 } }));
    expect(tight).toHaveLength(1);
    expect(tight[0]).toMatch(/^protocols\.nfs\.maxWriteBytes: must leave room for a whole WRITE/);
    expect(issues(() => loadConfig({ file: file(SHARES), env: { PORTICO_PROTOCOLS__NFS__IDMAP_DOMAIN: 'bad domain' } }))).toEqual([
      'protocols.nfs.idmapDomain: must be a DNS domain name (e.g. example.com)',
    ]);
  });
});

describe('shares[].nfs.clients', () => {
  it('addresses, CIDR networks and * with rw/ro; the first match decides, no match is none', () => {
    const c = loadConfig({
      file: file(
        'shares:\n  - name: data\n    source: "memory:"\n    nfs:\n      clients:\n' +
          '        - { match: 192.0.2.7, access: ro }\n        - match: 192.0.2.0/24\n        - { match: "2001:db8::/32", access: ro, squash: all }\n' +
          '  - name: open\n    source: "memory:"\n',
      ),
      env: {},
    });
    expect(c.shares[0]!.nfs).toEqual({ clients: [{ match: '192.0.2.7', access: 'ro' }, { match: '192.0.2.0/24', access: 'rw' }, { match: '2001:db8::/32', access: 'ro', squash: 'all' }] });
    const ex = NfsExports.fromConfig(c);
    const data = ex.byShareName('data')!;
    expect(clientAccess(data, '192.0.2.7')).toBe('ro');
    expect(clientAccess(data, '::ffff:192.0.2.7')).toBe('ro');
    expect(clientAccess(data, '192.0.2.8')).toBe('rw');
    expect(clientAccess(data, '2001:db8:1::5')).toBe('ro');
    expect(clientAccess(data, '198.51.100.1')).toBe('none');
    expect(clientAccess(data, '127.0.0.1')).toBe('none');
    expect(clientAccess(ex.byShareName('open')!, '198.51.100.1')).toBe('rw');
  });

  it("an entry's squash and anonymous ids map credentials in its export; others keep the server's", async () => {
    const c = loadConfig({
      file: file('shares:\n  - name: data\n    source: "memory:"\n    nfs:\n      clients:\n        - { match: 10.0.0.0/8, squash: all, anonUid: 4000, anonGid: 4001 }\n        - { match: "*", squash: none }\n'),
      env: {},
    });
    const exp = NfsExports.fromConfig(c).byShareName('data')!;
    const map = new PrincipalMap({ ...refuseAllLogins, principalForUid: async (uid) => (uid === 0 || uid === 1001 ? { user: uid === 0 ? 'root' : 'alice', uid, gid: uid, groups: [], guest: false } : undefined) }, { squash: 'root', anonUid: 65534, anonGid: 65534 });
    const cred = (uid: number): Credential => ({ flavor: AUTH_FLAVOR.SYS, sys: { stamp: 0, machineName: 'test', uid, gid: uid, gids: [] } });
    const inLan = clientRule(exp, '10.1.2.3')!.mapping;
    const elsewhere = clientRule(exp, '192.0.2.1')!.mapping;
    expect(await map.of(cred(1001), inLan)).toMatchObject({ guest: true, uid: 4000, gid: 4001 });
    expect(await map.of(cred(4242), inLan)).toBe(await map.of(cred(0), inLan));
    expect(await map.of(cred(0), elsewhere)).toMatchObject({ user: 'root', uid: 0 });
    expect(await map.of(cred(0))).toMatchObject({ guest: true, uid: 65534 });
    expect(await map.of(cred(1001))).toMatchObject({ user: 'alice' });
    expect(await map.of(cred(4242), elsewhere)).toBe(map.anonymous);
  });

  it('refuses host names, bad prefixes, unknown access words and an empty list', () => {
    const bad = issues(() =>
      loadConfig({
        file: file(
          'shares:\n  - name: data\n    source: "memory:"\n    nfs:\n      clients:\n' +
            '        - match: host.example.com\n        - match: 10.0.0.0/33\n        - { match: 10.0.0.1, access: rx }\n        - { match: 10.0.0.2, squash: some }\n' +
            '  - name: b\n    source: "memory:"\n    nfs: { clients: [] }\n',
        ),
        env: {},
      }),
    );
    expect(bad).toEqual([
      "shares[0].nfs.clients[0].match: must be an IP address, a CIDR network (a.b.c.d/n, x::/n) or '*'",
      "shares[0].nfs.clients[1].match: must be an IP address, a CIDR network (a.b.c.d/n, x::/n) or '*'",
      'shares[0].nfs.clients[2].access: must be one of "rw", "ro"',
      'shares[0].nfs.clients[3].squash: must be one of "none", "root", "all"',
      'shares[1].nfs.clients: must have at least 1 item',
    ]);
  });
});

describe('serve flags', () => {
  it('--nfs-squash, --nfs-anon-uid and --nfs-anon-gid set protocols.nfs', () => {
    const { config } = serveConfig('memory:', { state: join(tmp, 's'), nfsSquash: 'all', nfsAnonUid: 4000, nfsAnonGid: 4001 });
    expect(nfsOptions(config)).toMatchObject({ squash: 'all', anonUid: 4000, anonGid: 4001 });
    expect(issues(() => serveConfig('memory:', { state: join(tmp, 's'), nfsSquash: 'some' }))[0]).toMatch(/^protocols\.nfs\.squash: must be one of/);
  });
});
