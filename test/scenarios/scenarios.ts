/**
 * One list of POSIX-and-Windows file scenarios, run through every front-end's client (driver.ts).
 * Each scenario gets a client, a fresh directory of its own and a peer client (another front-end on
 * the same share) and asserts what a user of a mapped drive or a mount would notice: content by
 * hash, names exactly as typed, listings after changes, errors by code.
 *
 * A scenario that needs an ability says so in `needs` (skipped with that capability's name when the
 * client lacks it); where protocols legitimately differ (rmdir of a non-empty directory, rename over
 * a directory) the scenario branches on the declared capability and checks both outcomes fully.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { ClientError, type Capabilities, type ClientErrorCode, type Entry, type FileClient, type ShareInfo } from './driver.ts';

export interface ScenarioContext {
  /** A directory created for this scenario alone (e.g. '/sc-12'). */
  dir: string;
  /** Path of `names` joined under `dir`. */
  p(...names: string[]): string;
  /** Another client on the same share, through another front-end (cross-client consistency). */
  peer: FileClient;
  /** A client of the same front-end for a user who may read the share but not change it. */
  readOnly: FileClient;
  share: ShareInfo;
}

type BoolCap = { [K in keyof Capabilities]: Capabilities[K] extends boolean ? K : never }[keyof Capabilities];

export interface Scenario {
  name: string;
  /** Capabilities the client must declare; otherwise the scenario is skipped naming the first missing one. */
  needs?: BoolCap[];
  /** Runs only on shares of this kind (the other kind's behaviour is another scenario). */
  share?: 'caseSensitive' | 'caseInsensitive';
  /**
   * About bytes and times, not names: name matching cannot change the outcome, so a harness may
   * run it on one share per backend rather than on both a case-sensitive and an insensitive one.
   */
  dataOnly?: boolean;
  /**
   * Thousands of requests: a harness may run it through fewer drivers (its peer checks the result
   * through another front-end) or leave it out on a slow store, saying where it is covered.
   */
  heavy?: boolean;
  /** About how names travel (encoding, normalisation, length), not about storage behaviour. */
  namesOnly?: boolean;
  run(c: FileClient, ctx: ScenarioContext): Promise<void>;
}

// ------------------------------------------------------------------ helpers

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Fails unless `p` rejects with a ClientError whose code is one of `codes`. */
export async function expectCode(p: Promise<unknown>, ...codes: ClientErrorCode[]): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  if (err === undefined) expect.fail(`succeeded; expected ${codes.join(' or ')}`);
  if (!(err instanceof ClientError)) throw err;
  expect(codes, err.message).toContain(err.code);
}

/** Sorted "name/" for directories, "name" for files. */
function shape(entries: Entry[]): string[] {
  return entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name)).sort();
}

async function listed(c: FileClient, path: string): Promise<string[]> {
  return shape(await c.list(path));
}

async function expectContent(c: FileClient, path: string, want: Uint8Array): Promise<void> {
  const got = await c.readFile(path);
  expect(got.length, `${c.name}: size of ${path}`).toBe(want.length);
  expect(sha(got), `${c.name}: content of ${path}`).toBe(sha(want));
}

async function expectFile(c: FileClient, path: string, want: Uint8Array): Promise<void> {
  const st = await c.stat(path);
  expect(st.type).toBe('file');
  expect(st.size, `${c.name}: stat size of ${path}`).toBe(want.length);
  await expectContent(c, path, want);
}

