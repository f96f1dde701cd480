/**
 * The local backend's cache of read-only descriptors (backends/local/fd-cache.ts): a hot file is
 * read through one descriptor while it is unchanged, and every change — through Portico (a write
 * through a handle, a PUT's publish, a rename, a delete) or outside it (a write in place, an
 * editor's rename over the file, a delete, a rename of the file or of a hard link over it) — makes
 * the next open read what the path names now. A descriptor is closed only once it left the cache
 * and its last reader closed.
 */
import { appendFileSync, fstatSync, linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { ReadFdCache } from '../../backends/local/fd-cache.ts';
import { createBackend } from '../../backends/index.ts';
import type { BackendFile } from '../../src/vfs/backend.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { makeVfsEnv, type VfsEnv } from '../helpers/vfs-env.ts';
import { readFile, writeFile } from '../conformance/vfs-conformance.ts';

let root: string;
let b: LocalBackend;
const dirs: string[] = [];

async function readAll(f: BackendFile): Promise<string> {
  const st = await f.stat();
  return (await f.read(0, st.size)).toString();
}

/** Opens read-only, reads the whole file, closes. */
async function get(path: string): Promise<string> {
  const f = await b.openFile(path, { write: false });
  try {
    return await readAll(f);
  } finally {
    await f.close();
  }
}

function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'portico-fdcache-'));
  dirs.push(root);
  writeFileSync(join(root, 'a.txt'), 'v1');
  b = new LocalBackend(root, { fsync: false });
});

