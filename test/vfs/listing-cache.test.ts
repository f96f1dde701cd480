/**
 * The listing cache (src/vfs/listing-cache.ts, issue 9 "Per-operation cost"): a directory paged
 * through again is served without a backend list or a stat per entry, and never misses a change:
 * every change through Portico shows in the next listing at once, a name added or removed outside
 * on a local disk shows at once (the directory's times move), and a member's attributes changed
 * outside show once the attribute cache's TTL has passed.
 */
import { appendFileSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';

const dirs: string[] = [];
let vfs: Vfs | undefined;
afterEach(async () => {
  await vfs?.shutdown();
  vfs = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const RW = { read: true, write: true, delete: false };

/** A Vfs over a local directory with N files in /d, whose times are 10 s old (not "racy"). */
async function setup(n: number, attrCacheMs = 60_000): Promise<{ root: string; vfs: Vfs; lists: () => number }> {
  const root = mkdtempSync(join(tmpdir(), 'portico-listing-'));
  const state = mkdtempSync(join(tmpdir(), 'portico-listing-state-'));
  dirs.push(root, state);
  const backend = new LocalBackend(join(root));
  let calls = 0;
  const list = backend.list.bind(backend);
  backend.list = (p, o) => {
    calls++;
    return list(p, o);
  };
  const v = new Vfs({ store: MetadataStore.open(':memory:'), stageDir: join(state, 'stage'), attrCacheMs });
  vfs = v;
  v.addVolume('s', buildVolumeStack(backend));
  await v.mkdir('s', '/d');
  for (let i = 0; i < n; i++) writeFileSync(join(root, 'd', `f${String(i).padStart(3, '0')}`), 'x');
  // The directory's last change must be older than the racy window for its listing to be kept:
  // ctime cannot be set, so wait it out.
  await sleep(2100);
  return { root, vfs: v, lists: () => calls };
}

/** Every entry, page by page; `use` entries of each page are taken (an NFS reply packs what fits). */
async function listAll(v: Vfs, dir = '/d', limit = 7, use = limit): Promise<Map<string, { size: number; id: bigint }>> {
  const out = new Map<string, { size: number; id: bigint }>();
  let cookie: bigint | undefined;
  for (;;) {
    const r = await v.readdir('s', dir, cookie === undefined ? { limit } : { cookie, limit });
    const taken = r.entries.slice(0, use);
    for (const e of taken) out.set(e.name, { size: e.attr.size, id: e.attr.id });
    if (r.eof && taken.length === r.entries.length) return out;
    cookie = taken.at(-1)!.cookie;
  }
}

describe('listing cache', () => {
  it('a second pass through a directory asks the backend nothing, and every change through Portico shows at once', async () => {
    const { vfs: v, lists } = await setup(30);
    const first = await listAll(v);
    expect(first.size).toBe(30);
    const n = lists();
    expect(await listAll(v)).toEqual(first);
    expect(lists()).toBe(n);
    // Resumed from inside each page: the same entries, still from the kept listing.
    expect(await listAll(v, '/d', 7, 3)).toEqual(first);
    expect(lists()).toBe(n);
    // A create, a write that grows a file, a rename, a remove, a setattr: each in the next listing.
    const h = await v.open('s', '/d/new', { access: RW, disposition: 'create', owner: 't', expect: 'file' });
    expect((await listAll(v)).get('new')?.size).toBe(0);
    await v.write(h, 0, Buffer.from('12345'));
    expect((await listAll(v)).get('new')?.size).toBe(5);
    await v.close(h);
    await v.rename('s', '/d/f001', '/d/g001');
    let now = await listAll(v);
    expect(now.has('f001')).toBe(false);
    expect(now.get('g001')?.id).toBe(first.get('f001')?.id);
    await v.unlink('s', '/d/f002');
    expect((await listAll(v)).has('f002')).toBe(false);
    await v.setattr('s', '/d/f003', { size: 9 });
    expect((await listAll(v)).get('f003')?.size).toBe(9);
    // A rename of the directory itself: the old path lists nothing, the new one everything.
    await v.rename('s', '/d', '/e');
    now = await listAll(v, '/e');
    expect(now.get('f003')?.size).toBe(9);
    await expect(v.readdir('s', '/d')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a change in another directory while a listing is built does not keep it from being kept; one in the directory does', async () => {
    const { vfs: v, lists } = await setup(30);
    await v.mkdir('s', '/other');
    /** A pass of /d in pages of 7, `between` run after each page. */
    const pass = async (between: (page: number) => Promise<void>): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      let cookie: bigint | undefined;
      for (let page = 0; ; page++) {
        const r = await v.readdir('s', '/d', cookie === undefined ? { limit: 7 } : { cookie, limit: 7 });
        for (const e of r.entries) out.set(e.name, e.attr.size);
        if (r.eof) return out;
        cookie = r.entries.at(-1)!.cookie;
        await between(page);
      }
    };
    // Files created and written in /other between the pages of the build.
    await pass(async (page) => {
      const h = await v.open('s', `/other/o${page}`, { access: RW, disposition: 'create', owner: 't', expect: 'file' });
      await v.write(h, 0, Buffer.from('abc'));
      await v.close(h);
    });
    const n = lists();
    expect((await pass(async () => undefined)).size).toBe(30);
    expect(lists()).toBe(n);
    // A member of /d changed between the pages of a build (after its page was listed): that build
    // is not kept, so the next pass lists again and shows the change.
    await v.setattr('s', '/d/f010', { size: 1 });
    await pass(async (page) => {
      if (page === 2) await v.setattr('s', '/d/f000', { size: 4 });
    });
    const m = lists();
    const again = await pass(async () => undefined);
    expect(again.get('f000')).toBe(4);
    expect(lists()).toBeGreaterThan(m);
  });

  it('a member changed while a page is being listed does not enter the listing (first page and later ones)', async () => {
    for (const pausedPage of [0, 2]) {
      const { root, vfs: v } = await setup(30);
      const backend = (v as unknown as { volume(n: string): { backend: { list: (p: string, o?: { after?: string; limit?: number }) => Promise<unknown> } } }).volume('s').backend;
      // The backend's answer for one page of /d is held back until the change below is made.
      let calls = 0;
      let release: (() => void) | undefined;
      const held = new Promise<void>((r) => (release = r));
      let reached: (() => void) | undefined;
      const atList = new Promise<void>((r) => (reached = r));
      const list = backend.list.bind(backend);
      backend.list = async (p, o) => {
        const page = await list(p, o);
        if (p === '/d' && calls++ === pausedPage) {
          reached!();
          await held;
        }
        return page;
      };
      const first = (async () => listAll(v))();
      await atList;
      await v.setattr('s', '/d/f001', { size: 7 });
      release!();
      await first;
      // Whatever the held pass showed, the next one shows the change: the stale page was not kept.
      expect((await listAll(v)).get('f001')?.size).toBe(7);
      await vfs?.shutdown();
      vfs = undefined;
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a directory renamed or removed elsewhere keeps the listing of /d; its own listings and its parent\'s go', async () => {
    const { root, vfs: v, lists } = await setup(20);
    await v.mkdir('s', '/x');
    await v.mkdir('s', '/x/sub');
    await v.mkdir('s', '/tmp1');
    for (let i = 0; i < 10; i++) writeFileSync(join(root, 'x', 'sub', `g${i}`), 'y');
    await sleep(2100);
    const d = await listAll(v);
    expect((await listAll(v, '/x/sub')).size).toBe(10);
    expect((await listAll(v, '/')).has('tmp1')).toBe(true);
    let n = lists();
    // Kept: a second pass of each lists nothing.
    await listAll(v);
    await listAll(v, '/x/sub');
    expect(lists()).toBe(n);
    // An empty directory removed elsewhere, then a directory renamed elsewhere: /d's listing stays.
    await v.rmdir('s', '/tmp1');
    await v.rename('s', '/x', '/y');
    n = lists();
    expect(await listAll(v)).toEqual(d);
    expect(lists()).toBe(n);
    // The parent's listing shows both changes, the moved directory lists under its new name only.
    const top = await listAll(v, '/');
    expect([...top.keys()].filter((k) => k !== 'd').sort()).toEqual(['y']);
    expect((await listAll(v, '/y/sub')).size).toBe(10);
    await expect(v.readdir('s', '/x/sub')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lists()).toBeGreaterThan(n);
  });

  it('a name added or removed outside shows at once; a member written outside once the TTL is over', async () => {
    const { root, vfs: v, lists } = await setup(20, 300);
    // Built from pages resumed inside themselves (what an NFS READDIR does).
    await listAll(v, '/d', 7, 3);
    const n = lists();
    await listAll(v);
    expect(lists()).toBe(n);
    writeFileSync(join(root, 'd', 'outside'), 'abc');
    expect((await listAll(v)).get('outside')?.size).toBe(3);
    unlinkSync(join(root, 'd', 'f005'));
    expect((await listAll(v)).has('f005')).toBe(false);
    // A change in place moves no directory time: within the TTL the listing may show the old size.
    await sleep(2100);
    await listAll(v);
    await listAll(v);
    appendFileSync(join(root, 'd', 'f006'), 'more');
    await sleep(400);
    expect((await listAll(v)).get('f006')?.size).toBe(5);
  });

  it('on a file system with fine times, a name added outside right after a kept listing shows at once (20 rounds)', async () => {
    const { root, vfs: v, lists } = await setup(5);
    for (let i = 0; i < 20; i++) {
      // Past the backend's granularity (local ext4/xfs/btrfs/tmpfs: 20 ms), the listing is kept...
      await sleep(30);
      await listAll(v);
      const n = lists();
      await listAll(v);
      const kept = lists() === n;
      // ... and an add right after it moves the directory's times all the same.
      writeFileSync(join(root, 'd', `quick${i}`), 'q');
      expect((await listAll(v)).has(`quick${i}`)).toBe(true);
      if (i === 19) expect(kept || v.volume('s').backend.capabilities.directoryTimeGranularityMs === undefined).toBe(true);
    }
  });

  it('a directory whose times were set back is still seen changed (ctime) after an outside add', async () => {
    const { root, vfs: v } = await setup(10);
    await listAll(v);
    await listAll(v);
    writeFileSync(join(root, 'd', 'late'), 'z');
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(root, 'd'), old, old);
    expect((await listAll(v)).has('late')).toBe(true);
  });
});
