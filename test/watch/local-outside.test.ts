/**
 * Changes made to a local share's directory outside Portico (node:fs here, as a shell or another
 * program would) reach change watches through the local backend's inotify watches: creates get
 * ids, modifies and attribute changes are told apart, a directory made outside is watched and what
 * was put in it at once is reported. Changes made through Portico are reported once (their inotify
 * echoes are dropped). The watches are bounded (one inotify watch per directory, shared by watches,
 * closed with the last one; a limit that turns into an overflow) and never follow links.
 */
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import type { Watch, WatchEvent } from '../../src/session/watch.ts';
import { makeVfsEnv, alice, bob, type VfsEnv } from '../helpers/vfs-env.ts';
import { writeFile } from '../conformance/vfs-conformance.ts';

let env: VfsEnv | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await env?.destroy();
  env = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

function brief(e: WatchEvent): string {
  if (e.kind === 'overflow') return 'overflow';
  return e.oldName !== undefined ? `${e.kind} ${e.oldName} -> ${e.name}` : `${e.kind} ${e.name}`;
}

/** Events until `done(events)` holds, or `ms` passed (a bounded wait: inotify is asynchronous). */
async function until(w: Watch, done: (events: string[]) => boolean, ms = 5000): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  const end = Date.now() + ms;
  while (!done(out.map(brief)) && Date.now() < end) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), Math.max(1, end - Date.now()));
    await w.wait(ac.signal);
    clearTimeout(t);
    out.push(...w.take());
  }
  return out;
}

