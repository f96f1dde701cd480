/**
 * One behavioural contract (src/vfs/backend.ts), run against every backend. Tests of an optional
 * capability check the backend's own flag: with the flag off they assert the method is refused.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/vfs/backend.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import type { VfsErrorCode } from '../../src/vfs/errors.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MEMORY_OBJECTSTORE_CAPABILITIES, MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { createBackend } from '../../backends/index.ts';

interface Fixture {
  backend: Backend;
  cleanup(): Promise<void>;
}

async function rejectsWith(p: Promise<unknown>, code: VfsErrorCode): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeDefined();
  if (!isVfsError(e, code)) throw new Error(`expected VfsError ${code}, got ${String(e)}`);
}

async function put(b: Backend, path: string, data: string | Buffer): Promise<void> {
  const w = await b.createWriter(path);
  await w.write(typeof data === 'string' ? Buffer.from(data) : data);
  await w.commit();
}

async function text(b: Backend, path: string): Promise<string> {
  return (await b.read(path, 0, 1 << 20)).toString();
}

async function names(b: Backend, path: string): Promise<string[]> {
  return (await b.list(path, { limit: 10_000 })).entries.map((e) => e.name);
}

function backendContract(label: string, factory: () => Promise<Fixture>): void {
  describe(`backend contract: ${label}`, () => {
    let fx: Fixture;
    let b: Backend;
    beforeEach(async () => {
      fx = await factory();
      b = fx.backend;
    });
    afterEach(async () => {
      await b.close();
      await fx.cleanup();
    });

    it('stats the root and passes check()', async () => {
      const st = await b.stat('/');
      expect(st.type).toBe('dir');
      expect(st.name).toBe('');
      expect(typeof st.mtimeNs).toBe('bigint');
      await b.check();
    });

    it('mkdir: creates, EEXIST, ENOENT for a missing parent, ENOTDIR under a file', async () => {
      const st = await b.mkdir('/d');
      expect(st).toMatchObject({ name: 'd', type: 'dir' });
      expect((await b.stat('/d')).type).toBe('dir');
      await rejectsWith(b.mkdir('/d'), 'EEXIST');
      await rejectsWith(b.mkdir('/missing/x'), 'ENOENT');
      await put(b, '/f', 'x');
      await rejectsWith(b.mkdir('/f'), 'EEXIST');
      await rejectsWith(b.mkdir('/f/x'), 'ENOTDIR');
    });

    it('reports ENOENT and ENOTDIR from stat, list, read and createWriter', async () => {
      await rejectsWith(b.stat('/nope'), 'ENOENT');
      await rejectsWith(b.list('/nope', { limit: 10 }), 'ENOENT');
      await put(b, '/f', 'x');
      await rejectsWith(b.stat('/f/x'), 'ENOTDIR');
      await rejectsWith(b.list('/f', { limit: 10 }), 'ENOTDIR');
      await rejectsWith(b.read('/f/x', 0, 1), 'ENOTDIR');
      await rejectsWith(b.createWriter('/f/x'), 'ENOTDIR');
      await rejectsWith(b.createWriter('/nope/x'), 'ENOENT');
    });

    it('lists nested directories sorted by JS string order', async () => {
      await b.mkdir('/a');
      await b.mkdir('/a/sub');
      const ns = ['b', 'B', 'a', '_x', 'é', '😀', '\uff21', 'a0', 'Z'];
      for (const n of ns) await put(b, `/a/sub/${n}`, n);
      await b.mkdir('/a/sub/dir');
      expect(await names(b, '/a')).toEqual(['sub']);
      const listed = await b.list('/a/sub', { limit: 100 });
      expect(listed.next).toBeUndefined();
      expect(listed.entries.map((e) => e.name)).toEqual([...ns, 'dir'].sort());
      const dir = listed.entries.find((e) => e.name === 'dir');
      expect(dir?.type).toBe('dir');
      const emoji = listed.entries.find((e) => e.name === '😀');
      expect(emoji).toMatchObject({ type: 'file', size: Buffer.byteLength('😀') });
      expect(await names(b, '/')).toEqual(['a']);
    });

    it('pages 2,500 entries with after/limit exactly once, in order', async () => {
      await b.mkdir('/big');
      const expected: string[] = [];
      for (let i = 0; i < 2500; i++) {
        const n = `e${((i * 7919) % 2500).toString(36)}-${i % 3 === 0 ? 'X' : 'y'}`;
        expected.push(n);
        await put(b, `/big/${n}`, '');
      }
      expected.sort();
      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await b.list('/big', after === undefined ? { limit: 100 } : { after, limit: 100 });
        pages++;
        expect(page.entries.length).toBeLessThanOrEqual(100);
        seen.push(...page.entries.map((e) => e.name));
        if (page.next === undefined) break;
        after = page.next;
        expect(pages).toBeLessThan(1000);
      }
      expect(seen).toEqual(expected);
      expect(pages).toBeGreaterThanOrEqual(25);
      // `after` need not be an existing name.
      const mid = await b.list('/big', { after: 'e1', limit: 3 });
      expect(mid.entries.map((e) => e.name)).toEqual(expected.filter((n) => n > 'e1').slice(0, 3));
      const none = await b.list('/big', { after: '\uffff', limit: 3 });
      expect(none.entries).toEqual([]);
      expect(none.next).toBeUndefined();
    });

    it('reads ranges, short at EOF, empty past EOF, EISDIR on a directory', async () => {
      await put(b, '/f', 'hello world');
      expect((await b.read('/f', 0, 5)).toString()).toBe('hello');
      expect((await b.read('/f', 6, 100)).toString()).toBe('world');
      expect((await b.read('/f', 11, 10)).length).toBe(0);
      expect((await b.read('/f', 1000, 10)).length).toBe(0);
      expect((await b.stat('/f')).size).toBe(11);
      await b.mkdir('/d');
      await rejectsWith(b.read('/d', 0, 1), 'EISDIR');
      await rejectsWith(b.read('/nope', 0, 1), 'ENOENT');
    });

    it('openFile: writes at offsets, holes read as zeros, truncate up and down', async () => {
      if (!b.capabilities.randomWrites) {
        await put(b, '/f', 'abc');
        await rejectsWith(b.openFile('/f', { write: true }), 'ENOTSUP');
        const ro = await b.openFile('/f', { write: false });
        expect((await ro.read(1, 10)).toString()).toBe('bc');
        await ro.close();
        return;
      }
      const f = await b.openFile('/f', { write: true, create: true, mode: 0o644 });
      expect(await f.write(0, Buffer.from('abc'))).toBe(3);
      expect(await f.write(10, Buffer.from('xyz'))).toBe(3);
      expect((await f.stat()).size).toBe(13);
      const all = await f.read(0, 100);
      expect(all).toEqual(Buffer.concat([Buffer.from('abc'), Buffer.alloc(7), Buffer.from('xyz')]));
      await f.write(1, Buffer.from('B'));
      expect((await f.read(0, 3)).toString()).toBe('aBc');
      await f.truncate(2);
      expect((await f.read(0, 100)).toString()).toBe('aB');
      await f.truncate(6);
      expect(await f.read(0, 100)).toEqual(Buffer.from([0x61, 0x42, 0, 0, 0, 0]));
      await f.sync();
      await f.close();
      expect((await b.stat('/f')).size).toBe(6);
      expect(await b.read('/f', 0, 100)).toEqual(Buffer.from([0x61, 0x42, 0, 0, 0, 0]));
      // Truncate-on-open.
      const t = await b.openFile('/f', { write: true, truncate: true });
      expect((await t.stat()).size).toBe(0);
      await t.close();
      await rejectsWith(b.openFile('/nope', { write: true }), 'ENOENT');
    });

    it('openFile exclusive create fails with EEXIST', async () => {
      if (!b.capabilities.randomWrites) {
        await put(b, '/f', 'x');
        const w = await b.createWriter('/f', { exclusive: true });
        await w.write(Buffer.from('y'));
        await rejectsWith(w.commit(), 'EEXIST');
        return;
      }
      const f = await b.openFile('/f', { write: true, create: true, exclusive: true });
      await f.close();
      await rejectsWith(b.openFile('/f', { write: true, create: true, exclusive: true }), 'EEXIST');
      const again = await b.openFile('/f', { write: true, create: true });
      await again.close();
    });

    it('truncate(path) extends with zeros and shortens', async () => {
      await put(b, '/f', 'abcdef');
      await b.truncate('/f', 3);
      expect(await text(b, '/f')).toBe('abc');
      await b.truncate('/f', 5);
      expect(await b.read('/f', 0, 10)).toEqual(Buffer.from([0x61, 0x62, 0x63, 0, 0]));
    });

    it('createWriter publishes atomically at commit', async () => {
      const w = await b.createWriter('/new');
      await w.write(Buffer.from('part1 '));
      await w.write(Buffer.from('part2'));
      await rejectsWith(b.stat('/new'), 'ENOENT');
      expect(await names(b, '/')).toEqual([]);
      const st = await w.commit({ mode: 0o640 });
      expect(st).toMatchObject({ name: 'new', type: 'file', size: 11 });
      if (b.capabilities.posixMetadata) expect(st.mode).toBe(0o640);
      expect(await text(b, '/new')).toBe('part1 part2');
      expect(await names(b, '/')).toEqual(['new']);
    });

    it('createWriter keeps old content until commit; abort leaves it', async () => {
      await put(b, '/f', 'old');
      const idBefore = (await b.stat('/f')).nativeId;
      const w = await b.createWriter('/f');
      await w.write(Buffer.from('new content'));
      expect(await text(b, '/f')).toBe('old');
      await w.commit();
      expect(await text(b, '/f')).toBe('new content');
      expect((await b.stat('/f')).nativeId).not.toBe(idBefore);
      const a = await b.createWriter('/f');
      await a.write(Buffer.from('discarded'));
      await a.abort();
      expect(await text(b, '/f')).toBe('new content');
      expect(await names(b, '/')).toEqual(['f']);
    });

    it('exclusive writer commit fails with EEXIST when the target appeared meanwhile', async () => {
      const w = await b.createWriter('/x', { exclusive: true });
      await w.write(Buffer.from('mine'));
      await put(b, '/x', 'theirs');
      await rejectsWith(w.commit(), 'EEXIST');
      expect(await text(b, '/x')).toBe('theirs');
      expect(await names(b, '/')).toEqual(['x']);
      const ok = await b.createWriter('/y', { exclusive: true });
      await ok.write(Buffer.from('y'));
      await ok.commit();
      expect(await text(b, '/y')).toBe('y');
    });

    it('unlink: EISDIR on a directory, ENOENT when missing; rmdir: ENOTEMPTY, ENOTDIR', async () => {
      await b.mkdir('/d');
      await put(b, '/d/f', 'x');
      await rejectsWith(b.unlink('/d'), 'EISDIR');
      await rejectsWith(b.rmdir('/d'), 'ENOTEMPTY');
      await rejectsWith(b.rmdir('/d/f'), 'ENOTDIR');
      await b.unlink('/d/f');
      await rejectsWith(b.unlink('/d/f'), 'ENOENT');
      await b.rmdir('/d');
      await rejectsWith(b.stat('/d'), 'ENOENT');
      await rejectsWith(b.rmdir('/d'), 'ENOENT');
    });

    it('rename replaces a file and moves a directory with its contents', async () => {
      if (!b.capabilities.atomicRename) {
        expect(b.rename).toBeUndefined();
        return;
      }
      const rename = b.rename?.bind(b);
      if (rename === undefined) throw new Error('atomicRename without rename()');
      await put(b, '/a', 'A');
      await put(b, '/b', 'B');
      await rename('/a', '/b');
      await rejectsWith(b.stat('/a'), 'ENOENT');
      expect(await text(b, '/b')).toBe('A');
      await b.mkdir('/d1');
      await b.mkdir('/d1/inner');
      await put(b, '/d1/inner/f', 'deep');
      await b.mkdir('/d2');
      await rename('/d1', '/d2/moved');
      await rejectsWith(b.stat('/d1'), 'ENOENT');
      expect(await text(b, '/d2/moved/inner/f')).toBe('deep');
      expect(await names(b, '/')).toEqual(['b', 'd2']);
      await rejectsWith(rename('/nope', '/z'), 'ENOENT');
      await rejectsWith(rename('/b', '/nope/z'), 'ENOENT');
      await rejectsWith(rename('/d2', '/d2/moved/inside'), 'EINVAL');
    });

    it('copy duplicates a file, keeping mode and mtime', async () => {
      if (!b.capabilities.serverSideCopy) {
        expect(b.copy).toBeUndefined();
        return;
      }
      const copy = b.copy?.bind(b);
      if (copy === undefined) throw new Error('serverSideCopy without copy()');
      await put(b, '/src', 'payload');
      const mtimeNs = 1_600_000_000_123_456_000n;
      await b.setMetadata('/src', { mode: 0o600, mtimeNs });
      await put(b, '/dst', 'old');
      const st = await copy('/src', '/dst');
      expect(st).toMatchObject({ name: 'dst', type: 'file', size: 7 });
      expect(await text(b, '/dst')).toBe('payload');
      expect(await text(b, '/src')).toBe('payload');
      const dst = await b.stat('/dst');
      if (b.capabilities.posixMetadata) expect(dst.mode).toBe(0o600);
      const diff = dst.mtimeNs - mtimeNs;
      expect(Number(diff < 0n ? -diff : diff)).toBeLessThan(b.capabilities.timestampPrecisionNs);
      expect(dst.nativeId).not.toBe((await b.stat('/src')).nativeId);
      await b.mkdir('/d');
      await rejectsWith(copy('/d', '/d2'), 'EISDIR');
    });

    it('symlink / readlink when supported', async () => {
      if (!b.capabilities.symlinks) {
        expect(b.symlink).toBeUndefined();
        expect(b.readlink).toBeUndefined();
        return;
      }
      const symlink = b.symlink?.bind(b);
      const readlink = b.readlink?.bind(b);
      if (symlink === undefined || readlink === undefined) throw new Error('symlinks without symlink()/readlink()');
      await b.mkdir('/d');
      await put(b, '/d/f', 'x');
      const st = await symlink('d/f', '/ln');
      expect(st).toMatchObject({ name: 'ln', type: 'symlink' });
      expect(await readlink('/ln')).toBe('d/f');
      expect(await b.stat('/ln')).toMatchObject({ type: 'symlink', target: 'd/f' });
      const listed = (await b.list('/', { limit: 10 })).entries.find((e) => e.name === 'ln');
      expect(listed?.type).toBe('symlink');
      await rejectsWith(symlink('x', '/ln'), 'EEXIST');
      await rejectsWith(readlink('/d/f'), 'EINVAL');
      // Never followed, not even to a target inside the share.
      await symlink('d', '/dl');
      await rejectsWith(b.stat('/dl/f'), 'ELOOP');
      await rejectsWith(b.read('/ln', 0, 1), 'ELOOP');
      await b.unlink('/ln');
      await rejectsWith(b.stat('/ln'), 'ENOENT');
      expect(await text(b, '/d/f')).toBe('x');
    });

    it('hard links when supported', async () => {
      if (!b.capabilities.hardLinks) {
        expect(b.link).toBeUndefined();
        return;
      }
      const link = b.link?.bind(b);
      if (link === undefined) throw new Error('hardLinks without link()');
      await put(b, '/a', 'shared');
      const st = await link('/a', '/b');
      expect(st.nlink).toBe(2);
      expect(st.nativeId).toBe((await b.stat('/a')).nativeId);
      if (b.capabilities.randomWrites) {
        const f = await b.openFile('/b', { write: true });
        await f.write(0, Buffer.from('S'));
        await f.close();
        expect(await text(b, '/a')).toBe('Shared');
      }
      await b.unlink('/a');
      expect((await b.stat('/b')).nlink).toBe(1);
      await rejectsWith(link('/b', '/b'), 'EEXIST');
      await b.mkdir('/d');
      await rejectsWith(link('/d', '/d2'), 'EPERM');
    });

    it('setMetadata round-trips mode and times within timestampPrecisionNs', async () => {
      await put(b, '/f', 'x');
      const mtimeNs = 1_700_000_000_123_456_789n;
      const atimeNs = 1_650_000_000_987_654_321n;
      const st = await b.setMetadata('/f', { mode: 0o4751, mtimeNs, atimeNs });
      const again = await b.stat('/f');
      const precision = b.capabilities.timestampPrecisionNs;
      for (const s of [st, again]) {
        if (b.capabilities.posixMetadata) expect(s.mode).toBe(0o4751);
        const dm = s.mtimeNs - mtimeNs;
        const da = s.atimeNs - atimeNs;
        expect(Number(dm < 0n ? -dm : dm)).toBeLessThan(precision);
        expect(Number(da < 0n ? -da : da)).toBeLessThan(precision);
      }
      // Only mtime: atime is kept.
      const m2 = 1_710_000_000_000_001_000n;
      const only = await b.setMetadata('/f', { mtimeNs: m2 });
      expect(Number(only.atimeNs - again.atimeNs)).toBe(0);
      await b.mkdir('/d');
      const d = await b.setMetadata('/d', { mode: 0o700 });
      if (b.capabilities.posixMetadata) expect(d.mode).toBe(0o700);
      await rejectsWith(b.setMetadata('/nope', { mode: 0o600 }), 'ENOENT');
    });

    it('statfs reports sane numbers', async () => {
      const s = await b.statfs();
      expect(s.totalBytes).toBeGreaterThan(0);
      expect(s.freeBytes).toBeLessThanOrEqual(s.totalBytes);
      expect(s.availableBytes).toBeLessThanOrEqual(s.freeBytes);
      expect(s.availableBytes).toBeGreaterThanOrEqual(0);
      expect(s.blockSize).toBeGreaterThan(0);
      expect(s.totalFiles).toBeGreaterThanOrEqual(s.freeFiles);
    });

    it('an open file keeps working after its path is unlinked or renamed', async () => {
      await put(b, '/f', 'still here');
      const f = await b.openFile('/f', { write: false });
      await b.unlink('/f');
      await rejectsWith(b.stat('/f'), 'ENOENT');
      expect((await f.read(0, 100)).toString()).toBe('still here');
      expect((await f.stat()).size).toBe(10);
      await f.close();
      await rejectsWith(f.read(0, 1), 'EBADF');
      if (!b.capabilities.randomWrites) return;
      await put(b, '/g', 'abc');
      const g = await b.openFile('/g', { write: true });
      if (b.rename !== undefined) {
        await b.rename('/g', '/h');
        await g.write(3, Buffer.from('def'));
        expect(await text(b, '/h')).toBe('abcdef');
      }
      await b.unlink(b.rename !== undefined ? '/h' : '/g');
      await g.write(0, Buffer.from('X'));
      expect((await g.read(0, 10)).toString()).toBe(b.rename !== undefined ? 'Xbcdef' : 'Xbc');
      await g.close();
    });

    it('timestamps: writes move mtime forward and nativeId stays with the content', async () => {
      await put(b, '/f', 'x');
      const before = await b.stat('/f');
      await b.setMetadata('/f', { mtimeNs: 1_000_000_000_000_000_000n });
      await b.truncate('/f', 0);
      const after = await b.stat('/f');
      expect(after.mtimeNs).toBeGreaterThan(1_000_000_000_000_000_000n);
      expect(after.nativeId).toBe(before.nativeId);
      expect(after.size).toBe(0);
    });
  });
}

backendContract('local', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portico-contract-'));
  // fsync off: the contract is about semantics, and 2,500 fsyncs would dominate the run.
  return { backend: new LocalBackend(join(dir, 'root'), { fsync: false }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

backendContract('memory (posix)', async () => ({ backend: new MemoryBackend(), cleanup: async () => {} }));

backendContract('memory (objectstore)', async () => ({
  backend: new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }),
  cleanup: async () => {},
}));

describe('createBackend', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-create-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('maps sources to backends', async () => {
    const plain = await createBackend(join(dir, 'plain'));
    expect(plain.kind).toBe('local');
    expect((await plain.stat('/')).type).toBe('dir');
    const url = await createBackend(`file://${join(dir, 'url')}`, { fsync: false });
    expect(url).toBeInstanceOf(LocalBackend);
    await put(url, '/x', 'y');
    expect(await text(await createBackend(join(dir, 'url')), '/x')).toBe('y');
    const mem = await createBackend('memory:');
    expect(mem.kind).toBe('memory');
    expect(mem.capabilities.randomWrites).toBe(true);
    const os = await createBackend('memory:objectstore', { totalBytes: 1000 });
    expect(os.capabilities).toMatchObject({ randomWrites: false, atomicRename: false, hardLinks: false, symlinks: false, serverSideCopy: true });
    expect(os.rename).toBeUndefined();
    expect((await os.statfs()).totalBytes).toBe(1000);
  });

  it('builds s3:// sources, refuses malformed sources', async () => {
    const s3 = await createBackend('s3://bucket/prefix', { endpoint: 'http://127.0.0.1:1' });
    expect(s3.kind).toBe('s3');
    await s3.close();
    // shard+ sources are shard sets (backends/shard/): a malformed location is refused the same way.
    await expect(createBackend('shard+s3://a,b')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(createBackend('shard+memory:')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(createBackend('memory:weird')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(createBackend('')).rejects.toMatchObject({ code: 'EINVAL' });
    // A malformed s3:// source fails before the S3 module is loaded, with the same error.
    await expect(createBackend('s3://b', { partSize: '1MiB' })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('loads the AWS SDK only when an s3:// backend is created', async () => {
    // A fresh process (this one has loaded the SDK through other tests): a resolve hook records
    // every module of the SDK's graph that gets imported.
    const root = join(import.meta.dirname, '..', '..');
    const script = `
      import { registerHooks } from 'node:module';
      const seen = [];
      registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); if (/@aws-sdk|@smithy/.test(r.url)) seen.push(r.url); return r; } });
      await import(${JSON.stringify(pathToFileURL(join(root, 'src/server/gateway.ts')).href)});
      const { createBackend } = await import(${JSON.stringify(pathToFileURL(join(root, 'backends/index.ts')).href)});
      await createBackend('memory:');
      await createBackend(${JSON.stringify(dir)});
      const before = seen.length;
      const b = await createBackend('s3://bucket/p', { endpoint: 'http://127.0.0.1:1', accessKeyId: 'a', secretAccessKey: 'b' });
      await b.close();
      process.stdout.write(JSON.stringify({ before, after: seen.length, kind: b.kind }));
    `;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const r = JSON.parse(out) as { before: number; after: number; kind: string };
    expect(r.before).toBe(0);
    expect(r.after).toBeGreaterThan(0);
    expect(r.kind).toBe('s3');
  });
});

describe('memory backend specifics', () => {
  it('enforces totalBytes with ENOSPC and frees space on unlink', async () => {
    const b = new MemoryBackend({ totalBytes: 100 });
    await put(b, '/a', Buffer.alloc(60));
    expect((await b.statfs()).freeBytes).toBe(40);
    const w = await b.createWriter('/b');
    await rejectsWith(w.write(Buffer.alloc(50)), 'ENOSPC');
    await rejectsWith(b.truncate('/a', 101), 'ENOSPC');
    const f = await b.openFile('/a', { write: true });
    await rejectsWith(f.write(90, Buffer.alloc(20)), 'ENOSPC');
    await b.unlink('/a');
    // Still open: the space stays used until the last close (POSIX).
    expect((await b.statfs()).freeBytes).toBe(40);
    await f.close();
    expect((await b.statfs()).freeBytes).toBe(100);
    // Replacing a file reuses its space.
    await put(b, '/c', Buffer.alloc(80));
    await put(b, '/c', Buffer.alloc(90));
    expect((await b.statfs()).freeBytes).toBe(10);
  });

  it('honours a case-insensitive override', async () => {
    const b = new MemoryBackend({ capabilities: { caseSensitive: false } });
    await put(b, '/Readme.TXT', 'hi');
    expect(await text(b, '/README.txt')).toBe('hi');
    expect((await b.stat('/readme.txt')).name).toBe('Readme.TXT');
    await rejectsWith(b.mkdir('/README.TXT'), 'EEXIST');
    await b.rename?.('/readme.txt', '/ReadMe.txt');
    expect(await names(b, '/')).toEqual(['ReadMe.txt']);
  });

  it('counts directory links like POSIX', async () => {
    const b = new MemoryBackend();
    await b.mkdir('/d');
    await b.mkdir('/d/x');
    await b.mkdir('/d/y');
    expect((await b.stat('/d')).nlink).toBe(4);
    await b.rmdir('/d/y');
    expect((await b.stat('/d')).nlink).toBe(3);
  });
});
