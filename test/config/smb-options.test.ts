/**
 * The SMB encryption keys of the configuration: `protocols.smb.encrypt` and `shares[].smb.encrypt`
 * are schema-checked (a misspelt value must not silently mean `off`), and the plugin hands the
 * per-share values to the server by lower-cased share name.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { smbOptions } from '../../protocols/smb/plugin.ts';

function issues(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.key}: ${i.message}`);
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('SMB encryption keys', () => {
  it('a misspelt global or share value is refused, naming the key', () => {
    expect(issues(() => loadConfig({ env: {}, overrides: { 'protocols.smb.encrypt': 'requried', shares: [{ name: 'a', source: 'memory:' }] } })).join('\n')).toMatch(/protocols\.smb\.encrypt/);
    expect(issues(() => loadConfig({ env: {}, overrides: { shares: [{ name: 'a', source: 'memory:', smb: { encrypt: 'yes' } }] } })).join('\n')).toMatch(/shares\[0\]\.smb\.encrypt/);
    expect(issues(() => loadConfig({ env: {}, overrides: { shares: [{ name: 'a', source: 'memory:', smb: { sign: true } }] } })).join('\n')).toMatch(/shares\[0\]\.smb/);
  });

  it('the plugin reads the global default and the per-share values', () => {
    const c = loadConfig({
      env: { PORTICO_PROTOCOLS__SMB__ENCRYPT: 'desired' },
      overrides: { shares: [{ name: 'Secret', source: 'memory:', smb: { encrypt: 'required' } }, { name: 'plain', source: 'memory:' }] },
    });
    const o = smbOptions(c);
    expect(o.encrypt).toBe('desired');
    expect([...o.shareEncrypt]).toEqual([['secret', 'required']]);
  });
});