/** What the watch delivers until it has been quiet for `quietMs` (echoes would show here). */
async function settle(w: Watch, quietMs = 400): Promise<WatchEvent[]> {
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

const has = (...wanted: string[]) => (events: string[]): boolean => wanted.every((x) => events.includes(x));

describe('outside changes on a local share', () => {
  it('a file written with node:fs shows up as a create with its id, then modify, attrib and delete', async () => {
    const root = tempDir('portico-outside-');
    env = makeVfsEnv(new LocalBackend(root));
    const a = env.session(alice);
    const w = await a.watch('s', '/', { recursive: true });

    writeFileSync(join(root, 'out.txt'), 'written outside');
    const created = await until(w, has('create out.txt'));
    expect(created.map(brief)).toEqual(['create out.txt']);
    const attr = await a.getattr('s', '/out.txt');
    expect(created[0]).toMatchObject({ path: '/out.txt', id: attr.id, type: 'file' });

    appendFileSync(join(root, 'out.txt'), ' and more');
    expect((await until(w, has('modify out.txt'))).map(brief)).toEqual(['modify out.txt']);
    // Cached metadata was dropped: the size shows at once, with a new change value.
    const after = await a.getattr('s', '/out.txt');
    expect(after.size).toBe('written outside and more'.length);
    expect(after.change > attr.change).toBe(true);

    chmodSync(join(root, 'out.txt'), 0o600);
    expect((await until(w, has('attrib out.txt'))).map(brief)).toEqual(['attrib out.txt']);

    // A client's stat between the outside change and its report does not hide it.
    appendFileSync(join(root, 'out.txt'), '!');
    await a.getattr('s', '/out.txt');
    expect((await until(w, has('modify out.txt'))).map(brief)).toEqual(['modify out.txt']);

    unlinkSync(join(root, 'out.txt'));
    const deleted = await until(w, has('delete out.txt'));
    expect(deleted.map(brief)).toEqual(['delete out.txt']);
    expect(deleted[0]).toMatchObject({ id: attr.id, type: 'file' });

    // A directory: its own attribute change is reported, its content changes are its members'.
    mkdirSync(join(root, 'dd'));
    expect((await until(w, has('create dd'))).map(brief)).toEqual(['create dd']);
    chmodSync(join(root, 'dd'), 0o700);
    expect((await until(w, has('attrib dd'))).map(brief)).toEqual(['attrib dd']);
    writeFileSync(join(root, 'dd', 'member'), 'm');
    expect((await until(w, has('create dd/member'))).map(brief)).toEqual(['create dd/member']);
    expect(await settle(w)).toEqual([]);
  });

  it('a directory made outside is watched at once: what is put in it right away is reported too', async () => {
    const root = tempDir('portico-outside-');
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'a'), 'a');
    env = makeVfsEnv(new LocalBackend(root));
    const a = env.session(alice);
    const tree = await a.watch('s', '/', { recursive: true });
    const direct = await a.watch('s', '/sub');

    mkdirSync(join(root, 'sub', 'nd', 'deeper'), { recursive: true });
    writeFileSync(join(root, 'sub', 'nd', 'deeper', 'in'), 'i');
    const seen = await until(tree, has('create sub/nd', 'create sub/nd/deeper', 'create sub/nd/deeper/in'));
    expect(seen.map(brief).sort()).toEqual(['create sub/nd', 'create sub/nd/deeper', 'create sub/nd/deeper/in']);
    expect(seen.find((e) => brief(e) === 'create sub/nd')).toMatchObject({ type: 'dir' });
    // Later changes in the new directory come from its own watch.
    writeFileSync(join(root, 'sub', 'nd', 'deeper', 'later'), 'l');
    expect((await until(tree, has('create sub/nd/deeper/later'))).map(brief)).toEqual(['create sub/nd/deeper/later']);
    // The direct watch on /sub saw only its child.
    expect((await settle(direct)).map(brief)).toEqual(['create nd']);

    // Outside, a rename is a name going and another coming (nothing tells it was one file). The
    // name going must have had an id: listed, as a client watching the directory would have.
    expect((await a.readdir('s', '/sub')).entries.map((e) => e.name)).toEqual(['a', 'nd']);
    renameSync(join(root, 'sub', 'a'), join(root, 'sub', 'b'));
    expect((await until(direct, has('delete a', 'create b'))).map(brief).sort()).toEqual(['create b', 'delete a']);
  });

  it('a directory whose name is stored in NFD (written by a macOS client) is watched by its NFC name', async () => {
    const root = tempDir('portico-outside-');
    const nfd = 'Fin\u0061\u0301nzas';
    mkdirSync(join(root, nfd));
    env = makeVfsEnv(new LocalBackend(root));
    const a = env.session(alice);
    const w = await a.watch('s', '/Fin\u00e1nzas');
    writeFileSync(join(root, nfd, 'outside.txt'), 'o');
    const seen = await until(w, has('create outside.txt'));
    expect(seen.map(brief)).toEqual(['create outside.txt']);
    expect(seen[0]).toMatchObject({ id: (await a.getattr('s', '/Fin\u00e1nzas/outside.txt')).id });
    await writeFile(env.session(bob), '/Fin\u00e1nzas/inside.txt', 'i');
    expect((await settle(w)).map(brief)).toEqual(['create inside.txt', 'modify inside.txt']);
  });

  it('a watched directory moved or removed outside ends its watch', async () => {
    const root = tempDir('portico-outside-');
    mkdirSync(join(root, 'a'));
    mkdirSync(join(root, 'c'));
    env = makeVfsEnv(new LocalBackend(root));
    const s = env.session(alice);
    const moved = await s.watch('s', '/a');
    const removed = await s.watch('s', '/c');
    renameSync(join(root, 'a'), join(root, 'b'));
    rmSync(join(root, 'c'), { recursive: true });
    for (let i = 0; i < 100 && (moved.ended === undefined || removed.ended === undefined); i++) await new Promise((r) => setTimeout(r, 50));
    expect(moved.ended).toBe('removed');
    expect(removed.ended).toBe('removed');
  });

  it('a change made through Portico is reported once, not again by inotify', async () => {
    const root = tempDir('portico-outside-');
    env = makeVfsEnv(new LocalBackend(root));
    const a = env.session(alice);
    const b = env.session(bob);
    const w = await a.watch('s', '/', { recursive: true });
    await b.mkdir('s', '/p');
    await writeFile(b, '/p/f', 'through Portico');
    await b.setattr('s', '/p/f', { mode: 0o600 });
    await b.rename('s', '/p/f', '/p/g');
    // A directory moved through Portico: its members were not changed, so nothing about them.
    await b.rename('s', '/p', '/q');
    await b.unlink('s', '/q/g');
    expect((await settle(w, 600)).map(brief)).toEqual([
      'create p', 'create p/f', 'modify p/f', 'attrib p/f', 'rename p/f -> p/g', 'rename p -> q', 'delete q/g',
    ]);
  });

  it('an empty directory made through Portico and gone when its echo is looked at is a directory\'s delete, not a file\'s', async () => {
    // A Portico mkdir then rmdir whose echo is looked at between the rmdir on disk and the VFS
    // recording it (smbtorture smb2.notify.tree under load): the store knows no members of the
    // directory, and its delete was typed 'file', so a watch of file names alone reported it.
    const root = tempDir('portico-outside-');
    env = makeVfsEnv(new LocalBackend(root));
    const a = env.session(alice);
    const b = env.session(bob);
    const files = await a.watch('s', '/', { filter: { create: ['file', 'symlink'], delete: ['file', 'symlink'], rename: ['file', 'symlink'] } });
    const all = await a.watch('s', '/');
    await b.mkdir('s', '/e');
    rmSync(join(root, 'e'), { recursive: true });
    const seen = await until(all, has('delete e'));
    expect(seen.find((e) => brief(e) === 'delete e')).toMatchObject({ type: 'dir' });
    await writeFile(b, '/f', 'x');
    expect((await until(files, has('create f'))).map(brief)).toEqual(['create f']);
  });

  it('holds one inotify watch per watched directory, shared by watches and closed with the last', async () => {
    const root = tempDir('portico-outside-');
    mkdirSync(join(root, 'x', 'y', 'z'), { recursive: true });
    const backend = new LocalBackend(root);
    env = makeVfsEnv(backend);
    const a = env.session(alice);
    const d1 = await a.watch('s', '/x');
    const d2 = await a.watch('s', '/x');
    expect(backend.watchedDirs).toBe(1);
    const r1 = await a.watch('s', '/x', { recursive: true });
    expect(backend.watchedDirs).toBe(4); // x (direct), and x, x/y, x/y/z (recursive)
    const r2 = await a.watch('s', '/x', { recursive: true });
    expect(backend.watchedDirs).toBe(4);
    d1.close();
    r1.close();
    expect(backend.watchedDirs).toBe(4);
    d2.close();
    expect(backend.watchedDirs).toBe(3);
    // The session's end closes the last one.
    await a.end();
    expect(r2.ended).toBe('session');
    expect(backend.watchedDirs).toBe(0);
  });

  it('a tree larger than the watch limit turns into an overflow, not into unbounded watches', async () => {
    const root = tempDir('portico-outside-');
    for (let i = 0; i < 6; i++) mkdirSync(join(root, 't', `d${i}`), { recursive: true });
    const backend = new LocalBackend(root, { watch: { maxDirs: 3 } });
    env = makeVfsEnv(backend);
    const a = env.session(alice);
    const w = await a.watch('s', '/t', { recursive: true });
    expect(backend.watchedDirs).toBe(3);
    expect((await until(w, has('overflow'))).map(brief)).toEqual(['overflow']);
  });

  it('never follows a symbolic link out of the share', async () => {
    const root = tempDir('portico-outside-');
    const elsewhere = tempDir('portico-elsewhere-');
    mkdirSync(join(root, 'in'));
    symlinkSync(elsewhere, join(root, 'in', 'link'));
    const backend = new LocalBackend(root);
    env = makeVfsEnv(backend, { share: { symlinks: 'keep' } });
    const a = env.session(alice);
    const w = await a.watch('s', '/', { recursive: true });
    expect(backend.watchedDirs).toBe(2); // / and /in, not the link's target
    writeFileSync(join(elsewhere, 'secret'), 'not in the share');
    writeFileSync(join(root, 'in', 'visible'), 'in the share');
    const seen = await until(w, has('create in/visible'));
    await new Promise((r) => setTimeout(r, 300));
    expect([...seen, ...w.take()].map(brief)).toEqual(['create in/visible']);
  });
});
