/**
 * The shard backend through the real VFS and session (no protocol): every file of a packed tree
 * reads back, listings match the tree (paged), stat and errors follow the backend contract, writes
 * are refused with EROFS, file ids stay the same across a restart and a re-pack that moves files,
 * tombstones apply to a running reader after its catalog check, and a corrupted payload is EIO.
 */
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../backends/index.ts';
import { pack } from '../../backends/shard/pack.ts';
import { ShardBackend } from '../../backends/shard/shard-backend.ts';
import { LocalShardStore } from '../../backends/shard/store.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { readFile } from '../conformance/vfs-conformance.ts';
import { makeVfsEnv, type VfsEnv } from '../helpers/vfs-env.ts';
import { makeTree, type TreeFile } from './tree.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-backend-'));
const src = join(tmp, 'src');
const set = join(tmp, 'set');
let files: TreeFile[];
let dirs: string[];
let env: VfsEnv;
let backend: ShardBackend;
const removed = new Set<string>();

beforeAll(async () => {
  ({ files, dirs } = makeTree(src, 800, { seed: 11, large: 1 }));
  await pack(src, new LocalShardStore(set), { shardSize: 128 * 1024, workers: 1 });
  backend = (await createBackend(`shard+${pathToFileURL(set).href}`, { catalogCheckMs: 0 })) as ShardBackend;
  env = makeVfsEnv(backend);
});
afterAll(async () => {
  await env?.destroy();
  await backend?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function listAll(path: string, limit: number): Promise<string[]> {
  const s = env.session();
  const names: string[] = [];
  let cookie: bigint | undefined;
  for (let i = 0; i < 10_000; i++) {
    const r = await s.readdir('s', path, cookie === undefined ? { limit } : { cookie, limit });
    for (const e of r.entries) names.push(e.name);
    if (r.eof || r.entries.length === 0) break;
    cookie = r.entries.at(-1)!.cookie;
  }
  return names;
}

describe('shard backend through the VFS', () => {
  it('declares itself read-only and reads every file back byte for byte', async () => {
    expect(backend.kind).toBe('shard');
    expect(backend.capabilities.readOnly).toBe(true);
    const s = env.session();
    for (const f of files) expect((await readFile(s, f.path)).equals(f.data), f.path).toBe(true);
    const attr = await s.getattr('s', files[1]!.path);
    expect(attr.size).toBe(files[1]!.data.length);
  });

  it('lists every directory as the tree has it, in pages', async () => {
    for (const d of dirs) {
      const want = new Set<string>();
      const prefix = d === '/' ? '/' : `${d}/`;
      for (const f of files) if (f.path.startsWith(prefix) && !f.path.slice(prefix.length).includes('/')) want.add(f.path.slice(prefix.length));
      for (const x of dirs) if (x !== '/' && x.startsWith(prefix) && !x.slice(prefix.length).includes('/')) want.add(x.slice(prefix.length));
      const got = await listAll(d, 7);
      expect(new Set(got), d).toEqual(want);
      expect(got.length, d).toBe(want.size);
    }
  });

  it('answers ENOENT, ENOTDIR and EISDIR as the contract says', async () => {
    const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (isVfsError(e) ? e.code : String(e)));
    expect(await codeOf(backend.stat('/nope'))).toBe('ENOENT');
    expect(await codeOf(backend.stat(`${files[1]!.path}/x`))).toBe('ENOTDIR');
    expect(await codeOf(backend.list(files[1]!.path, { limit: 10 }))).toBe('ENOTDIR');
    expect(await codeOf(backend.read('/empty-dir', 0, 1))).toBe('EISDIR');
    expect(await codeOf(backend.read('/nope', 0, 1))).toBe('ENOENT');
  });

  it('refuses every change with EROFS naming the shard set', async () => {
    for (const p of [
      backend.createWriter('/new.txt'), backend.mkdir('/d'), backend.unlink(files[1]!.path), backend.rmdir('/empty-dir'),
      backend.setMetadata(files[1]!.path, { mode: 0o600 }), backend.truncate(files[1]!.path, 0), backend.openFile(files[1]!.path, { write: true }),
    ]) {
      await expect(p).rejects.toMatchObject({ code: 'EROFS', message: expect.stringMatching(/read-only shard set/) });
    }
  });

  it('keeps file ids across a restart and a re-pack that moves the files', async () => {
    const s = env.session();
    const sample = files.filter((_, i) => i % 97 === 3);
    const ids = new Map<string, bigint>();
    for (const f of sample) ids.set(f.path, (await s.getattr('s', f.path)).id);
    const stateDir = env.stateDir;
    await env.stop();
    // A full re-pack into a new set (other shard boundaries, other offsets) served from the same state.
    const set2 = join(tmp, 'set-repacked');
    await pack(src, new LocalShardStore(set2), { shardSize: 40 * 1024, workers: 0, codec: 'gzip' });
    const b2 = (await createBackend(`shard+${pathToFileURL(set2).href}`)) as ShardBackend;
    env = makeVfsEnv(b2, { stateDir });
    const s2 = env.session();
    for (const f of sample) {
      const a = await s2.getattr('s', f.path);
      expect(a.id, f.path).toBe(ids.get(f.path));
      expect((await readFile(s2, f.path)).equals(f.data)).toBe(true);
    }
    await b2.close();
  });

  it('applies a tombstone of a newer catalog to a running reader', async () => {
    const victim = files.find((f) => f.data.length > 0 && f.path.split('/').length === 2)!;
    expect((await backend.stat(victim.path)).type).toBe('file');
    unlinkSync(join(src, victim.disk));
    removed.add(victim.path);
    const r = await pack(src, new LocalShardStore(set), { workers: 0 });
    expect(r.tombstones).toBe(1);
    await expect(backend.stat(victim.path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await backend.list('/', { limit: 10_000 })).entries.map((e) => e.name)).not.toContain(victim.path.slice(1));
  });

  it('a corrupted payload is EIO, never other bytes', async () => {
    const f = files.find((x) => x.data.length > 2000 && x.path.endsWith('.bin') && !removed.has(x.path))!;
    const l = await backend.reader.lookup(f.path);
    const shardFile = join(set, 'shards', l!.shard.name);
    const bytes = readFileSync(shardFile);
    bytes[l!.entry.offset + 100] = (bytes[l!.entry.offset + 100]! + 1) & 0xff;
    writeFileSync(shardFile, bytes);
    const fresh = (await createBackend(`shard+${pathToFileURL(set).href}`)) as ShardBackend;
    try {
      await expect(fresh.read(f.path, 0, 10)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/checksum mismatch/) });
      // The neighbours in the same shard still read.
      const other = files.find((x) => x !== f && x.data.length > 0 && !removed.has(x.path) && x.path !== f.path)!;
      expect((await fresh.read(other.path, 0, other.data.length)).equals(other.data)).toBe(true);
    } finally {
      await fresh.close();
    }
  });
});
