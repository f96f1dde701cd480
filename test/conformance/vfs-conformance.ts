/**
 * The VFS conformance suite: written once, run against every backend (memory, memory in
 * object-store mode, local disk; S3 and shard sets join in their own issues). It drives the real
 * VFS + session stack and asserts POSIX-visible behaviour, persistent ids, paging, locks, share
 * modes and rights.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import type { Backend } from '../../src/vfs/backend.ts';
import { isVfsError, type VfsErrorCode } from '../../src/vfs/errors.ts';
import { makeVfsEnv, alice, bob, RW, RO, type VfsEnv } from '../helpers/vfs-env.ts';
import type { Session } from '../../src/session/session.ts';
import { WHOLE_FILE } from '../../src/locks/lock-manager.ts';
import { SHARE_ALL } from '../../src/locks/share-modes.ts';
import { xattrConformance } from '../xattr/xattr-conformance.ts';

export interface BackendFactory {
  name: string;
  /** A fresh, empty backend. */
  create(): Promise<Backend>;
  /** The same storage as `b`, as a new instance would see it after a restart. */
  reopen(b: Backend): Promise<Backend>;
  destroy(b: Backend): Promise<void>;
}

export async function expectCode(p: Promise<unknown>, code: VfsErrorCode): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (isVfsError(e, code)) return;
    throw new Error(`expected ${code}, got ${String((e as Error)?.message ?? e)}`);
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

export async function writeFile(s: Session, path: string, data: Uint8Array | string, disposition: 'createOrTruncate' | 'create' = 'createOrTruncate'): Promise<void> {
  const h = await s.open('s', path, { access: RW, disposition, owner: 'w', expect: 'file' });
  try {
    await s.write(h, 0, typeof data === 'string' ? enc(data) : data);
  } finally {
    await s.close(h);
  }
}

export async function readFile(s: Session, path: string): Promise<Buffer> {
  const h = await s.open('s', path, { access: RO, owner: 'r', expect: 'file' });
  try {
    const parts: Buffer[] = [];
    for (let off = 0; ; ) {
      const b = await s.read(h, off, 65536);
      if (b.length === 0) break;
      parts.push(b);
      off += b.length;
    }
    return Buffer.concat(parts);
  } finally {
    await s.close(h);
  }
}

async function listNames(s: Session, path: string, limit = 1000): Promise<string[]> {
  const names: string[] = [];
  let cookie: bigint | undefined;
  for (let i = 0; i < 100_000; i++) {
    const r = await s.readdir('s', path, cookie === undefined ? { limit } : { cookie, limit });
    for (const e of r.entries) names.push(e.name);
    if (r.eof || r.entries.length === 0) break;
    cookie = r.entries.at(-1)!.cookie;
  }
  return names;
}

