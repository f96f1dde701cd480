/**
 * Read-after-write from the gateway's own data (issue 16): a file just written is read back from
 * the disk block tier (the writer tees its bytes there, adopted under the new ETag) or, with async
 * write-back, from its pending stage — zero object GETs reach the store — and the bytes are right.
 * A change made by another S3 client has another ETag: it is read from the store, never the old
 * blocks.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import type { S3Backend } from '../../backends/s3/s3-backend.ts';
import { pattern, useS3Env, type S3Env } from './fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 1 * MiB;
const RW = { read: true, write: true, delete: false };
const RO = { read: true, write: false, delete: false };

let env: S3Env;
useS3Env((e) => {
  env = e;
});

const objectGets = (): number => env.proxy.count('GetObject');

async function readAll(b: S3Backend, path: string, size: number): Promise<Buffer> {
  const f = await b.openFile(path, { write: false });
  const out = Buffer.alloc(size);
  for (let off = 0; off < size;) {
    const n = await f.readInto!(off, out.subarray(off, Math.min(size, off + 256 * KiB)));
    if (n === 0) break;
    off += n;
  }
  await f.close();
  return out;
}

describe('read-after-write: backend writer', () => {
  it('a multipart upload is read back from the disk tier without a GET', async () => {
    const b = env.backend({ blockSize: BLOCK, partSize: 5 * MiB, cacheDir: join(env.tempDir(), 'blocks') });
    const data = pattern(13 * MiB + 777, 3);
    const w = await b.createWriter('/big.bin', { sizeHint: data.length });
    for (let off = 0; off < data.length; off += 300 * KiB) await w.write(data.subarray(off, Math.min(data.length, off + 300 * KiB)));
    const st = await w.commit();
    env.proxy.resetLog();
    expect((await readAll(b, '/big.bin', data.length)).equals(data)).toBe(true);
    expect(objectGets()).toBe(0);
    expect(b.meters.local.requests.get('GetObject') ?? 0).toBe(0);
    // Every block of the new version is in the tier, under the ETag S3 assigned.
    expect(b.disk!.bytes).toBeGreaterThanOrEqual(data.length);
    expect(st.nativeId).toMatch(/-\d+"?$/);
  });

  it('a single PutObject larger than the memory tier is read back without a GET', async () => {
    const b = env.backend({ blockSize: BLOCK, memoryCacheBytes: BLOCK, cacheDir: join(env.tempDir(), 'blocks') });
    const data = pattern(3 * MiB + 5, 4);
    const w = await b.createWriter('/one.bin');
    await w.write(data);
    await w.commit();
    env.proxy.resetLog();
    expect((await readAll(b, '/one.bin', data.length)).equals(data)).toBe(true);
    expect(objectGets()).toBe(0);
  });

  it('an aborted upload leaves nothing in the tier', async () => {
    const dir = join(env.tempDir(), 'blocks');
    const b = env.backend({ blockSize: BLOCK, partSize: 5 * MiB, cacheDir: dir });
    const w = await b.createWriter('/gone.bin');
    await w.write(pattern(7 * MiB, 5));
    await w.abort();
    expect(b.disk!.bytes).toBe(0);
    expect(readdirSync(join(dir, 'incoming'))).toEqual([]);
  });

  it('an object replaced by another S3 client is read from the store, not from the old blocks', async () => {
    const b = env.backend({ blockSize: BLOCK, cacheDir: join(env.tempDir(), 'blocks') });
    const mine = pattern(2 * MiB, 6);
    const w = await b.createWriter('/x.bin');
    await w.write(mine);
    await w.commit();
    const theirs = pattern(2 * MiB + 10, 7);
    await env.rawPut(`${b.keys.prefix}x.bin`, theirs);
    b.invalidate('/');
    env.proxy.resetLog();
    expect((await readAll(b, '/x.bin', theirs.length)).equals(theirs)).toBe(true);
    expect(objectGets()).toBeGreaterThan(0);
  });

  it('the gateway default: a backend with a state directory has a disk tier', async () => {
    const b = env.backend({ stateDir: env.tempDir() });
    expect(b.disk).toBeDefined();
    expect(env.backend({ stateDir: env.tempDir(), diskCacheBytes: 0 }).disk).toBeUndefined();
  });
});
