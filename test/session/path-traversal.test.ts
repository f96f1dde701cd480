/**
 * Hostile path corpus: every path goes through every kind of operation on a real local-disk share
 * that sits next to a directory holding a secret. Each operation must either fail with a VfsError
 * or act strictly inside the share root; the secret must never be read, and nothing outside the
 * root may change.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, symlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import { normalizePath } from '../../src/vfs/path.ts';
import type { Session } from '../../src/session/session.ts';

const SECRET = 'TOP-SECRET-CONTENT';

export const HOSTILE_PATHS: string[] = [
  '..', '../', '/..', '../outside/secret', '/../outside/secret', 'a/../../outside/secret', '/./../outside',
  '.', './', '//..//outside/secret', '/a/./b', '/a/b/.', '...', '..../', '.../...', ' /..', '.. /x', '\n..', '..\n',
  '..\\outside\\secret', '\\..\\outside', 'a\\..\\..\\x', '\\\\server\\share\\x', 'C:\\Windows\\win.ini', '/\\/..',
  '%2e%2e/outside/secret', '%2e%2e%2foutside%2fsecret', '..%2foutside', '%252e%252e%252f', '.%2e/outside', '%2e./outside',
  '..%c0%afoutside', '..%c1%9coutside', '..;/outside', 'a/%2e%2e/%2e%2e/outside',
  '\uff0e\uff0e/outside/secret', '\u2024\u2024/outside', '\u202e..', 'e\u0301/../..',
  '..\u0000/x', 'secret\u0000.txt', '\u0000', 'a\u0001b', '\u007f', 'tab\there',
  '\ud800', 'a\udfff', 'x\ud83d',
  'a'.repeat(256), 'é'.repeat(128), 'a/'.repeat(2100), 'x/'.repeat(300),
  '/etc/passwd', '~/.ssh/id_rsa', '~root', '$HOME', '`id`', '$(id)', 'con', 'NUL', 'a:stream', 'file::$DATA',
  'ln-out/secret', 'ln-out/../secret', 'ln-out/newfile', 'ln-out', 'ln-secret', 'ln-dotdot/outside/secret',
  'sub/ln-up/outside/secret', 'sub/ln-up/main/..',
];

function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '..' && !rel.startsWith('../') && !rel.startsWith('/');
}

function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(`${relative(dir, p)}:${e.isFile() ? readFileSync(p, 'utf8') : e.isDirectory() ? 'dir' : 'other'}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort().join('\n');
}

describe('hostile path corpus on a local share', () => {
  let base: string;
  let root: string;
  let outside: string;
  let env: VfsEnv;
  let s: Session;
  let outsideBefore: string;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'portico-trav-'));
    root = join(base, 'main');
    outside = join(base, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret'), SECRET);
    writeFileSync(join(base, 'secret'), SECRET);
    mkdirSync(join(root, 'sub'));
    mkdirSync(join(root, 'a'));
    symlinkSync(outside, join(root, 'ln-out'));
    symlinkSync(join(outside, 'secret'), join(root, 'ln-secret'));
    symlinkSync('..', join(root, 'ln-dotdot'));
    symlinkSync('../..', join(root, 'sub', 'ln-up'));
    outsideBefore = snapshot(outside);
    env = makeVfsEnv(await LocalBackend.open(root));
    s = env.session();
  });

  afterAll(async () => {
    await env.destroy();
    rmSync(base, { recursive: true, force: true });
  });

  it(`has at least 50 hostile paths (${HOSTILE_PATHS.length})`, () => {
    expect(HOSTILE_PATHS.length).toBeGreaterThanOrEqual(50);
  });

  it('the validator refuses dot segments, controls, backslashes, bad Unicode and over-long names', () => {
    for (const p of ['..', 'a/../b', '.', 'a\\b', 'a\u0000', '\ud800', 'a'.repeat(256), 'x/'.repeat(300)]) {
      expect(() => normalizePath(p), p).toThrow(VfsError);
    }
    expect(normalizePath('//a//b/')).toBe('/a/b');
    expect(normalizePath('e\u0301')).toBe('/\u00e9');
    expect(normalizePath('%2e%2e')).toBe('/%2e%2e');
  });

  it('names reserved by the backend (atomic-write temp files) cannot be created or addressed', async () => {
    for (const p of ['/.portico-tmp-0123', '/a/.portico-tmp-x', '/.portico-tmp-d/f']) {
      await expect(s.open('s', p, { access: RW, disposition: 'create', owner: 'o' })).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(s.getattr('s', p)).rejects.toMatchObject({ code: 'EINVAL' });
    }
    await expect(s.mkdir('s', '/.portico-tmp-dir')).rejects.toMatchObject({ code: 'EINVAL' });
  });

  const ops: [string, (s: Session, p: string) => Promise<unknown>][] = [
    ['getattr', (s, p) => s.getattr('s', p)],
    ['readdir', (s, p) => s.readdir('s', p)],
    ['read', async (s, p) => {
      const h = await s.open('s', p, { access: RO, owner: 'o' });
      try {
        const b = await s.read(h, 0, 1000);
        expect(b.toString()).not.toContain(SECRET);
        return b;
      } finally {
        await s.close(h);
      }
    }],
    ['create', async (s, p) => {
      const h = await s.open('s', p, { access: RW, disposition: 'createOrTruncate', owner: 'o' });
      await s.write(h, 0, Buffer.from('x'));
      await s.close(h);
    }],
    ['mkdir', (s, p) => s.mkdir('s', p)],
    ['rename-to', async (s, p) => {
      const h = await s.open('s', '/victim', { access: RW, disposition: 'createOrTruncate', owner: 'o' });
      await s.close(h);
      await s.rename('s', '/victim', p);
    }],
    ['copy-to', async (s, p) => {
      const h = await s.open('s', '/victim2', { access: RW, disposition: 'createOrTruncate', owner: 'o' });
      await s.close(h);
      await s.copy('s', '/victim2', p);
    }],
    ['setattr', (s, p) => s.setattr('s', p, { size: 0 })],
    ['unlink', (s, p) => s.unlink('s', p)],
    ['symlink-at', (s, p) => s.symlink('s', '/etc', p)],
  ];

  for (const [name, op] of ops) {
    it(`${name}: every hostile path fails cleanly or stays inside the root`, async () => {
      for (const p of HOSTILE_PATHS) {
        try {
          await op(s, p);
        } catch (e) {
          // The only acceptable failure is our own error model: no TypeError, no raw fs error.
          if (!(e instanceof VfsError)) throw new Error(`${name}(${JSON.stringify(p)}) threw a non-VfsError: ${String(e)}`);
        }
      }
      expect(snapshot(outside)).toBe(outsideBefore);
      expect(readFileSync(join(base, 'secret'), 'utf8')).toBe(SECRET);
      // Nothing new appeared beside the root.
      expect(readdirSync(base).sort()).toEqual(['main', 'outside', 'secret']);
      // Everything under the root is really under it (no symlink was replaced by a directory that escapes).
      for (const e of readdirSync(root)) expect(isInside(root, join(root, e))).toBe(true);
      expect(statSync(join(outside, 'secret')).size).toBe(SECRET.length);
    });
  }
});
