/**
 * Exchange of two names (renameat2 RENAME_EXCHANGE; Session.rename with `exchange`, issue 13) on
 * backends that swap atomically (memory; local with its native helper, backends/local/native) and
 * one that cannot (memory:objectstore: ENOTSUP, nothing changes). Covered: contents, ids,
 * properties and open handles follow the files; a file and a directory swap across directories and
 * the listings, lookups by id and change values show it; errors (a missing name, a directory with a
 * name inside it, the root); the ACL (write at both names, path rules), change watches that follow
 * their directories; pending async uploads that go to the file's new name.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { localNativeAvailability } from '../../backends/local/native.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import type { WatchEvent } from '../../src/session/watch.ts';
import type { Session } from '../../src/session/session.ts';
import { makeVfsEnv, alice, bob, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, readFile, writeFile } from '../conformance/vfs-conformance.ts';
import { gate, until } from '../vfs-writeback/gate.ts';

let env: VfsEnv | undefined;
const dirs: string[] = [];
const stores: MetadataStore[] = [];
afterEach(async () => {
  await env?.destroy();
  env = undefined;
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const localDir = (): string => {
  const root = mkdtempSync(join(tmpdir(), 'portico-exchange-'));
  dirs.push(root);
  return root;
};
const native = localNativeAvailability();
const backends: Array<[string, () => Backend]> = [['memory', () => new MemoryBackend()]];
if (native.available) backends.push(['local', () => new LocalBackend(localDir())]);
else console.warn(`exchange on the local backend not tested: ${native.reason} (enable: ${native.enable})`);

async function names(s: Session, dir: string): Promise<string[]> {
  return (await s.readdir('s', dir)).entries.map((e) => `${e.name}:${e.attr.type}`).sort();
}

describe.each(backends)('exchange of two names on the %s backend', (_name, make) => {
  it('two files swap: contents, ids, properties and open handles follow the files; change values advance', async () => {
    env = makeVfsEnv(make());
    const s = env.session(alice);
    await writeFile(s, '/a', 'alpha');
    await writeFile(s, '/b', 'beta!');
    await s.setXattr('s', '/a', 'tag', Buffer.from('of-a'));
    const a0 = await s.getattr('s', '/a');
    const b0 = await s.getattr('s', '/b');
    // Listed first, so the listing cache holds the names before the swap.
    expect(await names(s, '/')).toEqual(['a:file', 'b:file']);
    const h = await s.open('s', '/a', { access: RW, owner: 'o' });
    await s.rename('s', '/a', '/b', { exchange: true });
    expect((await readFile(s, '/a')).toString()).toBe('beta!');
    expect((await readFile(s, '/b')).toString()).toBe('alpha');
    const a1 = await s.getattr('s', '/a');
    const b1 = await s.getattr('s', '/b');
    expect([a1.id, b1.id]).toEqual([b0.id, a0.id]);
    expect(b1.change > a0.change && a1.change > b0.change).toBe(true);
    expect(Buffer.from(await s.getXattr('s', '/b', 'tag')).toString()).toBe('of-a');
    await expect(s.getXattr('s', '/a', 'tag')).rejects.toThrow();
    expect(await names(s, '/')).toEqual(['a:file', 'b:file']);
    // The handle opened at /a is the file now named /b.
    expect(h.path).toBe('/b');
    await s.write(h, 0, Buffer.from('ALPHA'));
    await s.close(h);
    expect((await readFile(s, '/b')).toString()).toBe('ALPHA');
    expect((await readFile(s, '/a')).toString()).toBe('beta!');
    // By id: each id names its file's new path.
    expect((await s.getattrById('s', a0.id)).size).toBe(5);
    const dir = (await s.getattr('s', '/')).id;
    expect((await s.lookup('s', dir, 'b')).id).toBe(a0.id);
  });

  it('a directory and a file in different directories swap; listings, lookups and the tree below follow', async () => {
    env = makeVfsEnv(make());
    const s = env.session(alice);
    await s.mkdir('s', '/x');
    await s.mkdir('s', '/x/d');
    await writeFile(s, '/x/d/inner', 'in');
    await s.mkdir('s', '/y');
    await writeFile(s, '/y/f', 'file');
    const d0 = await s.getattr('s', '/x/d');
    const inner0 = await s.getattr('s', '/x/d/inner');
    const f0 = await s.getattr('s', '/y/f');
    expect(await names(s, '/x')).toEqual(['d:dir']);
    expect(await names(s, '/y')).toEqual(['f:file']);
    await s.renameIn('s', (await s.getattr('s', '/x')).id, 'd', (await s.getattr('s', '/y')).id, 'f', { exchange: true });
    expect(await names(s, '/x')).toEqual(['d:file']);
    expect(await names(s, '/y')).toEqual(['f:dir']);
    expect((await s.getattr('s', '/y/f')).id).toBe(d0.id);
    expect((await s.getattr('s', '/x/d')).id).toBe(f0.id);
    expect((await s.getattr('s', '/y/f/inner')).id).toBe(inner0.id);
    expect((await readFile(s, '/y/f/inner')).toString()).toBe('in');
    expect((await readFile(s, '/x/d')).toString()).toBe('file');
    await expectCode(s.getattr('s', '/x/d/inner'), 'ENOTDIR');
  });

  it('refuses a missing name (ENOENT), a directory with a name inside it (EINVAL) and the root (EBUSY); nothing changes', async () => {
    env = makeVfsEnv(make());
    const s = env.session(alice);
    await s.mkdir('s', '/d');
    await s.mkdir('s', '/d/e');
    await writeFile(s, '/f', 'f');
    await expectCode(s.rename('s', '/f', '/missing', { exchange: true }), 'ENOENT');
    await expectCode(s.rename('s', '/missing', '/f', { exchange: true }), 'ENOENT');
    await expectCode(s.rename('s', '/d', '/d/e', { exchange: true }), 'EINVAL');
    await expectCode(s.rename('s', '/d/e', '/d', { exchange: true }), 'EINVAL');
    await expectCode(s.rename('s', '/', '/f', { exchange: true }), 'EBUSY');
    expect(await names(s, '/')).toEqual(['d:dir', 'f:file']);
    expect(await names(s, '/d')).toEqual(['e:dir']);
    // A name with itself: nothing to do.
    await s.rename('s', '/f', '/f', { exchange: true });
    expect((await readFile(s, '/f')).toString()).toBe('f');
  });

  it('needs write at both names, and is refused when it would move a path rule', async () => {
    env = makeVfsEnv(make(), {
      share: {
        access: [{ users: ['alice', 'bob'], rights: ['read', 'write'] }],
        rules: [{ path: '/ro', users: ['bob'], deny: ['write'] }, { path: '/ruled/inner', users: ['bob'], deny: ['read'] }],
      },
    });
    const a = env.session(alice);
    const b = env.session(bob);
    await a.mkdir('s', '/ro');
    await writeFile(a, '/ro/f', 'ro');
    await writeFile(a, '/g', 'g');
    await a.mkdir('s', '/ruled');
    await a.mkdir('s', '/plain');
    // bob may rename /g, but not /ro/f: either direction of the swap needs both.
    await expectCode(b.rename('s', '/g', '/ro/f', { exchange: true }), 'EACCES');
    await expectCode(b.rename('s', '/ro/f', '/g', { exchange: true }), 'EACCES');
    // A rule lies below /ruled: moving it either way changes what the rule governs.
    await expectCode(a.rename('s', '/ruled', '/plain', { exchange: true }), 'EACCES');
    await expectCode(a.rename('s', '/plain', '/ruled', { exchange: true }), 'EACCES');
    expect((await readFile(a, '/ro/f')).toString()).toBe('ro');
    await a.rename('s', '/g', '/ro/f', { exchange: true });
    expect((await readFile(a, '/ro/f')).toString()).toBe('g');
  });

  it('is refused by an open that denies delete (ESHARING) and by a token lock on either side (ELOCKED); byte-range locks follow the file', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await writeFile(a, '/x', 'x');
    await writeFile(a, '/y', 'y');
    // An SMB-style open of /y that lets others read and write but not delete or rename it.
    const held = await b.open('s', '/y', { access: RO, share: { read: true, write: true, delete: false }, owner: 'smb' });
    await expectCode(a.rename('s', '/x', '/y', { exchange: true }), 'ESHARING');
    await expectCode(a.rename('s', '/y', '/x', { exchange: true }), 'ESHARING');
    await b.close(held);
    // A WebDAV lock on /x: bob, without its token, may not move it either way.
    await a.lockPath('s', '/x', { kind: 'exclusive', style: 'token' });
    await expectCode(b.rename('s', '/y', '/x', { exchange: true }), 'ELOCKED');
    expect((await readFile(a, '/x')).toString()).toBe('x');
    // A byte-range lock is the file's: after the swap it is on /y, and a write at /x is free.
    await writeFile(a, '/p', 'pppp');
    await writeFile(a, '/q', 'qqqq');
    const locker = await a.open('s', '/p', { access: RW, owner: 'l' });
    await a.lockHandle(locker, { kind: 'exclusive', style: 'windows', range: { start: 0n, end: 4n } });
    await a.rename('s', '/p', '/q', { exchange: true });
    const wq = await b.open('s', '/q', { access: RW, owner: 'w' });
    await expectCode(b.write(wq, 0, Buffer.from('Z')), 'ELOCKED');
    const wp = await b.open('s', '/p', { access: RW, owner: 'w' });
    await b.write(wp, 0, Buffer.from('Z'));
    for (const h of [wq, wp, locker]) await (h === locker ? a : b).close(h);
    expect((await readFile(a, '/p')).toString()).toBe('Zqqq');
  });

  it('change watches follow their directories to the other name', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/p');
    await b.mkdir('s', '/q');
    const wp = await a.watch('s', '/p');
    const wq = await a.watch('s', '/q');
    const root = await a.watch('s', '/');
    await b.rename('s', '/p', '/q', { exchange: true });
    // The directory watched as /p is /q now, and the other way round.
    await writeFile(b, '/q/in-old-p', 'x');
    await writeFile(b, '/p/in-old-q', 'y');
    const take = async (w: typeof wp): Promise<string[]> => {
      const out: WatchEvent[] = [];
      for (let i = 0; i < 50 && !out.some((e) => e.kind === 'create'); i++) {
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), 100);
        if (await w.wait(ac.signal)) out.push(...w.take());
        clearTimeout(t);
      }
      return out.filter((e) => e.kind === 'create').map((e) => (e.kind === 'overflow' ? '' : e.name));
    };
    expect(await take(wp)).toEqual(['in-old-p']);
    expect(await take(wq)).toEqual(['in-old-q']);
    const rootEvents = root.take().map((e) => (e.kind === 'overflow' ? 'overflow' : `${e.kind} ${e.oldName} -> ${e.name}`));
    expect(rootEvents).toEqual(['rename p -> q', 'rename q -> p']);
  });
});

describe('exchange where the backend cannot swap atomically', () => {
  it('local without its native helper: the capability is absent, ENOTSUP, both names keep their files', async () => {
    const b = new LocalBackend(localDir(), { native: null });
    expect(b.capabilities.atomicExchange).toBeUndefined();
    env = makeVfsEnv(b);
    const s = env.session(alice);
    await writeFile(s, '/a', 'alpha');
    await writeFile(s, '/b', 'beta');
    await expectCode(s.rename('s', '/a', '/b', { exchange: true }), 'ENOTSUP');
    expect((await readFile(s, '/a')).toString()).toBe('alpha');
  });

  it('memory:objectstore: ENOTSUP, both names keep their files', async () => {
    env = makeVfsEnv(new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }));
    const s = env.session(alice);
    await writeFile(s, '/a', 'alpha');
    await writeFile(s, '/b', 'beta');
    await expectCode(s.rename('s', '/a', '/b', { exchange: true }), 'ENOTSUP');
    expect((await readFile(s, '/a')).toString()).toBe('alpha');
    expect((await readFile(s, '/b')).toString()).toBe('beta');
  });
});

describe('exchange with async write-back', () => {
  it('a pending upload goes to its file\'s new name, not to the name it was written under', { timeout: 30_000 }, async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'portico-exchange-wb-'));
    dirs.push(stateDir);
    const store = MetadataStore.open(stateDir);
    stores.push(store);
    // Write-back stages files on stores without random writes: a memory store without them that
    // can still exchange names atomically (no real object store can) takes the staging paths.
    const mem = new MemoryBackend({ capabilities: { randomWrites: false } });
    const g = gate(mem);
    const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback') });
    vfs.addVolume('s', buildVolumeStack(g.backend), { writeBack: { mode: 'async', retryBaseMs: 5, retryMaxMs: 40 } });
    await vfs.recoverWriteBack();
    const put = async (path: string, text: string): Promise<void> => {
      const h = await vfs.open('s', path, { access: RW, disposition: 'createOrTruncate', owner: 'w', expect: 'file' });
      await vfs.write(h, 0, Buffer.from(text));
      await vfs.close(h);
    };
    const get = async (path: string): Promise<string> => {
      const h = await vfs.open('s', path, { access: RO, owner: 'r', expect: 'file' });
      try {
        return (await vfs.read(h, 0, 1000)).toString();
      } finally {
        await vfs.close(h);
      }
    };
    const stored = async (path: string): Promise<string> => (await mem.read(path, 0, 1000)).toString();
    await put('/a', 'old a');
    await put('/b', 'old b');
    await until(() => vfs.writeBack.stats().pending === 0, 20_000, 'uploads');
    // Uploads fail (and are retried) until told otherwise: the new content of /a stays pending.
    g.fail('EIO', Infinity);
    await put('/a', 'new a');
    expect(vfs.writeBack.stats().pending).toBe(1);
    expect(await stored('/a')).toBe('old a');
    await vfs.rename('s', '/a', '/b', { exchange: true });
    expect(await get('/b')).toBe('new a');
    expect(await get('/a')).toBe('old b');
    expect(vfs.writeBack.pendingPaths().map((p) => p.path)).toEqual(['/b']);
    g.fail(undefined);
    await until(() => vfs.writeBack.stats().pending === 0, 20_000, 'the upload');
    expect(await stored('/b')).toBe('new a');
    expect(await stored('/a')).toBe('old b');
    for (const h of vfs.openHandles()) await vfs.close(h).catch(() => undefined);
    vfs.locks.close();
  });
});
