/**
 * A directory's cached attributes across changes made in it through Portico (Vfs.touchDir,
 * AttrCache.touchDir): a file created, removed or renamed keeps them — change value advanced by
 * one, times as last seen until the backend's show (never ahead of them) — so the next ask (NFS change_info4, GETATTR) needs no stat, and keeps the
 * directory's other cached names; a stat right after, off the request, learns the directory's new
 * signature, so a name added outside afterwards still advances the change value once the cache
 * time has passed. A subdirectory's create drops them (the link count moves).
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

async function setup(attrCacheMs: number): Promise<{ root: string; v: Vfs; stats: (path: string) => number }> {
  const root = mkdtempSync(join(tmpdir(), 'portico-dirattr-'));
  const state = mkdtempSync(join(tmpdir(), 'portico-dirattr-state-'));
  dirs.push(root, state);
  const backend = new LocalBackend(root);
  const counts = new Map<string, number>();
  const stat = backend.stat.bind(backend);
  backend.stat = (p) => {
    counts.set(p, (counts.get(p) ?? 0) + 1);
    return stat(p);
  };
  const v = new Vfs({ store: MetadataStore.open(join(state, 'db')), stageDir: join(state, 'stage'), attrCacheMs });
  vfs = v;
  v.addVolume('s', buildVolumeStack(backend));
  await v.mkdir('s', '/d');
  return { root, v, stats: (p) => counts.get(p) ?? 0 };
}

async function create(v: Vfs, path: string): Promise<void> {
  const h = await v.open('s', path, { access: RW, disposition: 'create', owner: 't', expect: 'file' });
  await v.write(h, 0, Buffer.from('x'));
  await v.close(h);
}

describe('directory attributes across changes through Portico', () => {
  it('a file created or removed keeps them: change +1, mtime never going back, no stat on the next ask, other names still cached', async () => {
    const { root, v, stats } = await setup(60_000);
    await create(v, '/d/sib');
    const dirId = (await v.getattr('s', '/d')).id;
    await sleep(20);
    let last = await v.getattrById('s', dirId);
    const sib = await v.lookupIn('s', dirId, '/d', 'sib');
    for (let i = 0; i < 5; i++) {
      for (const step of ['create', 'remove'] as const) {
        if (step === 'create') await create(v, `/d/f${i}`);
        else await v.unlink('s', `/d/f${i}`);
        const dirStats = stats('/d');
        const sibStats = stats('/d/sib');
        const a = await v.getattrById('s', dirId);
        // Served from the cache (no stat of the directory), one change later.
        expect(stats('/d')).toBe(dirStats);
        expect(a.change).toBe(last.change + 1n);
        expect(a.mtimeNs >= last.mtimeNs).toBe(true);
        // The sibling's lookup too.
        expect((await v.lookupIn('s', dirId, '/d', 'sib')).id).toBe(sib.id);
        expect(stats('/d/sib')).toBe(sibStats);
        last = a;
      }
    }
    // The stat that learned the signature ran off the request: the real times, the same change.
    await sleep(50);
    const learned = await v.getattrById('s', dirId);
    expect(learned.change).toBe(last.change);
    expect(learned.mtimeNs).toBe(statSync(join(root, 'd'), { bigint: true }).mtimeNs);
  });

  it('a name added outside after a change through Portico still advances the change value once the cache time has passed', async () => {
    const { root, v } = await setup(200);
    const dirId = (await v.getattr('s', '/d')).id;
    await v.getattrById('s', dirId);
    await create(v, '/d/a');
    const mine = await v.getattrById('s', dirId);
    await sleep(50);
    writeFileSync(join(root, 'd', 'outside'), 'y');
    await sleep(300);
    const after = await v.getattrById('s', dirId);
    expect(after.change).toBe(mine.change + 1n);
  });

  it('a subdirectory created drops them: the next ask stats and shows the new link count', async () => {
    const { v, stats } = await setup(60_000);
    const dirId = (await v.getattr('s', '/d')).id;
    const before = await v.getattrById('s', dirId);
    await v.mkdir('s', '/d/sub');
    const n = stats('/d');
    const a = await v.getattrById('s', dirId);
    expect(stats('/d')).toBe(n + 1);
    expect(a.nlink).toBe(before.nlink + 1);
    expect(a.change).toBe(before.change + 1n);
  });
});
