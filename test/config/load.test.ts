import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, checkConfigFile, loadConfig } from '../../src/config/load.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portico-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(text: string, name = 'portico.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const MINIMAL = 'shares:\n  - name: data\n    source: ./data\n';

describe('loadConfig: valid files', () => {
  it('applies every default to a minimal file and resolves paths against its directory', () => {
    const c = loadConfig({ file: write(MINIMAL), env: {} });
    expect(c.server).toEqual({ listen: '0.0.0.0', stateDir: join(dir, 'state'), shutdownGraceMs: 10000, attrCacheMs: 1000 });
    expect(c.admin).toEqual({ port: 9090, listen: '127.0.0.1' });
    expect(c.log).toEqual({ level: 'info', format: 'auto', audit: { enabled: true, file: '-' } });
    expect(c.auth).toEqual({
      secretKey: null,
      bcryptRounds: 12,
      firstRun: 'create-admin',
      throttle: { maxFailures: 5, windowMs: 900000, lockoutMs: 60000, maxLockoutMs: 900000 },
      ldap: null,
    });
    expect(c.protocols).toEqual({ webdav: { port: 8080 }, nfs: { port: 2049 }, smb: { port: 445 }, fuse: { mountpoint: null } });
    expect(c.shares).toEqual([
      {
        name: 'data',
        source: join(dir, 'data'),
        options: {},
        readOnly: false,
        caseSensitive: true,
        protocols: ['webdav', 'nfs', 'smb', 'fuse'],
        guest: false,
        access: [{ users: ['*'], rights: ['read', 'write'] }],
        rules: [],
        symlinks: 'refuse',
      },
    ]);
  });

  it('accepts a full file, keeps protocol extras and plugin protocols, normalises rule paths', () => {
    const file = write(`
server: { listen: '::', stateDir: /var/lib/portico, shutdownGraceMs: 0 }
admin: { port: 0, listen: 0.0.0.0 }
log: { level: debug, format: json, audit: { enabled: false, file: audit/audit.log } }
auth:
  secretKey: 0123456789abcdef0123456789abcdef
  bcryptRounds: 4
  firstRun: loopback-only
  throttle: { maxFailures: 3, windowMs: 1000, lockoutMs: 10, maxLockoutMs: 10 }
protocols:
  webdav: { port: 0, listen: 127.0.0.1, maxBody: 100 }
  smb: { port: 1445, signing: { required: true } }
  fuse: { mountpoint: mnt }
  ftp: { port: 2121 }
shares:
  - name: Data.1
    source: memory:objectstore
    options: { anything: [1, 2] }
    readOnly: true
    caseSensitive: false
    protocols: [smb, ftp]
    guest: read
    access:
      - users: [alice, '*']
        groups: [staff]
        rights: [read, write, admin]
    rules:
      - { path: /finance/, groups: [finance], allow: [read, write] }
      - { path: //finance, users: ['*'], deny: [read, write], allow: [read] }
  - name: other
    source: s3://bucket/prefix
`);
    const c = loadConfig({ file, env: {} });
    expect(c.server).toEqual({ listen: '::', stateDir: '/var/lib/portico', shutdownGraceMs: 0, attrCacheMs: 1000 });
    expect(c.log.audit.file).toBe(join(dir, 'audit/audit.log'));
    expect(c.auth.throttle.maxLockoutMs).toBe(10);
    expect(c.protocols.webdav).toEqual({ port: 0, listen: '127.0.0.1', maxBody: 100 });
    expect(c.protocols.smb).toEqual({ port: 1445, signing: { required: true } });
    expect(c.protocols.nfs).toEqual({ port: 2049 });
    expect(c.protocols.fuse.mountpoint).toBe(join(dir, 'mnt'));
    expect(c.protocols['ftp']).toEqual({ port: 2121 });
    const [a, b] = c.shares;
    expect(a!.source).toBe('memory:objectstore');
    expect(a!.options).toEqual({ anything: [1, 2] });
    expect(a!.protocols).toEqual(['smb', 'ftp']);
    expect(a!.guest).toBe('read');
    expect(a!.rules.map((r) => r.path)).toEqual(['/finance', '/finance']);
    expect(b!.source).toBe('s3://bucket/prefix');
    // Default protocols = every configured protocol, plugins included.
    expect(b!.protocols).toEqual(['webdav', 'nfs', 'smb', 'fuse', 'ftp']);
  });

  it('takes directory group names as the directory spells them (spaces, parentheses, non-ASCII) and refuses *, control characters and outer spaces', () => {
    const c = loadConfig({
      file: write(`shares:
  - name: data
    source: ./data
    access:
      - { groups: ["Domain Users", "Domänen-Benutzer", "R&D (EU)"], rights: [read] }
    rules:
      - { path: /hr, groups: ["HR Team"], deny: [read] }
`),
      env: {},
    });
    expect(c.shares[0]!.access[0]!.groups).toEqual(['Domain Users', 'Domänen-Benutzer', 'R&D (EU)']);
    expect(c.shares[0]!.rules[0]!.groups).toEqual(['HR Team']);
    const err = configError(() =>
      loadConfig({ file: write(`shares:\n  - name: data\n    source: ./data\n    access:\n      - { groups: ["*", " lead", "tab\\there", "x*"], rights: [read] }\n`), env: {} }),
    );
    const lines = err.message.split('\n').slice(1).map((l) => l.trim());
    expect(lines.filter((l) => l.startsWith('shares[0].access[0].groups['))).toHaveLength(4);
  });

  it('treats a section whose keys are all commented out as absent', () => {
    const c = loadConfig({ file: write(`server:\n  # listen: x\nauth:\n  throttle:\n${MINIMAL}`), env: {} });
    expect(c.server.listen).toBe('0.0.0.0');
    expect(c.auth.throttle.maxFailures).toBe(5);
  });

  it('resolves against cwd without a file', () => {
    const c = loadConfig({ cwd: dir, env: {}, overrides: { shares: [{ name: 'x', source: 'rel' }] } });
    expect(c.server.stateDir).toBe(join(dir, 'state'));
    expect(c.shares[0]!.source).toBe(join(dir, 'rel'));
  });
});

