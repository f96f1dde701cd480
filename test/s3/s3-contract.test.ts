/**
 * The backend contract (src/vfs/backend.ts) on S3, over a real s3rver, including what is specific
 * to an object store: the mapping seen by other S3 tools, implied and marker directories, metadata
 * in x-amz-meta-*, and listing order rules.
 */
import { describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Backend } from '../../backends/s3/s3-backend.ts';
import { names, put, rejectsWith, useS3Env, text, type S3Env } from './fixture.ts';
import { until } from '../vfs-writeback/gate.ts';

let env: S3Env;
useS3Env((e) => (env = e));

const key = (b: S3Backend, path: string): string => b.keys.fileKey(path);

describe('S3 backend contract', () => {
  it('stats the root, passes check(), reports statfs', async () => {
    const b = env.backend({ direct: true });
    expect(await b.stat('/')).toMatchObject({ type: 'dir', name: '' });
    await b.check();
    const s = await b.statfs();
    expect(s.totalBytes).toBeGreaterThan(0);
    expect(s.availableBytes).toBeLessThanOrEqual(s.freeBytes);
    expect(s.freeFiles).toBeLessThanOrEqual(s.totalFiles);
  });

  it('one object per file at prefix + path; directories are dir/ markers', async () => {
    const b = env.backend({ direct: true });
    await b.mkdir('/docs', 0o750);
    await put(b, '/docs/readme.txt', 'hello');
    expect((await env.rawGet(key(b, '/docs/readme.txt')))?.toString()).toBe('hello');
    expect(await env.rawHead(b.keys.dirKey('/docs'))).toBe(true);
    const listed = await env.raw.send(new ListObjectsV2Command({ Bucket: env.s3.bucket, Prefix: b.keys.prefix }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual([`${b.keys.prefix}docs/`, `${b.keys.prefix}docs/readme.txt`]);
    expect(await b.stat('/docs')).toMatchObject({ type: 'dir', mode: 0o750 });
  });

  it('mkdir: EEXIST, ENOENT for a missing parent, ENOTDIR under a file', async () => {
    const b = env.backend({ direct: true });
    expect(await b.mkdir('/d')).toMatchObject({ name: 'd', type: 'dir' });
    await rejectsWith(b.mkdir('/d'), 'EEXIST');
    await rejectsWith(b.mkdir('/missing/x'), 'ENOENT');
    await put(b, '/f', 'x');
    await rejectsWith(b.mkdir('/f'), 'EEXIST');
    await rejectsWith(b.mkdir('/f/x'), 'ENOTDIR');
  });

  it('ENOENT and ENOTDIR from stat, list, read and createWriter', async () => {
    const b = env.backend({ direct: true });
    await rejectsWith(b.stat('/nope'), 'ENOENT');
    await rejectsWith(b.list('/nope', { limit: 10 }), 'ENOENT');
    await put(b, '/f', 'x');
    await rejectsWith(b.stat('/f/x'), 'ENOTDIR');
    await rejectsWith(b.list('/f', { limit: 10 }), 'ENOTDIR');
    await rejectsWith(b.read('/f/x', 0, 1), 'ENOTDIR');
    await rejectsWith(b.createWriter('/f/x'), 'ENOTDIR');
    await rejectsWith(b.createWriter('/nope/x'), 'ENOENT');
    await b.mkdir('/d');
    await rejectsWith(b.read('/d', 0, 1), 'EISDIR');
    await rejectsWith(b.createWriter('/d'), 'EISDIR');
    await rejectsWith(b.createWriter('/' + 'n'.repeat(1100)), 'ENAMETOOLONG');
  });

  it('objects written by other tools: implied directories, default metadata, s3fs/rclone metadata honoured', async () => {
    const b = env.backend({ direct: true, defaultUid: 1000, defaultGid: 1000 });
    const p = b.keys.prefix;
    await env.rawPut(`${p}x/y/z.bin`, 'zzz');
    await env.rawPut(`${p}x/tool.sh`, '#!/bin/sh', { mode: String(0o100755), uid: '42', gid: '43', mtime: '1600000000' });
    expect(await b.stat('/x')).toMatchObject({ type: 'dir', mode: 0o755, uid: 1000 });
    expect(await b.stat('/x/y')).toMatchObject({ type: 'dir' });
    expect(await b.stat('/x/y/z.bin')).toMatchObject({ type: 'file', size: 3, mode: 0o644, uid: 1000, gid: 1000 });
    expect(await b.stat('/x/tool.sh')).toMatchObject({ mode: 0o755, uid: 42, gid: 43, mtimeNs: 1_600_000_000_000_000_000n });
    expect(await names(b, '/')).toEqual(['x']);
    expect(await names(b, '/x')).toEqual(['tool.sh', 'y']);
    // The implied directory /x/y must survive losing its last child (a marker is written first).
    await b.unlink('/x/y/z.bin');
    expect(await b.stat('/x/y')).toMatchObject({ type: 'dir' });
    expect(await env.rawHead(`${p}x/y/`)).toBe(true);
    await b.rmdir('/x/y');
    await rejectsWith(b.stat('/x/y'), 'ENOENT');
  });

  it('lists sorted by JS string order, including names S3 orders differently', async () => {
    const b = env.backend({ direct: true });
    await b.mkdir('/s');
    // '😀' vs '\uff21' (UTF-8 and UTF-16 disagree), and 'a' (a directory) vs 'a-1', 'a.txt', 'a b'.
    const files = ['b', 'B', '_x', 'é', '😀', '\uff21', 'a0', 'Z', 'a-1', 'a.txt', 'a b'];
    for (const n of files) await put(b, `/s/${n}`, n);
    await b.mkdir('/s/a');
    const expected = [...files, 'a'].sort();
    const listed = await b.list('/s', { limit: 100 });
    expect(listed.next).toBeUndefined();
    expect(listed.entries.map((e) => e.name)).toEqual(expected);
    expect(listed.entries.find((e) => e.name === 'a')?.type).toBe('dir');
    expect(listed.entries.find((e) => e.name === '😀')).toMatchObject({ type: 'file', size: 4 });
    // Every page size pages exactly once through the same order.
    for (const limit of [1, 2, 3, 5]) expect(await names(b, '/s', limit)).toEqual(expected);
    const mid = await b.list('/s', { after: 'a', limit: 3 });
    expect(mid.entries.map((e) => e.name)).toEqual(expected.filter((n) => n > 'a').slice(0, 3));
  });

  it('a directory that S3 lists after a page boundary still sorts into its place', async () => {
    const b = env.backend({ direct: true });
    await b.mkdir('/h');
    for (let i = 0; i < 6; i++) await put(b, `/h/doc-${i}`, 'x');
    await put(b, '/h/doc.txt', 'x');
    await b.mkdir('/h/doc');
    await put(b, '/h/doc/inner', 'x');
    await put(b, '/h/zz', 'x');
    const expected = ['doc', 'doc-0', 'doc-1', 'doc-2', 'doc-3', 'doc-4', 'doc-5', 'doc.txt', 'zz'];
    for (const limit of [1, 2, 4, 100]) expect(await names(b, '/h', limit)).toEqual(expected);
  });

  it('pages 600 entries with after/limit exactly once, in order', async () => {
    const b = env.backend({ direct: true });
    await b.mkdir('/big');
    const expected: string[] = [];
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 600; i++) {
      const n = `e${((i * 7919) % 600).toString(36)}-${i % 3 === 0 ? 'X' : 'y'}`;
      expected.push(n);
      writes.push(put(b, `/big/${n}`, ''));
      if (writes.length >= 16) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    expected.sort();
    let pages = 0;
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await b.list('/big', after === undefined ? { limit: 50 } : { after, limit: 50 });
      pages++;
      expect(page.entries.length).toBeLessThanOrEqual(50);
      seen.push(...page.entries.map((e) => e.name));
      if (page.next === undefined) break;
      after = page.next;
    }
    expect(seen).toEqual(expected);
    expect(pages).toBeGreaterThanOrEqual(12);
    const none = await b.list('/big', { after: '\uffff', limit: 3 });
    expect(none.entries).toEqual([]);
    expect(none.next).toBeUndefined();
  });

  it('reads ranges, short at EOF, empty past EOF', async () => {
    const b = env.backend({ direct: true });
    await put(b, '/f', 'hello world');
    expect((await b.read('/f', 0, 5)).toString()).toBe('hello');
    expect((await b.read('/f', 6, 100)).toString()).toBe('world');
    expect((await b.read('/f', 11, 10)).length).toBe(0);
    expect((await b.read('/f', 1000, 10)).length).toBe(0);
    await put(b, '/empty', '');
    expect((await b.read('/empty', 0, 10)).length).toBe(0);
  });

  it('openFile refuses writes (ENOTSUP) and reads through a read-only file', async () => {
    const b = env.backend({ direct: true });
    await put(b, '/f', 'abc');
    await rejectsWith(b.openFile('/f', { write: true }), 'ENOTSUP');
    const ro = await b.openFile('/f', { write: false });
    expect((await ro.read(1, 10)).toString()).toBe('bc');
    expect((await ro.stat()).size).toBe(3);
    await rejectsWith(ro.write(0, Buffer.from('x')), 'EBADF');
    await ro.close();
    await rejectsWith(ro.read(0, 1), 'EBADF');
  });

  it('createWriter publishes atomically at commit; abort keeps the old content', async () => {
    const b = env.backend({ direct: true });
    const w = await b.createWriter('/new');
    await w.write(Buffer.from('part1 '));
    await w.write(Buffer.from('part2'));
    await rejectsWith(b.stat('/new'), 'ENOENT');
    const st = await w.commit({ mode: 0o640 });
    expect(st).toMatchObject({ name: 'new', type: 'file', size: 11, mode: 0o640 });
    expect(await text(b, '/new')).toBe('part1 part2');
    const idBefore = (await b.stat('/new')).nativeId;
    const a = await b.createWriter('/new');
    await a.write(Buffer.from('discarded'));
    await a.abort();
    expect(await text(b, '/new')).toBe('part1 part2');
    await put(b, '/new', 'changed');
    expect((await b.stat('/new')).nativeId).not.toBe(idBefore);
    // A rewrite keeps mode and birth time, like an inode.
    const again = await b.stat('/new');
    expect(again.mode).toBe(0o640);
    expect(again.birthtimeNs).toBe(st.birthtimeNs);
  });

  it('exclusive commit fails with EEXIST when the target appeared meanwhile', async () => {
    const b = env.backend({ direct: true });
    const w = await b.createWriter('/x', { exclusive: true });
    await w.write(Buffer.from('mine'));
    await put(b, '/x', 'theirs');
    await rejectsWith(w.commit(), 'EEXIST');
    expect(await text(b, '/x')).toBe('theirs');
    await put(b, '/y', 'y', { exclusive: true });
    expect(await text(b, '/y')).toBe('y');
  });

  it('unlink / rmdir semantics', async () => {
    const b = env.backend({ direct: true });
    await b.mkdir('/d');
    await put(b, '/d/f', 'x');
    await rejectsWith(b.unlink('/d'), 'EISDIR');
    await rejectsWith(b.rmdir('/d'), 'ENOTEMPTY');
    await rejectsWith(b.rmdir('/d/f'), 'ENOTDIR');
    await b.unlink('/d/f');
    await rejectsWith(b.unlink('/d/f'), 'ENOENT');
    // The directory had a marker: it stays, empty.
    expect(await names(b, '/d')).toEqual([]);
    await b.rmdir('/d');
    await rejectsWith(b.stat('/d'), 'ENOENT');
    await rejectsWith(b.rmdir('/d'), 'ENOENT');
    await rejectsWith(b.rmdir('/'), 'EBUSY');
  });

  it('copy is server-side and keeps mode and mtime (a rename by copy must not touch them)', async () => {
    const b = env.backend({ direct: true });
    await put(b, '/src', 'payload');
    const mtimeNs = 1_600_000_000_123_456_000n;
    await b.setMetadata('/src', { mode: 0o600, mtimeNs });
    await put(b, '/dst', 'old');
    env.proxy.resetLog();
    const st = await b.copy('/src', '/dst');
    expect(st).toMatchObject({ name: 'dst', type: 'file', size: 7, mode: 0o600, mtimeNs });
    expect(await text(b, '/dst')).toBe('payload');
    // Without an explicit mtime the copy keeps the source's LastModified-based one.
    await put(b, '/plain', 'p');
    const plain = await b.stat('/plain');
    await new Promise((r) => setTimeout(r, 1100));
    expect((await b.copy('/plain', '/plain2')).mtimeNs).toBe(plain.mtimeNs);
    await b.mkdir('/d');
    await rejectsWith(b.copy('/d', '/d2'), 'EISDIR');
    await rejectsWith(b.copy('/missing', '/d3'), 'ENOENT');
  });

  it('setMetadata round-trips mode, owner and ns times, keeps atime when only mtime changes, and works on directories', async () => {
    const b = env.backend({ direct: true });
    await put(b, '/f', 'x');
    const before = await b.stat('/f');
    const mtimeNs = 1_700_000_000_123_456_789n;
    const atimeNs = 1_650_000_000_987_654_321n;
    const st = await b.setMetadata('/f', { mode: 0o4751, uid: 7, gid: 8, mtimeNs, atimeNs });
    for (const s of [st, await b.stat('/f'), await env.backend({ direct: true, prefix: b.keys.prefix }).stat('/f')]) {
      expect(s).toMatchObject({ mode: 0o4751, uid: 7, gid: 8, mtimeNs, atimeNs });
    }
    const only = await b.setMetadata('/f', { mtimeNs: 1_710_000_000_000_001_000n });
    expect(only.atimeNs).toBe(atimeNs);
    // chmod alone does not move mtime (S3 rewrites the object, the old mtime is stored explicitly).
    await put(b, '/g', 'y');
    const g = await b.stat('/g');
    await new Promise((r) => setTimeout(r, 1100));
    expect((await b.setMetadata('/g', { mode: 0o600 })).mtimeNs).toBe(g.mtimeNs);
    expect(before.nativeId).toBeDefined();
    await b.mkdir('/d');
    expect((await b.setMetadata('/d', { mode: 0o700 })).mode).toBe(0o700);
    expect((await b.stat('/d')).mode).toBe(0o700);
    await rejectsWith(b.setMetadata('/nope', { mode: 0o600 }), 'ENOENT');
  });

  it('truncate extends with zeros and shortens, moving mtime forward', async () => {
    const b = env.backend({ direct: true });
    await put(b, '/f', 'abcdef');
    await b.setMetadata('/f', { mtimeNs: 1_000_000_000_000_000_000n });
    await b.truncate('/f', 3);
    expect(await text(b, '/f')).toBe('abc');
    await b.truncate('/f', 5);
    expect(await b.read('/f', 0, 10)).toEqual(Buffer.from([0x61, 0x62, 0x63, 0, 0]));
    const after = await b.stat('/f');
    expect(after.mtimeNs).toBeGreaterThan(1_000_000_000_000_000_000n);
    await b.truncate('/f', 0);
    expect((await b.stat('/f')).size).toBe(0);
  });

  it('an open file keeps serving the version it opened after unlink (cached blocks)', async () => {
    const b = env.backend({ direct: true });
    await put(b, '/f', 'still here');
    const f = await b.openFile('/f', { write: false });
    await b.unlink('/f');
    await rejectsWith(b.stat('/f'), 'ENOENT');
    expect((await f.read(0, 100)).toString()).toBe('still here');
    await f.close();
  });

  it('recover() leaves uploads of this process and young foreign uploads alone', async () => {
    const b = env.backend({ direct: true });
    const created = await env.raw.send(new CreateMultipartUploadCommand({ Bucket: env.s3.bucket, Key: `${b.keys.prefix}young` }));
    expect(created.UploadId).toBeDefined();
    expect(await b.recover()).toBe(0);
    expect((await b.transport.listUploads(b.keys.prefix)).length).toBe(1);
  });

  it('caches lookups (also negative) and listings for the TTL; own writes invalidate; TTL 0 always asks', async () => {
    const b = env.backend({ metaTtlMs: 60_000 });
    await b.mkdir('/d');
    await put(b, '/d/a', 'a');
    env.proxy.resetLog();
    // /d was created here: its membership is known, so a miss in it costs no request at all.
    await rejectsWith(b.stat('/d/missing'), 'ENOENT');
    expect(env.proxy.log.length).toBe(0);
    // Without that knowledge a miss costs one HEAD (and one listing probe), then it is cached; a
    // plain miss does not teach the membership (only creating a file does).
    b.invalidate('/d/missing');
    await rejectsWith(b.stat('/d/missing'), 'ENOENT');
    await rejectsWith(b.stat('/d/missing'), 'ENOENT');
    expect(env.proxy.count('HeadObject')).toBe(1);
    expect(await names(b, '/d')).toEqual(['a']);
    expect(await names(b, '/d')).toEqual(['a']);
    expect(env.proxy.count('ListObjectsV2')).toBe(2);
    // Our own write shows at once, in stat and in listings.
    await put(b, '/d/missing', 'now here');
    expect(await text(b, '/d/missing')).toBe('now here');
    expect(await names(b, '/d')).toEqual(['a', 'missing']);
    // Someone else's write shows after the TTL (or invalidate()); with TTL 0 at once.
    await env.rawPut(b.keys.fileKey('/d/other'), 'x');
    expect(await names(b, '/d')).toEqual(['a', 'missing']);
    const fresh = env.backend({ prefix: b.keys.prefix, metaTtlMs: 0 });
    env.proxy.resetLog();
    expect(await names(fresh, '/d')).toEqual(['a', 'missing', 'other']);
    expect(await names(fresh, '/d')).toEqual(['a', 'missing', 'other']);
    await rejectsWith(fresh.stat('/d/nope'), 'ENOENT');
    await rejectsWith(fresh.stat('/d/nope'), 'ENOENT');
    expect(env.proxy.count('HeadObject')).toBeGreaterThanOrEqual(3);
    expect(env.proxy.count('ListObjectsV2')).toBeGreaterThanOrEqual(4);
  });

  it('creating a file teaches its directory: the next new files there cost one PutObject each', async () => {
    const b = env.backend({ metaTtlMs: 60_000 });
    await b.mkdir('/d');
    await env.rawPut(b.keys.fileKey('/d/old'), 'x');
    b.invalidate('/');
    await put(b, '/d/f0', 'first');
    expect(env.proxy.count('ListObjectsV2')).toBeGreaterThanOrEqual(1);
    env.proxy.resetLog();
    for (let i = 1; i <= 4; i++) await put(b, `/d/f${i}`, `file ${i}`);
    expect(env.proxy.count('ListObjectsV2')).toBe(0);
    expect(env.proxy.count('PutObject')).toBe(4);
    // No HEAD after a PutObject: its answer's Date stands in for LastModified (published()).
    expect(env.proxy.log.length).toBe(4);
    // What the store held before is still found (the membership came from its listing).
    expect(await text(b, '/d/old')).toBe('x');
    expect(await names(b, '/d')).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'old']);
  });

  /** How a gateway creates a file: a lookup of the new name (ENOENT), then the upload. */
  const create = async (b: S3Backend, path: string, data: string): Promise<void> => {
    await rejectsWith(b.stat(path), 'ENOENT');
    await put(b, path, data);
  };
  /** Miss probes: ListObjectsV2 of a file name's own prefix (what a lookup of a missing name sends). */
  const probes = (b: S3Backend, dir: string): number => env.proxy.log.filter((e) => e.op === 'ListObjectsV2'
    && new URL(e.url, 'http://x').searchParams.get('prefix')?.startsWith(`${key(b, dir)}/f`) === true).length;

  it('a PutObject is not HEADed: LastModified is its answer Date until a listing or a HEAD shows the store\'s own value', async () => {
    const b = env.backend({ metaTtlMs: 60_000 });
    await b.mkdir('/p');
    env.proxy.resetLog();
    const w = await b.createWriter('/p/f', { mode: 0o600 });
    await w.write(Buffer.from('provisional'));
    const st = await w.commit();
    expect(env.proxy.log.filter((e) => e.op !== 'ListObjectsV2').map((e) => e.op)).toEqual(['PutObject']);
    // What a HEAD reports for it (another backend, nothing cached): the same size, ETag, mode,
    // owner and birth time; LastModified within the PUT's second.
    const other = env.backend({ prefix: b.keys.prefix.replace(/\/$/, '') });
    const real = await other.stat('/p/f');
    expect({ ...st, mtimeNs: 0n, ctimeNs: 0n, atimeNs: 0n }).toEqual({ ...real, mtimeNs: 0n, ctimeNs: 0n, atimeNs: 0n });
    expect(st.ctimeNs - real.ctimeNs).toBeGreaterThanOrEqual(0n);
    expect(st.ctimeNs - real.ctimeNs).toBeLessThanOrEqual(1_000_000_000n);
    // The store's value shown by a listing replaces the provisional one, in the listing and in
    // stat. The store's LastModified is made to differ from the Date by rewriting the listing.
    const k = b.keys.fileKey('/p/f');
    const page = await b.transport.list(b.keys.dirKey('/p'), { delimiter: '/' });
    const listed = page.keys.find((x) => x.key === k);
    expect(listed?.etag).toBe(st.nativeId);
    const earlier = new Date((listed?.lastModified?.getTime() ?? 0) - 1000);
    expect(b.meta.attr(k, listed?.etag ?? '', earlier)?.mtimeNs).toBe(BigInt(earlier.getTime()) * 1_000_000n);
    const after = await b.stat('/p/f');
    expect(after.mtimeNs).toBe(BigInt(earlier.getTime()) * 1_000_000n);
    expect(after.ctimeNs).toBe(after.mtimeNs);
    expect(after.mode).toBe(0o600);
    // Once corrected, another LastModified for the same ETag is not taken (only the provisional one moves).
    expect(b.meta.attr(k, listed?.etag ?? '', new Date(earlier.getTime() - 5000))).toBeUndefined();
    expect((await b.stat('/p/f')).mtimeNs).toBe(after.mtimeNs);
  });

  it('new names created while the directory is being listed wait for that listing, not a HEAD + LIST each', async () => {
    const b = env.backend({ metaTtlMs: 60_000 });
    await env.rawPut(key(b, '/d/old'), 'x');
    // The membership listing (the only one with a delimiter below /d) is slow, as s3rver is with a
    // few hundred keys on a loaded machine.
    env.proxy.inject({ kind: 'delay', ms: 500, match: (r) => r.op === 'ListObjectsV2' && r.url.includes('delimiter=') && r.url.includes(encodeURIComponent(`${key(b, '/d')}/`)) });
    await create(b, '/d/f0', 'first');
    env.proxy.resetLog();
    for (let i = 1; i <= 5; i++) await create(b, `/d/f${i}`, `file ${i}`);
    // Before: each of the five cost HeadObject + ListObjectsV2 (the miss) while the listing ran.
    expect(probes(b, '/d')).toBe(0);
    expect(env.proxy.count('PutObject')).toBe(5);
    expect(env.proxy.count('HeadObject')).toBe(0); // none after a PutObject either (published())
    expect(await names(b, '/d')).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'old']);
    expect(await text(b, '/d/old')).toBe('x');
  });

  it('a run of creates refreshes the membership before it expires: no lookup of a new name reaches the store', async () => {
    // Long enough that one create (lookup + PUT + HEAD) stays well under half of it on a loaded machine.
    const ttl = 3000;
    const b = env.backend({ metaTtlMs: ttl });
    await env.rawPut(key(b, '/d/old'), 'x');
    await create(b, '/d/f0', 'first');
    // Wait for the membership listing the first create started.
    for (let i = 0; i < 100 && env.proxy.log.filter((e) => e.op === 'ListObjectsV2' && e.url.includes('delimiter=')).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    env.proxy.resetLog();
    // Creates for two TTLs and a bit (bounded by count): before, every expiry cost the next new name
    // a HEAD + ListObjectsV2 (and each one during the new listing too).
    const start = Date.now();
    let n = 1;
    for (; n <= 400 && Date.now() - start < 2.2 * ttl; n++) {
      await create(b, `/d/f${n}`, 'x');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(n).toBeGreaterThan(10);
    expect(probes(b, '/d')).toBe(0);
    expect(env.proxy.count('PutObject')).toBe(n - 1);
    expect(await text(b, '/d/old')).toBe('x');
    expect((await names(b, '/d')).length).toBe(n + 1);
  });

  it('a listing our own upload raced is not cached: the new name shows in the next listing', async () => {
    const b = env.backend({ metaTtlMs: 60_000 });
    await b.mkdir('/r');
    await put(b, '/r/a', 'a');
    // The store lists at once, its answer comes back late; meanwhile our upload of /r/b lands
    // (as an async write-back upload does in the background).
    env.proxy.inject({ kind: 'delayAnswer', ms: 600, match: (r) => r.op === 'ListObjectsV2' && r.url.includes('delimiter=') });
    const listing = names(b, '/r');
    await until(() => env.proxy.log.some((e) => e.op === 'ListObjectsV2' && e.url.includes('delimiter=')), 5000, 'the listing to reach the store');
    await new Promise((r) => setTimeout(r, 100));
    await put(b, '/r/b', 'b');
    expect(await listing).toEqual(['a']);
    // Before: that page was cached for the TTL, and /r/b was missing from listings until then.
    expect(await names(b, '/r')).toEqual(['a', 'b']);
  });

  it('invalidate() makes changes by other S3 clients visible before the TTL', async () => {
    const b = env.backend({ direct: true, metaTtlMs: 60_000 });
    await put(b, '/f', 'one');
    expect(await text(b, '/f')).toBe('one');
    await env.rawPut(key(b, '/f'), 'two!');
    expect(await text(b, '/f')).toBe('one');
    expect(b.invalidate('/')).toBeGreaterThan(0);
    expect(await text(b, '/f')).toBe('two!');
  });
});
