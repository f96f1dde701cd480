/**
 * Issue 15 §1, §2 and §5 at the session gate itself (protocol-agnostic: NFS, SMB and FUSE call the
 * same methods): listings page past hidden members, recursive operations check members below a
 * rule (also when the backend lists names in NFD), moves that would change a rule's governance are
 * refused while case-only renames pass, and the share's symlink policy refuses links leading out.
 */
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv, alice, bob, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';
import { symlinkLeavesShare } from '../../src/vfs/path.ts';

let env: VfsEnv | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await env?.destroy();
  env = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// bob is in group finance (test/helpers/vfs-env.ts).
const financeRules = (path: string) => [
  { path, groups: ['finance'], allow: ['read' as const, 'write' as const] },
  { path, users: ['*'], deny: ['read' as const, 'write' as const] },
];

describe('listings', () => {
  it('a page filled only by hidden members is followed by the next one (an empty page means the end)', async () => {
    env = makeVfsEnv(new MemoryBackend(), { share: { rules: [...financeRules('/d/a1'), ...financeRules('/d/a2'), ...financeRules('/d/a3')] } });
    const b = env.session(bob);
    await b.mkdir('s', '/d');
    for (const n of ['a1', 'a2', 'a3', 'z1', 'z2']) await b.mkdir('s', `/d/${n}`);
    const a = env.session(alice);
    const seen: string[] = [];
    let cookie: bigint | undefined;
    for (let i = 0; i < 20; i++) {
      const page = await a.readdir('s', '/d', cookie === undefined ? { limit: 1 } : { cookie, limit: 1 });
      seen.push(...page.entries.map((e) => e.name));
      if (page.eof || page.entries.length === 0) break;
      cookie = page.entries.at(-1)!.cookie;
    }
    expect(seen.sort()).toEqual(['z1', 'z2']);
    const all = await b.readdir('s', '/d');
    expect(all.entries.map((e) => e.name).sort()).toEqual(['a1', 'a2', 'a3', 'z1', 'z2']);
    // readdirWithProps (PROPFIND's path) agrees.
    const withProps = await a.readdirWithProps('s', '/d');
    expect([...withProps.props.keys()].sort()).toEqual(['z1', 'z2']);
  });

  it('names listed in NFD by the backend are matched to NFC rules (local disk written by a macOS client)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'portico-nfd-'));
    dirs.push(root);
    const nfd = 'Fin\u0061\u0301nzas';
    mkdirSync(join(root, 'top', nfd), { recursive: true });
    writeFileSync(join(root, 'top', nfd, 'secret.txt'), 'x');
    writeFileSync(join(root, 'top', 'open.txt'), 'y');
    env = makeVfsEnv(new LocalBackend(root), { share: { rules: financeRules('/top/Fin\u00e1nzas') } });
    const a = env.session(alice);
    expect((await a.readdir('s', '/top')).entries.map((e) => e.name)).toEqual(['open.txt']);
    // The per-member check of a removal normalises the listed NFD name before matching the rule.
    const errors = await a.removeTree('s', '/top');
    expect(errors.map((e) => e.error.code)).toEqual(['EACCES']);
    expect((await env.session(bob).getattr('s', '/top/Fin\u00e1nzas/secret.txt')).size).toBe(1);
    await expectCode(a.getattr('s', '/top/open.txt'), 'ENOENT');
  });
});

