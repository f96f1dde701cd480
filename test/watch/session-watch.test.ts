/**
 * Change watches at the session gate (issue 9), over the memory and the local backend: what one
 * session changes, another session's watch reports — kinds, paths, names, ids, kind filters,
 * renames into and out of the scope, directories followed through renames —, nothing below a rule
 * that denies the watcher read, a bounded queue that overflows into one marker, and watches that
 * end with their session or their directory. On the local backend the outside-change watcher runs
 * too, so these also show Portico's own changes are not reported a second time by inotify.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import type { Watch, WatchEvent } from '../../src/session/watch.ts';
import { makeVfsEnv, alice, bob, type VfsEnv } from '../helpers/vfs-env.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';

let env: VfsEnv | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await env?.destroy();
  env = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** kind, name (relative to the watched directory), old name for renames. */
function brief(e: WatchEvent): string {
  if (e.kind === 'overflow') return 'overflow';
  return e.oldName !== undefined ? `${e.kind} ${e.oldName} -> ${e.name}` : `${e.kind} ${e.name}`;
}

/**
 * Everything the watch delivers until it has been quiet for `quietMs` (long enough for the local
 * backend's coalesced outside reports, which would show as duplicates, to arrive).
 */
async function settle(w: Watch, quietMs = 300): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for (;;) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), quietMs);
    const got = await w.wait(ac.signal);
    clearTimeout(t);
    if (!got) return out;
    out.push(...w.take());
  }
}

const backends: Array<[string, () => Backend]> = [
  ['memory', () => new MemoryBackend()],
  [
    'local',
    () => {
      const root = mkdtempSync(join(tmpdir(), 'portico-watch-'));
      dirs.push(root);
      return new LocalBackend(root);
    },
  ],
];

