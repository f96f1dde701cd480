/**
 * Windows-style case-insensitive shares on a case-sensitive disk, and Unicode normalisation: names
 * created on disk in NFD (as macOS writes them) are found by NFC lookups.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv, RW, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from './vfs-conformance.ts';
import type { Session } from '../../src/session/session.ts';

describe('case-insensitive share on a case-sensitive local disk', () => {
  let root: string;
  let env: VfsEnv;
  let s: Session;

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'portico-ci-'));
    env = makeVfsEnv(await LocalBackend.open(root), { caseSensitive: false });
    s = env.session();
  });
  afterEach(async () => {
    await env.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  it('finds names in any case, keeps the created spelling, and refuses a second spelling', async () => {
    await s.mkdir('s', '/Docs');
    await writeFile(s, '/Docs/Report.TXT', 'v1');
    expect((await readFile(s, '/DOCS/report.txt')).toString()).toBe('v1');
    const a = await s.getattr('s', '/docs/REPORT.txt');
    expect(a.id).toBe((await s.getattr('s', '/Docs/Report.TXT')).id);
    await expectCode(s.open('s', '/docs/report.txt', { access: RW, disposition: 'create', owner: 'o' }), 'EEXIST');
    await expectCode(s.mkdir('s', '/DOCS'), 'EEXIST');
    // Overwriting through another spelling writes the same file; the disk keeps one name.
    await writeFile(s, '/docs/report.txt', 'v2');
    expect(readdirSync(join(root, 'Docs'))).toEqual(['Report.TXT']);
    expect((await s.readdir('s', '/docs')).entries.map((e) => e.name)).toEqual(['Report.TXT']);
  });

  it('case-only rename changes the spelling and keeps the id', async () => {
    await writeFile(s, '/readme.md', 'x');
    const id = (await s.getattr('s', '/readme.md')).id;
    await s.rename('s', '/readme.md', '/README.md');
    expect(readdirSync(root)).toEqual(['README.md']);
    expect((await s.getattr('s', '/readme.MD')).id).toBe(id);
  });

  it('shows only one of two names that differ only in case (created outside Portico)', async () => {
    writeFileSync(join(root, 'dup'), 'lower');
    writeFileSync(join(root, 'DUP'), 'upper');
    const names = (await s.readdir('s', '/')).entries.map((e) => e.name);
    expect(names).toEqual(['DUP']);
  });

  it('NFD names on disk are reachable by their NFC spelling', async () => {
    const nfd = 'cafe\u0301';
    mkdirSync(join(root, nfd));
    writeFileSync(join(root, nfd, 'x'), 'accent');
    expect((await readFile(s, '/caf\u00e9/x')).toString()).toBe('accent');
    expect((await s.readdir('s', '/')).entries.map((e) => e.name)).toEqual(['caf\u00e9']);
  });
});

describe('case-sensitive share keeps names apart', () => {
  it('Foo and foo are two files', async () => {
    const root = mkdtempSync(join(tmpdir(), 'portico-cs-'));
    const env = makeVfsEnv(await LocalBackend.open(root));
    try {
      const s = env.session();
      await writeFile(s, '/Foo', '1');
      await writeFile(s, '/foo', '2');
      expect((await s.readdir('s', '/')).entries.map((e) => e.name)).toEqual(['Foo', 'foo']);
      expect((await s.getattr('s', '/Foo')).id).not.toBe((await s.getattr('s', '/foo')).id);
      await expectCode(s.getattr('s', '/FOO'), 'ENOENT');
    } finally {
      await env.destroy();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