describe('recursive operations below a rule', () => {
  it('copy and removeTree skip members the principal may not touch and report them', async () => {
    env = makeVfsEnv(new MemoryBackend(), { share: { rules: financeRules('/t/fin') } });
    const b = env.session(bob);
    await b.mkdir('s', '/t');
    await b.mkdir('s', '/t/fin');
    await writeFile(b, '/t/fin/p', 'secret');
    await writeFile(b, '/t/ok', 'fine');
    const a = env.session(alice);
    const copyErrors = await a.copy('s', '/t', '/t2');
    expect(copyErrors.map((e) => [e.path, e.error.code])).toEqual([['/t/fin', 'EACCES']]);
    await expectCode(b.getattr('s', '/t2/fin'), 'ENOENT');
    expect((await a.getattr('s', '/t2/ok')).size).toBe(4);
    const rmErrors = await a.removeTree('s', '/t');
    expect(rmErrors.map((e) => [e.path, e.error.code])).toEqual([['/t/fin', 'EACCES']]);
    expect((await b.getattr('s', '/t/fin/p')).size).toBe(6);
    await expectCode(a.getattr('s', '/t/ok'), 'ENOENT');
  });

  it('a depth-infinity path lock over a denied rule path is refused, depth 0 is not', async () => {
    env = makeVfsEnv(new MemoryBackend(), { share: { rules: financeRules('/t/fin') } });
    const b = env.session(bob);
    await b.mkdir('s', '/t');
    const a = env.session(alice);
    await expectCode(a.lockPath('s', '/t', { kind: 'exclusive', style: 'token', depth: 'infinity' }), 'EACCES');
    const l = await a.lockPath('s', '/t', { kind: 'exclusive', style: 'token', depth: 0 });
    expect(l.token).toBeTruthy();
    // bob may write everything below: his depth-infinity lock is granted once alice's is gone.
    env.vfs.locks.unlockToken(l.token);
    expect((await b.lockPath('s', '/t', { kind: 'exclusive', style: 'token', depth: 'infinity' })).token).toBeTruthy();
  });
});

describe('moves and rule governance', () => {
  it('refuses renames at or around a rule path, allows case-only renames on a case-insensitive share', async () => {
    env = makeVfsEnv(new MemoryBackend(), { caseSensitive: false, share: { rules: financeRules('/org/fin') } });
    const b = env.session(bob);
    await b.mkdir('s', '/org');
    await b.mkdir('s', '/org/fin');
    await b.mkdir('s', '/other');
    await expectCode(b.rename('s', '/org', '/org2'), 'EACCES');
    await expectCode(b.rename('s', '/org/fin', '/org/fin2'), 'EACCES');
    await expectCode(b.rename('s', '/other', '/org'), 'EACCES');
    // Same rule key: no governance change.
    await b.rename('s', '/org/fin', '/org/FIN');
    expect((await b.readdir('s', '/org')).entries.map((e) => e.name)).toEqual(['FIN']);
    // Unrelated renames pass.
    await b.rename('s', '/other', '/other2');
  });
});

describe('symlink policy', () => {
  it('symlinkLeavesShare judges targets lexically from the link directory', () => {
    expect(symlinkLeavesShare('/a/l', '/etc/passwd')).toBe(true);
    expect(symlinkLeavesShare('/a/l', '../../x')).toBe(true);
    expect(symlinkLeavesShare('/a/l', '../x')).toBe(false);
    expect(symlinkLeavesShare('/a/l', 'b/../../x')).toBe(false);
    expect(symlinkLeavesShare('/a/l', 'b/../../../x')).toBe(true);
    expect(symlinkLeavesShare('/l', './x')).toBe(false);
  });

  it('refuse (the default): new links leading out are refused, copies of such links are skipped; keep allows both', async () => {
    const root = mkdtempSync(join(tmpdir(), 'portico-links-'));
    dirs.push(root);
    mkdirSync(join(root, 'src'));
    symlinkSync('/etc/passwd', join(root, 'src', 'out'));
    symlinkSync('../src', join(root, 'src', 'in'));
    env = makeVfsEnv(new LocalBackend(root));
    const a = env.session(alice);
    await expectCode(a.symlink('s', '/etc/passwd', '/l1'), 'EACCES');
    await expectCode(a.symlink('s', '../../x', '/src/l2'), 'EACCES');
    expect((await a.symlink('s', 'in', '/src/l3')).type).toBe('symlink');
    const errors = await a.copy('s', '/src', '/copy');
    expect(errors.map((e) => [e.path, e.error.code])).toEqual([['/src/out', 'EACCES']]);
    expect(await a.readlink('s', '/copy/in')).toBe('../src');
    // Existing links are served and renamed as they are.
    expect(await a.readlink('s', '/src/out')).toBe('/etc/passwd');
    await a.rename('s', '/src/out', '/src/out2');
    await env.destroy();

    env = makeVfsEnv(new LocalBackend(root), { share: { symlinks: 'keep' } });
    const k = env.session(alice);
    expect((await k.symlink('s', '/etc/passwd', '/l1')).type).toBe('symlink');
    expect(await k.copy('s', '/src', '/copy2')).toEqual([]);
    expect(await k.readlink('s', '/copy2/out2')).toBe('/etc/passwd');
  });
});
