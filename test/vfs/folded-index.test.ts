/**
 * Folded-name index (issue 9, "Lookup and space"): on a case-insensitive share over a
 * case-sensitive backend (and for names stored in NFD), a lookup whose exact spelling misses is
 * answered from a per-directory index instead of paging through the directory each time. Answers
 * stay what the scan gave (case variants, NFD/NFC, first spelling in listing order, exact spelling
 * first), the index follows changes made through Portico at once and outside changes within its
 * TTL (or at once when reported), and missing-name probes stop listing the directory.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import type { FoldedIndexOptions } from '../../src/vfs/folded-index.ts';
import { expectCode } from '../conformance/vfs-conformance.ts';

const RW = { read: true, write: true, delete: false };

interface Calls {
  list: number;
  stat: number;
}

/** The backend with its list and stat calls counted. */
function counted(b: Backend): { backend: Backend; calls: Calls } {
  const calls: Calls = { list: 0, stat: 0 };
  const backend = new Proxy(b, {
    get(t, k) {
      const v = Reflect.get(t, k, t) as unknown;
      if (typeof v !== 'function') return v;
      if (k === 'list' || k === 'stat') {
        return (...a: unknown[]) => {
          calls[k]++;
          return (v as (...x: unknown[]) => unknown).apply(t, a);
        };
      }
      return (v as (...x: unknown[]) => unknown).bind(t);
    },
  });
  return { backend, calls };
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function makeVfs(backend: Backend, foldedIndex: FoldedIndexOptions = {}, caseSensitive = false): Vfs {
  const state = tmp('portico-fold-state-');
  const store = MetadataStore.open(state);
  const vfs = new Vfs({ store, stageDir: join(state, 'stage'), attrCacheMs: 0 });
  vfs.addVolume('s', buildVolumeStack(backend), { caseSensitive, foldedIndex });
  cleanup.push(async () => {
    for (const h of vfs.openHandles()) await vfs.close(h).catch(() => undefined);
    vfs.locks.close();
    store.close();
  });
  return vfs;
}

async function create(vfs: Vfs, path: string): Promise<void> {
  const h = await vfs.open('s', path, { access: RW, disposition: 'create', owner: 'o' });
  await vfs.close(h);
}

function localDir(n: number, names: (i: number) => string = (i) => `File-${String(i).padStart(5, '0')}.txt`): string {
  const root = tmp('portico-fold-');
  mkdirSync(join(root, 'Big'));
  for (let i = 0; i < n; i++) writeFileSync(join(root, 'Big', names(i)), '');
  return root;
}

describe('folded-name index: answers', () => {
  it('finds case variants, NFD names by NFC, and keeps exact spellings exact', async () => {
    const root = tmp('portico-fold-');
    mkdirSync(join(root, 'Docs'));
    writeFileSync(join(root, 'Docs', 'Report.TXT'), 'r');
    writeFileSync(join(root, 'Docs', 'cafe\u0301.txt'), 'nfd');
    writeFileSync(join(root, 'Docs', 'dup'), 'lower');
    writeFileSync(join(root, 'Docs', 'DUP'), 'upper');
    const vfs = makeVfs(new LocalBackend(root));
    expect((await vfs.getattr('s', '/docs/report.txt')).size).toBe(1);
    expect((await vfs.getattr('s', '/DOCS/CAF\u00c9.TXT')).size).toBe(3);
    // Exact spellings win; another spelling gets the first in listing order, as readdir shows it.
    expect((await vfs.getattr('s', '/Docs/dup')).size).toBe(5);
    expect((await vfs.getattr('s', '/docs/Dup')).size).toBe(5);
    expect((await vfs.readdir('s', '/docs')).entries.map((e) => e.name)).toContain('DUP');
    await expectCode(vfs.getattr('s', '/docs/missing.txt'), 'ENOENT');
    await expectCode(vfs.getattr('s', '/nodir/missing.txt'), 'ENOENT');
    // A case-sensitive share over the same disk: NFD still found by its NFC name, case not folded.
    const cs = makeVfs(new LocalBackend(root), {}, true);
    expect((await cs.getattr('s', '/Docs/caf\u00e9.txt')).size).toBe(3);
    await expectCode(cs.getattr('s', '/docs/report.txt'), 'ENOENT');
  });

  it('follows names created, deleted and renamed through Portico without listing again', async () => {
    const { backend, calls } = counted(new MemoryBackend());
    const vfs = makeVfs(backend);
    await vfs.mkdir('s', '/Dir');
    for (let i = 0; i < 50; i++) await create(vfs, `/Dir/f${i}.txt`);
    await expectCode(vfs.getattr('s', '/dir/none'), 'ENOENT');
    const lists = calls.list;
    await create(vfs, '/DIR/New.TXT');
    expect((await vfs.getattr('s', '/dir/new.txt')).type).toBe('file');
    await vfs.rename('s', '/dir/NEW.txt', '/Dir/Moved.Txt');
    await expectCode(vfs.getattr('s', '/dir/new.txt'), 'ENOENT');
    expect((await vfs.getattr('s', '/DIR/MOVED.TXT')).type).toBe('file');
    await vfs.unlink('s', '/dir/moved.txt');
    await expectCode(vfs.getattr('s', '/dir/Moved.Txt'), 'ENOENT');
    // Case-only rename: the new spelling is the stored one.
    await vfs.rename('s', '/dir/f1.txt', '/dir/F1.TXT');
    expect((await vfs.readdir('s', '/dir', { limit: 2 })).entries.map((e) => e.name)).toContain('F1.TXT');
    const afterReaddir = calls.list;
    expect((await vfs.getattr('s', '/DIR/f1.txt')).type).toBe('file');
    await expectCode(vfs.getattr('s', '/dir/nothing-here'), 'ENOENT');
    expect(calls.list - afterReaddir).toBe(0);
    expect(afterReaddir - lists).toBe(1); // the readdir's own page
    // A directory renamed: its members are found under the new name, not the old.
    await vfs.mkdir('s', '/Dir/Sub');
    await create(vfs, '/Dir/Sub/Inner.txt');
    await vfs.rename('s', '/dir/sub', '/dir/Sub2');
    expect((await vfs.getattr('s', '/DIR/SUB2/inner.TXT')).type).toBe('file');
    await expectCode(vfs.getattr('s', '/dir/sub/inner.txt'), 'ENOENT');
    await vfs.removeTree('s', '/dir/sub2');
    await expectCode(vfs.getattr('s', '/dir/SUB2'), 'ENOENT');
  });

  it('outside changes: a create in another spelling shows within the TTL, a delete at once, a reported change at once', async () => {
    const root = tmp('portico-fold-');
    mkdirSync(join(root, 'D'));
    writeFileSync(join(root, 'D', 'Gone.txt'), 'x');
    const vfs = makeVfs(new LocalBackend(root), { ttlMs: 300 });
    await expectCode(vfs.getattr('s', '/d/new.txt'), 'ENOENT');
    writeFileSync(join(root, 'D', 'NEW.txt'), 'outside');
    // The exact spelling is always asked first: found at once.
    expect((await vfs.getattr('s', '/D/NEW.txt')).size).toBe(7);
    writeFileSync(join(root, 'D', 'Other.txt'), 'outside');
    await new Promise((r) => setTimeout(r, 350));
    expect((await vfs.getattr('s', '/d/other.TXT')).size).toBe(7);
    // Deleted outside while indexed: the stale entry is noticed (stat misses) and the index rebuilt.
    unlinkSync(join(root, 'D', 'Gone.txt'));
    await expectCode(vfs.getattr('s', '/d/gone.txt'), 'ENOENT');
    // Renamed outside and reported by a change watch: seen at once, TTL or not.
    const long = makeVfs(new LocalBackend(root), { ttlMs: 60_000 });
    await expectCode(long.getattr('s', '/d/renamed.txt'), 'ENOENT');
    renameSync(join(root, 'D', 'Other.txt'), join(root, 'D', 'Renamed.TXT'));
    await expectCode(long.getattr('s', '/d/renamed.txt'), 'ENOENT');
    await long.noticeOutside('s', '/D/Renamed.TXT', () => false);
    expect((await long.getattr('s', '/d/renamed.txt')).size).toBe(7);
    // And a cache refresh drops every index.
    writeFileSync(join(root, 'D', 'Refresh.txt'), 'r');
    await expectCode(long.getattr('s', '/d/refresh.TXT'), 'ENOENT');
    long.invalidate('s', '/');
    expect((await long.getattr('s', '/d/refresh.TXT')).size).toBe(1);
  });

  it('a listing slower than the TTL still gives an index (its age counts from the listing\'s end)', async () => {
    const mem = new MemoryBackend();
    const { backend, calls } = counted(mem);
    const vfs = makeVfs(backend, { ttlMs: 200 });
    await vfs.mkdir('s', '/D');
    for (let i = 0; i < 2500; i++) await create(vfs, `/D/n${i}`);
    vfs.invalidate('s', '/');
    const fast = mem.list.bind(mem);
    mem.list = async (p, o) => {
      await new Promise((r) => setTimeout(r, 100));
      return fast(p, o);
    };
    const before = calls.list;
    await expectCode(vfs.getattr('s', '/D/x'), 'ENOENT');
    const lists = calls.list;
    expect(lists - before).toBe(3);
    await expectCode(vfs.getattr('s', '/D/y'), 'ENOENT');
    expect(calls.list).toBe(lists);
  });

  it('a directory larger than the index bound is paged through as before, with the same answers', async () => {
    const { backend, calls } = counted(new LocalBackend(localDir(120)));
    const vfs = makeVfs(backend, { maxDirEntries: 50 });
    expect((await vfs.getattr('s', '/big/file-00100.TXT')).type).toBe('file');
    await expectCode(vfs.getattr('s', '/big/none'), 'ENOENT');
    const before = calls.list;
    await expectCode(vfs.getattr('s', '/big/none2'), 'ENOENT');
    expect(calls.list - before).toBe(1); // 120 names: one page of the old scan per miss
  });
});

describe('folded-name index: missing-name probes', () => {
  const ENTRIES = 10_000;
  const PROBES = 1000;

  it(`${PROBES} probes of missing names in a ${ENTRIES}-entry directory: list calls before/after`, async () => {
    const root = localDir(ENTRIES);
    // Before: every directory over the bound (0) takes the old paged scan on each miss. Measured on
    // 20 probes (a full 10,000-entry scan each) and scaled.
    const old = counted(new LocalBackend(root));
    const oldVfs = makeVfs(old.backend, { maxDirEntries: 0 });
    const OLD_PROBES = 20;
    let t0 = performance.now();
    for (let i = 0; i < OLD_PROBES; i++) await expectCode(oldVfs.getattr('s', `/big/desktop-${i}.ini`), 'ENOENT');
    const oldMs = (performance.now() - t0) / OLD_PROBES;
    const oldList = old.calls.list / OLD_PROBES;
    const oldStat = old.calls.stat / OLD_PROBES;

    const now = counted(new LocalBackend(root));
    const vfs = makeVfs(now.backend, { ttlMs: 60_000 });
    t0 = performance.now();
    for (let i = 0; i < PROBES; i++) await expectCode(vfs.getattr('s', `/big/desktop-${i}.ini`), 'ENOENT');
    const newMs = (performance.now() - t0) / PROBES;
    const { list, stat } = now.calls;
    // Existing names in other spellings still answer.
    expect((await vfs.getattr('s', '/BIG/FILE-09999.TXT')).type).toBe('file');
    console.log(
      `folded index, ${PROBES} missing-name probes in a ${ENTRIES}-entry directory (local disk): ` +
        `before ${Math.round(oldList * PROBES)} list + ${Math.round(oldStat * PROBES)} stat calls, ${(oldMs * PROBES / 1000).toFixed(1)} s (${oldMs.toFixed(2)} ms/probe, from ${OLD_PROBES}); ` +
        `after ${list} list + ${stat} stat calls, ${(newMs * PROBES).toFixed(0)} ms (${(newMs * 1000).toFixed(0)} µs/probe)`,
    );
    expect(oldList).toBeGreaterThanOrEqual(ENTRIES / 1000);
    // One listing of the directory (10 pages) and one of the root (the client spells /Big as /big)
    // for all probes; each probe costs the stat of the spelling asked for, never a list call.
    expect(list).toBeLessThanOrEqual(ENTRIES / 1000 + 1);
    expect(stat).toBeLessThanOrEqual(PROBES + 5);
  });

  it('concurrent misses in one directory share one listing; readdir through the directory fills it', async () => {
    const { backend, calls } = counted(new LocalBackend(localDir(3000)));
    const vfs = makeVfs(backend, { ttlMs: 60_000 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => expectCode(vfs.getattr('s', `/big/x${i}`), 'ENOENT')));
    expect(calls.list).toBe(1 + 3); // the root (for /big), then Big's three pages
    const other = counted(new LocalBackend(localDir(2500)));
    const v2 = makeVfs(other.backend, { ttlMs: 60_000 });
    let cookie: bigint | undefined;
    for (;;) {
      const page = await v2.readdir('s', '/Big', cookie === undefined ? { limit: 1000 } : { cookie, limit: 1000 });
      if (page.eof) break;
      cookie = page.entries.at(-1)!.cookie;
    }
    const listed = other.calls.list;
    for (let i = 0; i < 100; i++) await expectCode(v2.getattr('s', `/Big/thumbs-${i}.db`), 'ENOENT');
    expect(other.calls.list).toBe(listed);
  });
});

describe('folded-name index on object stores', () => {
  let s3rver: Promise<S3rverHandle> | undefined;
  afterAll(async () => {
    if (s3rver !== undefined) await (await s3rver).stop();
  });
  const stores: [string, () => Promise<Backend>][] = [
    ['memory (object store)', async () => new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES })],
    ['s3 (s3rver)', async () => {
      const h = await (s3rver ??= startS3rver());
      const b = new S3Backend({ bucket: h.bucket, prefix: `fold-${randomBytes(6).toString('hex')}`, endpoint: h.endpoint, ...S3RVER_CREDENTIALS, blockSize: 64 * 1024 });
      cleanup.push(() => b.close());
      return b;
    }],
  ];
  it.each(stores)('%s: names created, renamed (a directory by copy) and deleted through Portico answer in any case without listing again', async (_name, make) => {
    const { backend, calls } = counted(await make());
    const vfs = makeVfs(backend);
    await vfs.mkdir('s', '/Docs');
    for (let i = 0; i < 20; i++) await create(vfs, `/Docs/Note-${i}.txt`);
    await expectCode(vfs.getattr('s', '/docs/desktop.ini'), 'ENOENT');
    const lists = calls.list;
    for (let i = 0; i < 20; i++) await expectCode(vfs.getattr('s', `/DOCS/thumbs-${i}.db`), 'ENOENT');
    expect((await vfs.getattr('s', '/docs/NOTE-7.TXT')).type).toBe('file');
    await create(vfs, '/docs/Later.txt');
    expect((await vfs.getattr('s', '/DOCS/later.TXT')).type).toBe('file');
    await vfs.unlink('s', '/docs/note-3.txt');
    await expectCode(vfs.getattr('s', '/docs/NOTE-3.txt'), 'ENOENT');
    expect(calls.list - lists).toBe(0);
    // A directory rename on a store without atomic rename (a journaled tree move).
    await vfs.rename('s', '/docs', '/Archive');
    expect((await vfs.getattr('s', '/archive/note-7.TXT')).type).toBe('file');
    await expectCode(vfs.getattr('s', '/docs/note-7.txt'), 'ENOENT');
    await expectCode(vfs.getattr('s', '/ARCHIVE/note-3.txt'), 'ENOENT');
  });
});