describe.each(backends)('change watches on the %s backend', (_name, make) => {
  it('direct and recursive watches see creates, modifies, attribute changes, renames and deletes made by another session', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/d');
    await b.mkdir('s', '/d/sub');
    const direct = await a.watch('s', '/d');
    const tree = await a.watch('s', '/d', { recursive: true });

    await writeFile(b, '/d/f', 'x');
    const fId = (await b.getattr('s', '/d/f')).id;
    await b.setattr('s', '/d/f', { mode: 0o600 });
    await b.rename('s', '/d/f', '/d/g');
    await writeFile(b, '/d/sub/deep', 'y');
    // Out of sub (outside the direct watch's scope) into /d: a create for the direct watch.
    await b.rename('s', '/d/sub/deep', '/d/deep2');
    // And out of /d into sub: a delete for the direct watch, still a rename for the tree.
    await b.rename('s', '/d/deep2', '/d/sub/back');
    await b.unlink('s', '/d/g');
    await b.mkdir('s', '/d/sub/nd');
    await b.rmdir('s', '/d/sub/nd');

    const seenDirect = await settle(direct);
    expect(seenDirect.map(brief)).toEqual(['create f', 'modify f', 'attrib f', 'rename f -> g', 'create deep2', 'delete deep2', 'delete g']);
    const seenTree = await settle(tree);
    expect(seenTree.map(brief)).toEqual([
      'create f', 'modify f', 'attrib f', 'rename f -> g',
      'create sub/deep', 'modify sub/deep', 'rename sub/deep -> deep2', 'rename deep2 -> sub/back',
      'delete g', 'create sub/nd', 'delete sub/nd',
    ]);

    // Paths are share paths; ids are the files' persistent ids, kept through renames.
    const created = seenDirect[0]!;
    const renamed = seenDirect[3]!;
    if (created.kind === 'overflow' || renamed.kind === 'overflow') throw new Error('unexpected overflow');
    expect(created).toMatchObject({ path: '/d/f', id: fId, type: 'file' });
    expect(renamed).toMatchObject({ path: '/d/g', oldPath: '/d/f', id: fId, type: 'file' });
    const back = seenTree.find((e) => e.kind === 'rename' && e.path === '/d/sub/back');
    expect(back).toMatchObject({ oldPath: '/d/deep2', id: (await b.getattr('s', '/d/sub/back')).id });
    expect(seenTree.find((e) => e.kind === 'create' && e.path === '/d/sub/nd')).toMatchObject({ type: 'dir' });
    // Change values grow with every change of a file.
    const changes = seenDirect.slice(0, 4).map((e) => (e.kind === 'overflow' ? 0n : e.change));
    for (let i = 1; i < changes.length; i++) expect(changes[i]! > changes[i - 1]!).toBe(true);
  });

  it('filters by kind and node type (SMB completion filters: file names, directory names, last write)', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/d');
    const fileNames = await a.watch('s', '/d', { filter: { create: ['file', 'symlink'], delete: ['file', 'symlink'], rename: ['file', 'symlink'] } });
    const dirNames = await a.watch('s', '/d', { filter: { create: ['dir'], delete: ['dir'], rename: ['dir'] } });
    const lastWrite = await a.watch('s', '/d', { filter: { modify: true } });
    const attributes = await a.watch('s', '/d', { filter: { attrib: true } });

    await writeFile(b, '/d/f', 'x');
    await b.mkdir('s', '/d/sd');
    await b.setattr('s', '/d/f', { mode: 0o640 });
    await b.rename('s', '/d/sd', '/d/sd2');
    await b.rmdir('s', '/d/sd2');
    await b.unlink('s', '/d/f');

    expect((await settle(fileNames)).map(brief)).toEqual(['create f', 'delete f']);
    expect((await settle(dirNames)).map(brief)).toEqual(['create sd', 'rename sd -> sd2', 'delete sd2']);
    expect((await settle(lastWrite)).map(brief)).toEqual(['modify f']);
    expect((await settle(attributes)).map(brief)).toEqual(['attrib f']);
  });

  it('drops what the principal may not read: nothing arrives from below a rule that denies it', async () => {
    // alice (staff) may not read /d/fin; bob (finance) may.
    env = makeVfsEnv(make(), {
      share: {
        rules: [
          { path: '/d/fin', groups: ['finance'], allow: ['read', 'write'] },
          { path: '/d/fin', users: ['*'], deny: ['read', 'write'] },
        ],
      },
    });
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/d');
    await b.mkdir('s', '/d/fin');
    const aliceTree = await a.watch('s', '/d', { recursive: true });
    const bobTree = await b.watch('s', '/d', { recursive: true });
    await expectCode(a.watch('s', '/d/fin'), 'EACCES');

    await writeFile(b, '/d/fin/secret', 's');
    await b.mkdir('s', '/d/fin/deeper');
    await writeFile(b, '/d/open', 'o');
    // Moved under the rule: alice sees it go, bob sees the rename.
    await b.rename('s', '/d/open', '/d/fin/moved');
    await b.unlink('s', '/d/fin/secret');

    expect((await settle(aliceTree)).map(brief)).toEqual(['create open', 'modify open', 'delete open']);
    expect((await settle(bobTree)).map(brief)).toEqual([
      'create fin/secret', 'modify fin/secret', 'create fin/deeper', 'create open', 'modify open', 'rename open -> fin/moved', 'delete fin/secret',
    ]);
  });

  it('a flooded watch keeps at most its bound and delivers one overflow marker, then events again', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/flood');
    const w = await a.watch('s', '/flood');
    expect(w.queueLimit).toBe(1024);
    let most = 0;
    for (let i = 0; i < 5000; i++) {
      await b.mkdir('s', `/flood/d${i}`);
      most = Math.max(most, w.queued);
    }
    expect(most).toBeLessThanOrEqual(1024);
    expect(w.overflows).toBeGreaterThanOrEqual(1);
    await sleep(300); // the local backend's echoes of these creates, which must not be reported
    const got = w.take();
    expect(got.length).toBeLessThanOrEqual(1024);
    expect(got[0]).toEqual({ kind: 'overflow' });
    expect(got.filter((e) => e.kind === 'overflow')).toHaveLength(1);
    // What followed the marker is in order and ends with the last create.
    expect(brief(got.at(-1)!)).toBe('create d4999');
    // Read, the watch reports again.
    await b.mkdir('s', '/flood/after');
    const afterEvents = await settle(w);
    expect(afterEvents.map(brief)).toEqual(['create after']);

    // A small bound: the marker stands for everything dropped, and is never doubled.
    const small = await a.watch('s', '/flood', { queueLimit: 2 });
    for (let i = 0; i < 10; i++) await b.rmdir('s', `/flood/d${i}`);
    expect(small.queued).toBeLessThanOrEqual(2);
    expect(small.take()[0]).toEqual({ kind: 'overflow' });
    await expectCode(a.watch('s', '/flood', { queueLimit: 0 }), 'EINVAL');
  });

  it('ends with its session (waiters and iterators finish), on close(), and when its directory is removed', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/d');
    await b.mkdir('s', '/gone');
    const w = await a.watch('s', '/d');
    const iterated: string[] = [];
    const loop = (async () => {
      for await (const e of w) iterated.push(brief(e));
    })();
    await b.mkdir('s', '/d/one');
    await sleep(20);
    const pending = w.wait();
    await a.end();
    expect(await pending).toBe(false);
    await loop;
    expect(iterated).toEqual(['create one']);
    expect(w.ended).toBe('session');
    await b.mkdir('s', '/d/two');
    expect(w.take()).toEqual([]);
    // A closed session opens no watch.
    await expectCode(a.watch('s', '/d'), 'EBADF');

    const c = env.session(alice);
    const closed = await c.watch('s', '/d');
    closed.close();
    expect(closed.ended).toBe('closed');
    await b.mkdir('s', '/d/three');
    expect(closed.take()).toEqual([]);

    // The watched directory goes: what was queued is still delivered, then the watch ends.
    const g = await c.watch('s', '/gone');
    await b.mkdir('s', '/gone/x');
    await b.rmdir('s', '/gone/x');
    await b.rmdir('s', '/gone');
    expect(g.ended).toBe('removed');
    expect(g.take().map(brief)).toEqual(['create x', 'delete x']);
    expect(await g.wait()).toBe(false);
    await expectCode(c.watch('s', '/d/three/nope'), 'ENOENT');
    await writeFile(b, '/d/file', 'f');
    await expectCode(c.watch('s', '/d/file'), 'ENOTDIR');
  });

  it('matches names as the share does: a case-insensitive share watched in another spelling', async () => {
    env = makeVfsEnv(make(), { caseSensitive: false });
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/Docs');
    const w = await a.watch('s', '/DOCS', { recursive: true });
    expect(w.dir).toBe('/Docs');
    await b.mkdir('s', '/docs/Sub');
    await writeFile(b, '/DOCS/sub/File.txt', 'x');
    const seen = await settle(w);
    expect(seen.map(brief)).toEqual(['create Sub', 'create Sub/File.txt', 'modify Sub/File.txt']);
    expect(seen[1]).toMatchObject({ path: '/Docs/Sub/File.txt' });
  });

  it('follows its directory through renames of it and of an ancestor', async () => {
    env = makeVfsEnv(make());
    const a = env.session(alice);
    const b = env.session(bob);
    await b.mkdir('s', '/top');
    await b.mkdir('s', '/top/d');
    const w = await a.watch('s', '/top/d');
    const root = await a.watch('s', '/', { recursive: true });
    await b.rename('s', '/top/d', '/top/e');
    expect(w.dir).toBe('/top/e');
    await b.rename('s', '/top', '/top2');
    expect(w.dir).toBe('/top2/e');
    await b.mkdir('s', '/top2/e/inside');
    const seen = await settle(w);
    expect(seen.map(brief)).toEqual(['create inside']);
    expect(seen[0]).toMatchObject({ path: '/top2/e/inside' });
    expect((await settle(root)).map(brief)).toEqual(['rename top/d -> top/e', 'rename top -> top2', 'create top2/e/inside']);
  });
});