export function vfsConformance(f: BackendFactory): void {
  describe(`VFS conformance: ${f.name}`, () => {
    let backend: Backend;
    let env: VfsEnv;
    let s: Session;
    const caps = (): Backend['capabilities'] => backend.capabilities;

    beforeEach(async () => {
      backend = await f.create();
      env = makeVfsEnv(backend);
      s = env.session();
    });
    afterEach(async () => {
      await env.destroy();
      await f.destroy(backend);
    });

    describe('files', () => {
      it('creates, writes, reads back and reports size and times', async () => {
        const before = BigInt(Date.now() - 5000) * 1_000_000n;
        await writeFile(s, '/a.txt', 'hello world');
        expect((await readFile(s, '/a.txt')).toString()).toBe('hello world');
        const a = await s.getattr('s', '/a.txt');
        expect(a.type).toBe('file');
        expect(a.size).toBe(11);
        expect(a.mtimeNs > before).toBe(true);
        expect(a.id > 0n).toBe(true);
      });

      it('exclusive create fails with EEXIST and leaves the file alone', async () => {
        await writeFile(s, '/x', 'one');
        await expectCode(s.open('s', '/x', { access: RW, disposition: 'create', owner: 'o' }), 'EEXIST');
        expect((await readFile(s, '/x')).toString()).toBe('one');
      });

      it('open of a missing file is ENOENT; a missing parent is ENOENT; a file parent is ENOTDIR', async () => {
        await expectCode(s.open('s', '/nope', { access: RO, owner: 'o' }), 'ENOENT');
        await expectCode(s.open('s', '/no/such', { access: RW, disposition: 'create', owner: 'o' }), 'ENOENT');
        await writeFile(s, '/f', 'x');
        await expectCode(s.open('s', '/f/child', { access: RW, disposition: 'create', owner: 'o' }), 'ENOTDIR');
      });

      it('writes at offsets, leaves zero-filled holes, and truncates up and down', async () => {
        const h = await s.open('s', '/sparse', { access: RW, disposition: 'create', owner: 'o' });
        await s.write(h, 10, enc('abc'));
        await s.write(h, 0, enc('XY'));
        await s.flush(h);
        await s.close(h);
        const b = await readFile(s, '/sparse');
        expect(b.length).toBe(13);
        expect(b.subarray(0, 2).toString()).toBe('XY');
        expect([...b.subarray(2, 10)]).toEqual(new Array(8).fill(0));
        expect(b.subarray(10).toString()).toBe('abc');
        await s.setattr('s', '/sparse', { size: 4 });
        expect((await readFile(s, '/sparse')).toString()).toBe('XY\0\0');
        await s.setattr('s', '/sparse', { size: 8 });
        expect([...(await readFile(s, '/sparse'))]).toEqual([88, 89, 0, 0, 0, 0, 0, 0]);
      });

      it('reads past EOF return short or empty buffers', async () => {
        await writeFile(s, '/short', '12345');
        const h = await s.open('s', '/short', { access: RO, owner: 'o' });
        expect((await s.read(h, 3, 100)).toString()).toBe('45');
        expect((await s.read(h, 5, 10)).length).toBe(0);
        expect((await s.read(h, 1000, 10)).length).toBe(0);
        await s.close(h);
      });

      it('readInto fills the caller buffer and reports short reads at EOF', async () => {
        await writeFile(s, '/ri', 'abcdefghij');
        const h = await s.open('s', '/ri', { access: RO, owner: 'o' });
        const buf = Buffer.alloc(4, 0x2e);
        expect(await s.readInto(h, 2, buf)).toBe(4);
        expect(buf.toString()).toBe('cdef');
        expect(await s.readInto(h, 8, buf)).toBe(2);
        expect(buf.subarray(0, 2).toString()).toBe('ij');
        expect(await s.readInto(h, 10, buf)).toBe(0);
        await s.close(h);
      });

      it('truncate disposition empties an existing file', async () => {
        await writeFile(s, '/t', 'long content');
        const h = await s.open('s', '/t', { access: RW, disposition: 'truncate', owner: 'o' });
        expect((await s.fstat(h)).size).toBe(0);
        await s.close(h);
        expect((await s.getattr('s', '/t')).size).toBe(0);
      });

      it('refuses reads through a write-only handle and writes through a read-only one', async () => {
        await writeFile(s, '/rw', 'x');
        const r = await s.open('s', '/rw', { access: RO, owner: 'o' });
        await expectCode(s.write(r, 0, enc('y')), 'EBADF');
        await s.close(r);
        await expectCode(s.read(r, 0, 1), 'EBADF');
      });

      it('sets mode and nanosecond mtime within the backend precision', async () => {
        await writeFile(s, '/m', 'x');
        const mtime = 1_700_000_000_123_456_789n;
        const a = await s.setattr('s', '/m', { mtimeNs: mtime, atimeNs: mtime });
        const prec = BigInt(caps().timestampPrecisionNs);
        const diff = a.mtimeNs > mtime ? a.mtimeNs - mtime : mtime - a.mtimeNs;
        expect(diff <= prec).toBe(true);
        if (caps().posixMetadata) {
          const b = await s.setattr('s', '/m', { mode: 0o600 });
          expect(b.mode & 0o777).toBe(0o600);
        }
      });

      it('keeps Windows attributes and creation time set by clients', async () => {
        await writeFile(s, '/w', 'x');
        const birth = 1_600_000_000_000_000_000n;
        const a = await s.setattr('s', '/w', { winAttributes: 0x2 | 0x20, birthtimeNs: birth });
        expect(a.winAttributes & 0x22).toBe(0x22);
        expect(a.birthtimeNs).toBe(birth);
        const d = await s.mkdir('s', '/dd');
        expect(d.winAttributes & 0x10).toBe(0x10);
      });

      it('change counter increases on data and metadata changes', async () => {
        await writeFile(s, '/c', 'a');
        const c1 = (await s.getattr('s', '/c')).change;
        await writeFile(s, '/c', 'b');
        const c2 = (await s.getattr('s', '/c')).change;
        await s.setattr('s', '/c', { winAttributes: 0x2 });
        const c3 = (await s.getattr('s', '/c')).change;
        expect(c2 > c1).toBe(true);
        expect(c3 > c2).toBe(true);
        expect((await s.getattr('s', '/c')).change).toBe(c3);
      });

      it('emits change events for create, modify, rename and delete', async () => {
        const seen: string[] = [];
        env.vfs.events.on('change', (e: { kind: string; path: string }) => seen.push(`${e.kind}:${e.path}`));
        await writeFile(s, '/ev', 'x');
        await s.rename('s', '/ev', '/ev2');
        await s.unlink('s', '/ev2');
        expect(seen).toContain('create:/ev');
        expect(seen).toContain('modify:/ev');
        expect(seen).toContain('rename:/ev2');
        expect(seen).toContain('delete:/ev2');
      });

      it('an unlinked open file stays readable through its handle and is not resurrected on close', async () => {
        await writeFile(s, '/gone', 'still here');
        const h = await s.open('s', '/gone', { access: RO, owner: 'o' });
        await s.unlink('s', '/gone');
        expect((await s.read(h, 0, 100)).toString()).toBe('still here');
        await s.close(h);
        await expectCode(s.getattr('s', '/gone'), 'ENOENT');
      });

      it('server-side and streamed copy produce identical bytes and properties', async () => {
        const data = Buffer.alloc(300_000);
        for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
        await writeFile(s, '/src.bin', data);
        await s.setProps('s', '/src.bin', [{ ns: 'DAV:', name: 'x', value: enc('v') }]);
        expect(await s.copy('s', '/src.bin', '/dst.bin')).toEqual([]);
        expect((await readFile(s, '/dst.bin')).equals(data)).toBe(true);
        expect((await s.getProps('s', '/dst.bin')).map((p) => p.name)).toEqual(['x']);
        await expectCode(s.copy('s', '/src.bin', '/dst.bin', { replace: false }), 'EEXIST');
      });
    });

    describe('whole-content replacement', () => {
      it('creates a file, and replaces an existing one keeping its id and properties', async () => {
        const w = await s.replaceContent('s', '/r1');
        expect(w.created).toBe(true);
        await w.write(Buffer.from('first'));
        const a1 = await w.commit();
        expect(a1.size).toBe(5);
        await s.setProps('s', '/r1', [{ ns: 'urn:x', name: 'p', value: enc('v') }]);
        await s.setattr('s', '/r1', { winAttributes: 0x2 });
        const w2 = await s.replaceContent('s', '/r1');
        expect(w2.created).toBe(false);
        await w2.write(Buffer.from('second '));
        // Readers see the old content until commit, and no temporary name shows in listings.
        expect((await readFile(s, '/r1')).toString()).toBe('first');
        expect(await listNames(s, '/')).toEqual(['r1']);
        await w2.write(Buffer.from('version'));
        const a2 = await w2.commit();
        expect(a2.id).toBe(a1.id);
        expect(a2.change > a1.change).toBe(true);
        expect((await readFile(s, '/r1')).toString()).toBe('second version');
        expect((await s.getProps('s', '/r1')).map((p) => p.name)).toEqual(['p']);
        expect((await s.getattr('s', '/r1')).winAttributes & 0x2).toBe(0x2);
      });

      it('abort leaves the old content and nothing else', async () => {
        await writeFile(s, '/r2', 'keep');
        const w = await s.replaceContent('s', '/r2');
        await w.write(Buffer.from('partial upload'));
        await w.abort();
        expect((await readFile(s, '/r2')).toString()).toBe('keep');
        expect(await listNames(s, '/')).toEqual(['r2']);
        const n = await s.replaceContent('s', '/r3');
        await n.write(Buffer.from('x'));
        await n.abort();
        await expectCode(s.getattr('s', '/r3'), 'ENOENT');
      });

      it('honours share modes, locks, exclusivity and refuses directories', async () => {
        await writeFile(s, '/r4', 'x');
        const other = env.session(bob, 'smb');
        const h = await other.open('s', '/r4', { access: RO, share: { read: true, write: false, delete: false }, owner: 'o' });
        await expectCode(s.replaceContent('s', '/r4'), 'ESHARING');
        await other.close(h);
        const dav = env.session(bob, 'webdav');
        const lock = await dav.lockPath('s', '/r4', { kind: 'exclusive', style: 'token', timeoutMs: 60_000 });
        await expectCode(s.replaceContent('s', '/r4'), 'ELOCKED');
        dav.lockTokens.add(lock.token);
        const w = await dav.replaceContent('s', '/r4');
        await w.write(Buffer.from('by the lock owner'));
        await w.commit();
        await expectCode(s.replaceContent('s', '/r4', { exclusive: true }), 'EEXIST');
        await s.mkdir('s', '/rd');
        await expectCode(s.replaceContent('s', '/rd'), 'EISDIR');
        await expectCode(s.replaceContent('s', '/nodir/f').then((x) => x.commit()), 'ENOENT');
      });
    });

    describe('directories', () => {
      it('mkdir, EEXIST, rmdir of non-empty is ENOTEMPTY, unlink of a dir is EISDIR', async () => {
        await s.mkdir('s', '/d');
        await expectCode(s.mkdir('s', '/d'), 'EEXIST');
        await writeFile(s, '/d/f', 'x');
        await expectCode(s.rmdir('s', '/d'), 'ENOTEMPTY');
        await expectCode(s.unlink('s', '/d'), 'EISDIR');
        await expectCode(s.rmdir('s', '/d/f'), 'ENOTDIR');
        await s.unlink('s', '/d/f');
        await s.rmdir('s', '/d');
        await expectCode(s.getattr('s', '/d'), 'ENOENT');
        await expectCode(s.rmdir('s', '/'), 'EBUSY');
      });

      it('empty directories persist', async () => {
        await s.mkdir('s', '/empty');
        expect(await listNames(s, '/')).toEqual(['empty']);
        expect((await s.getattr('s', '/empty')).type).toBe('dir');
      });

      it('readdir is sorted, paged with stable cookies, and survives deletes between pages', async () => {
        await s.mkdir('s', '/p');
        const names = Array.from({ length: 250 }, (_, i) => `f${String(i).padStart(4, '0')}`);
        for (const n of names) await writeFile(s, `/p/${n}`, n);
        expect(await listNames(s, '/p', 37)).toEqual(names);
        const first = await s.readdir('s', '/p', { limit: 10 });
        // Delete the entry the cookie points at: resuming still continues after it.
        await s.unlink('s', `/p/${first.entries[9]!.name}`);
        const next = await s.readdir('s', '/p', { cookie: first.entries[9]!.cookie, limit: 5 });
        expect(next.entries.map((e) => e.name)).toEqual(names.slice(10, 15));
        expect(next.entries[0]!.attr.size).toBe(5);
        // NFS resumes from the last entry its reply had room for, a few before the page's end.
        const page = await s.readdir('s', '/p', { cookie: next.entries[4]!.cookie, limit: 10 });
        await s.unlink('s', `/p/${page.entries[6]!.name}`);
        const after = await s.readdir('s', '/p', { cookie: page.entries[6]!.cookie, limit: 3 });
        expect(after.entries.map((e) => e.name)).toEqual(names.slice(22, 25));
        await expectCode(s.readdir('s', '/p', { cookie: 999_999_999n }), 'EBADCOOKIE');
        await expectCode(s.readdir('s', '/p/f0000'), 'ENOTDIR');
      });

      it('readdir entries carry the same ids as getattr', async () => {
        await writeFile(s, '/one', '1');
        const r = await s.readdir('s', '/');
        expect(r.entries[0]!.attr.id).toBe((await s.getattr('s', '/one')).id);
        expect(r.entries[0]!.cookie).toBe(r.entries[0]!.attr.id);
      });
    });

    describe('rename', () => {
      it('renames files and keeps their id; replaces an existing file', async () => {
        await writeFile(s, '/a', 'A');
        await writeFile(s, '/b', 'B');
        const ida = (await s.getattr('s', '/a')).id;
        await s.rename('s', '/a', '/b');
        expect((await s.getattr('s', '/b')).id).toBe(ida);
        expect((await readFile(s, '/b')).toString()).toBe('A');
        await expectCode(s.getattr('s', '/a'), 'ENOENT');
      });

      it('renames directories with their contents, ids following', async () => {
        await s.mkdir('s', '/d1');
        await s.mkdir('s', '/d1/sub');
        await writeFile(s, '/d1/sub/f', 'deep');
        const id = (await s.getattr('s', '/d1/sub/f')).id;
        // Paths looked up by id before the rename (the directories' are then cached): a file's
        // path is found from its directory's, which must follow the rename.
        const subId = (await s.getattr('s', '/d1/sub')).id;
        expect(await s.pathOf('s', subId)).toBe('/d1/sub');
        await writeFile(s, '/d1/sub/g', 'G');
        const gid = (await s.getattr('s', '/d1/sub/g')).id;
        await s.rename('s', '/d1', '/d2');
        expect((await s.getattr('s', '/d2/sub/f')).id).toBe(id);
        expect(await s.pathOf('s', id)).toBe('/d2/sub/f');
        expect(await s.pathOf('s', gid)).toBe('/d2/sub/g');
        expect((await readFile(s, '/d2/sub/f')).toString()).toBe('deep');
        await expectCode(s.getattr('s', '/d1'), 'ENOENT');
        // A file moved to another directory, and one created after the rename.
        await s.rename('s', '/d2/sub/g', '/d2/g2');
        expect(await s.pathOf('s', gid)).toBe('/d2/g2');
        await writeFile(s, '/d2/sub/h', 'H');
        expect(await s.pathOf('s', (await s.getattr('s', '/d2/sub/h')).id)).toBe('/d2/sub/h');
      });

      it('edge cases: into itself, over non-empty dir, type mismatches, no-replace, missing source, same path', async () => {
        await s.mkdir('s', '/d');
        await s.mkdir('s', '/d/in');
        await s.mkdir('s', '/full');
        await writeFile(s, '/full/x', 'x');
        await s.mkdir('s', '/emptydir');
        await writeFile(s, '/file', 'f');
        await expectCode(s.rename('s', '/d', '/d/in/d'), 'EINVAL');
        await expectCode(s.rename('s', '/d', '/full'), 'ENOTEMPTY');
        await expectCode(s.rename('s', '/d', '/file'), 'ENOTDIR');
        await expectCode(s.rename('s', '/file', '/emptydir'), 'EISDIR');
        await expectCode(s.rename('s', '/file', '/full/x', { replace: false }), 'EEXIST');
        await expectCode(s.rename('s', '/missing', '/m2'), 'ENOENT');
        await expectCode(s.rename('s', '/file', '/nodir/file'), 'ENOENT');
        await s.rename('s', '/file', '/file');
        await s.rename('s', '/d', '/emptydir');
        expect((await s.getattr('s', '/emptydir/in')).type).toBe('dir');
      });

      it('an open handle follows its file across a rename', async () => {
        await writeFile(s, '/h1', 'before');
        const h = await s.open('s', '/h1', { access: RW, owner: 'o' });
        await s.rename('s', '/h1', '/h2');
        await s.write(h, 0, enc('AFTER!'));
        await s.close(h);
        expect((await readFile(s, '/h2')).toString()).toBe('AFTER!');
      });
    });

    describe('persistent ids', () => {
      it('ids survive a restart of the whole stack and a rename before it', async () => {
        await s.mkdir('s', '/keep');
        await writeFile(s, '/keep/file', 'x');
        const dirId = (await s.getattr('s', '/keep')).id;
        await s.rename('s', '/keep/file', '/keep/renamed');
        const fileId = (await s.getattr('s', '/keep/renamed')).id;
        const change = (await s.getattr('s', '/keep/renamed')).change;
        await env.stop();
        const again = await f.reopen(backend);
        const env2 = makeVfsEnv(again, { stateDir: env.stateDir });
        try {
          const s2 = env2.session();
          expect((await s2.getattr('s', '/keep')).id).toBe(dirId);
          expect((await s2.getattr('s', '/keep/renamed')).id).toBe(fileId);
          expect(await s2.pathOf('s', fileId)).toBe('/keep/renamed');
          // An unchanged file keeps its change attribute across a restart (clients keep their caches).
          expect((await s2.getattr('s', '/keep/renamed')).change).toBe(change);
          await s2.unlink('s', '/keep/renamed');
          await expectCode(s2.pathOf('s', fileId), 'ESTALE');
        } finally {
          await env2.stop();
          if (again !== backend) await again.close();
        }
      });

      it('a name deleted and created again through Portico gets a new id; the old one is stale and its properties stay behind', async () => {
        await writeFile(s, '/again', 'one');
        const old = (await s.getattr('s', '/again')).id;
        await s.setProps('s', '/again', [{ ns: 'urn:x', name: 'color', value: enc('red') }]);
        await s.unlink('s', '/again');
        await writeFile(s, '/again', 'two');
        const now = await s.getattr('s', '/again');
        expect(now.id).not.toBe(old);
        await expectCode(s.pathOf('s', old), 'ESTALE');
        expect(await s.getProps('s', '/again')).toEqual([]);
      });

      it('the change attribute advances on every change through Portico, and a directory\'s on every namespace change in it', async () => {
        await s.mkdir('s', '/cd');
        await s.mkdir('s', '/cd2');
        const d0 = await s.getattr('s', '/cd');
        await writeFile(s, '/cd/f', 'x');
        const d1 = await s.getattr('s', '/cd');
        expect(d1.change > d0.change).toBe(true);
        expect(d1.mtimeNs >= d0.mtimeNs).toBe(true);
        const f0 = await s.getattr('s', '/cd/f');
        await writeFile(s, '/cd/f', 'xy');
        const f1 = await s.getattr('s', '/cd/f');
        expect(f1.change > f0.change).toBe(true);
        await s.setattr('s', '/cd/f', { mode: 0o600 });
        expect((await s.getattr('s', '/cd/f')).change > f1.change).toBe(true);
        const e0 = await s.getattr('s', '/cd2');
        await s.rename('s', '/cd/f', '/cd2/f');
        const [d2, e1] = [await s.getattr('s', '/cd'), await s.getattr('s', '/cd2')];
        expect(d2.change > d1.change).toBe(true);
        expect(e1.change > e0.change).toBe(true);
        await s.unlink('s', '/cd2/f');
        expect((await s.getattr('s', '/cd2')).change > e1.change).toBe(true);
        // Unchanged: stable.
        const same = await s.getattr('s', '/cd2');
        expect((await s.getattr('s', '/cd2')).change).toBe(same.change);
        if (caps().constantDirectoryTimes) {
          // No directory times in the store: Portico's own moved with the create.
          expect(d1.mtimeNs > d0.mtimeNs).toBe(true);
        }
      });

      it('by id: lookup, getattr, readdir and open address files by id, through renames and a restart; stale ids answer ESTALE', async () => {
        await s.mkdir('s', '/byid');
        const root = (await s.getattr('s', '/')).id;
        const dir = await s.lookup('s', root, 'byid');
        expect(dir.type).toBe('dir');
        await writeFile(s, '/byid/f', 'hello');
        const file = await s.lookup('s', dir.id, 'f');
        expect(file.size).toBe(5);
        expect((await s.getattrById('s', file.id)).size).toBe(5);
        expect((await s.lookupParent('s', file.id)).id).toBe(dir.id);
        expect((await s.lookupParent('s', root)).id).toBe(root);
        expect((await s.readdirById('s', dir.id)).entries.map((e) => [e.name, e.attr.id])).toEqual([['f', file.id]]);
        await expectCode(s.lookup('s', dir.id, 'missing'), 'ENOENT');
        await expectCode(s.lookup('s', dir.id, '..'), 'EINVAL');
        // A change through Portico shows at once in the cached attributes, and in the directory's.
        const before = await s.getattrById('s', dir.id);
        const h = await s.openById('s', file.id, { access: RW, owner: 'o' });
        await s.write(h, 5, Buffer.from(' world'));
        expect((await s.getattrById('s', file.id)).size).toBe(11);
        await s.close(h);
        const r = await s.openById('s', file.id, { access: RO, owner: 'o' });
        expect((await s.read(r, 0, 100)).toString()).toBe('hello world');
        await s.close(r);
        // Renamed (and its directory renamed): the id still finds it, the old name does not.
        await s.renameIn('s', dir.id, 'f', dir.id, 'g');
        expect((await s.getattrById('s', dir.id)).change > before.change).toBe(true);
        await expectCode(s.lookup('s', dir.id, 'f'), 'ENOENT');
        await s.rename('s', '/byid', '/byid2');
        expect(await s.pathOf('s', file.id)).toBe('/byid2/g');
        expect((await s.getattrById('s', file.id)).size).toBe(11);
        await env.stop();
        const again = await f.reopen(backend);
        const env2 = makeVfsEnv(again, { stateDir: env.stateDir });
        try {
          const s2 = env2.session();
          expect((await s2.getattrById('s', file.id)).size).toBe(11);
          expect((await s2.lookup('s', dir.id, 'g')).id).toBe(file.id);
          // Removed by name in its directory: the id goes stale.
          await s2.removeIn('s', dir.id, 'g');
          await expectCode(s2.getattrById('s', file.id), 'ESTALE');
          await expectCode(s2.openById('s', file.id, { access: RO, owner: 'o' }), 'ESTALE');
          await s2.mkdirIn('s', dir.id, 'sub');
          await s2.removeIn('s', dir.id, 'sub');
          await expectCode(s2.lookup('s', dir.id, 'sub'), 'ENOENT');
        } finally {
          await env2.stop();
          if (again !== backend) await again.close();
        }
      });

      it('new files, directories and links take the creating principal\'s uid and gid; a replaced file keeps its owner', async () => {
        if (!caps().posixMetadata) return;
        // The local backend may give files away only as root (else the service user owns them).
        const canChown = f.name !== 'local' || process.getuid?.() === 0;
        const b = env.session(bob);
        const own = (a: { uid: number; gid: number }): number[] => [a.uid, a.gid];
        await writeFile(b, '/owned', 'x');
        await b.mkdir('s', '/owned-dir');
        const w = await b.replaceContent('s', '/owned-put');
        await w.write(Buffer.from('y'));
        await w.commit();
        const expected = canChown ? [bob.uid, bob.gid] : undefined;
        for (const p of ['/owned', '/owned-dir', '/owned-put']) {
          const a = await s.getattr('s', p);
          if (expected) expect([p, ...own(a)]).toEqual([p, ...expected]);
        }
        if (caps().symlinks && expected) expect(own(await b.symlink('s', 'owned', '/owned-link')).slice(0, 2)).toEqual(expected);
        // alice replaces bob's file: it stays bob's (a local replace writes a new inode).
        const r = await s.replaceContent('s', '/owned-put');
        await r.write(Buffer.from('z'));
        await r.commit();
        if (expected) expect(own(await s.getattr('s', '/owned-put'))).toEqual(expected);
        // A copy belongs to who copies.
        await s.copy('s', '/owned-dir', '/copied-dir');
        if (expected) expect(own(await s.getattr('s', '/copied-dir'))).toEqual([alice.uid, alice.gid]);
      });

      it('ids are never reused after delete', async () => {
        await writeFile(s, '/r', 'x');
        const id1 = (await s.getattr('s', '/r')).id;
        await s.unlink('s', '/r');
        await writeFile(s, '/r', 'x');
        expect((await s.getattr('s', '/r')).id).not.toBe(id1);
      });
    });

    describe('symlinks and hard links', () => {
      it('symlink and readlink when the backend has them, ENOTSUP otherwise', async () => {
        if (!caps().symlinks) {
          await expectCode(s.symlink('s', 'target', '/ln'), 'ENOTSUP');
          return;
        }
        const a = await s.symlink('s', 'some/target', '/ln');
        expect(a.type).toBe('symlink');
        expect(await s.readlink('s', '/ln')).toBe('some/target');
        await expectCode(s.open('s', '/ln', { access: RO, owner: 'o' }), 'ELOOP');
      });

      it('hard links share content when the backend has them', async () => {
        await writeFile(s, '/orig', 'shared');
        if (!caps().hardLinks) {
          await expectCode(s.link('s', '/orig', '/hl'), 'ENOTSUP');
          return;
        }
        await s.link('s', '/orig', '/hl');
        expect((await readFile(s, '/hl')).toString()).toBe('shared');
        expect((await s.getattr('s', '/hl')).nlink).toBe(2);
        // One id per file where native identity tells files apart (docs/ARCHITECTURE.md "Hard links").
        if (caps().nativeIdentity) expect((await s.getattr('s', '/hl')).id).toBe((await s.getattr('s', '/orig')).id);
      });
    });

    describe('concurrency, share modes and locks', () => {
      it('concurrent writers to distinct ranges of one file all land', async () => {
        const h0 = await s.open('s', '/conc', { access: RW, disposition: 'create', owner: 'o' });
        await s.close(h0);
        const writers = Array.from({ length: 8 }, async (_, i) => {
          const h = await s.open('s', '/conc', { access: RW, owner: `w${i}` });
          await s.write(h, i * 1000, Buffer.alloc(1000, 65 + i));
          await s.close(h);
        });
        await Promise.all(writers);
        const b = await readFile(s, '/conc');
        expect(b.length).toBe(8000);
        for (let i = 0; i < 8; i++) expect(b[i * 1000 + 500]).toBe(65 + i);
      });

      it('concurrent creators of one name: exactly one exclusive create wins', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 6 }, (_, i) => s.open('s', '/race', { access: RW, disposition: 'create', owner: `c${i}` })),
        );
        const ok = results.filter((r) => r.status === 'fulfilled');
        expect(ok.length).toBe(1);
        for (const r of results) if (r.status === 'rejected') expect(isVfsError(r.reason, 'EEXIST')).toBe(true);
        for (const r of ok) await s.close((r as PromiseFulfilledResult<Awaited<ReturnType<Session['open']>>>).value);
      });

      it('share modes: deny-write blocks a writer, allows a reader; delete without share-delete blocks unlink and rename', async () => {
        await writeFile(s, '/sm', 'x');
        const other = env.session(bob);
        const h = await s.open('s', '/sm', { access: RO, share: { read: true, write: false, delete: false }, owner: 'o' });
        await expectCode(other.open('s', '/sm', { access: RW, owner: 'b' }), 'ESHARING');
        const r = await other.open('s', '/sm', { access: RO, owner: 'b' });
        await other.close(r);
        await expectCode(other.unlink('s', '/sm'), 'ESHARING');
        await expectCode(other.rename('s', '/sm', '/sm2'), 'ESHARING');
        await s.close(h);
        await other.rename('s', '/sm', '/sm2');
      });

      it('a rename through an open ignores that open\'s share mode; other opens, and opens of the parent directory with delete access or no sharing, refuse it', async () => {
        await writeFile(s, '/rt', 'x');
        const DEL = { read: true, write: false, delete: true };
        const NONE = { read: false, write: false, delete: false };
        // The renaming open shares nothing: it is its own rename (Windows: smbtorture smb2.rename.no_sharing).
        const h = await s.open('s', '/rt', { access: DEL, share: NONE, owner: 'o' });
        await s.rename('s', '/rt', '/rt2', { through: h });
        expect(h.path).toBe('/rt2');
        // Another open that does not share delete refuses a delete-access open and a path rename;
        // one that shares delete follows the file.
        await s.close(h);
        const other = await s.open('s', '/rt2', { access: RO, share: { read: true, write: true, delete: false }, owner: 'p' });
        await expectCode(s.open('s', '/rt2', { access: DEL, owner: 'q' }), 'ESHARING');
        await expectCode(s.rename('s', '/rt2', '/rt3'), 'ESHARING');
        await s.close(other);
        const h2 = await s.open('s', '/rt2', { access: DEL, owner: 'q' });
        const reader = await s.open('s', '/rt2', { access: RO, owner: 'r' });
        await s.rename('s', '/rt2', '/rt3', { through: h2 });
        expect(reader.path).toBe('/rt3');
        expect((await s.read(reader, 0, 10)).toString()).toBe('x');
        await s.close(reader);
        await s.close(h2);
        // The parent directory open with DELETE access (even sharing all), or sharing nothing, refuses
        // a rename of a name in it; a listing open that shares all does not.
        await s.mkdir('s', '/pd');
        await writeFile(s, '/pd/f', 'y');
        // A directory renamed through an open of it while a file below is open: EACCES (Windows'
        // rule); a path-level rename moves it and the file's handle follows (POSIX's).
        const inner = await s.open('s', '/pd/f', { access: RO, owner: 'i' });
        const dh = await s.open('s', '/pd', { access: DEL, expect: 'dir', owner: 'dh' });
        await expectCode(s.rename('s', '/pd', '/pd2', { through: dh }), 'EACCES');
        await s.close(dh);
        await s.rename('s', '/pd', '/pd2');
        expect(inner.path).toBe('/pd2/f');
        await s.rename('s', '/pd2', '/pd');
        await s.close(inner);
        for (const [access, share, code] of [[DEL, SHARE_ALL, 'ESHARING'], [RO, NONE, 'ESHARING'], [RO, SHARE_ALL, undefined]] as const) {
          const d = await s.open('s', '/pd', { access, share, expect: 'dir', owner: 'd' });
          if (code) await expectCode(s.rename('s', '/pd/f', '/pd/g'), code);
          else {
            await s.rename('s', '/pd/f', '/pd/g');
            await s.rename('s', '/pd/g', '/pd/f');
          }
          await s.close(d);
        }
      });

      it('a sharing violation does not truncate the file', async () => {
        await writeFile(s, '/keepme', 'precious');
        const h = await s.open('s', '/keepme', { access: RO, share: { read: true, write: false, delete: false }, owner: 'o' });
        await expectCode(s.open('s', '/keepme', { access: RW, disposition: 'truncate', owner: 'p' }), 'ESHARING');
        await s.close(h);
        expect((await readFile(s, '/keepme')).toString()).toBe('precious');
      });

      it('delete-on-close marks the file delete-pending when its open closes, and removes it at the last close', async () => {
        await writeFile(s, '/doc', 'x');
        const h = await s.open('s', '/doc', { access: { read: true, write: false, delete: true }, deleteOnClose: true, owner: 'o' });
        // While the delete-on-close open lives the file opens as usual (MS-FSA 2.1.5.5: the mark is
        // set at that open's close), within the share modes: this open does not share delete.
        const r = await s.open('s', '/doc', { access: RO, owner: 'p' });
        await expectCode(s.open('s', '/doc', { access: RO, share: { read: true, write: true, delete: false }, owner: 'q' }), 'ESHARING');
        await s.close(h);
        // Closed: delete pending until the last open goes.
        await expectCode(s.open('s', '/doc', { access: RO, owner: 'p2' }), 'EDELETEPENDING');
        expect((await s.getattr('s', '/doc')).type).toBe('file');
        await s.close(r);
        await expectCode(s.getattr('s', '/doc'), 'ENOENT');
      });

      it('a Windows byte-range lock blocks another handle\'s I/O in range; expiry frees WebDAV locks', async () => {
        await writeFile(s, '/lk', Buffer.alloc(100, 1));
        const other = env.session(bob, 'smb');
        const h1 = await s.open('s', '/lk', { access: RW, owner: 'h1' });
        const h2 = await other.open('s', '/lk', { access: RW, owner: 'h2' });
        await s.lockHandle(h1, { kind: 'exclusive', style: 'windows', range: { start: 10n, end: 20n } });
        await expectCode(other.write(h2, 15, enc('z')), 'ELOCKED');
        await expectCode(other.read(h2, 0, 50), 'ELOCKED');
        expect((await other.read(h2, 30, 10)).length).toBe(10);
        await expectCode(other.lockHandle(h2, { kind: 'shared', style: 'windows', range: { start: 0n, end: 11n } }), 'ELOCKED');
        await s.unlockHandle(h1, { start: 10n, end: 20n }, 'windows');
        await other.write(h2, 15, enc('z'));
        // A WebDAV lock with a short timeout conflicts, then expires by itself. (1 s: with 50 ms the
        // two conflicting calls outlasted the lock on a loaded machine, on the write-back shares.)
        const l = await s.lockPath('s', '/lk', { kind: 'exclusive', style: 'token', timeoutMs: 1000 });
        await expectCode(other.lockPath('s', '/lk', { kind: 'exclusive', style: 'token' }), 'ELOCKED');
        await expectCode(other.write(h2, 0, enc('q')), 'ELOCKED');
        for (let i = 0; i < 100 && env.vfs.locks.get(l.token) !== undefined; i++) await new Promise((r) => setTimeout(r, 50));
        expect(env.vfs.locks.get(l.token)).toBeUndefined();
        await other.write(h2, 0, enc('q'));
        await s.close(h1);
        await other.close(h2);
      });

      it('a WebDAV lock blocks changes through any protocol unless its token is presented', async () => {
        await writeFile(s, '/wl', 'x');
        await s.mkdir('s', '/wd');
        await writeFile(s, '/wd/member', 'm');
        const dav = env.session(alice, 'webdav');
        const smb = env.session(bob, 'smb');
        const fileLock = await dav.lockPath('s', '/wl', { kind: 'exclusive', style: 'token', timeoutMs: 60_000 });
        const h = await smb.open('s', '/wl', { access: RW, owner: 'h' });
        expect((await smb.read(h, 0, 1)).toString()).toBe('x');
        await expectCode(smb.write(h, 0, enc('y')), 'ELOCKED');
        await smb.close(h);
        await expectCode(smb.unlink('s', '/wl'), 'ELOCKED');
        await expectCode(smb.rename('s', '/wl', '/wl2'), 'ELOCKED');
        await expectCode(smb.setattr('s', '/wl', { size: 0 }), 'ELOCKED');
        await expectCode(smb.open('s', '/wl', { access: RW, disposition: 'truncate', owner: 'h' }), 'ELOCKED');
        // The lock holder, presenting the token, may change it.
        dav.lockTokens.add(fileLock.token);
        await writeFile(dav, '/wl', 'changed');
        expect((await readFile(smb, '/wl')).toString()).toBe('changed');
        // Depth-infinity lock on a collection: members cannot be added, removed or changed without it.
        const dirLock = await dav.lockPath('s', '/wd', { kind: 'exclusive', style: 'token', depth: 'infinity', timeoutMs: 60_000 });
        await expectCode(smb.open('s', '/wd/new', { access: RW, disposition: 'create', owner: 'h' }), 'ELOCKED');
        await expectCode(smb.mkdir('s', '/wd/sub'), 'ELOCKED');
        await expectCode(smb.unlink('s', '/wd/member'), 'ELOCKED');
        await expectCode(smb.rename('s', '/wl', '/wd/moved-in'), 'ELOCKED');
        const hm = await smb.open('s', '/wd/member', { access: RW, owner: 'h' });
        await expectCode(smb.write(hm, 0, enc('z')), 'ELOCKED');
        await smb.close(hm);
        const removed = await smb.removeTree('s', '/wd');
        expect(removed.map((e) => e.error.code)).toContain('ELOCKED');
        dav.lockTokens.add(dirLock.token);
        await dav.mkdir('s', '/wd/sub');
        await writeFile(dav, '/wd/new', 'ok');
        // A depth-0 lock on a collection also protects its membership (RFC 4918 §7.5).
        await s.mkdir('s', '/d0');
        await dav.lockPath('s', '/d0', { kind: 'exclusive', style: 'token', depth: 0, timeoutMs: 60_000 });
        await expectCode(smb.mkdir('s', '/d0/x'), 'ELOCKED');
        await dav.end();
        // Ending the session released its (non-durable) locks.
        await smb.mkdir('s', '/d0/x');
      });

      it('closing a handle releases the byte-range locks taken through it, not an explicit owner\'s', async () => {
        await writeFile(s, '/cl', Buffer.alloc(10));
        const other = env.session(bob, 'smb');
        const h = await s.open('s', '/cl', { access: RW, owner: 'h' });
        await s.lockHandle(h, { kind: 'exclusive', style: 'windows', range: { start: 0n, end: 5n } });
        const n = await s.open('s', '/cl', { access: RW, owner: 'n' });
        await s.lockHandle(n, { kind: 'exclusive', style: 'posix', range: { start: 5n, end: 10n }, ownerId: 'lock-owner-1' });
        const o = await other.open('s', '/cl', { access: RW, owner: 'o' });
        await expectCode(other.lockHandle(o, { kind: 'shared', style: 'windows', range: { start: 0n, end: 1n } }), 'ELOCKED');
        await s.close(h);
        await other.lockHandle(o, { kind: 'shared', style: 'windows', range: { start: 0n, end: 1n } });
        await s.close(n);
        await expectCode(other.lockHandle(o, { kind: 'shared', style: 'windows', range: { start: 6n, end: 7n } }), 'ELOCKED');
      });

      it('closing a session releases its locks and handles', async () => {
        await writeFile(s, '/sl', 'x');
        const other = env.session(bob);
        const h = await other.open('s', '/sl', { access: RW, share: { read: true, write: false, delete: false }, owner: 'o' });
        await other.lockHandle(h, { kind: 'exclusive', style: 'posix', range: WHOLE_FILE });
        await other.end();
        const h2 = await s.open('s', '/sl', { access: RW, owner: 'p' });
        await s.lockHandle(h2, { kind: 'exclusive', style: 'posix', range: WHOLE_FILE });
        await s.close(h2);
        await expectCode(other.getattr('s', '/sl'), 'EBADF');
      });

      it('a handle from one session cannot be used by another', async () => {
        await writeFile(s, '/own', 'x');
        const h = await s.open('s', '/own', { access: RO, owner: 'o' });
        await expectCode(env.session(bob).read(h, 0, 1), 'EBADF');
        await s.close(h);
      });
    });

    describe('properties and statfs', () => {
      it('dead properties persist, follow renames and apply atomically', async () => {
        await writeFile(s, '/pp', 'x');
        await s.setProps('s', '/pp', [
          { ns: 'urn:x', name: 'a', value: enc('1') },
          { ns: 'urn:x', name: 'b', value: enc('2') },
        ]);
        await s.setProps('s', '/pp', [{ ns: 'urn:x', name: 'a', value: null }]);
        await s.rename('s', '/pp', '/pp2');
        const props = await s.getProps('s', '/pp2');
        expect(props.map((p) => `${p.ns}${p.name}=${Buffer.from(p.value).toString()}`)).toEqual(['urn:xb=2']);
      });

      it('statfs reports sane numbers', async () => {
        const st = await s.statfs('s');
        expect(st.totalBytes).toBeGreaterThan(0);
        expect(st.availableBytes).toBeLessThanOrEqual(st.totalBytes);
        expect(st.blockSize).toBeGreaterThan(0);
      });
    });

    describe('extended attributes and named streams', () => {
      xattrConformance({ factory: f, backend: () => backend, env: () => env, session: () => s });
    });
  });
}
