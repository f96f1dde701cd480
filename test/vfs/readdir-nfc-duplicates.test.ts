/**
 * Vfs.readdir on a case-sensitive share: names that are their own NFC form are listed as they are
 * (no dedup pass is needed for them), and two names on disk with one NFC form (an NFD spelling, a
 * singleton like the Kelvin sign) still show once, the first in listing order.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv, type VfsEnv } from '../helpers/vfs-env.ts';
import type { Session } from '../../src/session/session.ts';

describe('readdir of names sharing an NFC form on a case-sensitive share', () => {
  let root: string;
  let env: VfsEnv;
  let s: Session;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'portico-nfcdup-'));
    env = makeVfsEnv(await LocalBackend.open(root));
    s = env.session();
  });
  afterEach(async () => {
    await env.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  const names = async (limit?: number): Promise<string[]> => {
    const out: string[] = [];
    let cookie: bigint | undefined;
    for (;;) {
      const page = await s.readdir('s', '/', { ...(limit !== undefined ? { limit } : {}), ...(cookie !== undefined ? { cookie } : {}) });
      out.push(...page.entries.map((e) => e.name));
      if (page.eof || page.entries.length === 0) return out;
      cookie = page.entries.at(-1)!.cookie;
    }
  };

  it('shows an NFD and an NFC spelling of one name once, in NFC', async () => {
    writeFileSync(join(root, 'caf\u00e9'), 'nfc');
    writeFileSync(join(root, 'cafe\u0301'), 'nfd');
    writeFileSync(join(root, 'plain'), 'x');
    expect(await names()).toEqual(['caf\u00e9', 'plain']);
  });

  it('shows a name and a non-ASCII name whose NFC form it is (Kelvin sign) once', async () => {
    writeFileSync(join(root, 'K'), 'ascii');
    writeFileSync(join(root, '\u212a'), 'kelvin');
    writeFileSync(join(root, 'Kb'), 'x');
    const listed = await names();
    expect(listed).toEqual(['K', 'Kb']);
    // The entry shown is the first in listing order: the ASCII file's attributes.
    const page = await s.readdir('s', '/');
    expect(page.entries[0]!.attr.size).toBe(5);
  });

  it('lists ASCII names as they are, each once, across pages', async () => {
    const want: string[] = [];
    for (let i = 0; i < 25; i++) {
      const n = `f${String(i).padStart(2, '0')}`;
      writeFileSync(join(root, n), 'x');
      want.push(n);
    }
    expect(await names(7)).toEqual(want);
    expect(await names(7)).toEqual(want);
  });
});
