/**
 * Directory renames on a backend without atomic rename (`memory:objectstore`): the journaled,
 * concurrent tree move of src/vfs/tree-move.ts — content and ids, concurrency bounds, EBUSY inside
 * a moving tree, undo of a move that changed nothing, background completion after an error, and a
 * restart that finishes a move a "crash" left half done.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import { VfsError } from '../../src/vfs/errors.ts';
import type { ChangeEvent } from '../../src/vfs/types.ts';
import {
  RO, RW, expectCode, gate, get, hooked, idsOf, makeTree, memoryLogger, moved, openEnv, put, removeDir, treeSpec, until, type Env,
} from './helpers.ts';

const objectStore = (): MemoryBackend => new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function track(env: Env): Env {
  cleanups.push(async () => {
    await env.stop();
    removeDir(env.stateDir);
  });
  return env;
}

/** Checks the whole tree is at `to` with its content and ids, and nothing is left at `from`. */
async function expectMoved(env: Env, tree: ReturnType<typeof treeSpec>, ids: Map<string, bigint>, from: string, to: string): Promise<void> {
  for (const [p, content] of tree.files) {
    const q = moved(p, from, to);
    expect((await get(env.vfs, q)).toString()).toBe(content);
    expect((await env.vfs.getattr('s', q)).id).toBe(ids.get(p));
    expect(env.vfs.pathOf('s', ids.get(p)!)).toBe(q);
  }
  for (const d of tree.dirs) {
    const q = moved(d, from, to);
    const a = await env.vfs.getattr('s', q);
    expect(a.type).toBe('dir');
    expect(a.id).toBe(ids.get(d));
  }
  await expectCode(env.vfs.getattr('s', from), 'ENOENT');
  expect(env.store.pendingTreeMoves('s')).toEqual([]);
  expect(env.vfs.treeMoves.activeMoves('s')).toEqual([]);
}

