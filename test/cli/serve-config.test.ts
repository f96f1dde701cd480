import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.ts';
import { serveConfig } from '../../src/cli/main.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-servecfg-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('serve SOURCE and flags -> config', () => {
  it('no config: one share "data" from SOURCE (default ./data), flags become overrides', () => {
    const { config, hadShares } = serveConfig(undefined, { state: join(tmp, 's'), adminPort: 0, webdavPort: 0, nfsPort: 1234, listen: '127.0.0.2', logLevel: 'warn' });
    expect(hadShares).toBe(false);
    expect(config.shares.map((s) => [s.name, s.source])).toEqual([['data', resolve('./data')]]);
    expect(config.server.stateDir).toBe(join(tmp, 's'));
    expect(config.server.listen).toBe('127.0.0.2');
    expect(config.admin.port).toBe(0);
    expect(config.protocols.webdav.port).toBe(0);
    expect(config.protocols.nfs.port).toBe(1234);
    expect(config.protocols.smb.port).toBe(445);
    expect(config.log.level).toBe('warn');

    const mem = serveConfig('memory:', {});
    expect(mem.config.shares[0]!.source).toBe('memory:');
  });

  it('config with shares: SOURCE replaces only the first share source; without SOURCE the config stands', () => {
    const file = join(tmp, 'c.yaml');
    writeFileSync(file, 'shares:\n  - name: a\n    source: ./a\n  - name: b\n    source: "memory:"\n');
    const kept = serveConfig(undefined, { config: file });
    expect(kept.hadShares).toBe(true);
    expect(kept.config.shares.map((s) => s.source)).toEqual([join(tmp, 'a'), 'memory:']);
    const replaced = serveConfig(join(tmp, 'other'), { config: file });
    expect(replaced.config.shares.map((s) => [s.name, s.source])).toEqual([
      ['a', join(tmp, 'other')],
      ['b', 'memory:'],
    ]);
  });

  it('a config error other than missing shares is reported, not papered over', () => {
    const file = join(tmp, 'bad.yaml');
    writeFileSync(file, 'server:\n  lisen: 1.2.3.4\n');
    let err: unknown;
    try {
      serveConfig(undefined, { config: file });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('server.lisen');
  });
});
