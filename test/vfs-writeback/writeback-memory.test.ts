/**
 * Async write-back on a memory:objectstore backend (uploads held, failed or counted by a gate):
 * close returns before the upload, the gateway serves staged content meanwhile, rename/unlink/
 * overwrite/setattr of pending files, retries, quarantine, an in-process restart from the journal,
 * a torn journal record, and sync mode left as it was. The real-restart tests against s3rver are in
 * writeback-s3-restart.test.ts.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open as openHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import { encodeRecord, JOURNAL_SLACK, parseJournal, type WriteBackOptions } from '../../src/vfs/write-back.ts';
import { Registry } from 'prom-client';
import { gate, until, type GatedBackend } from './gate.ts';

const RW = { read: true, write: true, delete: false };
const RO = { read: true, write: false, delete: false };

interface Env {
  vfs: Vfs;
  store: MetadataStore;
  stateDir: string;
  g: GatedBackend;
}

const dirs: string[] = [];
const stores: MetadataStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(inner: Backend, o: { stateDir?: string; writeBack?: Partial<WriteBackOptions> } = {}): Promise<Env> {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'portico-wb-'));
  if (o.stateDir === undefined) dirs.push(stateDir);
  const store = MetadataStore.open(stateDir);
  stores.push(store);
  const g = gate(inner);
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback') });
  vfs.addVolume('s', buildVolumeStack(g.backend), { writeBack: { mode: 'async', retryBaseMs: 5, retryMaxMs: 40, ...o.writeBack } });
  await vfs.recoverWriteBack();
  return { vfs, store, stateDir, g };
}

/** FileHandle's prototype (the tests spy on its sync and datasync), from a probe file removed at once. */
async function fileHandlePrototype(): Promise<{ sync: () => Promise<void>; datasync: () => Promise<void> }> {
  const path = join(tmpdir(), `portico-fh-probe-${process.pid}`);
  const probe = await openHandle(path, 'w');
  await probe.close();
  rmSync(path, { force: true });
  return Object.getPrototypeOf(probe) as { sync: () => Promise<void>; datasync: () => Promise<void> };
}

const objectStore = (): MemoryBackend => new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES });

async function writeFile(vfs: Vfs, path: string, data: string | Buffer, disposition: 'createOrTruncate' | 'openOrCreate' = 'createOrTruncate'): Promise<void> {
  const h = await vfs.open('s', path, { access: RW, disposition, owner: 'w', expect: 'file' });
  try {
    await vfs.write(h, 0, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    await vfs.close(h);
  }
}

async function readFile(vfs: Vfs, path: string): Promise<string> {
  const h = await vfs.open('s', path, { access: RO, owner: 'r', expect: 'file' });
  try {
    return (await vfs.read(h, 0, 1 << 20)).toString();
  } finally {
    await vfs.close(h);
  }
}

async function stored(b: Backend, path: string): Promise<string | undefined> {
  try {
    const st = await b.stat(path);
    return (await b.read(path, 0, st.size)).toString();
  } catch (e) {
    if (isVfsError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** The stage files go right after the journal records their uploads (moments after `pending` drops). */
const stageEmpty = (env: Env): Promise<void> => until(() => readdirSync(join(env.stateDir, 'stage')).length === 0, 20_000, 'stage files to be removed');
const drained = (env: Env): Promise<void> => until(() => env.vfs.writeBack.stats().pending === 0, 20_000, 'pending uploads to drain');

describe('async write-back (memory:objectstore)', () => {
  it('close returns before the upload; the gateway serves the staged content until it lands', async () => {
    const mem = objectStore();
    const env = await start(mem);
    await writeFile(env.vfs, '/a.txt', 'first');
    await drained(env);
    env.g.close();
    const before = BigInt(Date.now()) * 1_000_000n;
    await writeFile(env.vfs, '/a.txt', 'second version');
    await writeFile(env.vfs, '/new.txt', 'brand new');
    // Closed and acknowledged, not uploaded: the store still has the old content, and no new file
    // (its create rides with its upload: src/vfs/deferred-create.ts; no empty object first).
    expect(await stored(mem, '/a.txt')).toBe('first');
    expect(await stored(mem, '/new.txt')).toBeUndefined();
    expect(env.vfs.writeBack.stats()).toMatchObject({ pending: 2, pendingBytes: 'second version'.length + 'brand new'.length });
    // This gateway reads, stats and lists the staged content.
    expect(await readFile(env.vfs, '/a.txt')).toBe('second version');
    expect(await readFile(env.vfs, '/new.txt')).toBe('brand new');
    const attr = await env.vfs.getattr('s', '/a.txt');
    expect(attr.size).toBe('second version'.length);
    // The staged mtime is the close's time (the store's object is older).
    expect(attr.mtimeNs >= before).toBe(true);
    expect((await mem.stat('/a.txt')).mtimeNs < before).toBe(true);
    const list = await env.vfs.readdir('s', '/');
    expect(Object.fromEntries(list.entries.map((e) => [e.name, e.attr.size]))).toEqual({ 'a.txt': 14, 'new.txt': 9 });
    env.g.open();
    await drained(env);
    expect(await stored(mem, '/a.txt')).toBe('second version');
    expect(await stored(mem, '/new.txt')).toBe('brand new');
    // Uploaded: the stage files are gone, the journal holds nothing live.
    await stageEmpty(env);
    expect(parseJournal(readFileSync(join(env.stateDir, 'writeback', 'journal.log'), 'utf8')).live.size).toBe(0);
  });

  it('a writer reopening a pending file continues from the staged content', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.close();
    await writeFile(env.vfs, '/f', 'hello world');
    const h = await env.vfs.open('s', '/f', { access: RW, disposition: 'open', owner: 'w2' });
    await env.vfs.write(h, 6, Buffer.from('there'));
    expect((await env.vfs.read(h, 0, 100)).toString()).toBe('hello there');
    // A flush in async mode is durable here, not uploaded (the writer still holds the upload).
    await env.vfs.flush(h);
    expect(await stored(mem, '/f')).toBeUndefined(); // created with its upload (deferred create)
    await env.vfs.close(h);
    env.g.open();
    await drained(env);
    expect(await stored(mem, '/f')).toBe('hello there');
  });

  it('a writer open does not wait for a running upload; its newer content is uploaded after its close', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.close();
    await writeFile(env.vfs, '/f', 'v1');
    await until(() => env.g.waiting === 1, 30_000, 'the upload to reach the store');
    const r = await env.vfs.open('s', '/f', { access: RO, owner: 'r' });
    // The store holds the upload; opening for writing still returns at once.
    const h = await env.vfs.open('s', '/f', { access: RW, owner: 'w' });
    await env.vfs.write(h, 0, Buffer.from('v2'));
    expect((await env.vfs.read(r, 0, 10)).toString()).toBe('v2');
    await env.vfs.close(h);
    env.g.open();
    await env.vfs.close(r);
    await drained(env);
    expect(await stored(mem, '/f')).toBe('v2');
    expect(env.g.commits).toBeGreaterThanOrEqual(2);
  });

  it('rename retargets a pending upload; unlink and overwrite cancel it', async () => {
    const mem = objectStore();
    const env = await start(mem);
    await env.vfs.mkdir('s', '/d');
    // The store fails every upload: they stay pending (retried), not in flight.
    env.g.fail('EIO', Infinity);
    await writeFile(env.vfs, '/d/a', 'AAA');
    await writeFile(env.vfs, '/d/gone', 'GGG');
    await writeFile(env.vfs, '/d/put', 'old staged');
    await env.vfs.rename('s', '/d/a', '/d/b');
    await env.vfs.unlink('s', '/d/gone');
    expect(await readFile(env.vfs, '/d/b')).toBe('AAA');
    expect(env.vfs.writeBack.pendingPaths().map((p) => p.path).sort()).toEqual(['/d/b', '/d/put']);
    env.g.fail(undefined);
    // A WebDAV PUT supersedes the pending upload of /d/put.
    const w = await env.vfs.replaceContent('s', '/d/put', { owner: 'dav' });
    await w.write(Buffer.from('from PUT'));
    await w.commit();
    await drained(env);
    expect(await stored(mem, '/d/b')).toBe('AAA');
    expect(await stored(mem, '/d/a')).toBeUndefined();
    expect(await stored(mem, '/d/gone')).toBeUndefined();
    expect(await stored(mem, '/d/put')).toBe('from PUT');
    await stageEmpty(env);
  });

  it('a directory rename carries the pending uploads below it; rename over a pending file cancels its upload', async () => {
    const mem = objectStore();
    const env = await start(mem);
    await env.vfs.mkdir('s', '/src');
    await env.vfs.mkdir('s', '/src/sub');
    env.g.fail('EIO', Infinity);
    await writeFile(env.vfs, '/src/sub/x', 'X');
    await writeFile(env.vfs, '/victim', 'to be replaced');
    await writeFile(env.vfs, '/winner', 'replaces it');
    await env.vfs.rename('s', '/src', '/dst');
    await env.vfs.rename('s', '/winner', '/victim');
    expect(await readFile(env.vfs, '/dst/sub/x')).toBe('X');
    expect(await readFile(env.vfs, '/victim')).toBe('replaces it');
    env.g.fail(undefined);
    await drained(env);
    expect(await stored(mem, '/dst/sub/x')).toBe('X');
    expect(await stored(mem, '/src/sub/x')).toBeUndefined();
    expect(await stored(mem, '/victim')).toBe('replaces it');
    expect(await stored(mem, '/winner')).toBeUndefined();
  });

  it('a truncating open and a setattr of a pending file keep the latest content', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.close();
    await writeFile(env.vfs, '/t', 'long staged content');
    await writeFile(env.vfs, '/t', 'short');
    expect(await readFile(env.vfs, '/t')).toBe('short');
    await writeFile(env.vfs, '/m', 'twelve bytes');
    env.g.open();
    // setattr on a pending file uploads it first, then applies (mtime set after close survives).
    const mtimeNs = 1_600_000_000_123_456_789n;
    await env.vfs.setattr('s', '/m', { size: 6, mtimeNs });
    expect(await stored(mem, '/m')).toBe('twelve');
    expect((await mem.stat('/m')).mtimeNs).toBe(mtimeNs);
    await drained(env);
    expect(await stored(mem, '/t')).toBe('short');
  });

  it('a copy of a pending file copies its staged content', async () => {
    const mem = objectStore();
    const env = await start(mem);
    await writeFile(env.vfs, '/c', 'old');
    await drained(env);
    await writeFile(env.vfs, '/c', 'newer');
    const errors = await env.vfs.copy('s', '/c', '/c2');
    expect(errors).toEqual([]);
    expect(await stored(mem, '/c2')).toBe('newer');
  });

  it('retries a failing store with backoff until the upload succeeds', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.fail('EIO', 4);
    await writeFile(env.vfs, '/r', 'eventually');
    await drained(env);
    expect(await stored(mem, '/r')).toBe('eventually');
    expect(env.vfs.writeBack.stats()).toMatchObject({ failures: 4, uploads: 1, quarantined: 0 });
  });

  it('quarantines a stage that fails permanently, with its content and a description', async () => {
    const mem = objectStore();
    const env = await start(mem, { writeBack: { permanentFailureAttempts: 2 } });
    env.g.fail('ENOENT', Infinity);
    await writeFile(env.vfs, '/lost.bin', 'precious bytes');
    await until(() => env.vfs.writeBack.stats().quarantined === 1, 20_000, 'quarantine');
    expect(env.vfs.writeBack.stats().pending).toBe(0);
    const lf = join(env.stateDir, 'writeback', 'lost+found', 's');
    const files = readdirSync(lf).sort();
    expect(files).toHaveLength(2);
    const data = files.find((f) => !f.endsWith('.json'))!;
    expect(data).toMatch(/lost\.bin$/);
    expect(readFileSync(join(lf, data), 'utf8')).toBe('precious bytes');
    const info = JSON.parse(readFileSync(join(lf, `${data}.json`), 'utf8')) as { path: string; error: { code: string }; saved: string };
    expect(info).toMatchObject({ path: '/lost.bin', error: { code: 'ENOENT' }, saved: 'content' });
    await stageEmpty(env);
  });

  it('restart: journaled uploads resume from the state dir; a torn last record is skipped', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.close();
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    await writeFile(env.vfs, '/one', 'first file');
    await writeFile(env.vfs, '/two', big);
    // Not in the store yet (deferred create): the journal record makes the name durable with its
    // content, and the restart below announces it again before its upload lands.
    expect(await stored(mem, '/one')).toBeUndefined();
    // "Crash": the first VFS is abandoned with its uploads held (nothing shut down); a torn append follows.
    const journal = join(env.stateDir, 'writeback', 'journal.log');
    appendFileSync(journal, encodeRecord({ t: 'del', k: 'whatever' }).slice(0, 20));
    const again = await start(mem, { stateDir: env.stateDir });
    // Served from the restored stages at once, uploaded in the background.
    expect((await again.vfs.getattr('s', '/two')).size).toBe(big.length);
    expect(await readFile(again.vfs, '/one')).toBe('first file');
    await drained(again);
    expect(await stored(mem, '/one')).toBe('first file');
    expect((await mem.read('/two', 0, big.length + 1)).equals(big)).toBe(true);
    await stageEmpty(env);
  });

  it('a small stage is journaled with its content: one fdatasync per close, and a restart after the stage file was lost uploads the acknowledged bytes', async () => {
    const proto = await fileHandlePrototype();
    const syncs = vi.spyOn(proto, 'sync');
    const datasyncs = vi.spyOn(proto, 'datasync');
    try {
      const mem = objectStore();
      const env = await start(mem);
      env.g.close();
      // (The first record creates the journal file, whose directory entry is fsync'd once.)
      await writeFile(env.vfs, '/warm', 'warm-up');
      syncs.mockClear();
      datasyncs.mockClear();
      const small = Buffer.alloc(4096, 3);
      await writeFile(env.vfs, '/small', small);
      // Before: fsync of the stage, fsync of the stage directory, fdatasync of the journal.
      expect(syncs).not.toHaveBeenCalled();
      expect(datasyncs).toHaveBeenCalledTimes(1);
      // A larger stage still has its own file synced (and its directory entry).
      await writeFile(env.vfs, '/large', Buffer.alloc(200 * 1024, 4));
      expect(syncs.mock.calls.length).toBeGreaterThanOrEqual(2);
      // A machine crash lost the small stage's page cache: its file is empty, the record holds the bytes.
      const journal = join(env.stateDir, 'writeback', 'journal.log');
      const rec = [...parseJournal(readFileSync(journal, 'utf8')).live.values()].find((r) => r.path === '/small')!;
      expect(Buffer.from(rec.data!, 'base64').equals(small)).toBe(true);
      writeFileSync(join(env.stateDir, 'stage', basename(rec.snap.file)), '');
      const again = await start(mem, { stateDir: env.stateDir });
      expect((await readFile(again.vfs, '/small')) === small.toString()).toBe(true);
      await drained(again);
      expect((await mem.read('/small', 0, 10_000)).equals(small)).toBe(true);
      expect((await mem.read('/large', 0, 300 * 1024)).equals(Buffer.alloc(200 * 1024, 4))).toBe(true);
    } finally {
      syncs.mockRestore();
      datasyncs.mockRestore();
    }
  });

  it('a listing that an upload of a PUT-created file outran still shows the file', async () => {
    const mem = objectStore();
    // list() takes the store's page, then waits for the test: the upload lands in between.
    let latch: (() => void) | undefined;
    let listed: (() => void) | undefined;
    const slowList = new Proxy(mem, {
      get(target, prop, receiver) {
        if (prop === 'list') {
          return async (path: string, o: Parameters<Backend['list']>[1]) => {
            const page = await target.list(path, o);
            if (latch === undefined) return page;
            const wait = new Promise<void>((r) => (latch = r));
            listed?.();
            await wait;
            return page;
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const env = await start(slowList);
    await env.vfs.mkdir('s', '/d');
    env.g.close();
    const w = await env.vfs.replaceContent('s', '/d/x', { owner: 'dav', sizeHint: 5 });
    await w.write(Buffer.from('hello'));
    await w.commit();
    expect(await stored(mem, '/d/x')).toBeUndefined();
    const stack = env.vfs.volume('s').backend;
    latch = () => undefined;
    const inList = new Promise<void>((r) => (listed = r));
    const page = stack.list('/d', { limit: 100 });
    await inList;
    env.g.open();
    await drained(env);
    expect(await stored(mem, '/d/x')).toBe('hello');
    latch();
    // Before: neither the page (taken before the upload) nor the pending set (forgotten when it
    // landed) had /d/x.
    expect((await page).entries.map((e) => e.name)).toEqual(['x']);
  });

  it('fsync: false acknowledges without fsync or fdatasync; after a reboot its records go to lost+found, never to the store', async () => {
    // Count fsync/fdatasync on every FileHandle (the class is not exported: take it from one).
    const proto = await fileHandlePrototype();
    const syncs = vi.spyOn(proto, 'sync');
    const datasyncs = vi.spyOn(proto, 'datasync');
    try {
      const mem = objectStore();
      const durable = await start(mem);
      durable.g.close();
      await writeFile(durable.vfs, '/d', 'durable');
      expect(syncs.mock.calls.length + datasyncs.mock.calls.length).toBeGreaterThan(0);
      const env = await start(mem, { writeBack: { fsync: false } });
      env.g.close();
      await writeFile(env.vfs, '/same', 'same boot');
      // (The first record created the journal file, whose directory entry is fsync'd once.)
      syncs.mockClear();
      datasyncs.mockClear();
      await writeFile(env.vfs, '/same', 'same boot');
      await writeFile(env.vfs, '/other', 'other boot');
      expect(syncs).not.toHaveBeenCalled();
      expect(datasyncs).not.toHaveBeenCalled();
      // "Reboot" for /other: its record claims another boot id.
      const journal = join(env.stateDir, 'writeback', 'journal.log');
      const live = [...parseJournal(readFileSync(journal, 'utf8')).live.values()];
      expect(live.map((r) => typeof r.boot)).toEqual(['string', 'string']);
      writeFileSync(journal, live.map((r) => encodeRecord(r.path === '/other' ? { ...r, boot: 'another-boot' } : r)).join(''));
      const again = await start(mem, { stateDir: env.stateDir, writeBack: { fsync: false } });
      await drained(again);
      expect(await stored(mem, '/same')).toBe('same boot');
      expect(await stored(mem, '/other')).not.toBe('other boot');
      expect(again.vfs.writeBack.stats().quarantined).toBe(1);
      const lf = join(env.stateDir, 'writeback', 'lost+found', 's');
      const kept = readdirSync(lf).find((f) => f.endsWith('other'))!;
      expect(readFileSync(join(lf, kept), 'utf8')).toBe('other boot');
      expect(readFileSync(join(lf, `${kept}.json`), 'utf8')).toMatch(/machine restarted/);
    } finally {
      syncs.mockRestore();
      datasyncs.mockRestore();
    }
  });

  it('a small PUT is held in memory: no stage file, journaled with its content (fsync: false too), restored and uploaded from the record; a reboot sends it to lost+found', async () => {
    const put = async (vfs: Vfs, path: string, body: string): Promise<void> => {
      const w = await vfs.replaceContent('s', path, { owner: 'dav', sizeHint: body.length });
      await w.write(Buffer.from(body));
      await w.commit();
    };
    const stageFiles = (e: Env): string[] => (existsSync(join(e.stateDir, 'stage')) ? readdirSync(join(e.stateDir, 'stage')) : []);
    const proto = await fileHandlePrototype();
    const syncs = vi.spyOn(proto, 'sync');
    const datasyncs = vi.spyOn(proto, 'datasync');
    try {
      for (const fsync of [true, false]) {
        const mem = objectStore();
        const env = await start(mem, { writeBack: { fsync } });
        env.g.close();
        await put(env.vfs, '/first', 'x');
        syncs.mockClear();
        datasyncs.mockClear();
        await put(env.vfs, '/same', 'same boot');
        await put(env.vfs, '/other', 'other boot');
        // fsync: true: one journal fdatasync per PUT, nothing else; false: none.
        expect(syncs).not.toHaveBeenCalled();
        expect(datasyncs.mock.calls.length).toBe(fsync ? 2 : 0);
        expect(stageFiles(env)).toEqual([]);
        expect(await readFile(env.vfs, '/same')).toBe('same boot');
        const journal = join(env.stateDir, 'writeback', 'journal.log');
        const live = [...parseJournal(readFileSync(journal, 'utf8')).live.values()];
        expect(live.map((r) => Buffer.from(r.data ?? '', 'base64').toString())).toEqual(['x', 'same boot', 'other boot']);
        expect(live.every((r) => (r.boot !== undefined) === !fsync)).toBe(true);
        // A crash (the process gone, the uploads never ran), then a start on the same state dir; on
        // fsync: false /other's record claims another boot (a machine restart).
        if (!fsync) writeFileSync(journal, live.map((r) => encodeRecord(r.path === '/other' ? { ...r, boot: 'another-boot' } : r)).join(''));
        const again = await start(mem, { stateDir: env.stateDir, writeBack: { fsync } });
        await drained(again);
        expect(await stored(mem, '/same')).toBe('same boot');
        expect(await stored(mem, '/first')).toBe('x');
        if (fsync) expect(await stored(mem, '/other')).toBe('other boot');
        else {
          expect(await stored(mem, '/other')).toBeUndefined();
          const lf = join(env.stateDir, 'writeback', 'lost+found', 's');
          const kept = readdirSync(lf).find((f) => f.endsWith('other'))!;
          expect(readFileSync(join(lf, kept), 'utf8')).toBe('other boot');
        }
        await until(() => stageFiles(again).length === 0, 10_000, 'restored stage files to be removed');
      }
    } finally {
      syncs.mockRestore();
      datasyncs.mockRestore();
    }
  });

  it('fstat of a handle opened while the upload was pending shows the file as it is once the upload lands', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.close();
    await writeFile(env.vfs, '/f', 'five!');
    const h = await env.vfs.open('s', '/f', { access: RO, owner: 'attrs', expect: 'file' });
    try {
      expect((await env.vfs.fstat(h)).size).toBe(5);
      env.g.open();
      await drained(env);
      expect(await stored(mem, '/f')).toBe('five!');
      // The backend file of the open is the version it found (the empty object of the create).
      expect((await env.vfs.fstat(h)).size).toBe(5);
    } finally {
      await env.vfs.close(h);
    }
  });

  it('start-up removes stage files no journal record references', async () => {
    const mem = objectStore();
    const env = await start(mem);
    env.g.close();
    await writeFile(env.vfs, '/kept', 'kept');
    // A stage of a handle that was open at the crash (never journaled).
    const h = await env.vfs.open('s', '/open', { access: RW, disposition: 'createOrTruncate', owner: 'o' });
    await env.vfs.write(h, 0, Buffer.from('unacknowledged'));
    expect(readdirSync(join(env.stateDir, 'stage'))).toHaveLength(2);
    const again = await start(mem, { stateDir: env.stateDir });
    expect(readdirSync(join(env.stateDir, 'stage'))).toHaveLength(1);
    await drained(again);
    expect(await stored(mem, '/kept')).toBe('kept');
  });

  it('the journal is preallocated: records overwrite its zeros in place (no size change, one fdatasync each), it grows by JOURNAL_SLACK past them, and a crash anywhere restores every acknowledged record', async () => {
    const proto = await fileHandlePrototype();
    const datasyncs = vi.spyOn(proto, 'datasync');
    try {
      const mem = objectStore();
      const env = await start(mem);
      env.g.close();
      const journal = join(env.stateDir, 'writeback', 'journal.log');
      await writeFile(env.vfs, '/f0', 'zero');
      const size0 = statSync(journal).size;
      expect(size0).toBeGreaterThanOrEqual(JOURNAL_SLACK);
      expect(size0 % 4096).toBe(0);
      datasyncs.mockClear();
      for (let i = 1; i <= 5; i++) await writeFile(env.vfs, `/f${i}`, `small ${i}`);
      // Written over the zeros: the size a rewrite gave the file, one fdatasync per close.
      expect(statSync(journal).size).toBe(size0);
      expect(datasyncs).toHaveBeenCalledTimes(5);
      // Records of ~80 KiB (60 KiB inline, base64) until the slack is used up: the file grows.
      const body = (i: number): Buffer => Buffer.alloc(60 * 1024, i);
      const n = Math.ceil(JOURNAL_SLACK / (60 * 1024)) + 2;
      for (let i = 0; i < n; i++) await writeFile(env.vfs, `/big${i}`, body(i));
      const grown = statSync(journal).size;
      expect(grown).toBeGreaterThan(size0);
      // The records end before the zeros; nothing is torn.
      const text = readFileSync(journal, 'utf8');
      expect(text.charCodeAt(text.length - 1)).toBe(0);
      const parsed = parseJournal(text);
      expect(parsed.bad).toBe(0);
      expect(parsed.live.size).toBe(6 + n);
      // "Crash" (the first VFS abandoned, uploads held) and a write torn inside the zeros: part of
      // a record reached the disk, the block before it did not.
      const fd = await openHandle(journal, 'r+');
      const torn = Buffer.from(encodeRecord({ t: 'del', k: 'never-acknowledged' }));
      await fd.write(torn.subarray(10), 0, torn.length - 10, text.search(/\0+$/) + 5000);
      await fd.close();
      expect(parseJournal(readFileSync(journal, 'utf8')).bad).toBe(1);
      const again = await start(mem, { stateDir: env.stateDir });
      expect(await readFile(again.vfs, '/f3')).toBe('small 3');
      await drained(again);
      for (let i = 0; i <= 5; i++) expect(await stored(mem, `/f${i}`)).toBe(i === 0 ? 'zero' : `small ${i}`);
      for (let i = 0; i < n; i++) expect((await mem.read(`/big${i}`, 0, 70 * 1024)).equals(body(i))).toBe(true);
      // The restart rewrote it clean, preallocated again; the uploads' deletes went in place (each
      // moments after its upload counts as done).
      await until(() => parseJournal(readFileSync(journal, 'utf8')).live.size === 0, 20_000, 'the uploads\' delete records');
      expect(parseJournal(readFileSync(journal, 'utf8')).bad).toBe(0);
      expect(statSync(journal).size).toBeGreaterThanOrEqual(JOURNAL_SLACK);
    } finally {
      datasyncs.mockRestore();
    }
  });

  it('a preallocated journal of uploaded records is compacted when its zeros run out: it stays within its live records and the slack', async () => {
    const mem = objectStore();
    const env = await start(mem);
    const journal = join(env.stateDir, 'writeback', 'journal.log');
    let largest = 0;
    // 3 x the slack in ~80 KiB records, each uploaded (and its record deleted) soon after.
    const n = Math.ceil((3 * JOURNAL_SLACK) / (80 * 1024));
    for (let i = 0; i < n; i++) {
      await writeFile(env.vfs, `/c${i % 4}`, Buffer.alloc(60 * 1024, i));
      largest = Math.max(largest, statSync(journal).size);
    }
    await drained(env);
    await until(() => parseJournal(readFileSync(journal, 'utf8')).live.size === 0, 20_000, 'the uploads\' delete records');
    // At most 4 files pending (~330 KiB of records) + the slack + one batch past it.
    expect(largest).toBeLessThan(2 * JOURNAL_SLACK + 512 * 1024);
    for (let i = 0; i < 4; i++) expect((await mem.read(`/c${i}`, 0, 70 * 1024)).length).toBe(60 * 1024);
  });

  it('shutdown drains pending uploads within shutdownDrainMs, and leaves the rest journaled', async () => {
    const mem = objectStore();
    const env = await start(mem, { writeBack: { shutdownDrainMs: 100 } });
    env.g.close();
    await writeFile(env.vfs, '/late', 'uploaded by the next start');
    await env.vfs.shutdown();
    expect(existsSync(join(env.stateDir, 'writeback', 'journal.log'))).toBe(true);
    expect(parseJournal(readFileSync(join(env.stateDir, 'writeback', 'journal.log'), 'utf8')).live.size).toBe(1);
    const again = await start(mem, { stateDir: env.stateDir });
    await drained(again);
    expect(await stored(mem, '/late')).toBe('uploaded by the next start');

    const env3 = await start(objectStore(), { writeBack: { shutdownDrainMs: 10_000 } });
    await writeFile(env3.vfs, '/x', 'drained');
    await env3.vfs.shutdown();
    expect(parseJournal(readFileSync(join(env3.stateDir, 'writeback', 'journal.log'), 'utf8')).live.size).toBe(0);
  });

  it('maxPendingUploads: a close beyond it uploads in-band', async () => {
    const mem = objectStore();
    const env = await start(mem, { writeBack: { maxPendingUploads: 1 } });
    env.g.close();
    await writeFile(env.vfs, '/p1', 'pending');
    let closed = false;
    const second = writeFile(env.vfs, '/p2', 'in-band').then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    env.g.open();
    await second;
    expect(await stored(mem, '/p2')).toBe('in-band');
    await drained(env);
    expect(await stored(mem, '/p1')).toBe('pending');
  });

  it('uploadDelayMs: an upload waits out the delay after the last close (a rewrite meanwhile is uploaded once); a drain starts it at once', async () => {
    const mem = objectStore();
    const env = await start(mem, { writeBack: { uploadDelayMs: 600 } });
    const t0 = Date.now();
    await writeFile(env.vfs, '/d', 'one');
    await writeFile(env.vfs, '/d', 'two');
    await new Promise((r) => setTimeout(r, 200));
    if (Date.now() - t0 < 550) expect(env.g.commits).toBe(0);
    // Served from the stage meanwhile.
    expect(await readFile(env.vfs, '/d')).toBe('two');
    await drained(env);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    expect(await stored(mem, '/d')).toBe('two');
    expect(env.g.commits).toBe(1);
    // Going down: a waiting upload starts at once.
    await writeFile(env.vfs, '/e', 'three');
    const t1 = Date.now();
    expect(await env.vfs.writeBack.drain(5000)).toBe(0);
    expect(Date.now() - t1).toBeLessThan(550);
    expect(await stored(mem, '/e')).toBe('three');
  });

  it('sync mode (the default) still uploads before close returns', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'portico-wb-'));
    dirs.push(stateDir);
    const store = MetadataStore.open(stateDir);
    stores.push(store);
    const mem = objectStore();
    const g = gate(mem);
    const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback') });
    vfs.addVolume('s', buildVolumeStack(g.backend));
    g.close();
    let closed = false;
    const done = writeFile(vfs, '/s', 'synchronous').then(() => (closed = true));
    await until(() => g.waiting === 1, 30_000, 'the upload');
    expect(closed).toBe(false);
    g.open();
    await done;
    expect(await stored(mem, '/s')).toBe('synchronous');
    expect(existsSync(join(stateDir, 'writeback'))).toBe(false);
  });

  it('exposes pending uploads, bytes and failures as metrics (an in-process restart takes the names over)', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'portico-wb-'));
    dirs.push(stateDir);
    const registry = new Registry();
    const open = (): { vfs: Vfs; g: GatedBackend } => {
      const store = MetadataStore.open(stateDir);
      stores.push(store);
      const g = gate(mem);
      const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback'), metricsRegistry: registry });
      vfs.addVolume('s', buildVolumeStack(g.backend), { writeBack: { mode: 'async', retryBaseMs: 5, retryMaxMs: 40 } });
      return { vfs, g };
    };
    const mem = objectStore();
    const a = open();
    await a.vfs.recoverWriteBack();
    a.g.fail('EIO', 2);
    a.g.close();
    await writeFile(a.vfs, '/m1', 'x'.repeat(1000));
    let text = await registry.metrics();
    expect(text).toMatch(/portico_writeback_pending_uploads\{share="s"\} 1/);
    expect(text).toMatch(/portico_writeback_pending_bytes\{share="s"\} 1000/);
    a.g.open();
    await until(() => a.vfs.writeBack.stats().pending === 0, 20_000, 'the upload');
    text = await registry.metrics();
    expect(text).toMatch(/portico_writeback_upload_failures_total\{share="s",code="EIO"\} 2/);
    expect(text).toMatch(/portico_writeback_uploads_total\{share="s"\} 1/);
    const b = open();
    await b.vfs.recoverWriteBack();
    expect(await registry.metrics()).toMatch(/portico_writeback_pending_uploads\{share="s"\} 0/);
  });

  it('refuses async mode without a write-back directory', () => {
    const store = MetadataStore.open(':memory:');
    stores.push(store);
    const vfs = new Vfs({ store });
    expect(() => vfs.addVolume('s', buildVolumeStack(objectStore()), { writeBack: { mode: 'async' } })).toThrow(/write-back directory/);
  });
});