describe('tree move on an object store (memory)', () => {
  it('renames a tree of 300+ files in nested directories: content and ids kept, copies concurrent and bounded', async () => {
    const inner = objectStore();
    // A copy takes a moment, so concurrent copies overlap measurably (no timing is asserted).
    const b = hooked(inner, { before: (op) => (op === 'copy' ? new Promise((r) => setTimeout(r, 2)) : undefined) });
    const env = track(openEnv(b, { treeMoves: { concurrency: 8 } }));
    const tree = treeSpec('/src', 6, 5, 10);
    await makeTree(env.vfs, tree);
    const ids = await idsOf(env.vfs, tree);
    const events: ChangeEvent[] = [];
    env.vfs.events.on('change', (e: ChangeEvent) => events.push(e));

    await env.vfs.rename('s', '/src', '/dst');

    expect(tree.files.size).toBe(301);
    await expectMoved(env, tree, ids, '/src', '/dst');
    expect(b.calls.get('copy')).toBe(301);
    expect(b.peak.get('copy')).toBeGreaterThan(1);
    expect(b.peak.get('copy')).toBeLessThanOrEqual(8);
    // One event for the whole rename, none per object.
    expect(events.filter((e) => e.kind === 'rename')).toEqual([expect.objectContaining({ path: '/dst', oldPath: '/src', id: ids.get('/src'), type: 'dir' })]);
    // The empty directory came along; the tree is listed as before.
    expect((await env.vfs.readdir('s', '/dst/empty')).entries).toEqual([]);
    expect((await env.vfs.readdir('s', '/dst')).entries.map((e) => e.name)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'empty', 'top.txt']);
  });

  it('without server-side copy the bytes stream through; mode and mtime are kept', async () => {
    const b = hooked(new MemoryBackend({ capabilities: { ...MEMORY_OBJECTSTORE_CAPABILITIES, serverSideCopy: false } }), {});
    const env = track(openEnv(b));
    const tree = treeSpec('/src', 2, 2, 4);
    await makeTree(env.vfs, tree);
    await put(env.vfs, '/src/big', Buffer.alloc(5 * 1024 * 1024 + 7, 0xab));
    await env.vfs.setattr('s', '/src/big', { mode: 0o600, mtimeNs: 1_600_000_000_123_456_789n });
    const ids = await idsOf(env.vfs, tree);
    await env.vfs.rename('s', '/src', '/dst');
    await expectMoved(env, tree, ids, '/src', '/dst');
    const a = await env.vfs.getattr('s', '/dst/big');
    expect(a.mode & 0o777).toBe(0o600);
    expect(a.mtimeNs).toBe(1_600_000_000_123_456_789n);
    expect((await get(env.vfs, '/dst/big')).equals(Buffer.alloc(5 * 1024 * 1024 + 7, 0xab))).toBe(true);
    expect(b.calls.get('copy')).toBeUndefined();
  });

  it('replaces an empty target directory, takes the source mode and drops the replaced id', async () => {
    const env = track(openEnv(objectStore()));
    await env.vfs.mkdir('s', '/src', 0o700);
    await put(env.vfs, '/src/f', 'F');
    await env.vfs.mkdir('s', '/dst', 0o755);
    const srcId = (await env.vfs.getattr('s', '/src')).id;
    const dstId = (await env.vfs.getattr('s', '/dst')).id;
    await env.vfs.rename('s', '/src', '/dst');
    const a = await env.vfs.getattr('s', '/dst');
    expect(a.id).toBe(srcId);
    expect(a.mode & 0o777).toBe(0o700);
    expect((await get(env.vfs, '/dst/f')).toString()).toBe('F');
    await expectCode(Promise.resolve().then(() => env.vfs.pathOf('s', dstId)), 'ESTALE');
  });

  it('while a tree moves: changes inside either tree are EBUSY, reads go on, the rest of the share is free', async () => {
    const g = gate();
    const b = hooked(objectStore(), { before: (op, args) => (op === 'copy' && String(args[0]).startsWith('/src/') ? g.wait() : undefined) });
    const env = track(openEnv(b));
    const tree = treeSpec('/src', 2, 2, 3);
    await makeTree(env.vfs, tree);
    await env.vfs.mkdir('s', '/other');
    await put(env.vfs, '/other/x', 'x');
    const renaming = env.vfs.rename('s', '/src', '/dst');
    await until(() => g.waiting() > 0, 'the first copy');

    // Namespace changes and writes in the source or the target tree.
    await expectCode(env.vfs.mkdir('s', '/src/new'), 'EBUSY');
    await expectCode(env.vfs.mkdir('s', '/dst/new'), 'EBUSY');
    await expectCode(put(env.vfs, '/src/top.txt', 'changed'), 'EBUSY');
    await expectCode(put(env.vfs, '/dst/created', 'new'), 'EBUSY');
    await expectCode(env.vfs.unlink('s', '/src/a0/b0/f0.txt'), 'EBUSY');
    await expectCode(env.vfs.open('s', '/src/top.txt', { access: RW, owner: 'w' }), 'EBUSY');
    await expectCode(env.vfs.rename('s', '/src/top.txt', '/other/top.txt'), 'EBUSY');
    await expectCode(env.vfs.rename('s', '/other/x', '/src/x'), 'EBUSY');
    await expectCode(env.vfs.rename('s', '/src/a0', '/a0'), 'EBUSY');
    await expectCode(env.vfs.setattr('s', '/src/top.txt', { mode: 0o600 }), 'EBUSY');
    // Reads go on (the file is at one of its two places).
    expect((await get(env.vfs, '/src/top.txt')).toString()).toBe('top of /src');
    expect((await env.vfs.readdir('s', '/src/a1')).entries.length).toBeGreaterThan(0);
    // Elsewhere nothing is held up.
    await put(env.vfs, '/other/y', 'y');
    await env.vfs.rename('s', '/other/y', '/other/z');

    g.open();
    await renaming;
    await env.vfs.mkdir('s', '/dst/new');
    await put(env.vfs, '/dst/top.txt', 'changed');
    expect((await get(env.vfs, '/dst/top.txt')).toString()).toBe('changed');
    await expectCode(env.vfs.getattr('s', '/src'), 'ENOENT');
  });

  it('refuses to start while a file inside is open for writing; a reader inside follows the move', async () => {
    const env = track(openEnv(objectStore()));
    await env.vfs.mkdir('s', '/src');
    await put(env.vfs, '/src/w', 'write me');
    await put(env.vfs, '/src/r', 'read me');
    const w = await env.vfs.open('s', '/src/w', { access: RW, owner: 'w' });
    await expectCode(env.vfs.rename('s', '/src', '/dst'), 'EBUSY');
    await env.vfs.write(w, 0, Buffer.from('WRITE'));
    await env.vfs.close(w);
    const r = await env.vfs.open('s', '/src/r', { access: RO, owner: 'r' });
    // The directory's own handle with DELETE access (how SMB renames) does not block its rename.
    const d = await env.vfs.open('s', '/src', { access: { read: true, write: false, delete: true }, owner: 'smb', expect: 'dir' });
    await env.vfs.rename('s', '/src', '/dst');
    expect(d.path).toBe('/dst');
    await env.vfs.close(d);
    expect(r.path).toBe('/dst/r');
    expect((await env.vfs.read(r, 0, 100)).toString()).toBe('read me');
    expect((await env.vfs.fstat(r)).id).toBe((await env.vfs.getattr('s', '/dst/r')).id);
    await env.vfs.close(r);
    expect((await get(env.vfs, '/dst/w')).toString()).toBe('WRITE me');
  });

  it('a move whose first change fails is undone: error returned, ids and tree where they were, no journal', async () => {
    let fail = true;
    const b = hooked(objectStore(), {
      before: (op, args) => {
        if (fail && op === 'mkdir' && args[0] === '/dst') throw new VfsError('EACCES', 'read-only credentials');
      },
    });
    const env = track(openEnv(b));
    const tree = treeSpec('/src', 1, 2, 2);
    await makeTree(env.vfs, tree);
    const ids = await idsOf(env.vfs, tree);
    await expectCode(env.vfs.rename('s', '/src', '/dst'), 'EACCES');
    for (const [p, id] of ids) {
      expect((await env.vfs.getattr('s', p)).id).toBe(id);
      expect(env.vfs.pathOf('s', id)).toBe(p);
    }
    expect(env.store.pendingTreeMoves('s')).toEqual([]);
    expect(env.vfs.treeMoves.activeMoves('s')).toEqual([]);
    await env.vfs.mkdir('s', '/src/not-busy');
    await env.vfs.rmdir('s', '/src/not-busy');
    fail = false;
    await env.vfs.rename('s', '/src', '/dst');
    await expectMoved(env, tree, ids, '/src', '/dst');
  });

  it('a move that fails halfway returns the error and is finished in the background; the trees stay guarded meanwhile', async () => {
    let copies = 0;
    let failures = 0;
    const b = hooked(objectStore(), {
      before: (op) => {
        if (op !== 'copy') return;
        // The 20th copy and the next 5 attempts fail, as a store outage would.
        if (++copies >= 20 && failures < 6) {
          failures++;
          throw new VfsError('EIO', 'store unavailable');
        }
      },
    });
    const logger = memoryLogger();
    const env = track(openEnv(b, { treeMoves: { concurrency: 4, retryBaseMs: 10, retryMaxMs: 40, logger } }));
    const tree = treeSpec('/src', 3, 3, 6);
    await makeTree(env.vfs, tree);
    const ids = await idsOf(env.vfs, tree);
    const events: ChangeEvent[] = [];
    env.vfs.events.on('change', (e: ChangeEvent) => events.push(e));

    await expectCode(env.vfs.rename('s', '/src', '/dst'), 'EIO');
    // Committed: the ids already name the new paths, and the move is journaled and guarded.
    expect(env.vfs.pathOf('s', ids.get('/src')!)).toBe('/dst');
    expect(env.store.pendingTreeMoves('s')).toHaveLength(1);
    await expectCode(env.vfs.mkdir('s', '/src/x'), 'EBUSY');
    await expectCode(env.vfs.rename('s', '/dst', '/again'), 'EBUSY');

    await env.vfs.treeMoves.whenIdle('s');
    await expectMoved(env, tree, ids, '/src', '/dst');
    expect(failures).toBe(6);
    expect(events.filter((e) => e.kind === 'rename')).toHaveLength(1);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('finished in the background'))).toBe(true);
    expect(logger.lines.some((l) => l.level === 'info' && l.msg.includes('interrupted directory rename finished'))).toBe(true);
  });

  it('a restart finishes a move a crash left half done: copied-not-deleted files, ids on the new paths', async () => {
    const inner = objectStore();
    // The "crash": after 40 source deletes every delete hangs for ever, so the process is stuck with
    // copies made whose sources are still there; the first stack is then abandoned.
    let unlinks = 0;
    const crashed = gate();
    const b = hooked(inner, { before: (op) => (op === 'unlink' && ++unlinks > 40 ? crashed.wait() : undefined) });
    const env1 = openEnv(b, { treeMoves: { concurrency: 6 } });
    const tree = treeSpec('/src', 4, 4, 8);
    await makeTree(env1.vfs, tree);
    const ids = await idsOf(env1.vfs, tree);
    void env1.vfs.rename('s', '/src', '/dst').catch(() => undefined);
    await until(() => crashed.waiting() >= 6, 'the stuck deletes');
    env1.store.close();

    // Both places hold files, and some files are at both (copied, source not deleted yet).
    let both = 0;
    let onlyOld = 0;
    let onlyNew = 0;
    for (const p of tree.files.keys()) {
      const o = await exists(inner, p);
      const n = await exists(inner, moved(p, '/src', '/dst'));
      if (o && n) both++;
      else if (o) onlyOld++;
      else if (n) onlyNew++;
    }
    expect(both).toBeGreaterThan(0);
    expect(onlyOld).toBeGreaterThan(0);
    expect(onlyNew).toBeGreaterThan(0);
    const logger = memoryLogger();
    const env2 = track(openEnv(inner, { stateDir: env1.stateDir, treeMoves: { logger } }));
    // Guarded from the moment the volume exists, before the resume runs.
    await expectCode(env2.vfs.mkdir('s', '/dst/early'), 'EBUSY');
    const report = await env2.vfs.resumeTreeMoves();
    expect(report).toEqual({ resumed: 1, retrying: 0, quarantined: 0, conflicts: 0 });
    await expectMoved(env2, tree, ids, '/src', '/dst');
    expect(logger.lines.some((l) => l.msg.includes('interrupted directory rename finished'))).toBe(true);
  });

  it('on resume a destination that differs from its source is kept and the source stays (conflict), the rest moves', async () => {
    const inner = objectStore();
    const hang = gate();
    const b = hooked(inner, { before: (op, args) => (op === 'copy' && String(args[0]).startsWith('/src/') ? hang.wait() : undefined) });
    const env1 = openEnv(b);
    const tree = treeSpec('/src', 1, 1, 3);
    await makeTree(env1.vfs, tree);
    const ids = await idsOf(env1.vfs, tree);
    void env1.vfs.rename('s', '/src', '/dst').catch(() => undefined);
    await until(() => hang.waiting() > 0, 'the first copy');
    env1.store.close();
    // Someone else (another S3 client) writes a different file where one of ours must go.
    const w = await inner.createWriter('/dst/top.txt');
    await w.write(Buffer.from('theirs'));
    await w.commit();

    const logger = memoryLogger();
    const env2 = track(openEnv(inner, { stateDir: env1.stateDir, treeMoves: { logger } }));
    const report = await env2.vfs.resumeTreeMoves();
    expect(report.resumed).toBe(1);
    expect(report.conflicts).toBe(1);
    expect((await get(env2.vfs, '/dst/top.txt')).toString()).toBe('theirs');
    expect((await get(env2.vfs, '/src/top.txt')).toString()).toBe('top of /src');
    for (const p of tree.files.keys()) {
      if (p === '/src/top.txt') continue;
      expect((await env2.vfs.getattr('s', moved(p, '/src', '/dst'))).id).toBe(ids.get(p));
    }
    expect(env2.store.pendingTreeMoves('s')).toEqual([]);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('could not be moved'))).toBe(true);
  });
});