afterEach(async () => {
  await b.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('read-only descriptor cache of the local backend', () => {
  it('reuses the descriptor of an unchanged file, and its stat is the open file\'s', async () => {
    const cache = b.fdCache!;
    expect(cache).toBeDefined();
    expect(await get('/a.txt')).toBe('v1');
    expect(await get('/a.txt')).toBe('v1');
    expect(await get('/a.txt')).toBe('v1');
    expect(cache.added).toBe(1);
    expect(cache.hits).toBe(2);
    const f = await b.openFile('/a.txt', { write: false });
    expect(await f.stat()).toMatchObject({ name: 'a.txt', type: 'file', size: 2 });
    expect(await f.stat()).toMatchObject({ size: 2 });
    await f.close();
    // Directories, writes and creates are never cached.
    mkdirSync(join(root, 'd'));
    await (await b.openFile('/d', { write: false })).close();
    await (await b.openFile('/new.txt', { write: true, create: true })).close();
    expect(cache.added).toBe(1);
    expect(new LocalBackend(root, { readFdCache: 0 }).fdCache).toBeUndefined();
    // The share option.
    expect(((await createBackend(root, { readFdCache: 0 })) as LocalBackend).fdCache).toBeUndefined();
    await expect(createBackend(root, { readFdCache: -1 })).rejects.toSatisfy((e) => isVfsError(e, 'EINVAL'));
  });

  it('a write through Portico (a handle, a PUT\'s publish) is read at the next open', async () => {
    expect(await get('/a.txt')).toBe('v1');
    const w = await b.openFile('/a.txt', { write: true });
    await w.write(0, Buffer.from('v2 through a handle'));
    await w.close();
    expect(await get('/a.txt')).toBe('v2 through a handle');
    const put = await b.createWriter('/a.txt');
    await put.write(Buffer.from('v3 by a PUT'));
    await put.commit();
    expect(await get('/a.txt')).toBe('v3 by a PUT');
    await b.truncate('/a.txt', 2);
    expect(await get('/a.txt')).toBe('v3');
  });

  it('a rename and a delete through Portico: the old path is gone, the new one reads its file', async () => {
    writeFileSync(join(root, 'b.txt'), 'bee');
    expect(await get('/a.txt')).toBe('v1');
    expect(await get('/b.txt')).toBe('bee');
    await b.rename('/b.txt', '/a.txt');
    expect(await get('/a.txt')).toBe('bee');
    await b.unlink('/a.txt');
    await expect(get('/a.txt')).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
    // A directory renamed through Portico: nothing below it is served from the old path.
    mkdirSync(join(root, 'd'));
    writeFileSync(join(root, 'd', 'f'), 'in d');
    expect(await get('/d/f')).toBe('in d');
    await b.rename('/d', '/e');
    await expect(get('/d/f')).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
    expect(await get('/e/f')).toBe('in d');
  });

  it('outside changes: a write in place, an editor\'s rename over the file, a delete', async () => {
    expect(await get('/a.txt')).toBe('v1');
    appendFileSync(join(root, 'a.txt'), ' appended outside');
    expect(await get('/a.txt')).toBe('v1 appended outside');
    writeFileSync(join(root, '.a.txt.swp'), 'saved by an editor');
    renameSync(join(root, '.a.txt.swp'), join(root, 'a.txt'));
    expect(await get('/a.txt')).toBe('saved by an editor');
    unlinkSync(join(root, 'a.txt'));
    await expect(get('/a.txt')).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
    writeFileSync(join(root, 'a.txt'), 'created again');
    expect(await get('/a.txt')).toBe('created again');
  });

  it('outside: a file with a second hard link replaced by a rename over it, and a file renamed away', async () => {
    linkSync(join(root, 'a.txt'), join(root, 'a-link.txt'));
    expect(await get('/a.txt')).toBe('v1');
    // The old inode keeps a link: its ctime (a link count change) tells.
    writeFileSync(join(root, 'tmp'), 'replacement');
    renameSync(join(root, 'tmp'), join(root, 'a.txt'));
    expect(await get('/a.txt')).toBe('replacement');
    expect(await get('/a-link.txt')).toBe('v1');
    // Renamed away outside (ctime moves): the path is gone.
    renameSync(join(root, 'a-link.txt'), join(root, 'moved.txt'));
    await expect(get('/a-link.txt')).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
  });

  it('a descriptor is closed only after it left the cache and its last reader closed', async () => {
    const f1 = await b.openFile('/a.txt', { write: false });
    const f2 = await b.openFile('/a.txt', { write: false });
    expect(b.fdCache!.hits).toBe(1);
    const fd = (f1 as unknown as { fd: number }).fd;
    expect((f2 as unknown as { fd: number }).fd).toBe(fd);
    // Portico replaces the file: the cache lets go, the readers keep the file they opened.
    const put = await b.createWriter('/a.txt');
    await put.write(Buffer.from('new'));
    await put.commit();
    expect(b.fdCache!.size).toBe(0);
    expect(await readAll(f1)).toBe('v1');
    await f1.close();
    expect(isOpen(fd)).toBe(true);
    expect(await readAll(f2)).toBe('v1');
    await f2.close();
    expect(isOpen(fd)).toBe(false);
    // A cached descriptor nobody reads through is closed when it leaves the cache.
    await (await b.openFile('/a.txt', { write: false })).close();
    const g = await b.openFile('/a.txt', { write: false });
    const gfd = (g as unknown as { fd: number }).fd;
    await g.close();
    expect(isOpen(gfd)).toBe(true);
    await b.close();
    expect(isOpen(gfd)).toBe(false);
  });

  it('bounded (LRU), and expired descriptors are neither reused nor kept', async () => {
    const closed: number[] = [];
    const cache = new ReadFdCache({ max: 2, ttlMs: 10, closeFd: (fd) => closed.push(fd) });
    const { openSync, closeSync, fstatSync: fst } = await import('node:fs');
    const fds: number[] = [];
    for (const name of ['x', 'y', 'z']) {
      writeFileSync(join(root, name), name);
      const fd = openSync(join(root, name), 'r');
      fds.push(fd);
      cache.add(`/${name}`, fd, fst(fd, { bigint: true }), performance.now()).release();
    }
    expect(cache.size).toBe(2);
    expect(closed).toEqual([fds[0]]);
    const hit = cache.take('/z');
    expect(hit?.shared.fd).toBe(fds[2]);
    hit!.shared.release();
    await new Promise((r) => setTimeout(r, 30));
    expect(cache.take('/z')).toBeUndefined();
    expect(closed).toContain(fds[2]);
    cache.clear();
    expect(closed.sort()).toEqual([...fds].sort());
    for (const fd of fds) closeSync(fd);
  });
});

describe('through the VFS and a session (a GET\'s open, read, close)', () => {
  let env: VfsEnv | undefined;
  afterEach(async () => {
    await env?.destroy();
    env = undefined;
  });

  it('reads what the path names after Portico and outside changes', async () => {
    env = makeVfsEnv(b);
    const s = env.session();
    const get2 = async (): Promise<string> => (await readFile(s, '/a.txt')).toString();
    expect(await get2()).toBe('v1');
    expect(await get2()).toBe('v1');
    expect(b.fdCache!.hits).toBeGreaterThanOrEqual(1);
    await writeFile(s, '/a.txt', 'v2 through another protocol');
    expect(await get2()).toBe('v2 through another protocol');
    writeFileSync(join(root, 'tmp'), 'v3 renamed over it outside');
    renameSync(join(root, 'tmp'), join(root, 'a.txt'));
    expect(await get2()).toBe('v3 renamed over it outside');
    appendFileSync(join(root, 'a.txt'), ', then appended');
    expect(await get2()).toBe('v3 renamed over it outside, then appended');
    unlinkSync(join(root, 'a.txt'));
    await expect(get2()).rejects.toSatisfy((e) => isVfsError(e, 'ENOENT'));
  });
});
