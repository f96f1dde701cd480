/**
 * Hard links on a local disk (issue 9, "Identity"): a file with several names has one id, so an NFS
 * fileid or an SMB FileId is the same through every name. The first known name is the file's own
 * row; the others are link rows keyed by native identity (docs/ARCHITECTURE.md "Hard links").
 * Covered: one id by path and by id through both names, a readdir listing both names with distinct
 * cookies that resume, unlinking either name (the other keeps the id, handles and properties),
 * renaming one name, a link made outside Portico found at lookup and at readdir, a restart, and a
 * write through one name seen through the other.
 */
import { linkSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from '../conformance/vfs-conformance.ts';
import type { Session } from '../../src/session/session.ts';

const PROP = [{ ns: 'urn:x', name: 'tag', value: Buffer.from('kept') }];
const RW = { read: true, write: true, delete: false };
let env: VfsEnv | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await env?.destroy();
  env = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function local(): { root: string; env: VfsEnv; s: Session } {
  const root = mkdtempSync(join(tmpdir(), 'portico-links-'));
  dirs.push(root);
  env = makeVfsEnv(new LocalBackend(root));
  return { root, env, s: env.session() };
}

async function rootId(s: Session): Promise<bigint> {
  return (await s.getattr('s', '/')).id;
}

describe('hard links on a local disk: one id per file', () => {
  it('both names give the same id, nlink and change attribute, by path and by id', async () => {
    const { s } = local();
    await writeFile(s, '/a.txt', 'shared');
    const a0 = await s.getattr('s', '/a.txt');
    const made = await s.link('s', '/a.txt', '/b.txt');
    expect(made.id).toBe(a0.id);
    const a = await s.getattr('s', '/a.txt');
    const b = await s.getattr('s', '/b.txt');
    expect(b.id).toBe(a.id);
    expect([b.nlink, a.nlink]).toEqual([2, 2]);
    expect(b.change).toBe(a.change);
    // The link changed the file (its link count): its change attribute advanced.
    expect(a.change > a0.change).toBe(true);
    const dir = await rootId(s);
    const la = await s.lookup('s', dir, 'a.txt');
    const lb = await s.lookup('s', dir, 'b.txt');
    expect([la.id, lb.id]).toEqual([a.id, a.id]);
    const byId = await s.getattrById('s', a.id);
    expect([byId.id, byId.nlink, byId.change]).toEqual([a.id, 2, a.change]);
  });

  it('a link made by id (linkIn) records the name at once; properties are the file\'s through either name', async () => {
    const { s } = local();
    await s.mkdir('s', '/d1');
    await s.mkdir('s', '/d2');
    await writeFile(s, '/d1/f', 'x');
    const f = await s.getattr('s', '/d1/f');
    const d2 = await s.getattr('s', '/d2');
    await s.setProps('s', '/d1/f', PROP);
    const g = await s.linkIn('s', f.id, d2.id, 'g');
    expect(g.id).toBe(f.id);
    expect((await s.lookup('s', d2.id, 'g')).id).toBe(f.id);
    expect((await s.getProps('s', '/d2/g')).map((p) => p.name)).toEqual(['tag']);
  });

  it('a write through one name is seen through the other at once (attributes cached by id)', async () => {
    const { s } = local();
    await writeFile(s, '/a', 'one');
    await s.link('s', '/a', '/b');
    const dir = await rootId(s);
    const before = await s.lookup('s', dir, 'b');
    await s.getattrById('s', before.id);
    const h = await s.open('s', '/a', { access: RW, owner: 'w' });
    await s.write(h, 3, Buffer.from(' two'));
    await s.close(h);
    const after = await s.lookup('s', dir, 'b');
    expect(after.size).toBe(7);
    expect(after.change > before.change).toBe(true);
    expect((await s.getattrById('s', before.id)).size).toBe(7);
    expect((await readFile(s, '/b')).toString()).toBe('one two');
  });

  it('readdir lists both names with distinct cookies that resume where they should', async () => {
    const { s } = local();
    await writeFile(s, '/a', '1');
    await writeFile(s, '/c', '3');
    await writeFile(s, '/e', '5');
    await s.link('s', '/a', '/b');
    await s.link('s', '/c', '/d');
    const all = (await s.readdir('s', '/')).entries;
    expect(all.map((e) => e.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const [ea, eb, ec, ed] = all;
    expect(eb!.attr.id).toBe(ea!.attr.id);
    expect(ed!.attr.id).toBe(ec!.attr.id);
    expect(new Set(all.map((e) => e.cookie)).size).toBe(5);
    for (const [i, e] of all.entries()) {
      const rest = (await s.readdir('s', '/', { cookie: e.cookie })).entries.map((x) => x.name);
      expect(rest).toEqual(all.slice(i + 1).map((x) => x.name));
    }
    // A second listing gives the same cookies.
    expect((await s.readdir('s', '/')).entries.map((e) => e.cookie)).toEqual(all.map((e) => e.cookie));
  });

  it('unlinking the other name keeps the file, its id, properties and open handles', async () => {
    const { s } = local();
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/b');
    await s.setProps('s', '/a', PROP);
    const id = (await s.getattr('s', '/a')).id;
    const h = await s.open('s', '/a', { access: RW, owner: 'w' });
    await s.unlink('s', '/b');
    await expectCode(s.getattr('s', '/b'), 'ENOENT');
    const a = await s.getattr('s', '/a');
    expect([a.id, a.nlink]).toEqual([id, 1]);
    expect((await s.getattrById('s', id)).id).toBe(id);
    await s.write(h, 0, Buffer.from('DATA'));
    await s.close(h);
    expect((await readFile(s, '/a')).toString()).toBe('DATA');
    expect((await s.getProps('s', '/a')).map((p) => p.name)).toEqual(['tag']);
    expect((await s.readdir('s', '/')).entries.map((e) => e.name)).toEqual(['a']);
  });

  it('unlinking the first name promotes the other: same id, by path and by id', async () => {
    const { s } = local();
    await s.mkdir('s', '/sub');
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/sub/b');
    await s.setProps('s', '/a', PROP);
    const id = (await s.getattr('s', '/a')).id;
    await s.unlink('s', '/a');
    expect(await s.pathOf('s', id)).toBe('/sub/b');
    const b = await s.getattrById('s', id);
    expect([b.id, b.nlink]).toEqual([id, 1]);
    expect((await s.getattr('s', '/sub/b')).id).toBe(id);
    expect((await s.getProps('s', '/sub/b')).map((p) => p.name)).toEqual(['tag']);
    // The name can be used again: a new file, a new id.
    await writeFile(s, '/a', 'new');
    expect((await s.getattr('s', '/a')).id).not.toBe(id);
    expect((await s.getattr('s', '/sub/b')).id).toBe(id);
  });

  it('deleting the last name makes the id stale; a new file at either name is a new id', async () => {
    const { s } = local();
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/b');
    const id = (await s.getattr('s', '/a')).id;
    await s.unlink('s', '/a');
    await s.unlink('s', '/b');
    await expectCode(s.getattrById('s', id), 'ESTALE');
    await writeFile(s, '/b', 'new');
    expect((await s.getattr('s', '/b')).id).not.toBe(id);
    await expectCode(s.getattrById('s', id), 'ESTALE');
  });

  it('renaming a link moves only that name; renaming one name onto another of the same file does nothing', async () => {
    const { s } = local();
    await s.mkdir('s', '/d');
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/b');
    const id = (await s.getattr('s', '/a')).id;
    await s.rename('s', '/b', '/d/c');
    expect((await s.getattr('s', '/d/c')).id).toBe(id);
    expect((await s.getattr('s', '/a')).id).toBe(id);
    expect(await s.pathOf('s', id)).toBe('/a');
    expect((await s.readdir('s', '/')).entries.map((e) => e.name)).toEqual(['a', 'd']);
    const d = (await s.readdir('s', '/d')).entries;
    expect(d.map((e) => [e.name, e.attr.id])).toEqual([['c', id]]);
    // The first name moves too; the other stays.
    await s.rename('s', '/a', '/d/a2');
    expect(await s.pathOf('s', id)).toBe('/d/a2');
    expect((await s.getattr('s', '/d/c')).id).toBe(id);
    await s.rename('s', '/d/a2', '/d/c');
    expect((await s.readdir('s', '/d')).entries.map((e) => e.name)).toEqual(['a2', 'c']);
    // A rename over another name of the same file replaced nothing: a real replace still does.
    await writeFile(s, '/other', 'o');
    await s.rename('s', '/other', '/d/c');
    expect((await s.getattr('s', '/d/a2')).id).toBe(id);
    expect((await s.getattr('s', '/d/c')).id).not.toBe(id);
    expect((await s.getattr('s', '/d/a2')).nlink).toBe(1);
  });

  it('a link made outside Portico is found at lookup: the new name gives the known id', async () => {
    const { root, s } = local();
    await writeFile(s, '/a', 'data');
    const a = await s.getattr('s', '/a');
    linkSync(join(root, 'a'), join(root, 'b'));
    const dir = await rootId(s);
    const b = await s.lookup('s', dir, 'b');
    expect(b.id).toBe(a.id);
    expect(b.nlink).toBe(2);
    expect((await s.getattr('s', '/a')).id).toBe(a.id);
  });

  it('a link made outside Portico into another directory, listed first, merges into the older id', async () => {
    const { root, s } = local();
    await s.mkdir('s', '/x');
    await writeFile(s, '/a', 'data');
    const a = await s.getattr('s', '/a');
    linkSync(join(root, 'a'), join(root, 'x', 'b'));
    const listed = (await s.readdir('s', '/x')).entries;
    // The name in the other directory had no way to know the file yet: the next look at the first
    // name merges them into the older id, and every name gives it from then on.
    expect((await s.getattr('s', '/a')).id).toBe(a.id);
    expect((await s.getattr('s', '/x/b')).id).toBe(a.id);
    const again = (await s.readdir('s', '/x')).entries;
    expect(again.map((e) => [e.name, e.attr.id])).toEqual([['b', a.id]]);
    expect(listed.map((e) => e.name)).toEqual(['b']);
  });

  it('a link made outside Portico is found at readdir: names in one directory share the id', async () => {
    const { root, s } = local();
    writeFileSync(join(root, 'p'), 'data');
    linkSync(join(root, 'p'), join(root, 'q'));
    const entries = (await s.readdir('s', '/')).entries;
    expect(entries.map((e) => e.name)).toEqual(['p', 'q']);
    expect(entries[1]!.attr.id).toBe(entries[0]!.attr.id);
    expect(entries[1]!.cookie).not.toBe(entries[0]!.cookie);
  });

  it('the first name removed outside Portico: the id lives on under the other name', async () => {
    const { root, s } = local();
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/b');
    const id = (await s.getattr('s', '/a')).id;
    unlinkSync(join(root, 'a'));
    env!.vfs.invalidate('s', '/');
    const b = await s.getattrById('s', id);
    expect([b.id, b.nlink]).toEqual([id, 1]);
    expect(await s.pathOf('s', id)).toBe('/b');
    expect((await s.getattr('s', '/b')).id).toBe(id);
    await expectCode(s.getattr('s', '/a'), 'ENOENT');
  });

  it('a directory removed outside Portico with a name of a linked file in it: the file keeps its id under its other name', async () => {
    const { root, env: e, s } = local();
    await s.mkdir('s', '/d');
    await writeFile(s, '/d/f', 'data');
    await s.link('s', '/d/f', '/g');
    await s.setProps('s', '/d/f', PROP);
    const id = (await s.getattr('s', '/d/f')).id;
    rmSync(join(root, 'd'), { recursive: true });
    // What a change watch reports (src/session/watch.ts): the directory is gone.
    await e.vfs.noticeOutside('s', '/d', () => false);
    expect(await s.pathOf('s', id)).toBe('/g');
    const g = await s.getattr('s', '/g');
    expect([g.id, g.nlink]).toEqual([id, 1]);
    expect((await s.getProps('s', '/g')).map((x) => x.name)).toEqual(['tag']);
  });

  it('a whole-content replace through one name (a new inode) parts the names: the name written keeps the id', async () => {
    const { s } = local();
    await writeFile(s, '/a', 'one');
    await s.link('s', '/a', '/b');
    const id = (await s.getattr('s', '/a')).id;
    const w = await s.replaceContent('s', '/a', { owner: 'w' });
    await w.write(Buffer.from('two two'));
    await w.commit();
    const b = await s.getattr('s', '/b');
    const a = await s.getattr('s', '/a');
    expect([a.id, a.nlink, a.size]).toEqual([id, 1, 7]);
    expect(b.id).not.toBe(id);
    expect([b.nlink, b.size]).toEqual([1, 3]);
    expect(await s.pathOf('s', id)).toBe('/a');
  });

  it('a restart keeps the one id for every name (links through Portico and outside)', async () => {
    const { root, env: e, s } = local();
    await s.mkdir('s', '/d');
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/d/b');
    writeFileSync(join(root, 'p'), 'p');
    linkSync(join(root, 'p'), join(root, 'q'));
    const id = (await s.getattr('s', '/a')).id;
    const p = (await s.getattr('s', '/p')).id;
    expect((await s.getattr('s', '/q')).id).toBe(p);
    const cookies = (await s.readdir('s', '/')).entries.map((x) => [x.name, x.cookie]);
    await e.stop();
    env = makeVfsEnv(new LocalBackend(root), { stateDir: e.stateDir });
    const s2 = env.session();
    expect((await s2.getattr('s', '/d/b')).id).toBe(id);
    expect((await s2.getattr('s', '/a')).id).toBe(id);
    expect((await s2.getattr('s', '/q')).id).toBe(p);
    expect((await s2.getattrById('s', id)).nlink).toBe(2);
    expect((await s2.readdir('s', '/')).entries.map((x) => [x.name, x.cookie])).toEqual(cookies);
    rmSync(e.stateDir, { recursive: true, force: true });
  });

  it('files with one name cost no store query on a warm lookup, getattr or listing, with links elsewhere in the store', async () => {
    const { env: e, s } = local();
    await writeFile(s, '/a', 'linked');
    await s.link('s', '/a', '/b');
    await s.mkdir('s', '/plain');
    for (let i = 0; i < 20; i++) await writeFile(s, `/plain/f${i}`, 'x');
    const dir = (await s.getattr('s', '/plain')).id;
    const warm = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) await s.getattr('s', `/plain/f${i}`);
      await s.readdir('s', '/plain');
      await s.lookup('s', dir, 'f3');
    };
    await warm();
    // Rows are cached now: a getattr by path (a stat each time) and a listing answer from them,
    // with no query of the link tables or the node rows.
    const store = e.store;
    const spies = (['lookupChild', 'lookupLink', 'linkedChild', 'getNode', 'ensureChild', 'linksOf', 'getLink'] as const).map((m) => vi.spyOn(store, m));
    for (let i = 0; i < 20; i++) await s.getattr('s', `/plain/f${i}`);
    await s.readdir('s', '/plain');
    await s.lookup('s', dir, 'f3');
    expect(spies.map((x) => [x.getMockName(), x.mock.calls.length]).filter(([, n]) => n !== 0)).toEqual([]);
    for (const x of spies) x.mockRestore();
  });

  it('a name of a linked file replaced outside Portico is a new file; the other name keeps the id', async () => {
    const { root, s } = local();
    await writeFile(s, '/a', 'data');
    await s.link('s', '/a', '/b');
    const id = (await s.getattr('s', '/a')).id;
    await s.setProps('s', '/a', PROP);
    unlinkSync(join(root, 'a'));
    writeFileSync(join(root, 'a'), 'new');
    const a = await s.getattr('s', '/a');
    expect(a.id).not.toBe(id);
    expect(await s.getProps('s', '/a')).toEqual([]);
    const b = await s.getattr('s', '/b');
    expect(b.id).toBe(id);
    expect((await s.getProps('s', '/b')).map((x) => x.name)).toEqual(['tag']);
    expect(await s.pathOf('s', id)).toBe('/b');
  });
});