describe('write-back journal format', () => {
  it('skips torn and corrupt lines and keeps the newest record per key', () => {
    const put = (k: string, path: string): string => encodeRecord({
      t: 'put', k, vol: 's', path, fid: '1', size: 1, mtime: '1',
      snap: { v: 1, file: 'stage-x', path, mode: 'whole', size: 1, dirty: true, base: null, baseEnd: 0, extents: [] },
    });
    const corrupt = put('c', '/c').replace('/c', '/C');
    const text = put('a', '/a1') + put('b', '/b') + corrupt + put('a', '/a2') + encodeRecord({ t: 'del', k: 'b' }) + put('z', '/z').slice(0, 30);
    const { live, bad } = parseJournal(text);
    expect(bad).toBe(2);
    expect([...live.keys()]).toEqual(['a']);
    expect(live.get('a')!.path).toBe('/a2');
  });

  it('the zero tail of a preallocated journal is not a record; a line holding zeros is torn', () => {
    const put = (k: string): string => encodeRecord({
      t: 'put', k, vol: 's', path: `/${k}`, fid: '1', size: 1, mtime: '1',
      snap: { v: 1, file: 'stage-x', path: `/${k}`, mode: 'whole', size: 1, dirty: true, base: null, baseEnd: 0, extents: [] },
    });
    const zeros = (n: number): string => '\0'.repeat(n);
    expect(parseJournal(put('a') + put('b') + zeros(5000))).toMatchObject({ bad: 0 });
    expect([...parseJournal(put('a') + put('b') + zeros(5000)).live.keys()]).toEqual(['a', 'b']);
    // A write torn at a block boundary: its first block still zeros, the rest on disk.
    const b = put('b');
    const r1 = parseJournal(put('a') + zeros(100) + b.slice(40) + zeros(5000));
    expect([...r1.live.keys()]).toEqual(['a']);
    expect(r1.bad).toBe(1);
    // Or the other way round: the record's start on disk, its end still zeros.
    const r2 = parseJournal(put('a') + b.slice(0, 40) + zeros(5000));
    expect([...r2.live.keys()]).toEqual(['a']);
    expect(r2.bad).toBe(1);
  });
});