function text(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** An optional operation the client declared it has (a missing method is the driver's bug). */
function op<K extends 'writeAt' | 'appendFile' | 'truncate' | 'setTimes' | 'symlink' | 'readlink' | 'link' | 'lock'>(c: FileClient, k: K): NonNullable<FileClient[K]> {
  const f = c[k];
  if (f === undefined) throw new Error(`${c.name} declares the capability but has no ${k}()`);
  return f.bind(c) as NonNullable<FileClient[K]>;
}

/** Runs fn while `c` holds a lock on `path`; the lock is released even when fn fails (its error wins). */
async function withLock(c: FileClient, path: string, fn: () => Promise<void>): Promise<void> {
  const lock = await op(c, 'lock')(path);
  let failure: unknown;
  try {
    await fn();
  } catch (e) {
    failure = e;
  }
  await lock.unlock().catch((e: unknown) => {
    failure ??= e;
  });
  if (failure !== undefined) throw failure;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Names Windows refuses (reserved device names, forbidden characters, trailing dot or space). */
export const WINDOWS_FORBIDDEN = ['a:b', 'what?', 'star*', 'lt<', 'gt>', 'pipe|', 'quote"', 'CON', 'nul.txt', 'COM1', 'LPT1.log', 'trailing.', 'trailing '];

// ------------------------------------------------------------------ the list

export const scenarios: Scenario[] = [
  // ---------------------------------------------------------------- files: create, overwrite, read back
  {
    name: 'files of 0, 1, 13 bytes and exactly 4 KiB, 64 KiB, 1 MiB (and 1 MiB ± 1) read back by hash',
    dataOnly: true,
    async run(c, ctx) {
      const sizes = [0, 1, 13, 4 * KiB, 64 * KiB, MiB - 1, MiB, MiB + 1];
      const files = sizes.map((n) => ({ path: ctx.p(`f${n}`), data: randomBytes(n) }));
      for (const f of files) await c.writeFile(f.path, f.data);
      for (const f of files) await expectFile(c, f.path, f.data);
      expect(await listed(c, ctx.dir)).toEqual(sizes.map((n) => `f${n}`).sort());
    },
  },
  {
    name: 'multi-MiB files (exactly 5 MiB, and 6 MiB + 3) read back whole and by ranges',
    dataOnly: true,
    async run(c, ctx) {
      const data = randomBytes(6 * MiB + 3);
      await c.writeFile(ctx.p('big.bin'), data);
      await expectFile(c, ctx.p('big.bin'), data);
      for (const [off, len] of [[0, 100], [4 * MiB - 7, 20], [5 * MiB + 1, MiB], [6 * MiB, 3], [6 * MiB + 2, 10]] as const) {
        expect(sha(await c.readRange(ctx.p('big.bin'), off, len)), `range ${off}+${len}`).toBe(sha(data.subarray(off, off + len)));
      }
      // Exactly one S3 multipart part in the suite's configuration (partSize 5 MiB), and its last byte.
      const five = randomBytes(5 * MiB);
      await c.writeFile(ctx.p('five.bin'), five);
      await expectFile(ctx.peer, ctx.p('five.bin'), five);
      expect(sha(await c.readRange(ctx.p('five.bin'), 5 * MiB - 1, 10))).toBe(sha(five.subarray(5 * MiB - 1)));
    },
  },
  {
    name: 'overwrite with longer, then shorter, then empty content: size follows, no stale tail',
    dataOnly: true,
    async run(c, ctx) {
      const f = ctx.p('doc.txt');
      await c.writeFile(f, text('first version'));
      const longer = randomBytes(100 * KiB);
      await c.writeFile(f, longer);
      await expectFile(c, f, longer);
      await c.writeFile(f, text('short'));
      await expectFile(c, f, text('short'));
      await c.writeFile(f, Buffer.alloc(0));
      await expectFile(c, f, Buffer.alloc(0));
      expect(await listed(c, ctx.dir)).toEqual(['doc.txt']);
    },
  },
  {
    name: 'errors on files: missing file, missing parent, parent is a file, writing onto a directory',
    async run(c, ctx) {
      await c.writeFile(ctx.p('file'), text('x'));
      await c.mkdir(ctx.p('dir'));
      await expectCode(c.readFile(ctx.p('missing')), 'ENOENT');
      await expectCode(c.stat(ctx.p('missing')), 'ENOENT');
      await expectCode(c.readRange(ctx.p('missing'), 0, 1), 'ENOENT');
      await expectCode(c.writeFile(ctx.p('nodir', 'f'), text('x')), 'ENOENT');
      // POSIX says ENOTDIR; WebDAV answers 409 for both (see webdav-driver.ts).
      await expectCode(c.writeFile(ctx.p('file', 'f'), text('x')), 'ENOTDIR', 'ENOENT');
      await expectCode(c.stat(ctx.p('file', 'f')), 'ENOTDIR', 'ENOENT');
      await expectCode(c.writeFile(ctx.p('dir'), text('x')), 'EISDIR');
      expect((await c.stat(ctx.p('dir'))).type).toBe('dir');
      await expectCode(c.list(ctx.p('file')), 'ENOTDIR');
      await expectCode(c.list(ctx.p('missing')), 'ENOENT');
      // Names no client of every platform can use (docs/ARCHITECTURE.md "Paths"): refused, nothing made.
      for (const bad of ['new\nline', 'tab\there', 'back\\slash', 'nul\u0000byte', 'del\u007f']) {
        await expectCode(c.writeFile(ctx.p(bad), text('x')), 'EINVAL');
        await expectCode(c.mkdir(ctx.p(bad)), 'EINVAL');
        await expectCode(c.rename(ctx.p('file'), ctx.p(bad)), 'EINVAL');
      }
      expect(await listed(c, ctx.dir)).toEqual(['dir/', 'file']);
    },
  },
  {
    name: 'range reads: inside, last byte, across EOF (short), at EOF and beyond (empty), on an empty file',
    dataOnly: true,
    async run(c, ctx) {
      const data = randomBytes(10_000);
      const f = ctx.p('r.bin');
      await c.writeFile(f, data);
      const cases: [number, number, number][] = [
        [0, 10, 10],
        [5000, 1, 1],
        [9999, 1, 1],
        [9990, 10, 10],
        [9995, 10, 5],
        [10_000, 10, 0],
        [20_000, 10, 0],
      ];
      for (const [off, len, want] of cases) {
        const got = await c.readRange(f, off, len);
        expect(got.length, `range ${off}+${len}`).toBe(want);
        expect(sha(got), `range ${off}+${len}`).toBe(sha(data.subarray(off, off + want)));
      }
      await c.writeFile(ctx.p('empty'), Buffer.alloc(0));
      expect((await c.readRange(ctx.p('empty'), 0, 10)).length).toBe(0);
    },
  },
  {
    name: 'stat reports type, size and a current mtime that does not go back on overwrite',
    dataOnly: true,
    async run(c, ctx) {
      const before = Date.now();
      await c.writeFile(ctx.p('t'), text('12345'));
      await c.mkdir(ctx.p('d'));
      const f = await c.stat(ctx.p('t'));
      expect(f).toMatchObject({ type: 'file', size: 5 });
      const slack = c.caps.mtimeResolutionMs + 2000;
      expect(f.mtimeMs).toBeGreaterThanOrEqual(before - slack);
      expect(f.mtimeMs).toBeLessThanOrEqual(Date.now() + slack);
      expect((await c.stat(ctx.p('d'))).type).toBe('dir');
      await c.writeFile(ctx.p('t'), text('123456'));
      const g = await c.stat(ctx.p('t'));
      expect(g.size).toBe(6);
      expect(g.mtimeMs).toBeGreaterThanOrEqual(f.mtimeMs);
    },
  },

  // ---------------------------------------------------------------- directories
  {
    name: 'nested mkdir, listing each level; EEXIST, missing parent, parent is a file',
    async run(c, ctx) {
      await c.mkdir(ctx.p('a'));
      await c.mkdir(ctx.p('a', 'b'));
      await c.mkdir(ctx.p('a', 'b', 'c'));
      await c.writeFile(ctx.p('a', 'b', 'c', 'leaf'), text('leaf'));
      expect(await listed(c, ctx.p('a'))).toEqual(['b/']);
      expect(await listed(c, ctx.p('a', 'b'))).toEqual(['c/']);
      expect(await listed(c, ctx.p('a', 'b', 'c'))).toEqual(['leaf']);
      await expectCode(c.mkdir(ctx.p('a', 'b')), 'EEXIST');
      await expectCode(c.mkdir(ctx.p('a', 'b', 'c', 'leaf')), 'EEXIST');
      await expectCode(c.mkdir(ctx.p('x', 'y')), 'ENOENT');
      await expectCode(c.mkdir(ctx.p('a', 'b', 'c', 'leaf', 'sub')), 'ENOTDIR', 'ENOENT');
      // Empty directories exist on every backend (S3: marker objects).
      await c.mkdir(ctx.p('empty'));
      expect(await c.list(ctx.p('empty'))).toEqual([]);
      expect(await listed(c, ctx.dir)).toEqual(['a/', 'empty/']);
    },
  },
  {
    name: 'listing follows creates and removes of files and directories (and the peer sees the same)',
    async run(c, ctx) {
      for (const n of ['one', 'two', 'three']) await c.writeFile(ctx.p(n), text(n));
      await c.mkdir(ctx.p('d1'));
      await c.mkdir(ctx.p('d2'));
      expect(await listed(c, ctx.dir)).toEqual(['d1/', 'd2/', 'one', 'three', 'two']);
      await c.remove(ctx.p('two'));
      await c.rmdir(ctx.p('d1'));
      expect(await listed(c, ctx.dir)).toEqual(['d2/', 'one', 'three']);
      expect(await listed(ctx.peer, ctx.dir)).toEqual(['d2/', 'one', 'three']);
      await c.writeFile(ctx.p('two'), text('again'));
      expect(await listed(ctx.peer, ctx.dir)).toEqual(['d2/', 'one', 'three', 'two']);
      // And the other way: what the peer adds and removes shows in this client's next listing.
      await ctx.peer.writeFile(ctx.p('d2', 'from-peer'), text('p'));
      await ctx.peer.remove(ctx.p('one'));
      expect(await listed(c, ctx.dir)).toEqual(['d2/', 'three', 'two']);
      expect(await listed(c, ctx.p('d2'))).toEqual(['from-peer']);
    },
  },
  {
    name: 'remove: empty directory, non-empty directory (ENOTEMPTY or recursive, as declared), missing names, wrong types',
    async run(c, ctx) {
      await c.mkdir(ctx.p('empty'));
      await c.rmdir(ctx.p('empty'));
      await expectCode(c.stat(ctx.p('empty')), 'ENOENT');
      await c.mkdir(ctx.p('full'));
      await c.mkdir(ctx.p('full', 'sub'));
      await c.writeFile(ctx.p('full', 'sub', 'f'), text('keep?'));
      if (c.caps.rmdirRecursive) {
        await c.rmdir(ctx.p('full'));
        await expectCode(c.stat(ctx.p('full', 'sub', 'f')), 'ENOENT');
        await expectCode(c.stat(ctx.p('full')), 'ENOENT');
      } else {
        await expectCode(c.rmdir(ctx.p('full')), 'ENOTEMPTY');
        await expectContent(c, ctx.p('full', 'sub', 'f'), text('keep?'));
      }
      await expectCode(c.rmdir(ctx.p('missing')), 'ENOENT');
      await expectCode(c.remove(ctx.p('missing')), 'ENOENT');
      await c.writeFile(ctx.p('file'), text('f'));
      await c.mkdir(ctx.p('dir'));
      await expectCode(c.rmdir(ctx.p('file')), 'ENOTDIR');
      await expectCode(c.remove(ctx.p('dir')), 'EISDIR');
      await c.remove(ctx.p('file'));
      await expectCode(c.remove(ctx.p('file')), 'ENOENT');
      expect(await listed(c, ctx.dir)).toEqual(c.caps.rmdirRecursive ? ['dir/'] : ['dir/', 'full/']);
    },
  },

  {
    name: 'a directory of 1,100 entries lists completely through more than one page',
    dataOnly: true,
    heavy: true,
    async run(c, ctx) {
      const names = Array.from({ length: 1100 }, (_, i) => `entry-${String(i).padStart(4, '0')}`);
      // Created 50 at a time by both clients: the listing must not depend on who wrote what.
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(names.slice(i, i + 50).map((n, j) => (j % 2 === 0 ? c : ctx.peer).writeFile(ctx.p(n), Buffer.alloc(0))));
      }
      const mine = (await c.list(ctx.dir)).map((e) => e.name).sort();
      expect(mine.length).toBe(names.length);
      expect(mine).toEqual(names);
      expect((await ctx.peer.list(ctx.dir)).length).toBe(names.length);
    },
  },
  {
    name: 'a name changes type: directory removed and re-created as a file, and back, seen by both clients',
    async run(c, ctx) {
      const x = ctx.p('x');
      await c.mkdir(x);
      await c.writeFile(ctx.p('x', 'inner'), text('in'));
      expect((await ctx.peer.stat(x)).type).toBe('dir');
      await c.remove(ctx.p('x', 'inner'));
      await c.rmdir(x);
      await c.writeFile(x, text('now a file'));
      expect(await ctx.peer.stat(x)).toMatchObject({ type: 'file', size: 10 });
      await expectContent(ctx.peer, x, text('now a file'));
      await ctx.peer.remove(x);
      await ctx.peer.mkdir(x);
      expect((await c.stat(x)).type).toBe('dir');
      expect(await c.list(x)).toEqual([]);
      expect(await listed(c, ctx.dir)).toEqual(['x/']);
    },
  },

  {
    name: 'a user who may only read sees everything and changes nothing: every change is EACCES',
    async run(c, ctx) {
      const ro = ctx.readOnly;
      await c.mkdir(ctx.p('d'));
      await c.writeFile(ctx.p('d', 'f'), text('readable'));
      expect(await listed(ro, ctx.p('d'))).toEqual(['f']);
      await expectFile(ro, ctx.p('d', 'f'), text('readable'));
      expect(sha(await ro.readRange(ctx.p('d', 'f'), 2, 3))).toBe(sha(text('ada')));
      await expectCode(ro.writeFile(ctx.p('d', 'f'), text('changed')), 'EACCES');
      await expectCode(ro.writeFile(ctx.p('d', 'new'), text('new')), 'EACCES');
      await expectCode(ro.mkdir(ctx.p('d', 'sub')), 'EACCES');
      await expectCode(ro.rename(ctx.p('d', 'f'), ctx.p('d', 'g')), 'EACCES');
      await expectCode(ro.remove(ctx.p('d', 'f')), 'EACCES');
      await expectCode(ro.rmdir(ctx.p('d')), 'EACCES');
      if (ro.caps.setTimes) await expectCode(op(ro, 'setTimes')(ctx.p('d', 'f'), Date.UTC(2000, 0, 1)), 'EACCES');
      if (ro.caps.truncate) await expectCode(op(ro, 'truncate')(ctx.p('d', 'f'), 0), 'EACCES');
      if (ro.caps.randomWrite) await expectCode(op(ro, 'writeAt')(ctx.p('d', 'f'), 0, text('X')), 'EACCES');
      if (ro.caps.locks) await expectCode(op(ro, 'lock')(ctx.p('d', 'f')), 'EACCES');
      await expectFile(c, ctx.p('d', 'f'), text('readable'));
      expect(await listed(c, ctx.p('d'))).toEqual(['f']);
    },
  },

  // ---------------------------------------------------------------- rename
  {
    name: 'rename a file: content moves, the old name is gone, the peer sees the new name',
    async run(c, ctx) {
      const data = randomBytes(70 * KiB);
      await c.writeFile(ctx.p('old'), data);
      await c.mkdir(ctx.p('sub'));
      await c.rename(ctx.p('old'), ctx.p('new'));
      await expectCode(c.stat(ctx.p('old')), 'ENOENT');
      await expectFile(c, ctx.p('new'), data);
      await c.rename(ctx.p('new'), ctx.p('sub', 'moved'));
      await expectFile(ctx.peer, ctx.p('sub', 'moved'), data);
      // An empty file renamed right after its creation (object stores may not have written it yet).
      await c.writeFile(ctx.p('empty'), Buffer.alloc(0));
      await c.rename(ctx.p('empty'), ctx.p('sub', 'empty-moved'));
      await expectFile(ctx.peer, ctx.p('sub', 'empty-moved'), Buffer.alloc(0));
      expect(await listed(ctx.peer, ctx.dir)).toEqual(['sub/']);
    },
  },
  {
    name: 'rename over an existing file replaces it; without replace it is EEXIST and both stay',
    async run(c, ctx) {
      await c.writeFile(ctx.p('a'), text('aaa'));
      await c.writeFile(ctx.p('b'), text('bbbbbb'));
      await expectCode(c.rename(ctx.p('a'), ctx.p('b'), { replace: false }), 'EEXIST');
      await expectFile(c, ctx.p('a'), text('aaa'));
      await expectFile(c, ctx.p('b'), text('bbbbbb'));
      await c.rename(ctx.p('a'), ctx.p('b'));
      await expectCode(c.stat(ctx.p('a')), 'ENOENT');
      await expectFile(c, ctx.p('b'), text('aaa'));
      await expectFile(ctx.peer, ctx.p('b'), text('aaa'));
      expect(await listed(c, ctx.dir)).toEqual(['b']);
    },
  },
  {
    name: 'rename a directory with its contents (nested), then use it under the new name',
    async run(c, ctx) {
      const big = randomBytes(MiB + 5);
      await c.mkdir(ctx.p('src'));
      await c.mkdir(ctx.p('src', 'inner'));
      await c.writeFile(ctx.p('src', 'top.txt'), text('top'));
      await c.writeFile(ctx.p('src', 'inner', 'big.bin'), big);
      await c.mkdir(ctx.p('src', 'inner', 'empty'));
      await c.rename(ctx.p('src'), ctx.p('dst'));
      await expectCode(c.stat(ctx.p('src')), 'ENOENT');
      await expectCode(c.stat(ctx.p('src', 'top.txt')), 'ENOENT');
      expect(await listed(c, ctx.p('dst'))).toEqual(['inner/', 'top.txt']);
      expect(await listed(c, ctx.p('dst', 'inner'))).toEqual(['big.bin', 'empty/']);
      await expectFile(c, ctx.p('dst', 'inner', 'big.bin'), big);
      await expectFile(ctx.peer, ctx.p('dst', 'top.txt'), text('top'));
      await c.writeFile(ctx.p('dst', 'inner', 'empty', 'new'), text('n'));
      await expectFile(ctx.peer, ctx.p('dst', 'inner', 'empty', 'new'), text('n'));
      // "Save as" pattern: the old name is at once free for a new directory.
      await c.mkdir(ctx.p('src'));
      await c.writeFile(ctx.p('src', 'top.txt'), text('second'));
      await expectFile(ctx.peer, ctx.p('src', 'top.txt'), text('second'));
      await expectFile(ctx.peer, ctx.p('dst', 'top.txt'), text('top'));
      expect(await listed(c, ctx.dir)).toEqual(['dst/', 'src/']);
    },
  },
  {
    name: 'rename errors: missing source, missing target parent, a directory into itself; nothing moves',
    async run(c, ctx) {
      await c.writeFile(ctx.p('f'), text('f'));
      await c.mkdir(ctx.p('d'));
      await c.mkdir(ctx.p('d', 'child'));
      await expectCode(c.rename(ctx.p('nothing'), ctx.p('x')), 'ENOENT');
      await expectCode(c.rename(ctx.p('f'), ctx.p('nodir', 'f')), 'ENOENT');
      await expectCode(c.rename(ctx.p('d'), ctx.p('d', 'child', 'd')), 'EINVAL');
      await expectCode(c.rename(ctx.p('d'), ctx.p('d', 'd')), 'EINVAL');
      await expectFile(c, ctx.p('f'), text('f'));
      expect(await listed(c, ctx.p('d'))).toEqual(['child/']);
      expect(await listed(c, ctx.dir)).toEqual(['d/', 'f']);
    },
  },
  {
    name: 'rename onto an existing directory or a node of the other type: POSIX rules or replacement, as declared',
    async run(c, ctx) {
      await c.mkdir(ctx.p('src'));
      await c.writeFile(ctx.p('src', 'm'), text('from src'));
      await c.mkdir(ctx.p('emptyTarget'));
      await c.mkdir(ctx.p('fullTarget'));
      await c.writeFile(ctx.p('fullTarget', 'old'), text('old'));
      await c.writeFile(ctx.p('file'), text('file'));
      await c.mkdir(ctx.p('dir2'));
      if (c.caps.renameReplacesDir) {
        await c.rename(ctx.p('src'), ctx.p('fullTarget'));
        expect(await listed(c, ctx.p('fullTarget'))).toEqual(['m']);
        await c.rename(ctx.p('file'), ctx.p('emptyTarget'));
        await expectFile(c, ctx.p('emptyTarget'), text('file'));
        await c.rename(ctx.p('dir2'), ctx.p('emptyTarget'));
        expect((await c.stat(ctx.p('emptyTarget'))).type).toBe('dir');
        expect(await listed(c, ctx.dir)).toEqual(['emptyTarget/', 'fullTarget/']);
      } else {
        await expectCode(c.rename(ctx.p('src'), ctx.p('fullTarget')), 'ENOTEMPTY', 'EEXIST');
        expect(await listed(c, ctx.p('fullTarget'))).toEqual(['old']);
        await expectCode(c.rename(ctx.p('file'), ctx.p('emptyTarget')), 'EISDIR');
        await expectCode(c.rename(ctx.p('dir2'), ctx.p('file')), 'ENOTDIR');
        await c.rename(ctx.p('src'), ctx.p('emptyTarget'));
        expect(await listed(c, ctx.p('emptyTarget'))).toEqual(['m']);
        expect(await listed(c, ctx.dir)).toEqual(['dir2/', 'emptyTarget/', 'file', 'fullTarget/']);
      }
      await expectContent(ctx.peer, c.caps.renameReplacesDir ? ctx.p('fullTarget', 'm') : ctx.p('emptyTarget', 'm'), text('from src'));
    },
  },

  // ---------------------------------------------------------------- names
  {
    name: 'a deep tree (10 levels) is made, renamed at its top, read at the bottom and removed bottom-up',
    dataOnly: true,
    async run(c, ctx) {
      const levels = Array.from({ length: 10 }, (_, i) => `level-${i}`);
      for (let i = 1; i <= levels.length; i++) await c.mkdir(ctx.p(...levels.slice(0, i)));
      await c.writeFile(ctx.p(...levels, 'bottom.txt'), text('deep'));
      await c.rename(ctx.p(levels[0]!), ctx.p('top'));
      const moved = ['top', ...levels.slice(1)];
      await expectFile(ctx.peer, ctx.p(...moved, 'bottom.txt'), text('deep'));
      await expectCode(c.stat(ctx.p(...levels, 'bottom.txt')), 'ENOENT');
      await c.remove(ctx.p(...moved, 'bottom.txt'));
      for (let i = moved.length; i >= 1; i--) await c.rmdir(ctx.p(...moved.slice(0, i)));
      expect(await c.list(ctx.dir)).toEqual([]);
    },
  },
  {
    name: 'the share root is a directory whose listing shows this scenario\'s directory',
    async run(c, ctx) {
      expect((await c.stat('/')).type).toBe('dir');
      const root = await c.list('/');
      expect(root.find((e) => `/${e.name}` === ctx.dir)?.type).toBe('dir');
      await expectCode(c.rmdir('/'), 'EACCES', 'EBUSY', 'EINVAL');
      expect((await ctx.peer.stat(ctx.dir)).type).toBe('dir');
    },
  },
  {
    name: 'names with spaces and URL-special characters round-trip exactly',
    namesOnly: true,
    async run(c, ctx) {
      const names = ['a b', 'multiple   spaces', ' leading space', '100% done', 'hash#tag', 'amp&and', 'plus+sign', 'semi;colon', "it's", 'eq=ual', 'at@home', 'bang!', '(paren)', '[bracket]', '{brace}', 'tilde~', 'comma,', 'dollar$', '%2e%2e', '%41'];
      for (const n of names) await c.writeFile(ctx.p(n), text(n));
      await c.mkdir(ctx.p('dir with space'));
      await c.writeFile(ctx.p('dir with space', 'in #1'), text('in'));
      expect(await listed(c, ctx.dir)).toEqual([...names, 'dir with space/'].sort());
      expect(await listed(ctx.peer, ctx.dir)).toEqual([...names, 'dir with space/'].sort());
      for (const n of names) await expectContent(ctx.peer, ctx.p(n), text(n));
      await expectContent(c, ctx.p('dir with space', 'in #1'), text('in'));
      for (const n of names) await c.remove(ctx.p(n));
      expect(await listed(c, ctx.dir)).toEqual(['dir with space/']);
    },
  },
  {
    name: 'case-sensitive share: names POSIX allows but URLs and Windows treat specially ( ? " < > | * : ) round-trip exactly',
    namesOnly: true,
    share: 'caseSensitive',
    needs: ['posixNames'],
    async run(c, ctx) {
      const names = ['what?', 'say "hi"', '<angle>', 'pipe|line', 'star*', 'colon:name', 'mix ?#%&', 'trailing.', 'trailing '];
      for (const n of names) await c.writeFile(ctx.p(n), text(n));
      expect(await listed(c, ctx.dir)).toEqual([...names].sort());
      expect(await listed(ctx.peer, ctx.dir)).toEqual([...names].sort());
      for (const n of names) await expectContent(ctx.peer, ctx.p(n), text(n));
      await c.rename(ctx.p('what?'), ctx.p('why?'));
      await expectContent(ctx.peer, ctx.p('why?'), text('what?'));
    },
  },
  {
    // What every client does with such names when another client made them: a client that cannot
    // create them (SMB, posixNames false) still lists, reads and removes them by their exact name.
    name: 'names Windows cannot use, made by the peer, are listed, read and removed by the client',
    namesOnly: true,
    share: 'caseSensitive',
    async run(c, ctx) {
      // No ':' here: on SMB a colon addresses a named stream, so such a name cannot be asked for.
      const names = ['what?', 'say "hi"', '<angle>', 'pipe|line', 'star*', 'trailing.', 'trailing ', 'CON', 'nul.txt', 'COM1.log'];
      for (const n of names) await ctx.peer.writeFile(ctx.p(n), text(n));
      expect(await listed(c, ctx.dir)).toEqual([...names].sort());
      for (const n of names) await expectContent(c, ctx.p(n), text(n));
      for (const n of names) await c.remove(ctx.p(n));
      expect(await listed(ctx.peer, ctx.dir)).toEqual([]);
    },
  },
  {
    name: 'Unicode and emoji names round-trip exactly (files and directories)',
    namesOnly: true,
    async run(c, ctx) {
      const names = ['café', 'Ελληνικά', 'Русский', '中文文件.txt', '日本語', 'עברית', 'العربية', '😀', 'party-🎉.txt', '👨‍👩‍👧 family', '🇫🇷', '❤️'];
      for (const n of names) await c.writeFile(ctx.p(n), text(n));
      await c.mkdir(ctx.p('📁 folder'));
      await c.writeFile(ctx.p('📁 folder', 'ñandú'), text('inner'));
      const want = [...names, '📁 folder/'].sort();
      expect(await listed(c, ctx.dir)).toEqual(want);
      expect(await listed(ctx.peer, ctx.dir)).toEqual(want);
      for (const n of names) await expectContent(ctx.peer, ctx.p(n), text(n));
      await c.rename(ctx.p('😀'), ctx.p('😀 renamed'));
      await expectContent(ctx.peer, ctx.p('😀 renamed'), text('😀'));
      await expectContent(c, ctx.p('📁 folder', 'ñandú'), text('inner'));
    },
  },
  {
    name: 'NFC and NFD spellings address one file (names are kept in NFC)',
    namesOnly: true,
    async run(c, ctx) {
      const nfc = 'caf\u00e9';
      const nfd = 'cafe\u0301';
      await c.writeFile(ctx.p(nfd), text('written as NFD'));
      expect((await c.stat(ctx.p(nfc))).size).toBe(14);
      await expectContent(ctx.peer, ctx.p(nfc), text('written as NFD'));
      await c.writeFile(ctx.p(nfc), text('then as NFC'));
      const names = (await c.list(ctx.dir)).map((e) => e.name);
      expect(names).toEqual([nfc]);
      await expectContent(c, ctx.p(nfd), text('then as NFC'));
      await c.mkdir(ctx.p(`dir-${nfd}`));
      await expectCode(c.mkdir(ctx.p(`dir-${nfc}`)), 'EEXIST');
      await c.writeFile(ctx.p(`dir-${nfc}`, `in-${nfd}`), text('nested'));
      await expectContent(ctx.peer, ctx.p(`dir-${nfd}`, `in-${nfc}`), text('nested'));
      expect((await ctx.peer.list(ctx.p(`dir-${nfd}`))).map((e) => e.name)).toEqual([`in-${nfc}`]);
      await c.remove(ctx.p(nfd));
      expect(await listed(c, ctx.dir)).toEqual([`dir-${nfc}/`]);
    },
  },
  {
    name: 'names of exactly 255 bytes (ASCII and multi-byte) work for files and directories; 256 bytes is ENAMETOOLONG',
    namesOnly: true,
    async run(c, ctx) {
      // A store that cannot hold 255-byte names (a test double) gets the longest it can hold.
      const max = Math.min(255, ctx.share.storeNameBytes);
      const fill = (unit: string, tail = ''): string => unit.repeat(Math.floor((max - Buffer.byteLength(tail)) / Buffer.byteLength(unit))) + tail;
      const names = [fill('a'), fill('é', 'a'.repeat(max % 2)), fill('中', 'b'.repeat(max % 3)), fill('😀', 'c'.repeat(max % 4))];
      for (const n of names) expect(Buffer.byteLength(n)).toBe(max);
      for (const n of names) await c.writeFile(ctx.p(n), text(n.slice(0, 10)));
      expect(await listed(c, ctx.dir)).toEqual([...names].sort());
      for (const n of names) await expectContent(ctx.peer, ctx.p(n), text(n.slice(0, 10)));
      const dir = fill('d');
      await c.mkdir(ctx.p(dir));
      await c.writeFile(ctx.p(dir, names[2]!), text('deep'));
      await expectContent(c, ctx.p(dir, names[2]!), text('deep'));
      await c.rename(ctx.p(names[0]!), ctx.p(fill('b')));
      await expectContent(c, ctx.p(fill('b')), text(names[0]!.slice(0, 10)));
      await expectCode(c.writeFile(ctx.p('x'.repeat(256)), text('x')), 'ENAMETOOLONG');
      await expectCode(c.mkdir(ctx.p(`${'é'.repeat(128)}`)), 'ENAMETOOLONG');
      await expectCode(c.rename(ctx.p(names[1]!), ctx.p('y'.repeat(256))), 'ENAMETOOLONG');
      await expectContent(c, ctx.p(names[1]!), text(names[1]!.slice(0, 10)));
    },
  },
  {
    name: 'leading dots: hidden files and directories are ordinary names',
    namesOnly: true,
    async run(c, ctx) {
      // '...' ends in a dot, which Windows cannot name (the Windows-names scenario covers it).
      const names = ['.hidden', '..double', ...(c.caps.posixNames ? ['...'] : []), '.a.b', '.'.repeat(5) + 'x'];
      for (const n of names) await c.writeFile(ctx.p(n), text(n));
      await c.mkdir(ctx.p('.config'));
      await c.writeFile(ctx.p('.config', '.rc'), text('rc'));
      expect(await listed(c, ctx.dir)).toEqual([...names, '.config/'].sort());
      expect(await listed(ctx.peer, ctx.p('.config'))).toEqual(['.rc']);
      for (const n of names) await expectContent(ctx.peer, ctx.p(n), text(n));
      await c.rename(ctx.p('.hidden'), ctx.p('.config', '.hidden'));
      await expectContent(c, ctx.p('.config', '.hidden'), text('.hidden'));
    },
  },
  {
    name: 'case-sensitive share: names differing in case are different files',
    share: 'caseSensitive',
    async run(c, ctx) {
      await c.writeFile(ctx.p('Case.txt'), text('upper'));
      await c.writeFile(ctx.p('case.txt'), text('lower'));
      await c.mkdir(ctx.p('DIR'));
      await c.mkdir(ctx.p('dir'));
      expect(await listed(c, ctx.dir)).toEqual(['Case.txt', 'DIR/', 'case.txt', 'dir/'].sort());
      await expectContent(ctx.peer, ctx.p('Case.txt'), text('upper'));
      await expectContent(ctx.peer, ctx.p('case.txt'), text('lower'));
      await expectCode(c.stat(ctx.p('CASE.TXT')), 'ENOENT');
      await c.rename(ctx.p('case.txt'), ctx.p('CASE.TXT'));
      expect(await listed(c, ctx.dir)).toEqual(['CASE.TXT', 'Case.txt', 'DIR/', 'dir/'].sort());
    },
  },
  {
    name: 'case-insensitive share: lookups in any case, the created spelling kept, one name per spelling set',
    share: 'caseInsensitive',
    async run(c, ctx) {
      await c.writeFile(ctx.p('Report.TXT'), text('v1'));
      await expectContent(c, ctx.p('report.txt'), text('v1'));
      expect((await ctx.peer.stat(ctx.p('REPORT.TXT'))).size).toBe(2);
      await c.writeFile(ctx.p('report.txt'), text('v2 through another spelling'));
      expect(await listed(c, ctx.dir)).toEqual(['Report.TXT']);
      await expectContent(ctx.peer, ctx.p('Report.TXT'), text('v2 through another spelling'));
      await c.mkdir(ctx.p('Docs'));
      await expectCode(c.mkdir(ctx.p('DOCS')), 'EEXIST');
      await c.writeFile(ctx.p('docs', 'inner.txt'), text('in'));
      await expectCode(c.writeFile(ctx.p('DOCS'), text('a file over the directory')), 'EISDIR');
      expect(await listed(c, ctx.p('DOCS'))).toEqual(['inner.txt']);
      expect(await listed(c, ctx.dir)).toEqual(['Docs/', 'Report.TXT']);
      // Non-ASCII case folding, as Windows folds it, and combined with NFD spellings (macOS).
      await c.writeFile(ctx.p('ÉTÉ.txt'), text('summer'));
      await expectContent(c, ctx.p('été.TXT'), text('summer'));
      await expectContent(ctx.peer, ctx.p('e\u0301te\u0301.txt'), text('summer'));
      await c.remove(ctx.p('REPORT.txt'));
      expect(await listed(c, ctx.dir)).toEqual(['Docs/', 'ÉTÉ.txt']);
    },
  },
  {
    name: 'case-insensitive share: case-only renames of files and directories change the spelling only',
    share: 'caseInsensitive',
    async run(c, ctx) {
      const data = randomBytes(3000);
      await c.writeFile(ctx.p('readme.md'), data);
      await c.rename(ctx.p('readme.md'), ctx.p('README.md'));
      expect(await listed(c, ctx.dir)).toEqual(['README.md']);
      // A case-only rename is no replacement: allowed even without replace.
      await c.rename(ctx.p('README.md'), ctx.p('ReadMe.md'), { replace: false });
      await c.rename(ctx.p('ReadMe.md'), ctx.p('README.md'), { replace: false });
      // Another file under another spelling is: EEXIST without replace, both kept.
      await c.writeFile(ctx.p('notes'), text('notes'));
      await expectCode(c.rename(ctx.p('notes'), ctx.p('readme.MD'), { replace: false }), 'EEXIST');
      await expectFile(c, ctx.p('README.md'), data);
      await c.remove(ctx.p('NOTES'));
      await expectFile(ctx.peer, ctx.p('readme.MD'), data);
      await c.mkdir(ctx.p('photos'));
      await c.writeFile(ctx.p('photos', 'a.jpg'), text('jpg'));
      await c.rename(ctx.p('photos'), ctx.p('Photos'));
      expect(await listed(c, ctx.dir)).toEqual(['Photos/', 'README.md']);
      expect(await listed(ctx.peer, ctx.p('PHOTOS'))).toEqual(['a.jpg']);
    },
  },
  {
    name: 'case-insensitive share: a rename onto another spelling of an existing file replaces it and takes the new spelling',
    share: 'caseInsensitive',
    async run(c, ctx) {
      // NTFS (and APFS, SMB servers) remove the replaced name and create the one the client gave.
      await c.writeFile(ctx.p('README.md'), text('old'));
      await c.writeFile(ctx.p('draft'), text('new'));
      await c.rename(ctx.p('draft'), ctx.p('readme.MD'));
      await expectContent(ctx.peer, ctx.p('README.md'), text('new'));
      expect(await listed(c, ctx.dir)).toEqual(['readme.MD']);
    },
  },
  {
    name: 'case-insensitive share: names Windows forbids are refused, or kept intact and usable by every client',
    share: 'caseInsensitive',
    async run(c, ctx) {
      for (const n of WINDOWS_FORBIDDEN) {
        let refused: ClientError | undefined;
        await c.writeFile(ctx.p(n), text(n)).catch((e: unknown) => {
          if (!(e instanceof ClientError)) throw e;
          refused = e;
        });
        if (refused !== undefined) {
          expect(['EINVAL', 'EACCES'], `${JSON.stringify(n)}: ${refused.message}`).toContain(refused.code);
          await expectCode(c.stat(ctx.p(n)), 'ENOENT', 'EINVAL');
          continue;
        }
        // Kept: it must be one name, exactly as given, readable and removable through the peer.
        expect((await c.list(ctx.dir)).map((e) => e.name), JSON.stringify(n)).toContain(n);
        await expectContent(ctx.peer, ctx.p(n), text(n));
        await ctx.peer.remove(ctx.p(n));
        await expectCode(c.stat(ctx.p(n)), 'ENOENT');
      }
      expect(await c.list(ctx.dir)).toEqual([]);
    },
  },

  // ---------------------------------------------------------------- times
  {
    name: 'mtime set by the client is kept, reported to the peer, and survives a rename',
    dataOnly: true,
    needs: ['setTimes'],
    async run(c, ctx) {
      const t = Date.UTC(2001, 8, 9, 1, 46, 40);
      await c.writeFile(ctx.p('old.doc'), text('archived'));
      await op(c, 'setTimes')(ctx.p('old.doc'), t);
      expect((await c.stat(ctx.p('old.doc'))).mtimeMs).toBe(t);
      expect((await ctx.peer.stat(ctx.p('old.doc'))).mtimeMs).toBe(t);
      await c.rename(ctx.p('old.doc'), ctx.p('kept.doc'));
      expect((await c.stat(ctx.p('kept.doc'))).mtimeMs).toBe(t);
      await c.writeFile(ctx.p('kept.doc'), text('changed'));
      expect((await c.stat(ctx.p('kept.doc'))).mtimeMs).toBeGreaterThan(t + 1000);
      // Directories too (Explorer and rsync restore folder times after a copy).
      await c.mkdir(ctx.p('folder'));
      await op(c, 'setTimes')(ctx.p('folder'), t);
      expect((await ctx.peer.stat(ctx.p('folder'))).mtimeMs).toBe(t);
    },
  },

  // ---------------------------------------------------------------- partial writes
  {
    name: 'writes at offsets: overwrite in the middle, past EOF with a zero-filled gap, into a new file',
    dataOnly: true,
    needs: ['randomWrite'],
    async run(c, ctx) {
      const writeAt = op(c, 'writeAt');
      await c.writeFile(ctx.p('w'), text('hello world'));
      await writeAt(ctx.p('w'), 6, text('WORLD'));
      await expectContent(c, ctx.p('w'), text('hello WORLD'));
      await writeAt(ctx.p('w'), 20, text('!'));
      await expectFile(ctx.peer, ctx.p('w'), Buffer.concat([text('hello WORLD'), Buffer.alloc(9), text('!')]));
      await writeAt(ctx.p('fresh'), 3, text('abc'));
      await expectFile(c, ctx.p('fresh'), Buffer.concat([Buffer.alloc(3), text('abc')]));
      const big = randomBytes(2 * MiB);
      await c.writeFile(ctx.p('big'), big);
      const patch = randomBytes(1000);
      await writeAt(ctx.p('big'), MiB - 500, patch);
      patch.copy(big, MiB - 500);
      await expectFile(ctx.peer, ctx.p('big'), big);
    },
  },
  {
    name: 'append adds at the end',
    dataOnly: true,
    needs: ['append'],
    async run(c, ctx) {
      const append = op(c, 'appendFile');
      await c.writeFile(ctx.p('log'), text('line 1\n'));
      await append(ctx.p('log'), text('line 2\n'));
      await append(ctx.p('log'), text('line 3\n'));
      await expectFile(ctx.peer, ctx.p('log'), text('line 1\nline 2\nline 3\n'));
    },
  },
  {
    name: 'truncate down cuts, truncate up zero-fills, truncate to 0 empties',
    dataOnly: true,
    needs: ['truncate'],
    async run(c, ctx) {
      const truncate = op(c, 'truncate');
      const data = randomBytes(1000);
      await c.writeFile(ctx.p('t'), data);
      await truncate(ctx.p('t'), 10);
      await expectFile(c, ctx.p('t'), data.subarray(0, 10));
      await truncate(ctx.p('t'), 100);
      await expectFile(ctx.peer, ctx.p('t'), Buffer.concat([data.subarray(0, 10), Buffer.alloc(90)]));
      await truncate(ctx.p('t'), 0);
      await expectFile(c, ctx.p('t'), Buffer.alloc(0));
      await expectCode(truncate(ctx.p('missing'), 1), 'ENOENT');
    },
  },

  // ---------------------------------------------------------------- concurrency
  {
    name: 'concurrent writers to different files all land intact',
    dataOnly: true,
    async run(c, ctx) {
      const files = Array.from({ length: 8 }, (_, i) => ({ path: ctx.p(`c${i}`), data: randomBytes(64 * KiB + i) }));
      await Promise.all(files.map((f) => c.writeFile(f.path, f.data)));
      expect(await listed(c, ctx.dir)).toEqual(files.map((_, i) => `c${i}`).sort());
      await Promise.all(files.map((f) => expectFile(ctx.peer, f.path, f.data)));
    },
  },
  {
    name: 'concurrent writers to different files through both clients at once',
    dataOnly: true,
    async run(c, ctx) {
      const mine = Array.from({ length: 4 }, (_, i) => ({ path: ctx.p(`mine${i}`), data: randomBytes(200 * KiB + i) }));
      const theirs = Array.from({ length: 4 }, (_, i) => ({ path: ctx.p(`theirs${i}`), data: randomBytes(200 * KiB + 7 * i) }));
      await Promise.all([...mine.map((f) => c.writeFile(f.path, f.data)), ...theirs.map((f) => ctx.peer.writeFile(f.path, f.data))]);
      for (const f of mine) await expectFile(ctx.peer, f.path, f.data);
      for (const f of theirs) await expectFile(c, f.path, f.data);
    },
  },

  {
    name: 'concurrent renames of different files in one directory through both clients all land',
    async run(c, ctx) {
      const n = 8;
      await Promise.all(Array.from({ length: n }, (_, i) => c.writeFile(ctx.p(`r${i}`), text(`content ${i}`))));
      await Promise.all(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? c : ctx.peer).rename(ctx.p(`r${i}`), ctx.p(`renamed-${i}`))));
      expect(await listed(c, ctx.dir)).toEqual(Array.from({ length: n }, (_, i) => `renamed-${i}`).sort());
      for (let i = 0; i < n; i++) await expectContent(ctx.peer, ctx.p(`renamed-${i}`), text(`content ${i}`));
    },
  },
  {
    name: 'two clients racing to make the same directory: exactly one succeeds, the other gets EEXIST',
    async run(c, ctx) {
      for (let round = 0; round < 3; round++) {
        const d = ctx.p(`race-${round}`);
        const results = await Promise.allSettled([c.mkdir(d), ctx.peer.mkdir(d)]);
        expect(results.filter((r) => r.status === 'fulfilled').length, `round ${round}`).toBe(1);
        const lost = results.find((r) => r.status === 'rejected');
        expect(lost?.status === 'rejected' && lost.reason instanceof ClientError ? lost.reason.code : lost).toBe('EEXIST');
      }
      expect((await c.list(ctx.dir)).filter((e) => e.name.startsWith('race-')).map((e) => e.type)).toEqual(['dir', 'dir', 'dir']);
    },
  },
  {
    name: 'whole-file replacement is atomic: readers see the old or the new content, concurrent writers leave one whole version',
    needs: ['atomicWrite'],
    dataOnly: true,
    async run(c, ctx) {
      const f = ctx.p('doc');
      const versions = Array.from({ length: 4 }, () => randomBytes(512 * KiB));
      await c.writeFile(f, versions[0]!);
      const known = new Set(versions.map(sha));
      const reads: Promise<void>[] = [];
      for (let round = 1; round < versions.length; round++) {
        reads.push(ctx.peer.readFile(f).then((b) => void expect(known.has(sha(b)), `read ${b.length} bytes of no version`).toBe(true)));
        await c.writeFile(f, versions[round]!);
      }
      await Promise.all(reads);
      await Promise.all(versions.map((v, i) => (i % 2 === 0 ? c : ctx.peer).writeFile(f, v)));
      const final = await c.readFile(f);
      expect(known.has(sha(final)), 'final content is one whole version').toBe(true);
      expect(sha(await ctx.peer.readFile(f))).toBe(sha(final));
    },
  },

  // ---------------------------------------------------------------- cross-client consistency
  {
    name: 'cross-client: what one client writes, renames and removes the other sees at once',
    async run(c, ctx) {
      const v1 = randomBytes(300 * KiB);
      await c.writeFile(ctx.p('shared.bin'), v1);
      await expectFile(ctx.peer, ctx.p('shared.bin'), v1);
      const v2 = randomBytes(1000);
      await ctx.peer.writeFile(ctx.p('shared.bin'), v2);
      await expectFile(c, ctx.p('shared.bin'), v2);
      expect(sha(await c.readRange(ctx.p('shared.bin'), 500, 100))).toBe(sha(v2.subarray(500, 600)));
      await ctx.peer.rename(ctx.p('shared.bin'), ctx.p('moved.bin'));
      await expectCode(c.stat(ctx.p('shared.bin')), 'ENOENT');
      await expectFile(c, ctx.p('moved.bin'), v2);
      await c.remove(ctx.p('moved.bin'));
      await expectCode(ctx.peer.readFile(ctx.p('moved.bin')), 'ENOENT');
      expect(await ctx.peer.list(ctx.dir)).toEqual([]);
      // Deleted and re-created at once, shorter: no stale size, content or absence anywhere.
      await c.writeFile(ctx.p('again'), v1);
      await expectFile(ctx.peer, ctx.p('again'), v1);
      await ctx.peer.remove(ctx.p('again'));
      await expectCode(c.stat(ctx.p('again')), 'ENOENT');
      await ctx.peer.writeFile(ctx.p('again'), text('short'));
      await expectFile(c, ctx.p('again'), text('short'));
    },
  },

  // ---------------------------------------------------------------- links
  {
    name: 'symbolic links are created, reported as links, and read back',
    dataOnly: true,
    needs: ['symlinks'],
    async run(c, ctx) {
      await c.writeFile(ctx.p('target'), text('t'));
      await op(c, 'symlink')('target', ctx.p('link'));
      expect((await c.stat(ctx.p('link'))).type).toBe('symlink');
      expect(await op(c, 'readlink')(ctx.p('link'))).toBe('target');
      expect(shape(await c.list(ctx.dir))).toEqual(['link', 'target']);
      expect((await c.list(ctx.dir)).find((e) => e.name === 'link')?.type).toBe('symlink');
      await c.remove(ctx.p('link'));
      await expectFile(c, ctx.p('target'), text('t'));
    },
  },
  {
    name: 'hard links share content',
    dataOnly: true,
    needs: ['hardLinks'],
    async run(c, ctx) {
      await c.writeFile(ctx.p('one'), text('same bytes'));
      await op(c, 'link')(ctx.p('one'), ctx.p('two'));
      await expectFile(c, ctx.p('two'), text('same bytes'));
      await c.remove(ctx.p('one'));
      await expectFile(ctx.peer, ctx.p('two'), text('same bytes'));
    },
  },

  // ---------------------------------------------------------------- locks
  {
    name: 'an exclusive lock keeps other clients from changing the file until it is released',
    needs: ['locks'],
    dataOnly: true,
    async run(c, ctx) {
      const f = ctx.p('locked.txt');
      await c.writeFile(f, text('v1'));
      await withLock(c, f, async () => {
        await expectCode(ctx.peer.writeFile(f, text('intruder')), 'ELOCKED');
        await expectCode(ctx.peer.remove(f), 'ELOCKED');
        await expectCode(ctx.peer.rename(f, ctx.p('stolen')), 'ELOCKED');
        await c.writeFile(ctx.p('other'), text('o'));
        await expectCode(ctx.peer.rename(ctx.p('other'), f), 'ELOCKED');
        await expectContent(ctx.peer, f, text('v1'));
        await c.writeFile(f, text('v2 by the holder'));
      });
      await ctx.peer.writeFile(f, text('v3 after unlock'));
      await expectContent(c, f, text('v3 after unlock'));
    },
  },
  {
    name: 'a lock on a directory keeps other clients from adding, removing or renaming its members; its holder may',
    needs: ['locks'],
    dataOnly: true,
    async run(c, ctx) {
      const d = ctx.p('locked-dir');
      await c.mkdir(d);
      await c.writeFile(ctx.p('locked-dir', 'member'), text('m'));
      await withLock(c, d, async () => {
        // A depth-0 lock on a collection protects its membership (RFC 4918 §7.5).
        await expectCode(ctx.peer.writeFile(ctx.p('locked-dir', 'new'), text('n')), 'ELOCKED');
        await expectCode(ctx.peer.mkdir(ctx.p('locked-dir', 'sub')), 'ELOCKED');
        await expectCode(ctx.peer.remove(ctx.p('locked-dir', 'member')), 'ELOCKED');
        await expectCode(ctx.peer.rename(ctx.p('locked-dir', 'member'), ctx.p('out')), 'ELOCKED');
        await ctx.peer.writeFile(ctx.p('outside'), text('o'));
        await expectCode(ctx.peer.rename(ctx.p('outside'), ctx.p('locked-dir', 'in')), 'ELOCKED');
        expect(await listed(ctx.peer, d)).toEqual(['member']);
        await c.writeFile(ctx.p('locked-dir', 'by-holder'), text('h'));
        await c.rename(ctx.p('locked-dir', 'by-holder'), ctx.p('locked-dir', 'renamed-by-holder'));
      });
      await ctx.peer.writeFile(ctx.p('locked-dir', 'new'), text('n'));
      expect(await listed(c, d)).toEqual(['member', 'new', 'renamed-by-holder']);
    },
  },
  {
    name: 'a lock on a file keeps other clients from moving or deleting the folder it is in',
    needs: ['locks'],
    dataOnly: true,
    async run(c, ctx) {
      await c.mkdir(ctx.p('folder'));
      const f = ctx.p('folder', 'locked.txt');
      await c.writeFile(f, text('v1'));
      await withLock(c, f, async () => {
        // Both would take the locked file away from the URL its holder locked (RFC 4918 §7).
        await expectCode(ctx.peer.rmdir(ctx.p('folder')), ctx.peer.caps.rmdirRecursive ? 'ELOCKED' : 'ENOTEMPTY');
        await expectCode(ctx.peer.rename(ctx.p('folder'), ctx.p('elsewhere')), 'ELOCKED');
        await expectContent(ctx.peer, f, text('v1'));
      });
      await ctx.peer.rename(ctx.p('folder'), ctx.p('elsewhere'));
      await expectContent(c, ctx.p('elsewhere', 'locked.txt'), text('v1'));
    },
  },
];