describe('loadConfig: errors name key, value and problem', () => {
  it('reports every problem at once', () => {
    const file = write(`
server:
  lisen: 1.2.3.4
protocols:
  webdav: { port: 70000 }
  nfs: { port: 1.5 }
log: { level: loud }
auth: { bcryptRounds: 3, secretKey: tooshort, throttle: { lockoutMs: 100, maxLockoutMs: 50 } }
shares:
  - name: bad name
    source: ./x
    guest: write
    protocols: [gopher]
    access:
      - rights: [read, fly]
    rules:
      - { path: finance, users: [bob], allow: [read] }
      - { path: /a/../b, groups: [g] }
  - name: DATA
    source: ''
  - name: data
    source: ./y
    colour: red
`);
    const err = configError(() => loadConfig({ file, env: {} }));
    const lines = err.message.split('\n').slice(1).map((l) => l.trim());
    expect(err.message).toContain(file);
    expect(lines).toEqual(
      expect.arrayContaining([
        'server.lisen: unknown key (did you mean "listen"?)',
        'protocols.webdav.port: must be <= 65535 (got 70000)',
        'protocols.nfs.port: must be an integer (got 1.5)',
        'log.level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent" (got "loud")',
        'auth.bcryptRounds: must be >= 4 (got 3)',
        // The secret is never echoed.
        'auth.secretKey: must be at least 32 characters',
        'auth.throttle.maxLockoutMs: must be >= lockoutMs (100) (got 50)',
        'shares[0].name: must match [A-Za-z0-9._-]{1,64} (got "bad name")',
        'shares[0].guest: must be false or "read" (guest write is never allowed) (got "write")',
        'shares[0].protocols[0]: must name a configured protocol (webdav, nfs, smb, fuse) (got "gopher")',
        'shares[0].access[0].rights[1]: must be one of "read", "write", "admin" (got "fly")',
        'shares[0].access[0]: must name users or groups (or both) (got {"rights":["read","fly"]})',
        `shares[0].rules[0].path: must start with '/' (got "finance")`,
        "shares[0].rules[1].path: must be a valid share path: dot segment '..' not allowed (got \"/a/../b\")",
        'shares[0].rules[1]: must have allow or deny (or both) (got {"path":"/a/../b","groups":["g"]})',
        'shares[1].source: must not be empty (got "")',
        'shares[2].colour: unknown key',
        'shares[2].name: must be unique (case-insensitively); shares[1].name is "DATA" (got "data")',
      ]),
    );
    expect(lines).toHaveLength(18);
    const port = err.issues.find((i) => i.key === 'protocols.webdav.port');
    expect(port).toMatchObject({ value: 70000, message: 'must be <= 65535' });
    expect(err.message).not.toContain('tooshort');
  });

  it('rejects unknown top-level keys and wrong types', () => {
    const err = configError(() => loadConfig({ file: write(`${MINIMAL}sever: {}\nadmin: 5\n`), env: {} }));
    expect(err.message).toContain('sever: unknown key (did you mean "server"?)');
    expect(err.message).toContain('admin: must be a mapping (got 5)');
  });

  it('requires at least one share', () => {
    expect(configError(() => loadConfig({ env: {} })).message).toContain('shares: is required');
    expect(configError(() => loadConfig({ file: write('shares: []\n'), env: {} })).message).toContain('shares: must have at least one share (got [])');
  });

  it('names the file for a missing file and the line for a syntax error', () => {
    const missing = join(dir, 'nope.yaml');
    expect(configError(() => loadConfig({ file: missing, env: {} })).message).toContain(`${missing}: cannot read config file: no such file`);
    const bad = write('server:\n  listen: x\n shares: [\n');
    const err = configError(() => loadConfig({ file: bad, env: {} }));
    expect(err.message).toMatch(new RegExp(`${bad.replace(/[.]/g, '\\.')}:3:\\d+: `));
    const dup = write('server: {}\nserver: {}\n', 'dup.yaml');
    expect(configError(() => loadConfig({ file: dup, env: {} })).message).toContain(`${dup}:2:1: Map keys must be unique`);
  });

  it('rejects a non-mapping document and an oversized file', () => {
    expect(configError(() => loadConfig({ file: write('- a\n- b\n'), env: {} })).message).toContain('the top level must be a mapping');
    const big = write(`# ${'x'.repeat(1024 * 1024)}\n`, 'big.yaml');
    expect(configError(() => loadConfig({ file: big, env: {} })).message).toContain('larger than 1048576 bytes');
  });

  it('rejects a YAML alias bomb quickly', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      levels.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const file = write(`${levels.join('\n')}\n${MINIMAL}`);
    const t0 = Date.now();
    const err = configError(() => loadConfig({ file, env: {} }));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err.message).toContain('resource exhaustion');
  });
});

