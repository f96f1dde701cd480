import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkConfigFile } from '../../src/config/load.ts';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '../../config/portico.example.yaml');

describe('config/portico.example.yaml', () => {
  it('validates under the schema', () => {
    const r = checkConfigFile(EXAMPLE);
    if (!r.ok) throw r.error;
    expect(r.config.shares[0]!.name).toBe('data');
    expect(r.config.shares[0]!.rules).toHaveLength(2);
    expect(r.config.shares[0]!.access.length).toBeGreaterThan(0);
  });

  it('documents every key with a comment', () => {
    // Every "key:" line must be preceded by a comment line (list items start with "- key:").
    const lines = readFileSync(EXAMPLE, 'utf8').split('\n');
    const undocumented: string[] = [];
    lines.forEach((line, i) => {
      const m = /^(\s*)(- )?([A-Za-z]+):/.exec(line);
      if (!m) return;
      const insideExample = /^\s+- (path|users|groups):|^\s+(groups|rights|allow|deny|users):/.test(line);
      if (insideExample) return;
      if (!/^\s*#/.test(lines[i - 1] ?? '')) undocumented.push(line.trim());
    });
    expect(undocumented).toEqual([]);
  });
});
