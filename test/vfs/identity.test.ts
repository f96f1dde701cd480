/**
 * File identity on a local disk (issue 9, "Identity"): an id names one file, never a name that is
 * reused. A file replaced outside Portico (deleted and created again, or saved by an editor through
 * a rename) gets a new id; the old id is stale and the new file does not inherit the old one's
 * properties. A change in place outside Portico keeps the id and advances the change attribute; an
 * atomic content replace through Portico (a new inode) keeps the id. Across a restart too.
 */
import { appendFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv, useVfsEnvs } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from '../conformance/vfs-conformance.ts';

const PROP = [{ ns: 'urn:x', name: 'tag', value: Buffer.from('kept') }];
const { local, track } = useVfsEnvs('portico-ident-');

describe('identity on a local disk', () => {
  it('a file deleted and created again outside Portico gets a new id; the old id is stale, its properties stay behind', async () => {
    const { root, env: e } = local();
    const s = e.session();
    await writeFile(s, '/doc.txt', 'v1');
    const before = await s.getattr('s', '/doc.txt');
    await s.setProps('s', '/doc.txt', PROP);
    unlinkSync(join(root, 'doc.txt'));
    writeFileSync(join(root, 'doc.txt'), 'v2 from outside');
    const after = await s.getattr('s', '/doc.txt');
    expect(after.id).not.toBe(before.id);
    await expectCode(s.pathOf('s', before.id), 'ESTALE');
    expect(await s.getProps('s', '/doc.txt')).toEqual([]);
    expect((await readFile(s, '/doc.txt')).toString()).toBe('v2 from outside');
  });

  it('an editor\'s save by rename over the file is a new file; a listing notices it too', async () => {
    const { root, env: e } = local();
    const s = e.session();
    await writeFile(s, '/a.txt', 'v1');
    const before = (await s.readdir('s', '/')).entries.find((x) => x.name === 'a.txt')!;
    writeFileSync(join(root, '.a.txt.swp'), 'v2');
    renameSync(join(root, '.a.txt.swp'), join(root, 'a.txt'));
    const listed = (await s.readdir('s', '/')).entries.find((x) => x.name === 'a.txt')!;
    expect(listed.attr.id).not.toBe(before.attr.id);
    expect(listed.cookie).toBe(listed.attr.id);
    await expectCode(s.pathOf('s', before.attr.id), 'ESTALE');
  });

  it('a change in place outside Portico keeps the id and advances the change attribute', async () => {
    const { root, env: e } = local();
    const s = e.session();
    await writeFile(s, '/log.txt', 'one');
    const before = await s.getattr('s', '/log.txt');
    await new Promise((r) => setTimeout(r, 20)); // past the file system's timestamp granularity
    appendFileSync(join(root, 'log.txt'), ' two');
    const after = await s.getattr('s', '/log.txt');
    expect(after.id).toBe(before.id);
    expect(after.change).toBe(before.change + 1n);
    expect(after.size).toBe(7);
  });

  it('an atomic content replace through Portico (a new inode) keeps the id, the properties and advances the change once', async () => {
    const { env: e } = local();
    const s = e.session();
    await writeFile(s, '/put.bin', 'old');
    const before = await s.getattr('s', '/put.bin');
    await s.setProps('s', '/put.bin', PROP);
    const withProps = await s.getattr('s', '/put.bin');
    const w = await s.replaceContent('s', '/put.bin');
    await w.write(Buffer.from('new content'));
    const committed = await w.commit();
    expect(committed.id).toBe(before.id);
    const after = await s.getattr('s', '/put.bin');
    expect(after.id).toBe(before.id);
    expect(after.change).toBe(committed.change);
    expect(after.change > withProps.change).toBe(true);
    expect((await s.getProps('s', '/put.bin')).map((p) => p.name)).toEqual(['tag']);
  });

  it('a file replaced outside while Portico was down is a new file after the restart; an unchanged one keeps id and change', async () => {
    const { root, env: e } = local();
    const s = e.session();
    await writeFile(s, '/same', 'x');
    await writeFile(s, '/swapped', 'x');
    const same = await s.getattr('s', '/same');
    const swapped = await s.getattr('s', '/swapped');
    await e.stop();
    unlinkSync(join(root, 'swapped'));
    writeFileSync(join(root, 'swapped'), 'y');
    const s2 = track(makeVfsEnv(new LocalBackend(root), { stateDir: e.stateDir })).session();
    const same2 = await s2.getattr('s', '/same');
    expect([same2.id, same2.change]).toEqual([same.id, same.change]);
    expect((await s2.getattr('s', '/swapped')).id).not.toBe(swapped.id);
  });
});

describe('a file created through Portico, by id', () => {
  it('is found by its id with no store query; after a rename, a directory rename or a removal the id follows or is stale', async () => {
    const { env: e } = local();
    const s = e.session();
    await s.mkdir('s', '/d');
    await writeFile(s, '/d/new.txt', 'made');
    const id = (await s.getattr('s', '/d/new.txt')).id;
    // Past the group commit, so a store lookup would be a SELECT (not a pending row).
    e.store.commitGroup();
    const getNode = vi.spyOn(e.store, 'getNode');
    try {
      expect((await s.getattrById('s', id)).size).toBe(4);
      expect(await s.pathOf('s', id)).toBe('/d/new.txt');
      expect(getNode).not.toHaveBeenCalled();
    } finally {
      getNode.mockRestore();
    }
    await s.rename('s', '/d/new.txt', '/d/moved.txt');
    expect(await s.pathOf('s', id)).toBe('/d/moved.txt');
    await s.rename('s', '/d', '/e');
    expect(await s.pathOf('s', id)).toBe('/e/moved.txt');
    expect((await s.getattrById('s', id)).size).toBe(4);
    await writeFile(s, '/e/other.txt', 'x');
    const other = (await s.getattr('s', '/e/other.txt')).id;
    await s.unlink('s', '/e/other.txt');
    await expectCode(s.pathOf('s', other), 'ESTALE');
    await expectCode(s.getattrById('s', other), 'ESTALE');
  });
});
