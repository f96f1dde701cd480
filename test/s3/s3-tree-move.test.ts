/**
 * A directory rename on S3 interrupted by a real crash and finished by the next start.
 *
 * A tree of 500 small files in nested directories is created through the VFS (s3rver, a state
 * directory on disk), then a child process (tree-move-child.ts) renames it over the fault proxy. When
 * the proxy has seen 150 source deletes it SIGKILLs the child and drops everything after: the 150th
 * delete never reaches the store, so at least that file is copied but not deleted. The bucket then
 * holds the tree half at the old path, half at the new one. A new stack on the same state directory
 * finishes the move before serving, and every file must be at its new path with its content and
 * its old id, nothing left at the old path, no key twice.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import { S3RVER_CREDENTIALS } from '../helpers/s3rver.ts';
import { useS3Env, type S3Env } from './fixture.ts';
import { expectCode, get, idsOf, makeTree, moved, openEnv, removeDir, treeSpec } from '../vfs-journal/helpers.ts';
import { ROOT, NODE, cleanEnv } from '../cli/helpers.ts';

let env: S3Env;
useS3Env((e) => (env = e));

async function keysUnder(prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const r = await env.raw.send(new ListObjectsV2Command({ Bucket: env.s3.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of r.Contents ?? []) out.push(o.Key!);
    if (!r.IsTruncated) return out;
    token = r.NextContinuationToken;
  }
  throw new Error('listing did not end');
}

describe('S3: directory rename interrupted by SIGKILL, finished at the next start', () => {
  it('500 files: all at the new path with content and old ids, nothing at the old path, no duplicate', { timeout: 240_000 }, async () => {
    const prefix = env.freshPrefix();
    const stateDir = env.tempDir();
    const backend = (endpoint: string): S3Backend =>
      new S3Backend({ bucket: env.s3.bucket, prefix, endpoint, ...S3RVER_CREDENTIALS, retryBaseMs: 5, retryMaxMs: 50 });

    // 1. The tree, created through the VFS so every name has its id.
    const tree = treeSpec('/tree', 10, 5, 10);
    expect(tree.files.size).toBe(501);
    const first = openEnv(backend(env.s3.endpoint), { stateDir });
    await makeTree(first.vfs, tree);
    const ids = await idsOf(first.vfs, tree);
    await first.vfs.shutdown();
    first.store.close();

    // 2. The rename, in a child process, killed after 150 source deletes.
    const keyOf = (url: string): string => decodeURIComponent(new URL(url, 'http://x').pathname);
    const oldKeys = `/${env.s3.bucket}/${prefix}/tree/`;
    let deletes = 0;
    let droppedKey: string | undefined;
    const child = spawn(NODE, [join(ROOT, 'test/s3/tree-move-child.ts'), JSON.stringify({
      stateDir, endpoint: env.proxy.endpoint, bucket: env.s3.bucket, prefix, ...S3RVER_CREDENTIALS, from: '/tree', to: '/moved', concurrency: 8,
    })], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
    try {
      env.proxy.inject({
        kind: 'drop',
        times: Infinity,
        match: (r) => {
          if (droppedKey !== undefined || r.op !== 'DeleteObject') return false;
          const k = keyOf(r.url);
          if (!k.startsWith(oldKeys) || k.endsWith('/')) return false;
          if (++deletes < 150) return false;
          droppedKey = k.slice(`/${env.s3.bucket}/`.length);
          child.kill('SIGKILL');
          env.proxy.down(true);
          return true;
        },
      });
      const lines: string[] = [];
      createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
      const how = await Promise.race([exited, new Promise((r) => setTimeout(() => r('hang'), 180_000))]);
      expect(how, `child output: ${lines.join(' | ')}`).toBe('SIGKILL');
      expect(lines).toEqual(['renaming']);
    } finally {
      child.kill('SIGKILL');
      env.proxy.clearFaults();
    }

    // 3. The crash left the tree in both places, and the dropped delete's file at both.
    const fileKeys = (keys: string[]): string[] => keys.filter((k) => !k.endsWith('/'));
    const oldLeft = fileKeys(await keysUnder(`${prefix}/tree/`));
    const newSoFar = fileKeys(await keysUnder(`${prefix}/moved/`));
    expect(oldLeft.length).toBeGreaterThan(0);
    expect(newSoFar.length).toBeGreaterThanOrEqual(149);
    expect(oldLeft).toContain(droppedKey);
    expect(newSoFar).toContain(droppedKey!.replace(`${prefix}/tree/`, `${prefix}/moved/`));
    // The rename committed before the first copy: the journal row is there.
    const second = openEnv(backend(env.proxy.endpoint), { stateDir });
    try {
      expect(second.store.pendingTreeMoves('s')).toHaveLength(1);
      // The moving trees are guarded from the moment the volume exists.
      await expectCode(second.vfs.mkdir('s', '/moved/early'), 'EBUSY');

      // 4. The restart finishes the move before serving.
      expect(await second.vfs.resumeTreeMoves()).toEqual({ resumed: 1, retrying: 0, quarantined: 0, conflicts: 0 });
      expect(second.store.pendingTreeMoves('s')).toEqual([]);
      for (const [p, content] of tree.files) {
        const q = moved(p, '/tree', '/moved');
        expect((await second.vfs.getattr('s', q)).id).toBe(ids.get(p));
        expect((await get(second.vfs, q)).toString()).toBe(content);
      }
      for (const d of tree.dirs) expect((await second.vfs.getattr('s', moved(d, '/tree', '/moved'))).id).toBe(ids.get(d));
      expect(second.vfs.pathOf('s', ids.get('/tree')!)).toBe('/moved');
      await expectCode(second.vfs.getattr('s', '/tree'), 'ENOENT');

      // Keys: nothing under the old prefix; under the new one exactly one object per file and one
      // marker per directory.
      expect(await keysUnder(`${prefix}/tree`)).toEqual([]);
      const all = await keysUnder(`${prefix}/`);
      const want = [
        ...[...tree.files.keys()].map((p) => `${prefix}${moved(p, '/tree', '/moved')}`),
        ...tree.dirs.map((d) => `${prefix}${moved(d, '/tree', '/moved')}/`),
      ].sort();
      expect([...all].sort()).toEqual(want);
      expect(new Set(all).size).toBe(all.length);
    } finally {
      await second.vfs.shutdown();
      second.store.close();
      removeDir(stateDir);
    }
  });
});
