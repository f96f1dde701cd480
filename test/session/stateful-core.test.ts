/**
 * The core the stateful protocols translate (issue 9): what the NFS and SMB servers had to work
 * around before. A lock conflict names its holder; a lock test by id takes nothing; an open is
 * narrowed in place in the share-mode table; an open says whether it created its file; a file's
 * writes through any handle are flushed by id; xattrs by id; and the by-id operations besides
 * getattr find a hard-linked file whose first name was removed outside Portico.
 */
import { linkSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { LockConflictError } from '../../src/locks/lock-manager.ts';
import { SHARE_ALL } from '../../src/locks/share-modes.ts';
import { alice, bob, makeVfsEnv, RO, RW, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from '../conformance/vfs-conformance.ts';

let env: VfsEnv | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await env?.destroy();
  env = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function memory(objectStore = false): VfsEnv {
  env = makeVfsEnv(new MemoryBackend(objectStore ? { capabilities: MEMORY_OBJECTSTORE_CAPABILITIES } : {}));
  return env;
}

describe('lock conflicts and lock tests', () => {
  it('a refused lock names the lock in its way: range, kind, owner and the holder\'s info', async () => {
    const e = memory();
    const s1 = e.session(alice, 'nfs');
    const s2 = e.session(bob, 'nfs');
    await writeFile(s1, '/f', 'x'.repeat(100));
    const h1 = await s1.open('s', '/f', { access: RW, owner: 'a' });
    const h2 = await s2.open('s', '/f', { access: RW, owner: 'b' });
    await s1.lockHandle(h1, { kind: 'exclusive', style: 'posix', range: { start: 10n, end: 20n }, ownerId: 'lo1', info: { tag: 'alice-lo1' } });
    const err = await s2.lockHandle(h2, { kind: 'shared', style: 'posix', range: { start: 0n, end: 100n }, ownerId: 'lo2' }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(LockConflictError);
    const holder = (err as LockConflictError).holder;
    expect(holder.range).toEqual({ start: 10n, end: 20n });
    expect(holder.kind).toBe('exclusive');
    expect(holder.owner.principal).toBe('alice');
    expect(holder.owner.id).toBe(`${s1.id}:lo1`);
    expect(holder.info).toEqual({ tag: 'alice-lo1' });
    expect((err as LockConflictError).code).toBe('ELOCKED');
  });

  it('testLock by id finds the holder without taking anything; the tester\'s own locks are no conflict', async () => {
    const e = memory();
    const s1 = e.session(alice, 'nfs');
    const s2 = e.session(bob, 'nfs');
    await writeFile(s1, '/f', 'data');
    const id = (await s1.getattr('s', '/f')).id;
    const h1 = await s1.open('s', '/f', { access: RW, owner: 'a' });
    await s1.lockHandle(h1, { kind: 'shared', style: 'posix', range: { start: 0n, end: 10n }, ownerId: 'lo1' });
    const owners = s2.state.lockOwners.size;
    const found = await s2.testLock('s', id, { kind: 'exclusive', range: { start: 5n, end: 6n }, ownerId: 'lo2' });
    expect(found?.range).toEqual({ start: 0n, end: 10n });
    expect(found?.kind).toBe('shared');
    expect(found?.owner.principal).toBe('alice');
    expect(await s2.testLock('s', id, { kind: 'shared', range: { start: 5n, end: 6n }, ownerId: 'lo2' })).toBeUndefined();
    expect(await s2.testLock('s', id, { kind: 'exclusive', range: { start: 10n, end: 20n }, ownerId: 'lo2' })).toBeUndefined();
    expect(await s1.testLock('s', id, { kind: 'exclusive', range: { start: 0n, end: 10n }, ownerId: 'lo1' })).toBeUndefined();
    expect(s2.state.lockOwners.size).toBe(owners);
    expect(e.vfs.locks.size).toBe(1);
  });
});

describe('open downgrade in place', () => {
  it('narrows access and deny in the share-mode table: an open refused before comes in, the handle stays', async () => {
    const e = memory();
    const s1 = e.session(alice, 'nfs');
    const s2 = e.session(bob, 'nfs');
    await writeFile(s1, '/f', 'abc');
    const denyWrite = { read: true, write: false, delete: true };
    const h = await s1.open('s', '/f', { access: RW, share: denyWrite, owner: 'a' });
    await expectCode(s2.open('s', '/f', { access: RW, owner: 'b' }), 'ESHARING');
    await s1.write(h, 3, Buffer.from('def'));
    await s1.downgrade(h, { access: RO, share: SHARE_ALL });
    expect(h.closed).toBe(false);
    const opens = e.vfs.shareModes.opensOn(h.fileId);
    expect(opens.map((o) => [o.access.write, o.share.write])).toEqual([[false, true]]);
    const h2 = await s2.open('s', '/f', { access: RW, owner: 'b' });
    expect((await s1.read(h, 0, 10)).toString()).toBe('abcdef');
    await expectCode(s1.write(h, 0, Buffer.from('x')), 'EBADF');
    await expectCode(s1.downgrade(h, { access: RW, share: SHARE_ALL }), 'EINVAL');
    await expectCode(s1.downgrade(h, { access: RO, share: denyWrite }), 'EINVAL');
    await s2.close(h2);
    await s1.close(h);
  });

  it('dropping write flushes what was written (object store: published before the handle closes)', async () => {
    const e = memory(true);
    const s1 = e.session(alice, 'nfs');
    await writeFile(s1, '/f', 'old');
    const h = await s1.open('s', '/f', { access: RW, owner: 'a' });
    await s1.write(h, 0, Buffer.from('new'));
    await s1.downgrade(h, { access: RO, share: SHARE_ALL });
    expect((await readFile(e.session(bob, 'nfs'), '/f')).toString()).toBe('new');
    await s1.close(h);
  });
});

describe('open results and flushes', () => {
  it('an open says whether it created its file', async () => {
    const e = memory();
    const s = e.session(alice, 'nfs');
    const root = (await s.getattr('s', '/')).id;
    const h1 = await s.openIn('s', root, 'n', { access: RW, disposition: 'openOrCreate', owner: 'a' });
    const h2 = await s.openIn('s', root, 'n', { access: RW, disposition: 'openOrCreate', owner: 'a' });
    const h3 = await s.openIn('s', root, 'n', { access: RW, disposition: 'createOrTruncate', owner: 'a' });
    expect([h1.created, h2.created, h3.created]).toEqual([true, false, false]);
    for (const h of [h1, h2, h3]) await s.close(h);
  });

  it('flushFile by id makes every handle\'s writes durable, whoever wrote them (object store)', async () => {
    const mem = new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES });
    env = makeVfsEnv(mem);
    const e = env;
    const s1 = e.session(alice, 'nfs');
    const s2 = e.session(bob, 'nfs');
    await writeFile(s1, '/f', 'old');
    const id = (await s1.getattr('s', '/f')).id;
    const h = await s1.open('s', '/f', { access: RW, owner: 'a' });
    await s1.write(h, 0, Buffer.from('new'));
    // Readers on the gateway see the staged bytes at once; the store has them only once flushed.
    expect((await readFile(s2, '/f')).toString()).toBe('new');
    expect((await mem.read('/f', 0, 10)).toString()).toBe('old');
    expect(await s2.flushFile('s', id)).toBe(1);
    expect((await mem.read('/f', 0, 10)).toString()).toBe('new');
    await s1.close(h);
  });
});

describe('xattrs by id', () => {
  it('set, get, list and remove by file id', async () => {
    const e = memory();
    const s = e.session(alice, 'nfs');
    await writeFile(s, '/f', 'x');
    const id = (await s.getattr('s', '/f')).id;
    await s.setXattrById('s', id, 'color', Buffer.from('blue'));
    expect(Buffer.from(await s.getXattrById('s', id, 'color')).toString()).toBe('blue');
    expect(Buffer.from(await s.getXattr('s', '/f', 'color')).toString()).toBe('blue');
    expect((await s.listXattrsById('s', id)).map((x) => x.name)).toEqual(['color']);
    await s.removeXattrById('s', id, 'color');
    expect(await s.listXattrsById('s', id)).toEqual([]);
  });
});

describe('hard links: by-id operations after the first name was removed outside Portico', () => {
  it('openById, setattrById and the xattrs by id find the file under its other name', async () => {
    const root = mkdtempSync(join(tmpdir(), 'portico-core9-'));
    dirs.push(root);
    env = makeVfsEnv(new LocalBackend(root));
    const s = env.session();
    await writeFile(s, '/a', 'linked');
    linkSync(join(root, 'a'), join(root, 'b'));
    const id = (await s.getattr('s', '/a')).id;
    expect((await s.getattr('s', '/b')).id).toBe(id);
    await s.setXattr('s', '/a', 'k', Buffer.from('v'));
    unlinkSync(join(root, 'a'));
    env.vfs.invalidate('s', '/');
    const h = await s.openById('s', id, { access: RO, owner: 'r' });
    expect((await s.read(h, 0, 100)).toString()).toBe('linked');
    expect(h.path).toBe('/b');
    await s.close(h);
    expect(Buffer.from(await s.getXattrById('s', id, 'k')).toString()).toBe('v');
    expect((await s.setattrById('s', id, { mode: 0o600 })).id).toBe(id);
    expect(await s.pathOf('s', id)).toBe('/b');
  });
});