describe('loadConfig: environment and CLI overrides', () => {
  it('maps PORTICO_ variables onto nested camelCase keys and parses scalars', () => {
    const c = loadConfig({
      file: write(MINIMAL),
      env: {
        PORTICO_LOG__LEVEL: 'debug',
        PORTICO_PROTOCOLS__WEBDAV__PORT: '0',
        PORTICO_AUTH__THROTTLE__MAX_FAILURES: '3',
        PORTICO_SERVER__SHUTDOWN_GRACE_MS: '250',
        PORTICO_LOG__AUDIT__ENABLED: 'false',
        PORTICO_SERVER__STATE_DIR: 'envstate',
        // Digits only: kept as a string because the key is a string.
        PORTICO_AUTH__SECRET_KEY: '01234567890123456789012345678901234',
        PORTICO_PROTOCOLS__SMB__SIGNING_REQUIRED: 'true',
        PORTICO_PROTOCOLS__FTP__PORT: '21',
        PORTICO_PROTOCOLS__FUSE__MOUNTPOINT: 'null',
        // Not configuration (no "__", not a section name): left to other code.
        PORTICO_CONFIG: '/etc/portico.yaml',
        OTHER__THING: 'x',
      },
      cwd: '/somewhere',
    });
    expect(c.log.level).toBe('debug');
    expect(c.protocols.webdav.port).toBe(0);
    expect(c.protocols.nfs.port).toBe(2049);
    expect(c.auth.throttle.maxFailures).toBe(3);
    expect(c.server.shutdownGraceMs).toBe(250);
    expect(c.log.audit.enabled).toBe(false);
    expect(c.server.stateDir).toBe(resolve('/somewhere', 'envstate'));
    expect(c.auth.secretKey).toBe('01234567890123456789012345678901234');
    expect(c.protocols.smb).toEqual({ port: 445, signingRequired: true });
    expect(c.protocols['ftp']).toEqual({ port: 21 });
    expect(c.protocols.fuse.mountpoint).toBeNull();
  });

  it("keeps a string value's raw text; only YAML's null spellings unset a nullable one (auth.secretKey)", () => {
    const load = (v: string): unknown => loadConfig({ file: write(MINIMAL), env: { PORTICO_AUTH__SECRET_KEY: v } }).auth.secretKey;
    const pad = 'k'.repeat(40);
    // A leading '#' made YAML read the whole value as a comment, i.e. null: the key was silently
    // unset (found by the config fuzz test). It is a value like any other.
    for (const v of [`#${pad}`, ` # ${pad}`, `'${pad}'`, `!${pad}`, `&${pad}`, `a b #${pad}`]) expect(load(v)).toBe(v);
    expect(() => load('#')).toThrow(/auth\.secretKey: must be at least 32 characters/);
    for (const v of ['', '  ', '~', 'null', 'Null', 'NULL', ' null ']) expect(load(v)).toBe(null);
  });

  it('names the variable when it does not name a key', () => {
    const err = configError(() =>
      loadConfig({
        file: write(MINIMAL),
        env: {
          PORTICO_SERVER__LISEN: '1.2.3.4',
          PORTICO_LOG_LEVEL: 'debug',
          PORTICO_NOPE__X: '1',
          PORTICO_SHARES__NAME: 'x',
          PORTICO_AUTH__THROTTLE: '3',
          PORTICO_LOG__LEVEL__X: '1',
        },
      }),
    );
    expect(err.issues.map((i) => i.key).sort()).toEqual([
      'PORTICO_AUTH__THROTTLE',
      'PORTICO_LOG_LEVEL',
      'PORTICO_LOG__LEVEL__X',
      'PORTICO_NOPE__X',
      'PORTICO_SERVER__LISEN',
      'PORTICO_SHARES__NAME',
    ]);
    expect(err.message).toContain('PORTICO_SERVER__LISEN: does not name a configuration key: server has no key "lisen"');
    expect(err.message).toContain('PORTICO_LOG_LEVEL: does not name a configuration key: segments are separated by "__"');
    expect(err.message).toContain('PORTICO_SHARES__NAME: does not name a configuration key: shares is a list and cannot be set from the environment');
    expect(err.message).toContain('PORTICO_AUTH__THROTTLE: does not name a configuration key: auth.throttle is a section');
  });

  it('reports invalid environment values with the variable as origin', () => {
    const err = configError(() => loadConfig({ file: write(MINIMAL), env: { PORTICO_PROTOCOLS__WEBDAV__PORT: '70000', PORTICO_LOG__AUDIT__ENABLED: 'maybe' } }));
    expect(err.message).toContain('protocols.webdav.port: must be <= 65535 (got 70000) [from PORTICO_PROTOCOLS__WEBDAV__PORT]');
    expect(err.message).toContain('log.audit.enabled: must be a boolean (got "maybe") [from PORTICO_LOG__AUDIT__ENABLED]');
  });

  it('applies defaults < file < env < CLI', () => {
    const file = write(`log: { level: warn, format: json }\nadmin: { port: 1000 }\nprotocols: { webdav: { port: 1 } }\n${MINIMAL}`);
    const env = { PORTICO_LOG__LEVEL: 'error', PORTICO_PROTOCOLS__WEBDAV__PORT: '2' };
    const c = loadConfig({ file, env, overrides: { 'protocols.webdav.port': 3, 'server.stateDir': '/x' } });
    expect(c.log.format).toBe('json'); // file over default
    expect(c.admin.port).toBe(1000); // file over default
    expect(c.log.level).toBe('error'); // env over file
    expect(c.protocols.webdav.port).toBe(3); // CLI over env over file
    expect(c.server.stateDir).toBe('/x');
    expect(c.admin.listen).toBe('127.0.0.1'); // untouched default
  });

  it('CLI overrides can replace shares and index arrays; unknown keys are reported', () => {
    const c = loadConfig({ file: write(MINIMAL), env: {}, cwd: '/cli', overrides: { 'shares[0].readOnly': true, 'shares[0].source': 'here' } });
    expect(c.shares[0]).toMatchObject({ name: 'data', readOnly: true, source: '/cli/here' });
    const c2 = loadConfig({ env: {}, cwd: '/cli', overrides: { shares: [{ name: 'data', source: '/srv' }] } });
    expect(c2.shares.map((s) => s.source)).toEqual(['/srv']);
    const err = configError(() => loadConfig({ file: write(MINIMAL), env: {}, overrides: { 'server.lisen': 'x', 'a..b': 1, '__proto__.x': 1 } }));
    expect(err.message).toContain('a..b: is not a valid key path [from command line]');
    expect(err.message).toContain('is not a valid key [from command line]');
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });
});

describe('checkConfigFile', () => {
  it('returns ok with the config or the error', () => {
    const good = checkConfigFile(write(MINIMAL));
    expect(good.ok).toBe(true);
    if (good.ok) expect(good.config.shares[0]!.name).toBe('data');
    const bad = checkConfigFile(write('shares: [{ name: x }]\n', 'bad.yaml'));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toContain('shares[0].source: is required');
  });
});

describe('TLS material paths', () => {
  it('resolve against the config file directory', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'portico-tls-cfg-'));
    try {
      const file = join(dir, 'portico.yaml');
      writeFileSync(file, 'protocols:\n  webdav:\n    port: 8443\n    tls:\n      cert: certs/server.crt\n      key: /abs/server.key\nshares:\n  - name: d\n    source: "memory:"\n');
      const cfg = loadConfig({ file, env: {} });
      const tls = (cfg.protocols.webdav as { tls?: { cert: string; key: string } }).tls!;
      expect(tls.cert).toBe(join(dir, 'certs/server.crt'));
      expect(tls.key).toBe('/abs/server.key');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
