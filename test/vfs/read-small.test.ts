/**
 * The handle-less read of a small file (OpenFiles.readSmall, Backend.readSmallSync, used by
 * Session.readFile — WebDAV GET): it reads the same bytes and gives the same attributes and id as
 * open + fstat + read + close, and it is taken only when nothing could tell the difference — no
 * handle, share-mode record or stage on the file, no byte-range lock or lease anywhere, a regular
 * file no larger than the limit on a backend that reads synchronously. Otherwise the general path
 * runs and answers as it always did (a deny-read open elsewhere still refuses the read).
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { LEASE_R } from '../../src/locks/leases.ts';
import type { Session } from '../../src/session/session.ts';
import type { FileAttr } from '../../src/vfs/types.ts';
import { alice, bob, makeVfsEnv, RO, RW, useVfsEnvs, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';

const envs = useVfsEnvs('portico-read-small-');

function local(): { e: VfsEnv; root: string } {
  const { root, env } = envs.local();
  return { e: env, root };
}

/** readFile's result: whether it ran without a handle, the attributes it gave and the bytes read through it. */
async function readVia(s: Session, path: string): Promise<{ handleLess: boolean; attr: FileAttr; bytes: Buffer }> {
  return s.readFile('s', path, 'test', async (f) => {
    const buf = Buffer.alloc(f.attr.size + 16);
    let n = 0;
    for (;;) {
      const got = await f.read(n, buf.subarray(n));
      if (got === 0) break;
      n += got;
    }
    return { handleLess: f.handle === undefined, attr: f.attr, bytes: buf.subarray(0, n) };
  });
}