describe('tree move and async write-back', () => {
  it('a pending upload below the moved tree follows it: the new content lands at the new path only', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'portico-treemove-wb-'));
    cleanups.push(() => removeDir(stateDir));
    const inner = objectStore();
    let storeDown = false;
    const b = hooked(inner, {
      before: (op, args) => {
        if (storeDown && op === 'createWriter' && String(args[0]).startsWith('/src/')) throw new VfsError('EIO', 'store unavailable');
      },
    });
    const store = MetadataStore.open(stateDir);
    const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage'), writeBackDir: join(stateDir, 'writeback') });
    cleanups.push(async () => {
      await vfs.shutdown();
      store.close();
    });
    vfs.addVolume('s', buildVolumeStack(b), { writeBack: { mode: 'async', retryBaseMs: 5, retryMaxMs: 20 } });
    await vfs.recoverWriteBack();
    await vfs.mkdir('s', '/src');
    await put(vfs, '/src/f', 'old');
    await put(vfs, '/src/g', 'other');
    const id = (await vfs.getattr('s', '/src/f')).id;
    storeDown = true;
    const h = await vfs.open('s', '/src/f', { access: RW, owner: 'w' });
    await vfs.write(h, 0, Buffer.from('new content'));
    await vfs.close(h);
    expect(vfs.writeBack.has(id)).toBe(true);

    await vfs.rename('s', '/src', '/dst');
    // The staged content is served at the new path until its upload lands there.
    expect((await get(vfs, '/dst/f')).toString()).toBe('new content');
    await until(() => !vfs.writeBack.has(id), 'the upload');
    expect((await inner.read('/dst/f', 0, 100)).toString()).toBe('new content');
    expect((await get(vfs, '/dst/g')).toString()).toBe('other');
    expect((await vfs.getattr('s', '/dst/f')).id).toBe(id);
    await expectCode(inner.stat('/src'), 'ENOENT');
    await expectCode(inner.stat('/src/f'), 'ENOENT');
  });
});

async function exists(b: MemoryBackend, path: string): Promise<boolean> {
  return b.stat(path).then(() => true, () => false);
}
