/**
 * A 100,000-entry directory, paged through the VFS on memory and local backends: every name comes
 * back exactly once, in order, with cookies that resume correctly, including after a restart of the
 * VFS (cookies are file ids, stored in the metadata store).
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, mkdirSync, closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { makeVfsEnv } from '../helpers/vfs-env.ts';
import type { Backend } from '../../src/vfs/backend.ts';

const N = 100_000;
const names = Array.from({ length: N }, (_, i) => `entry-${String(i).padStart(6, '0')}`);

async function pageAll(env: ReturnType<typeof makeVfsEnv>, limit: number, stopAfter?: number): Promise<{ names: string[]; cookie: bigint | undefined }> {
  const s = env.session();
  const out: string[] = [];
  let cookie: bigint | undefined;
  for (let i = 0; i < N; i++) {
    const r = await s.readdir('s', '/big', cookie === undefined ? { limit } : { cookie, limit });
    for (const e of r.entries) out.push(e.name);
    cookie = r.entries.at(-1)?.cookie ?? cookie;
    if (r.eof || (stopAfter !== undefined && out.length >= stopAfter)) break;
  }
  return { names: out, cookie };
}

describe('100,000-entry directory paging', () => {
  it('memory backend', async () => {
    const b = new MemoryBackend();
    await b.mkdir('/big');
    for (const n of names) await (await b.createWriter(`/big/${n}`)).commit();
    const env = makeVfsEnv(b);
    try {
      const { names: got } = await pageAll(env, 1000);
      expect(got.length).toBe(N);
      expect(got).toEqual(names);
    } finally {
      await env.destroy();
    }
  }, 180_000);

  it('local backend, resuming a cookie after a restart', async () => {
    const root = mkdtempSync(join(tmpdir(), 'portico-big-'));
    mkdirSync(join(root, 'big'));
    // Created with plain fs: Portico must also serve trees it did not write.
    for (const n of [...names].reverse()) closeSync(openSync(join(root, 'big', n), 'w'));
    let backend: Backend = await LocalBackend.open(root);
    const env = makeVfsEnv(backend);
    try {
      const first = await pageAll(env, 1000, 40_000);
      expect(first.names).toEqual(names.slice(0, 40_000));
      await env.stop();
      await backend.close();
      backend = await LocalBackend.open(root);
      const env2 = makeVfsEnv(backend, { stateDir: env.stateDir });
      try {
        const s = env2.session();
        const rest: string[] = [];
        let cookie = first.cookie!;
        for (let i = 0; i < N; i++) {
          const r = await s.readdir('s', '/big', { cookie, limit: 2000 });
          for (const e of r.entries) rest.push(e.name);
          if (r.eof) break;
          cookie = r.entries.at(-1)!.cookie;
        }
        expect(rest).toEqual(names.slice(40_000));
      } finally {
        await env2.destroy();
      }
    } finally {
      await backend.close();
      rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