describe('handle-less read of a small file', () => {
  it('reads the bytes, attributes and id an open would give, and reads at offsets within the file', async () => {
    const { e, root } = local();
    const s = e.session(alice, 'webdav');
    writeFileSync(join(root, 'f.txt'), 'hello small world');
    const r = await readVia(s, '/f.txt');
    expect(r.handleLess).toBe(true);
    expect(r.bytes.toString()).toBe('hello small world');
    // The read itself may move atime (relatime): the rest is what getattr says.
    const attr = await s.getattr('s', '/f.txt');
    expect({ ...r.attr, atimeNs: 0n }).toEqual({ ...attr, atimeNs: 0n });
    const h = await s.open('s', '/f.txt', { access: RO, owner: 'o' });
    expect(h.fileId).toBe(r.attr.id);
    await s.close(h);
    const part = await s.readFile('s', '/f.txt', 'test', async (f) => {
      const b = Buffer.alloc(5);
      const n = await f.read(6, b);
      const past = await f.read(100, Buffer.alloc(4));
      return { text: b.subarray(0, n).toString(), past };
    });
    expect(part).toEqual({ text: 'small', past: 0 });
  });

  it('offers the bytes of a file read whole as they are (whole), counted as read like the reads through read()', async () => {
    const read: number[] = [];
    const metrics = { observeRequest: () => undefined, addBytes: (_p: string, d: 'read' | 'write', n: number) => void (d === 'read' && read.push(n)) };
    const { env: e, root } = envs.local({ metrics });
    const s = e.session(alice, 'webdav');
    writeFileSync(join(root, 'w.txt'), 'hello whole world');
    const got = await s.readFile('s', '/w.txt', 'test', async (f) => {
      expect(f.handle).toBeUndefined();
      return { all: f.whole!(0, f.attr.size - 1).toString(), part: f.whole!(6, 10).toString(), past: f.whole!(6, 100).toString() };
    });
    expect(got).toEqual({ all: 'hello whole world', part: 'whole', past: 'whole world' });
    expect(read).toEqual([17, 5, 11]);
    // Two reads of the same file get buffers of their own: sending one never shows the other's bytes.
    const [a, b] = await Promise.all([0, 1].map(() => s.readFile('s', '/w.txt', 'test', async (f) => f.whole!(0, 4))));
    a!.fill(0x2a);
    expect(b!.toString()).toBe('hello');
    // A file read through a handle offers none (its bytes come through read()).
    const big = 'x'.repeat(70 * 1024);
    writeFileSync(join(root, 'big'), big);
    expect(await s.readFile('s', '/big', 'test', async (f) => [f.handle !== undefined, f.whole])).toEqual([true, undefined]);
  });

  it('sees a change made outside Portico at the next read (the cached descriptor is checked)', async () => {
    const { e, root } = local();
    const s = e.session(alice, 'webdav');
    writeFileSync(join(root, 'g'), 'one');
    expect((await readVia(s, '/g')).bytes.toString()).toBe('one');
    writeFileSync(join(root, 'g'), 'two, longer');
    const r = await readVia(s, '/g');
    expect(r.handleLess).toBe(true);
    expect(r.bytes.toString()).toBe('two, longer');
    expect(r.attr.size).toBe(11);
  });

  it('a file larger than the limit is read through a handle, whole', async () => {
    const { e, root } = local();
    const s = e.session(alice, 'webdav');
    const big = Buffer.alloc(64 * 1024 + 1, 7);
    writeFileSync(join(root, 'big'), big);
    const r = await readVia(s, '/big');
    expect(r.handleLess).toBe(false);
    expect(r.bytes.equals(big)).toBe(true);
    writeFileSync(join(root, 'edge'), Buffer.alloc(64 * 1024, 1));
    expect((await readVia(s, '/edge')).handleLess).toBe(true);
  });

  it('a deny-read open in another session still refuses the read (ESHARING); a shared open sends it through a handle', async () => {
    const { e } = local();
    const s1 = e.session(alice, 'smb');
    const s2 = e.session(bob, 'webdav');
    await writeFile(s1, '/d', 'denied');
    const h = await s1.open('s', '/d', { access: RW, owner: 'x', share: { read: false, write: false, delete: false } });
    await expectCode(readVia(s2, '/d'), 'ESHARING');
    await s1.close(h);
    const h2 = await s1.open('s', '/d', { access: RO, owner: 'y' });
    const r = await readVia(s2, '/d');
    expect(r.handleLess).toBe(false);
    expect(r.bytes.toString()).toBe('denied');
    await s1.close(h2);
    expect((await readVia(s2, '/d')).handleLess).toBe(true);
  });

  it('any byte-range lock or lease anywhere sends reads through a handle, where lock rules apply', async () => {
    const { e } = local();
    const s1 = e.session(alice, 'nfs');
    const s2 = e.session(bob, 'webdav');
    await writeFile(s1, '/a', 'aaaa');
    await writeFile(s1, '/b', 'bbbb');
    expect((await readVia(s2, '/a')).handleLess).toBe(true);
    const h = await s1.open('s', '/b', { access: RW, owner: 'l' });
    await s1.lockHandle(h, { kind: 'exclusive', style: 'posix', range: { start: 0n, end: 4n }, ownerId: 'lo' });
    const r = await readVia(s2, '/a');
    expect(r.handleLess).toBe(false);
    expect(r.bytes.toString()).toBe('aaaa');
    // The lock's own file: the general path applies the lock rules (a posix lock is advisory for reads here).
    await s1.close(h);
    await s1.end();
    expect(e.vfs.locks.size).toBe(0);
    expect((await readVia(s2, '/a')).handleLess).toBe(true);
    // A lease anywhere (a client caching a file): reads go through a handle, which the lease table sees.
    const s3 = e.session(alice, 'smb');
    const hl = await s3.open('s', '/b', { access: RO, owner: 'lease' });
    s3.requestLease(hl, { key: 'k1', level: LEASE_R, onBreak: () => undefined });
    expect(e.vfs.leases.size).toBe(1);
    const rl = await readVia(s2, '/a');
    expect(rl.handleLess).toBe(false);
    expect(rl.bytes.toString()).toBe('aaaa');
    await s3.close(hl);
    await s3.end();
  });

  it('directories, symbolic links and missing names get the general path\'s answers', async () => {
    const { e, root } = local();
    const s = e.session(alice, 'webdav');
    mkdirSync(join(root, 'dir'));
    writeFileSync(join(root, 'target'), 't');
    symlinkSync('target', join(root, 'link'));
    await expectCode(readVia(s, '/dir'), 'EISDIR');
    await expectCode(readVia(s, '/link'), 'ELOOP');
    await expectCode(readVia(s, '/missing'), 'ENOENT');
    await expectCode(readVia(s, '/target/x'), 'ENOTDIR');
  });

  it('a file replaced outside gets a new id, never the old one\'s', async () => {
    const { e, root } = local();
    const s = e.session(alice, 'webdav');
    writeFileSync(join(root, 'r'), 'first');
    const first = await readVia(s, '/r');
    rmSync(join(root, 'r'));
    writeFileSync(join(root, 'r'), 'second file');
    const second = await readVia(s, '/r');
    expect(second.bytes.toString()).toBe('second file');
    expect(second.attr.id).not.toBe(first.attr.id);
  });

  it('a backend without synchronous reads (memory) reads through a handle', async () => {
    const s = envs.track(makeVfsEnv(new MemoryBackend())).session(alice, 'webdav');
    await writeFile(s, '/m', 'memory');
    const r = await readVia(s, '/m');
    expect(r.handleLess).toBe(false);
    expect(r.bytes.toString()).toBe('memory');
  });
});
