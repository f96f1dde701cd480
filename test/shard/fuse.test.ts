/**
 * A shard set through a real FUSE mount (a `portico serve` process, the kernel as the client): every
 * file reads back byte for byte with plain fs calls, directories list as the tree has them, and
 * changes fail with EROFS.
 */
import { mkdtempSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from '../../backends/shard/pack.ts';
import { LocalShardStore } from '../../backends/shard/store.ts';
import { fuseUnusable, mountPoints, removeTmp, sh, startFuseStack, type FuseStack } from '../fuse/helpers.ts';
import { makeTree, type TreeFile } from './tree.ts';

const unusable = fuseUnusable();
if (unusable) console.warn(`FUSE shard tests skipped: ${unusable}`);

async function errCode(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: NodeJS.ErrnoException) => e.code);
}

describe.skipIf(unusable !== undefined)('shard set through FUSE', () => {
  let tmp: string;
  let stack: FuseStack;
  let files: TreeFile[];
  let dirs: string[];
  const m = (p: string): string => join(stack.mnt, 'shard', p);

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'portico-shard-fuse-'));
    ({ files, dirs } = makeTree(join(tmp, 'src'), 400, { seed: 71, large: 1 }));
    await pack(join(tmp, 'src'), new LocalShardStore(join(tmp, 'set')), { shardSize: 256 * 1024, workers: 0 });
    stack = await startFuseStack({ tmp, shares: [{ name: 'shard', source: `shard+${pathToFileURL(join(tmp, 'set')).href}` }] });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    if (stack && mountPoints().has(stack.mnt)) await sh('fusermount3', ['-u', '-z', stack.mnt]);
    if (tmp) removeTmp(tmp);
  }, 60_000);

  it('reads every file and lists every directory', async () => {
    for (const f of files) expect((await readFile(m(f.path))).equals(f.data), f.path).toBe(true);
    for (const d of dirs) {
      const prefix = d === '/' ? '/' : `${d}/`;
      const want = new Set<string>();
      for (const p of [...files.map((f) => f.path), ...dirs]) if (p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) want.add(p.slice(prefix.length));
      expect(new Set(await readdir(m(d))), d).toEqual(want);
    }
  }, 120_000);

  it('refuses changes with EROFS', async () => {
    const f = files.find((x) => x.data.length > 0)!;
    expect(await errCode(writeFile(m('/new.txt'), 'x'))).toBe('EROFS');
    expect(await errCode(writeFile(m(f.path), 'x'))).toBe('EROFS');
    expect(await errCode(rm(m(f.path)))).toBe('EROFS');
    expect(await errCode(mkdir(m('/d')))).toBe('EROFS');
    expect(await errCode(rename(m(f.path), m('/moved')))).toBe('EROFS');
    expect((await readFile(m(f.path))).equals(f.data)).toBe(true);
  });
});
